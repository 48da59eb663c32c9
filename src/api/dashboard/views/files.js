// Files and balls: the namespace (#/files/dir/sub), and for a file its balls
// and the bins and hosts holding each copy.
import { api, isMissingEndpoint, optional } from '../api.js'
import { h, notice, replace, table } from '../dom.js'
import { agentLabel, bytes, count, mode, short, time } from '../format.js'

/** The fragment of a path: each name escaped, so any name survives a bookmark. */
export function fileLink (path) {
  return '#/files' + path.split('/').filter((p) => p !== '').map((p) => '/' + encodeURIComponent(p)).join('')
}

export function mount (root, route) {
  const path = '/' + route.rest.join('/')
  const crumbs = ['/', ...route.rest.map((_, i) => '/' + route.rest.slice(0, i + 1).join('/'))]
  const replication = h('p', { class: 'replication', dataset: { stat: 'under-replicated' } })
  const body = h('div', {})
  replace(root, 
    h('h1', {}, 'Files'),
    h('nav', { 'aria-label': 'Path', class: 'crumbs' }, h('ol', {}, crumbs.map((p, i) =>
      h('li', {}, i === crumbs.length - 1 ? h('span', { 'aria-current': 'page' }, i === 0 ? 'chaac path' : route.rest[i - 1]) : h('a', { href: fileLink(p) }, i === 0 ? 'chaac path' : route.rest[i - 1]))))),
    replication, body)
  return {
    title: `Files ${path}`,
    async refresh () {
      const [node, rep] = await Promise.all([stat(path), optional('/api/v1/replication')])
      replace(replication, rep
        ? [`Cluster-wide: `, h('strong', {}, count(rep.underReplicated)), ` under-replicated of ${count(rep.balls)} balls (${count(rep.missing)} with no copy), ${rep.replicas} replicas wanted.`]
        : 'The count of under-replicated balls is not available on this agent.')
      if (node.error) replace(body, notice(node.error, 'bad'))
      else if (node.type === 'dir') replace(body, listing(path, node))
      else replace(body, await fileView(path, node))
    }
  }
}

async function stat (path) {
  try {
    return await api(`/api/v1/files?path=${encodeURIComponent(path)}`)
  } catch (err) {
    // An agent without the namespace endpoint: the root cannot be listed, but a file's balls can still be shown.
    if (isMissingEndpoint(err)) return path === '/' ? { error: 'Browsing is not available on this agent; open a file by its path (#/files/dir/file).' } : { type: 'file', path, unknown: true }
    if (err.status === 404 || err.status === 400) return { error: err.message }
    throw err
  }
}

// A file of many balls (40 GiB: 10,000) would make a table too long to redraw every 2 s.
const MAX_BALL_ROWS = 1000

function listing (path, dir) {
  if (dir.entries.length === 0) return notice('empty directory')
  const child = (name) => (path === '/' ? '' : path) + '/' + name
  const sorted = [...dir.entries].sort((a, b) => (a.type === 'dir') === (b.type === 'dir') ? a.name.localeCompare(b.name) : a.type === 'dir' ? -1 : 1)
  return [dir.truncated ? notice(`Only the first ${count(dir.entries.length)} entries are listed.`, 'warn') : null, table(`${count(dir.entries.length)} entries in ${path}`, ['name', 'type', 'size', 'modified', 'mode'], sorted.map((e) =>
    h('tr', { dataset: { entry: e.name } },
      h('td', {}, e.type === 'dir' || e.type === 'file' ? h('a', { href: fileLink(child(e.name)) }, e.type === 'dir' ? e.name + '/' : e.name) : e.name),
      h('td', {}, e.type),
      h('td', { class: 'num', dataset: { value: e.size } }, e.type === 'dir' ? '' : bytes(e.size)),
      h('td', {}, time(e.mtime)),
      h('td', { class: 'mono' }, mode(e.mode, e.type)))), { class: 'entries' })]
}

async function fileView (path, file) {
  const loc = await api(`/api/v1/location?path=${encodeURIComponent(path)}`)
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'size'), h('dd', { dataset: { field: 'size', value: loc.size } }, bytes(loc.size)),
    h('dt', {}, 'balls'), h('dd', { dataset: { field: 'balls', value: loc.balls.length } }, count(loc.balls.length)),
    h('dt', {}, 'chunk size'), h('dd', {}, bytes(loc.chunkSize)),
    file.unknown ? null : [h('dt', {}, 'modified'), h('dd', {}, time(file.mtime)), h('dt', {}, 'mode'), h('dd', { class: 'mono' }, mode(file.mode, 'file')), h('dt', {}, 'inode'), h('dd', {}, file.ino)])
  if (loc.inline) return [facts, notice('A small file kept inline in the data pool: it has no balls.')]
  const under = loc.balls.filter((b) => b.underReplicated).length
  return [facts,
    under > 0 ? notice(`${under} of this file's balls are under-replicated.`, 'warn') : null,
    loc.balls.length > MAX_BALL_ROWS ? notice(`The first ${count(MAX_BALL_ROWS)} of ${count(loc.balls.length)} balls:`) : null,
    table(`Balls of ${path}`, ['#', 'offset', 'length', 'ball', 'copies', 'cloud tier', 'state'], loc.balls.slice(0, MAX_BALL_ROWS).map((b) =>
      h('tr', { class: b.underReplicated ? 'under' : '', dataset: { ball: b.id ?? '', index: b.index } },
        h('td', { class: 'num' }, b.index),
        h('td', { class: 'num' }, bytes(b.offset)),
        h('td', { class: 'num' }, bytes(b.length)),
        h('td', { class: 'mono', title: b.id ?? '' }, b.hole ? 'hole' : short(b.id)),
        h('td', {}, copies(b), b.slices?.length ? h('div', { class: 'muted' }, `+ ${b.slices.length} slice(s) written since`) : null),
        h('td', { dataset: { field: 'cloud' } }, b.cloud ? 'yes' : 'no'),
        h('td', {}, b.underReplicated ? h('span', { class: 'badge warn', dataset: { field: 'under' } }, 'under-replicated') : b.hole ? '' : h('span', { class: 'badge alive' }, 'ok'))))
    , { class: 'balls' })]
}

function copies (ball) {
  if (ball.bins.length === 0) return h('span', { class: 'muted' }, 'no copy in a bin')
  return h('ul', { class: 'copies' }, ball.bins.map((bin) =>
    h('li', { dataset: { bin: bin.id, agent: bin.agent ?? '' } },
      bin.agent ? h('a', { href: `#/hosts/${encodeURIComponent(bin.agent)}` }, agentLabel(bin.agent)) : h('span', {}, bin.host ?? 'unknown host'),
      ` ${bin.level ?? '?'} bin `, h('span', { class: 'mono', title: bin.id }, short(bin.id, 10)), ' ',
      h('span', { class: `badge ${bin.cached ? 'cached' : 'durable'}`, dataset: { field: 'kind' } }, bin.cached ? 'cached' : 'durable'))))
}
