// Delivery options in the portal (docs/delivery.md, "Ordered delivery" and "Rate limits";
// docs/payloads.md, "Asymmetric signatures (ed25519)"): the new-subscription form sets
// ordered, rateLimit and signatureScheme, sending only what differs from the defaults;
// the subscription's page shows them, and an Ed25519 subscription's public key instead of
// a secret; the edit form changes them, an emptied rate limit removing it; a rate limit
// the API refuses shows the API's message on that field.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startReceiver, startServer } from './lib.mjs';
import { openPortal, portalLink, sessionToken, text } from './portal-lib.mjs';

const STORE = 'optionsstore';
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

async function countSubscriptions() {
  const data = await server.graphqlOk(admin, '{ eventSubscriptions { totalCount } store { webhooks { totalCount } } }', { path: `/stores/${STORE}/graphql` });
  return data.eventSubscriptions.totalCount + data.store.webhooks.totalCount;
}

/** Every GraphQL request the page sends, as `{query, variables}`. */
function recordGraphql(page) {
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().includes('/graphql')) sent.push(JSON.parse(r.postData()));
  });
  return sent;
}

/** Fills the "new subscription" form (as portal.test.mjs does). */
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

/** The message shown for `selector`'s field: the last id of its aria-describedby. */
async function fieldError(page, selector) {
  const errorId = (await page.getAttribute(selector, 'aria-describedby')).split(' ').pop();
  const error = page.locator(`[id="${errorId}"]`);
  assert.equal(await error.isVisible(), true, `the error of ${selector} is shown`);
  return (await error.textContent()).trim();
}

async function webhookOf(id) {
  const got = await server.graphqlOk(admin, '{ store { webhooks { edges { node { id ordered rateLimit ... on HttpsWebhook { signatureScheme } } } } } }', { path: `/stores/${STORE}/graphql` });
  return got.store.webhooks.edges.map((e) => e.node).find((n) => n.id === id);
}

/** The `v1a` entries of `webhook-signature` that verify with a `whpk_…` ed25519 public key. */
function verifyEd25519(publicKey, request) {
  const raw = Buffer.from(publicKey.replace(/^whpk_/, ''), 'base64');
  assert.equal(raw.length, 32, 'a 32-byte public key');
  // SubjectPublicKeyInfo of an Ed25519 key: a fixed 12-byte prefix, then the raw key.
  const key = crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
  const content = Buffer.from(`${request.headers['webhook-id']}.${request.headers['webhook-timestamp']}.${request.body}`);
  return (request.headers['webhook-signature'] || '').split(' ').filter((entry) => {
    const [version, sig] = entry.split(',');
    return version === 'v1a' && sig && crypto.verify(null, content, key, Buffer.from(sig, 'base64'));
  });
}

