// A store with some history (both API styles, a flaky endpoint, a dead one, a paused
// one), shown by the portal: the list, the log and the health page. Its screenshots are
// the ones in docs/ (target/screenshots/portal-overview-*.png).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startReceiver, startServer, waitUntil } from './lib.mjs';
import { openPortal, portalLink } from './portal-lib.mjs';

const clearToasts = (page) => page.evaluate(() => document.getElementById('toast').replaceChildren());

test('a store with history: subscriptions, log and health at a glance', async () => {
  const server = await startServer({ args: ['--retry-schedule', '1'] });
  const browser = await launchBrowser();
  const store = 'acme42';
  server.createStore(store);
  const admin = server.token('store-admin', store);
  const publisher = server.token('publisher');
  const path = `/stores/${store}/graphql`;
  const steady = await startReceiver({ path: '/webhooks/orders' });
  const flaky = await startReceiver({ path: '/hooks/returns' });
  // Every fourth delivery fails its first attempt, and its retry a second later succeeds.
  const seen = new Set();
  flaky.reply = (n, req) => {
    const id = req.headers['webhook-id'];
    const fail = !seen.has(id) && seen.size % 4 === 1;
    seen.add(id);
    return fail ? { status: 500, body: '{"error":"upstream timeout"}', headers: { 'content-type': 'application/json' } } : 200;
  };
  const dead = await startReceiver({ status: 503, body: 'Service Unavailable', path: '/carts' });
  const paused = await startReceiver({ path: '/catalog' });

  const mk = (query, variables) => server.graphqlOk(admin, query, { variables, path });
  const bwp = `mutation($url: String!, $types: [String!], $method: HttpMethod) {
    createEventSubscription(input: { destination: { webhook: { url: $url, method: $method } }, eventTypes: $types }) { subscriptionId } }`;
  const bc = `mutation($scope: String!, $url: String!, $active: Boolean!) {
    webhook { createHttpsWebhook(input: { scope: $scope, destination: $url, isActive: $active }) { webhook { id } } } }`;
  await mk(bwp, { url: steady.url, types: ['ORDER_CONFIRMED'], method: 'POST' });
  const returns = (await mk(bwp, { url: flaky.url, types: ['RETURN_STARTED', 'REFUND_REQUESTED'], method: 'PUT' })).createEventSubscription.subscriptionId;
  await mk(bc, { scope: 'store/order/*', url: `${steady.origin}/bigcommerce/orders`, active: true });
  await mk(bc, { scope: 'store/cart/abandoned', url: dead.url, active: true });
  await mk(bc, { scope: 'store/product/*', url: paused.url, active: false });

  const types = ['ORDER_CONFIRMED', 'RETURN_STARTED', 'REFUND_REQUESTED', 'store/order/created', 'store/order/updated', 'store/cart/abandoned', 'store/product/updated'];
  const events = Array.from({ length: 42 }, (_, i) => ({ store, type: types[i % types.length], data: { n: i } }));
  const resp = await fetch(server.url('/v1/events/batch'), { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${publisher.token}` }, body: JSON.stringify({ events }) });
  assert.equal(resp.status, 202);
  await waitUntil(async () => {
    const d = await mk('{ deliveries(first: 1000) { edges { node { status } } } }');
    return d.deliveries.edges.every((e) => e.node.status === 'SUCCEEDED' || e.node.status === 'FAILED' || e.node.status === 'PENDING');
  }, { timeoutMs: 20_000, message: 'deliveries settled' });
  await waitUntil(async () => (await mk('{ store { webhooks { edges { node { status } } } } }')).store.webhooks.edges.some((e) => e.node.status === 'DEACTIVATED'), { timeoutMs: 20_000, message: 'the dead endpoint deactivated' });
  await waitUntil(() => flaky.count >= 12 + 3, { timeoutMs: 20_000, message: 'the flaky endpoint got its retries' });

  const s = await openPortal(browser, server, portalLink(server, { store }));
  const { page } = s;
  await page.waitForSelector('tr[data-status=DEACTIVATED]');
  assert.equal(await page.locator('tr[data-status=INACTIVE]').count(), 1);
  assert.equal(await page.locator('tr[data-id]').count(), 5);
  await waitUntil(async () => (await page.locator('.health-cell').count()) === 5, { message: 'health in every row' });
  await clearToasts(page);
  await screenshot(page, 'portal-overview-subscriptions');

  await page.evaluate((id) => { location.hash = `#/log?subscription=${id}`; }, returns);
  await page.waitForSelector('[data-log] tbody > tr[data-delivery]');
  const retried = page.locator('[data-log] tbody > tr[data-delivery]').filter({ has: page.locator('td:nth-child(5)', { hasText: /^2$/ }) }).first();
  await retried.locator('[data-action=attempts]').click();
  await page.waitForSelector('tr.detail-row [data-status-code="500"]');
  await clearToasts(page);
  await screenshot(page, 'portal-overview-log');

  await page.click('nav.tabs a:has-text("Health")');
  await page.waitForSelector('.health-card svg.chart');
  await clearToasts(page);
  await screenshot(page, 'portal-overview-health');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.click('nav.tabs a:has-text("Subscriptions")');
  await page.waitForSelector('tr[data-id] .health-cell');
  await screenshot(page, 'portal-overview-dark');
  assertClean(s, server.origin);
});
