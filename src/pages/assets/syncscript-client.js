// The SyncScript Vault client library (CONTRACT §10): what §7 asks of every client, once.
// One ES module with no dependency but a Socket.IO client, passed in as `io` (in a browser,
// the one the pages load: globalThis.io). It runs unchanged in browsers and in Node.
//
// Invariants, per vault:
// - `seq` is a watermark: every event up to it went to 'event' listeners, in seq order, and
//   nothing above it did. An event at or below it is a duplicate and is dropped; one above
//   seq + 1 waits in `pending` until the ones before it arrive.
// - Every join, first or after a reconnect, sends `since: seq`, so the server replays exactly
//   what is missing. A gap seen outside a join's replay asks for the replay again.
// - While `onResync` runs, events wait; then seq jumps to the resync's latestSeq.
// - `presence` listeners see only whole lists: snapshot pages are gathered until the one
//   without `more`, and diffs wait until then.
// - denied, revoked and signed-out are final: nothing rejoins by itself after them.

const VAULT_EVENTS = [
  'source:created', 'source:updated', 'source:deleted',
  'member:added', 'member:updated', 'member:removed',
  'vault:updated', 'vault:deleted',
];
const FINAL = new Set(['denied', 'revoked', 'signed-out']);
// A join refused for one of these will be refused again: no point asking.
const DENIED_CODES = new Set(['FORBIDDEN', 'NOT_FOUND', 'VALIDATION_ERROR']);
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;

/** connect(baseUrl, { io, headers, ackTimeout, socketOptions }) → a client. */
export function connect(baseUrl, options = {}) {
  return new Client(baseUrl, options);
}

/** A refusal in the contract's terms: `code` and `message` as the server sent them. */
function failure(code, message, details) {
  const err = new Error(message);
  err.code = code;
  if (details !== undefined) err.details = details;
  return err;
}

/** Grows a randomized backoff: a delay between half of and the whole next step. */
class Backoff {
  constructor() { this.step = 0; this.timer = null; }
  schedule(fn) {
    clearTimeout(this.timer);
    this.step = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, this.step * 2));
    this.timer = setTimeout(fn, this.step * (0.5 + Math.random() / 2));
  }
  reset() { this.cancel(); this.step = 0; }
  cancel() { clearTimeout(this.timer); this.timer = null; }
}

function keyOf(vaultId) {
  return typeof vaultId === 'string' ? vaultId.toLowerCase() : '';
}

class Client {
  constructor(baseUrl, { io = globalThis.io, headers, ackTimeout = 10_000, socketOptions = {} } = {}) {
    if (typeof io !== 'function') throw new TypeError('connect: no Socket.IO client; pass { io }');
    this.vaults = new Map(); // lowercase vault id -> Vault
    this.ackTimeout = ackTimeout;
    this.ended = false; // signed out (the reason, once the session is gone for good)
    this.closed = false;
    this.reconnect = new Backoff();
    const opts = { ...socketOptions };
    if (headers) opts.extraHeaders = { ...headers };
    this.socket = baseUrl ? io(baseUrl, opts) : io(opts);
    this.#listen(this.socket);
  }

  /** Opens a vault: joins it now (or once connected) and after every reconnect. */
  vault(vaultId, options = {}) {
    if (typeof vaultId !== 'string' || vaultId === '') throw new TypeError('vault: vaultId must be a string');
    if (this.closed) throw new Error('vault: the client is closed');
    if (this.vaults.has(keyOf(vaultId))) throw new Error(`vault ${vaultId} is already open; leave it first`);
    const vault = new Vault(this, vaultId, options);
    this.vaults.set(keyOf(vaultId), vault);
    if (this.ended) vault._end('signed-out', this.ended);
    else vault._join();
    return vault;
  }

  close() {
    this.closed = true;
    this.reconnect.cancel();
    for (const vault of this.vaults.values()) vault._stop();
    this.vaults.clear();
    this.socket.disconnect();
  }

