// Amazon EventBridge: the store's partner event sources, a form for a new one, and the
// AWS CLI commands the customer runs next, filled in with the real names.

import { h, table, emptyState, button, link, announce, confirmDialog, time, clear, copyButton, panel, uid } from '../dom.js';
import { gql, SessionEnded } from '../api.js';
import { Form, input, select } from '../forms.js';
import { capabilities } from '../model.js';
import { loadCatalog, eventPicker } from '../catalog.js';

const FALLBACK_REGIONS = ['US_EAST_1', 'US_EAST_2', 'US_WEST_1', 'US_WEST_2', 'EU_WEST_1', 'EU_CENTRAL_1', 'AP_SOUTHEAST_1', 'AP_NORTHEAST_1'];
// hookrelay's default `eventbridge_detail_type` for BigCommerce-style events.
const DETAIL_TYPE = 'bigCommerceWebhook';

const SOURCE_FIELDS = 'id awsAccount arn eventSourceName eventSourceRegion partnerEventSourceName clientId createdAt';

export function regionName(enumValue) {
  return (enumValue || '').toLowerCase().replace(/_/g, '-');
}

/** Quotes a shell word only when it needs it. */
function word(text) {
  return /^[A-Za-z0-9_./:@=,+-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

export function awsCommands(source, targetArn) {
  const name = source.partnerEventSourceName;
  const region = regionName(source.eventSourceRegion);
  const rule = `hookrelay-${source.eventSourceName}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  const target = targetArn || `arn:aws:sqs:${region}:${source.awsAccount}:YOUR-QUEUE`;
  return [
    ['Associate an event bus with the partner event source', `aws events create-event-bus --name ${word(name)} --event-source-name ${word(name)} --region ${region}`],
    ['Add a rule that matches hookrelay\'s events', `aws events put-rule --name ${word(rule)} --event-bus-name ${word(name)} --event-pattern '${JSON.stringify({ 'detail-type': [DETAIL_TYPE] })}' --region ${region}`],
    ['Send what the rule matches to a target', `aws events put-targets --rule ${word(rule)} --event-bus-name ${word(name)} --targets ${word(`Id=1,Arn=${target}`)} --region ${region}`],
  ];
}

function commandsPanel(source) {
  const targetId = uid('target');
  const target = input({ id: targetId, type: 'text', placeholder: `arn:aws:sqs:${regionName(source.eventSourceRegion)}:${source.awsAccount}:YOUR-QUEUE` });
  const list = h('ol', { class: 'commands' });
  function draw() {
    clear(list);
    for (const [what, cmd] of awsCommands(source, target.value.trim())) {
      list.appendChild(h('li', { class: 'command' },
        h('p', { class: 'command-title' }, what),
        h('div', { class: 'command-row' }, h('pre', { class: 'code', 'data-aws-command': '' }, cmd), copyButton(cmd, 'Copy', 'Command copied'))));
    }
  }
  target.addEventListener('input', draw);
  draw();
  const p = panel(`Next steps in AWS for ${source.eventSourceName}`,
    h('p', { class: 'field-hint' }, 'Run these in the AWS account ', h('code', source.awsAccount), ' (the partner event source is waiting there, pending, until an event bus is associated with it).'),
    h('div', { class: 'field field-spaced' }, h('label', { class: 'field-label', for: targetId }, 'Target ARN (optional: fills in the last command)'), target),
    list);
  p.classList.add('commands-panel');
  p.dataset.commandsFor = source.id;
  return p;
}

export async function render(ctx) {
  ctx.title('EventBridge');
  const [caps, catalog] = await Promise.all([capabilities(ctx.store).catch(() => null), loadCatalog(ctx.store)]);
  const regions = caps && caps.regions.length ? caps.regions : FALLBACK_REGIONS;
  const root = h('div', { class: 'page' });
  root.appendChild(h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, 'Amazon EventBridge'),
      h('p', { class: 'page-subtitle' }, 'Deliver events to an AWS account through a partner event source instead of an HTTPS endpoint.'))));
  const listHolder = h('div');
  const aside = h('div', { class: 'stack', 'aria-live': 'polite' });

  let sources = [];
  async function load() {
    const data = await gql(ctx.store, `query EventSources { store { eventSources(first: 100) { totalCount edges { node { ${SOURCE_FIELDS} } } } } }`);
    sources = data.store.eventSources.edges.map((e) => e.node);
    draw();
  }

  function draw() {
    clear(listHolder);
    if (!sources.length) {
      listHolder.appendChild(emptyState('No event sources yet', 'Create one for the AWS account that should receive the events.'));
      return;
    }
    listHolder.appendChild(table([
      { label: 'Name' }, { label: 'AWS account' }, { label: 'Region' }, { label: 'Partner event source' }, { label: 'Created' }, { label: 'Actions', className: 'col-actions' },
    ], sources.map((s) => ({
      dataset: { eventSource: s.id },
      cells: [
        h('strong', { class: 'nowrap' }, s.eventSourceName),
        h('code', s.awsAccount),
        regionName(s.eventSourceRegion),
        h('code', { class: 'break' }, s.partnerEventSourceName),
        time(s.createdAt),
        h('div', { class: 'btn-row' },
          button('AWS commands', () => { clear(aside).appendChild(commandsPanel(s)); aside.firstChild.querySelector('h2').focus(); }, { class: 'btn btn-small', 'data-action': 'commands' }),
          button('Subscribe', () => { clear(aside).appendChild(subscribePanel(s)); }, { class: 'btn btn-small', 'data-action': 'subscribe' }),
          deleteSource(s)),
      ],
    })), { caption: 'Event sources' }));
  }

  function deleteSource(s) {
    const btn = button('Delete', async () => {
      const yes = await confirmDialog({
        title: `Delete event source ${s.eventSourceName}?`,
        message: 'hookrelay deletes the partner event source at AWS too. It is refused while a webhook delivers to it.',
        confirmLabel: 'Delete event source',
        danger: true,
      });
      if (!yes) return;
      btn.disabled = true;
      try {
        await gql(ctx.store, `mutation DeleteEventSource($id: ID!) { webhook { deleteEventSource(id: $id) { id } } }`, { id: s.id });
        announce('Event source deleted');
        await load();
      } catch (e) {
        if (!(e instanceof SessionEnded)) announce(e.message, 'bad');
        btn.disabled = false;
      }
    }, { class: 'btn btn-small btn-danger-ghost', 'data-action': 'delete' });
    return btn;
  }

  function subscribePanel(s) {
    const picker = eventPicker({ catalog, multiple: false });
    const base = '/webhook/createEventBridgeWebhook/input';
    const form = new Form({
      label: `Subscribe ${s.eventSourceName}`,
      submitLabel: 'Create EventBridge webhook',
      store: ctx.store,
      build: () => ({
        query: `mutation CreateEventBridgeWebhook($input: CreateEventBridgeWebhookInput!) {
  webhook { createEventBridgeWebhook(input: $input) { webhook { id scope destination status } } }
}`,
        variables: { input: { scope: picker.values()[0] || '', destination: s.arn, isActive: true } },
      }),
      onSuccess: (data) => {
        announce('EventBridge webhook created');
        ctx.go(`subscriptions/${encodeURIComponent(data.webhook.createEventBridgeWebhook.webhook.id)}`);
      },
    });
    form.add(form.field({ label: 'Scope', control: picker, legend: true, paths: [`${base}/scope`] }));
    return panel(`Subscribe ${s.eventSourceName} to a scope`, form.el);
  }

  // The form for a new source.
  const account = input({ name: 'awsAccount', inputmode: 'numeric', placeholder: '111122223333', autocomplete: 'off' });
  const name = input({ name: 'eventSourceName', placeholder: 'orders' });
  const region = select(regions.map((r) => ({ value: r, label: regionName(r) })), { name: 'eventSourceRegion' }, regions.includes('US_EAST_1') ? 'US_EAST_1' : regions[0]);
  const base = '/webhook/createEventSource/input';
  const form = new Form({
    label: 'New event source',
    submitLabel: 'Create event source',
    store: ctx.store,
    id: 'event-source-form',
    build: () => ({
      query: `mutation CreateEventSource($input: CreateEventSourceInput!) {
  webhook { createEventSource(input: $input) { eventSource { ${SOURCE_FIELDS} } } }
}`,
      variables: { input: { awsAccount: account.value.trim(), eventSourceName: name.value.trim(), eventSourceRegion: region.value } },
    }),
    onSuccess: async (data) => {
      const s = data.webhook.createEventSource.eventSource;
      announce(`Event source ${s.eventSourceName} created`);
      account.value = '';
      name.value = '';
      await load();
      clear(aside).appendChild(commandsPanel(s));
    },
  });
  form.add(
    form.field({ label: 'AWS account ID', control: account, hint: '12 digits: the account that receives the events.', paths: [`${base}/awsAccount`] }),
    form.field({ label: 'Name', control: name, hint: 'Becomes part of the partner event source name, lower-cased.', paths: [`${base}/eventSourceName`] }),
    form.field({ label: 'Region', control: region, paths: [`${base}/eventSourceRegion`] }));

  root.appendChild(h('div', { class: 'stack' },
    panel('Event sources', listHolder),
    h('div', { class: 'grid-2' }, panel('New event source', form.el), aside)));
  await load();
  return root;
}
