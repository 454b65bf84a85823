// The subscriber portal, through Debian's Chromium against the real binary and real
// receivers on 127.0.0.1: a link opens it, a webhook is made through its form, events
// arrive, the log shows what happened, Retry and Rotate work, forms show the API's own
// messages, "Copy as curl" gives a command that really works, and the pages hold up at
// 375 px and in dark mode.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startReceiver, startServer, waitUntil } from './lib.mjs';
import { openPortal, portalLink, runShell, sessionToken, text, verifySignature } from './portal-lib.mjs';

const STORE = 'portalstore';
let server;
let browser;
let publisher;
let admin; // a store-admin API token, to check what the portal did

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  server.createStore(STORE);
  publisher = server.token('publisher');
  admin = server.token('store-admin', STORE);
});

async function publish(type, data) {
  const { status, body } = await server.publish(publisher, { store: STORE, type, data });
  assert.equal(status, 202, JSON.stringify(body));
  return body.eventId;
}

async function countSubscriptions() {
  const data = await server.graphqlOk(admin, '{ eventSubscriptions { totalCount } store { webhooks { totalCount } } }', { path: `/stores/${STORE}/graphql` });
  return data.eventSubscriptions.totalCount + data.store.webhooks.totalCount;
}

/** Fills the "new subscription" form. */
async function fillNewSubscription(page, { kind = 'buywithprime', url, events }) {
  await page.click('[data-action=new-subscription]');
  await page.waitForSelector('#subscription-form');
  if (kind === 'bigcommerce') {
    await page.click('#subscription-form .segment label:has-text("BigCommerce webhook")');
    await page.waitForSelector('#subscription-form button[type=submit]:has-text("Create webhook")');
  }
  await page.fill('#subscription-form input[name=url]', url);
  for (const e of events) await page.check(`#subscription-form .picker input[value="${e}"]`);
}

async function createdSubscriptionId(page) {
  await page.waitForSelector('[data-subscription]');
  return page.getAttribute('[data-subscription]', 'data-subscription');
}

test('a link opens the portal; a webhook made in the form gets an event, and the log shows it SUCCEEDED', async () => {
  const receiver = await startReceiver();
  const link = portalLink(server, { store: STORE });
  const s = await openPortal(browser, server, link);
  const { page } = s;

  // The secret left the address bar, and the header says where and who.
  assert.equal(new URL(page.url()).pathname, '/portal/');
  assert.ok(!page.url().includes(link.url.split('/').pop()));
  assert.equal(await page.getAttribute('#who [data-store]', 'data-store'), STORE);
  assert.match(await text(page, '#who'), /Store admin/);
  assert.match(await sessionToken(page), /^hrp_/);
  assert.equal(await text(page, 'main h1'), 'Subscriptions');

  await fillNewSubscription(page, { url: receiver.url, events: ['ORDER_CONFIRMED'] });
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.match(id, /^sub_/);
  assert.equal(await page.getAttribute('.page-subtitle .badge', 'data-status'), 'ACTIVE');
  assert.match(await text(page, '.page-subtitle .badge'), /ACTIVE/);

  await publish('ORDER_CONFIRMED', { orderId: 'o-1' });
  const [request] = await receiver.waitFor(1);
  assert.equal(request.json().eventDescriptor ?? request.json().eventType ?? 'ORDER_CONFIRMED', 'ORDER_CONFIRMED');

  await page.click('[data-action=view-log]');
  await page.waitForSelector(`[data-log] tr[data-status=SUCCEEDED]`, { timeout: 20_000 });
  const row = page.locator('[data-log] tr[data-status=SUCCEEDED]').first();
  assert.match(await row.textContent(), /ORDER_CONFIRMED/);
  await row.locator('[data-action=attempts]').click();
  await page.waitForSelector('tr.detail-row [data-status-code="200"]');
  assert.equal(await row.locator('[data-action=attempts]').getAttribute('aria-expanded'), 'true');
  await screenshot(page, 'portal-log');

  // The list shows it, with its status in words.
  await page.click('nav.tabs a:has-text("Subscriptions")');
  await page.waitForSelector(`tr[data-id="${id}"]`);
  assert.match(await page.locator(`tr[data-id="${id}"] .badge`).textContent(), /ACTIVE/);
  await page.waitForSelector(`tr[data-id="${id}"] .health-cell .rate`);
  await screenshot(page, 'portal-subscriptions');

  // A test event, followed until it is final.
  await page.click(`tr[data-id="${id}"] a.dest-link`);
  await page.waitForSelector('[data-action=send-test]');
  await page.click('[data-action=send-test]');
  await page.waitForSelector('[data-test-result] .badge[data-status=SUCCEEDED]', { timeout: 20_000 });
  await receiver.waitFor(2);
  assert.equal(receiver.requests[1].json().data?.test ?? receiver.requests[1].json().payload?.test ?? true, true);

  // Health at a glance: one success, drawn as SVG.
  await page.click('nav.tabs a:has-text("Health")');
  await page.waitForSelector(`.health-card[data-subscription="${id}"] svg.chart rect.bar-ok`);
  assert.equal(await text(page, `.health-card[data-subscription="${id}"] [data-metric=success-rate]`), '100 %');
  await screenshot(page, 'portal-health');
  assertClean(s, server.origin);
});

