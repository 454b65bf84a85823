// Subscriptions of both styles: the list, the "new subscription" form and the edit form.

import { h, badge, table, emptyState, button, link, announce, clear, alertBox, uid } from '../dom.js';
import { Form, input, select, keyValueEditor } from '../forms.js';
import { loadCatalog, eventPicker } from '../catalog.js';
import { listSubscriptions, statsFor, styleName, getSubscription, listAuthProfiles, capabilities } from '../model.js';
import { stateButton, deleteButton, healthCell, UPDATE_WEBHOOK } from '../components.js';

function pageHead(title, subtitle, actions = null) {
  return h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, title), subtitle ? h('p', { class: 'page-subtitle' }, subtitle) : null),
    actions ? h('div', { class: 'page-actions' }, actions) : null);
}

export function eventsCell(types) {
  const shown = types.slice(0, 3);
  return h('div', { class: 'chips' },
    shown.map((t) => h('code', { class: 'chip' }, t)),
    types.length > shown.length ? h('span', { class: 'muted' }, ` +${types.length - shown.length} more`) : null);
}

export async function renderList(ctx) {
  ctx.title('Subscriptions');
  const root = h('div', { class: 'page' });
  const count = h('span');
  root.appendChild(pageHead('Subscriptions', count,
    h('a', { class: 'btn btn-primary', href: ctx.href('subscriptions/new'), 'data-action': 'new-subscription' }, 'New subscription')));
  const holder = h('div');
  root.appendChild(holder);
  const items = [];
  const stats = {};
  let next = { webhooks: null, subscriptions: null };
  let total = 0;
  const more = button('Load more', () => loadPage(), { class: 'btn', 'data-action': 'load-more' });

  // Health arrives after the list: it fills its cells in place, so that nothing else
  // is redrawn (the keyboard focus stays where it is).
  const slots = new Map();
  function healthSlot(id) {
    const slot = h('div', { class: 'health-slot', dataset: { healthFor: id } }, healthCell(stats[id]));
    slots.set(id, slot);
    return slot;
  }

  function rows() {
    return items.map((s) => ({
      dataset: { id: s.id, status: s.status },
      cells: [
        badge(s.status),
        h('div', { class: 'dest' },
          h('a', { href: ctx.href(`subscriptions/${encodeURIComponent(s.id)}`), class: 'dest-link' }, s.destination),
          h('span', { class: 'muted small' }, s.method ? `${s.method} · ` : '', h('code', s.id))),
        eventsCell(s.eventTypes),
        h('span', { class: 'small' }, styleName(s)),
        healthSlot(s.id),
        h('div', { class: 'btn-row' },
          stateButton(ctx.store, s, () => ctx.refresh()),
          deleteButton(ctx.store, s, () => ctx.refresh())),
      ],
    }));
  }

  function render() {
    clear(holder);
    slots.clear();
    count.textContent = total === 1 ? '1 subscription' : `${total} subscriptions`;
    if (!items.length) {
      holder.appendChild(emptyState('No subscriptions yet',
        'Subscribe an HTTPS endpoint to event types, and deliveries start with the next event.',
        h('a', { class: 'btn btn-primary', href: ctx.href('subscriptions/new') }, 'New subscription')));
      return;
    }
    holder.appendChild(table([
      { label: 'Status', className: 'col-status' },
      { label: 'Destination' },
      { label: 'Events' },
      { label: 'Type', className: 'col-type' },
      { label: 'Last 24 h', className: 'col-health' },
      { label: 'Actions', className: 'col-actions' },
    ], rows(), { caption: 'Subscriptions', className: 'subs-table' }));
    if (next.webhooks !== false || next.subscriptions !== false) holder.appendChild(h('div', { class: 'pager' }, more));
  }

  async function loadPage() {
    more.disabled = true;
    const page = await listSubscriptions(ctx.store, { first: 50, cursors: next });
    items.push(...page.items);
    next = page.next;
    if (!total || page.total > total) total = Math.max(total, page.total);
    render();
    more.disabled = false;
    // Health comes after the list, so that the list shows at once.
    const missing = page.items.map((s) => s.id);
    const fill = () => {
      for (const id of missing) {
        const slot = slots.get(id);
        if (slot) slot.replaceChildren(healthCell(stats[id]));
      }
    };
    statsFor(ctx.store, missing).then((found) => {
      if (!ctx.isCurrent()) return;
      Object.assign(stats, found);
      fill();
    }).catch(() => {
      for (const id of missing) stats[id] = null;
      if (ctx.isCurrent()) fill();
    });
  }

  await loadPage();
  return root;
}

