// A rolling restart behind the README's nginx (CONTRACT §1 drain, §7 "Restarts", §9): three
// nodes on one PostgreSQL database, socket.io-client and python-socketio clients (default
// transports, and long-polling only) in one vault, a writer committing ~10 sources a second
// through the balancer, and every node in turn SIGTERMed, drained and started again. Every
// client must end connected with every committed event, in seq order, none missing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { DEMO, api, demoVaultId, latestSeq, login, repoRoot, startCluster, waitFor } from './helpers.mjs';
import { nginxSkipReason, startNginx } from './nginx.mjs';

const DRAIN_MS = 4_000;
const PYTHON = path.join(repoRoot, 'tests/python/.venv/bin/python');
// Per family: [default transports, long-polling only].
const CLIENTS = { 'socket.io-client': [3, 2], 'python-socketio': [3, 2] };

function skipReason() {
  if (!existsSync(PYTHON)) return `no venv at ${PYTHON} (tests/node/run.sh makes it with tests/python/venv.sh)`;
  return nginxSkipReason();
}

/** A socket.io-client app: joins on every connect with since, drops seqs it has, notes times away. */
function nodeClient(baseUrl, cookie, vaultId, transports) {
  const socket = io(baseUrl, { extraHeaders: { cookie }, ...(transports ? { transports } : {}) });
  const state = { delivered: [], duplicates: 0, disconnects: [], joinTimes: [], refusedJoins: [], have: null };
  const join = () => {
    const payload = state.have === null ? { vaultId } : { vaultId, since: state.have };
    socket.timeout(10_000).emit('vault:join', payload, (err, ack) => {
      if (err) return; // the socket went away meanwhile; the next connect joins again
      if (!ack.ok) {
        state.refusedJoins.push(ack);
        if (ack.error?.code === 'UNAVAILABLE') setTimeout(() => socket.connected && join(), 200 + Math.random() * 800);
        return;
      }
      if (state.have === null) state.have = ack.latestSeq;
      state.joinTimes.push(Date.now());
    });
  };
  socket.on('connect', join);
  socket.on('disconnect', (reason) => state.disconnects.push({ at: Date.now(), reason }));
  socket.onAny((event, payload) => {
    if (!event.startsWith('source:') || typeof payload?.seq !== 'number') return;
    if (state.have !== null && payload.seq <= state.have) { state.duplicates += 1; return; }
    state.have = payload.seq;
    state.delivered.push(payload.seq);
  });
  return {
    family: 'socket.io-client',
    polling: Boolean(transports),
    joined: () => state.joinTimes.length > 0,
    close: () => socket.disconnect(),
    async report() {
      const away = state.disconnects.map(({ at }) => {
        const back = state.joinTimes.find((t) => t > at);
        return back === undefined ? null : back - at;
      });
      return { ...state, away, connected: socket.connected, transport: socket.io.engine?.transport?.name };
    },
  };
}

/** A python-socketio app in a child process (tests/python/vault_client.py). */
function pythonClient(baseUrl, cookie, vaultId, transports) {
  const args = [path.join(repoRoot, 'tests/python/vault_client.py'), baseUrl, cookie, vaultId, ...(transports ? ['polling'] : [])];
  const proc = spawn(PYTHON, args, { cwd: path.join(repoRoot, 'tests/python'), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const lines = [];
  createInterface({ input: proc.stdout }).on('line', (line) => lines.push(JSON.parse(line)));
  return {
    family: 'python-socketio',
    polling: Boolean(transports),
    joined: () => lines.some((l) => 'joined' in l),
    close: () => proc.stdin.end(),
    async report() {
      const asked = lines.length;
      proc.stdin.write('report\n');
      const found = await waitFor(() => lines.slice(asked).find((l) => l.report), 15_000,
        `a python client's report (stderr: ${stderr.slice(-2000)})`);
      return found.report;
    },
  };
}

/** The nearest-rank percentile `q` (0..1) of `values`, or undefined when there are none. */
function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * q) - 1)];
}

