// The event-type catalog (`eventTypes`) with the wildcards it allows, and a picker for it.

import { h, uid } from './dom.js';
import { gql } from './api.js';

const cache = new Map();

/** Every subscribable name: the catalog's types, and `prefix/*` for every prefix. */
export async function loadCatalog(store) {
  if (!cache.has(store)) {
    cache.set(store, gql(store, 'query EventTypes { eventTypes }').then((data) => {
      const types = data.eventTypes.slice().sort();
      const wildcards = new Set();
      for (const t of types) {
        const parts = t.split('/');
        for (let i = 1; i < parts.length; i++) wildcards.add(`${parts.slice(0, i).join('/')}/*`);
      }
      return { types, wildcards: [...wildcards].sort() };
    }).catch((e) => {
      cache.delete(store);
      throw e;
    }));
  }
  return cache.get(store);
}

function describe(name) {
  if (name.endsWith('/*')) return `every event under ${name.slice(0, -1)}`;
  return null;
}

/**
 * A filterable list of event types and wildcards: checkboxes (`multiple`) or radios.
 * `el.values()` answers the chosen names in the order chosen.
 */
export function eventPicker({ catalog, multiple, selected = [], name = uid('evt'), scopesFirst = !multiple }) {
  const chosen = [...selected];
  const filter = h('input', { type: 'search', class: 'input', placeholder: 'Filter: order, store/cart/*, REFUND…', 'aria-label': 'Filter event types' });
  const list = h('div', { class: 'picker-list', role: 'group', 'aria-label': 'Event types' });
  const summary = h('p', { class: 'picker-summary', 'aria-live': 'polite' });
  const all = [];
  // Buy with Prime descriptors first, then BigCommerce scopes with their wildcards.
  const bwp = catalog.types.filter((t) => !t.includes('/'));
  const scoped = [...catalog.types.filter((t) => t.includes('/')), ...catalog.wildcards].sort((a, b) => {
    const ka = a.endsWith('/*') ? a.slice(0, -1) : a;
    const kb = b.endsWith('/*') ? b.slice(0, -1) : b;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  for (const s of selected) if (!catalog.types.includes(s) && !catalog.wildcards.includes(s)) scoped.unshift(s);

  function renderSummary() {
    summary.textContent = chosen.length ? `Selected: ${chosen.join(', ')}` : 'Nothing selected yet.';
  }

  function option(value) {
    const id = uid('opt');
    const box = h('input', { type: multiple ? 'checkbox' : 'radio', name, id, value, checked: chosen.includes(value) });
    box.addEventListener('change', () => {
      if (multiple) {
        const i = chosen.indexOf(value);
        if (box.checked && i < 0) chosen.push(value);
        if (!box.checked && i >= 0) chosen.splice(i, 1);
      } else {
        chosen.splice(0, chosen.length, value);
      }
      renderSummary();
    });
    const note = describe(value);
    const row = h('div', { class: ['picker-option', value.endsWith('/*') ? 'is-wildcard' : ''] },
      box, h('label', { for: id }, h('code', value), note ? h('span', { class: 'muted' }, ` ${note}`) : null));
    all.push({ value, row, box });
    return row;
  }

  const groups = [['Buy with Prime events', bwp], ['BigCommerce scopes', scoped]];
  if (scopesFirst) groups.reverse();
  for (const [heading, names] of groups) {
    if (!names.length) continue;
    list.appendChild(h('p', { class: 'picker-heading' }, heading));
    for (const t of names) list.appendChild(option(t));
  }
  // Once shown, the first chosen name is scrolled into the list's view.
  const firstChosen = all.find((o) => chosen.includes(o.value));
  if (firstChosen) {
    let frames = 0;
    const scroll = () => {
      if (!list.isConnected) {
        frames += 1;
        if (frames < 120) requestAnimationFrame(scroll);
        return;
      }
      list.scrollTop = Math.max(0, firstChosen.row.offsetTop - list.offsetTop - 40);
    };
    requestAnimationFrame(scroll);
  }

  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const o of all) o.row.hidden = q !== '' && !o.value.toLowerCase().includes(q);
  });

  renderSummary();
  const el = h('div', { class: 'picker' }, filter, list, summary);
  el.values = () => [...chosen];
  el.invalidTargets = () => [filter];
  el.focusFirst = () => filter.focus();
  el.reset = (values) => {
    chosen.splice(0, chosen.length, ...values);
    for (const o of all) o.box.checked = chosen.includes(o.value);
    renderSummary();
  };
  return el;
}

export function clearCatalogCache() {
  cache.clear();
}