const METHODS = ['POST', 'PUT', 'GET'];

// Delivery options (docs/delivery.md#ordered-delivery, #rate-limits; docs/payloads.md
// on ed25519). The API checks every value; the portal only reads the number typed.
const SCHEMES = [
  { value: 'HMAC_SHA256', label: 'HMAC-SHA256' },
  { value: 'ED25519', label: 'Ed25519' },
];
const ORDERED_HINT = 'Events with the same orderingKey are delivered one at a time, in the order they were accepted.';
const RATE_HINT = 'Requests per second at most, 1 to 10000, across every node. Empty: no limit.';
const SCHEME_HINT = 'HMAC-SHA256: receivers verify with a shared secret (v1). Ed25519: receivers verify with a public key, which cannot sign (v1a).';

function orderedBox(checked = false) {
  return h('input', { type: 'checkbox', name: 'ordered', checked });
}

function rateLimitInput(value = null) {
  return input({ type: 'number', name: 'rateLimit', min: 1, max: 10000, step: 1, inputmode: 'numeric', placeholder: 'No limit', class: 'input input-short', value: value === null ? '' : String(value) });
}

/** The rate limit typed, or null when the field is empty. */
function rateLimitValue(control, path) {
  const raw = control.value.trim();
  const bad = () => new Error(`${path} must be a whole number of requests per second, or empty for no limit`);
  if (raw === '') {
    if (control.validity && control.validity.badInput) throw bad();
    return null;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || Math.abs(n) > 2147483647) throw bad();
  return n;
}

