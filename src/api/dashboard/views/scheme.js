// The scheme: the active policy and replica count, what each policy would do
// with a ball now ("what if"), and changing the policy with the admin token.
import { api, isMissingEndpoint, HttpError } from '../api.js'
import { h, notice, replace, table } from '../dom.js'
import { agentLabel, bytes, short } from '../format.js'

// The admin token lives in this page's memory only: never stored, gone on reload.
let token = ''

async function loadScheme () {
  try {
    return await api('/api/v1/scheme')
  } catch (err) {
    if (!isMissingEndpoint(err)) throw err
    const status = await api('/status')
    return { policy: status.cluster.policy, replicas: status.cluster.replicas, policies: [status.cluster.policy], writable: false, missing: true }
  }
}

export function mount (root) {
  const current = h('div', { class: 'scheme-now' })
  const whatIf = h('div', {})
  const change = h('div', {})
  replace(root, h('h1', {}, 'Scheme'), current,
    h('section', { 'aria-labelledby': 'what-if' }, h('h2', { id: 'what-if' }, 'What if: where would a ball go now?'), whatIf),
    h('section', { 'aria-labelledby': 'change' }, h('h2', { id: 'change' }, 'Change the policy'), change))
  let built = false
  return {
    title: 'Scheme',
    async refresh () {
      const scheme = await loadScheme()
      replace(current, h('dl', { class: 'facts big' },
        h('dt', {}, 'policy'), h('dd', { dataset: { field: 'policy' } }, scheme.policy),
        h('dt', {}, 'replicas'), h('dd', { dataset: { field: 'replicas' } }, scheme.replicas),
        h('dt', {}, 'policies'), h('dd', {}, scheme.policies.join(', '))),
      scheme.missing ? notice('The scheme endpoint is not available on this agent: policy and replicas come from /status, and the policy cannot be changed here.') : null)
      // The forms are built once: redrawing them would wipe what the user is typing.
      if (!built) {
        built = true
        replace(whatIf, whatIfForm(scheme))
        replace(change, scheme.missing ? notice('Not available on this agent.') : changeForm(scheme))
      }
    }
  }
}

function whatIfForm (scheme) {
  const size = h('input', { id: 'ball-size', type: 'number', min: 1, step: 'any', value: '4', required: true, inputmode: 'decimal' })
  const unit = h('select', { id: 'ball-unit', 'aria-label': 'unit' }, ['B', 'KiB', 'MiB', 'GiB'].map((u) => h('option', { value: u, selected: u === 'MiB' }, u)))
  const out = h('div', { 'aria-live': 'polite', class: 'what-if-result' })
  const run = async (event) => {
    event.preventDefault()
    const bytesOf = Math.round(Number(size.value) * 1024 ** ['B', 'KiB', 'MiB', 'GiB'].indexOf(unit.value))
    if (!(bytesOf > 0)) {
      replace(out, notice('Give a size above zero.', 'bad'))
      return
    }
    replace(out, h('p', { class: 'muted' }, 'asking every policy…'))
    const rows = await Promise.all(scheme.policies.map(async (policy) => {
      try {
        return { policy, answer: await api('/api/v1/allocation', { method: 'POST', body: { size: bytesOf, policy } }) }
      } catch (err) {
        return { policy, error: err }
      }
    }))
    replace(out, table(`A ball of ${bytes(bytesOf)}, by policy`, ['policy', 'bins it would go to', 'balance before → after'], rows.map(({ policy, answer, error }) =>
      h('tr', { dataset: { policy } },
        h('th', { scope: 'row' }, policy, policy === scheme.policy ? h('span', { class: 'badge self' }, 'active') : null),
        error
          ? h('td', { colspan: 2, class: 'error' }, error instanceof HttpError ? `${error.status}: ${error.message}` : error.message)
          : [h('td', {}, h('ul', { class: 'copies' }, answer.bins.map((b) => h('li', {}, b.agent ? agentLabel(b.agent) : '', ` ${b.level} bin `, h('span', { class: 'mono', title: b.id }, short(b.id, 10)))))),
              h('td', { class: 'num', dataset: { field: 'balance' } }, answer.balance ? `${fmt(answer.balance.before)} → ${fmt(answer.balance.after)}` : '–')])), { class: 'what-if' }))
  }
  return h('form', { onsubmit: run, class: 'inline' },
    h('label', { for: 'ball-size' }, 'Ball size'), size, unit,
    h('button', { type: 'submit' }, 'Compare policies'), out)
}

function fmt (x) {
  return typeof x === 'number' ? x.toFixed(3) : String(x ?? '–')
}

function changeForm (scheme) {
  const select = h('select', { id: 'policy' }, scheme.policies.map((p) => h('option', { value: p, selected: p === scheme.policy }, p)))
  const input = h('input', { id: 'admin-token', type: 'password', autocomplete: 'off', value: token })
  const button = h('button', { type: 'submit', disabled: token === '' }, 'Change policy')
  const out = h('div', { role: 'status', class: 'change-result' })
  input.addEventListener('input', () => {
    token = input.value
    button.disabled = token === ''
  })
  const submit = async (event) => {
    event.preventDefault()
    if (token === '') return
    button.disabled = true
    try {
      const now = await api('/api/v1/scheme', { method: 'PUT', body: { policy: select.value }, token })
      replace(out, h('p', { class: 'notice ok' }, `Done: the policy is now ${now.policy} (${now.replicas} replicas).`))
    } catch (err) {
      const why = err instanceof HttpError
        ? { 401: 'the admin token is wrong', 403: 'this agent has no admin token, so its scheme cannot be changed', 400: 'the agent refused the request' }[err.status]
        : null
      replace(out, h('p', { class: 'notice bad' }, `Refused (${err.status ?? 'no answer'}${why ? `: ${why}` : ''}): ${err.message}`))
    } finally {
      button.disabled = token === ''
    }
  }
  return h('form', { onsubmit: submit, class: 'stack' },
    scheme.writable ? null : notice('This agent was started without an admin token (--admin-token): it will refuse any change (403).', 'warn'),
    h('p', { class: 'muted' }, 'Without the admin token the page is read-only. The token stays in this page only and is sent with the change alone.'),
    h('div', { class: 'inline' }, h('label', { for: 'policy' }, 'Policy'), select),
    h('div', { class: 'inline' }, h('label', { for: 'admin-token' }, 'Admin token'), input),
    h('div', {}, button), out)
}
