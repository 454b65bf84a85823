// The portal's shell: the session (from a one-time link or this tab's storage), the
// header, the navigation and hash routing (#/subscriptions, #/log, …).

import { h, clear, alertBox, spinner, link } from './dom.js';
import * as api from './api.js';
import { NotFound } from './model.js';

const views = {
  subscriptions: () => import('./views/subscriptions.js'),
  subscription: () => import('./views/subscription.js'),
  health: () => import('./views/health.js'),
  log: () => import('./views/log.js'),
  authProfiles: () => import('./views/auth-profiles.js'),
  eventbridge: () => import('./views/eventbridge.js'),
  console: () => import('./views/console.js'),
};

/** [pattern, view module, export name] in order; `:x` is a parameter. */
const ROUTES = [
  ['subscriptions', 'subscriptions', 'renderList'],
  ['subscriptions/new', 'subscriptions', 'renderCreate'],
  ['subscriptions/:id', 'subscription', 'render'],
  ['subscriptions/:id/edit', 'subscriptions', 'renderEdit'],
  ['health', 'health', 'render'],
  ['log', 'log', 'render'],
  ['deliveries/:id', 'log', 'renderDelivery'],
  ['auth-profiles', 'authProfiles', 'renderList'],
  ['auth-profiles/new', 'authProfiles', 'renderCreate'],
  ['auth-profiles/:id', 'authProfiles', 'renderEdit'],
  ['eventbridge', 'eventbridge', 'render'],
  ['console', 'console', 'render'],
];

const STORE_SECTIONS = [
  ['subscriptions', 'Subscriptions'],
  ['health', 'Health'],
  ['log', 'Delivery log'],
  ['auth-profiles', 'Auth profiles'],
  ['eventbridge', 'EventBridge'],
];

const state = {
  me: null,
  generation: 0,
  cleanups: [],
  ended: false,
};

const main = () => document.getElementById('main');

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const segments = pathPart.split('/').filter(Boolean).map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  let store = null;
  if (segments[0] === 'stores' && segments.length >= 2) {
    store = segments[1];
    segments.splice(0, 2);
  }
  return { segments, query: new URLSearchParams(queryPart), store };
}

function match(segments) {
  for (const [pattern, view, fn] of ROUTES) {
    const parts = pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params = {};
    let ok = true;
    parts.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = segments[i];
      else if (p !== segments[i]) ok = false;
    });
    // "new" is a page, not an id.
    if (ok && params.id === 'new') ok = false;
    if (ok) return { view, fn, params, section: parts[0] };
  }
  return null;
}

/** The store the page acts on: the route's (admins, or a refused other store) or the session's. */
function storeFor(route) {
  return route.store || (state.me && state.me.store) || null;
}

function hrefFor(route) {
  const prefix = route.store ? `#/stores/${encodeURIComponent(route.store)}` : '#';
  return (path) => `${prefix}/${path.replace(/^\//, '')}`;
}

function roleWords(me) {
  if (me.role === 'admin') return 'Operator';
  if (me.role === 'store-admin') return 'Store admin';
  return 'App';
}

function renderHeader(route) {
  const who = document.getElementById('who');
  const nav = document.getElementById('nav');
  clear(who);
  clear(nav);
  const me = state.me;
  if (!me) return;
  const store = storeFor(route);
  const pieces = [];
  if (store) {
    pieces.push(h('span', { class: 'who-item' }, h('span', { class: 'who-label' }, 'Store'), h('code', { class: 'who-value', 'data-store': store }, store)));
  }
  pieces.push(h('span', { class: 'who-item' }, h('span', { class: 'who-label' }, 'Signed in as'),
    h('span', { class: 'who-value' }, roleWords(me), me.clientId ? h('code', { class: 'who-client' }, ` ${me.clientId}`) : null)));
  if (me.expiresAt) {
    pieces.push(h('span', { class: 'who-item who-expiry' }, h('span', { class: 'who-label' }, 'Session until'),
      h('time', { class: 'who-value', datetime: me.expiresAt }, new Date(me.expiresAt).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }))));
  }
  const signOut = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-action': 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    await api.logout();
    showEnded('signed-out');
  });
  who.append(...pieces, signOut);

  const href = hrefFor(route);
  const current = route.segments[0] || '';
  const items = [];
  if (store) for (const [path, label] of STORE_SECTIONS) items.push([href(path), label, path]);
  if (me.role === 'admin') items.push(['#/console', 'Operator console', 'console']);
  const list = h('ul', { class: 'tabs-list' });
  for (const [target, label, section] of items) {
    const active = section === current || (section === 'log' && current === 'deliveries');
    list.appendChild(h('li', h('a', { href: target, class: 'tab', 'aria-current': active ? 'page' : null }, label)));
  }
  nav.appendChild(list);
}

function runCleanups() {
  for (const fn of state.cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // a view's cleanup never stops the next page
    }
  }
}

function pageMessage(title, message, extra = null) {
  return h('div', { class: 'page-message' }, h('h1', { class: 'page-title' }, title), h('p', { class: 'lead' }, message), extra);
}

