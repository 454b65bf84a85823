// The delivery log: filters, pages, each delivery's attempts, Retry, and Replay of the
// failed ones in a time range.

import { h, badge, table, emptyState, button, link, announce, clear, alertBox, time, uid, copyButton, dl, confirmDialog, panel } from '../dom.js';
import { gql, ApiError } from '../api.js';
import { Form, select, input } from '../forms.js';
import { curlCommand } from '../curl.js';
import { allSubscriptions, getDelivery, capabilities, DELIVERY_FIELDS, ATTEMPT_FIELDS } from '../model.js';

const STATUSES = ['PENDING', 'IN_FLIGHT', 'SUCCEEDED', 'FAILED'];
const PAGE = 25;
const cursorStacks = new Map();

export const RETRY = `mutation RetryDelivery($id: String!) {
  retryDelivery(id: $id) { id status attemptCount nextAttemptAt }
}`;

/** Says what a Retry did, from the delivery the API answered. */
export function retryOutcome(d) {
  if (d.status === 'PENDING' && !d.nextAttemptAt) {
    return ['Parked: its subscription is deactivated. Reactivate the subscription to send it.', 'bad'];
  }
  if (d.status === 'PENDING' && new Date(d.nextAttemptAt).getTime() - Date.now() > 5000) {
    return [`Not sent now: it is already waiting for its next attempt at ${new Date(d.nextAttemptAt).toLocaleTimeString()}.`, 'bad'];
  }
  return ['Retry started', 'ok'];
}

