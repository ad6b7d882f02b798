// The one JSON request helper the pages share: same-origin cookie, JSON body in and out.
// Resolves to {status, ok, data}; never throws on an HTTP error status.
'use strict';

window.syncscriptApi = async function api(method, path, body) {
  const init = { method: method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (_) { data = null; }
  }
  return { status: res.status, ok: res.ok, data: data };
};
