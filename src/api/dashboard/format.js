// Numbers as people read them.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function bytes (n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–'
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[u]}`
}

export function percent (f) {
  return typeof f === 'number' && Number.isFinite(f) ? `${Math.round(f * 100)}%` : '–'
}

export function count (n) {
  return typeof n === 'number' ? n.toLocaleString('en') : '–'
}

/** "12 s ago" for a time in ms since the epoch. */
export function ago (ms) {
  if (typeof ms !== 'number') return '–'
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 90) return `${s} s ago`
  if (s < 5400) return `${Math.round(s / 60)} min ago`
  if (s < 129600) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} d ago`
}

export function time (ms) {
  return typeof ms === 'number' ? new Date(ms).toLocaleString('en-GB') : '–'
}

/** A ball or bin id cut to something a table can hold; the whole id goes in a title. */
export function short (id, n = 12) {
  return typeof id === 'string' && id.length > n ? id.slice(0, n) + '…' : String(id ?? '–')
}

/** -rw-r--r-- from a mode number. */
export function mode (m, type) {
  if (typeof m !== 'number') return '–'
  const kind = { dir: 'd', symlink: 'l', file: '-' }[type] ?? '?'
  let s = ''
  for (let i = 8; i >= 0; i--) s += (m >> i) & 1 ? 'rwx'[(8 - i) % 3] : '-'
  return kind + s
}

const names = new Map()

/** Remembers how to call each agent (its host and the start of its id), from /api/v1/agents or /api/v1/bins. */
export function learnAgents (agents) {
  for (const a of agents) names.set(a.id, `${hostName(a)} · ${a.id.slice(0, 8)}`)
}

export function agentLabel (id) {
  return names.get(id) ?? short(id, 8)
}

function hostName (a) {
  const address = a.peer ?? (a.http ? `http://${a.http}` : null)
  try {
    return address ? new URL(address).hostname : a.id.slice(0, 8)
  } catch {
    return a.id.slice(0, 8)
  }
}