/** datetime-local value (local time) → RFC 3339, or null. */
function toIso(local) {
  if (!local) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** RFC 3339 → a datetime-local value in local time. */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function responseBody(body) {
  if (body === null || body === undefined || body === '') return h('span', { class: 'muted' }, 'empty');
  const pre = h('pre', { class: 'code code-body', 'data-response-body': '' }, body);
  if (body.length <= 300) return pre;
  return h('details', { class: 'body-details' }, h('summary', `${body.length} characters`), pre);
}

export function attemptsTable(attempts) {
  if (!attempts.length) return h('p', { class: 'muted' }, 'No attempt yet.');
  return table([
    { label: '#', className: 'col-num' },
    { label: 'Started' },
    { label: 'Status code' },
    { label: 'Duration' },
    { label: 'Error' },
    { label: 'Response body' },
  ], attempts.map((a, i) => ({
    className: a.error ? 'attempt attempt-failed' : 'attempt attempt-ok',
    cells: [
      String(i + 1),
      time(a.startedAt),
      a.statusCode ? h('strong', { class: a.statusCode >= 200 && a.statusCode < 300 ? 'code-ok' : 'code-bad', 'data-status-code': String(a.statusCode) }, String(a.statusCode)) : h('span', { class: 'muted' }, 'no answer'),
      `${a.durationMs} ms`,
      a.error ? h('span', { class: 'error-text', 'data-attempt-error': '' }, a.error) : h('span', { class: 'muted' }, '—'),
      responseBody(a.responseBody),
    ],
  })), { caption: 'Attempts', className: 'attempts-table' });
}

function deliveryFacts(d, ctx, subName) {
  return dl([
    ['Delivery ID', h('code', d.id)],
    ['Event', h('span', h('code', d.eventType), ' ', h('span', { class: 'muted small' }, d.eventId))],
    ['Subscription', link(ctx.href(`subscriptions/${encodeURIComponent(d.subscriptionId)}`), subName || d.subscriptionId)],
    ['Created', time(d.createdAt)],
    ['Attempts', String(d.attemptCount)],
    d.nextAttemptAt ? ['Next attempt', time(d.nextAttemptAt)] : [null, null],
  ].filter(([k]) => k));
}

export async function render(ctx) {
  ctx.title('Delivery log');
  const q = ctx.query;
  const filters = {
    subscription: q.get('subscription') || '',
    status: STATUSES.includes(q.get('status')) ? q.get('status') : '',
    since: q.get('since') || '',
    until: q.get('until') || '',
    // The latest first unless asked otherwise.
    order: q.get('order') === 'oldest' ? 'oldest' : 'newest',
  };
  const after = q.get('after') || null;
  const filterKey = JSON.stringify(filters);
  if (!cursorStacks.has(filterKey)) cursorStacks.set(filterKey, []);
  const stack = cursorStacks.get(filterKey);
  if (!after) stack.length = 0;

  const [subs, caps] = await Promise.all([
    allSubscriptions(ctx.store),
    capabilities(ctx.store).catch(() => null),
  ]);
  const serverRange = !!(caps && caps.has('query', 'deliveries', 'since') && caps.has('query', 'deliveries', 'until'));
  const serverOrder = !!(caps && caps.has('query', 'deliveries', 'newestFirst'));
  const newestFirst = serverOrder && filters.order === 'newest';
  const byId = new Map(subs.map((s) => [s.id, s]));
  const nameOf = (id) => (byId.get(id) ? byId.get(id).destination : id);

  const root = h('div', { class: 'page' });
  root.appendChild(h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, 'Delivery log'),
      h('p', { class: 'page-subtitle' }, `Every delivery of an event to a subscription, with each attempt. ${newestFirst ? 'Newest' : 'Oldest'} first.`))));

  // Filters.
  const subSelect = select([{ value: '', label: 'All subscriptions' }, ...subs.map((s) => ({ value: s.id, label: `${s.destination} (${s.eventTypes.join(', ')})` }))], { name: 'subscription', id: uid('f') }, filters.subscription);
  const statusSelect = select([{ value: '', label: 'Any status' }, ...STATUSES.map((s) => ({ value: s, label: s }))], { name: 'status', id: uid('f') }, filters.status);
  const since = input({ type: 'datetime-local', name: 'since', id: uid('f'), value: toLocalInput(filters.since) });
  const until = input({ type: 'datetime-local', name: 'until', id: uid('f'), value: toLocalInput(filters.until) });
  const orderSelect = select([{ value: 'newest', label: 'Newest first' }, { value: 'oldest', label: 'Oldest first' }], { name: 'order', id: uid('f') }, filters.order);
  const filterForm = h('form', { class: 'filters', 'aria-label': 'Filter deliveries' },
    h('div', { class: 'field' }, h('label', { class: 'field-label', for: subSelect.id }, 'Subscription'), subSelect),
    h('div', { class: 'field' }, h('label', { class: 'field-label', for: statusSelect.id }, 'Status'), statusSelect),
    h('div', { class: 'field' }, h('label', { class: 'field-label', for: since.id }, 'From'), since),
    h('div', { class: 'field' }, h('label', { class: 'field-label', for: until.id }, 'To'), until),
    serverOrder ? h('div', { class: 'field' }, h('label', { class: 'field-label', for: orderSelect.id }, 'Order'), orderSelect) : null,
    h('div', { class: 'filters-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
      h('a', { class: 'btn btn-ghost', href: ctx.href('log') }, 'Reset'),
      copyButton(() => curlCommand(ctx.store, request()), 'Copy as curl', 'curl command copied', { class: 'btn btn-ghost', 'data-action': 'copy-curl' })));
  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (subSelect.value) next.set('subscription', subSelect.value);
    if (statusSelect.value) next.set('status', statusSelect.value);
    if (toIso(since.value)) next.set('since', toIso(since.value));
    if (toIso(until.value)) next.set('until', toIso(until.value));
    if (orderSelect.value === 'oldest') next.set('order', 'oldest');
    ctx.setQuery(next);
  });
  root.appendChild(filterForm);

  function request(cursor = after) {
    const vars = { first: PAGE, after: cursor };
    const args = ['first: $first', 'after: $after'];
    const decl = ['$first: Int', '$after: String'];
    if (filters.subscription) { vars.subscriptionId = filters.subscription; args.push('subscriptionId: $subscriptionId'); decl.push('$subscriptionId: String'); }
    if (filters.status) { vars.status = filters.status; args.push('status: $status'); decl.push('$status: DeliveryStatus'); }
    if (serverRange && filters.since) { vars.since = filters.since; args.push('since: $since'); decl.push('$since: DateTime'); }
    if (serverRange && filters.until) { vars.until = filters.until; args.push('until: $until'); decl.push('$until: DateTime'); }
    if (newestFirst) { vars.newestFirst = true; args.push('newestFirst: $newestFirst'); decl.push('$newestFirst: Boolean'); }
    return {
      query: `query Deliveries(${decl.join(', ')}) {
  deliveries(${args.join(', ')}) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { node { ${DELIVERY_FIELDS} } }
  }
}`,
      variables: vars,
    };
  }

  // Replay, for one subscription.
  if (filters.subscription) root.appendChild(replayPanel(ctx, filters, nameOf(filters.subscription)));
  else root.appendChild(h('p', { class: 'muted small replay-hint' }, 'Choose a subscription to replay its failed deliveries.'));

  const holder = h('div', { class: 'log', 'data-log': '' });
  root.appendChild(holder);
  const expanded = new Set();
  const details = new Map();
  let items = [];
  let pageInfo = null;
  let totalCount = 0;

  function inRange(d) {
    if (serverRange) return true;
    const t = new Date(d.createdAt).getTime();
    if (filters.since && t < new Date(filters.since).getTime()) return false;
    if (filters.until && t > new Date(filters.until).getTime()) return false;
    return true;
  }

  async function toggle(id) {
    if (expanded.has(id)) expanded.delete(id);
    else {
      expanded.add(id);
      if (!details.has(id)) {
        try {
          details.set(id, await getDelivery(ctx.store, id));
        } catch (e) {
          details.set(id, { error: e.message });
        }
      }
    }
    draw();
    const btn = holder.querySelector(`[data-toggle="${CSS.escape(id)}"]`);
    if (btn) btn.focus();
  }

  async function retry(id, btn) {
    btn.disabled = true;
    try {
      const data = await gql(ctx.store, RETRY, { id });
      announce(...retryOutcome(data.retryDelivery));
      expanded.add(id);
      await refresh();
    } catch (e) {
      announce(e.message, 'bad');
    } finally {
      btn.disabled = false;
    }
  }

  let drawn = null;
  function draw() {
    // A refresh that changed nothing draws nothing; one that did puts the keyboard focus
    // back on the same control.
    const snapshot = JSON.stringify([items, [...expanded], [...details.entries()].filter(([k]) => expanded.has(k)), pageInfo, totalCount]);
    if (snapshot === drawn) return;
    drawn = snapshot;
    const focused = holder.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = focused ? {
      delivery: focused.closest('tr[data-delivery]')?.dataset.delivery || null,
      action: focused.dataset.action || null,
    } : null;
    clear(holder);
    try {
      drawInto();
    } finally {
      if (focusKey && focusKey.action) {
        const scope = focusKey.delivery ? holder.querySelector(`tr[data-delivery="${CSS.escape(focusKey.delivery)}"]`) : holder;
        const again = scope && scope.querySelector(`[data-action="${CSS.escape(focusKey.action)}"]`);
        if (again) again.focus({ preventScroll: true });
      }
    }
  }

  function drawInto() {
    const shown = items.filter(inRange);
    const hidden = items.length - shown.length;
    const summary = h('p', { class: 'log-summary muted' },
      `${totalCount} ${totalCount === 1 ? 'delivery' : 'deliveries'}${filters.subscription || filters.status || filters.since || filters.until ? (totalCount === 1 ? ' matches' : ' match') : ''}`,
      !serverRange && hidden ? ` · ${hidden} on this page outside the time range are hidden` : '');
    holder.appendChild(summary);
    if (!shown.length) {
      holder.appendChild(emptyState('No deliveries', items.length ? 'None on this page falls in the time range.' : 'Deliveries show up here as soon as an event is published to a subscription.'));
    } else {
      const wrap = table([
        { label: 'Created' },
        { label: 'Event' },
        { label: 'Subscription' },
        { label: 'Status', className: 'col-status' },
        { label: 'Attempts', className: 'col-num' },
        { label: 'Next attempt' },
        { label: 'Actions', className: 'col-actions' },
      ], shown.map((d) => ({
        dataset: { delivery: d.id, status: d.status },
        cells: [
          time(d.createdAt),
          h('a', { href: ctx.href(`deliveries/${encodeURIComponent(d.id)}`), class: 'event-link', 'aria-label': `Delivery ${d.id}: ${d.eventType}` }, h('code', d.eventType)),
          link(ctx.href(`subscriptions/${encodeURIComponent(d.subscriptionId)}`), nameOf(d.subscriptionId), { class: 'break' }),
          badge(d.status),
          String(d.attemptCount),
          d.nextAttemptAt ? time(d.nextAttemptAt) : h('span', { class: 'muted' }, '—'),
          h('div', { class: 'btn-row' },
            h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': String(expanded.has(d.id)), 'data-toggle': d.id, 'data-action': 'attempts', onclick: () => toggle(d.id) }, expanded.has(d.id) ? 'Hide attempts' : 'Attempts'),
            d.status === 'IN_FLIGHT' ? null : (() => {
              const b = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'retry', 'aria-label': `Retry delivery ${d.id}` }, 'Retry');
              b.addEventListener('click', () => retry(d.id, b));
              return b;
            })()),
        ],
      })), { caption: 'Deliveries', className: 'log-table' });
      // Expanded attempts go in a row under their delivery.
      const tbody = wrap.querySelector('tbody');
      for (const tr of [...tbody.children]) {
        const id = tr.dataset.delivery;
        if (!expanded.has(id)) continue;
        const d = details.get(id);
        const cell = h('td', { colspan: '7', class: 'detail-cell' },
          !d ? h('p', { class: 'muted' }, 'Loading…') : d.error ? alertBox(d.error) : attemptsTable(d.attempts));
        tr.after(h('tr', { class: 'detail-row', 'data-attempts-for': id }, cell));
      }
      holder.appendChild(wrap);
    }
    const prevBtn = button('Previous', () => {
      const prev = stack.pop();
      const next = new URLSearchParams(ctx.query);
      if (prev) next.set('after', prev);
      else next.delete('after');
      ctx.setQuery(next);
    }, { class: 'btn', 'data-action': 'previous', disabled: !after });
    const nextBtn = button('Next', () => {
      stack.push(after || '');
      const next = new URLSearchParams(ctx.query);
      next.set('after', pageInfo.endCursor);
      ctx.setQuery(next);
    }, { class: 'btn', 'data-action': 'next', disabled: !(pageInfo && pageInfo.hasNextPage) });
    const refreshBtn = button('Refresh', () => refresh(), { class: 'btn btn-ghost', 'data-action': 'refresh' });
    holder.appendChild(h('nav', { class: 'pager', 'aria-label': 'Pages' }, prevBtn, nextBtn, h('span', { class: 'spacer' }), refreshBtn));
  }

  async function refresh() {
    const req = request();
    const data = await gql(ctx.store, req.query, req.variables);
    if (!ctx.isCurrent()) return;
    items = data.deliveries.edges.map((e) => e.node);
    pageInfo = data.deliveries.pageInfo;
    totalCount = data.deliveries.totalCount;
    await Promise.all([...expanded].filter((id) => items.some((d) => d.id === id)).map(async (id) => {
      try {
        details.set(id, await getDelivery(ctx.store, id));
      } catch (e) {
        details.set(id, { error: e.message });
      }
    }));
    if (ctx.isCurrent()) draw();
  }

  try {
    await refresh();
  } catch (e) {
    // Bad filters (the API's message) leave the filters usable, above the message.
    if (!(e instanceof ApiError) || e.isAccessDenied) throw e;
    clear(holder).appendChild(alertBox(e.message, 'bad', 'The log could not be read'));
    return root;
  }
  // Follow deliveries that are not final yet while the page is open.
  const timer = setInterval(() => {
    if (!ctx.isCurrent()) return;
    if (items.some((d) => d.status === 'PENDING' || d.status === 'IN_FLIGHT') || (pageInfo && !pageInfo.hasNextPage)) {
      refresh().catch(() => {});
    }
  }, 2500);
  ctx.onCleanup(() => clearInterval(timer));
  return root;
}