/** The form for a new subscription, of either style; `prefill` comes from ?style=… */
export async function renderCreate(ctx) {
  ctx.title('New subscription');
  const [catalog, profiles] = await Promise.all([
    loadCatalog(ctx.store),
    listAuthProfiles(ctx.store, { first: 1000 }).catch(() => ({ edges: [] })),
  ]);
  const root = h('div', { class: 'page page-narrow' });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link(ctx.href('subscriptions'), 'Subscriptions'), h('span', { 'aria-hidden': 'true' }, ' / '), 'New'));
  root.appendChild(pageHead('New subscription', 'Deliveries are signed with a secret of their own, retried for 48 hours, and logged.'));

  let style = ctx.query.get('style') === 'bigcommerce' ? 'bigcommerce' : 'buywithprime';
  const styleName_ = uid('style');
  const styleChoice = h('div', { class: 'segmented', role: 'radiogroup' });
  const options = [
    ['buywithprime', 'Buy with Prime event subscription', 'One or more event types, method, auth profile.'],
    ['bigcommerce', 'BigCommerce webhook', 'One scope (wildcards such as store/order/* included).'],
  ];
  for (const [value, label, hint] of options) {
    const id = uid('style');
    const radio = h('input', { type: 'radio', name: styleName_, id, value, checked: value === style });
    radio.addEventListener('change', () => {
      style = value;
      rebuild();
    });
    styleChoice.appendChild(h('div', { class: 'segment' }, radio, h('label', { for: id }, h('strong', label), h('span', { class: 'muted small' }, hint))));
  }
  styleChoice.invalidTargets = () => [styleChoice.querySelector('input')];

  const url = input({ type: 'url', name: 'url', placeholder: 'https://hooks.example.com/in', required: true, inputmode: 'url' });
  const method = select(METHODS, { name: 'method' }, 'POST');
  const auth = select([{ value: '', label: 'None' }, ...profiles.edges.map((e) => ({ value: e.node.authProfileId, label: `${e.node.authProfileId} (${e.node.authType === 'OAUTH' ? 'OAuth 2.0' : 'Basic'})` }))], { name: 'authProfileId' }, '');
  const active = h('input', { type: 'checkbox', name: 'isActive', checked: true, id: uid('active') });
  const ordered = orderedBox(false);
  const rateLimit = rateLimitInput();
  const scheme = select(SCHEMES, { name: 'signatureScheme' }, 'HMAC_SHA256');

  /** The delivery options the user changed from the defaults, and only those. */
  function deliveryOptions(base) {
    const out = {};
    if (ordered.checked) out.ordered = true;
    const limit = rateLimitValue(rateLimit, `${base}/rateLimit`);
    if (limit !== null) out.rateLimit = limit;
    if (scheme.value !== 'HMAC_SHA256') out.signatureScheme = scheme.value;
    return out;
  }

  const formHolder = h('div');
  root.appendChild(formHolder);
  let form;
  let picker;
  let headerEditor;

  function rebuild() {
    const bc = style === 'bigcommerce';
    const base = bc ? '/webhook/createHttpsWebhook/input' : '/createEventSubscription/input';
    const previous = picker ? picker.values() : [];
    const previousHeaders = headerEditor ? headerEditor.values() : [];
    picker = eventPicker({ catalog, multiple: !bc, selected: bc ? previous.slice(0, 1) : previous });
    form = new Form({
      label: 'New subscription',
      submitLabel: bc ? 'Create webhook' : 'Create subscription',
      store: ctx.store,
      id: 'subscription-form',
      build: () => {
        const headers = headerEditor.values();
        const options = deliveryOptions(base);
        if (bc) {
          const input_ = { scope: picker.values()[0] || '', destination: url.value.trim(), isActive: active.checked };
          if (headers.length) input_.headers = headers;
          Object.assign(input_, options);
          return {
            query: `mutation CreateHttpsWebhook($input: CreateHttpsWebhookInput!) {
  webhook { createHttpsWebhook(input: $input) { webhook { id scope destination status isActive } } }
}`,
            variables: { input: input_ },
          };
        }
        const webhook = { url: url.value.trim(), method: method.value };
        if (auth.value) webhook.authProfileId = auth.value;
        if (headers.length) webhook.headers = headers;
        return {
          query: `mutation CreateEventSubscription($input: CreateEventSubscriptionInput!) {
  createEventSubscription(input: $input) { subscriptionId }
}`,
          variables: { input: { destination: { webhook }, eventTypes: picker.values(), ...options } },
        };
      },
      onSuccess: (data) => {
        const id = bc ? data.webhook.createHttpsWebhook.webhook.id : data.createEventSubscription.subscriptionId;
        announce('Subscription created');
        ctx.go(`subscriptions/${encodeURIComponent(id)}`);
      },
      secondary: [h('a', { class: 'btn btn-ghost', href: ctx.href('subscriptions') }, 'Cancel')],
    });
    const urlPath = bc ? `${base}/destination` : `${base}/destination/webhook/url`;
    const headersPath = bc ? `${base}/headers` : `${base}/destination/webhook/headers`;
    headerEditor = keyValueEditor(form, { initial: previousHeaders, pathOf: (i) => `${headersPath}/${i}`, keyPlaceholder: 'X-Custom-Header', valuePlaceholder: 'value' });
    form.add(
      form.field({ label: 'Kind', control: styleChoice, legend: true, paths: [] }),
      form.field({ label: 'Endpoint URL', control: url, hint: 'An https:// URL on the public internet.', paths: [urlPath, `${base}/destination/webhook`, `${base}/destination`] }),
      bc ? null : form.field({ label: 'HTTP method', control: method, paths: [`${base}/destination/webhook/method`, `${base}/destination/webhook/httpMethod`] }),
      form.field({ label: bc ? 'Scope' : 'Event types', control: picker, legend: true,
        hint: bc ? 'Exactly one scope; a wildcard such as store/order/* matches every type under it.' : 'Pick one or more; wildcards match every type under them.',
        paths: bc ? [`${base}/scope`] : [`${base}/eventTypes`, `${base}/eventType`] }),
      form.field({ label: 'Custom headers', control: headerEditor, legend: true, hint: 'Sent with every delivery. hookrelay sets Authorization and webhook-* itself.', paths: [headersPath] }),
      bc ? null : form.field({ label: 'Auth profile', control: auth, hint: profiles.edges.length ? 'Adds Authorization (OAuth 2.0 client credentials or Basic) to every delivery.' : 'No auth profiles yet: create one under Auth profiles.', paths: [`${base}/destination/webhook/authProfileId`] }),
      form.group('Delivery options',
        form.field({ label: 'Ordered by key', control: ordered, check: true, hint: ORDERED_HINT, paths: [`${base}/ordered`] }),
        form.field({ label: 'Rate limit', control: rateLimit, hint: RATE_HINT, paths: [`${base}/rateLimit`] }),
        form.field({ label: 'Signature', control: scheme, hint: SCHEME_HINT, paths: [`${base}/signatureScheme`] })),
      bc ? h('div', { class: 'field field-check' }, active, h('label', { for: active.id }, 'Active: start delivering at once')) : null,
    );
    clear(formHolder).appendChild(form.el);
  }
  rebuild();
  return root;
}

