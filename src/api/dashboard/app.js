// The dashboard: one page, a view per URL fragment (#/hosts, #/hosts/AGENT,
// #/files/dir/sub, #/traffic, #/scheme, #/zones?k=3), each redrawn from the
// JSON API every two seconds while it is shown.
import { api, onReachability, Unreachable } from './api.js'
import { h, notice, replace } from './dom.js'
import { time } from './format.js'
import * as files from './views/files.js'
import * as hosts from './views/hosts.js'
import * as scheme from './views/scheme.js'
import * as traffic from './views/traffic.js'
import * as zones from './views/zones.js'

const VIEWS = { hosts, files, traffic, scheme, zones }
const TICK_MS = 2000

const main = document.getElementById('view')
const banner = document.getElementById('banner')
let lastAnswer = null
let generation = 0

function parseHash () {
  const raw = location.hash.replace(/^#\/?/, '')
  const cut = raw.indexOf('?')
  const path = cut < 0 ? raw : raw.slice(0, cut)
  const parts = path.split('/').filter((p) => p !== '').map((p) => {
    try {
      return decodeURIComponent(p)
    } catch {
      return p
    }
  })
  return { name: parts[0] ?? 'hosts', rest: parts.slice(1), params: new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1)) }
}

function show (byUser) {
  const route = parseHash()
  const view = VIEWS[route.name]
  if (!view) {
    location.replace('#/hosts')
    return
  }
  const mine = ++generation
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === route.name) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  const error = h('div', { class: 'view-error', 'aria-live': 'polite' })
  const body = h('div', { class: 'view-body' })
  main.replaceChildren(error, body)
  main.dataset.view = route.name
  const instance = view.mount(body, route)
  document.title = `${instance.title} · Chaac`
  // After a click on a link, the keyboard goes on from the new view, not from the top of the page.
  if (byUser) main.focus({ preventScroll: true })
  void loop(instance, error, mine)
}

async function loop (instance, error, mine) {
  for (let tick = 0; mine === generation; tick++) {
    const status = api('/status').then(header, () => {})
    try {
      await instance.refresh(tick)
      replace(error)
    } catch (err) {
      // Unreachable: the banner says so and the view keeps what it last showed.
      if (!(err instanceof Unreachable) && mine === generation) replace(error, notice(err.message, 'bad'))
    }
    await status
    await new Promise((resolve) => setTimeout(resolve, TICK_MS))
  }
  instance.destroy?.()
}

function header (status) {
  lastAnswer = Date.now()
  document.getElementById('agent-id').textContent = `agent ${status.agent.id.slice(0, 8)} · v${status.agent.version}`
  document.getElementById('updated').textContent = `updated ${new Date(lastAnswer).toLocaleTimeString('en-GB')}`
}

onReachability((ok) => {
  banner.hidden = ok
  document.body.classList.toggle('offline', !ok)
  replace(banner, ok ? null : `Agent unreachable, retrying every ${TICK_MS / 1000} s. ${lastAnswer ? `Showing what it said at ${time(lastAnswer)}.` : ''}`)
})

// The skip link moves the focus without touching the fragment, which names the view.
document.getElementById('skip').addEventListener('click', (event) => {
  event.preventDefault()
  main.focus()
})
window.addEventListener('hashchange', () => show(true))
show(false)
