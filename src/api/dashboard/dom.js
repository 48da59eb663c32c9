// Builds DOM nodes from data without innerHTML: every string the API sends
// becomes a text node, never markup.

/** h('a', { href: '#/x', class: 'c', onclick: fn }, 'text', child, [more]) */
export function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value)
    else if (name === 'dataset') Object.assign(el.dataset, value)
    else if (name === 'value') el.value = value
    else el.setAttribute(name, value === true ? '' : String(value))
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/**
 * Replaces a container's children, keeping the keyboard focus on the element
 * that stands for the same thing (same data-key or href) in the new content:
 * views redraw every few seconds and must not throw the focus away.
 */
export function replace (container, ...children) {
  const active = document.activeElement
  const key = active && container.contains(active) ? keyOf(active) : null
  container.replaceChildren()
  append(container, children)
  if (key !== null) {
    const again = [...container.querySelectorAll('a, button, input, select, [tabindex]')].find((el) => keyOf(el) === key)
    again?.focus({ preventScroll: true })
  }
}

function keyOf (el) {
  return el.dataset?.key || el.getAttribute('href') || el.id || null
}

/** A horizontal bar for a fraction 0..1, readable by screen readers as a meter. */
export function bar (fraction, label, { warnAt = 0.7, badAt = 0.9 } = {}) {
  const f = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0
  const level = f >= badAt ? 'bad' : f >= warnAt ? 'warn' : 'ok'
  return h('div', { class: `bar ${level}`, role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(f * 100) },
    h('div', { class: 'fill', style: `width:${(f * 100).toFixed(1)}%` }))
}

export function table (caption, headers, rows, attrs = {}) {
  // Focusable, so that a keyboard can scroll a wide table sideways on a phone.
  return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': caption ?? 'table', dataset: { key: `table:${caption}` } },
    h('table', attrs,
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)))
}

/** A notice in place of a view's part that this agent cannot answer. */
export function notice (text, kind = 'info') {
  return h('p', { class: `notice ${kind}` }, text)
}
