/**
 * Helpers of the portal's browser tests (portal*.test.mjs), on top of lib.mjs:
 *
 * - `portalLink(server, {store, clientId, admin, ttl})` → `{url, expiresAt}` from the real
 *   CLI (`hookrelay portal link`), with this server's address as the public URL.
 * - `openPortal(browser, server, link, options)` → a lib.mjs Session on the portal,
 *   once the app has exchanged the link and shows its first page.
 * - `sessionToken(page)` → the session the tab holds (sessionStorage).
 * - `verifySignature(secret, request)` → which of the `webhook-signature` entries of a
 *   received request verify with `secret` (Standard Webhooks, node:crypto).
 * - `runShell(command, env)` → `{status, stdout, stderr}` of a bash command.
 * - `startSite(handler)` → a node:http server on `http://localhost:PORT` (another
 *   origin and another site than the portal's 127.0.0.1).
 * - `startFakeEventBridge()` → an endpoint speaking the EventBridge JSON protocol enough
 *   for partner event sources (`CreatePartnerEventSource`, `DeletePartnerEventSource`,
 *   `PutPartnerEvents`), and `env` to point a server at it.
 * - `text(page, selector)` → the trimmed text of the first match.
 */

import crypto from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';

import { openPage, onCleanup, waitUntil } from './lib.mjs';

export const SESSION_KEY = 'hookrelay.portal.session';

export function portalLink(server, { store = null, clientId = null, admin = false, ttl = null } = {}) {
  const args = ['portal', 'link', '--public-url', server.base];
  if (admin) args.push('--admin');
  if (store) args.push('--store', store);
  if (clientId) args.push('--client-id', clientId);
  if (ttl) args.push('--ttl', ttl);
  const out = JSON.parse(server.cli(args));
  if (!out.url || !out.url.startsWith(`${server.base}/portal/open/`)) {
    throw new Error(`unexpected link ${JSON.stringify(out)}`);
  }
  return out;
}

/** Opens `link` in a new context, and waits for the app's first page. */
export async function openPortal(browser, server, link, options = {}) {
  const session = await openPage(browser, { origin: server.origin, ...options });
  if (options.colorScheme) await session.page.emulateMedia({ colorScheme: options.colorScheme });
  const response = await session.page.goto(link.url ?? link);
  if (response.status() !== 200) throw new Error(`the link answered ${response.status()}`);
  await session.page.waitForSelector('#who [data-store], #who .who-item', { timeout: 15_000 });
  await session.page.waitForSelector('main h1', { timeout: 15_000 });
  return session;
}

export async function sessionToken(page) {
  return page.evaluate((k) => sessionStorage.getItem(k), SESSION_KEY);
}

export async function text(page, selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

/**
 * Verifies a delivery's `webhook-signature` (`v1,<base64>` entries, space separated) with a
 * `whsec_…` secret: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed with
 * the secret's base64-decoded bytes. Answers the entries that match.
 */
export function verifySignature(secret, request) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const id = request.headers['webhook-id'];
  const ts = request.headers['webhook-timestamp'];
  const expected = crypto.createHmac('sha256', key).update(`${id}.${ts}.${request.body}`).digest();
  return (request.headers['webhook-signature'] || '').split(' ').filter((entry) => {
    const [version, sig] = entry.split(',');
    if (version !== 'v1' || !sig) return false;
    const got = Buffer.from(sig, 'base64');
    return got.length === expected.length && crypto.timingSafeEqual(got, expected);
  });
}

export function runShell(command, env = {}) {
  const out = spawnSync('bash', ['-c', command], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

/** A site of another origin (http://localhost:PORT); `handler(req, res, body)`. */
export async function startSite(handler) {
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = srv.address().port;
  const site = {
    port,
    origin: `http://localhost:${port}`,
    close: () => new Promise((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections?.();
    }),
  };
  onCleanup(() => site.close());
  return site;
}

/** A scripted EventBridge endpoint for partner event sources. */
export async function startFakeEventBridge() {
  const calls = [];
  const site = await startSite((req, res, body) => {
    const target = String(req.headers['x-amz-target'] || '');
    const op = target.split('.').pop();
    let input = {};
    try {
      input = JSON.parse(body || '{}');
    } catch {
      input = {};
    }
    calls.push({ op, input });
    let answer = {};
    if (op === 'CreatePartnerEventSource') answer = { EventSourceArn: `arn:aws:events:us-east-1::event-source/${input.Name}` };
    if (op === 'PutPartnerEvents') answer = { FailedEntryCount: 0, Entries: (input.Entries || []).map((_, i) => ({ EventId: `ev-${i}` })) };
    if (op === 'PutEvents') answer = { FailedEntryCount: 0, Entries: (input.Entries || []).map((_, i) => ({ EventId: `ev-${i}` })) };
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': crypto.randomUUID() });
    res.end(JSON.stringify(answer));
  });
  return {
    calls,
    url: `http://127.0.0.1:${site.port}`,
    env: {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${site.port}`,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent/hookrelay-browser-tests',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/hookrelay-browser-tests',
    },
  };
}

/** Waits until the page shows `selector`, reloading nothing: the app refreshes itself. */
export async function waitForSelectorText(page, selector, pattern, timeoutMs = 20_000) {
  return waitUntil(async () => {
    const all = await page.locator(selector).allTextContents();
    return all.find((t) => pattern.test(t));
  }, { timeoutMs, message: `${selector} matching ${pattern}` });
}
