// Zones: hosts and containers ranked by their context and grouped into k
// zones (#/zones?k=3), from GET /api/v1/zones.
import { api, isMissingEndpoint } from '../api.js'
import { bar, h, notice, replace, table } from '../dom.js'
import { agentLabel, percent } from '../format.js'
import { loadAgents } from './hosts.js'

const ZONE_COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#a16207', '#db2777']

export function mount (root, route) {
  const k = Math.max(1, Math.min(64, Number.parseInt(route.params.get('k') ?? '3', 10) || 3))
  const input = h('input', { id: 'zones-k', type: 'number', min: 1, max: 64, value: String(k), required: true })
  const body = h('div', {})
  replace(root, h('h1', {}, 'Zones'),
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = `#/zones?k=${input.value}` } },
      h('label', { for: 'zones-k' }, 'Number of zones (k)'), input, h('button', { type: 'submit' }, 'Group')),
    body)
  return {
    title: `Zones (k=${k})`,
    async refresh (tick) {
      if (tick % 2 !== 0) return
      let answer
      try {
        if (tick === 0) await loadAgents().catch(() => {})
        answer = await api(`/api/v1/zones?k=${k}`)
      } catch (err) {
        if (isMissingEndpoint(err)) return replace(body, notice('Zones are not available on this agent.'))
        if (err.status === 400) return replace(body, notice(err.message, 'bad'))
        throw err
      }
      replace(body, render(answer))
    }
  }
}

function render ({ k, factors, members, zones }) {
  const byId = new Map(members.map((m) => [m.id, m]))
  const color = (zone) => ZONE_COLORS[zone % ZONE_COLORS.length]
  const name = (m) => m.kind === 'host' ? agentLabel(m.agent ?? m.id) : m.name ?? m.id
  const value = (ctx, f) => typeof ctx?.[f] === 'number' && f.startsWith('uf') ? percent(ctx[f]) : typeof ctx?.[f] === 'number' ? ctx[f].toFixed(2) : '–'
  return [
    h('p', {}, `${members.length} members in ${zones.length} zones (k = ${k}), by ${factors.join(', ')}.`),
    h('div', { class: 'zones' }, zones.map((z) => h('section', { class: 'zone', style: `border-top-color:${color(z.zone)}`, dataset: { zone: z.zone } },
      h('h2', {}, `Zone ${z.zone}`),
      h('dl', { class: 'centroid' }, factors.map((f) => [h('dt', {}, f), h('dd', {}, f.startsWith('uf') ? bar(z.centroid[f], `${f} of zone ${z.zone}`) : null, ' ', value(z.centroid, f))])),
      h('ul', {}, z.members.map((id) => {
        const m = byId.get(id)
        return h('li', { dataset: { member: id } }, m ? `${name(m)} (${m.kind})` : id)
      }))))),
    table('Ranked by context (best first)', ['rank', 'member', 'kind', 'agent', 'score', 'zone', ...factors],
      [...members].sort((a, b) => a.rank - b.rank).map((m) => h('tr', { dataset: { member: m.id, zone: m.zone } },
        h('td', { class: 'num' }, m.rank),
        h('td', {}, m.kind === 'host' ? h('a', { href: `#/hosts/${encodeURIComponent(m.agent ?? m.id)}` }, name(m)) : name(m)),
        h('td', {}, m.kind),
        h('td', {}, m.agent ? agentLabel(m.agent) : '–'),
        h('td', { class: 'num' }, typeof m.score === 'number' ? m.score.toFixed(3) : '–'),
        h('td', {}, h('span', { class: 'swatch', style: `background:${color(m.zone)}`, 'aria-hidden': 'true' }), ` ${m.zone}`),
        factors.map((f) => h('td', { class: 'num' }, value(m.context, f))))), { class: 'ranked' })
  ]
}