describe('a rolling restart of three nodes behind the README nginx config', { skip: skipReason(), timeout: 180_000 }, () => {
  let cluster;
  let nginx;
  const clients = [];

  before(async () => {
    cluster = await startCluster(3, {
      SYNCSCRIPT_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]',
      SYNCSCRIPT_SERVER__DRAIN_PERIOD: `${DRAIN_MS}ms`,
    });
    nginx = await startNginx(cluster.nodes.map((n) => n.port));
  });

  after(async () => {
    for (const client of clients) client.close();
    await nginx?.stop();
    await cluster?.stop();
  });

  test('every client of both families ends connected with every event, in order; writes fail rarely and as 503s', async () => {
    try {
      await rollingRestart();
    } catch (err) {
      console.error(`----- nginx error log (last 30 lines) -----\n${nginx.errorLog().split('\n').slice(-30).join('\n')}`);
      for (const [i, node] of cluster.nodes.entries()) console.error(`----- node ${i + 1} log -----\n${node.logTail(15)}`);
      throw err;
    }
  });

  async function rollingRestart() {
    const owner = await login(nginx.baseUrl, DEMO.owner);
    const vaultId = await demoVaultId(nginx.baseUrl, owner);
    const start = await latestSeq(nginx.baseUrl, owner, vaultId);
    for (const [family, [ws, polling]] of Object.entries(CLIENTS)) {
      const make = family === 'python-socketio' ? pythonClient : nodeClient;
      for (let i = 0; i < ws + polling; i += 1) {
        // A session of its own each: nginx hashes the cookie, so the clients spread over the nodes.
        const cookie = await login(nginx.baseUrl, DEMO.viewer);
        clients.push(make(nginx.baseUrl, cookie, vaultId, i < ws ? undefined : ['polling']));
      }
    }
    await waitFor(() => clients.every((c) => c.joined()), 30_000, 'every client joined');

    // The writer: one source every 100 ms through the balancer, for the whole rolling restart.
    const writes = { ok: 0, failed: [] };
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i += 1) {
        const t = Date.now();
        try {
          const res = await api(nginx.baseUrl, owner, 'POST', `/api/vaults/${vaultId}/sources`,
            { title: `rolling ${i}`, fileUrl: 'https://example.com/r.pdf' });
          if (res.status === 201) writes.ok += 1;
          else writes.failed.push({ status: res.status, code: res.body?.error?.code ?? String(res.body).slice(0, 80) });
        } catch (err) {
          writes.failed.push({ status: 'network', code: err.message });
        }
        await sleep(Math.max(0, 100 - (Date.now() - t)));
      }
    })();

    const drains = [];
    for (const [i, node] of cluster.nodes.entries()) {
      await sleep(1_000);
      const from = Date.now();
      const code = await node.terminate();
      drains.push({ node: i + 1, from, to: Date.now(), code });
      await node.start();
    }
    await sleep(1_000);
    writing = false;
    await writer;

    const last = await latestSeq(nginx.baseUrl, owner, vaultId);
    const expected = Array.from({ length: last - start }, (_, k) => start + 1 + k);
    assert.ok(expected.length >= 50, `the writer committed ${expected.length} events`);
    const reports = await waitFor(async () => {
      const all = await Promise.all(clients.map(async (client) => ({ client, report: await client.report() })));
      // Connected, caught up, and no rejoin pending (a long-polling client may move back to
      // its own node once that is up again).
      const settled = ({ report }) => report.connected && report.delivered.at(-1) === last
        && report.away.every((a) => a !== null);
      return all.every(settled) && all;
    }, 30_000, 'every client caught up, connected and rejoined').catch(async (err) => {
      for (const client of clients) console.error(client.family, client.polling, JSON.stringify(await client.report()).slice(0, 1500));
      throw err;
    });

    for (const { client, report } of reports) {
      const who = `${client.family}${client.polling ? ' (polling only)' : ''}`;
      assert.equal(report.connected, true, `${who} ends connected: ${JSON.stringify(report.disconnects)}`);
      assert.deepEqual(report.delivered, expected, `${who} has every event once, in seq order`);
      assert.ok(report.away.every((a) => a !== null), `${who} rejoined after every disconnect`);
      if (client.polling) assert.equal(report.transport, 'polling');
    }
    assert.deepEqual(drains.map((d) => d.code), [0, 0, 0], 'each drained node exits 0');

    // Each node closes its sockets spread over the drain period, not in one instant (a node
    // that closed them all at once would show a span near 0).
    const spreads = [];
    let backBeforeExit = 0;
    for (const drain of drains) {
      const times = reports.flatMap(({ report }) => report.disconnects.map((d) => d.at))
        .filter((t) => t >= drain.from && t <= drain.to);
      // How many of them were back (joined again) before the draining node exited.
      const back = reports.flatMap(({ report }) => report.disconnects
        .filter((d) => d.at >= drain.from && d.at <= drain.to)
        .map((d) => report.joinTimes.find((t) => t > d.at)))
        .filter((t) => t !== undefined && t < drain.to).length;
      if (times.length >= 2) {
        const span = Math.round(Math.max(...times) - Math.min(...times));
        spreads.push(`node ${drain.node}: ${times.length} over ${span} ms, ${back} back before it exited`);
        backBeforeExit += back;
        assert.ok(span >= DRAIN_MS / 4, `node ${drain.node}'s ${times.length} disconnects spread over ${span} ms`);
      }
    }
    assert.ok(spreads.length > 0, 'some drained node had several clients to close');
    console.log(`disconnects while each node drained (drain_period ${DRAIN_MS} ms): ${spreads.join('; ')}`);
    // Reconnections spread too: a client closed early in a drain is back, on another node,
    // while its old node still drains (were they refused there until it exited, every client
    // of the node would come back in one instant).
    assert.ok(backBeforeExit >= spreads.length,
      `clients are back while their node drains (${backBeforeExit} over ${spreads.length} drains)`);

    for (const family of Object.keys(CLIENTS)) {
      const mine = reports.filter(({ client }) => client.family === family).map(({ report }) => report);
      const away = mine.flatMap((r) => r.away).map(Math.round);
      console.log(`${family}: ${mine.length} clients, ${expected.length} events each, `
        + `${away.length} times away (median ${percentile(away, 0.5) ?? 0} ms, p99 ${percentile(away, 0.99) ?? 0} ms, `
        + `max ${Math.max(0, ...away)} ms), `
        + `${mine.reduce((n, r) => n + r.duplicates, 0)} duplicates dropped, `
        + `${mine.reduce((n, r) => n + r.refusedJoins.length, 0)} joins refused`);
    }
    console.log(`writer: ${writes.ok + writes.failed.length} writes, ${writes.failed.length} failed: ${JSON.stringify(writes.failed)}`);
    const unclear = writes.failed.filter((f) => f.status !== 503 || f.code !== 'UNAVAILABLE');
    assert.deepEqual(unclear, [], 'every failed write is a 503 UNAVAILABLE');
    assert.ok(writes.failed.length <= Math.ceil(0.05 * (writes.ok + writes.failed.length)), 'few writes failed');
  }
});