function replayPanel(ctx, filters, subName) {
  const since = input({ type: 'datetime-local', name: 'since', value: toLocalInput(filters.since) });
  const until = input({ type: 'datetime-local', name: 'until', value: toLocalInput(filters.until) });
  const result = h('div', { 'aria-live': 'polite', 'data-replay-result': '' });
  const form = new Form({
    label: 'Replay failed deliveries',
    submitLabel: 'Replay failed deliveries',
    store: ctx.store,
    build: () => {
      const variables = { subscriptionId: filters.subscription, status: 'FAILED' };
      if (toIso(since.value)) variables.since = toIso(since.value);
      if (toIso(until.value)) variables.until = toIso(until.value);
      return {
        query: `mutation ReplayDeliveries($subscriptionId: String!, $since: DateTime, $until: DateTime, $status: DeliveryStatus!) {
  replayDeliveries(subscriptionId: $subscriptionId, since: $since, until: $until, status: $status) { subscriptionId count }
}`,
        variables,
      };
    },
    onSuccess: (data) => {
      const n = data.replayDeliveries.count;
      clear(result).appendChild(alertBox(`${n} failed ${n === 1 ? 'delivery was' : 'deliveries were'} started again.`, 'ok'));
      announce(`${n} deliveries replayed`);
    },
  });
  // Replaying is a bulk action: confirm first.
  const plainSubmit = form.submit.bind(form);
  form.submit = async () => {
    const yes = await confirmDialog({
      title: 'Replay failed deliveries?',
      message: `Every FAILED delivery to ${subName}${since.value || until.value ? ' created in the chosen time range' : ''} is sent again, with a fresh round of retries.`,
      confirmLabel: 'Replay',
    });
    if (yes) await plainSubmit();
  };
  form.add(h('div', { class: 'form-row' },
    form.field({ label: 'Created from', control: since, paths: ['/replayDeliveries/since'] }),
    form.field({ label: 'Created until', control: until, paths: ['/replayDeliveries/until'] })));
  return h('details', { class: 'panel replay-panel' },
    h('summary', { class: 'panel-head' }, h('span', { class: 'panel-title' }, 'Replay failed deliveries')),
    h('div', { class: 'panel-body' }, h('p', { class: 'field-hint' }, `Sends the failed deliveries of ${subName} created in a time range (or all of them) again.`), form.el, result));
}

