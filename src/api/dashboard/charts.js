// Time-series charts (uPlot, served from the agent's node_modules) fed by
// GET /api/v1/history.
import uPlot from '/ui/vendor/uPlot.esm.js'
import { api, isMissingEndpoint } from './api.js'
import { h, notice, replace } from './dom.js'
import { agentLabel, bytes, count, percent } from './format.js'

const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#a16207', '#db2777']

export const READS = ['reads.local_hit', 'reads.remote_hit', 'reads.miss', 'reads.skip']
export const BYTES = ['bytes.read', 'bytes.written']
export const FACTORS = ['context.ufCPU', 'context.ufMemory', 'context.ufFileSystem', 'context.ufNet']
export const FREE = ['context.freeBytes']

const LABELS = {
  'reads.local_hit': 'local cache hit',
  'reads.remote_hit': 'remote cache hit',
  'reads.miss': 'cache miss',
  'reads.skip': 'cache skip',
  'bytes.read': 'read',
  'bytes.written': 'written',
  'context.ufCPU': 'ufCPU',
  'context.ufMemory': 'ufMemory',
  'context.ufFileSystem': 'ufFileSystem',
  'context.ufNet': 'ufNet',
  'context.freeBytes': 'free space'
}

/** The history of these metrics over the last hour, optionally for one agent. */
export async function loadHistory (metrics, agent) {
  const q = new URLSearchParams({ metric: metrics.join(','), since: '-3600' })
  if (agent) q.set('agent', agent)
  return await api(`/api/v1/history?${q}`)
}

function formatter (kind) {
  if (kind === 'bytes') return bytes
  if (kind === 'ratio') return percent
  if (kind === 'byterate') return (v) => `${bytes(v)}/s`
  // Reads per second: small fractions matter on a quiet cluster.
  return (v) => `${typeof v === 'number' ? (Math.abs(v) < 10 ? v.toFixed(2).replace(/\.?0+$/, '') : count(Math.round(v))) : '–'}/s`
}

/**
 * One chart: a titled figure with one line per series ({label, points}).
 * Returns the figure; it sizes itself to its container.
 */
export function chart (title, series, kind) {
  const fmt = formatter(kind)
  const figure = h('figure', { class: 'chart', 'aria-label': title, dataset: { chart: title } }, h('figcaption', {}, title))
  if (series.length === 0 || series.every((s) => s.points.length === 0)) {
    figure.append(notice('no samples yet'))
    return figure
  }
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b)
  const index = new Map(xs.map((x, i) => [x, i]))
  const data = [xs.map((x) => x / 1000), ...series.map((s) => {
    const ys = new Array(xs.length).fill(null)
    for (const [t, v] of s.points) ys[index.get(t)] = v
    return ys
  })]
  const holder = h('div', { class: 'plot' })
  figure.append(holder, latest(series, fmt))
  const opts = {
    width: 600,
    height: 200,
    // The figure's own legend below (latest values) stays readable with many series.
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: kind === 'ratio' ? { y: { range: [0, 1] } } : {},
    axes: [{}, { values: (_u, ticks) => kind === 'bytes' || kind === 'byterate' ? byteTicks(ticks, kind === 'byterate' ? '/s' : '') : ticks.map(fmt), size: 90 }],
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, value: (_u, v) => v === null ? '–' : fmt(v) }))]
  }
  // Drawn once the figure is in the page and has a width.
  requestAnimationFrame(() => {
    sweep()
    if (!figure.isConnected) return
    const plot = new uPlot({ ...opts, width: Math.max(280, holder.clientWidth) }, data, holder)
    const resize = new ResizeObserver(() => {
      if (figure.isConnected) plot.setSize({ width: Math.max(280, holder.clientWidth), height: 200 })
    })
    resize.observe(holder)
    drawn.add({ figure, plot, resize })
  })
  return figure
}

// Charts are redrawn on every refresh: the plots of figures no longer in the page let go of their listeners.
const drawn = new Set()

function sweep () {
  for (const d of drawn) {
    if (d.figure.isConnected) continue
    d.resize.disconnect()
    d.plot.destroy()
    drawn.delete(d)
  }
}

/** Byte ticks in one unit, with as many decimals as their step needs (4.055, 4.06, 4.065 GiB rather than 4.06 three times). */
function byteTicks (ticks, suffix) {
  const top = Math.max(...ticks.map(Math.abs))
  const power = top < 1024 ? 0 : Math.min(5, Math.floor(Math.log2(top) / 10))
  const unit = 1024 ** power
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) / unit : 1
  const decimals = power === 0 ? 0 : Math.max(0, Math.min(3, Math.ceil(-Math.log10(step))))
  return ticks.map((v) => `${(v / unit).toFixed(decimals)} ${['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'][power]}${suffix}`)
}

/** The latest value of each series as text: what a screen reader (or a test) reads of the chart. */
function latest (series, fmt) {
  return h('ul', { class: 'latest' }, series.map((s, i) => {
    const last = s.points[s.points.length - 1]
    return h('li', { dataset: { series: s.label } },
      h('span', { class: 'swatch', style: `background:${COLORS[i % COLORS.length]}`, 'aria-hidden': 'true' }), ` ${s.label}: `,
      h('span', { class: 'num' }, last ? fmt(last[1]) : '–'))
  }))
}

/** Series of the answer whose metric is in `metrics`, labelled by metric (and by agent when there are several). */
export function pick (answer, metrics, { byAgent = true } = {}) {
  const chosen = answer.series.filter((s) => metrics.includes(s.metric))
  const several = new Set(chosen.map((s) => s.agent)).size > 1
  return chosen.map((s) => ({
    label: several && byAgent ? `${LABELS[s.metric] ?? s.metric} · ${agentLabel(s.agent)}` : LABELS[s.metric] ?? s.metric,
    points: s.points
  }))
}

/** One series per metric: the sum over the agents at each sampling time (the whole cluster's traffic). */
export function total (answer, metrics) {
  return metrics.map((metric) => {
    const sums = new Map()
    for (const s of answer.series) {
      if (s.metric !== metric) continue
      for (const [t, v] of s.points) sums.set(t, (sums.get(t) ?? 0) + v)
    }
    return { label: LABELS[metric] ?? metric, points: [...sums].sort((a, b) => a[0] - b[0]) }
  }).filter((s) => s.points.length > 0)
}

/** The agents the answer has series of, in order of appearance. */
export function agentsOf (answer) {
  return [...new Set(answer.series.map((s) => s.agent).filter((a) => a !== undefined && a !== null))]
}

/** Redraws `container` with charts built by `build(answer)`, or a notice when the history cannot be had. */
export async function drawHistory (container, metrics, agent, build) {
  try {
    const answer = await loadHistory(metrics, agent)
    replace(container, build(answer))
  } catch (err) {
    if (isMissingEndpoint(err)) replace(container, notice('History is not available on this agent.'))
    else throw err
  }
}
