// The GraphQL requests the pages make, and the one shape both subscription styles are
// shown in. Requests are plain strings with variables, so that "Copy as curl" can show
// exactly what is sent.

import { gql, gqlRaw, ApiError } from './api.js';

export const WEBHOOK_FIELDS = `
      __typename id scope destination status isActive createdAt updatedAt signingSecret
      ordered rateLimit
      ... on HttpsWebhook { signatureScheme signingPublicKey }
      headers { key value }`;

export const SUBSCRIPTION_FIELDS = `
      subscriptionId status isActive createdAt updatedAt signingSecret
      signatureScheme signingPublicKey ordered rateLimit
      eventSubscriptionDetails {
        eventType eventTypes
        destination {
          __typename
          ... on WebhookData { url method authProfileId headers { key value } }
          ... on EventBridgeData { arn region partnerEventSourceName }
          ... on SqsData { queueUrl region }
          ... on SnsData { topicArn }
          ... on RabbitMqData { url exchange routingKey }
          ... on NatsData { url subject }
        }
      }`;

/** A BigCommerce webhook as the portal's subscription. */
export function fromWebhook(w) {
  const https = w.__typename !== 'EventBridgeWebhook';
  return {
    id: w.id,
    style: 'bigcommerce',
    kind: https ? 'https' : 'eventbridge',
    destination: w.destination,
    method: https ? 'POST' : null,
    eventTypes: [w.scope],
    status: w.status,
    isActive: w.isActive,
    headers: w.headers || [],
    authProfileId: null,
    signingSecret: w.signingSecret,
    // EventBridge webhooks are not signed: they have no scheme or public key.
    signatureScheme: https ? w.signatureScheme || 'HMAC_SHA256' : null,
    signingPublicKey: w.signingPublicKey || null,
    ordered: Boolean(w.ordered),
    rateLimit: w.rateLimit ?? null,
    createdAt: w.createdAt,
    updatedAt: w.updatedAt,
  };
}

/**
 * Where a Buy with Prime destination goes, by its GraphQL type: the portal's kind, the
 * address shown, and the ARN and region where it has them (docs/destinations.md).
 */
function destinationOf(d) {
  switch (d.__typename) {
    case 'WebhookData': return { kind: 'https', destination: d.url };
    case 'EventBridgeData': return { kind: 'eventbridge', destination: d.partnerEventSourceName || d.arn, arn: d.arn, region: d.region };
    case 'SqsData': return { kind: 'sqs', destination: d.queueUrl, region: d.region };
    case 'SnsData': return { kind: 'sns', destination: d.topicArn, arn: d.topicArn };
    case 'RabbitMqData': return { kind: 'rabbitmq', destination: `${d.url} · exchange ${d.exchange || '(default)'} · routing key ${d.routingKey || '(none)'}` };
    case 'NatsData': return { kind: 'nats', destination: `${d.url} · subject ${d.subject}` };
    default: return { kind: 'other', destination: d.__typename };
  }
}

