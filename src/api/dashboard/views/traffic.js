// Traffic over the last hour: read outcomes and bytes read and written (the
// whole cluster's; each agent's on its host page) and each host's context,
// from GET /api/v1/history (redrawn every 10 s).
import { BYTES, FACTORS, FREE, READS, agentsOf, chart, drawHistory, pick, total } from '../charts.js'
import { h, replace } from '../dom.js'
import { agentLabel } from '../format.js'
import { loadAgents } from './hosts.js'

export function mount (root) {
  const charts = h('div', { class: 'charts' })
  const span = h('p', { class: 'muted' })
  replace(root, h('h1', {}, 'Traffic over the last hour'), span, charts)
  return {
    title: 'Traffic',
    async refresh (tick) {
      if (tick % 5 !== 0) return
      // For the agents' names in the legends.
      await loadAgents().catch(() => {})
      await drawHistory(charts, [...READS, ...BYTES, ...FACTORS, ...FREE], undefined, (answer) => {
        const first = Math.min(...answer.series.map((s) => s.points[0]?.[0] ?? Infinity))
        const last = Math.max(...answer.series.map((s) => s.points[s.points.length - 1]?.[0] ?? -Infinity))
        replace(span, Number.isFinite(first)
          ? `Sampled every ${answer.interval} s, from ${clock(first)} to ${clock(last)} (an agent keeps an hour).`
          : `Sampled every ${answer.interval} s; no samples yet.`)
        return [
          chart('Read outcomes (balls), all agents', total(answer, READS), 'rate'),
          chart('Bytes read and written, all agents', total(answer, BYTES), 'byterate'),
          chart('Free space', pick(answer, FREE), 'bytes'),
          ...agentsOf({ series: answer.series.filter((s) => FACTORS.includes(s.metric)) }).map((agent) =>
            chart(`Context of ${agentLabel(agent)}`, pick({ series: answer.series.filter((s) => s.agent === agent) }, FACTORS), 'ratio'))
        ]
      })
    }
  }
}

function clock (ms) {
  return new Date(ms).toLocaleTimeString('en-GB')
}
