/**
 * Shared harness of hookrelay's browser tests (`node --test tests/browser/`): the real
 * binary on a fresh SQLite data dir, tokens made through its real CLI, counting HTTP
 * receivers on 127.0.0.1, and Debian's Chromium driven by playwright-core (never a
 * downloaded browser). Everything started here is cleaned up after the test file's last
 * test, whether the tests passed or not (and the servers are killed when the process
 * exits in any case), so tests need not close anything themselves.
 *
 * Exports:
 *
 * - `REPO_ROOT` — absolute path of the repository.
 * - `BIN` — the binary: `$HOOKRELAY_BIN`, default `target/debug/hookrelay` (relative
 *   paths are taken from the repository root).
 * - `CHROMIUM` — the browser: `$HOOKRELAY_CHROMIUM`, default `/usr/bin/chromium`.
 * - `startServer(options?) → Promise<Server>` — `hookrelay serve` on 127.0.0.1, a port
 *   the kernel picks (`--listen 127.0.0.1:0`; the address is read from its start log
 *   line), a new temporary data dir, `--allow-http --allowed-networks 127.0.0.0/8`;
 *   resolves once `GET /readyz` answers 200. `options.args`: more `serve` flags;
 *   `options.env`: more environment (the caller's `HOOKRELAY_*` variables are never passed
 *   on). A `Server` has:
 *     - `base` / `origin` (`http://127.0.0.1:PORT`), `port`, `dataDir`, `pid`,
 *     - `logs` (every stderr line so far), `exited` (null, or `{code, signal}`),
 *     - `url(path)` → `base + path`,
 *     - `cli(args) → string` — a CLI command (`token`, `store`, `publish`, …) on this
 *       server's data dir, returns stdout; throws with stderr when it fails,
 *     - `createStore(hash) → hash` — `hookrelay store create`,
 *     - `token(role, store?) → Token` — `hookrelay token create --role R [--store S]`
 *       (the store is created on the way); `Token` is
 *       `{ token, accessToken, clientId, role, store }` (`token === accessToken`),
 *     - `graphql(token, query, {variables, path = '/graphql'}?) → Promise<{status, body}>`
 *       (`token`: a `Token`, a token string, or null for none; sent as `X-Auth-Token`),
 *     - `graphqlOk(token, query, options?) → Promise<data>` — throws on any error,
 *     - `publish(token, event) → Promise<{status, body}>` — `POST /v1/events`, `event` is
 *       `{store, type, data, …}`, `token` a publisher or admin token,
 *     - `stop() → Promise<void>` — SIGTERM, then SIGKILL after 10 s (idempotent).
 * - `startReceiver(options?) → Promise<Receiver>` — a node:http server on 127.0.0.1:0
 *   that records every request and answers `options.status` (default 200) with
 *   `options.body` (default `ok`). A `Receiver` has:
 *     - `url` (`http://127.0.0.1:PORT/hook`), `origin`, `port`, `urlFor(path)`,
 *     - `requests` — `[{method, path, headers, body (string), json() , at (ms)}]`,
 *     - `count` — how many requests so far,
 *     - `status` — settable: `receiver.status = 500` makes later requests fail,
 *       `receiver.respond(status)` does the same, `receiver.reply = (n, req) => status or
 *       {status, headers, body}` decides per request (n is 0-based),
 *     - `waitFor(n, timeoutMs = 15000) → Promise<requests>` — until `count >= n`,
 *     - `reset()` — forget the requests so far, `close() → Promise<void>`.
 * - `launchBrowser(options?) → Promise<Browser>` — Chromium headless with the flags the
 *   suite uses (`options.args` adds more); closed at cleanup.
 * - `openPage(browser, options?) → Promise<Session>` — a new context and page, recording:
 *   `{context, page, requests, consoleMessages, consoleErrors, pageErrors, cspViolations,
 *   failedRequests}`. `requests` gets every request of every page of the context
 *   (`{url, method, resourceType}`); `cspViolations` every `securitypolicyviolation`
 *   event and every console message about a refused load/eval. With
 *   `options.origin` set (e.g. `server.origin`), requests to any other origin are aborted
 *   (still recorded). `options.viewport` defaults to 1280×900.
 * - `recordRequests(pageOrContext) → array` — the same request recording on its own.
 * - `foreignRequests(requests, origin) → array` — the requests not to `origin`
 *   (data: and blob: URLs are not requests to anywhere and are left out).
 * - `assertClean(session, origin)` — node:assert that the session made no request off
 *   `origin`, logged no console error, threw no page error and had no CSP violation.
 * - `screenshot(page, name, options?) → Promise<path>` — `target/screenshots/NAME.png`
 *   (full page unless `options.fullPage === false`).
 * - `waitUntil(fn, {timeoutMs = 15000, intervalMs = 100, message}?) → Promise<value>` —
 *   polls an (async) function until it returns something truthy.
 * - `onCleanup(fn)` — runs `fn` (async allowed) at cleanup, before the built-in ones.
 * - `cleanup() → Promise<void>` — closes browsers, receivers and servers now (also run
 *   by a top-level `after` hook this module registers with node:test).
 */

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.resolve(REPO_ROOT, process.env.HOOKRELAY_BIN || 'target/debug/hookrelay');
export const CHROMIUM = process.env.HOOKRELAY_CHROMIUM || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // Containers often give /dev/shm 64 MB, where Chromium's renderers crash on big pages:
  // shared memory goes to /tmp instead.
  '--disable-dev-shm-usage',
];