/** Editing: BigCommerce webhooks (updateWebhook); Buy with Prime subscriptions have no update in the API. */
export async function renderEdit(ctx) {
  const sub = await getSubscription(ctx.store, ctx.params.id);
  ctx.title(`Edit ${sub.destination}`);
  const root = h('div', { class: 'page page-narrow' });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    link(ctx.href('subscriptions'), 'Subscriptions'), h('span', { 'aria-hidden': 'true' }, ' / '),
    link(ctx.href(`subscriptions/${encodeURIComponent(sub.id)}`), sub.id), h('span', { 'aria-hidden': 'true' }, ' / '), 'Edit'));
  root.appendChild(pageHead('Edit subscription', h('span', badge(sub.status), ' ', styleName(sub))));
  if (sub.style !== 'bigcommerce' || sub.kind !== 'https') {
    const caps = await capabilities(ctx.store).catch(() => null);
    const note = caps && caps.has('mutation', 'updateEventSubscription')
      ? 'This server has updateEventSubscription, which this portal does not use yet.'
      : 'The API has no update for Buy with Prime subscriptions: delete this one and create a new one with the changes.';
    root.appendChild(alertBox(note, 'info', 'Not editable here'));
    return root;
  }
  const catalog = await loadCatalog(ctx.store);
  const base = '/webhook/updateWebhook/input/data';
  const url = input({ type: 'url', name: 'url', value: sub.destination, inputmode: 'url' });
  const picker = eventPicker({ catalog, multiple: false, selected: sub.eventTypes });
  const active = h('input', { type: 'checkbox', name: 'isActive', checked: sub.isActive, id: uid('active') });
  const ordered = orderedBox(sub.ordered);
  const rateLimit = rateLimitInput(sub.rateLimit);
  let headerEditor;
  const form = new Form({
    label: 'Edit subscription',
    submitLabel: 'Save changes',
    store: ctx.store,
    id: 'subscription-form',
    build: () => ({
      query: UPDATE_WEBHOOK,
      variables: {
        input: {
          id: sub.id,
          data: {
            destination: url.value.trim(),
            scope: picker.values()[0] || '',
            headers: headerEditor.values(),
            isActive: active.checked,
            ordered: ordered.checked,
            // Empty removes the limit: null, not left out (which would keep it).
            rateLimit: rateLimitValue(rateLimit, `${base}/rateLimit`),
          },
        },
      },
    }),
    onSuccess: () => {
      announce('Changes saved');
      ctx.go(`subscriptions/${encodeURIComponent(sub.id)}`);
    },
    secondary: [h('a', { class: 'btn btn-ghost', href: ctx.href(`subscriptions/${encodeURIComponent(sub.id)}`) }, 'Cancel')],
  });
  headerEditor = keyValueEditor(form, { initial: sub.headers, pathOf: (i) => `${base}/headers/${i}`, keyPlaceholder: 'X-Custom-Header', valuePlaceholder: 'value' });
  form.add(
    form.field({ label: 'Endpoint URL', control: url, paths: [`${base}/destination`] }),
    form.field({ label: 'Scope', control: picker, legend: true, paths: [`${base}/scope`] }),
    form.field({ label: 'Custom headers', control: headerEditor, legend: true, paths: [`${base}/headers`] }),
    form.group('Delivery options',
      form.field({ label: 'Ordered by key', control: ordered, check: true, hint: `${ORDERED_HINT} A change applies to events accepted from then on.`, paths: [`${base}/ordered`] }),
      form.field({ label: 'Rate limit', control: rateLimit, hint: RATE_HINT, paths: [`${base}/rateLimit`] })),
    h('div', { class: 'field field-check' }, active, h('label', { for: active.id }, sub.status === 'DEACTIVATED' ? 'Active: reactivate, and send the parked deliveries' : 'Active')),
  );
  root.appendChild(form.el);
  return root;
}
