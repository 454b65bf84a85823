// The portal shows every destination kind (docs/destinations.md): an SQS queue, an SNS
// topic, a RabbitMQ exchange and a NATS subject, each named by its kind, with a broker's
// password masked on every page and never sent to the browser.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, screenshot, startServer } from './lib.mjs';
import { openPortal, portalLink, text } from './portal-lib.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

const PASSWORD = 'rabbit-pass-s3cret';
const TOKEN = 'nats-token-s3cret';

test('queues, topics and brokers are listed by kind, and a broker password is never shown', async () => {
  server.createStore('dests');
  const admin = server.token('store-admin', 'dests');
  const made = await server.graphqlOk(admin, `mutation($amqp: String!, $nats: String!) {
    sqs: createEventSubscription(input: { eventType: "ORDER_CONFIRMED", destination: { sqs: {
      queueUrl: "https://sqs.us-east-1.amazonaws.com/123456789012/orders", region: "us-east-1" } } }) { subscriptionId }
    sns: createEventSubscription(input: { eventType: "ORDER_CONFIRMED", destination: { sns: {
      topicArn: "arn:aws:sns:us-east-1:123456789012:orders" } } }) { subscriptionId }
    rabbitmq: createEventSubscription(input: { eventType: "ORDER_CONFIRMED", destination: { rabbitmq: {
      url: $amqp, exchange: "events", routingKey: "orders" } } }) { subscriptionId }
    nats: createEventSubscription(input: { eventType: "ORDER_CONFIRMED", destination: { nats: {
      url: $nats, subject: "orders.created" } } }) { subscriptionId }
  }`, {
    variables: { amqp: `amqp://shop:${PASSWORD}@127.0.0.1:5672/%2f`, nats: `nats://${TOKEN}@127.0.0.1:4222` },
    path: '/stores/dests/graphql',
  });

  const s = await openPortal(browser, server, portalLink(server, { store: 'dests' }));
  const { page } = s;
  const responses = [];
  page.on('response', async (r) => {
    if (r.url().includes('/graphql')) responses.push(await r.text().catch(() => ''));
  });
  await page.reload();
  await page.waitForSelector('tr[data-id]');
  const row = (id) => page.locator(`tr[data-id="${id}"]`);
  assert.match(await row(made.sqs.subscriptionId).textContent(), /Buy with Prime Amazon SQS/);
  assert.match(await row(made.sns.subscriptionId).textContent(), /Buy with Prime Amazon SNS/);
  assert.match(await row(made.sns.subscriptionId).textContent(), /arn:aws:sns:us-east-1:123456789012:orders/);
  assert.match(await row(made.rabbitmq.subscriptionId).textContent(), /Buy with Prime RabbitMQ/);
  assert.match(await row(made.rabbitmq.subscriptionId).textContent(), /amqp:\/\/shop:\*\*\*@127\.0\.0\.1:5672\/%2f · exchange events · routing key orders/);
  assert.match(await row(made.nats.subscriptionId).textContent(), /Buy with Prime NATS JetStream/);
  assert.match(await row(made.nats.subscriptionId).textContent(), /nats:\/\/\*\*\*@127\.0\.0\.1:4222 · subject orders\.created/);
  await screenshot(page, 'portal-destinations');

  await page.click(`tr[data-id="${made.rabbitmq.subscriptionId}"] a.dest-link`);
  await page.waitForSelector('h1.dest-title');
  assert.match(await text(page, 'h1.dest-title'), /^amqp:\/\/shop:\*\*\*@/);

  const html = await page.content();
  for (const secret of [PASSWORD, TOKEN]) {
    assert.ok(!html.includes(secret), `the page holds ${secret}`);
    assert.ok(!responses.some((body) => body.includes(secret)), `an API answer holds ${secret}`);
  }
  assert.ok(responses.length > 0, 'the pages read the API');
  assertClean(s, server.origin);
});
