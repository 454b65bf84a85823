// GraphiQL in a real browser: served whole by the binary (nothing from a CDN), under its
// Content-Security-Policy, on both GraphQL paths; a user types a token into the headers
// editor, runs a query, reads the result and browses the docs.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { assertClean, launchBrowser, openPage, screenshot, startServer, waitUntil } from './lib.mjs';

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

/** The `src`/`href` URLs the page's HTML loads. */
function loadedUrls(html) {
  return [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
}

test('the page: strict headers, no inline script or style, only our own assets', async () => {
  for (const path of ['/graphql', '/stores/abc123/graphql']) {
    const resp = await fetch(server.url(path));
    assert.equal(resp.status, 200, path);
    assert.match(resp.headers.get('content-type'), /^text\/html/);
    assert.equal(resp.headers.get('content-security-policy'), CSP);
    assert.equal(resp.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(resp.headers.get('referrer-policy'), 'no-referrer');
    const html = await resp.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'an inline script');
    assert.doesNotMatch(html, /\sstyle=|<style/, 'an inline style');
    const urls = loadedUrls(html).filter((u) => !u.startsWith('data:'));
    assert.ok(urls.length >= 5, `loads ${urls}`);
    for (const url of urls) {
      assert.match(url, /^\/assets\/(vendor|graphiql)\//, `${url} is not one of ours`);
    }
  }
});

test('the assets: types, ETags, immutable only when versioned, 404 for unknown files', async () => {
  const html = await (await fetch(server.url('/graphql'))).text();
  for (const url of loadedUrls(html).filter((u) => u.startsWith('/assets/'))) {
    const resp = await fetch(server.url(url));
    assert.equal(resp.status, 200, url);
    assert.match(resp.headers.get('content-type'), url.endsWith('.js') ? /^text\/javascript/ : /^text\/css/, url);
    assert.equal(resp.headers.get('x-content-type-options'), 'nosniff', url);
    const etag = resp.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{64}"$/, url);
    const versioned = /^\/assets\/vendor\/[a-z-]+-\d+\.\d+\.\d+\//.test(url);
    assert.equal(
      resp.headers.get('cache-control'),
      versioned ? 'public, max-age=31536000, immutable' : 'no-cache',
      url,
    );
    assert.ok((await resp.arrayBuffer()).byteLength > 0, url);
    const again = await fetch(server.url(url), { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304, url);
    assert.equal(again.headers.get('etag'), etag, url);
  }
  const versions = await fetch(server.url('/assets/vendor/VERSIONS'));
  assert.equal(versions.status, 200);
  assert.equal(versions.headers.get('cache-control'), 'no-cache');
  assert.match(await versions.text(), /^graphiql@3\.\d+\.\d+$/m);
  const unknown = [
    '/assets/vendor/nope.js',
    '/assets/vendor/graphiql-0.0.0/graphiql.min.js',
    '/assets/graphiql/nope.js',
    '/assets/vendor/..%2fgraphiql%2finit.js',
    '/assets/graphiql/..%2f..%2f..%2fCargo.toml',
  ];
  for (const url of unknown) {
    assert.equal((await fetch(server.url(url))).status, 404, url);
  }
});

// The CodeMirror editor inside `selector`, as a locator.
function editor(page, selector) {
  return page.locator(`${selector} .CodeMirror`).first();
}

async function editorValue(page, selector) {
  return editor(page, selector).evaluate((el) => el.CodeMirror.getValue());
}

/**
 * Opens GraphiQL at `path`, types `token` into the X-Auth-Token header as a user would,
 * replaces the query with `query`, runs it and waits for `expected` (a RegExp) in the
 * result pane. Returns the session (page and recordings).
 */
async function runInGraphiQL(path, token, query, expected) {
  const session = await openPage(browser, { origin: server.origin });
  const { page } = session;
  await page.goto(server.url(path));
  await page.locator('.graphiql-container').waitFor({ timeout: 15_000 });

  // The headers editor is open, pre-filled with an empty X-Auth-Token.
  const headersSection = 'section.graphiql-editor-tool .graphiql-editor:not(.hidden)';
  await editor(page, headersSection).waitFor();
  const headers = JSON.parse(await editorValue(page, headersSection));
  assert.deepEqual(headers, { 'X-Auth-Token': '' });

  // Click at the end of the X-Auth-Token line, step inside the empty quotes, type.
  await page.locator(`${headersSection} .CodeMirror-line`, { hasText: 'X-Auth-Token' }).click();
  await page.keyboard.press('End');
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.type(token);
  assert.deepEqual(JSON.parse(await editorValue(page, headersSection)), { 'X-Auth-Token': token });

  // Replace the query: select all in the query editor and type.
  await page.locator('.graphiql-query-editor .CodeMirror').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(query);
  assert.equal(await editorValue(page, '.graphiql-query-editor'), query);

  await page.locator('button.graphiql-execute-button').click();
  const result = await waitUntil(
    async () => {
      const text = await editorValue(page, 'section.result-window');
      return expected.test(text) && text;
    },
    { message: `${expected} in the result pane` },
  );
  return { session, result };
}

/** Opens the docs explorer and waits until the root type `Query` is listed and opens it. */
async function browseDocs(page) {
  const button = page.locator('.graphiql-sidebar button[aria-label*="Documentation Explorer"]');
  if (!(await page.locator('.graphiql-doc-explorer').isVisible())) {
    await button.click();
  }
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.waitFor();
  const queryType = explorer.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Query$/ });
  await queryType.first().waitFor({ timeout: 15_000 });
  await queryType.first().click();
  await explorer.locator('.graphiql-doc-explorer-title', { hasText: 'Query' }).waitFor();
  await explorer.locator('a.graphiql-doc-explorer-field-name', { hasText: /^eventTypes$/ }).waitFor();
}

test('GraphiQL on /graphql: a client token, a query, its result, the docs', async () => {
  const token = server.token('client', 'gqlstore1');
  const { session, result } = await runInGraphiQL(
    '/graphql',
    token.token,
    '{\n  eventTypes\n}',
    /"eventTypes": \[\s*"[^"]+"/,
  );
  assert.ok(JSON.parse(result).data.eventTypes.includes('ORDER_CONFIRMED'), result);
  await browseDocs(session.page);
  await screenshot(session.page, 'graphiql');
  // A dialog (it inserts a <style> element: what style-src 'unsafe-inline' is for).
  await session.page.locator('button[aria-label="Open settings dialog"]').click();
  await session.page.locator('.graphiql-dialog', { hasText: 'Settings' }).waitFor();
  await session.page.keyboard.press('Escape');
  await session.page.locator('.graphiql-dialog').waitFor({ state: 'detached' });
  assertClean(session, server.origin);
  // Every request went to the page's own path or our assets.
  for (const r of session.requests) {
    const path = new URL(r.url).pathname;
    assert.ok(path === '/graphql' || path.startsWith('/assets/'), `request to ${r.url}`);
  }
  assert.ok(session.requests.some((r) => r.method === 'POST' && new URL(r.url).pathname === '/graphql'));
  await session.context.close();
});

test('GraphiQL on /stores/{hash}/graphql: a store-admin token, a store query, the docs', async () => {
  const token = server.token('store-admin', 'gqlstore2');
  const { session, result } = await runInGraphiQL(
    '/stores/gqlstore2/graphql',
    token.token,
    '{\n  store {\n    storeHash\n  }\n}',
    /"storeHash": "gqlstore2"/,
  );
  assert.deepEqual(JSON.parse(result), { data: { store: { storeHash: 'gqlstore2' } } });
  await browseDocs(session.page);
  await screenshot(session.page, 'graphiql-store');
  assertClean(session, server.origin);
  const posts = session.requests.filter((r) => r.method === 'POST').map((r) => new URL(r.url).pathname);
  assert.ok(posts.length > 0);
  assert.deepEqual([...new Set(posts)], ['/stores/gqlstore2/graphql']);
  // The headers are not kept: a new visit starts with the empty token again.
  const page = await session.context.newPage();
  await page.goto(server.url('/stores/gqlstore2/graphql'));
  const headersSection = 'section.graphiql-editor-tool .graphiql-editor:not(.hidden)';
  await editor(page, headersSection).waitFor();
  assert.deepEqual(JSON.parse(await editorValue(page, headersSection)), { 'X-Auth-Token': '' });
  await session.context.close();
});