test('a 500 shows in the log with its status, error and body; Retry after the fix succeeds', async () => {
  const receiver = await startReceiver();
  receiver.reply = () => ({ status: 500, body: '{"error":"database is down <b>now</b>"}', headers: { 'content-type': 'application/json' } });
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;

  // This time a BigCommerce webhook with a wildcard scope.
  await fillNewSubscription(page, { kind: 'bigcommerce', url: receiver.url, events: ['store/order/*'] });
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.match(id, /^wh_/);
  assert.match(await text(page, '.page-subtitle'), /BigCommerce webhook/);

  await publish('store/order/created', { id: 42 });
  await receiver.waitFor(1);
  await page.click('[data-action=view-log]');
  const row = page.locator('[data-log] tbody > tr[data-delivery]').first();
  await waitUntil(async () => (await row.locator('td').nth(4).textContent()) === '1', { message: 'one attempt in the log', timeoutMs: 20_000 });
  assert.equal(await row.getAttribute('data-status'), 'PENDING'); // waiting for its retry
  await row.locator('[data-action=attempts]').click();
  const attempt = page.locator('tr.detail-row tr.attempt').first();
  await attempt.waitFor();
  assert.equal(await attempt.locator('[data-status-code]').textContent(), '500');
  assert.match(await attempt.locator('[data-attempt-error]').textContent(), /500/);
  // The body is shown as text, never as markup.
  assert.equal(await attempt.locator('[data-response-body]').textContent(), '{"error":"database is down <b>now</b>"}');
  assert.equal(await page.locator('[data-response-body] b').count(), 0);
  await screenshot(page, 'portal-log-failed');

  receiver.reply = null;
  receiver.respond(200);
  await row.locator('[data-action=retry]').click();
  // retryDelivery must send a delivery that waits for its next retry now; when the API
  // leaves it waiting, the portal says so (and this test says why it failed).
  const outcome = await Promise.race([
    page.waitForSelector('[data-log] tbody > tr[data-status=SUCCEEDED]', { timeout: 20_000 }).then(() => 'sent'),
    page.waitForSelector('.toast-bad:has-text("Not sent now")', { timeout: 20_000 }).then(async (t) => `refused: ${await t.textContent()}`),
  ]);
  assert.equal(outcome, 'sent', 'retryDelivery of a PENDING delivery waiting for its retry did not send it now');
  await page.waitForSelector('[data-log] tbody > tr[data-status=SUCCEEDED]', { timeout: 20_000 });
  await receiver.waitFor(2);
  await page.waitForSelector('tr.detail-row [data-status-code="200"]', { timeout: 10_000 });
  const codes = await page.locator('tr.detail-row [data-status-code]').allTextContents();
  assert.deepEqual(codes, ['500', '200']);
  await screenshot(page, 'portal-log-retried');
  assertClean(s, server.origin);
});

