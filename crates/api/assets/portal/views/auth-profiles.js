// Auth profiles: list, create, edit, delete. Secrets are write-only: the portal shows
// that one is set, never its value.

import { h, table, emptyState, button, link, announce, confirmDialog, time, uid, clear, alertBox } from '../dom.js';
import { gql, SessionEnded } from '../api.js';
import { Form, input, select, keyValueEditor } from '../forms.js';
import { listAuthProfiles, getAuthProfile } from '../model.js';

function pageHead(title, subtitle, actions = null) {
  return h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, title), subtitle ? h('p', { class: 'page-subtitle' }, subtitle) : null),
    actions ? h('div', { class: 'page-actions' }, actions) : null);
}

function summary(p) {
  const o = p.authConfig.oAuthConfig;
  const b = p.authConfig.basicAuthConfig;
  if (o) return h('div', { class: 'dest' }, h('code', { class: 'break' }, o.authEndpoint), h('span', { class: 'muted small' }, `client ${o.clientParameters.clientId} · ${o.httpMethod}`));
  if (b) return h('div', { class: 'dest' }, h('span', `user ${b.username}`));
  return '';
}

const setBadge = () => h('span', { class: 'badge badge-muted', 'data-secret-state': 'set' }, h('span', { class: 'badge-dot', 'aria-hidden': 'true' }), 'set');

export const DELETE_AUTH_PROFILE = `mutation DeleteAuthProfile($id: String!) {
  deleteAuthProfile(authProfileId: $id) { authProfileId }
}`;

export async function renderList(ctx) {
  ctx.title('Auth profiles');
  const root = h('div', { class: 'page' });
  const items = [];
  let after = null;
  let hasNext = false;
  let total = 0;
  const sub = h('span');
  root.appendChild(pageHead('Auth profiles', sub,
    h('a', { class: 'btn btn-primary', href: ctx.href('auth-profiles/new'), 'data-action': 'new-auth-profile' }, 'New auth profile')));
  const holder = h('div');
  root.appendChild(holder);
  const more = button('Load more', () => load(), { class: 'btn', 'data-action': 'load-more' });

  function draw() {
    clear(holder);
    sub.textContent = 'OAuth 2.0 client credentials or HTTP Basic, for webhook deliveries. Secrets are never shown again.';
    if (!items.length) {
      holder.appendChild(emptyState('No auth profiles', 'An auth profile adds an Authorization header to every delivery that uses it.',
        h('a', { class: 'btn btn-primary', href: ctx.href('auth-profiles/new') }, 'New auth profile')));
      return;
    }
    holder.appendChild(table([
      { label: 'ID' }, { label: 'Type' }, { label: 'Configuration' }, { label: 'Secret' }, { label: 'Updated' }, { label: 'Actions', className: 'col-actions' },
    ], items.map((p) => ({
      dataset: { authProfile: p.authProfileId },
      cells: [
        link(ctx.href(`auth-profiles/${encodeURIComponent(p.authProfileId)}`), p.authProfileId),
        p.authType === 'OAUTH' ? 'OAuth 2.0' : 'Basic',
        summary(p),
        setBadge(),
        time(p.updatedAt),
        h('div', { class: 'btn-row' },
          h('a', { class: 'btn btn-small', href: ctx.href(`auth-profiles/${encodeURIComponent(p.authProfileId)}`), 'aria-label': `Edit ${p.authProfileId}` }, 'Edit'),
          deleteButton(ctx, p, async () => { ctx.refresh(); })),
      ],
    })), { caption: 'Auth profiles' }));
    holder.appendChild(h('p', { class: 'muted small' }, `${total} in all`));
    if (hasNext) holder.appendChild(h('div', { class: 'pager' }, more));
  }

  async function load() {
    const page = await listAuthProfiles(ctx.store, { first: 50, after });
    items.push(...page.edges.map((e) => e.node));
    after = page.pageInfo.endCursor;
    hasNext = page.pageInfo.hasNextPage;
    total = page.totalCount;
    draw();
  }
  await load();
  return root;
}

