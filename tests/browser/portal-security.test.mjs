// The portal's boundaries, through the real browser: another store's ids show nothing,
// links work once and not after they expire, a forged one is refused, cross-origin
// POSTs are refused, and framing is allowed exactly where the operator said.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { foreignRequests, launchBrowser, openPage, screenshot, startReceiver, startServer, waitUntil } from './lib.mjs';
import { openPortal, portalLink, sessionToken, startSite, text } from './portal-lib.mjs';

let server;
let browser;
let publisher;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  publisher = server.token('publisher');
});

const gqlPath = (store) => `/stores/${store}/graphql`;

/** GraphQL from inside the page, with the tab's own session. */
function pageGraphql(page, store, query, variables = {}) {
  return page.evaluate(async ({ store, query, variables }) => {
    const token = sessionStorage.getItem('hookrelay.portal.session');
    const r = await fetch(`/stores/${store}/graphql`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return { status: r.status, body: await r.json() };
  }, { store, query, variables });
}

function noData(s, what) {
  assert.deepEqual(foreignRequests(s.requests, server.origin), []);
  assert.deepEqual(s.cspViolations, []);
  assert.deepEqual(s.pageErrors, [], what);
}

test("store A's session sees none of store B's subscriptions, deliveries or auth profiles", async () => {
  server.createStore('storea');
  server.createStore('storeb');
  const bAdmin = server.token('store-admin', 'storeb');
  const receiver = await startReceiver();
  const bUrl = `${receiver.url}/secret-of-b`;
  const created = await server.graphqlOk(bAdmin, `mutation($url: String!) {
    createEventSubscription(input: { destination: { webhook: { url: $url } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId }
    webhook { createHttpsWebhook(input: { scope: "store/order/*", destination: $url }) { webhook { id } } }
    createAuthProfile(input: { authProfileAliasId: "b-profile", authConfig: { basicAuthConfig: { username: "b-user", password: "b-pass" } } }) { authProfileId }
  }`, { variables: { url: bUrl }, path: gqlPath('storeb') });
  const bSub = created.createEventSubscription.subscriptionId;
  const bHook = created.webhook.createHttpsWebhook.webhook.id;
  const { status } = await server.publish(publisher, { store: 'storeb', type: 'ORDER_CONFIRMED', data: { orderId: 'b-1' } });
  assert.equal(status, 202);
  await receiver.waitFor(1);
  const deliveries = await server.graphqlOk(bAdmin, '{ deliveries { edges { node { id } } } }', { path: gqlPath('storeb') });
  const bDelivery = deliveries.deliveries.edges[0].node.id;

  const s = await openPortal(browser, server, portalLink(server, { store: 'storea' }));
  const { page } = s;
  for (const [route, kind] of [
    [`#/subscriptions/${bSub}`, 'not-found'],
    [`#/subscriptions/${bHook}`, 'not-found'],
    [`#/subscriptions/${bHook}/edit`, 'not-found'],
    [`#/deliveries/${bDelivery}`, 'not-found'],
    [`#/auth-profiles/b-profile`, 'not-found'],
    ['#/stores/storeb/subscriptions', 'access-denied'],
    ['#/stores/storeb/log', 'access-denied'],
    [`#/stores/storeb/subscriptions/${bSub}`, 'access-denied'],
  ]) {
    await page.evaluate((h) => { location.hash = h; }, route);
    await page.waitForSelector(`main [data-error="${kind}"]`, { timeout: 10_000 });
    const main = await page.textContent('main');
    assert.ok(!main.includes('secret-of-b') && !main.includes('b-user'), `${route} shows none of B's data: ${main}`);
  }
  // The log and lists of A are empty of B's records.
  await page.evaluate(() => { location.hash = '#/log'; });
  await page.waitForSelector('[data-log]');
  assert.ok(!(await page.textContent('main')).includes(bDelivery));
  await page.evaluate(() => { location.hash = '#/auth-profiles'; });
  await page.waitForSelector('main h1:has-text("Auth profiles")');
  assert.ok(!(await page.textContent('main')).includes('b-profile'));
  noData(s, 'pages');

  // The API itself, with A's session: B's path is refused, B's ids are not there.
  const other = await pageGraphql(page, 'storeb', '{ eventSubscriptions { totalCount } }');
  assert.equal(other.status, 403);
  assert.equal(other.body.errors[0].extensions.classification, 'AccessDeniedError');
  assert.equal(other.body.data, null);
  const probes = [
    ['query($id: String!) { eventSubscription(subscriptionId: $id) { subscriptionId } }', { id: bSub }],
    ['query($id: String!) { delivery(id: $id) { id attempts { responseBody } } }', { id: bDelivery }],
    ['query($id: String!) { authProfile(authProfileId: $id) { authProfileId } }', { id: 'b-profile' }],
    ['query($id: String!) { deliveries(subscriptionId: $id) { totalCount } }', { id: bSub }],
    ['query($id: String!) { deliveryStats(subscriptionId: $id) { succeeded } }', { id: bSub }],
    ['mutation($id: String!) { retryDelivery(id: $id) { id } }', { id: bDelivery }],
    ['mutation($id: String!) { rotateSigningSecret(subscriptionId: $id) { signingSecret } }', { id: bSub }],
    ['mutation($id: String!) { sendTestEvent(subscriptionId: $id) { deliveryId } }', { id: bHook }],
    ['mutation($id: String!) { deleteEventSubscription(subscriptionId: $id) { subscriptionId } }', { id: bSub }],
    ['mutation($id: ID!) { webhook { updateWebhook(input: { id: $id, data: { isActive: false } }) { webhook { id } } } }', { id: bHook }],
    ['mutation($id: ID!) { webhook { deleteWebhook(id: $id) { id } } }', { id: bHook }],
    ['mutation { deleteAuthProfile(authProfileId: "b-profile") { authProfileId } }', {}],
  ];
  for (const [query, variables] of probes) {
    const r = await pageGraphql(page, 'storea', query, variables);
    assert.equal(r.body.errors?.[0]?.extensions?.classification, 'AccessDeniedError', `${query}: ${JSON.stringify(r.body)}`);
    assert.ok(!JSON.stringify(r.body).includes('secret-of-b'));
  }
  const mine = await pageGraphql(page, 'storea', '{ eventSubscriptions { totalCount } store { webhooks { totalCount } } authProfiles { totalCount } deliveries { totalCount } }');
  assert.deepEqual(mine.body.data, { eventSubscriptions: { totalCount: 0 }, store: { webhooks: { totalCount: 0 } }, authProfiles: { totalCount: 0 }, deliveries: { totalCount: 0 } });

  // B's records are untouched.
  const after = await server.graphqlOk(bAdmin, '{ eventSubscriptions { edges { node { status } } } store { webhooks { edges { node { status } } } } authProfiles { totalCount } deliveries { edges { node { attemptCount } } } }', { path: gqlPath('storeb') });
  assert.equal(after.eventSubscriptions.edges[0].node.status, 'ACTIVE');
  assert.equal(after.store.webhooks.edges[0].node.status, 'ACTIVE');
  assert.equal(after.authProfiles.totalCount, 1);
  assert.equal(receiver.count, 1, 'no test event, no retry went to B');
  await screenshot(page, 'portal-access-denied');
});

test("a client link acts as that client: another client's subscription is not found", async () => {
  server.createStore('storec');
  const one = server.token('client', 'storec');
  const two = server.token('client', 'storec');
  const mine = await server.graphqlOk(one, 'mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/one" } }, eventType: "RETURN_STARTED" }) { subscriptionId } }');
  const s = await openPortal(browser, server, portalLink(server, { store: 'storec', clientId: two.clientId }));
  const { page } = s;
  assert.match(await text(page, '#who'), new RegExp(two.clientId));
  assert.equal(await page.locator('tr[data-id]').count(), 0);
  await page.evaluate((id) => { location.hash = `#/subscriptions/${id}`; }, mine.createEventSubscription.subscriptionId);
  await page.waitForSelector('main [data-error="not-found"]');
  // What the client makes in the portal is its own: its token sees it, with the secret.
  await page.evaluate(() => { location.hash = '#/subscriptions/new'; });
  await page.waitForSelector('#subscription-form');
  await page.fill('#subscription-form input[name=url]', 'http://127.0.0.1:9/two');
  await page.check('#subscription-form .picker input[value=RETURN_STARTED]');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector('[data-subscription]');
  const seen = await server.graphqlOk(two, '{ eventSubscriptions { edges { node { signingSecret eventSubscriptionDetails { destination { ... on WebhookData { url } } } } } } }');
  assert.equal(seen.eventSubscriptions.edges.length, 1);
  assert.equal(seen.eventSubscriptions.edges[0].node.eventSubscriptionDetails.destination.url, 'http://127.0.0.1:9/two');
  assert.match(seen.eventSubscriptions.edges[0].node.signingSecret, /^whsec_/);
  noData(s, 'client pages');
});

test('an expired link and a used one get 410 and a clear page; a forged one 401', async () => {
  server.createStore('storel');
  const expiring = portalLink(server, { store: 'storel', ttl: '1s' });
  await new Promise((r) => setTimeout(r, 1500));
  const s = await openPage(browser, { origin: server.origin });
  let response = await s.page.goto(expiring.url);
  assert.equal(response.status(), 410);
  assert.match(await text(s.page, 'h1'), /expired/i);
  assert.match(await s.page.textContent('body'), /new link/i);
  assert.equal(await s.page.evaluate(() => sessionStorage.length), 0);
  await screenshot(s.page, 'portal-link-expired');

  const link = portalLink(server, { store: 'storel' });
  await openPortal(browser, server, link);
  response = await s.page.goto(link.url);
  assert.equal(response.status(), 410);
  assert.match(await text(s.page, 'h1'), /already been used/i);
  assert.equal(await s.page.evaluate(() => sessionStorage.length), 0);

  response = await s.page.goto(`${server.base}/portal/open/hrl_${'x'.repeat(43)}`);
  assert.equal(response.status(), 401);
  assert.match(await text(s.page, 'h1'), /not valid/i);
  assert.equal(await s.page.evaluate(() => sessionStorage.length), 0);

  // The exchange itself: once.
  const again = portalLink(server, { store: 'storel' });
  const secret = again.url.split('/').pop();
  const post = (body) => fetch(server.url('/portal/api/session'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const first = await post({ link: secret });
  assert.equal(first.status, 201);
  const second = await post({ link: secret });
  assert.equal(second.status, 410);
  assert.equal((await second.json()).error.code, 'LinkUsed');
});

test('a link used between its page load and the exchange shows "already used", and no session', async () => {
  server.createStore('storer');
  const link = portalLink(server, { store: 'storer' });
  const secret = link.url.split('/').pop();
  const s = await openPage(browser, { origin: server.origin });
  // Someone else redeems it just before this page's own exchange goes out.
  await s.context.route('**/portal/api/session', async (route) => {
    await fetch(server.url('/portal/api/session'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ link: secret }) });
    await route.continue();
  });
  await s.page.goto(link.url);
  await s.page.waitForSelector('[data-screen="link-used"]');
  assert.match(await text(s.page, 'main h1'), /already used/);
  assert.equal(new URL(s.page.url()).pathname, '/portal/', 'the secret left the address bar');
  assert.equal(await s.page.evaluate(() => sessionStorage.length), 0);
  assert.equal(await s.page.locator('#nav a').count(), 0);
});

test('a session that ended shows "session ended" on the next request, and is dropped', async () => {
  server.createStore('stores');
  const s = await openPortal(browser, server, portalLink(server, { store: 'stores' }));
  const token = await sessionToken(s.page);
  // Ended elsewhere (another tab's Sign out, or revoked): the server forgets it.
  const out = await fetch(server.url('/portal/api/logout'), { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(out.status, 204);
  await s.page.evaluate(() => { location.hash = '#/log'; });
  await s.page.waitForSelector('[data-screen="ended"]');
  assert.match(await text(s.page, 'main h1'), /session has ended/i);
  assert.match(await s.page.textContent('main'), /new link/i);
  assert.equal(await sessionToken(s.page), null);
  assert.equal(await s.page.locator('#nav a').count(), 0);
  await screenshot(s.page, 'portal-session-ended');

  // Sign out from the header ends it on the server too.
  const t = await openPortal(browser, server, portalLink(server, { store: 'stores' }));
  const token2 = await sessionToken(t.page);
  await t.page.click('[data-action=sign-out]');
  await t.page.waitForSelector('[data-screen="signed-out"]');
  const me = await fetch(server.url('/portal/api/me'), { headers: { authorization: `Bearer ${token2}` } });
  assert.equal(me.status, 401);
});

test('cross-origin POSTs are refused and change nothing', async () => {
  server.createStore('storex');
  const link = portalLink(server, { store: 'storex' });
  const secret = link.url.split('/').pop();
  const victim = await openPortal(browser, server, portalLink(server, { store: 'storex' }));
  const token = await sessionToken(victim.page);
  const site = await startSite((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>elsewhere</title>
<form id="f" method="POST" action="${server.base}/portal/api/session" enctype="text/plain">
  <input name='{"link":"${secret}","x":"' value='"}'><button id="go">go</button>
</form>
<script>
  window.results = {};
  fetch('${server.base}/portal/api/session', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ link: '${secret}' }) })
    .then(() => { results.noCors = 'sent'; }, (e) => { results.noCors = 'failed ' + e; });
  fetch('${server.base}/portal/api/logout', { method: 'POST', headers: { Authorization: 'Bearer ${token}' } })
    .then((r) => { results.logout = r.status; }, (e) => { results.logout = 'failed'; });
</script>`);
  });
  const s = await openPage(browser);
  const refused = s.page.waitForResponse((r) => r.url() === `${server.base}/portal/api/session` && r.request().method() === 'POST');
  await s.page.goto(`${site.origin}/`);
  assert.equal((await refused).status(), 403, 'the no-cors exchange is refused');
  await waitUntil(() => s.page.evaluate(() => window.results.logout), { message: 'the cross-origin logout settled' });
  assert.equal(await s.page.evaluate(() => window.results.logout), 'failed', 'no CORS: the browser never sends it');
  // A plain form POST (no preflight, no script) is refused by the server.
  const formPost = s.page.waitForResponse((r) => r.url() === `${server.base}/portal/api/session`);
  await s.page.click('#go');
  const answer = await formPost;
  assert.equal(answer.status(), 403);
  assert.equal((await answer.json()).error.code, 'CrossOrigin');

  // Nothing changed: the link still opens the portal once, and the session still works.
  const me = await fetch(server.url('/portal/api/me'), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  const opened = await openPortal(browser, server, link);
  assert.equal(await text(opened.page, 'main h1'), 'Subscriptions');
});

/** A dashboard on http://localhost:PORT that frames `?src=`. */
async function dashboard() {
  return startSite((req, res) => {
    const src = new URL(req.url, 'http://x').searchParams.get('src') || '';
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Platform dashboard</title><h1>Platform dashboard</h1>
<iframe id="portal" title="Webhooks" src="${src.replace(/"/g, '&quot;')}" width="1100" height="760"></iframe>`);
  });
}

