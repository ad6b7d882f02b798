// Delivery at the edges (CONTRACT §7) with the official socket.io-client and its default
// transports: it starts on long-polling and upgrades to WebSocket, possibly mid-replay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { createSource, demoVaultId, loginDemo, once, skipReason, startServer } from './helpers.mjs';

const MAX_REPLAY = 900;

describe('replays as socket.io-client sees them', { skip: skipReason(), timeout: 180_000 }, () => {
  let server;
  let base;
  let vaultId;
  const cookies = {};
  const sockets = [];

  async function connected(cookie, transports) {
    const options = { reconnection: false, timeout: 5_000, extraHeaders: { cookie } };
    const socket = io(base, transports ? { ...options, transports } : options);
    sockets.push(socket);
    await once(socket, 'connect');
    return socket;
  }

  /** Joins, then disconnects: the seq the client has seen up to. */
  async function lastSeen(cookie) {
    const socket = await connected(cookie);
    const ack = await socket.timeout(5_000).emitWithAck('vault:join', { vaultId });
    socket.disconnect();
    return ack.latestSeq;
  }

  async function commit(n) {
    for (let i = 0; i < n; i += 1) await createSource(base, cookies.owner, vaultId, `missed ${i}`);
  }

  /** Rejoins with `since`, recording every event and the ack in the order they arrive. */
  async function rejoin(cookie, since, transports) {
    const socket = await connected(cookie, transports);
    const arrivals = [];
    socket.onAny((event, payload) => arrivals.push({ event, seq: payload?.seq }));
    const ack = await socket.timeout(60_000).emitWithAck('vault:join', { vaultId, since });
    arrivals.push({ event: 'ack' });
    return { socket, ack, arrivals };
  }

  before(async () => {
    server = await startServer({ SYNCSCRIPT_REALTIME__MAX_REPLAY: String(MAX_REPLAY) });
    base = server.baseUrl;
    Object.assign(cookies, await loginDemo(base));
    vaultId = await demoVaultId(base, cookies.owner);
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    await server?.stop();
  });

  for (const [name, transports] of [
    ['default transports (polling, then the upgrade)', undefined],
    ['long-polling only', ['polling']],
    ['WebSocket only', ['websocket']],
  ]) {
    test(`a client that missed 900 events gets every one in order, then vault:joined, then the ack: ${name}`, async () => {
      const since = await lastSeen(cookies.viewer);
      await commit(MAX_REPLAY);
      const started = performance.now();
      const { socket, ack, arrivals } = await rejoin(cookies.viewer, since, transports);
      const ms = performance.now() - started;
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(ack.resync, false);
      assert.equal(ack.latestSeq, since + MAX_REPLAY);
      const seqs = arrivals.filter((a) => a.event === 'source:created').map((a) => a.seq);
      const firsts = seqs.filter((s, i) => seqs.indexOf(s) === i);
      assert.deepEqual(firsts, Array.from({ length: MAX_REPLAY }, (_, i) => since + 1 + i));
      const names = arrivals.map((a) => a.event);
      const joined = names.indexOf('vault:joined');
      assert.ok(joined > names.lastIndexOf('source:created'), 'vault:joined after the whole replay');
      assert.ok(names.indexOf('ack') > joined, 'the ack after vault:joined');
      console.log(`# replay of ${MAX_REPLAY} events over ${name}: join to ack ${ms.toFixed(0)} ms (ended on ${socket.io.engine.transport.name})`);
      socket.disconnect();
    });
  }

  test('one event more than realtime.max_replay answers resync and replays nothing', async () => {
    const since = await lastSeen(cookies.contributor);
    await commit(MAX_REPLAY + 1);
    const { socket, ack, arrivals } = await rejoin(cookies.contributor, since);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.resync, true);
    assert.equal(ack.latestSeq, since + MAX_REPLAY + 1);
    assert.equal(arrivals.filter((a) => a.event.startsWith('source:')).length, 0);
    socket.disconnect();
  });
});