function deleteButton(ctx, p, onDeleted) {
  const btn = button('Delete', async () => {
    const yes = await confirmDialog({
      title: `Delete auth profile ${p.authProfileId}?`,
      message: 'Subscriptions that use it must be deleted or deactivated first; the API refuses otherwise.',
      confirmLabel: 'Delete auth profile',
      danger: true,
    });
    if (!yes) return;
    btn.disabled = true;
    try {
      await gql(ctx.store, DELETE_AUTH_PROFILE, { id: p.authProfileId });
      announce('Auth profile deleted');
      await onDeleted();
    } catch (e) {
      if (!(e instanceof SessionEnded)) announce(e.message, 'bad');
      btn.disabled = false;
    }
  }, { class: 'btn btn-small btn-danger-ghost', 'data-action': 'delete', 'aria-label': `Delete ${p.authProfileId}` });
  return btn;
}

/** The profile form, for a new profile (`existing` null) or an update. */
function profileForm(ctx, existing) {
  const creating = !existing;
  const base = creating ? '/createAuthProfile/input' : '/updateAuthProfile/input';
  const cfg = existing ? existing.authConfig : null;
  let type = existing ? (existing.authType === 'OAUTH' ? 'oauth' : 'basic') : 'oauth';
  const o = cfg && cfg.oAuthConfig;
  const alias = input({ name: 'authProfileAliasId', placeholder: 'my-oauth (optional: generated when empty)' });
  const clientId = input({ name: 'clientId', value: o ? o.clientParameters.clientId : '' });
  const clientSecret = input({ type: 'password', name: 'clientSecret', autocomplete: 'new-password', placeholder: existing && o ? 'set: enter it again to save changes' : '' });
  const endpoint = input({ type: 'url', name: 'authEndpoint', value: o ? o.authEndpoint : '', placeholder: 'https://auth.example.com/oauth2/token', inputmode: 'url' });
  const method = select(['POST', 'GET', 'PUT'], { name: 'httpMethod' }, o ? o.httpMethod : 'POST');
  const username = input({ name: 'username', value: cfg && cfg.basicAuthConfig ? cfg.basicAuthConfig.username : '' });
  const password = input({ type: 'password', name: 'password', autocomplete: 'new-password', placeholder: existing && cfg.basicAuthConfig ? 'set: enter it again to save changes' : '' });

  let bodyParams;
  let headerParams;
  const form = new Form({
    label: creating ? 'New auth profile' : `Edit auth profile ${existing.authProfileId}`,
    submitLabel: creating ? 'Create auth profile' : 'Save changes',
    store: ctx.store,
    id: 'auth-profile-form',
    build: () => {
      let authConfig;
      if (type === 'oauth') {
        const oauth = {
          clientParameters: { clientId: clientId.value, clientSecret: clientSecret.value },
          authEndpoint: endpoint.value.trim(),
          httpMethod: method.value,
        };
        const b = bodyParams.values();
        const hp = headerParams.values();
        if (b.length || hp.length) oauth.httpParameters = { bodyParameters: b, headerParameters: hp };
        authConfig = { oAuthConfig: oauth };
      } else {
        authConfig = { basicAuthConfig: { username: username.value, password: password.value } };
      }
      if (creating) {
        const input_ = { authConfig };
        if (alias.value.trim()) input_.authProfileAliasId = alias.value.trim();
        return {
          query: `mutation CreateAuthProfile($input: CreateAuthProfileInput!) {
  createAuthProfile(input: $input) { authProfileId }
}`,
          variables: { input: input_ },
        };
      }
      return {
        query: `mutation UpdateAuthProfile($input: UpdateAuthProfileInput!) {
  updateAuthProfile(input: $input) { authProfileId }
}`,
        variables: { input: { authProfileId: existing.authProfileId, authConfig } },
      };
    },
    onSuccess: (data) => {
      announce(creating ? `Auth profile ${data.createAuthProfile.authProfileId} created` : 'Auth profile saved');
      ctx.go('auth-profiles');
    },
    secondary: [h('a', { class: 'btn btn-ghost', href: ctx.href('auth-profiles') }, 'Cancel')],
  });
  const op = `${base}/authConfig/oAuthConfig`;
  bodyParams = keyValueEditor(form, { initial: o ? o.httpParameters.bodyParameters : [], pathOf: (i) => `${op}/httpParameters/bodyParameters/${i}`, addLabel: 'Add body parameter', keyPlaceholder: 'scope', valuePlaceholder: 'orders.read' });
  headerParams = keyValueEditor(form, { initial: o ? o.httpParameters.headerParameters : [], pathOf: (i) => `${op}/httpParameters/headerParameters/${i}`, addLabel: 'Add header parameter' });

  const typeGroup = h('div', { class: 'segmented', role: 'radiogroup' });
  const typeName = uid('type');
  const oauthBox = h('div', { class: 'subform' });
  const basicBox = h('div', { class: 'subform' });
  for (const [value, label] of [['oauth', 'OAuth 2.0 client credentials'], ['basic', 'HTTP Basic']]) {
    const id = uid('type');
    const radio = h('input', { type: 'radio', name: typeName, id, value, checked: value === type });
    radio.addEventListener('change', () => {
      type = value;
      oauthBox.hidden = type !== 'oauth';
      basicBox.hidden = type !== 'basic';
    });
    typeGroup.appendChild(h('div', { class: 'segment' }, radio, h('label', { for: id }, h('strong', label))));
  }
  typeGroup.invalidTargets = () => [typeGroup.querySelector('input')];
  const secretHint = existing ? 'Write-only: the stored secret is never shown. Enter it again to save any change.' : 'Write-only: stored encrypted and never shown again.';
  oauthBox.append(
    form.field({ label: 'Token endpoint', control: endpoint, paths: [`${op}/authEndpoint`] }),
    form.field({ label: 'Client ID', control: clientId, paths: [`${op}/clientParameters/clientId`] }),
    form.field({ label: 'Client secret', control: clientSecret, hint: secretHint, paths: [`${op}/clientParameters/clientSecret`] }),
    form.field({ label: 'Token request method', control: method, paths: [`${op}/httpMethod`] }),
    form.field({ label: 'Body parameters', control: bodyParams, legend: true, paths: [`${op}/httpParameters/bodyParameters`] }),
    form.field({ label: 'Header parameters', control: headerParams, legend: true, paths: [`${op}/httpParameters/headerParameters`] }));
  const bp = `${base}/authConfig/basicAuthConfig`;
  basicBox.append(
    form.field({ label: 'Username', control: username, paths: [`${bp}/username`] }),
    form.field({ label: 'Password', control: password, hint: secretHint, paths: [`${bp}/password`] }));
  oauthBox.hidden = type !== 'oauth';
  basicBox.hidden = type !== 'basic';
  form.add(
    creating ? form.field({ label: 'ID', control: alias, hint: 'Letters, digits, ".", "_", ":" or "-"; it is how subscriptions name the profile.', paths: [`${base}/authProfileAliasId`] }) : null,
    form.field({ label: 'Type', control: typeGroup, legend: true, paths: [`${base}/authConfig`] }),
    oauthBox, basicBox);
  return form;
}

