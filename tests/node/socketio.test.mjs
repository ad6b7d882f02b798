// The Socket.IO contract (CONTRACT §7) as the official socket.io-client 4.x sees it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import {
  DEMO, api, createSource, demoVaultId, latestSeq, login, loginDemo, once, skipReason, startServer,
} from './helpers.mjs';

const skip = skipReason();

describe('socket.io-client against the real server', { skip, timeout: 120_000 }, () => {
  let server;
  let base;
  let vaultId;
  const cookies = {};
  const sockets = [];

  function connect(options = {}) {
    const socket = io(base, { reconnection: false, timeout: 5_000, ...options });
    sockets.push(socket);
    return socket;
  }

  async function connected(options) {
    const socket = connect(options);
    await Promise.race([
      once(socket, 'connect'),
      once(socket, 'connect_error').then((err) => { throw new Error(`connect_error: ${err.message}`); }),
    ]);
    return socket;
  }

  function join(socket, payload) {
    return socket.timeout(5_000).emitWithAck('vault:join', payload);
  }

  before(async () => {
    server = await startServer();
    base = server.baseUrl;
    Object.assign(cookies, await loginDemo(base));
    vaultId = await demoVaultId(base, cookies.owner);
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    await server?.stop();
  });

  test('a client connects over websocket only', async () => {
    const socket = await connected({ transports: ['websocket'], extraHeaders: { cookie: cookies.owner } });
    assert.equal(socket.io.engine.transport.name, 'websocket');
    const ack = await join(socket, { vaultId });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    socket.disconnect();
  });

  test('a client connects over long-polling only', async () => {
    const socket = await connected({ transports: ['polling'], extraHeaders: { cookie: cookies.owner } });
    assert.equal(socket.io.engine.transport.name, 'polling');
    const ack = await join(socket, { vaultId });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.role, 'owner');
    socket.disconnect();
  });

  test('a polling client upgrades to websocket', async () => {
    const socket = connect({ transports: ['polling', 'websocket'], extraHeaders: { cookie: cookies.owner } });
    const upgraded = new Promise((resolve, reject) => {
      socket.io.on('open', () => {
        assert.equal(socket.io.engine.transport.name, 'polling');
        socket.io.engine.once('upgrade', (transport) => resolve(transport.name));
      });
      setTimeout(() => reject(new Error('no upgrade within 5 s')), 5_000);
    });
    assert.equal(await upgraded, 'websocket');
    assert.equal(socket.io.engine.transport.name, 'websocket');
    const ack = await join(socket, { vaultId });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    socket.disconnect();
  });

  test('a member who joins the demo vault receives a source another user created over REST', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.owner } });
    const joined = once(socket, 'vault:joined');
    const ack = await join(socket, { vaultId });
    assert.deepEqual(
      { ok: ack.ok, vaultId: ack.vaultId, role: ack.role, resync: ack.resync },
      { ok: true, vaultId, role: 'owner', resync: false },
    );
    assert.equal(typeof ack.latestSeq, 'number');
    const event = await joined;
    assert.equal(event.vaultId, vaultId);
    assert.equal(event.role, 'owner');

    const created = once(socket, 'source:created');
    const source = await createSource(base, cookies.contributor, vaultId, 'Live from REST');
    const payload = await created;
    assert.equal(payload.vaultId, vaultId);
    assert.equal(payload.source.id, source.id);
    assert.equal(payload.source.title, 'Live from REST');
    assert.equal(payload.seq, ack.latestSeq + 1);
    assert.equal(payload.actor.role, 'contributor');
    assert.ok(!Number.isNaN(Date.parse(payload.timestamp)), `timestamp ${payload.timestamp}`);
    socket.disconnect();
  });

  test('joining with a string vault id works too', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.viewer } });
    const ack = await join(socket, vaultId);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.role, 'viewer');
    socket.disconnect();
  });

  test('a client that reconnects with since gets exactly the missed events in order', async () => {
    const first = await connected({ extraHeaders: { cookie: cookies.owner } });
    const ack = await join(first, { vaultId });
    const since = ack.latestSeq;
    first.disconnect();

    const missed = [];
    for (const title of ['Missed one', 'Missed two', 'Missed three']) {
      missed.push(await createSource(base, cookies.contributor, vaultId, title));
    }

    const second = connect({ autoConnect: false, extraHeaders: { cookie: cookies.owner } });
    const received = [];
    for (const type of ['source:created', 'source:updated', 'source:deleted']) {
      second.on(type, (payload) => received.push({ type, seq: payload.seq, id: payload.source?.id }));
    }
    second.connect();
    await once(second, 'connect');
    const joined = once(second, 'vault:joined');
    const rejoin = await join(second, { vaultId, since });
    await joined;
    assert.equal(rejoin.ok, true);
    assert.equal(rejoin.resync, false);
    assert.equal(rejoin.latestSeq, since + 3);
    assert.deepEqual(received, missed.map((source, i) => ({ type: 'source:created', seq: since + 1 + i, id: source.id })));
    // Nothing else trickles in afterwards.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(received.length, 3);
    second.disconnect();
  });

  test('a since above the latest seq answers resync', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.owner } });
    const latest = await latestSeq(base, cookies.owner, vaultId);
    const ack = await join(socket, { vaultId, since: latest + 1000 });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.resync, true);
    socket.disconnect();
  });

  test('an outsider is refused the vault and stays connected', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.outsider } });
    const error = once(socket, 'error');
    const ack = await join(socket, { vaultId });
    assert.deepEqual(ack, { ok: false, error: { code: 'FORBIDDEN', message: 'Access denied to vault' } });
    assert.equal((await error).code, 'FORBIDDEN');
    assert.equal(socket.connected, true);
    socket.disconnect();
  });

  test('presence lists each user once however many sockets they have', async () => {
    const a = await connected({ extraHeaders: { cookie: cookies.viewer } });
    const b = await connected({ extraHeaders: { cookie: cookies.viewer } });
    await join(a, { vaultId });
    const presence = once(b, 'presence');
    await join(b, { vaultId });
    const { users } = await presence;
    const viewers = users.filter((u) => u.role === 'viewer');
    assert.equal(viewers.length, 1, JSON.stringify(users));
    a.disconnect();
    b.disconnect();
  });

  test('a viewer cannot create a source over the socket', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.viewer } });
    await join(socket, { vaultId });
    const ack = await socket.timeout(5_000).emitWithAck('source:create', { vaultId, title: 'Nope', fileUrl: 'https://example.com/' });
    assert.deepEqual(ack, { ok: false, error: { code: 'FORBIDDEN', message: 'Insufficient permissions' } });
    socket.disconnect();
  });

  test('a handshake without a cookie fails with UNAUTHORIZED', async () => {
    const socket = connect();
    const err = await once(socket, 'connect_error');
    assert.equal(err.message, 'UNAUTHORIZED');
  });

  test('a handshake with a bogus session cookie fails with UNAUTHORIZED', async () => {
    const socket = connect({ extraHeaders: { cookie: 'syncscript.session-token=bogus-not-a-session' } });
    const err = await once(socket, 'connect_error');
    assert.equal(err.message, 'UNAUTHORIZED');
  });

  test('a websocket handshake without a cookie fails with UNAUTHORIZED', async () => {
    const socket = connect({ transports: ['websocket'] });
    const err = await once(socket, 'connect_error');
    assert.equal(err.message, 'UNAUTHORIZED');
  });

  test('a handshake from a foreign Origin is refused', async () => {
    const socket = connect({ extraHeaders: { cookie: cookies.owner, Origin: 'http://evil.example' } });
    const outcome = await Promise.race([
      once(socket, 'connect_error').then((err) => `connect_error: ${err.message}`),
      once(socket, 'connect').then(() => 'connected'),
    ]);
    assert.match(outcome, /^connect_error/);
  });

  test('a websocket handshake from a foreign Origin is refused', async () => {
    const socket = connect({ transports: ['websocket'], extraHeaders: { cookie: cookies.owner, Origin: 'http://evil.example' } });
    const outcome = await Promise.race([
      once(socket, 'connect_error').then((err) => `connect_error: ${err.message}`),
      once(socket, 'connect').then(() => 'connected'),
    ]);
    assert.match(outcome, /^connect_error/);
  });

  test('a handshake from the server own Origin is accepted', async () => {
    const socket = await connected({ extraHeaders: { cookie: cookies.owner, Origin: base } });
    assert.equal(socket.connected, true);
    socket.disconnect();
  });

  test('logging out disconnects the session sockets', async () => {
    const cookie = await login(base, DEMO.contributor);
    const socket = await connected({ extraHeaders: { cookie } });
    await join(socket, { vaultId });
    const disconnected = once(socket, 'disconnect');
    await api(base, cookie, 'POST', '/api/auth/logout', undefined, 204);
    await disconnected;
    assert.equal(socket.connected, false);
    const again = connect({ extraHeaders: { cookie } });
    assert.equal((await once(again, 'connect_error')).message, 'UNAUTHORIZED');
  });
});