test('Reveal, Copy and Rotate the signing secret; the next delivery verifies with the new one', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page, context } = s;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
  await fillNewSubscription(page, { url: receiver.url, events: ['REFUND_REQUESTED'] });
  await page.click('#subscription-form button[type=submit]');
  await createdSubscriptionId(page);

  // A link elsewhere leaks nothing: no referrer, a new tab.
  const docs = page.locator('a[href="https://www.standardwebhooks.com"]');
  assert.equal(await docs.getAttribute('rel'), 'noreferrer');
  assert.equal(await docs.getAttribute('target'), '_blank');

  // Hidden until revealed.
  const secretEl = page.locator('[data-secret]');
  assert.doesNotMatch(await secretEl.textContent(), /whsec_/);
  await page.click('[data-action=reveal]');
  const oldSecret = (await secretEl.textContent()).trim();
  assert.match(oldSecret, /^whsec_/);
  assert.equal(await page.getAttribute('[data-action=reveal]', 'aria-pressed'), 'true');
  await page.click('[data-action=copy-secret]');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), oldSecret);
  assert.match(await text(page, '[data-rotation-note]'), /24 hours/);

  // Rotate, through the confirmation dialog, by keyboard: Enter on Cancel says no first.
  await page.click('[data-action=rotate]');
  await page.waitForSelector('dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog', { state: 'detached' });
  await page.click('[data-action=rotate]');
  await page.click('dialog[open] button:has-text("Rotate secret")');
  await page.waitForSelector('[data-rotation-note]:has-text("until")');
  assert.doesNotMatch(await secretEl.textContent(), /whsec_/, 'hidden again after the rotation');
  await page.click('[data-action=reveal]');
  const newSecret = (await secretEl.textContent()).trim();
  assert.match(newSecret, /^whsec_/);
  assert.notEqual(newSecret, oldSecret);

  await publish('REFUND_REQUESTED', { refundId: 'r-1' });
  const [delivery] = await receiver.waitFor(1);
  assert.equal(verifySignature(newSecret, delivery).length, 1, `new secret verifies ${delivery.headers['webhook-signature']}`);
  // Both sign during the overlap.
  assert.equal(verifySignature(oldSecret, delivery).length, 1, 'the old secret still signs for 24 h');
  assert.equal(delivery.headers['webhook-signature'].split(' ').length, 2);
  assertClean(s, server.origin);
});

test('bad input shows the API message next to the field and creates nothing', async () => {
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  const before_ = await countSubscriptions();

  // A private address (not in --allowed-networks): the server's own check refuses it.
  await fillNewSubscription(page, { url: 'https://10.1.2.3/hook', events: ['ORDER_CONFIRMED'] });
  await page.click('#subscription-form button[type=submit]');
  const url = page.locator('#subscription-form input[name=url]');
  await page.waitForSelector('#subscription-form input[name=url][aria-invalid=true]');
  const errorId = (await url.getAttribute('aria-describedby')).split(' ').pop();
  const message = await page.locator(`[id="${errorId}"]`).textContent();
  assert.match(message, /^\/createEventSubscription\/input\/destination\/webhook\/url /);
  assert.equal(await page.locator(`[id="${errorId}"]`).isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement.name), 'url', 'focus on the field');
  assert.equal(await countSubscriptions(), before_);

  // A header hookrelay sets itself: the message lands on that header's row.
  await url.fill('http://127.0.0.1:9/hook');
  await page.click('#subscription-form button:has-text("Add header")');
  await page.fill('#subscription-form .kv-row .kv-key', 'webhook-id');
  await page.fill('#subscription-form .kv-row .kv-value', 'x');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector('#subscription-form .kv-row .kv-key[aria-invalid=true]');
  assert.match(await text(page, '#subscription-form .kv-row .field-error'), /headers\/0\/key "webhook-id" is set by hookrelay/);
  assert.equal(await url.getAttribute('aria-invalid'), null, 'the URL is fine now');
  assert.equal(await countSubscriptions(), before_);

  // No event type: the message has no field of its own, so it is at the form's top.
  await page.click('#subscription-form .kv-row button:has-text("Remove")');
  await page.uncheck('#subscription-form .picker input[value=ORDER_CONFIRMED]');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector('#subscription-form .form-top-error:not([hidden])');
  assert.match(await text(page, '#subscription-form .form-top-error'), /must name at least one event type/);
  assert.equal(await countSubscriptions(), before_);
  await screenshot(page, 'portal-form-error');
  // (GraphQL answers 200 with errors: nothing for the console to complain about.)
  assertClean(s, server.origin);
});