test('an ordered BigCommerce webhook with a rate limit; editing it to an empty limit removes the limit', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  const sent = recordGraphql(page);

  await fillNewSubscription(page, { kind: 'bigcommerce', url: `${receiver.url}/ordered`, events: ['store/order/*'] });
  // The options are labelled, in their own group, with the defaults set.
  const group = page.locator('#subscription-form fieldset:has(> legend:has-text("Delivery options"))');
  assert.equal(await group.count(), 1);
  assert.equal(await page.isChecked('#subscription-form input[name=ordered]'), false);
  assert.equal(await page.inputValue('#subscription-form input[name=rateLimit]'), '');
  assert.equal(await page.inputValue('#subscription-form select[name=signatureScheme]'), 'HMAC_SHA256');
  await page.getByLabel('Ordered by key', { exact: true }).check();
  await page.getByLabel('Rate limit', { exact: true }).fill('20');
  const hintId = (await page.getAttribute('#subscription-form input[name=ordered]', 'aria-describedby')).split(' ')[0];
  assert.match(await text(page, `[id="${hintId}"]`), /same orderingKey are delivered one at a time, in the order/);
  await screenshot(page, 'portal-delivery-options-form');
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.match(id, /^wh_/);

  // Only what was changed from the defaults was sent.
  const create = sent.find((r) => r.query.includes('createHttpsWebhook'));
  assert.equal(create.variables.input.ordered, true);
  assert.equal(create.variables.input.rateLimit, 20);
  assert.equal('signatureScheme' in create.variables.input, false, 'the default scheme is not sent');

  assert.equal(await page.getAttribute('[data-ordered]', 'data-ordered'), 'true');
  assert.match(await text(page, '[data-ordered]'), /^Yes/);
  assert.equal(await page.getAttribute('[data-rate-limit]', 'data-rate-limit'), '20');
  assert.equal(await text(page, '[data-rate-limit]'), '20 requests per second');
  assert.equal(await page.getAttribute('[data-signature-scheme]', 'data-signature-scheme'), 'HMAC_SHA256');
  assert.deepEqual(await webhookOf(id), { id, ordered: true, rateLimit: 20, signatureScheme: 'HMAC_SHA256' });
  await screenshot(page, 'portal-delivery-options-detail');

  // The edit form starts from the webhook's values; emptying the limit sends null.
  await page.click('[data-action=edit]');
  await page.waitForSelector('#subscription-form');
  assert.equal(await page.isChecked('#subscription-form input[name=ordered]'), true);
  assert.equal(await page.inputValue('#subscription-form input[name=rateLimit]'), '20');
  await page.getByLabel('Rate limit', { exact: true }).fill('');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector(`[data-subscription="${id}"] [data-rate-limit=""]`);
  assert.equal(await text(page, '[data-rate-limit]'), 'none');
  assert.equal(await page.getAttribute('[data-ordered]', 'data-ordered'), 'true', 'still ordered');
  const update = sent.find((r) => r.query.includes('updateWebhook'));
  assert.equal(update.variables.input.data.rateLimit, null);
  assert.ok('rateLimit' in update.variables.input.data, 'rateLimit: null, not left out');
  assert.deepEqual(await webhookOf(id), { id, ordered: true, rateLimit: null, signatureScheme: 'HMAC_SHA256' });

  // And back on again, then ordered off: the edit form sets both.
  await page.click('[data-action=edit]');
  await page.waitForSelector('#subscription-form');
  assert.equal(await page.inputValue('#subscription-form input[name=rateLimit]'), '');
  await page.getByLabel('Rate limit', { exact: true }).fill('5');
  await page.getByLabel('Ordered by key', { exact: true }).uncheck();
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector(`[data-subscription="${id}"] [data-rate-limit="5"]`);
  assert.equal(await page.getAttribute('[data-ordered]', 'data-ordered'), 'false');
  assert.deepEqual(await webhookOf(id), { id, ordered: false, rateLimit: 5, signatureScheme: 'HMAC_SHA256' });
  assertClean(s, server.origin);
});

