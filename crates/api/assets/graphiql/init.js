// hookrelay's GraphiQL page (crates/api/src/graphiql.rs serves it): mounts GraphiQL, from
// the vendored UMD builds (globals React, ReactDOM, GraphiQL), on #graphiql. Queries go to
// the path the page was loaded from (/graphql or /stores/{store_hash}/graphql) with the
// headers of the headers editor, which starts with an empty X-Auth-Token; headers are
// never persisted. Without a token nothing is sent (the server would answer 401): the
// fetcher answers with a hint instead, and the schema is fetched again once a token is
// typed in.
(function () {
  'use strict';

  var endpoint = window.location.pathname;
  var TOKEN_HEADERS = ['x-auth-token', 'authorization'];
  var NO_TOKEN =
    'No token: put one in the "X-Auth-Token" header in the Headers tab below the query ' +
    '(hookrelay token create --role client --store STORE prints one), then run the query ' +
    'again (or re-fetch the schema in the Documentation Explorer).';

  var DEFAULT_QUERY = [
    '# hookrelay GraphQL API (' + endpoint + ').',
    '#',
    '# Put your token in the X-Auth-Token header (the Headers tab below), then run a',
    '# query with the play button or Ctrl-Enter. The schema is in the Documentation',
    '# Explorer (the book icon on the left).',
    '',
    '{',
    '  eventTypes',
    '}',
    '',
  ].join('\n');

  // The headers without empty token entries; null when no token is left.
  function withToken(headers) {
    var out = {};
    var token = false;
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      var isToken = TOKEN_HEADERS.indexOf(name.toLowerCase()) >= 0;
      if (isToken && (value === undefined || value === null || String(value).trim() === '')) {
        return;
      }
      if (isToken) token = true;
      out[name] = value;
    });
    return token ? out : null;
  }

  function tokenInText(text) {
    try {
      var headers = withToken(JSON.parse(text || '{}'));
      return headers ? JSON.stringify(headers) : '';
    } catch (e) {
      return '';
    }
  }

  function post(params, opts) {
    var headers = withToken(opts && opts.headers);
    if (!headers) {
      return Promise.resolve({ errors: [{ message: NO_TOKEN }] });
    }
    return fetch(endpoint, {
      method: 'POST',
      credentials: 'same-origin',
      headers: Object.assign({ 'Content-Type': 'application/json', Accept: 'application/json' }, headers),
      body: JSON.stringify(params),
    }).then(function (response) {
      return response.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (e) {
          return { errors: [{ message: 'HTTP ' + response.status + ': ' + text }] };
        }
      });
    });
  }

  // A new function each time: GraphiQL fetches the schema again when its fetcher changes.
  function newFetcher() {
    return function (params, opts) {
      return post(params, opts);
    };
  }

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  var lastToken = '';
  var timer = null;
  var props = {
    fetcher: newFetcher(),
    defaultQuery: DEFAULT_QUERY,
    defaultHeaders: JSON.stringify({ 'X-Auth-Token': '' }, null, 2),
    defaultEditorToolsVisibility: 'headers',
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    onEditHeaders: function (text) {
      var token = tokenInText(text);
      if (token === lastToken) return;
      lastToken = token;
      clearTimeout(timer);
      if (!token) return;
      timer = setTimeout(function () {
        props = Object.assign({}, props, { fetcher: newFetcher() });
        render();
      }, 400);
    },
  };

  function render() {
    root.render(React.createElement(GraphiQL, props));
  }

  render();
})();