// ---------------------------------------------------------------------------------------
// Cleanup

const cleanups = []; // user hooks, run first
const browsers = new Set();
const receivers = new Set();
const servers = new Set();

/** Runs `fn` at cleanup (before browsers, receivers and servers are closed). */
export function onCleanup(fn) {
  cleanups.push(fn);
}

/** Closes everything this module started (browsers, receivers, servers). */
export async function cleanup() {
  const errors = [];
  const run = async (fn) => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  for (const fn of cleanups.splice(0).reverse()) await run(fn);
  for (const b of [...browsers]) await run(() => b.close());
  browsers.clear();
  for (const r of [...receivers]) await run(() => r.close());
  for (const s of [...servers]) await run(() => s.stop());
  if (errors.length > 0) {
    console.error('[lib.mjs] cleanup errors:', ...errors);
  }
}

after(cleanup);

// Whatever happens (a crash, a timeout of the runner), no server outlives the process.
process.on('exit', () => {
  for (const s of servers) {
    try {
      s.child.kill('SIGKILL');
    } catch {
      // already gone
    }
    fs.rmSync(s.tmp, { recursive: true, force: true });
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// The server

function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('HOOKRELAY_')) env[k] = v;
  }
  return { ...env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info', ...extra };
}

function runCli(args, env) {
  const out = spawnSync(BIN, args, { env, encoding: 'utf8', timeout: 60_000 });
  if (out.error) throw new Error(`hookrelay ${args.join(' ')}: ${out.error.message}`);
  if (out.status !== 0) {
    throw new Error(`hookrelay ${args.join(' ')} exited ${out.status}: ${out.stderr}`);
  }
  return out.stdout;
}

/**
 * Starts `hookrelay serve` on a new data dir and waits until it is ready.
 * @param {{args?: string[], env?: Record<string,string>, timeoutMs?: number}} [options]
 */
export async function startServer(options = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} does not exist: build it (cargo build -p hookrelay --bin hookrelay) or set HOOKRELAY_BIN`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hookrelay-browser-'));
  const dataDir = path.join(tmp, 'data');
  const env = childEnv(options.env);
  const args = [
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    '--allow-http',
    '--allowed-networks',
    '127.0.0.0/8',
    ...(options.args || []),
  ];
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = [];
  const server = {
    child,
    tmp,
    dataDir,
    logs,
    exited: null,
    pid: child.pid,
    base: '',
    origin: '',
    port: 0,
    url(p = '/') {
      return server.base + p;
    },
    cli(cliArgs) {
      return runCli([...cliArgs, '--data-dir', dataDir], env);
    },
    createStore(hash) {
      server.cli(['store', 'create', hash]);
      return hash;
    },
    token(role, store) {
      const a = ['token', 'create', '--role', role];
      if (store) a.push('--store', store);
      const v = JSON.parse(server.cli(a));
      return { token: v.accessToken, accessToken: v.accessToken, clientId: v.clientId, role: v.role, store: v.store };
    },
    async graphql(token, query, { variables = {}, path: p = '/graphql' } = {}) {
      const headers = { 'content-type': 'application/json' };
      const t = typeof token === 'string' ? token : token?.token;
      if (t) headers['x-auth-token'] = t;
      const resp = await fetch(server.url(p), { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const text = await resp.text();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      return { status: resp.status, body };
    },
    async graphqlOk(token, query, options) {
      const { status, body } = await server.graphql(token, query, options);
      if (status !== 200 || body.errors) {
        throw new Error(`GraphQL ${status}: ${JSON.stringify(body)}`);
      }
      return body.data;
    },
    async publish(token, event) {
      const t = typeof token === 'string' ? token : token.token;
      const resp = await fetch(server.url('/v1/events'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` },
        body: JSON.stringify(event),
      });
      const text = await resp.text();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      return { status: resp.status, body };
    },
    stopping: null,
    stop() {
      if (!server.stopping) {
        server.stopping = (async () => {
          if (!server.exited) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            await exitedPromise;
            clearTimeout(timer);
          }
          servers.delete(server);
          fs.rmSync(tmp, { recursive: true, force: true });
        })();
      }
      return server.stopping;
    },
  };
  const exitedPromise = once(child, 'exit').then(([code, signal]) => {
    server.exited = { code, signal };
  });
  servers.add(server);

  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`hookrelay serve did not report its address within 30 s:\n${logs.join('\n')}`)),
      options.timeoutMs || 30_000,
    );
    const lines = readline.createInterface({ input: child.stderr });
    let found = false;
    lines.on('line', (line) => {
      logs.push(line);
      if (process.env.HOOKRELAY_TEST_LOGS) console.error(`[server] ${line}`);
      if (!found) {
        const rest = line.split('listening on ')[1];
        if (rest) {
          found = true;
          clearTimeout(timer);
          resolve(rest.match(/^[0-9a-fA-F.:[\]]+/)[0]);
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hookrelay serve exited (${code ?? signal}) before listening:\n${logs.join('\n')}`));
    });
  });
  server.base = server.origin = `http://${address}`;
  server.port = Number(address.split(':').pop());
  await waitUntil(
    async () => {
      try {
        return (await fetch(server.url('/readyz'))).status === 200;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, message: `${server.base}/readyz did not answer 200` },
  );
  return server;
}

// ---------------------------------------------------------------------------------------
// Receivers

/**
 * A counting HTTP receiver on 127.0.0.1.
 * @param {{status?: number, body?: string, path?: string}} [options]
 */
export async function startReceiver(options = {}) {
  const receiver = {
    requests: [],
    status: options.status ?? 200,
    body: options.body ?? 'ok',
    reply: null,
    port: 0,
    origin: '',
    url: '',
    waiters: [],
    get count() {
      return receiver.requests.length;
    },
    urlFor(p) {
      return receiver.origin + p;
    },
    respond(status) {
      receiver.status = status;
    },
    reset() {
      receiver.requests = [];
    },
    waitFor(n, timeoutMs = 15_000) {
      return waitUntil(() => receiver.requests.length >= n && receiver.requests, {
        timeoutMs,
        intervalMs: 50,
        message: `receiver got ${receiver.requests.length} requests, not ${n}`,
      });
    },
    close() {
      receivers.delete(receiver);
      return new Promise((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections?.();
      });
    },
  };
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const record = {
        method: req.method,
        path: req.url,
        headers: req.headers,
        body,
        json: () => JSON.parse(body),
        at: Date.now(),
      };
      const n = receiver.requests.length;
      receiver.requests.push(record);
      let answer = receiver.reply ? receiver.reply(n, record) : receiver.status;
      if (typeof answer === 'number') answer = { status: answer };
      const status = answer?.status ?? receiver.status;
      const headers = { 'content-type': 'text/plain', ...(answer?.headers || {}) };
      res.writeHead(status, headers);
      res.end(answer?.body ?? receiver.body);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  receiver.port = srv.address().port;
  receiver.origin = `http://127.0.0.1:${receiver.port}`;
  receiver.url = receiver.origin + (options.path || '/hook');
  receivers.add(receiver);
  return receiver;
}

// ---------------------------------------------------------------------------------------
// The browser

/** Debian's Chromium, headless. @param {{args?: string[]}} [options] */
export async function launchBrowser(options = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} does not exist: install Debian's chromium (apt-get install chromium)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, ...(options.args || [])],
  });
  browsers.add(browser);
  browser.on('disconnected', () => browsers.delete(browser));
  return browser;
}

/** Records every request of a page or of a context's pages. */
export function recordRequests(target) {
  const requests = [];
  target.on('request', (r) => requests.push({ url: r.url(), method: r.method(), resourceType: r.resourceType() }));
  return requests;
}

/** The requests that did not go to `origin`. */
export function foreignRequests(requests, origin) {
  return requests.filter((r) => {
    if (r.url.startsWith('data:') || r.url.startsWith('blob:')) return false;
    try {
      return new URL(r.url).origin !== origin;
    } catch {
      return true;
    }
  });
}

const CSP_CONSOLE = /Content Security Policy|Refused to (load|execute|apply|evaluate|connect|frame|create)/i;

/**
 * A new context and page with everything recorded.
 * @param {import('playwright-core').Browser} browser
 * @param {{origin?: string, viewport?: {width:number,height:number}}} [options]
 */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: options.viewport || { width: 1280, height: 900 } });
  const session = {
    context,
    page: null,
    requests: recordRequests(context),
    consoleMessages: [],
    consoleErrors: [],
    pageErrors: [],
    cspViolations: [],
    failedRequests: [],
  };
  context.on('requestfailed', (r) => session.failedRequests.push({ url: r.url(), error: r.failure()?.errorText }));
  if (options.origin) {
    await context.route('**/*', (route) => {
      const url = route.request().url();
      let same = false;
      try {
        same = new URL(url).origin === options.origin;
      } catch {
        same = false;
      }
      return same ? route.continue() : route.abort('blockedbyclient');
    });
  }
  await context.exposeBinding('__hookrelayCspViolation', (_source, v) => session.cspViolations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__hookrelayCspViolation({
        violatedDirective: e.violatedDirective,
        effectiveDirective: e.effectiveDirective,
        blockedURI: e.blockedURI,
        sourceFile: e.sourceFile,
        lineNumber: e.lineNumber,
        sample: e.sample,
      });
    });
  });
  const page = await context.newPage();
  session.page = page;
  page.on('console', (msg) => {
    const m = { type: msg.type(), text: msg.text(), location: msg.location() };
    session.consoleMessages.push(m);
    if (m.type === 'error') session.consoleErrors.push(m);
    if (CSP_CONSOLE.test(m.text)) session.cspViolations.push({ console: m.text });
  });
  page.on('pageerror', (e) => session.pageErrors.push(String(e?.stack || e)));
  return session;
}

/** Asserts the session stayed on `origin` and had no error of any kind. */
export function assertClean(session, origin) {
  assert.deepEqual(foreignRequests(session.requests, origin), [], `requests off ${origin}`);
  assert.deepEqual(session.cspViolations, [], 'CSP violations');
  assert.deepEqual(session.pageErrors, [], 'uncaught page errors');
  assert.deepEqual(session.consoleErrors, [], 'console errors');
}

/** Saves `target/screenshots/NAME.png`; returns its path. */
export async function screenshot(page, name, options = {}) {
  const dir = path.join(REPO_ROOT, 'target', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: options.fullPage !== false });
  return file;
}

/** Polls `fn` until it returns something truthy; resolves to that value. */
export async function waitUntil(fn, { timeoutMs = 15_000, intervalMs = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
