// Tables and the ratio chart of bench/compare.ts: medians per target, each
// target's ratio to the local disk, and Chaac's standing against GlusterFS
// and MooseFS.
import type { TargetId } from './targets.ts'

export interface WorkloadDef {
  id: string
  label: string
  unit: string
  /** match: Chaac at least as good as GlusterFS and MooseFS; beat: better than both. */
  aim?: 'match' | 'beat'
  /** Lower is better (memory). */
  lowerBetter?: boolean
  /** No ratio to the local disk (the local disk has no process). */
  noLocal?: boolean
}

export interface Row {
  id: string
  label: string
  unit: string
  medians: Partial<Record<TargetId, number>>
  ratios: Partial<Record<TargetId, number>>
  rounds: Partial<Record<TargetId, number[]>>
  /** Chaac against the better of GlusterFS and MooseFS. */
  vsPeers: number | null
  aim: string
  met: boolean | null
}

/** Within this fraction counts as a match (the noise of a shared 2-core VM). */
export const MATCH_TOLERANCE = 0.05

export const TARGET_NAMES: Record<TargetId, string> = {
  local: 'local disk',
  bindfs: 'bindfs',
  glusterfs: 'GlusterFS',
  moosefs: 'MooseFS',
  chaac: 'Chaac'
}

const COLOURS: Record<TargetId, string> = {
  local: '#888888',
  bindfs: '#7f7f7f',
  glusterfs: '#d62728',
  moosefs: '#ff7f0e',
  chaac: '#1f77b4'
}

export function format (x: number | undefined | null): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '-'
  if (x >= 100) return Math.round(x).toLocaleString('en-US')
  return x.toPrecision(3)
}

export function formatRatio (r: number | undefined | null): string {
  if (r === undefined || r === null || !Number.isFinite(r)) return '-'
  return r.toFixed(r < 0.1 ? 3 : 2)
}

export function summarize (defs: WorkloadDef[], targets: TargetId[], samples: Map<string, Partial<Record<TargetId, number[]>>>,
  median: (xs: number[]) => number, peak: (xs: number[]) => number): Row[] {
  return defs.map((w) => {
    const rounds = samples.get(w.id) ?? {}
    const medians: Partial<Record<TargetId, number>> = {}
    const ratios: Partial<Record<TargetId, number>> = {}
    for (const t of targets) {
      const xs = rounds[t] ?? []
      if (xs.length === 0) continue
      medians[t] = w.lowerBetter ? peak(xs) : median(xs)
    }
    for (const t of targets) {
      const local = medians.local
      const v = medians[t]
      if (!w.noLocal && local !== undefined && v !== undefined && local > 0) ratios[t] = v / local
    }
    const c = medians.chaac
    const peers = [medians.glusterfs, medians.moosefs].filter((x): x is number => x !== undefined && Number.isFinite(x))
    let vsPeers: number | null = null
    if (c !== undefined && Number.isFinite(c) && peers.length > 0) {
      vsPeers = w.lowerBetter ? Math.min(...peers) / c : c / Math.max(...peers)
    }
    let aim = ''
    let met: boolean | null = null
    if (w.aim !== undefined && vsPeers !== null) {
      aim = w.aim === 'match' ? 'match both' : 'beat both'
      met = w.aim === 'match' ? vsPeers >= 1 - MATCH_TOLERANCE : vsPeers > 1 + MATCH_TOLERANCE
    }
    return { id: w.id, label: w.label, unit: w.unit, medians, ratios, rounds, vsPeers, aim, met }
  })
}

export function mainTable (rows: Row[], targets: TargetId[]): string {
  const head = `| workload | unit | ${targets.map((t) => TARGET_NAMES[t]).join(' | ')} | ${targets.filter((t) => t !== 'local').map((t) => `${TARGET_NAMES[t]} / local`).join(' | ')} | Chaac / best of GlusterFS, MooseFS | aim |`
  const sep = `| --- | --- | ${targets.map(() => '---:').join(' | ')} | ${targets.filter((t) => t !== 'local').map(() => '---:').join(' | ')} | ---: | --- |`
  const lines = rows.map((r) => `| ${r.label} | ${r.unit} | ${targets.map((t) => format(r.medians[t])).join(' | ')} | ` +
    `${targets.filter((t) => t !== 'local').map((t) => formatRatio(r.ratios[t])).join(' | ')} | ${formatRatio(r.vsPeers)} | ` +
    `${r.aim === '' ? '' : `${r.aim}: ${r.met === true ? 'met' : '**MISSED**'}`} |`)
  return [head, sep, ...lines].join('\n')
}

export function roundsTable (rows: Row[], targets: TargetId[]): string {
  const head = `| workload | ${targets.map((t) => TARGET_NAMES[t]).join(' | ')} |`
  const sep = `| --- | ${targets.map(() => '---').join(' | ')} |`
  return [head, sep, ...rows.map((r) => `| ${r.label} | ${targets.map((t) => (r.rounds[t] ?? []).map(format).join(', ') || '-').join(' | ')} |`)].join('\n')
}

function escapeXml (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Horizontal bars of each target's ratio to the local disk, log scale, one group per workload. */
export function ratioChart (rows: Row[], targets: TargetId[], title: string): string {
  const shown = targets.filter((t) => t !== 'local')
  const data = rows.filter((r) => Object.keys(r.ratios).length > 0)
  const left = 330
  const plotW = 520
  const barH = 9
  const groupH = shown.length * barH + 10
  const top = 56
  const height = top + data.length * groupH + 50
  const width = left + plotW + 70
  const minExp = -3
  const maxExp = 1
  const x = (ratio: number): number => {
    const e = Math.min(maxExp, Math.max(minExp, Math.log10(Math.max(ratio, 1e-6))))
    return left + (e - minExp) / (maxExp - minExp) * plotW
  }
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`
  ]
  shown.forEach((t, i) => {
    const lx = left + i * 120
    parts.push(`<rect x="${lx}" y="28" width="12" height="10" fill="${COLOURS[t]}"/><text x="${lx + 16}" y="37">${TARGET_NAMES[t]}</text>`)
  })
  for (let e = minExp; e <= maxExp; e++) {
    const gx = x(10 ** e)
    parts.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${height - 40}" stroke="${e === 0 ? '#000' : '#ddd'}"/>`)
    parts.push(`<text x="${gx}" y="${height - 26}" text-anchor="middle">${10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)}</text>`)
  }
  parts.push(`<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">ratio to the local disk (log scale; 1 = as fast as the local disk; higher is better)</text>`)
  data.forEach((r, gi) => {
    const gy = top + gi * groupH
    parts.push(`<text x="${left - 8}" y="${gy + groupH / 2}" text-anchor="end" dominant-baseline="middle">${escapeXml(r.label.length > 52 ? r.label.slice(0, 50) + '…' : r.label)}</text>`)
    shown.forEach((t, i) => {
      const ratio = r.ratios[t]
      if (ratio === undefined || !Number.isFinite(ratio)) return
      const y = gy + i * barH
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(ratio) - left)}" height="${barH - 1}" fill="${COLOURS[t]}"/>`)
      parts.push(`<text x="${x(ratio) + 3}" y="${y + barH - 1}" font-size="9">${formatRatio(ratio)}</text>`)
    })
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
