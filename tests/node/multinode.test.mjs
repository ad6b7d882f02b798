// Several nodes behind a load balancer (CONTRACT §9): three nodes on one PostgreSQL database
// behind nginx, configured with the README's own nginx block, driven by the official
// socket.io-client with its default transports (long-polling first, then the upgrade).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { DEMO, PASSWORD, createSource, demoVaultId, login, once, startCluster, waitFor } from './helpers.mjs';
import { nginxSkipReason, startNginx } from './nginx.mjs';

const NODES = 3;

/** The `syncscript_connected_sockets` gauge of one node, read from it directly. */
async function connectedSockets(node) {
  const res = await fetch(`${node.baseUrl}/metrics`);
  const text = await res.text();
  const m = /^syncscript_connected_sockets(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error(`no syncscript_connected_sockets in /metrics of ${node.baseUrl}:\n${text}`);
  return Number(m[1]);
}

describe('three nodes on one PostgreSQL behind the README nginx config', { skip: nginxSkipReason(), timeout: 90_000 }, () => {
  let cluster;
  let nginx;
  let vaultId;
  const cookies = {};
  const sockets = [];

  /** A socket through nginx; default transports unless given. */
  function connect(cookie, options = {}) {
    const socket = io(nginx.baseUrl, { timeout: 5_000, extraHeaders: { cookie }, ...options });
    sockets.push(socket);
    return socket;
  }

  async function join(socket, payload) {
    const ack = await socket.timeout(10_000).emitWithAck('vault:join', payload);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    return ack;
  }

  function closeAll() {
    for (const socket of sockets.splice(0)) socket.disconnect();
  }

  /** Which node nginx sent the requests of an Engine.IO session to, per its access log. */
  function upstreamsOf(sid) {
    return nginx.accessLog().split('\n')
      .filter((line) => line.includes(`sid=${sid}`))
      .map((line) => {
        const [method, uri, status, upstream, upstreamStatus] = line.split(' ');
        return { method, uri, status, upstream, upstreamStatus };
      });
  }

  function nodeAt(upstream) {
    return cluster.nodes.findIndex((n) => upstream === `127.0.0.1:${n.port}`);
  }

  /** Runs a test body; on failure prints nginx's error log and the nodes' logs. */
  function logged(fn) {
    return async (t) => {
      try {
        await fn(t);
      } catch (err) {
        console.error(`----- nginx error log -----\n${nginx?.errorLog() || '(empty)'}`);
        console.error(`----- nginx access log (last 40 lines) -----\n${nginx?.accessLog().split('\n').slice(-40).join('\n')}`);
        for (const [i, node] of (cluster?.nodes ?? []).entries()) {
          console.error(`----- node ${i + 1} (port ${node.port}) log -----\n${node.logTail(20)}`);
        }
        throw err;
      } finally {
        closeAll();
      }
    };
  }

  before(async () => {
    cluster = await startCluster(NODES, { SYNCSCRIPT_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]' });
    nginx = await startNginx(cluster.nodes.map((n) => n.port));
    // Through nginx: these are the cookies nginx hashes on.
    cookies.owner = await login(nginx.baseUrl, DEMO.owner);
    cookies.viewer = await login(nginx.baseUrl, DEMO.viewer);
    vaultId = await demoVaultId(nginx.baseUrl, cookies.owner);
  });

  after(async () => {
    closeAll();
    await nginx?.stop();
    await cluster?.stop();
  });

  test('a client through nginx joins, upgrades, and gets sources created on each node in seq order', logged(async () => {
    const socket = connect(cookies.viewer);
    const events = [];
    socket.on('source:created', (e) => events.push(e));
    await once(socket, 'connect', 10_000);
    const ack = await join(socket, { vaultId });
    await waitFor(() => socket.io.engine.transport.name === 'websocket', 10_000, 'the upgrade to WebSocket through nginx');

    const created = [];
    for (const [i, node] of cluster.nodes.entries()) {
      created.push(await createSource(node.baseUrl, cookies.owner, vaultId, `written on node ${i + 1}`));
    }
    await waitFor(() => events.length >= NODES, 10_000, `${NODES} source:created events`);
    await sleep(200); // nothing more should come
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: NODES }, (_, i) => ack.latestSeq + 1 + i));
    assert.deepEqual(events.map((e) => e.source.id), created.map((s) => s.id));
    assert.deepEqual(events.map((e) => e.source.title), created.map((s) => s.title));
  }));

  test('long-polling is sticky: every poll of a session reaches the node that opened it', logged(async () => {
    const socket = connect(cookies.viewer, { transports: ['polling'], reconnection: false });
    const events = [];
    const disconnects = [];
    socket.on('source:created', (e) => events.push(e));
    socket.on('disconnect', (reason) => disconnects.push(reason));
    await once(socket, 'connect', 10_000);
    const sid = socket.io.engine.id;
    const ack = await join(socket, { vaultId });

    const rounds = 3;
    for (let r = 0; r < rounds; r += 1) {
      for (const [i, node] of cluster.nodes.entries()) {
        await createSource(node.baseUrl, cookies.owner, vaultId, `polling round ${r + 1}, node ${i + 1}`);
      }
      await waitFor(() => events.length >= (r + 1) * NODES, 10_000, `round ${r + 1}'s events`);
    }
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: rounds * NODES }, (_, i) => ack.latestSeq + 1 + i));
    assert.equal(socket.io.engine.transport.name, 'polling');
    assert.equal(socket.connected, true);
    assert.deepEqual(disconnects, []);

    const requests = await waitFor(() => {
      const logged = upstreamsOf(sid);
      return logged.length >= 2 * rounds && logged;
    }, 5_000, `nginx's access log of session ${sid}`);
    const upstreams = new Set(requests.map((r) => r.upstream));
    assert.equal(upstreams.size, 1, `every request of ${sid} went to one node: ${JSON.stringify(requests)}`);
    assert.notEqual(nodeAt([...upstreams][0]), -1, `${[...upstreams][0]} is one of the nodes`);
    assert.deepEqual(requests.filter((r) => r.status !== '200'), [], 'every poll answered 200');
  }));

  test("a browser's Origin, the balancer's own address on its port, is accepted through nginx", logged(async () => {
    // Browsers send Origin: http://<the balancer's host:port>; the nodes compare it with Host.
    const origin = nginx.baseUrl;
    const res = await fetch(`${nginx.baseUrl}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin },
      body: JSON.stringify({ email: DEMO.contributor, password: PASSWORD }),
    });
    assert.equal(res.status, 200, `login with Origin ${origin}: ${res.status} ${await res.text()}`);
    const socket = connect(cookies.viewer, { reconnection: false, extraHeaders: { cookie: cookies.viewer, origin } });
    const outcome = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve('neither connect nor connect_error within 10 s'), 10_000);
      const done = (what) => { clearTimeout(timer); resolve(what); };
      socket.once('connect', () => done('connect'));
      socket.once('connect_error', (e) => done(`connect_error ${e.message}`));
    });
    assert.equal(outcome, 'connect', `the Socket.IO handshake with Origin ${origin}`);
    await join(socket, { vaultId });
  }));

  test("the client's node is killed: it reconnects through nginx to another node and catches up with since", logged(async () => {
    // The sockets of the earlier tests are gone, so the node with one socket is this client's.
    await waitFor(async () => (await Promise.all(cluster.nodes.map(connectedSockets))).every((n) => n === 0),
      10_000, 'no socket left on any node');
    const socket = connect(cookies.viewer); // reconnection on, default backoff
    let have = 0; // the last seq this client has; it drops any seq up to it
    let arrivals = [];
    socket.onAny((event, payload) => {
      if (event === 'source:created') {
        if (payload.seq <= have) return;
        have = payload.seq;
      }
      arrivals.push({ event, seq: payload?.seq, id: payload?.source?.id });
    });
    await once(socket, 'connect', 10_000);
    const first = await join(socket, { vaultId });
    have = Math.max(have, first.latestSeq);
    await waitFor(() => socket.io.engine.transport.name === 'websocket', 10_000, 'the upgrade to WebSocket');

    const counts = await waitFor(async () => {
      const c = await Promise.all(cluster.nodes.map(connectedSockets));
      return c.reduce((a, b) => a + b, 0) === 1 && c;
    }, 10_000, 'the client counted on one node');
    const victim = counts.indexOf(1);
    const survivors = cluster.nodes.filter((_, i) => i !== victim);

    const disconnected = once(socket, 'disconnect', 10_000);
    await cluster.nodes[victim].kill();
    const reason = await disconnected;
    const reconnected = once(socket, 'connect', 30_000);

    // Written while the client is away, through both surviving nodes directly.
    const missed = [];
    for (let i = 0; i < 6; i += 1) {
      missed.push(await createSource(survivors[i % 2].baseUrl, cookies.owner, vaultId, `missed ${i + 1}`));
    }
    assert.equal(socket.connected, false, 'the sources were written while the client was disconnected');

    await reconnected;
    const since = have;
    arrivals = [];
    const ack = await join(socket, { vaultId, since });
    arrivals.push({ event: 'ack' });

    const now = await Promise.all(survivors.map(connectedSockets));
    assert.deepEqual(now.sort(), [0, 1], `the client is on one surviving node (after "${reason}")`);
    const created = arrivals.filter((a) => a.event === 'source:created');
    assert.deepEqual(created.map((a) => a.seq), Array.from({ length: missed.length }, (_, i) => since + 1 + i));
    assert.deepEqual(created.map((a) => a.id), missed.map((s) => s.id));
    const names = arrivals.map((a) => a.event);
    const joined = names.indexOf('vault:joined');
    assert.ok(joined > names.lastIndexOf('source:created'), `vault:joined after the replay: ${names}`);
    assert.ok(names.indexOf('ack') > joined, `the ack after vault:joined: ${names}`);
    assert.equal(ack.resync, false);
    assert.equal(ack.latestSeq, since + missed.length);
    assert.equal(ack.latestSeq, have, 'the ack names the last seq the client has');
  }));
});
