// A Buy with Prime subscription's state from the portal: Disable pauses it (new events
// make no delivery), Enable resumes it, and one deactivated by its last failure comes
// back with Reactivate (setEventSubscriptionStatus, hookrelay's addition to that API).

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startReceiver, startServer, waitUntil } from './lib.mjs';
import { openPortal, portalLink } from './portal-lib.mjs';

const STORE = 'statusstore';
let server;
let browser;
let publisher;
let app;

before(async () => {
  server = await startServer({ args: ['--retry-schedule', '0.2'] });
  browser = await launchBrowser();
  server.createStore(STORE);
  publisher = server.token('publisher');
  app = server.token('store-admin', STORE);
});

async function status(id) {
  const data = await server.graphqlOk(app, `{ eventSubscription(subscriptionId: "${id}") { status } }`, { path: `/stores/${STORE}/graphql` });
  return data.eventSubscription.status;
}

async function publish() {
  const { status: code, body } = await server.publish(publisher, { store: STORE, type: 'ORDER_CONFIRMED', data: { n: 1 } });
  assert.equal(code, 202, JSON.stringify(body));
}

test('Disable, Enable and Reactivate a Buy with Prime subscription', async () => {
  const receiver = await startReceiver({ status: 503 });
  const made = await server.graphqlOk(app, `mutation($url: String!) { createEventSubscription(input: {
      destination: { webhook: { url: $url, method: POST } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }`,
  { variables: { url: receiver.urlFor('/bwp') }, path: `/stores/${STORE}/graphql` });
  const id = made.createEventSubscription.subscriptionId;

  // Its last retry fails: DEACTIVATED, and the page offers Reactivate.
  await publish();
  await waitUntil(async () => (await status(id)) === 'DEACTIVATED', { message: 'deactivation' });
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  await page.evaluate((sub) => { location.hash = `#/subscriptions/${sub}`; }, id);
  const row = page.locator(`[data-subscription="${id}"] .page-actions`);
  await row.locator('[data-action=reactivate]').waitFor();
  receiver.respond(200);
  await row.locator('[data-action=reactivate]').click();
  await row.locator('[data-action=disable]').waitFor();
  assert.equal(await status(id), 'ACTIVE');
  await screenshot(page, 'portal-status-active');

  // Disabled: a new event makes no delivery; enabled again: the next one arrives.
  await row.locator('[data-action=disable]').click();
  await row.locator('[data-action=enable]').waitFor();
  assert.equal(await status(id), 'INACTIVE');
  const before = receiver.count;
  await publish();
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(receiver.count, before, 'nothing sent while inactive');
  await row.locator('[data-action=enable]').click();
  await row.locator('[data-action=disable]').waitFor();
  await publish();
  await receiver.waitFor(before + 1, 10_000);
  assertClean(s, server.origin);
});
