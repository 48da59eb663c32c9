// Hosts and bins: every agent with its state, live context and bins
// (#/hosts), or one agent with its history (#/hosts/AGENT).
import { api, optional } from '../api.js'
import { BYTES, FACTORS, FREE, READS, chart, drawHistory, pick } from '../charts.js'
import { bar, h, notice, replace, table } from '../dom.js'
import { agentLabel, ago, bytes, count, learnAgents, percent, short, time } from '../format.js'

const FACTOR_NAMES = ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet']

/** Every agent of the cluster: GET /api/v1/agents, or on an agent without it, pieced together from /api/v1/bins and /status. */
export async function loadAgents () {
  const answer = await optional('/api/v1/agents')
  if (answer !== null) {
    learnAgents(answer.agents)
    return { agents: answer.agents, pieced: false }
  }
  const [{ bins }, status] = await Promise.all([api('/api/v1/bins'), api('/status')])
  const agents = status.cluster.agents.map((a) => {
    const own = bins.filter((b) => b.agent === a.id)
    return { id: a.id, peer: a.peer, http: a.http, state: a.alive ? 'alive' : 'gone', seenAt: a.seenAt, startedAt: null, context: own[0]?.context ?? null, bins: own, self: a.id === status.agent.id }
  })
  learnAgents(agents)
  return { agents, pieced: true }
}

export function mount (root, route) {
  const id = route.rest[0]
  const summary = h('div', { class: 'summary', 'aria-live': 'off' })
  const list = h('div', { class: 'hosts' })
  const history = h('div', { class: 'charts' })
  replace(root, 
    h('h1', {}, id ? 'Host ' : 'Hosts and bins', id ? h('span', { class: 'mono' }, short(id, 8)) : null),
    id ? h('p', {}, h('a', { href: '#/hosts' }, '← all hosts')) : null,
    summary, list,
    id ? h('h2', {}, 'Over the last hour') : null,
    id ? history : null)
  return {
    title: id ? `Host ${short(id, 8)}` : 'Hosts',
    async refresh (tick) {
      const [{ agents, pieced }, replication] = await Promise.all([loadAgents(), optional('/api/v1/replication')])
      const shown = id ? agents.filter((a) => a.id === id) : agents
      replace(summary, id ? null : totals(agents, replication, pieced))
      replace(list, shown.length === 0 ? notice(`No agent ${id} in this cluster.`, 'bad') : shown.map(card))
      if (id && tick % 5 === 0) {
        await drawHistory(history, [...READS, ...BYTES, ...FACTORS, ...FREE], id, (answer) => [
          chart('Context', pick(answer, FACTORS), 'ratio'),
          chart('Free space', pick(answer, FREE), 'bytes'),
          chart('Read outcomes (balls)', pick(answer, READS), 'rate'),
          chart('Bytes read and written', pick(answer, BYTES), 'byterate')
        ])
      }
    }
  }
}

function totals (agents, replication, pieced) {
  const bins = agents.flatMap((a) => a.bins)
  const states = (s) => agents.filter((a) => a.state === s).length
  const item = (label, value, key) => h('div', { class: 'stat', dataset: { stat: key } }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value))
  return [
    item('agents', `${agents.length} (${states('alive')} alive, ${states('suspect')} suspect, ${states('gone')} gone)`, 'agents'),
    item('bins', count(bins.length), 'bins'),
    item('used', `${bytes(sum(bins, 'used'))} of ${bytes(sum(bins, 'capacity'))}`, 'used'),
    item('balls in bins', count(sum(bins, 'balls')), 'balls'),
    replication
      ? item('under-replicated balls', `${count(replication.underReplicated)} of ${count(replication.balls)} (${count(replication.missing)} missing, ${replication.replicas} replicas wanted)`, 'under-replicated')
      : item('under-replicated balls', 'not available on this agent', 'under-replicated'),
    pieced ? notice('This agent has no /api/v1/agents: hosts are pieced together from its bins (no suspect state, no start time).') : null
  ]
}

function sum (list, field) {
  return list.reduce((n, x) => n + (typeof x[field] === 'number' ? x[field] : 0), 0)
}

function card (a) {
  const c = a.context
  const free = c ? c.freeBytes ?? c.diskFree : undefined
  return h('section', { class: `host state-${a.state}`, dataset: { agent: a.id, state: a.state }, 'aria-labelledby': `host-${a.id}` },
    h('header', {},
      h('h2', { id: `host-${a.id}` }, h('a', { href: `#/hosts/${encodeURIComponent(a.id)}`, title: a.id }, agentLabel(a.id))),
      h('span', { class: `badge ${a.state}`, dataset: { field: 'state' } }, a.state),
      a.self ? h('span', { class: 'badge self' }, 'serving this page') : null),
    h('dl', { class: 'facts' },
      fact('id', h('span', { class: 'mono' }, a.id)),
      fact('peers', a.peer ?? '–'),
      fact('HTTP', a.http ?? '–'),
      fact('last report', ago(a.seenAt)),
      a.startedAt ? fact('started', time(a.startedAt)) : null),
    c
      ? h('div', { class: 'context', role: 'group', 'aria-label': `context of ${agentLabel(a.id)}` },
        FACTOR_NAMES.map((f) => h('div', { class: 'factor', dataset: { factor: f } },
          h('span', { class: 'label' }, f), bar(c[f], `${f} of ${agentLabel(a.id)}`), h('span', { class: 'num' }, percent(c[f])))),
        h('div', { class: 'factor', dataset: { factor: 'free' } }, h('span', { class: 'label' }, 'free'), h('span', { class: 'num wide' }, bytes(free))))
      : notice('no context reported yet'),
    table(`Bins of ${agentLabel(a.id)}`, ['bin', 'level', 'where', 'capacity', 'used', 'balls'], a.bins.map((b) =>
      h('tr', { dataset: { bin: b.id } },
        h('td', { class: 'mono nowrap', title: b.id }, short(b.id, 8)),
        h('td', {}, b.level),
        h('td', { class: 'path' }, h('span', { class: 'muted' }, b.container ? 'container ' : 'directory '), b.container ? b.container.name ?? b.container : b.dir),
        h('td', { class: 'num', dataset: { field: 'capacity', value: b.capacity } }, bytes(b.capacity)),
        h('td', { class: 'used', dataset: { field: 'used', value: b.used } }, bar(b.capacity > 0 ? b.used / b.capacity : 0, `used of bin ${b.id}`), ' ', h('span', { class: 'num' }, bytes(b.used))),
        h('td', { class: 'num', dataset: { field: 'balls', value: b.balls } }, count(b.balls)))), { class: 'bins' }))
}

function fact (name, value) {
  return [h('dt', {}, name), h('dd', {}, value)]
}