export async function renderDelivery(ctx) {
  const d = await getDelivery(ctx.store, ctx.params.id);
  ctx.title(`Delivery ${d.id}`);
  const root = h('div', { class: 'page', 'data-delivery': d.id });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    link(ctx.href('log'), 'Delivery log'), h('span', { 'aria-hidden': 'true' }, ' / '), h('code', d.id)));
  const retryBtn = button('Retry now', async () => {
    retryBtn.disabled = true;
    try {
      const data = await gql(ctx.store, RETRY, { id: d.id });
      announce(...retryOutcome(data.retryDelivery));
      ctx.refresh();
    } catch (e) {
      announce(e.message, 'bad');
      retryBtn.disabled = false;
    }
  }, { class: 'btn btn-primary', 'data-action': 'retry', disabled: d.status === 'IN_FLIGHT' });
  root.appendChild(h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, 'Delivery'), h('p', { class: 'page-subtitle' }, badge(d.status), ' ', h('code', d.eventType))),
    h('div', { class: 'page-actions' }, retryBtn)));
  root.appendChild(panel('Details', deliveryFacts(d, ctx)));
  root.appendChild(panel('Attempts', attemptsTable(d.attempts)));
  if (d.status === 'PENDING' || d.status === 'IN_FLIGHT') {
    const timer = setTimeout(() => { if (ctx.isCurrent()) ctx.refresh(); }, 2500);
    ctx.onCleanup(() => clearTimeout(timer));
  }
  return root;
}
