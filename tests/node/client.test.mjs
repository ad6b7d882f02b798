// The client library (CONTRACT §10) as the binary serves it, in Node with the official
// socket.io-client, against the real server. A TCP gate between client and server keeps the
// client away while the server restarts or commits, so each test forces its interleaving.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  DEMO, PASSWORD, api, createSource, demoVaultId, importServedClient, latestSeq, login, loginDemo, once, skipReason,
  startServer, waitFor,
} from './helpers.mjs';
import { openGate } from './gate.mjs';

const MAX_REPLAY = 5;
const CROWD = 55;

describe('the client library against the real server', { skip: skipReason(), timeout: 300_000 }, () => {
  let server;
  let base;
  let vaultId;
  let connect;
  const cookies = {};
  const cleanup = [];

  /** A client through its own gate; `outgoing` counts what the socket emitted, by event. */
  async function client(cookie) {
    const gate = await openGate(server.port);
    const c = connect(gate.url, {
      io,
      headers: { cookie },
      socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 500 },
    });
    const outgoing = [];
    c.socket.onAnyOutgoing((event) => outgoing.push(event));
    cleanup.push(() => c.close(), () => gate.close());
    return { client: c, gate, outgoing };
  }

  /** Opens a vault and records what it delivers. */
  function watch(c, id, options) {
    const vault = c.vault(id, options);
    const seen = { events: [], statuses: [], presence: [] };
    vault.on('event', (e) => seen.events.push(e));
    vault.on('status', (s) => seen.statuses.push(s));
    vault.on('presence', (users) => seen.presence.push(users));
    return { vault, seen };
  }

  const statusIs = (vault, status, ms = 10_000) => waitFor(() => vault.status === status, ms, `status ${status} (is ${vault.status})`);
  const seqIs = (vault, seq, ms = 10_000) => waitFor(() => vault.seq === seq, ms, `seq ${seq} (is ${vault.seq})`);

  async function logSeqs(id, since) {
    const { body } = await api(base, cookies.owner, 'GET', `/api/vaults/${id}/events?since=${since}&limit=1000`, undefined, 200);
    return body.events.map((e) => `${e.type}#${e.seq}`);
  }

  /** Stops the server (a draining one refuses the client's new handshakes), then keeps the
   * client out while it starts again; the caller commits, then lets the client in. */
  async function restartWhileAway(gate, vault, stop) {
    await stop();
    gate.refuse();
    await statusIs(vault, 'reconnecting');
    await server.start();
  }

  before(async () => {
    server = await startServer({
      SYNCSCRIPT_REALTIME__MAX_REPLAY: String(MAX_REPLAY),
      SYNCSCRIPT_SERVER__DRAIN_PERIOD: '1s',
    });
    base = server.baseUrl;
    Object.assign(cookies, await loginDemo(base));
    vaultId = await demoVaultId(base, cookies.owner);
    ({ connect } = await importServedClient(base));
  });

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  after(async () => {
    await server?.stop();
  });

  for (const [how, stop] of [
    ['SIGKILL', () => server.kill()],
    ['SIGTERM drain', async () => {
      await new Promise((resolve) => { server.proc.once('exit', resolve); server.proc.kill('SIGTERM'); });
      assert.match(server.logTail(100), /draining done/, 'the server drained its sockets');
    }],
  ]) {
    test(`every event arrives once and in order across a ${how} restart with commits made while away`, async () => {
      const since = await latestSeq(base, cookies.owner, vaultId);
      const { client: c, gate } = await client(cookies.viewer);
      const { vault, seen } = watch(c, vaultId, { since });
      await statusIs(vault, 'joined');
      for (let i = 0; i < 3; i += 1) await createSource(base, cookies.owner, vaultId, `live before ${i}`);
      await seqIs(vault, since + 3);

      await restartWhileAway(gate, vault, stop);
      for (let i = 0; i < MAX_REPLAY - 1; i += 1) await createSource(base, cookies.owner, vaultId, `while away ${i}`);
      gate.accept();
      await statusIs(vault, 'joined');
      for (let i = 0; i < 2; i += 1) await createSource(base, cookies.owner, vaultId, `live after ${i}`);
      const last = await latestSeq(base, cookies.owner, vaultId);
      await seqIs(vault, last);

      assert.deepEqual(seen.events.map((e) => `${e.type}#${e.seq}`), await logSeqs(vaultId, since));
      assert.deepEqual(seen.statuses, ['joined', 'reconnecting', 'joined']);
    });
  }

  test('a client that missed more than max_replay runs onResync once, then gets only newer events', async () => {
    const since = await latestSeq(base, cookies.owner, vaultId);
    const { client: c, gate } = await client(cookies.contributor);
    const resyncs = [];
    const { vault, seen } = watch(c, vaultId, { since, onResync: async (latest) => { resyncs.push(latest); } });
    await statusIs(vault, 'joined');

    gate.refuse();
    gate.cut();
    await statusIs(vault, 'reconnecting');
    for (let i = 0; i < MAX_REPLAY + 1; i += 1) await createSource(base, cookies.owner, vaultId, `missed ${i}`);
    const missedUpTo = await latestSeq(base, cookies.owner, vaultId);
    gate.accept();
    await statusIs(vault, 'joined');
    assert.deepEqual(resyncs, [missedUpTo]);
    await createSource(base, cookies.owner, vaultId, 'after the resync');
    await seqIs(vault, missedUpTo + 1);
    assert.deepEqual(seen.events.map((e) => e.seq), [missedUpTo + 1]);
    assert.deepEqual(resyncs, [missedUpTo], 'the callback ran once');
  });

  test('several vaults on one client each get their own events; a vault left gets none', async () => {
    const ids = [];
    for (const name of ['First', 'Second']) {
      const { body } = await api(base, cookies.owner, 'POST', '/api/vaults', { name: `${name} ${Date.now()}` }, 201);
      ids.push(body.vault.id);
    }
    const { client: c } = await client(cookies.owner);
    const [a, b] = ids.map((id) => watch(c, id));
    await statusIs(a.vault, 'joined');
    await statusIs(b.vault, 'joined');
    for (let i = 0; i < 3; i += 1) {
      await createSource(base, cookies.owner, ids[0], `a${i}`);
      await createSource(base, cookies.owner, ids[1], `b${i}`);
    }
    await seqIs(a.vault, 3);
    await seqIs(b.vault, 3);
    assert.deepEqual(a.seen.events.map((e) => e.source.title), ['a0', 'a1', 'a2']);
    assert.deepEqual(b.seen.events.map((e) => e.source.title), ['b0', 'b1', 'b2']);

    a.vault.leave();
    await createSource(base, cookies.owner, ids[0], 'a3');
    await createSource(base, cookies.owner, ids[1], 'b3');
    await seqIs(b.vault, 4);
    assert.equal(a.seen.events.length, 3);
    assert.equal(a.vault.seq, 3);
  });

  test('mutations resolve to the source, and a refusal rejects with the contract code and message', async () => {
    const { client: owner } = await client(cookies.owner);
    const { client: viewer } = await client(cookies.viewer);
    const mine = owner.vault(vaultId);
    const theirs = viewer.vault(vaultId);
    const created = await mine.createSource({ title: 'Over the socket', fileUrl: 'https://example.com/s' });
    assert.equal(created.title, 'Over the socket');
    const updated = await mine.updateSource(created.id, { title: 'Renamed', version: created.version });
    assert.equal(updated.version, created.version + 1);

    await assert.rejects(theirs.createSource({ title: 'No', fileUrl: 'https://example.com/no' }),
      { code: 'FORBIDDEN', message: 'Insufficient permissions' });
    await assert.rejects(mine.updateSource(created.id, { title: 'Stale', version: created.version }), { code: 'CONFLICT' });
    await assert.rejects(mine.createSource({ title: 'Bad', fileUrl: 'ftp://example.com' }), { code: 'VALIDATION_ERROR' });
    await mine.deleteSource(created.id);
    await assert.rejects(mine.deleteSource(created.id), { code: 'NOT_FOUND' });
  });

  test('denied and revoked are final: the vault is not rejoined after a reconnect', async () => {
    const { body } = await api(base, cookies.owner, 'POST', '/api/vaults', { name: `Revocable ${Date.now()}` }, 201);
    const otherVault = body.vault.id;
    const { body: added } = await api(base, cookies.owner, 'POST', `/api/vaults/${otherVault}/members`, { email: DEMO.viewer, role: 'viewer' }, 201);

    const outsider = await client(cookies.outsider);
    const denied = watch(outsider.client, otherVault);
    await statusIs(denied.vault, 'denied');
    const viewer = await client(cookies.viewer);
    const revoked = watch(viewer.client, otherVault);
    await statusIs(revoked.vault, 'joined');
    await api(base, cookies.owner, 'DELETE', `/api/vaults/${otherVault}/members/${added.member.userId}`, undefined, 204);
    await statusIs(revoked.vault, 'revoked', 2_000);

    // Both could join now; a cut connection must not bring either back by itself.
    await api(base, cookies.owner, 'POST', `/api/vaults/${otherVault}/members`, { email: DEMO.viewer, role: 'viewer' }, 201);
    await api(base, cookies.owner, 'POST', `/api/vaults/${otherVault}/members`, { email: DEMO.outsider, role: 'viewer' }, 201);
    for (const { client: c, gate, outgoing } of [outsider, viewer]) {
      const joins = outgoing.filter((e) => e === 'vault:join').length;
      const reconnected = once(c.socket, 'connect', 10_000);
      gate.cut();
      await reconnected;
      assert.equal(outgoing.filter((e) => e === 'vault:join').length, joins, 'no join after the reconnect');
    }
    assert.deepEqual(denied.seen.statuses, ['denied']);
    assert.equal(denied.vault.reason, 'Access denied to vault');
    assert.deepEqual(revoked.seen.statuses, ['joined', 'revoked']);
    assert.equal(revoked.vault.reason, 'removed');
  });

  test('a session logged out elsewhere ends as signed-out, and the client stops connecting', async () => {
    const cookie = await login(base, DEMO.contributor, PASSWORD);
    const { client: c, outgoing } = await client(cookie);
    const { vault, seen } = watch(c, vaultId);
    await statusIs(vault, 'joined');
    await api(base, cookie, 'POST', '/api/auth/logout', undefined, 204);
    await statusIs(vault, 'signed-out', 5_000);
    const joins = outgoing.filter((e) => e === 'vault:join').length;
    assert.equal(c.socket.connected, false);
    assert.equal(c.socket.active, false, 'no reconnection pending');
    // session:ended comes before the disconnect: no reconnecting in between.
    assert.deepEqual(seen.statuses, ['joined', 'signed-out']);
    assert.equal(vault.reason, 'logout');
    assert.equal(outgoing.filter((e) => e === 'vault:join').length, joins);
  });

  test(`a newcomer's presence lists ${CROWD + 2} users once each, never a partial page`, async () => {
    const { client: watcher } = await client(cookies.owner);
    const early = watch(watcher, vaultId);
    await statusIs(early.vault, 'joined');
    const crowd = [];
    const expected = [];
    for (const cookie of [cookies.owner, cookies.contributor]) {
      expected.push((await api(base, cookie, 'GET', '/api/auth/session', undefined, 200)).body.user.id);
    }
    for (let i = 0; i < CROWD; i += 1) {
      const email = `crowd${i}-${Date.now()}@example.com`;
      const { body } = await api(base, null, 'POST', '/api/auth/register', { email, name: `Crowd ${i}`, password: PASSWORD }, 201);
      expected.push(body.user.id);
      await api(base, cookies.owner, 'POST', `/api/vaults/${vaultId}/members`, { email, role: 'viewer' }, 201);
      crowd.push(await login(base, email));
    }
    // One socket for the whole crowd would be one user: each gets a client of its own.
    await Promise.all(crowd.map(async (cookie) => {
      const c = connect(base, { io, headers: { cookie } });
      cleanup.push(() => c.close());
      await statusIs(c.vault(vaultId), 'joined');
    }));
    await waitFor(() => early.vault.users.length === CROWD + 1, 10_000, 'the watcher sees the crowd arrive');

    const { client: newcomer } = await client(cookies.contributor);
    const late = watch(newcomer, vaultId);
    await waitFor(() => late.seen.presence.length > 0, 10_000, 'a presence list');
    const first = late.seen.presence[0].map((u) => u.userId);
    assert.deepEqual(first.toSorted(), expected.toSorted(), 'the crowd, the owner and the newcomer, each once');
    await waitFor(() => early.vault.users.length === CROWD + 2, 10_000, 'the watcher sees the newcomer');
  });
});