export async function renderCreate(ctx) {
  ctx.title('New auth profile');
  const root = h('div', { class: 'page page-narrow' });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link(ctx.href('auth-profiles'), 'Auth profiles'), h('span', { 'aria-hidden': 'true' }, ' / '), 'New'));
  root.appendChild(pageHead('New auth profile', 'hookrelay fetches OAuth tokens itself and caches them until they expire.'));
  root.appendChild(profileForm(ctx, null).el);
  return root;
}

export async function renderEdit(ctx) {
  const p = await getAuthProfile(ctx.store, ctx.params.id);
  ctx.title(`Auth profile ${p.authProfileId}`);
  const root = h('div', { class: 'page page-narrow', 'data-auth-profile': p.authProfileId });
  root.appendChild(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link(ctx.href('auth-profiles'), 'Auth profiles'), h('span', { 'aria-hidden': 'true' }, ' / '), h('code', p.authProfileId)));
  root.appendChild(pageHead(`Auth profile ${p.authProfileId}`,
    h('span', p.authType === 'OAUTH' ? 'OAuth 2.0 client credentials' : 'HTTP Basic', ' · secret ', setBadge(), ' · updated ', time(p.updatedAt)),
    deleteButton(ctx, p, async () => ctx.go('auth-profiles'))));
  root.appendChild(alertBox('Saving replaces the whole configuration, secret included: every subscription using this profile uses the new one from its next attempt.', 'info'));
  root.appendChild(profileForm(ctx, p).el);
  return root;
}
