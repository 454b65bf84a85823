// DOM helpers. Everything the portal shows is built here with createElement and
// textContent: no HTML strings, so data from the API can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(node, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(node, c);
  } else if (child instanceof Node) {
    node.appendChild(child);
  } else {
    node.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') {
      node.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
    } else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'style') {
      throw new Error('inline styles are blocked by the CSP: use a class');
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'disabled' || key === 'hidden') {
      node[key] = value;
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
}

/** h('a', {href: '#/x', class: 'btn'}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs && (attrs instanceof Node || typeof attrs !== 'object' || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element (createElementNS); attributes only, never style. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'style') throw new Error('inline styles are blocked by the CSP');
    node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

let idCounter = 0;
export function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A link; links to other origins get rel="noreferrer" and open in a new tab. */
export function link(href, text, attrs = {}) {
  let external = false;
  try {
    external = new URL(href, location.href).origin !== location.origin;
  } catch {
    external = false;
  }
  const extra = external ? { rel: 'noreferrer', target: '_blank' } : {};
  return h('a', { href, ...extra, ...attrs }, text);
}

export function button(label, onClick, attrs = {}) {
  return h('button', { type: 'button', class: 'btn', ...attrs, onclick: onClick }, label);
}

const STATUS_TEXT = {
  ACTIVE: 'Active',
  INACTIVE: 'Inactive',
  DEACTIVATED: 'Deactivated',
  PENDING: 'Pending',
  IN_FLIGHT: 'In flight',
  SUCCEEDED: 'Succeeded',
  FAILED: 'Failed',
};

const STATUS_TONE = {
  ACTIVE: 'ok',
  SUCCEEDED: 'ok',
  INACTIVE: 'muted',
  PENDING: 'warn',
  IN_FLIGHT: 'info',
  DEACTIVATED: 'bad',
  FAILED: 'bad',
};

/** A status badge: the status in words (the exact API value is the data-status). */
export function badge(status) {
  const tone = STATUS_TONE[status] || 'muted';
  return h(
    'span',
    { class: `badge badge-${tone}`, dataset: { status: status || '' } },
    h('span', { class: 'badge-dot', 'aria-hidden': 'true' }),
    status || 'UNKNOWN',
  );
}

export function statusWords(status) {
  return STATUS_TEXT[status] || status;
}

export function formatTime(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleString(undefined, {
    year: sameYear ? undefined : 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function relativeTime(value) {
  if (!value) return '';
  const d = new Date(value).getTime();
  const diff = (d - Date.now()) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  return rtf.format(Math.round(diff / 86400), 'day');
}

export function time(value) {
  if (!value) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: value, title: relativeTime(value) }, formatTime(value));
}

/** The live region: short messages a screen reader reads, shown as a toast. */
export function announce(message, tone = 'ok') {
  const region = document.getElementById('toast');
  if (!region) return;
  const item = h('div', { class: `toast toast-${tone}` }, message);
  region.appendChild(item);
  setTimeout(() => item.remove(), 5000);
}

/** Copies text with the async clipboard API; says so in the live region. */
export async function copyText(text, what = 'Copied') {
  try {
    await navigator.clipboard.writeText(text);
    announce(`${what} to the clipboard`);
    return true;
  } catch (e) {
    announce('Copying was refused by the browser: select the text and copy it', 'bad');
    return false;
  }
}

export function copyButton(getText, label = 'Copy', what = 'Copied', attrs = {}) {
  const btn = button(label, async () => {
    const ok = await copyText(typeof getText === 'function' ? getText() : getText, what);
    if (ok) {
      btn.textContent = 'Copied';
      setTimeout(() => { btn.textContent = label; }, 1500);
    }
  }, { class: 'btn btn-small', ...attrs });
  return btn;
}

/**
 * A modal confirmation with a real <dialog>: Esc or Cancel says no; the focus starts on
 * Cancel so that Enter never destroys by accident. Resolves true or false.
 */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false, details = null }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const descId = uid('dlg-desc');
    const cancel = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
    const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', value: 'ok' }, confirmLabel);
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': descId },
      h('h2', { id: titleId, class: 'dialog-title' }, title),
      h('div', { id: descId, class: 'dialog-body' }, h('p', message), details),
      h('div', { class: 'dialog-actions' }, cancel, ok));
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener('click', () => finish(false));
    ok.addEventListener('click', () => finish(true));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); finish(false); });
    dialog.addEventListener('close', () => finish(false));
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A panel: a titled section. */
export function panel(title, ...children) {
  const id = uid('panel');
  return h('section', { class: 'panel', 'aria-labelledby': id },
    h('div', { class: 'panel-head' }, h('h2', { id, class: 'panel-title' }, title)),
    h('div', { class: 'panel-body' }, children));
}

export function emptyState(title, text, action = null) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), text ? h('p', { class: 'muted' }, text) : null, action);
}

/** A table that collapses into cards on narrow screens (each cell labelled). */
export function table(columns, rows, { caption = null, className = '' } = {}) {
  const thead = h('thead', h('tr', columns.map((c) => h('th', { scope: 'col', class: c.className }, c.label))));
  const tbody = h('tbody');
  for (const row of rows) {
    const tr = h('tr', { class: row.className || null, dataset: row.dataset || {} });
    columns.forEach((c, i) => {
      const cell = row.cells[i];
      tr.appendChild(h('td', { 'data-label': c.label, class: c.className }, cell));
    });
    tbody.appendChild(tr);
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: ['data', className].filter(Boolean).join(' ') },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null, thead, tbody));
}

export function dl(pairs) {
  const list = h('dl', { class: 'facts' });
  for (const [term, value] of pairs) {
    if (value === null || value === undefined) continue;
    list.appendChild(h('div', { class: 'fact' }, h('dt', term), h('dd', value)));
  }
  return list;
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function alertBox(message, tone = 'bad', title = null) {
  return h('div', { class: `alert alert-${tone}`, role: tone === 'bad' ? 'alert' : 'status' },
    title ? h('strong', { class: 'alert-title' }, title) : null,
    h('span', message));
}
