// The client library's bookkeeping in isolation (CONTRACT §10): watermark, dedupe, gaps,
// resync, paged presence and statuses, driven through a fake socket that plays the server.
// The real server and socket.io-client are in client.test.mjs.
import { beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers.mjs';

const source = readFileSync(path.join(repoRoot, 'src/pages/assets/syncscript-client.js'), 'utf8');
const file = path.join(mkdtempSync(path.join(tmpdir(), 'syncscript-client-unit-')), 'client.mjs');
writeFileSync(file, source);
const { connect } = await import(file);

const VAULT = '6f1c2a8e-0000-4000-8000-000000000001';

/** Stands in for a socket.io-client socket: records emits, lets the test play the server. */
class FakeSocket {
  constructor() {
    this.handlers = new Map();
    this.sent = [];
    this.connected = false;
    this.active = true;
  }
  on(event, fn) { this.handlers.set(event, [...(this.handlers.get(event) || []), fn]); }
  emit(event, payload, ack) { this.sent.push({ event, payload, ack }); }
  timeout() { return { emit: (event, payload, cb) => this.sent.push({ event, payload, ack: (a) => cb(null, a) }) }; }
  connect() { this.connected = true; this.fire('connect'); }
  disconnect() { this.disconnects = (this.disconnects || 0) + 1; this.drop('io client disconnect'); }
  drop(reason) {
    if (!this.connected) return;
    this.connected = false;
    this.fire('disconnect', reason);
  }
  fire(event, arg) { for (const fn of this.handlers.get(event) || []) fn(arg); }
  joins() { return this.sent.filter((s) => s.event === 'vault:join'); }
  lastJoin() { return this.joins().at(-1); }
  /** Replays `seqs` then answers the last join as the server does: event, then ack. */
  answerJoin({ seqs = [], latestSeq, resync = false, role = 'owner' } = {}) {
    const join = this.lastJoin();
    for (const seq of seqs) this.event(seq);
    const info = { vaultId: VAULT, role, latestSeq: latestSeq ?? seqs.at(-1) ?? 0, resync };
    this.fire('vault:joined', info);
    join.ack({ ok: true, ...info });
  }
  event(seq, type = 'source:created') { this.fire(type, { vaultId: VAULT, seq, actor: {}, timestamp: '' }); }
}

function open(options) {
  const socket = new FakeSocket();
  const client = connect('http://server.test', { io: () => socket });
  const vault = client.vault(VAULT, options);
  const seen = { events: [], statuses: [], presence: [] };
  vault.on('event', (e) => seen.events.push(e.seq));
  vault.on('status', (s) => seen.statuses.push(s));
  vault.on('presence', (users) => seen.presence.push(users.map((u) => u.userId).sort()));
  return { socket, client, vault, seen };
}

const user = (id) => ({ userId: `u${id}`, userName: `User ${id}`, role: 'viewer' });

describe('the client library on a fake socket', () => {
  beforeEach(() => mock.timers.reset());

  test('joins with since, drops what it has and rejoins after a drop with the last seq delivered', () => {
    const { socket, vault, seen } = open({ since: 3 });
    socket.connect();
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 3 });
    socket.answerJoin({ seqs: [2, 3, 4, 5, 5] });
    socket.event(5); // the live duplicate at the instant of joining
    socket.event(6);
    assert.deepEqual(seen.events, [4, 5, 6]);
    assert.equal(vault.seq, 6);
    socket.drop('transport close');
    assert.equal(vault.status, 'reconnecting');
    socket.connect();
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 6 });
    socket.answerJoin({ seqs: [6, 7] });
    assert.deepEqual(seen.events, [4, 5, 6, 7]);
    assert.deepEqual(seen.statuses, ['joined', 'reconnecting', 'joined']);
  });

  test('a gap in live events rejoins with since and delivers the held event once, in order', () => {
    const { socket, seen } = open();
    socket.connect();
    socket.answerJoin({ latestSeq: 0 });
    socket.event(1);
    socket.event(3);
    assert.deepEqual(seen.events, [1], 'seq 3 waits for seq 2');
    assert.equal(socket.joins().length, 2, 'a gap asks for the replay again');
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 1 });
    socket.answerJoin({ seqs: [2, 3] });
    socket.event(4);
    assert.deepEqual(seen.events, [1, 2, 3, 4]);
  });

  test('a join whose reply says latestSeq above the replay asks again', () => {
    const { socket, seen } = open();
    socket.connect();
    socket.answerJoin({ seqs: [1], latestSeq: 2 });
    assert.equal(socket.joins().length, 2);
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 1 });
    socket.answerJoin({ seqs: [2] });
    assert.deepEqual(seen.events, [1, 2]);
  });

  test('a resync runs onResync once, holds live events meanwhile, then delivers only newer ones', async () => {
    let release;
    const calls = [];
    const { socket, vault, seen } = open({
      since: 1,
      onResync: (latest) => { calls.push(latest); return new Promise((r) => { release = r; }); },
    });
    socket.connect();
    socket.answerJoin({ latestSeq: 10, resync: true });
    socket.event(10);
    socket.event(12);
    socket.event(11);
    assert.deepEqual(calls, [10]);
    assert.deepEqual(seen.events, [], 'nothing is delivered while the app reloads');
    assert.equal(vault.status, 'connecting');
    release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen.events, [11, 12]);
    assert.equal(vault.seq, 12);
    assert.equal(vault.status, 'joined');
    assert.equal(socket.joins().length, 1);
  });

  test('a drop while onResync runs rejoins after it with since = latestSeq, and a failed one runs again', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const settle = [];
    const calls = [];
    const { socket, vault } = open({
      since: 1,
      onResync: (latest) => { calls.push(latest); return new Promise((resolve, reject) => settle.push({ resolve, reject })); },
    });
    socket.connect();
    socket.answerJoin({ latestSeq: 10, resync: true });
    socket.drop('transport close');
    socket.connect();
    assert.equal(socket.joins().length, 1, 'the rejoin waits for the reload');
    settle[0].reject(new Error('reload failed'));
    await new Promise((r) => setImmediate(r));
    assert.equal(vault.seq, 1, 'a failed reload moves nothing');
    mock.timers.tick(250);
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 1 });
    socket.answerJoin({ latestSeq: 12, resync: true });
    socket.drop('transport close');
    socket.connect();
    settle[1].resolve();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, [10, 12]);
    assert.deepEqual(socket.lastJoin().payload, { vaultId: VAULT, since: 12 });
    assert.equal(vault.status, 'connecting', 'never joined yet: joined only once that rejoin answers');
  });

  test('without onResync since jumps to latestSeq', () => {
    const { socket, vault, seen } = open({ since: 5 });
    socket.connect();
    socket.answerJoin({ latestSeq: 2, resync: true }); // the log was reset
    return new Promise((r) => setImmediate(r)).then(() => {
      assert.equal(vault.seq, 2);
      socket.event(3);
      assert.deepEqual(seen.events, [3]);
    });
  });

  test('paged presence is listed once whole, with diffs held until then, each user once', () => {
    const { socket, vault, seen } = open();
    socket.connect();
    socket.answerJoin({});
    socket.fire('presence:diff', { vaultId: VAULT, joins: [user(3)], leaves: ['u1'] });
    socket.fire('presence', { vaultId: VAULT, users: [user(1), user(2)], more: true });
    assert.deepEqual(seen.presence, [], 'no partial list');
    socket.fire('presence', { vaultId: VAULT, users: [user(2), user(4)] });
    assert.deepEqual(seen.presence, [['u2', 'u3', 'u4']]);
    socket.fire('presence:diff', { vaultId: VAULT, joins: [], leaves: ['u4'] });
    assert.deepEqual(seen.presence.at(-1), ['u2', 'u3']);
    assert.deepEqual(vault.users.map((u) => u.userId).sort(), ['u2', 'u3']);
  });

  test('a refused join: FORBIDDEN is final, UNAVAILABLE is asked again after a delay', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const busy = open();
    busy.socket.connect();
    busy.socket.lastJoin().ack({ ok: false, error: { code: 'UNAVAILABLE', message: 'busy' } });
    assert.equal(busy.socket.joins().length, 1);
    mock.timers.tick(250);
    assert.equal(busy.socket.joins().length, 2, 'asked again');
    assert.equal(busy.vault.status, 'connecting');

    const denied = open();
    denied.socket.connect();
    denied.socket.lastJoin().ack({ ok: false, error: { code: 'FORBIDDEN', message: 'Access denied to vault' } });
    denied.socket.drop('transport close');
    denied.socket.connect();
    mock.timers.tick(10_000);
    assert.equal(denied.socket.joins().length, 1);
    assert.deepEqual(denied.seen.statuses, ['denied']);
  });

  test('revoked and signed-out are final; signed-out closes the socket', () => {
    const { socket, client, vault, seen } = open();
    socket.connect();
    socket.answerJoin({});
    socket.fire('vault:revoked', { vaultId: VAULT, reason: 'removed' });
    socket.event(1);
    socket.drop('transport close');
    socket.connect();
    assert.equal(socket.joins().length, 1);
    assert.deepEqual(seen.statuses, ['joined', 'revoked']);
    assert.deepEqual(seen.events, []);
    assert.equal(vault.reason, 'removed');

    const other = client.vault('6f1c2a8e-0000-4000-8000-000000000002');
    const statuses = [];
    other.on('status', (s) => statuses.push(s));
    socket.fire('session:ended', { reason: 'logout' });
    assert.deepEqual(statuses, ['signed-out']);
    assert.equal(other.reason, 'logout');
    assert.equal(socket.disconnects, 1);
  });

  test('a refused mutation rejects with the contract code and message; off stops a listener', async () => {
    const { socket, vault, seen } = open();
    socket.connect();
    const pending = vault.createSource({ title: 't', fileUrl: 'https://example.com' });
    const emitted = socket.sent.at(-1);
    assert.deepEqual(emitted.payload, { vaultId: VAULT, title: 't', fileUrl: 'https://example.com' });
    emitted.ack({ ok: false, error: { code: 'FORBIDDEN', message: 'Insufficient permissions' } });
    await assert.rejects(pending, { code: 'FORBIDDEN', message: 'Insufficient permissions' });

    const off = vault.on('event', () => assert.fail('removed listener called'));
    off();
    socket.answerJoin({ seqs: [1] });
    assert.deepEqual(seen.events, [1]);
  });
});
