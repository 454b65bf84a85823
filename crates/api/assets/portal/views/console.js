// The operator console (admin sessions): stores, backlog, open circuit breakers,
// deactivated subscriptions, nodes, and deliveries per minute over the last hour.

import { h, table, emptyState, link, time, panel, relativeTime, clear, button } from '../dom.js';
import { consoleData } from '../api.js';
import { stackedBars, legend } from '../charts.js';

function storeHref(store, path) {
  return `#/stores/${encodeURIComponent(store)}/${path}`;
}

function metric(label, value, key) {
  return h('div', { class: 'metric metric-card' }, h('span', { class: 'metric-label' }, label), h('span', { class: 'metric-value', 'data-metric': key }, String(value ?? 0)));
}

function draw(data) {
  const b = data.backlog || {};
  const perMinute = (data.deliveriesPerMinute || []).map((m) => ({
    label: new Date(m.minute).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
    short: new Date(m.minute).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }),
    succeeded: m.succeeded,
    failed: m.failed,
  }));
  const totalHour = perMinute.reduce((s, m) => s + m.succeeded + m.failed, 0);
  const failedHour = perMinute.reduce((s, m) => s + m.failed, 0);

  const stores = (data.stores || []).length
    ? table([{ label: 'Store' }, { label: 'Subscriptions', className: 'col-num' }, { label: 'Created' }, { label: 'Open', className: 'col-actions' }],
      data.stores.map((s) => ({
        dataset: { store: s.storeHash },
        cells: [h('a', { href: storeHref(s.storeHash, 'subscriptions') }, h('code', s.storeHash)), String(s.subscriptions ?? 0), time(s.createdAt),
          h('div', { class: 'btn-row' },
            h('a', { class: 'btn btn-small', href: storeHref(s.storeHash, 'log'), 'aria-label': `Delivery log of ${s.storeHash}` }, 'Log'))],
      })), { caption: 'Stores' })
    : emptyState('No stores', 'Stores appear when a token or an event names them.');

  const breakers = (data.breakers || []).length
    ? table([{ label: 'Host' }, { label: 'Endpoint' }, { label: 'Paused until' }],
      data.breakers.map((br) => ({ cells: [h('code', br.host), br.url ? h('code', { class: 'break' }, br.url) : h('span', { class: 'muted' }, 'the whole host'), h('span', time(br.pausedUntil), ' ', h('span', { class: 'muted small' }, relativeTime(br.pausedUntil)))] })),
      { caption: 'Open circuit breakers' })
    : h('p', { class: 'muted', 'data-empty': 'breakers' }, 'No breaker is open: every destination gets its traffic.');

  const deactivated = (data.deactivated || []).length
    ? table([{ label: 'Store' }, { label: 'Subscription' }, { label: 'Deactivated' }],
      data.deactivated.map((d) => ({
        dataset: { subscription: d.id },
        cells: [h('a', { href: storeHref(d.store, 'subscriptions') }, h('code', d.store)),
          h('div', { class: 'dest' },
            h('a', { class: 'dest-link', href: storeHref(d.store, `subscriptions/${encodeURIComponent(d.id)}`) }, d.destination),
            h('span', { class: 'muted small' }, h('code', d.name || d.id), (d.eventTypes || []).length ? ` · ${d.eventTypes.join(', ')}` : '')),
          time(d.deactivatedAt)],
      })), { caption: 'Deactivated subscriptions' })
    : h('p', { class: 'muted', 'data-empty': 'deactivated' }, 'No subscription is deactivated.');

  const nodes = (data.nodes || []).length
    ? table([{ label: 'Node' }, { label: 'Last heartbeat' }],
      data.nodes.map((n) => ({ cells: [h('code', n.node), h('span', time(n.heartbeatAt), ' ', h('span', { class: 'muted small' }, relativeTime(n.heartbeatAt)))] })),
      { caption: 'Nodes' })
    : h('p', { class: 'muted' }, 'One node on SQLite: there are no heartbeats to show.');

  return h('div', { class: 'stack' },
    h('div', { class: 'metrics metrics-4', 'aria-label': 'Backlog by state' },
      metric('Due now', b.due, 'due'), metric('Scheduled', b.scheduled, 'scheduled'),
      metric('Parked', b.parked, 'parked'), metric('In flight', b.inFlight, 'inFlight')),
    panel('Delivery attempts per minute, last hour',
      h('p', { class: 'muted small' }, `${totalHour} attempts, ${failedHour} failed, across every store.`),
      h('figure', { class: 'chart-figure', 'data-chart': 'per-minute' }, stackedBars(perMinute, { title: 'Delivery attempts per minute, last hour', height: 140 }), h('figcaption', legend()))),
    h('div', { class: 'grid-2' },
      h('div', { class: 'stack' }, panel('Stores', stores), panel('Nodes', nodes)),
      h('div', { class: 'stack' }, panel('Open circuit breakers', breakers), panel('Deactivated subscriptions', deactivated))));
}

export async function render(ctx) {
  ctx.title('Operator console');
  const root = h('div', { class: 'page', 'data-console': '' });
  const updated = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const refresh = button('Refresh', () => load(), { class: 'btn btn-small btn-ghost', 'data-action': 'refresh' });
  root.appendChild(h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, 'Operator console'), h('p', { class: 'page-subtitle' }, 'Every store on this hookrelay, and how delivery is going. ', updated)),
    h('div', { class: 'page-actions' }, refresh)));
  const body = h('div');
  root.appendChild(body);
  let shown = null;
  async function load() {
    const data = await consoleData();
    if (!ctx.isCurrent()) return;
    // Redrawn only when something changed (the focus stays put otherwise).
    const snapshot = JSON.stringify(data);
    if (snapshot !== shown) {
      shown = snapshot;
      clear(body).appendChild(draw(data));
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  }
  await load();
  const timer = setInterval(() => load().catch(() => {}), 10000);
  ctx.onCleanup(() => clearInterval(timer));
  return root;
}

export { link };
