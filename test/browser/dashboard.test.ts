// The dashboard in a real browser (Debian's Chromium driven by
// playwright-core) against a real cluster of three agents on loopback: what
// the page shows is what the API answers, a file written through one agent's
// mount appears with its copies, a killed agent turns gone, the scheme changes
// only with the admin token, the page says when its agent is unreachable and
// recovers by itself, and every view has its own URL.
import { access } from 'node:fs/promises'
import { request } from 'node:http'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { shOk } from '../helpers/agent.ts'
import { startCluster, type Cluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = randomBytes(12).toString('hex')
const OPTS = { timeout: 60_000 }

let cluster: Cluster
let browser: Browser

async function open (agent: number, route: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
  const page = await browser.newPage({ viewport })
  await page.goto(`${cluster.agents[agent].url}/#/${route}`)
  return page
}

/** Polls the page until `fn` (run in the page) returns something truthy. */
async function until<T> (page: Page, what: string, fn: () => T, timeoutMs = 20_000): Promise<NonNullable<T>> {
  return await waitFor(async () => await page.evaluate(fn), { timeoutMs, intervalMs: 250, what })
}

async function rawGet (hostPort: string, path: string): Promise<{ status: number, body: string }> {
  const [host, port] = hostPort.split(':')
  return await new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, method: 'GET', timeout: 5000 }, (res) => {
      let body = ''
      res.on('data', (d) => { body += String(d) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)))
    req.on('error', reject)
    req.end()
  })
}

