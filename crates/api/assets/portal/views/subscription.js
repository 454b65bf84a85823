// One subscription: its details (delivery options included), state controls, signing
// secret or public key, health and test event.

import { h, badge, link, dl, panel, time, button, announce } from '../dom.js';
import { getSubscription, statsFor, styleName } from '../model.js';
import { stateButton, deleteButton, secretPanel, testEventPanel, healthBody } from '../components.js';
import { eventsCell } from './subscriptions.js';

const SCHEME_NAMES = { HMAC_SHA256: 'HMAC-SHA256', ED25519: 'Ed25519' };

function orderedFact(sub) {
  return sub.ordered
    ? h('span', { 'data-ordered': 'true' }, 'Yes: events with the same orderingKey go one at a time, in order')
    : h('span', { class: 'muted', 'data-ordered': 'false' }, 'No');
}

function rateLimitFact(sub) {
  const n = sub.rateLimit;
  if (n === null || n === undefined) return h('span', { class: 'muted', 'data-rate-limit': '' }, 'none');
  return h('span', { 'data-rate-limit': String(n) }, n === 1 ? '1 request per second' : `${n} requests per second`);
}

function schemeFact(sub) {
  return h('span', { 'data-signature-scheme': sub.signatureScheme }, SCHEME_NAMES[sub.signatureScheme] || sub.signatureScheme);
}

export async function render(ctx) {
  const sub = await getSubscription(ctx.store, ctx.params.id);
  ctx.title(sub.destination);
  const root = h('div', { class: 'page', 'data-subscription': sub.id });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    link(ctx.href('subscriptions'), 'Subscriptions'), h('span', { 'aria-hidden': 'true' }, ' / '), h('code', sub.id)));

  const editable = sub.style === 'bigcommerce' && sub.kind === 'https';
  const actions = h('div', { class: 'btn-row' },
    stateButton(ctx.store, sub, () => ctx.refresh()),
    editable ? h('a', { class: 'btn btn-small', href: ctx.href(`subscriptions/${encodeURIComponent(sub.id)}/edit`), 'data-action': 'edit' }, 'Edit') : null,
    h('a', { class: 'btn btn-small', href: `${ctx.href('log')}?subscription=${encodeURIComponent(sub.id)}`, 'data-action': 'view-log' }, 'Delivery log'),
    deleteButton(ctx.store, sub, () => ctx.go('subscriptions')));
  root.appendChild(h('div', { class: 'page-head' },
    h('div', { class: 'page-head-main' },
      h('h1', { class: 'page-title dest-title' }, sub.destination),
      h('p', { class: 'page-subtitle' }, badge(sub.status), ' ', styleName(sub))),
    h('div', { class: 'page-actions' }, actions)));

  if (sub.status === 'DEACTIVATED') {
    root.appendChild(h('div', { class: 'alert alert-bad', role: 'status' },
      h('strong', { class: 'alert-title' }, 'Deactivated'),
      h('span', 'Every retry of a delivery failed, so hookrelay stopped sending. Deliveries that were waiting are parked: Reactivate sends them.')));
  }

  const details = panel('Details', dl([
    ['ID', h('code', sub.id)],
    ['Kind', styleName(sub)],
    [sub.style === 'bigcommerce' ? 'Scope' : 'Event types', eventsCell(sub.eventTypes)],
    ['Destination', h('code', { class: 'break' }, sub.destination)],
    sub.arn && sub.arn !== sub.destination ? ['ARN', h('code', { class: 'break' }, sub.arn)] : [null, null],
    sub.region ? ['Region', sub.region] : [null, null],
    sub.method ? ['Method', sub.method] : [null, null],
    sub.kind === 'https' ? ['Auth profile', sub.authProfileId ? link(ctx.href(`auth-profiles/${encodeURIComponent(sub.authProfileId)}`), sub.authProfileId) : h('span', { class: 'muted' }, 'none')] : [null, null],
    sub.kind === 'https' ? ['Custom headers', sub.headers.length
      ? h('ul', { class: 'plain' }, sub.headers.map((kv) => h('li', h('code', `${kv.key}: ${kv.value}`))))
      : h('span', { class: 'muted' }, 'none')] : [null, null],
    ['Ordered by key', orderedFact(sub)],
    ['Rate limit', rateLimitFact(sub)],
    sub.kind === 'https' && sub.signatureScheme ? ['Signature', schemeFact(sub)] : [null, null],
    ['Created', time(sub.createdAt)],
    ['Updated', time(sub.updatedAt)],
  ].filter(([k]) => k)));

  const healthHolder = h('div', { 'data-health': '' }, h('p', { class: 'muted' }, 'Loading…'));
  const reload = button('Refresh', () => loadHealth(), { class: 'btn btn-small btn-ghost', 'data-action': 'refresh-health' });
  const health = panel('Health, last 24 hours', healthHolder);
  health.querySelector('.panel-head').appendChild(reload);

  async function loadHealth() {
    try {
      const stats = await statsFor(ctx.store, [sub.id]);
      if (!ctx.isCurrent()) return;
      healthHolder.replaceChildren(healthBody(stats[sub.id]));
    } catch (e) {
      healthHolder.replaceChildren(h('p', { class: 'muted' }, `Health is not available: ${e.message}`));
    }
  }
  loadHealth();

  root.appendChild(h('div', { class: 'grid-2' },
    h('div', { class: 'stack' }, details, secretPanel(ctx.store, sub, () => announce(sub.signatureScheme === 'ED25519' ? 'Receivers should accept the new public key now' : 'Receivers should accept the new secret now'))),
    h('div', { class: 'stack' }, health, testEventPanel(ctx.store, sub, ctx))));
  return root;
}