test('Copy as curl gives the exact request, with $HOOKRELAY_TOKEN and never the session', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page, context } = s;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
  const before_ = await countSubscriptions();
  await fillNewSubscription(page, { url: `${receiver.url}?q='quoted'&x=$HOME`, events: ['RETURN_STARTED', 'RETURN_COMPLETED'] });
  await page.click('#subscription-form [data-action=copy-curl]');
  await page.waitForSelector('[data-curl]');
  const command = await text(page, '[data-curl]');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);
  const session = await sessionToken(page);
  assert.ok(!command.includes(session), 'the session token is not in the command');
  assert.match(command, /-H "X-Auth-Token: \$HOOKRELAY_TOKEN"/);
  assert.match(command, /-H 'Content-Type: application\/json'/);
  assert.ok(command.includes(`${server.base}/stores/${STORE}/graphql`));
  assert.equal(await countSubscriptions(), before_, 'copying sends nothing');

  // It runs as it is, with a token of one's own, and does what the form would have done.
  const run = runShell(command, { HOOKRELAY_TOKEN: admin.token, HOME: '/nonexistent-home' });
  assert.equal(run.status, 0, run.stderr);
  const answer = JSON.parse(run.stdout);
  assert.equal(answer.errors, undefined, run.stdout);
  const id = answer.data.createEventSubscription.subscriptionId;
  const got = await server.graphqlOk(admin, `query($id: String!) { eventSubscription(subscriptionId: $id) { eventSubscriptionDetails { eventTypes destination { ... on WebhookData { url } } } } }`, { variables: { id }, path: `/stores/${STORE}/graphql` });
  assert.deepEqual(got.eventSubscription.eventSubscriptionDetails.eventTypes, ['RETURN_STARTED', 'RETURN_COMPLETED']);
  assert.equal(got.eventSubscription.eventSubscriptionDetails.destination.url, `${receiver.url}?q='quoted'&x=$HOME`);
  assertClean(s, server.origin);
});

test('delete asks first, in a dialog usable by keyboard', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  await fillNewSubscription(page, { url: `${receiver.url}/to-delete`, events: ['ITEM_CANCELLED'] });
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  await page.click('nav.tabs a:has-text("Subscriptions")');
  const del = page.locator(`tr[data-id="${id}"] [data-action=delete]`);
  await del.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Enter'); // on Cancel
  await page.waitForSelector('dialog', { state: 'detached' });
  assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 1, 'still there');
  await del.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Tab');
  assert.match(await page.evaluate(() => document.activeElement.textContent), /Delete subscription/);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`tr[data-id="${id}"]`, { state: 'detached' });
  const { body } = await server.graphql(admin, `query($id: String!) { eventSubscription(subscriptionId: $id) { subscriptionId } }`, { variables: { id }, path: `/stores/${STORE}/graphql` });
  assert.equal(body.errors[0].extensions.classification, 'AccessDeniedError');
  assertClean(s, server.origin);
});