  #listen(socket) {
    socket.on('connect', () => {
      this.reconnect.reset();
      for (const vault of this.vaults.values()) vault._join();
    });
    socket.on('disconnect', (reason) => {
      for (const vault of this.vaults.values()) vault._dropped();
      // Logout and expiry say session:ended first (the client is then signed out and stays
      // so). Any other Socket.IO-level disconnect (a flooding socket) is asked again; a
      // session that ended unannounced then fails the handshake as UNAUTHORIZED.
      if (reason === 'io server disconnect') this.#connectLater();
    });
    socket.on('connect_error', (err) => {
      if (socket.active) return; // a transport failure: socket.io-client retries by itself
      const code = err && err.message;
      if (code === 'UNAUTHORIZED') this.#signedOut('unauthorized');
      else if (code === 'FORBIDDEN') this.#endAll('denied', 'The server refused this origin');
      else this.#connectLater(); // UNAVAILABLE, TOO_MANY_CONNECTIONS: a busy or draining node
    });
    socket.on('session:ended', (p) => this.#signedOut(p && p.reason));
    for (const type of VAULT_EVENTS) socket.on(type, (p) => this.#route(p, (v) => v._event(type, p)));
    socket.on('vault:joined', (p) => this.#route(p, (v) => v._joined(p)));
    socket.on('vault:revoked', (p) => this.#route(p, (v) => v._end('revoked', p.reason)));
    socket.on('presence', (p) => this.#route(p, (v) => v._presencePage(p)));
    socket.on('presence:diff', (p) => this.#route(p, (v) => v._presenceDiff(p)));
  }

  #route(payload, fn) {
    const vault = payload && this.vaults.get(keyOf(payload.vaultId));
    if (vault) fn(vault);
  }

  #connectLater() {
    if (this.ended || this.closed) return;
    this.reconnect.schedule(() => {
      if (!this.ended && !this.closed && !this.socket.connected) this.socket.connect();
    });
  }

  #signedOut(reason) {
    if (this.ended) return;
    this.ended = reason || 'signed-out';
    this.#endAll('signed-out', this.ended);
    this.reconnect.cancel();
    this.socket.disconnect();
  }

  #endAll(status, reason) {
    for (const vault of this.vaults.values()) vault._end(status, reason);
  }

  /** Emits a mutation and settles with its ack: the ack itself, or a contract error. */
  _mutate(event, payload) {
    if (this.closed) return Promise.reject(failure('UNAVAILABLE', 'The client is closed'));
    if (this.ended) return Promise.reject(failure('UNAUTHORIZED', 'Signed out'));
    return new Promise((resolve, reject) => {
      this.socket.timeout(this.ackTimeout).emit(event, payload, (err, ack) => {
        if (err) {
          reject(failure('UNAVAILABLE', 'No answer from the server; the change may or may not have been made'));
        } else if (ack && ack.ok === true) {
          resolve(ack);
        } else {
          const e = (ack && ack.error) || {};
          reject(failure(e.code || 'INTERNAL', e.message || 'The server refused the request', e.details));
        }
      });
    });
  }
}

class Vault {
  constructor(client, vaultId, { since = 0, onResync } = {}) {
    if (!Number.isInteger(since) || since < 0) throw new TypeError('vault: since must be a whole number');
    this.client = client;
    this.id = vaultId;
    this.seq = since;
    this.status = 'connecting';
    this.role = null; // as of the last join
    this.reason = null; // why the status became final: the server's reason or message
    this.onResync = onResync;
    this.listeners = { event: new Set(), presence: new Set(), status: new Set() };
    this.pending = new Map(); // seq -> event, for seqs above seq + 1
    this.joining = false; // a join is out: what arrives until its reply is its replay
    this.attempt = 0; // bumped by every join and every drop, so stale acks are ignored
    this.resyncing = false;
    this.everJoined = false;
    this.gone = false; // left or closed
    this.retry = new Backoff();
    this.online = new Map(); // userId -> user
    this.snapshot = null; // pages of a presence snapshot being gathered
    this.heldDiffs = []; // diffs waiting for a whole snapshot; null once it is whole
  }

  /** The online list as of the last whole snapshot and the diffs since. */
  get users() { return Array.from(this.online.values()); }

  /** Listens to 'event', 'presence' or 'status'; returns the function that stops it. */
  on(name, fn) {
    const set = this.listeners[name];
    if (!set) throw new TypeError(`on: unknown event ${name}`);
    if (typeof fn !== 'function') throw new TypeError('on: listener must be a function');
    set.add(fn);
    return () => set.delete(fn);
  }

  createSource({ title, fileUrl }) {
    return this.client._mutate('source:create', { vaultId: this.id, title, fileUrl }).then((a) => a.source);
  }

  updateSource(sourceId, { title, fileUrl, version } = {}) {
    return this.client._mutate('source:update', { sourceId, title, fileUrl, version }).then((a) => a.source);
  }

  deleteSource(sourceId) {
    return this.client._mutate('source:delete', { sourceId }).then(() => undefined);
  }

  leave() {
    if (this.gone) return;
    const socket = this.client.socket;
    this._stop();
    if (this.client.vaults.get(keyOf(this.id)) === this) this.client.vaults.delete(keyOf(this.id));
    if (socket.connected) socket.emit('vault:leave', this.id);
  }

  #emit(name, value) {
    for (const fn of Array.from(this.listeners[name])) {
      try {
        fn(value);
      } catch (err) {
        setTimeout(() => { throw err; }); // the app's bug surfaces; the protocol state is intact
      }
    }
  }

