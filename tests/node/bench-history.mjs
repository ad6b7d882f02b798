// What many vaults with long logs cost the server, a socket each (issue 17): not a test, a
// measurement. It fills VAULTS vaults with EVENTS events each, restarts the server
// (so that its memory starts from a clean slate), opens one socket per vault, joins it (with
// `since: 0` when SINCE=0, which replays the whole log), then reads the server's RSS from
// /proc and the history metrics from /metrics.
//
//   SYNCSCRIPT_BIN=$PWD/target/release/syncscript node tests/node/bench-history.mjs
//   env: VAULTS (200), EVENTS (300), PER_VAULT (1 socket), SINCE (unset: plain joins) or
//   BEHIND (since = EVENTS - BEHIND: a reconnect storm's shape), FILLED (a file to keep the
//   filled SQLite database in and start from on later runs), and any SYNCSCRIPT_… setting.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { api, login, startServer } from './helpers.mjs';

const VAULTS = Number(process.env.VAULTS ?? 200);
const EVENTS = Number(process.env.EVENTS ?? 300);
const PER_VAULT = Number(process.env.PER_VAULT ?? 1);
const SINCE = process.env.BEHIND !== undefined ? EVENTS - Number(process.env.BEHIND)
  : process.env.SINCE === undefined ? undefined : Number(process.env.SINCE);
const FILLED = process.env.FILLED;

const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function settledRss(pid) {
  // The allocator and the sockets' buffers settle within a second or two.
  let last = rssKb(pid);
  for (let i = 0; i < 10; i += 1) {
    await sleep(500);
    const now = rssKb(pid);
    if (Math.abs(now - last) < 64) return now;
    last = now;
  }
  return last;
}

async function pool(n, width, task) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await task(next++);
  }));
}

/** Each vault gets one source over REST; the sqlite3 CLI copies its event EVENTS - 1 times
 * (each copy with its own `seq`), which is minutes faster than as many POSTs. */
async function fill(server, cookie) {
  for (let i = 0; i < VAULTS; i += 1) {
    const { body } = await api(server.baseUrl, cookie, 'POST', '/api/vaults', { name: `Vault ${i}` }, 201);
    await api(server.baseUrl, cookie, 'POST', `/api/vaults/${body.vault.id}/sources`,
      { title: `Source about a subject of some length`, fileUrl: 'https://example.com/papers/1.pdf' }, 201);
  }
  await server.terminate();
  execFileSync('sqlite3', [`${server.dir}/test.db`, `
    WITH RECURSIVE n(k) AS (SELECT 2 UNION ALL SELECT k + 1 FROM n WHERE k < ${EVENTS})
    INSERT INTO events (vault_id, seq, event_type, actor_id, payload, created_at)
      SELECT e.vault_id, n.k, e.event_type, e.actor_id, json_set(e.payload, '$.seq', n.k), e.created_at
      FROM events e, n WHERE e.seq = 1 AND e.event_type = 'source:created' AND n.k <= ${EVENTS};
    UPDATE vaults SET last_seq = ${EVENTS} WHERE last_seq = 1;`]);
}

const server = await startServer({
  SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER: String(VAULTS * PER_VAULT + 10),
  SYNCSCRIPT_LOG__LEVEL: 'warn',
});
try {
  let cookie = await login(server.baseUrl, 'owner@demo.com');
  const database = `${server.dir}/test.db`;
  if (FILLED && existsSync(FILLED)) {
    await server.terminate();
    for (const suffix of ['-wal', '-shm']) rmSync(database + suffix, { force: true });
    copyFileSync(FILLED, database);
  } else {
    await fill(server, cookie);
    if (FILLED) copyFileSync(database, FILLED);
  }
  await server.start();
  cookie = await login(server.baseUrl, 'owner@demo.com');
  const pid = server.proc.pid;
  const before = await settledRss(pid);
  const { body } = await api(server.baseUrl, cookie, 'GET', '/api/vaults', undefined, 200);
  const vaults = body.vaults.filter((v) => v.name.startsWith('Vault ')).map((v) => v.id);
  if (vaults.length !== VAULTS) throw new Error(`${vaults.length} vaults, not ${VAULTS}`);
  const sockets = [];
  // A vault's sockets join one after the other, so that they are in flight together.
  await pool(VAULTS * PER_VAULT, 32, async (k) => {
    const i = Math.floor(k / PER_VAULT);
    const socket = io(server.baseUrl, { transports: ['websocket'], extraHeaders: { cookie }, reconnection: false });
    sockets.push(socket);
    let replayed = 0;
    socket.onAny((name) => { if (name.startsWith('source:')) replayed += 1; });
    await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject); });
    const join = SINCE === undefined ? vaults[i] : { vaultId: vaults[i], since: SINCE };
    const ack = await socket.timeout(60_000).emitWithAck('vault:join', join);
    if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack)}`);
    if (SINCE !== undefined && replayed !== EVENTS - SINCE) {
      await sleep(200);
      if (replayed !== EVENTS - SINCE) throw new Error(`replayed ${replayed} of ${EVENTS - SINCE}`);
    }
  });
  const after = await settledRss(pid);
  const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const pick = (prefix) => metrics.split('\n').filter((l) => l.startsWith(prefix)).join('; ');
  console.log(JSON.stringify({
    vaults: VAULTS,
    perVault: PER_VAULT,
    events: EVENTS,
    since: SINCE ?? null,
    rssBeforeKb: before,
    rssAfterKb: after,
    perSocketKb: Number(((after - before) / (VAULTS * PER_VAULT)).toFixed(1)),
    logReadsPerRoom: Number((metrics.split('\n').filter((l) => l.startsWith('syncscript_history_log_reads_total'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0) / VAULTS).toFixed(2)),
    history: pick('syncscript_history_') || '(no history metrics)',
  }));
  for (const socket of sockets) socket.close();
} finally {
  await server.stop();
}