test('readable at 375 px wide, and in dark mode', async () => {
  const mobile = await openPortal(browser, server, portalLink(server, { store: STORE }), { viewport: { width: 375, height: 812 } });
  const { page } = mobile;
  await page.waitForSelector('tr[data-id]');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no sideways scrolling on the list (${overflow} px)`);
  // Table rows are cards, each cell labelled.
  assert.equal(await page.locator('table.data thead').evaluate((el) => getComputedStyle(el).position), 'absolute');
  await screenshot(page, 'portal-mobile');
  await page.click('nav.tabs a:has-text("Delivery log")');
  await page.waitForSelector('[data-log] tr[data-delivery]');
  await page.locator('[data-log] tr[data-delivery] [data-action=attempts]').first().click();
  await page.waitForSelector('tr.detail-row tr.attempt');
  const overflowLog = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflowLog <= 0, `no sideways scrolling on the log (${overflowLog} px)`);
  await screenshot(page, 'portal-mobile-log');
  assertClean(mobile, server.origin);

  const dark = await openPortal(browser, server, portalLink(server, { store: STORE }), { colorScheme: 'dark' });
  await dark.page.waitForSelector('tr[data-id]');
  const bg = await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 120, `a dark background (${bg})`);
  await screenshot(dark.page, 'portal-dark');
  assertClean(dark, server.origin);
});

test('edit a webhook; disable and enable it; data is shown as text, never as markup', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  await fillNewSubscription(page, { kind: 'bigcommerce', url: `${receiver.url}/edit-me`, events: ['store/cart/created'] });
  await page.click('#subscription-form button:has-text("Add header")');
  await page.fill('#subscription-form .kv-row .kv-key', 'X-Shop');
  await page.fill('#subscription-form .kv-row .kv-value', '<img src=x onerror="window.pwned=1">');
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.match(await page.textContent('main'), /X-Shop: <img src=x onerror="window.pwned=1">/);
  assert.equal(await page.locator('main img').count(), 0);

  await page.click('[data-action=edit]');
  await page.waitForSelector('#subscription-form');
  assert.equal(await page.isChecked('#subscription-form .picker input[value="store/cart/created"]'), true);
  await page.check('#subscription-form .picker input[value="store/cart/*"]');
  await page.fill('#subscription-form input[name=url]', `${receiver.url}/edited`);
  await page.click('#subscription-form .kv-row button:has-text("Remove")');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector(`[data-subscription="${id}"] .dest-title:has-text("/edited")`);
  const got = await server.graphqlOk(admin, '{ store { webhooks { edges { node { id scope destination headers { key } status } } } } }', { path: `/stores/${STORE}/graphql` });
  const hook = got.store.webhooks.edges.map((e) => e.node).find((n) => n.id === id);
  assert.deepEqual(hook, { id, scope: 'store/cart/*', destination: `${receiver.url}/edited`, headers: [], status: 'ACTIVE' });

  await page.click('[data-action=disable]');
  await page.waitForSelector('.page-subtitle .badge[data-status=INACTIVE]');
  assert.match(await text(page, '.page-subtitle .badge'), /INACTIVE/);
  await publish('store/cart/updated', { id: 3 });
  await page.click('[data-action=enable]');
  await page.waitForSelector('.page-subtitle .badge[data-status=ACTIVE]');
  await publish('store/cart/updated', { id: 4 });
  const [only] = await receiver.waitFor(1);
  assert.equal(only.json().data.id, 4, 'nothing was delivered while it was disabled');
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assertClean(s, server.origin);
});

test('the log pages with Next and Previous, and filters by status and time', async () => {
  const receiver = await startReceiver();
  const made = await server.graphqlOk(admin, 'mutation($url: String!) { createEventSubscription(input: { destination: { webhook: { url: $url } }, eventType: "INVENTORY_CHANGED" }) { subscriptionId } }', { variables: { url: receiver.url }, path: `/stores/${STORE}/graphql` });
  const id = made.createEventSubscription.subscriptionId;
  const events = Array.from({ length: 30 }, (_, i) => ({ store: STORE, type: 'INVENTORY_CHANGED', data: { n: i } }));
  const resp = await fetch(server.url('/v1/events/batch'), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${publisher.token}` }, body: JSON.stringify({ events }) });
  assert.equal(resp.status, 202);
  await receiver.waitFor(30);

  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  await page.evaluate((sub) => { location.hash = `#/log?subscription=${sub}`; }, id);
  await page.waitForSelector('[data-log] tbody > tr[data-delivery]');
  const rows = () => page.locator('[data-log] tbody > tr[data-delivery]');
  assert.equal(await rows().count(), 25);
  assert.match(await text(page, '.log-summary'), /^30 deliveries match/);
  assert.equal(await page.isDisabled('[data-action=previous]'), true);
  const firstPage = await rows().first().getAttribute('data-delivery');
  await page.click('[data-action=next]');
  await waitUntil(async () => (await rows().count()) === 5, { message: 'the second page' });
  assert.equal(await page.isDisabled('[data-action=next]'), true);
  await page.click('[data-action=previous]');
  await waitUntil(async () => (await rows().count()) === 25 && (await rows().first().getAttribute('data-delivery')) === firstPage, { message: 'back to the first page' });

  await page.selectOption('select[name=status]', 'FAILED');
  await page.click('form.filters button[type=submit]');
  await page.waitForSelector('[data-log] .empty');
  assert.equal(await rows().count(), 0);
  assert.match(new URL(page.url()).hash, /status=FAILED/);

  await page.selectOption('select[name=status]', 'SUCCEEDED');
  await page.fill('input[name=until]', '2020-01-01T00:00');
  await page.click('form.filters button[type=submit]');
  await page.waitForSelector('[data-log] .empty');
  assert.equal(await rows().count(), 0, 'nothing before 2020');
  await page.fill('input[name=until]', '');
  await page.fill('input[name=since]', '2020-01-01T00:00');
  await page.click('form.filters button[type=submit]');
  await waitUntil(async () => (await rows().count()) === 25, { message: 'everything since 2020' });
  assertClean(s, server.origin);
});

