// Takes the dashboard's screenshots in docs/ (docs/dashboard-*.png): a
// three-agent cluster on loopback (127.0.0.2-4) with a few files written and
// read, then the main views in Chromium 1280 px wide (whole pages) and the
// hosts at phone width. Run as root (FUSE): node bin/run-ts.mjs scripts/dashboard-screenshots.ts
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import type { Test } from 'tap'
import { PROJECT, shOk } from '../test/helpers/agent.ts'
import { startCluster } from '../test/helpers/cluster.ts'
import { delay, waitFor } from '../test/helpers/wait.ts'

const DOCS = join(PROJECT, 'docs')
const teardowns: Array<() => Promise<void>> = []
// startCluster takes its teardown from a tap test; here the script runs them at the end.
const t = { teardown: (fn: () => Promise<void>) => teardowns.push(fn) } as unknown as Test

async function shoot (page: Page, name: string, ready: () => Promise<unknown>, fullPage = true): Promise<void> {
  await ready()
  // Charts are drawn on the next animation frame after their data arrives.
  await page.evaluate(async () => await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))))
  await page.screenshot({ path: join(DOCS, `dashboard-${name}.png`), fullPage })
  console.log(`docs/dashboard-${name}.png`)
}

try {
  await mkdir(DOCS, { recursive: true })
  const cluster = await startCluster(t, { env: () => ({ CHAAC_HISTORY_INTERVAL_MS: '2000', CHAAC_ADMIN_TOKEN: 'demo-token' }) })
  const [a, b, c] = cluster.agents
  await shOk(`mkdir -p ${a.mount}/projects/models ${a.mount}/logs && head -c 9437184 /dev/urandom > ${a.mount}/projects/models/weights.bin && ` +
    `for i in 1 2 3 4 5; do head -c $((i * 300000)) /dev/urandom > ${a.mount}/logs/day-$i.log; done && echo hello > ${a.mount}/projects/README`)
  // Reads elsewhere: remote cache hits on the other agents, for the traffic charts.
  await shOk(`cat ${b.mount}/projects/models/weights.bin > /dev/null && cat ${c.mount}/logs/*.log > /dev/null`)
  // Then a minute of traffic: a new file on one agent every few seconds, read on the other two.
  for (let i = 0; i < 15; i++) {
    const [w, r1, r2] = [a, b, c].map((_, j, all) => all[(i + j) % 3])
    await shOk(`head -c ${(1 + (i % 4)) * 1048576} /dev/urandom > ${w.mount}/logs/burst-${i}.bin && cat ${r1.mount}/logs/burst-${i}.bin ${r2.mount}/logs/burst-${i}.bin > /dev/null`)
    await delay(2500) // pacing: spread the traffic over the history's samples
  }
  await waitFor(async () => {
    const h = await a.json('/api/v1/history?metric=reads.remote_hit,context.ufCPU&since=-3600').catch(() => null)
    return h?.series?.some((s: any) => s.points.length >= 20)
  }, { timeoutMs: 60_000, intervalMs: 1000, what: 'a minute of history samples' })

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true })
  teardowns.push(async () => await browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(`${a.url}/#/hosts`)
  await shoot(page, 'hosts', async () => await page.locator('section.host[data-state="alive"]').nth(2).waitFor())
  await page.goto(`${a.url}/#/files/projects/models/weights.bin`)
  await shoot(page, 'file', async () => await page.locator('table.balls tbody tr').nth(2).waitFor())
  await page.goto(`${a.url}/#/traffic`)
  await shoot(page, 'traffic', async () => await page.locator('.chart canvas').first().waitFor())
  await page.goto(`${a.url}/#/scheme`)
  await page.getByRole('button', { name: 'Compare policies' }).click()
  await page.locator('table.what-if tbody tr').first().waitFor()
  await page.fill('#admin-token', 'not-the-token')
  await page.getByRole('button', { name: 'Change policy' }).click()
  await shoot(page, 'scheme', async () => await page.locator('.change-result .notice').waitFor())
  await page.goto(`${a.url}/#/zones?k=2`)
  await shoot(page, 'zones', async () => await page.locator('table.ranked tbody tr').first().waitFor())
  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(`${a.url}/#/hosts`)
  await shoot(page, 'phone', async () => await page.locator('section.host[data-state="alive"]').nth(2).waitFor(), false)
} finally {
  for (const fn of teardowns.reverse()) await fn().catch((err) => console.error(err))
}