test('embedded on the allowed origin the portal works in its frame; elsewhere it shows nothing', async () => {
  const site = await dashboard();
  const framed = await startServer({ args: ['--portal-frame-ancestors', site.origin] });
  framed.createStore('storef');
  const receiver = await startReceiver();
  const s = await openPage(browser, { viewport: { width: 1200, height: 900 } });
  const link = portalLink(framed, { store: 'storef' });
  await s.page.goto(`${site.origin}/?src=${encodeURIComponent(link.url)}`);
  const frame = await waitUntil(() => s.page.frames().find((f) => f.url().startsWith(`${framed.origin}/portal/`)), { message: 'the portal frame' });
  await frame.waitForSelector('main h1:has-text("Subscriptions")');
  assert.equal(await frame.getAttribute('#who [data-store]', 'data-store'), 'storef');
  // It works: a subscription made inside the frame, with the header-borne session.
  await frame.click('[data-action=new-subscription]');
  await frame.waitForSelector('#subscription-form');
  await frame.fill('#subscription-form input[name=url]', receiver.url);
  await frame.check('#subscription-form .picker input[value=ORDER_CONFIRMED]');
  await frame.click('#subscription-form button[type=submit]');
  await frame.waitForSelector('[data-subscription]');
  assert.equal(s.consoleErrors.length, 0, JSON.stringify(s.consoleErrors));
  assert.deepEqual(s.cspViolations, []);
  await screenshot(s.page, 'portal-embedded');

  // The default ('none'): the browser refuses to show it, and the link is not used up.
  const closed = await startServer();
  closed.createStore('storeg');
  const link2 = portalLink(closed, { store: 'storeg' });
  const t = await openPage(browser);
  const shell = t.page.waitForResponse((r) => r.url() === link2.url);
  await t.page.goto(`${site.origin}/?src=${encodeURIComponent(link2.url)}`);
  const answered = await shell;
  assert.match(answered.headers()['content-security-policy'], /frame-ancestors 'none'/);
  await t.page.waitForTimeout(1000);
  const portalFrames = [];
  for (const f of t.page.frames()) {
    if (f === t.page.mainFrame()) continue;
    let h1 = null;
    try {
      h1 = await f.$('main h1, #who');
    } catch {
      h1 = null; // an error page of the browser's
    }
    portalFrames.push({ url: f.url(), hasPortal: !!h1 });
  }
  assert.ok(portalFrames.length >= 1);
  assert.ok(portalFrames.every((f) => !f.hasPortal), JSON.stringify(portalFrames));
  assert.ok(portalFrames.every((f) => !f.url.startsWith(`${closed.origin}/portal/#`)), 'the app never ran');
  const redeem = await fetch(closed.url('/portal/api/session'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ link: link2.url.split('/').pop() }) });
  assert.equal(redeem.status, 201, 'the blocked frame did not use the link');
});