// Skipping is not allowed: a machine without Chromium fails here, saying how to get it.
const chromiumMissing = await access(CHROMIUM).then(() => false, () => true)
if (chromiumMissing) {
  t.fail(`${CHROMIUM} is missing: the dashboard tests drive Debian's chromium (npm test installs it through scripts/ensure-deps.mjs --test; by hand: apt-get install -y chromium)`)
} else {
  t.before(async () => {
    // Agent 1 has no admin token: its page shows the scheme read-only.
    cluster = await startCluster(t, {
      env: (i) => ({ CHAAC_HISTORY_INTERVAL_MS: '1000', ...(i === 1 ? {} : { CHAAC_ADMIN_TOKEN: TOKEN }) })
    })
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
    t.teardown(async () => await browser.close())
  })

  t.test('dashboard - the agent serves the page\'s own files with their types, and no other file', OPTS, async (t) => {
    const base = cluster.agents[0].url
    const page = await fetch(`${base}/`)
    t.equal(page.status, 200)
    t.match(page.headers.get('content-type'), /^text\/html/)
    t.equal(page.headers.get('cache-control'), 'no-cache')
    t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'nothing from another origin')
    t.match(await page.text(), /<script type="module" src="\/ui\/app.js">/)
    for (const [path, type] of [['/ui/app.js', /^text\/javascript/], ['/ui/style.css', /^text\/css/], ['/ui/vendor/uPlot.esm.js', /^text\/javascript/]] as const) {
      const res = await fetch(base + path)
      t.equal(res.status, 200, path)
      t.match(res.headers.get('content-type'), type, `${path}: its content type`)
      t.match(res.headers.get('cache-control'), /max-age=\d+/)
    }
    const head = await fetch(`${base}/ui/app.js`, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(await head.text(), '', 'HEAD: no body')
    // Raw request lines, as a client that does not normalise paths sends them.
    for (const path of ['/ui/../../../../etc/passwd', '/ui/%2e%2e/%2e%2e/package.json', '/ui/views/../../../package.json', '/ui/', '/ui/app.js/', '/ui/APP.JS', '/index.html', '/src/api/dashboard/app.js']) {
      const { status, body } = await rawGet(cluster.agents[0].http, path)
      t.equal(status, 404, `${path}: 404`)
      t.notMatch(body, /root:|"name": "chaac"/, `${path}: no file content`)
    }
    t.equal((await fetch(`${base}/`, { method: 'POST' })).status, 404, 'only GET and HEAD')
    t.equal((await cluster.agents[0].json('/status')).agent.id.length > 0, true, 'the JSON API as before')
  })

  t.test('dashboard - every view has its own URL, reachable with the keyboard, readable at phone width', OPTS, async (t) => {
    const id = (await cluster.agents[0].json('/status')).agent.id as string
    const views: Array<[string, string, string]> = [
      ['hosts', 'hosts', 'Hosts and bins'],
      [`hosts/${id}`, 'hosts', `Host ${id.slice(0, 8)}`],
      ['files', 'files', 'Files'],
      ['traffic', 'traffic', 'Traffic over the last hour'],
      ['scheme', 'scheme', 'Scheme'],
      ['zones?k=2', 'zones', 'Zones']
    ]
    const page = await open(0, 'hosts')
    for (const [route, nav, heading] of views) {
      await page.goto(`${cluster.agents[0].url}/#/${route}`)
      await page.reload()
      await page.locator('main h1', { hasText: heading }).waitFor({ timeout: 10_000 })
      t.equal(await page.locator('nav a[aria-current="page"]').getAttribute('data-view'), nav, `#/${route} marks its view in the menu`)
      if (route === `hosts/${id}`) {
        await page.locator(`main section.host[data-agent="${id}"]`).waitFor()
        t.equal(await page.locator('main section.host').count(), 1, `#/hosts/${id.slice(0, 8)} shows that one agent`)
      }
    }
    t.equal(await page.inputValue('#zones-k'), '2', '#/zones?k=2 groups into 2 zones')

    // The skip link, then the menu: Tab, Tab, Tab reaches Files, Enter follows it.
    await page.goto(`${cluster.agents[0].url}/#/hosts`)
    await page.reload()
    await page.locator('main h1').waitFor()
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab')
    t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Files')
    t.not(await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle), 'none', 'the focus is visible')
    await page.keyboard.press('Enter')
    await waitFor(async () => await page.evaluate(() => location.hash) === '#/files', { timeoutMs: 5000, what: 'the files view' })

    await page.setViewportSize({ width: 390, height: 844 })
    for (const route of ['hosts', 'files', 'traffic', 'scheme', 'zones']) {
      await page.goto(`${cluster.agents[0].url}/#/${route}`)
      await page.locator('main h1').waitFor()
      await page.waitForTimeout(300) // pacing only: the view's first answer lands
      t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), `#/${route} does not scroll sideways at 390 px`)
    }
    await page.close()
  })

  t.test('dashboard - a file written through one agent\'s mount shows its balls and the bins holding each copy', OPTS, async (t) => {
    const writer = cluster.agents[1]
    // 9 MiB: three balls of the 4 MiB chunk size.
    await shOk(`mkdir -p ${writer.mount}/data/sub && head -c 9437184 /dev/urandom > ${writer.mount}/data/sub/big.bin`)
    const page = await open(0, 'files/data')
    await page.locator('table.entries a', { hasText: 'sub/' }).click()
    await page.locator('table.entries a', { hasText: 'big.bin' }).click()
    t.equal(await page.evaluate(() => location.hash), '#/files/data/sub/big.bin', 'the file has its own URL')
    const where = await cluster.agents[0].json('/api/v1/location?path=/data/sub/big.bin')
    t.equal(where.balls.length, 3)
    const want = where.balls.map((b: any) => ({ id: b.id, bins: b.bins.map((x: any) => `${x.id}:${x.cached ? 'cached' : 'durable'}`).sort(), under: b.underReplicated === true }))
    const shown = await until(page, 'the balls with every copy the API lists', () => {
      const rows = [...document.querySelectorAll<HTMLElement>('table.balls tbody tr')]
      return rows.length === 3 && rows.map((r) => ({
        id: r.dataset.ball,
        bins: [...r.querySelectorAll<HTMLElement>('.copies li')].map((li) => `${li.dataset.bin}:${li.querySelector('[data-field="kind"]')?.textContent}`).sort(),
        under: r.querySelector('[data-field="under"]') !== null
      }))
    })
    t.same(shown, want, 'each ball with the bins holding its copies, cached or durable, and whether it is under-replicated')
    for (const b of where.balls) t.ok(b.bins.length >= 1, 'each ball has a copy in a bin')
    t.equal(await page.locator('dd[data-field="size"]').getAttribute('data-value'), '9437184')
    const replication = await cluster.agents[0].json('/api/v1/replication')
    const count = await page.locator('.replication strong').textContent()
    t.equal(Number(count?.replace(/,/g, '')), replication.underReplicated, 'the cluster-wide count of under-replicated balls')
    await page.close()
  })

  t.test('dashboard - the hosts view shows every agent with the bins, use and ball counts of the API', OPTS, async (t) => {
    const page = await open(0, 'hosts')
    const fromPage = (): unknown => [...document.querySelectorAll<HTMLElement>('section.host')].map((s) => ({
      agent: s.dataset.agent,
      state: s.dataset.state,
      bins: [...s.querySelectorAll<HTMLElement>('tr[data-bin]')].map((r) => ({
        id: r.dataset.bin,
        capacity: Number(r.querySelector<HTMLElement>('[data-field="capacity"]')?.dataset.value),
        used: Number(r.querySelector<HTMLElement>('[data-field="used"]')?.dataset.value),
        balls: Number(r.querySelector<HTMLElement>('[data-field="balls"]')?.dataset.value)
      }))
    })).sort((a, b) => String(a.agent).localeCompare(String(b.agent)))
    const ballsOf = (agents: any[]): number => agents.flatMap((a) => a.bins).reduce((n: number, b: any) => n + b.balls, 0)
    // Both sides move while reports come in (every 5 s): equal once, read within one poll of each
    // other, and after the reports counted the file's balls (3 balls, 2 replicas).
    const api = await waitFor(async () => {
      const { agents } = await cluster.agents[0].json('/api/v1/agents')
      const want = agents.map((a: any) => ({ agent: a.id, state: a.state, bins: a.bins.map((b: any) => ({ id: b.id, capacity: b.capacity, used: b.used, balls: b.balls })) }))
        .sort((a: any, b: any) => a.agent.localeCompare(b.agent))
      const got = await page.evaluate(fromPage)
      return ballsOf(want) >= 6 && JSON.stringify(got) === JSON.stringify(want) && want
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'the page to show what /api/v1/agents answers, the file\'s balls counted' })
    t.equal(api.length, 3)
    t.ok(api.every((a: any) => a.state === 'alive' && a.bins.length === 2))
    const balls = ballsOf(api)
    t.equal(await page.locator('[data-stat="balls"] .value').textContent(), balls.toLocaleString('en'), 'the total of balls in bins')
    t.equal(await page.locator('[data-stat="bins"] .value').textContent(), '6')
    t.equal(await page.locator('section.host [role="meter"]').count() >= 3 * 4, true, 'the four utilisation factors of each host as bars')
    await page.close()
  })

  t.test('dashboard - traffic charts the last hour from /api/v1/history', OPTS, async (t) => {
    // Reads through another agent: remote cache hits for the charts.
    await shOk(`cat ${cluster.agents[2].mount}/data/sub/big.bin > /dev/null`)
    const page = await open(0, 'traffic')
    await page.locator('figure[data-chart="Read outcomes (balls), all agents"] canvas').first().waitFor({ timeout: 20_000 })
    await page.locator('figure[data-chart="Bytes read and written, all agents"] canvas').first().waitFor()
    const contexts = await until(page, 'a context chart for each of the three agents', () => {
      const n = document.querySelectorAll('figure[data-chart^="Context of"]').length
      return n === 3 && n
    })
    t.equal(contexts, 3)
    const series = (await cluster.agents[0].json('/api/v1/history?metric=bytes.written&since=-3600')).series as any[]
    t.ok(series.length > 0, 'the API has the series the chart shows')
    t.ok(await page.locator('figure[data-chart="Bytes read and written, all agents"] [data-series^="written"]').count() >= 1, 'bytes written in the legend')
    await page.close()
  })

  t.test('dashboard - the scheme: what each policy would do, and a change only with the admin token', OPTS, async (t) => {
    const scheme = await cluster.agents[0].json('/api/v1/scheme')
    const page = await open(0, 'scheme')
    await page.locator('dd[data-field="policy"]', { hasText: scheme.policy }).waitFor()
    t.equal(await page.locator('dd[data-field="replicas"]').textContent(), String(scheme.replicas))

    await page.getByRole('button', { name: 'Compare policies' }).click()
    await page.locator('table.what-if tbody tr').nth(scheme.policies.length - 1).waitFor()
    const rows = await page.locator('table.what-if tbody tr').evaluateAll((trs) => trs.map((tr) => ({
      policy: (tr as HTMLElement).dataset.policy, bins: tr.querySelectorAll('.copies li').length, balance: tr.querySelector('[data-field="balance"]')?.textContent ?? ''
    })))
    t.same(rows.map((r) => r.policy), scheme.policies, 'a row for every policy')
    for (const r of rows) {
      t.equal(r.bins, scheme.replicas, `${r.policy}: one bin per replica`)
      t.match(r.balance, /→/, `${r.policy}: the balance before and after`)
    }

    const other = scheme.policies.find((p: string) => p !== scheme.policy) as string
    const change = page.getByRole('button', { name: 'Change policy' })
    t.ok(await change.isDisabled(), 'without a token the page is read-only')
    await page.selectOption('#policy', other)
    await page.fill('#admin-token', 'not-the-token')
    await change.click()
    await page.locator('.change-result .notice.bad', { hasText: '401' }).waitFor()
    t.equal((await cluster.agents[0].json('/api/v1/scheme')).policy, scheme.policy, 'a wrong token changes nothing')

    await page.fill('#admin-token', TOKEN)
    await change.click()
    await page.locator('.change-result .notice.ok', { hasText: other }).waitFor()
    // The scheme is the cluster's: another agent answers with the new policy too.
    await waitFor(async () => (await cluster.agents[2].json('/api/v1/scheme')).policy === other, { timeoutMs: 15_000, what: `policy ${other} on another agent` })
    await page.locator('dd[data-field="policy"]', { hasText: other }).waitFor()

    // An agent started without a token refuses any change, and the page says why.
    const readOnly = await open(1, 'scheme')
    await readOnly.locator('.notice.warn', { hasText: 'without an admin token' }).waitFor()
    await readOnly.fill('#admin-token', TOKEN)
    await readOnly.getByRole('button', { name: 'Change policy' }).click()
    await readOnly.locator('.change-result .notice.bad', { hasText: '403' }).waitFor()
    t.equal((await cluster.agents[1].json('/api/v1/scheme')).writable, false)
    await readOnly.close()
    await page.close()
  })

  t.test('dashboard - zones group the hosts into the k chosen on the page', OPTS, async (t) => {
    const page = await open(0, 'zones?k=2')
    // Contexts move, and containers on this host come and go: the same answer, read within one poll of each other.
    const api = await waitFor(async () => {
      const answer = await cluster.agents[0].json('/api/v1/zones?k=2')
      const want = { zones: answer.zones.length, ranked: [...answer.members].sort((a: any, b: any) => a.rank - b.rank).map((m: any) => m.id) }
      const got = await page.evaluate(() => ({
        zones: document.querySelectorAll('section.zone').length,
        ranked: [...document.querySelectorAll<HTMLElement>('table.ranked tbody tr')].map((tr) => tr.dataset.member)
      }))
      return JSON.stringify(got) === JSON.stringify(want) && answer
    }, { timeoutMs: 20_000, intervalMs: 500, what: 'the page to show the zones and ranks /api/v1/zones answers' })
    t.equal(api.zones.length, 2, 'two zones, one panel each')
    t.ok(api.members.filter((m: any) => m.kind === 'host').length === 3, 'the three hosts ranked')
    await page.fill('#zones-k', '1')
    await page.getByRole('button', { name: 'Group' }).click()
    await waitFor(async () => await page.evaluate(() => location.hash) === '#/zones?k=1', { timeoutMs: 5000, what: 'the URL to say k=1' })
    await until(page, 'a single zone', () => document.querySelectorAll('section.zone').length === 1)
    t.pass('k=1 on the page: one zone')
    await page.close()
  })

  t.test('dashboard - a killed agent turns gone, and its own page says it is unreachable', OPTS, async (t) => {
    const victim = cluster.agents[2]
    const id = (await victim.json('/status')).agent.id as string
    const overview = await open(0, 'hosts')
    const orphan = await open(2, 'hosts')
    await overview.locator(`section.host[data-agent="${id}"][data-state="alive"]`).waitFor()
    await orphan.locator('section.host').first().waitFor()
    t.ok(await orphan.locator('#banner').isHidden(), 'no banner while the agent answers')
    await victim.kill9()
    await overview.locator(`section.host[data-agent="${id}"][data-state="gone"]`).waitFor({ timeout: 30_000 })
    t.equal(await overview.locator(`section.host[data-agent="${id}"] [data-field="state"]`).textContent(), 'gone')
    await orphan.locator('#banner', { hasText: 'unreachable, retrying' }).waitFor({ timeout: 15_000 })
    t.pass('the page served by the killed agent shows the banner')
    await overview.close()
    await orphan.close()
  })

  t.test('dashboard - the unreachable banner comes when the agent stops answering and goes when it is back', OPTS, async (t) => {
    const agent = cluster.agents[1]
    const page = await open(1, 'hosts')
    await page.locator('section.host').first().waitFor()
    process.kill(agent.pid, 'SIGSTOP')
    try {
      await page.locator('#banner', { hasText: 'Agent unreachable, retrying' }).waitFor({ timeout: 20_000 })
      t.pass('the banner while the agent is stopped')
    } finally {
      process.kill(agent.pid, 'SIGCONT')
    }
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 20_000 })
    t.ok(await page.locator('section.host').count() >= 2, 'the view again, without a reload')
    await page.close()
  })
}