async function route(navigated = false) {
  if (state.ended) return;
  runCleanups();
  const generation = ++state.generation;
  const parsed = parseHash();
  const me = state.me;
  if (!parsed.segments.length) {
    const fallback = me.store || parsed.store ? 'subscriptions' : (me.role === 'admin' ? 'console' : 'subscriptions');
    location.replace(`${hrefFor(parsed)(fallback)}`);
    return;
  }
  renderHeader(parsed);
  const target = main();
  const found = match(parsed.segments);
  if (!found) {
    clear(target).appendChild(pageMessage('Page not found', 'There is no such page in the portal.', link(hrefFor(parsed)('subscriptions'), 'Go to subscriptions')));
    document.title = 'Not found · hookrelay';
    return;
  }
  const store = storeFor(parsed);
  if (found.view !== 'console' && !store) {
    clear(target).appendChild(pageMessage('Choose a store', 'Operator sessions are not bound to a store: open one from the console.', link('#/console', 'Open the console')));
    return;
  }
  if (found.view === 'console' && me.role !== 'admin') {
    clear(target).appendChild(pageMessage('Access denied', 'The operator console is for operator sessions.'));
    return;
  }
  clear(target).appendChild(spinner());
  const ctx = {
    store,
    me,
    params: found.params,
    query: parsed.query,
    section: found.section,
    href: hrefFor(parsed),
    go: (path) => { location.hash = hrefFor(parsed)(path).slice(1); },
    setQuery: (q) => {
      const qs = q.toString();
      const path = parsed.segments.map(encodeURIComponent).join('/');
      location.hash = `${hrefFor(parsed)(path).slice(1)}${qs ? `?${qs}` : ''}`;
    },
    onCleanup: (fn) => { state.cleanups.push(fn); },
    isCurrent: () => generation === state.generation && !state.ended,
    title: (t) => { document.title = `${t} · hookrelay`; },
    refresh: () => route(),
  };
  try {
    const mod = await views[found.view]();
    const node = await mod[found.fn](ctx);
    if (!ctx.isCurrent()) return;
    const keep = !navigated && target.contains(document.activeElement) ? document.activeElement : null;
    clear(target).appendChild(node);
    // After a navigation the focus goes to the new page's heading (screen readers read
    // where they are); a refresh of the same page leaves it alone.
    const heading = target.querySelector('h1');
    if (heading) heading.setAttribute('tabindex', '-1');
    if (navigated && heading) heading.focus({ preventScroll: true });
    else if (keep && !keep.isConnected && heading) heading.focus({ preventScroll: true });
  } catch (e) {
    if (!ctx.isCurrent() || e instanceof api.SessionEnded) return;
    clear(target).appendChild(errorPage(e, ctx));
  }
}

export function errorPage(e, ctx) {
  if (e instanceof NotFound) {
    ctx?.title?.('Not found');
    return h('div', { class: 'page-message', 'data-error': 'not-found' },
      h('h1', { class: 'page-title' }, 'Not found'),
      h('p', { class: 'lead' }, `${e.message}.`),
      ctx ? link(ctx.href('subscriptions'), 'Back to subscriptions') : null);
  }
  if (e instanceof api.ApiError && e.isAccessDenied) {
    ctx?.title?.('Access denied');
    return h('div', { class: 'page-message', 'data-error': 'access-denied' },
      h('h1', { class: 'page-title' }, 'Access denied'),
      h('p', { class: 'lead' }, e.message));
  }
  return h('div', { class: 'page-message', 'data-error': 'error' },
    h('h1', { class: 'page-title' }, 'Something went wrong'),
    alertBox(e && e.message ? e.message : String(e)));
}

const ENDED = {
  'ended': ['Your session has ended', 'Portal sessions last at most 12 hours and end after an hour without use, or when the app they belong to is revoked. Ask for a new link to continue.'],
  'signed-out': ['You are signed out', 'The session of this tab has ended. To come back, ask for a new portal link.'],
  'no-session': ['No session', 'Open the portal through the link you were given: links work once, and for a short time.'],
};

function showEnded(kind, detail = null, title = null) {
  state.ended = true;
  runCleanups();
  const [defaultTitle, text] = ENDED[kind] || ENDED.ended;
  clear(document.getElementById('who'));
  clear(document.getElementById('nav'));
  document.querySelectorAll('dialog').forEach((d) => d.remove());
  document.title = `${title || defaultTitle} · hookrelay`;
  const target = main();
  clear(target).appendChild(h('div', { class: 'page-message session-ended', 'data-screen': kind },
    h('h1', { class: 'page-title' }, title || defaultTitle),
    detail ? h('p', { class: 'lead' }, detail) : null,
    h('p', { class: detail ? '' : 'lead' }, text)));
  target.focus();
}

async function boot() {
  api.onSessionEnded(() => showEnded('ended'));
  const openPrefix = '/portal/open/';
  if (location.pathname.startsWith(openPrefix)) {
    const secret = decodeURIComponent(location.pathname.slice(openPrefix.length).replace(/\/+$/, ''));
    // The secret leaves the address bar (and the history) whatever the answer.
    history.replaceState(null, '', '/portal/#/');
    try {
      await api.exchangeLink(secret);
    } catch (e) {
      const used = e.code === 'LinkUsed';
      const expired = e.code === 'LinkExpired';
      const title = used ? 'This link was already used' : expired ? 'This link has expired' : 'This link is not valid';
      showEnded('link', e.message, title);
      const target = main().querySelector('.page-message');
      target.dataset.screen = used ? 'link-used' : expired ? 'link-expired' : 'link-invalid';
      target.appendChild(h('p', 'Portal links work once and for a short time. Ask for a new link.'));
      return;
    }
  }
  if (!api.getToken()) {
    showEnded('no-session');
    return;
  }
  try {
    state.me = await api.me();
  } catch (e) {
    if (!(e instanceof api.SessionEnded)) {
      clear(main()).appendChild(pageMessage('The portal could not start', e.message));
    }
    return;
  }
  window.addEventListener('hashchange', () => route(true));
  await route();
}

boot();