test('every control has a label, and the pages can be used by keyboard', async () => {
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  const unlabelled = () => page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea, main button, main a[href]')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => {
      if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
      if (el.labels && el.labels.length) return false;
      if ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim()) return false;
      return true;
    })
    .map((el) => el.outerHTML.slice(0, 120)));
  for (const route of ['#/subscriptions', '#/subscriptions/new', '#/log', '#/auth-profiles/new', '#/health', '#/eventbridge']) {
    await page.evaluate((h) => { location.hash = h; }, route);
    await page.waitForSelector('main h1');
    await page.waitForTimeout(300);
    assert.deepEqual(await unlabelled(), [], `unlabelled controls on ${route}`);
  }
  // The new-subscription form by keyboard alone: Tab to the URL, type, pick, submit.
  await page.evaluate(() => { location.hash = '#/subscriptions/new'; });
  await page.waitForSelector('#subscription-form');
  await page.focus('#subscription-form input[name=url]');
  const focusRing = await page.evaluate(() => getComputedStyle(document.activeElement).boxShadow);
  assert.notEqual(focusRing, 'none', 'a visible focus');
  await page.keyboard.type('http://127.0.0.1:9/keyboard');
  await page.focus('#subscription-form .picker input[type=search]');
  await page.keyboard.type('RETURN_STARTED');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Space');
  assert.equal(await page.isChecked('#subscription-form .picker input[value=RETURN_STARTED]'), true);
  await page.focus('#subscription-form input[name=url]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-subscription]');
  assertClean(s, server.origin);
});
