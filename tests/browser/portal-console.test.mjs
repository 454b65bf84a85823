// The operator console, deactivation and its way back (Reactivate, Replay, Retry), auth
// profiles with write-only secrets, and EventBridge sources with the AWS CLI commands
// that follow, through the real browser against the real binary.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startReceiver, startServer, waitUntil } from './lib.mjs';
import { openPortal, portalLink, startFakeEventBridge, text } from './portal-lib.mjs';

let browser;

before(async () => {
  browser = await launchBrowser();
});

test('console: a deactivated webhook across stores; Reactivate, Replay and Retry bring it back', async () => {
  // One retry after a second: a failing endpoint is deactivated within seconds.
  const server = await startServer({ args: ['--retry-schedule', '1'] });
  const store = 'opsstore';
  server.createStore(store);
  server.createStore('quietstore');
  const storeAdmin = server.token('store-admin', store);
  const publisher = server.token('publisher');
  const receiver = await startReceiver({ status: 503, body: 'maintenance' });
  const made = await server.graphqlOk(storeAdmin, `mutation($url: String!) { webhook { createHttpsWebhook(input: { scope: "store/cart/*", destination: $url }) { webhook { id } } } }`, { variables: { url: receiver.url }, path: `/stores/${store}/graphql` });
  const id = made.webhook.createHttpsWebhook.webhook.id;
  assert.equal((await server.publish(publisher, { store, type: 'store/cart/created', data: { id: 1 } })).status, 202);
  await waitUntil(async () => {
    const d = await server.graphqlOk(storeAdmin, '{ store { webhooks { edges { node { status } } } } }', { path: `/stores/${store}/graphql` });
    return d.store.webhooks.edges[0].node.status === 'DEACTIVATED';
  }, { message: 'the webhook deactivated', timeoutMs: 20_000 });

  const s = await openPortal(browser, server, portalLink(server, { admin: true }));
  const { page } = s;
  assert.match(new URL(page.url()).hash, /^#\/console/);
  assert.match(await text(page, '#who'), /Operator/);
  await page.waitForSelector(`[data-console] tr[data-store="${store}"]`);
  assert.ok(await page.locator('[data-console] tr[data-store="quietstore"]').count());
  assert.match(await page.locator(`tr[data-store="${store}"]`).textContent(), /1/);
  const deactivated = page.locator(`[data-console] tr[data-subscription="${id}"]`);
  await deactivated.waitFor();
  assert.match(await deactivated.textContent(), new RegExp(receiver.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await page.waitForSelector('[data-chart=per-minute] svg rect.bar-bad');
  assert.match(await page.getAttribute('[data-chart=per-minute] svg', 'aria-label'), /2 attempts, 2 failed/);
  for (const key of ['due', 'scheduled', 'parked', 'inFlight']) assert.match(await text(page, `[data-metric=${key}]`), /^\d+$/);
  await screenshot(page, 'portal-console');

  // The operator opens the store's pages.
  await deactivated.locator(`a[href$="/subscriptions/${id}"]`).click();
  await page.waitForSelector(`[data-subscription="${id}"]`);
  assert.equal(await page.getAttribute('#who [data-store]', 'data-store'), store);
  assert.equal(await page.getAttribute('.page-subtitle .badge', 'data-status'), 'DEACTIVATED');
  assert.match(await page.textContent('main'), /Every retry of a delivery failed/);
  receiver.respond(200);
  await page.click('[data-action=reactivate]');
  await page.waitForSelector('.page-subtitle .badge[data-status=ACTIVE]');

  // The failed delivery stays FAILED (reactivation sends parked ones): Replay sends it.
  await page.click('[data-action=view-log]');
  await page.waitForSelector('[data-log] tbody > tr[data-status=FAILED]');
  const before_ = receiver.count;
  await page.click('.replay-panel > summary');
  await page.click('.replay-panel button[type=submit]');
  await page.waitForSelector('dialog[open]');
  await page.click('dialog[open] button:has-text("Replay")');
  await page.waitForSelector('[data-replay-result]:has-text("1 failed delivery was started again")');
  await page.waitForSelector('[data-log] tbody > tr[data-status=SUCCEEDED]', { timeout: 20_000 });
  assert.equal(receiver.count, before_ + 1);

  // Retry sends a final delivery once more.
  await page.locator('[data-log] tbody > tr[data-status=SUCCEEDED] [data-action=retry]').click();
  await receiver.waitFor(before_ + 2);
  // (Retry opens the delivery's attempts.)
  await page.waitForSelector('[data-log] tbody > tr[data-delivery] [data-action=attempts][aria-expanded=true]');
  await waitUntil(async () => (await page.locator('tr.detail-row [data-status-code]').allTextContents()).join(',') === '503,503,200,200', { message: 'four attempts in the log' });

  // Back to the console; the deactivated list is empty now.
  await page.click('nav.tabs a:has-text("Operator console")');
  await page.waitForSelector('[data-empty=deactivated]');
  assertClean(s, server.origin);
});

test('auth profiles: created, listed with the secret as "set" only, edited, refused on bad input, deleted', async () => {
  const server = await startServer();
  const store = 'authstore';
  server.createStore(store);
  const storeAdmin = server.token('store-admin', store);
  const s = await openPortal(browser, server, portalLink(server, { store }));
  const { page } = s;
  await page.click('nav.tabs a:has-text("Auth profiles")');
  await page.click('[data-action=new-auth-profile]');
  await page.waitForSelector('#auth-profile-form');
  await page.fill('#auth-profile-form input[name=authProfileAliasId]', 'my-oauth');
  await page.fill('#auth-profile-form input[name=authEndpoint]', 'ftp://auth.example.com/token');
  await page.fill('#auth-profile-form input[name=clientId]', 'client-1');
  await page.fill('#auth-profile-form input[name=clientSecret]', 'top-secret-value');
  await page.click('#auth-profile-form button[type=submit]');
  await page.waitForSelector('#auth-profile-form input[name=authEndpoint][aria-invalid=true]');
  assert.match(await page.locator('#auth-profile-form .field.has-error .field-error').textContent(), /^\/createAuthProfile\/input\/authConfig\/oAuthConfig\/authEndpoint /);
  assert.equal((await server.graphqlOk(storeAdmin, '{ authProfiles { totalCount } }')).authProfiles.totalCount, 0);

  await page.fill('#auth-profile-form input[name=authEndpoint]', 'http://127.0.0.1:9/token');
  await page.click('#auth-profile-form button:has-text("Add body parameter")');
  await page.fill('#auth-profile-form .kv-row .kv-key', 'scope');
  await page.fill('#auth-profile-form .kv-row .kv-value', 'orders.read');
  await page.click('#auth-profile-form button[type=submit]');
  await page.waitForSelector('tr[data-auth-profile="my-oauth"]');
  const row = page.locator('tr[data-auth-profile="my-oauth"]');
  assert.match(await row.textContent(), /OAuth 2\.0/);
  assert.match(await row.textContent(), /client-1/);
  assert.equal(await row.locator('[data-secret-state]').textContent(), 'set');
  assert.ok(!(await page.content()).includes('top-secret-value'));

  // Edit: the secret is never filled in; it must be given again.
  await row.locator('a:has-text("Edit")').click();
  await page.waitForSelector('#auth-profile-form');
  assert.equal(await page.inputValue('#auth-profile-form input[name=clientSecret]'), '');
  assert.equal(await page.inputValue('#auth-profile-form input[name=clientId]'), 'client-1');
  assert.ok(!(await page.content()).includes('top-secret-value'));
  await page.fill('#auth-profile-form input[name=clientId]', 'client-2');
  await page.click('#auth-profile-form button[type=submit]');
  await page.waitForSelector('#auth-profile-form .field.has-error');
  assert.match(await page.locator('#auth-profile-form .field.has-error .field-error').textContent(), /clientSecret must not be empty/);
  await page.fill('#auth-profile-form input[name=clientSecret]', 'another-secret');
  await page.click('#auth-profile-form button[type=submit]');
  await page.waitForSelector('tr[data-auth-profile="my-oauth"]:has-text("client-2")');
  const stored = await server.graphqlOk(storeAdmin, '{ authProfile(authProfileId: "my-oauth") { authConfig { oAuthConfig { clientParameters { clientId } httpParameters { bodyParameters { key value } } } } } }');
  assert.equal(stored.authProfile.authConfig.oAuthConfig.clientParameters.clientId, 'client-2');
  assert.deepEqual(stored.authProfile.authConfig.oAuthConfig.httpParameters.bodyParameters, [{ key: 'scope', value: 'orders.read' }]);

  // Basic auth, then a subscription that uses the OAuth profile.
  await page.click('[data-action=new-auth-profile]');
  await page.click('#auth-profile-form .segment label:has-text("HTTP Basic")');
  await page.fill('#auth-profile-form input[name=authProfileAliasId]', 'basic-one');
  await page.fill('#auth-profile-form input[name=username]', 'user');
  await page.fill('#auth-profile-form input[name=password]', 'pw-value-123');
  await page.click('#auth-profile-form button[type=submit]');
  await page.waitForSelector('tr[data-auth-profile="basic-one"]');
  assert.ok(!(await page.content()).includes('pw-value-123'));
  await page.click('nav.tabs a:has-text("Subscriptions")');
  await page.click('[data-action=new-subscription]');
  await page.waitForSelector('#subscription-form');
  await page.fill('#subscription-form input[name=url]', 'http://127.0.0.1:9/hook');
  await page.check('#subscription-form .picker input[value=ORDER_CONFIRMED]');
  await page.selectOption('#subscription-form select[name=authProfileId]', 'my-oauth');
  await page.click('#subscription-form button[type=submit]');
  await page.waitForSelector('[data-subscription]');
  assert.match(await page.textContent('main'), /my-oauth/);

  // Deleting a profile an active subscription uses is refused, with the API's words.
  await page.click('nav.tabs a:has-text("Auth profiles")');
  await page.locator('tr[data-auth-profile="my-oauth"] [data-action=delete]').click();
  await page.click('dialog[open] button:has-text("Delete auth profile")');
  await page.waitForSelector('.toast-bad:has-text("is used by active subscriptions")');
  await page.locator('tr[data-auth-profile="basic-one"] [data-action=delete]').click();
  await page.click('dialog[open] button:has-text("Delete auth profile")');
  await page.waitForSelector('tr[data-auth-profile="basic-one"]', { state: 'detached' });
  assert.equal((await server.graphqlOk(storeAdmin, '{ authProfiles { totalCount } }')).authProfiles.totalCount, 1);
  await screenshot(page, 'portal-auth-profiles');
  assertClean(s, server.origin);
});

test('EventBridge: a new partner event source, then the exact AWS CLI commands with Copy buttons', async () => {
  const aws = await startFakeEventBridge();
  const server = await startServer({ env: aws.env });
  const store = 'ebstore';
  server.createStore(store);
  const s = await openPortal(browser, server, portalLink(server, { store }));
  const { page, context } = s;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
  await page.click('nav.tabs a:has-text("EventBridge")');
  await page.waitForSelector('#event-source-form');

  await page.fill('#event-source-form input[name=awsAccount]', '1234');
  await page.fill('#event-source-form input[name=eventSourceName]', 'Final-Test-1');
  await page.click('#event-source-form button[type=submit]');
  await page.waitForSelector('#event-source-form input[name=awsAccount][aria-invalid=true]');
  assert.match(await page.locator('#event-source-form .field.has-error .field-error').textContent(), /awsAccount must be a 12-digit AWS account id/);
  assert.equal(aws.calls.length, 0, 'nothing went to AWS');

  await page.fill('#event-source-form input[name=awsAccount]', '111122223333');
  await page.selectOption('#event-source-form select[name=eventSourceRegion]', 'US_EAST_1');
  await page.click('#event-source-form button[type=submit]');
  await page.waitForSelector('.commands-panel [data-aws-command]');
  const name = `aws.partner/hookrelay.example/${store}/final-test-1`;
  const commands = await page.locator('[data-aws-command]').allTextContents();
  assert.deepEqual(commands, [
    `aws events create-event-bus --name ${name} --event-source-name ${name} --region us-east-1`,
    `aws events put-rule --name hookrelay-final-test-1 --event-bus-name ${name} --event-pattern '{"detail-type":["bigCommerceWebhook"]}' --region us-east-1`,
    `aws events put-targets --rule hookrelay-final-test-1 --event-bus-name ${name} --targets Id=1,Arn=arn:aws:sqs:us-east-1:111122223333:YOUR-QUEUE --region us-east-1`,
  ]);
  const create = aws.calls.find((c) => c.op === 'CreatePartnerEventSource');
  assert.deepEqual(create.input, { Account: '111122223333', Name: name });
  await page.fill('.commands-panel input', 'arn:aws:sqs:us-east-1:111122223333:orders');
  assert.match((await page.locator('[data-aws-command]').allTextContents())[2], /Arn=arn:aws:sqs:us-east-1:111122223333:orders /);
  await page.locator('.commands-panel .command').first().locator('button:has-text("Copy")').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), commands[0]);
  await screenshot(page, 'portal-eventbridge');

  // Subscribe the source to a scope: an EventBridge webhook.
  const srcRow = page.locator('tr[data-event-source]').first();
  assert.match(await srcRow.textContent(), /final-test-1/);
  await srcRow.locator('[data-action=subscribe]').click();
  await page.check('form[aria-label^="Subscribe"] .picker input[value="store/category/updated"]');
  await page.click('form[aria-label^="Subscribe"] button[type=submit]');
  await page.waitForSelector('[data-subscription]');
  assert.match(await text(page, '.page-subtitle'), /BigCommerce EventBridge webhook/);
  assertClean(s, server.origin);
});