  #setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.#emit('status', status);
  }

  #live() {
    return !this.gone && !FINAL.has(this.status);
  }

  _join() {
    if (!this.#live() || this.resyncing || !this.client.socket.connected) return;
    this.retry.cancel();
    const attempt = ++this.attempt;
    this.joining = true;
    this.snapshot = null;
    this.heldDiffs = [];
    this.client.socket.emit('vault:join', { vaultId: this.id, since: this.seq }, (ack) => {
      if (attempt !== this.attempt || !this.joining) return;
      if (ack && ack.ok === true) this._joined(ack);
      else this.#refused((ack && ack.error) || {});
    });
  }

  // vault:joined and the ack announce the same join (the event first, after the replay).
  _joined(info) {
    if (!this.joining || !this.#live()) return;
    this.joining = false;
    if (typeof info.role === 'string') this.role = info.role;
    const latest = Number(info.latestSeq);
    if (info.resync === true) {
      this.#resync(latest);
      return;
    }
    this.everJoined = true;
    this.retry.reset();
    this.#setStatus('joined');
    if (this.seq < latest || this.pending.size > 0) this.#gap();
  }

  #refused(error) {
    this.joining = false;
    if (DENIED_CODES.has(error.code)) this._end('denied', error.message);
    else this.retry.schedule(() => this._join()); // UNAVAILABLE, RATE_LIMITED, …
  }

  async #resync(latest) {
    this.resyncing = true;
    const attempt = this.attempt;
    let ok = true;
    try {
      if (this.onResync) await this.onResync(latest);
    } catch (err) {
      ok = false; // a reload that failed (the server is away again?) is tried again later
      if (globalThis.console) console.warn('syncscript-client: onResync failed; retrying', err);
    }
    this.resyncing = false;
    if (!this.#live()) return;
    if (ok) {
      this.seq = latest; // also down, when the log was reset (since > latestSeq)
      this.#flush();
    }
    if (!ok) {
      this.retry.schedule(() => this._join());
    } else if (attempt !== this.attempt) {
      this._join(); // dropped meanwhile: the reconnect's join waited for the new seq
    } else {
      this.everJoined = true;
      this.retry.reset();
      this.#setStatus('joined');
      if (this.pending.size > 0) this.#gap();
    }
  }

  // A missing seq outside a replay: ask for the replay again (at once the first time).
  #gap() {
    if (this.joining || this.resyncing) return;
    if (this.retry.step === 0) {
      this.retry.step = RETRY_MIN_MS / 2;
      this._join();
    } else {
      this.retry.schedule(() => this._join());
    }
  }

  _event(type, payload) {
    const seq = Number(payload.seq);
    if (!this.#live() || !Number.isInteger(seq) || seq <= this.seq || this.pending.has(seq)) return;
    this.pending.set(seq, { type, ...payload });
    if (this.resyncing) return;
    this.#flush();
    if (this.pending.size > 0 && !this.joining) this.#gap();
  }

  #flush() {
    for (const seq of this.pending.keys()) if (seq <= this.seq) this.pending.delete(seq);
    let next;
    while ((next = this.pending.get(this.seq + 1))) {
      this.pending.delete(next.seq);
      this.seq = next.seq;
      this.#emit('event', next);
    }
  }

  _presencePage(packet) {
    if (!this.#live()) return;
    if (!this.snapshot) this.snapshot = new Map();
    for (const user of packet.users || []) this.snapshot.set(user.userId, user);
    if (packet.more === true) return;
    this.online = this.snapshot;
    this.snapshot = null;
    for (const diff of this.heldDiffs || []) applyDiff(this.online, diff);
    this.heldDiffs = null;
    this.#emit('presence', this.users);
  }

  _presenceDiff(diff) {
    if (!this.#live()) return;
    if (this.heldDiffs) {
      this.heldDiffs.push(diff);
      return;
    }
    applyDiff(this.online, diff);
    this.#emit('presence', this.users);
  }

  /** The connection dropped: the room, the join and the online list went with it. */
  _dropped() {
    this.attempt += 1;
    this.joining = false;
    this.retry.cancel();
    this.online = new Map();
    this.snapshot = null;
    this.heldDiffs = [];
    if (this.#live()) this.#setStatus(this.everJoined ? 'reconnecting' : 'connecting');
  }

  _end(status, reason) {
    if (!this.#live()) return;
    this._stop();
    this.online = new Map();
    this.reason = reason || null;
    this.#setStatus(status);
    if (this.client.vaults.get(keyOf(this.id)) === this) this.client.vaults.delete(keyOf(this.id));
  }

  _stop() {
    this.gone = true;
    this.attempt += 1;
    this.joining = false;
    this.retry.cancel();
  }
}

/** One diff on top of the list: who left goes, who came is (re)placed. */
function applyDiff(online, diff) {
  for (const userId of diff.leaves || []) online.delete(userId);
  for (const user of diff.joins || []) online.set(user.userId, user);
}