test('a Buy with Prime subscription signed with Ed25519 shows its whpk_ public key and no secret', async () => {
  const receiver = await startReceiver();
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  const sent = recordGraphql(page);
  await fillNewSubscription(page, { url: `${receiver.url}/ed25519`, events: ['ORDER_CONFIRMED'] });
  await page.getByLabel('Signature', { exact: true }).selectOption('ED25519');
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.match(id, /^sub_/);
  const create = sent.find((r) => r.query.includes('createEventSubscription'));
  assert.equal(create.variables.input.signatureScheme, 'ED25519');
  assert.equal('ordered' in create.variables.input, false, 'unchanged options are not sent');
  assert.equal('rateLimit' in create.variables.input, false, 'unchanged options are not sent');

  assert.equal(await page.getAttribute('[data-signature-scheme]', 'data-signature-scheme'), 'ED25519');
  assert.equal(await text(page, '[data-signature-scheme]'), 'Ed25519');
  assert.equal(await text(page, '[data-rate-limit]'), 'none');
  assert.equal(await page.getAttribute('[data-ordered]', 'data-ordered'), 'false');
  const publicKey = await text(page, '[data-public-key]');
  assert.match(publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);
  assert.equal(await page.locator('[data-secret]').count(), 0, 'no secret field');
  assert.equal(await page.locator('[data-action=reveal]').count(), 0);
  assert.ok(!(await page.textContent('main')).includes('whsec_'), 'no whsec_ on the page');
  await screenshot(page, 'portal-delivery-options-ed25519');

  // What the owner (this session) reads through the API.
  const session = await sessionToken(page);
  const owner = await page.evaluate(async ({ store, id: subId, token }) => {
    const r = await fetch(`/stores/${store}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'query($id: String!) { eventSubscription(subscriptionId: $id) { signatureScheme signingSecret signingPublicKey } }', variables: { id: subId } }),
    });
    return (await r.json()).data.eventSubscription;
  }, { store: STORE, id, token: session });
  assert.deepEqual(owner, { signatureScheme: 'ED25519', signingSecret: null, signingPublicKey: publicKey });

  // Deliveries verify with that key (v1a).
  const { status } = await server.publish(publisher, { store: STORE, type: 'ORDER_CONFIRMED', data: { orderId: 'o-ed' } });
  assert.equal(status, 202);
  const [delivery] = await receiver.waitFor(1);
  assert.equal(verifyEd25519(publicKey, delivery).length, 1, `verifies ${delivery.headers['webhook-signature']}`);

  // Rotate makes a new key pair; both keys sign during the overlap.
  await page.click('[data-action=rotate]');
  await page.click('dialog[open] button:has-text("Rotate key")');
  await page.waitForSelector('[data-rotation-note]:has-text("until")');
  const newKey = await text(page, '[data-public-key]');
  assert.match(newKey, /^whpk_/);
  assert.notEqual(newKey, publicKey);
  assert.equal(await page.locator('[data-secret]').count(), 0);
  await server.publish(publisher, { store: STORE, type: 'ORDER_CONFIRMED', data: { orderId: 'o-ed-2' } });
  const second = (await receiver.waitFor(2))[1];
  assert.equal(verifyEd25519(newKey, second).length, 1, 'the new key signs');
  assert.equal(verifyEd25519(publicKey, second).length, 1, 'the old key still signs for 24 h');
  assertClean(s, server.origin);
});

test('a rate limit of 0 shows the API message on the rate-limit field, in both styles, and creates nothing', async () => {
  const s = await openPortal(browser, server, portalLink(server, { store: STORE }));
  const { page } = s;
  const before_ = await countSubscriptions();
  const rate = '#subscription-form input[name=rateLimit]';

  await fillNewSubscription(page, { url: 'http://127.0.0.1:9/zero', events: ['ORDER_CONFIRMED'] });
  await page.fill(rate, '0');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector(`${rate}[aria-invalid=true]`);
  assert.match(await fieldError(page, rate), /^\/createEventSubscription\/input\/rateLimit must be between 1 and 10000 /);
  assert.equal(await page.evaluate(() => document.activeElement.name), 'rateLimit', 'focus on the field');
  assert.equal(await page.locator('#subscription-form .form-top-error:not([hidden])').count(), 0);
  assert.equal(await page.getAttribute('#subscription-form input[name=url]', 'aria-invalid'), null);
  assert.equal(await countSubscriptions(), before_);

  // The same in the BigCommerce style; the values typed stay through the switch.
  await page.click('#subscription-form .segment label:has-text("BigCommerce webhook")');
  await page.waitForSelector('#subscription-form button[type=submit]:has-text("Create webhook")');
  assert.equal(await page.inputValue(rate), '0');
  await page.check('#subscription-form .picker input[value="store/order/created"]');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector(`${rate}[aria-invalid=true]`);
  assert.match(await fieldError(page, rate), /^\/webhook\/createHttpsWebhook\/input\/rateLimit must be between 1 and 10000 /);
  assert.equal(await countSubscriptions(), before_);
  await screenshot(page, 'portal-delivery-options-error');

  // A valid limit then goes through.
  await page.fill(rate, '10000');
  await page.click('#subscription-form button[type=submit]');
  const id = await createdSubscriptionId(page);
  assert.equal(await text(page, '[data-rate-limit]'), '10000 requests per second');
  assert.equal((await webhookOf(id)).rateLimit, 10000);
  assert.equal(await countSubscriptions(), before_ + 1);
  assertClean(s, server.origin);
});
