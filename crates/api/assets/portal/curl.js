// "Copy as curl": the exact GraphQL request a form sends, as a command that runs with an
// API token of the caller's own ($HOOKRELAY_TOKEN), never with the portal's session.

import { graphqlUrl } from './api.js';

/** Quotes a word for a POSIX shell: inside '…' nothing is special but ' itself. */
export function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

export function curlCommand(store, request) {
  const body = JSON.stringify({ query: request.query, variables: request.variables || {} });
  return [
    `curl -sS ${shellQuote(graphqlUrl(store))}`,
    // Double quotes so that the shell puts the token in; the variable name is all this
    // command holds.
    `  -H "X-Auth-Token: $HOOKRELAY_TOKEN"`,
    `  -H 'Content-Type: application/json'`,
    `  --data-raw ${shellQuote(body)}`,
  ].join(' \\\n');
}