/** A Buy with Prime event subscription as the portal's subscription. */
export function fromEventSubscription(s) {
  const d = s.eventSubscriptionDetails.destination;
  const https = d.__typename === 'WebhookData';
  const where = destinationOf(d);
  return {
    id: s.subscriptionId,
    style: 'buywithprime',
    kind: where.kind,
    destination: where.destination,
    arn: where.arn || null,
    region: where.region || null,
    method: https ? d.method : null,
    eventTypes: s.eventSubscriptionDetails.eventTypes,
    status: s.status,
    isActive: s.isActive,
    headers: https ? d.headers || [] : [],
    authProfileId: https ? d.authProfileId : null,
    signingSecret: s.signingSecret,
    signatureScheme: s.signatureScheme || 'HMAC_SHA256',
    signingPublicKey: s.signingPublicKey || null,
    ordered: Boolean(s.ordered),
    rateLimit: s.rateLimit ?? null,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

export const LIST_SUBSCRIPTIONS = `query Subscriptions($first: Int, $afterWebhooks: String, $afterSubscriptions: String, $withWebhooks: Boolean!, $withSubscriptions: Boolean!) {
  store @include(if: $withWebhooks) {
    webhooks(first: $first, after: $afterWebhooks) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ${WEBHOOK_FIELDS} } }
    }
  }
  eventSubscriptions(first: $first, after: $afterSubscriptions) @include(if: $withSubscriptions) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${SUBSCRIPTION_FIELDS} } }
  }
}`;

/**
 * One page of each style. `cursors`: {webhooks, subscriptions}, each a cursor, null for
 * the first page, or false when that style has no more pages.
 */
export async function listSubscriptions(store, { first = 50, cursors = { webhooks: null, subscriptions: null } } = {}) {
  const data = await gql(store, LIST_SUBSCRIPTIONS, {
    first,
    afterWebhooks: cursors.webhooks || null,
    afterSubscriptions: cursors.subscriptions || null,
    withWebhooks: cursors.webhooks !== false,
    withSubscriptions: cursors.subscriptions !== false,
  });
  const items = [];
  const next = { webhooks: false, subscriptions: false };
  let total = 0;
  if (data.store) {
    const c = data.store.webhooks;
    total += c.totalCount;
    for (const e of c.edges) items.push(fromWebhook(e.node));
    if (c.pageInfo.hasNextPage) next.webhooks = c.pageInfo.endCursor;
  }
  if (data.eventSubscriptions) {
    const c = data.eventSubscriptions;
    total += c.totalCount;
    for (const e of c.edges) items.push(fromEventSubscription(e.node));
    if (c.pageInfo.hasNextPage) next.subscriptions = c.pageInfo.endCursor;
  }
  return { items, next, total, hasMore: next.webhooks !== false || next.subscriptions !== false };
}

/** Every subscription (for pickers), following the pages. */
export async function allSubscriptions(store) {
  const out = [];
  let cursors = { webhooks: null, subscriptions: null };
  for (let i = 0; i < 50; i++) {
    const page = await listSubscriptions(store, { first: 1000, cursors });
    out.push(...page.items);
    if (!page.hasMore) break;
    cursors = page.next;
  }
  return out;
}

export class NotFound extends Error {
  constructor(what) {
    super(`${what} does not exist or is not accessible with this session`);
    this.name = 'NotFound';
  }
}

/**
 * One subscription of either style. BigCommerce webhooks have no single-item query: the
 * store's list is searched.
 */
export async function getSubscription(store, id) {
  if (!id.startsWith('wh_')) {
    try {
      const data = await gql(store, `query EventSubscription($id: String!) {
  eventSubscription(subscriptionId: $id) { ${SUBSCRIPTION_FIELDS} }
}`, { id });
      if (data.eventSubscription) return fromEventSubscription(data.eventSubscription);
    } catch (e) {
      if (!(e instanceof ApiError && e.isAccessDenied)) throw e;
    }
  }
  let after = null;
  for (let i = 0; i < 100; i++) {
    const data = await gql(store, `query Webhooks($after: String) {
  store { webhooks(first: 1000, after: $after) { pageInfo { hasNextPage endCursor } edges { node { ${WEBHOOK_FIELDS} } } } }
}`, { after });
    const c = data.store.webhooks;
    const found = c.edges.find((e) => e.node.id === id);
    if (found) return fromWebhook(found.node);
    if (!c.pageInfo.hasNextPage) break;
    after = c.pageInfo.endCursor;
  }
  throw new NotFound(`Subscription ${JSON.stringify(id)}`);
}

export const STATS_FIELDS = `buckets { start succeeded failed } succeeded failed successRate lastError { at statusCode error }`;

/** deliveryStats of many subscriptions in one request (aliases); a failed one is null. */
export async function statsFor(store, ids, hours = 24) {
  if (!ids.length) return {};
  const parts = ids.map((id, i) => `s${i}: deliveryStats(subscriptionId: ${JSON.stringify(id)}, hours: ${hours}) { ${STATS_FIELDS} }`);
  const out = {};
  // Each deliveryStats weighs 3 database round trips; 15 of them keep a request well
  // under the default limit of 60 (docs/api.md#limits).
  for (let start = 0; start < parts.length; start += 15) {
    const chunk = parts.slice(start, start + 15);
    const { data, errors } = await gqlRaw(store, `query Health {\n  ${chunk.join('\n  ')}\n}`);
    if (!data && errors.length) throw errors[0];
    chunk.forEach((_, j) => {
      const i = start + j;
      out[ids[i]] = data ? data[`s${i}`] || null : null;
    });
  }
  return out;
}

export const DELIVERY_FIELDS = `id eventId subscriptionId eventType status attemptCount nextAttemptAt createdAt updatedAt`;
export const ATTEMPT_FIELDS = `startedAt durationMs statusCode error responseBody`;

export async function getDelivery(store, id) {
  try {
    const data = await gql(store, `query Delivery($id: String!) {
  delivery(id: $id) { ${DELIVERY_FIELDS} attempts { ${ATTEMPT_FIELDS} } }
}`, { id });
    if (!data.delivery) throw new NotFound(`Delivery ${JSON.stringify(id)}`);
    return data.delivery;
  } catch (e) {
    if (e instanceof ApiError && e.isAccessDenied) throw new NotFound(`Delivery ${JSON.stringify(id)}`);
    throw e;
  }
}

export const AUTH_PROFILE_FIELDS = `authProfileId authType createdAt updatedAt
      authConfig {
        oAuthConfig { clientParameters { clientId } authEndpoint httpMethod httpParameters { bodyParameters { key value } headerParameters { key value } } }
        basicAuthConfig { username }
      }`;

export async function listAuthProfiles(store, { first = 50, after = null } = {}) {
  const data = await gql(store, `query AuthProfiles($first: Int, $after: String) {
  authProfiles(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { ${AUTH_PROFILE_FIELDS} } }
  }
}`, { first, after });
  return data.authProfiles;
}

export async function getAuthProfile(store, id) {
  try {
    const data = await gql(store, `query AuthProfile($id: String!) { authProfile(authProfileId: $id) { ${AUTH_PROFILE_FIELDS} } }`, { id });
    if (!data.authProfile) throw new NotFound(`Auth profile ${JSON.stringify(id)}`);
    return data.authProfile;
  } catch (e) {
    if (e instanceof ApiError && e.isAccessDenied) throw new NotFound(`Auth profile ${JSON.stringify(id)}`);
    throw e;
  }
}

const capsCache = new Map();

/**
 * What this server's schema offers (fields and their arguments), so that the pages use
 * what exists: e.g. a time range on `deliveries` when the server has one.
 */
export async function capabilities(store) {
  if (!capsCache.has(store)) {
    const q = `query Capabilities {
  q: __type(name: "Query") { fields { name args { name } } }
  m: __type(name: "Mutation") { fields { name args { name } } }
  w: __type(name: "WebhookMutations") { fields { name } }
  r: __type(name: "EventSourceRegion") { enumValues { name } }
}`;
    capsCache.set(store, gql(store, q).then((d) => {
      const fields = (t) => new Map((t?.fields || []).map((f) => [f.name, new Set((f.args || []).map((a) => a.name))]));
      return {
        query: fields(d.q),
        mutation: fields(d.m),
        webhook: new Set((d.w?.fields || []).map((f) => f.name)),
        regions: (d.r?.enumValues || []).map((v) => v.name),
        has(kind, name, arg = null) {
          const m = kind === 'query' ? this.query : this.mutation;
          if (!m.has(name)) return false;
          return arg ? m.get(name).has(arg) : true;
        },
      };
    }).catch((e) => {
      capsCache.delete(store);
      throw e;
    }));
  }
  return capsCache.get(store);
}

export function styleName(sub) {
  if (sub.style === 'bigcommerce') return sub.kind === 'https' ? 'BigCommerce webhook' : 'BigCommerce EventBridge webhook';
  const kinds = { https: 'webhook', eventbridge: 'EventBridge', sqs: 'Amazon SQS', sns: 'Amazon SNS', rabbitmq: 'RabbitMQ', nats: 'NATS JetStream' };
  return `Buy with Prime ${kinds[sub.kind] || 'destination'}`;
}
