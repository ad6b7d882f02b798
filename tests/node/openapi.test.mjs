// The OpenAPI document as the real binary serves it: a real validator (openapi-spec-validator,
// from PyPI; run.sh installs it) accepts it, and every route, called for a success and for
// errors, answers with a status the document lists and a body its schema accepts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEMO, demoVaultId, login, loginDemo, repoRoot, skipReason, startServer } from './helpers.mjs';
import { fill, responseChecker } from './openapi.mjs';

const skip = skipReason();
const VALIDATOR = process.env.OPENAPI_SPEC_VALIDATOR
  || path.join(repoRoot, 'tests/python/.venv/bin/openapi-spec-validator');
const FILE_URL = 'https://example.com/paper.pdf';

describe('the OpenAPI document', { skip, timeout: 120_000 }, () => {
  let server;
  let doc;
  let checker;
  const cookies = {};

  /**
   * Calls `method template` with `params` filled in and checks the answer against the
   * document. `body` is sent as JSON unless `raw` gives the exact body and its content type.
   */
  async function call(method, template, { params, query, as, body, raw, headers = {} } = {}) {
    const url = new URL(fill(template, params), server.baseUrl);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    const sent = { ...headers };
    if (as) sent.cookie = cookies[as];
    let payload;
    if (raw) [payload, sent['content-type']] = raw;
    else if (body !== undefined) [payload, sent['content-type']] = [JSON.stringify(body), 'application/json'];
    const res = await fetch(url, { method, headers: sent, body: payload });
    const text = await res.text();
    const answer = { status: res.status, body: text ? JSON.parse(text) : null, contentType: res.headers.get('content-type') };
    checker.check(method, template, answer);
    return { ...answer, headers: res.headers };
  }

  before(async () => {
    server = await startServer();
    const res = await fetch(`${server.baseUrl}/api/openapi.json`);
    assert.equal(res.status, 200);
    doc = await res.json();
    checker = responseChecker(doc);
    Object.assign(cookies, await loginDemo(server.baseUrl));
  });

  after(async () => {
    await server?.stop();
  });

  test('passes openapi-spec-validator', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'syncscript-openapi-'));
    const file = path.join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
    try {
      const { stdout } = await promisify(execFile)(VALIDATOR, [file]).catch((err) => {
        if (err.code === 'ENOENT') throw new Error(`${VALIDATOR} is missing: run tests/node/run.sh, which installs it`);
        throw new Error(`openapi-spec-validator refused the document:\n${err.stdout}${err.stderr}`);
      });
      assert.match(stdout, /OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('auth routes answer as documented', async () => {
    const email = `docs-${Date.now()}@example.com`;
    const account = { email, name: 'Docs', password: 'a-long-password' };
    const registered = await call('POST', '/api/auth/register', { body: account });
    assert.equal(registered.status, 201);
    assert.equal((await call('POST', '/api/auth/register', { body: account })).status, 409);
    const invalid = await call('POST', '/api/auth/register', { body: { ...account, email: 'x', password: 'short' } });
    assert.deepEqual(invalid.body.error.details.map((d) => d.field).sort(), ['email', 'password']);
    assert.equal((await call('POST', '/api/auth/register', { body: { email } })).status, 400);
    assert.equal((await call('POST', '/api/auth/register', { raw: ['{', 'application/json'] })).status, 400);
    assert.equal((await call('POST', '/api/auth/register', { raw: ['email=x', 'text/plain'] })).status, 415);
    const huge = JSON.stringify({ ...account, name: 'x'.repeat(1_100_000) });
    assert.equal((await call('POST', '/api/auth/register', { raw: [huge, 'application/json'] })).status, 413);

    const signedIn = await call('POST', '/api/auth/login', { body: { email, password: account.password } });
    assert.equal(signedIn.status, 200);
    cookies.docs = signedIn.headers.getSetCookie()[0].split(';')[0];
    assert.equal((await call('GET', '/api/auth/session', { as: 'docs' })).status, 200);
    assert.equal((await call('GET', '/api/auth/session')).status, 401);
    assert.equal((await call('POST', '/api/auth/logout', { as: 'docs' })).status, 204);
    assert.equal((await call('POST', '/api/auth/logout', { as: 'docs' })).status, 401);
  });

  test('vault, member, source and event routes answer as documented', async () => {
    const demo = await demoVaultId(server.baseUrl, cookies.owner);
    const created = await call('POST', '/api/vaults', { as: 'owner', body: { name: 'Documented' } });
    assert.equal(created.status, 201);
    const id = created.body.vault.id;
    assert.equal((await call('POST', '/api/vaults', { as: 'owner', body: { name: ' ' } })).status, 400);
    assert.equal((await call('GET', '/api/vaults', { as: 'owner' })).status, 200);
    assert.equal((await call('GET', '/api/vaults')).status, 401);
    assert.equal((await call('GET', '/api/vaults/{id}', { as: 'owner', params: { id } })).status, 200);
    assert.equal((await call('GET', '/api/vaults/{id}', { as: 'outsider', params: { id } })).status, 404);
    const renamed = await call('PATCH', '/api/vaults/{id}', { as: 'owner', params: { id }, body: { description: 'Read me' } });
    assert.equal(renamed.status, 200);
    assert.equal((await call('PATCH', '/api/vaults/{id}', { as: 'contributor', params: { id: demo }, body: { name: 'x' } })).status, 403);
    const foreign = await call('GET', '/api/vaults', { as: 'owner', headers: { origin: 'https://elsewhere.example' } });
    assert.equal(foreign.status, 403);

    const members = '/api/vaults/{id}/members';
    const member = `${members}/{userId}`;
    assert.equal((await call('GET', members, { as: 'owner', params: { id } })).status, 200);
    assert.equal((await call('GET', members, { as: 'outsider', params: { id } })).status, 404);
    const added = await call('POST', members, { as: 'owner', params: { id }, body: { email: DEMO.outsider, role: 'viewer' } });
    assert.equal(added.status, 201);
    const userId = added.body.member.userId;
    assert.equal((await call('POST', members, { as: 'owner', params: { id }, body: { email: DEMO.outsider, role: 'viewer' } })).status, 409);
    assert.equal((await call('POST', members, { as: 'owner', params: { id }, body: { email: 'nobody@example.com', role: 'viewer' } })).status, 404);
    assert.equal((await call('POST', members, { as: 'owner', params: { id }, body: { email: DEMO.viewer, role: 'boss' } })).status, 400);
    assert.equal((await call('PATCH', member, { as: 'owner', params: { id, userId }, body: { role: 'contributor' } })).status, 200);
    const ownerId = (await call('GET', '/api/auth/session', { as: 'owner' })).body.user.id;
    assert.equal((await call('PATCH', member, { as: 'owner', params: { id, userId: ownerId }, body: { role: 'viewer' } })).status, 409);

    const sources = '/api/vaults/{id}/sources';
    const source = '/api/sources/{id}';
    const first = await call('POST', sources, { as: 'outsider', params: { id }, body: { title: 'First', fileUrl: FILE_URL } });
    assert.equal(first.status, 201);
    const sourceId = first.body.source.id;
    await call('POST', sources, { as: 'owner', params: { id }, body: { title: 'Second', fileUrl: FILE_URL } });
    const bad = await call('POST', sources, { as: 'owner', params: { id }, body: { title: '', fileUrl: 'ftp://x' } });
    assert.deepEqual(bad.body.error.details.map((d) => d.field).sort(), ['fileUrl', 'title']);
    assert.equal((await call('POST', sources, { as: 'viewer', params: { id: demo }, body: { title: 'No', fileUrl: FILE_URL } })).status, 403);
    const page = await call('GET', sources, { as: 'owner', params: { id }, query: { limit: '1' } });
    assert.equal(typeof page.body.nextCursor, 'string');
    const last = await call('GET', sources, { as: 'owner', params: { id }, query: { cursor: page.body.nextCursor } });
    assert.equal(last.body.nextCursor, null);
    assert.equal((await call('GET', sources, { as: 'owner', params: { id }, query: { limit: '0' } })).status, 400);
    assert.equal((await call('GET', source, { as: 'owner', params: { id: sourceId } })).status, 200);
    assert.equal((await call('GET', source, { as: 'owner', params: { id: crypto.randomUUID() } })).status, 404);
    assert.equal((await call('PATCH', source, { as: 'owner', params: { id: sourceId }, body: { title: 'Renamed', version: 1 } })).status, 200);
    assert.equal((await call('PATCH', source, { as: 'owner', params: { id: sourceId }, body: { title: 'Stale', version: 1 } })).status, 409);
    const firstDemo = (await call('GET', sources, { as: 'viewer', params: { id: demo } })).body.sources[0];
    if (firstDemo) {
      assert.equal((await call('DELETE', source, { as: 'viewer', params: { id: firstDemo.id } })).status, 403);
    }
    assert.equal((await call('DELETE', source, { as: 'owner', params: { id: sourceId } })).status, 204);
    assert.equal((await call('DELETE', source, { as: 'owner', params: { id: sourceId } })).status, 404);

    assert.equal((await call('DELETE', member, { as: 'owner', params: { id, userId } })).status, 204);
    assert.equal((await call('DELETE', member, { as: 'owner', params: { id, userId: ownerId } })).status, 409);
    const log = await call('GET', '/api/vaults/{id}/events', { as: 'owner', params: { id }, query: { since: '0' } });
    const types = new Set(log.body.events.map((e) => e.type));
    for (const type of ['vault:updated', 'member:added', 'member:updated', 'member:removed',
      'source:created', 'source:updated', 'source:deleted']) {
      assert.ok(types.has(type), `the log has a ${type} to validate`);
    }
    assert.equal((await call('GET', '/api/vaults/{id}/events', { as: 'owner', params: { id }, query: { since: '-1' } })).status, 400);

    assert.equal((await call('DELETE', '/api/vaults/{id}', { as: 'contributor', params: { id: demo } })).status, 403);
    assert.equal((await call('DELETE', '/api/vaults/{id}', { as: 'owner', params: { id } })).status, 204);
    assert.equal((await call('DELETE', '/api/vaults/{id}', { as: 'owner', params: { id } })).status, 404);
  });

  // Last: it exhausts the failure budget of this client address.
  test('repeated failed logins are throttled as documented, with Retry-After', async () => {
    let answer;
    for (let i = 0; i < 10 && answer?.status !== 429; i++) {
      answer = await call('POST', '/api/auth/login', { body: { email: DEMO.viewer, password: `wrong-${i}` } });
    }
    assert.equal(answer.status, 429);
    assert.ok(Number(answer.headers.get('retry-after')) >= 1);
  });

  test('every documented operation was seen answering a success and an error', () => {
    assert.deepEqual(checker.uncovered(), []);
  });

  test('a response the document does not describe is caught', () => {
    const strict = responseChecker(doc);
    const wrongShape = { status: 200, body: { vaults: [{ id: 'not-a-uuid' }] }, contentType: 'application/json' };
    assert.throws(() => strict.check('GET', '/api/vaults', wrongShape), /vaults\/0/);
    const wrongStatus = { status: 418, body: null, contentType: null };
    assert.throws(() => strict.check('GET', '/api/vaults', wrongStatus), /not among the documented/);
    const wrongCode = { status: 404, body: { error: { code: 'GONE', message: 'x' } }, contentType: 'application/json' };
    assert.throws(() => strict.check('GET', '/api/sources/{id}', wrongCode), /code/);
  });
});
