// Shared helpers: run the real `syncscript` binary on a free port with a fresh SQLite
// file, and talk to it over REST the way a client would.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PASSWORD = 'demo-password';
export const DEMO = {
  owner: 'owner@demo.com',
  contributor: 'contributor@demo.com',
  viewer: 'viewer@demo.com',
  outsider: 'outsider@demo.com',
};

/** A reason to skip the suites, or false: they run on SQLite only. */
export function skipReason() {
  const url = process.env.TEST_DATABASE_URL || '';
  if (/^postgres(ql)?:/i.test(url)) return 'TEST_DATABASE_URL is PostgreSQL; these suites run on SQLite only';
  return false;
}

export function binaryPath() {
  const bin = process.env.SYNCSCRIPT_BIN || 'target/debug/syncscript';
  return path.resolve(repoRoot, bin);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server and waits for GET /readyz. The returned handle can `kill()` it the
 * hard way and `start()` it again on the same port with the same database file.
 */
export async function startServer(extraEnv = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`server binary not found at ${bin} (build it or set SYNCSCRIPT_BIN)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'syncscript-node-'));
  const port = await freePort();
  const server = new Server(bin, dir, port, extraEnv);
  await server.start();
  return server;
}

class Server {
  constructor(bin, dir, port, extraEnv) {
    this.bin = bin;
    this.extraEnv = extraEnv;
    this.dir = dir;
    this.port = port;
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.logFile = path.join(dir, 'server.log');
    this.proc = null;
    this.starts = 0;
  }

  env() {
    // SYNCSCRIPT_BIN names the binary for these suites; the server would read it as config.
    const { SYNCSCRIPT_BIN: _bin, ...inherited } = process.env;
    return {
      ...inherited,
      SYNCSCRIPT_SERVER__PORT: String(this.port),
      SYNCSCRIPT_SERVER__HOST: '127.0.0.1',
      SYNCSCRIPT_DATABASE__URL: `sqlite://${this.dir}/test.db?mode=rwc`,
      SYNCSCRIPT_DEMO__SEED: 'true',
      ...this.extraEnv,
    };
  }

  async start(timeoutMs = 30_000) {
    this.starts += 1;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.write(`\n----- start #${this.starts} -----\n`);
    const proc = spawn(this.bin, [], { cwd: repoRoot, env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.pipe(log, { end: false });
    proc.stderr.pipe(log, { end: false });
    this.proc = proc;
    let exited = null;
    proc.once('exit', (code, signal) => { exited = { code, signal }; });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`server exited during start-up (${JSON.stringify(exited)}):\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    throw new Error(`server not ready within ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** SIGKILL: no graceful shutdown, exactly like a crash. */
  async kill() {
    await this.#signal('SIGKILL', 5_000);
  }

  /** SIGTERM, as at a deploy: resolves with the exit code once the process is gone. */
  terminate(waitMs = 60_000) {
    const proc = this.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server still running ${waitMs} ms after SIGTERM`)), waitMs);
      proc.once('exit', (code, signal) => { clearTimeout(timer); resolve(code ?? signal); });
      proc.kill('SIGTERM');
    });
  }

  async stop() {
    if (!this.proc) return;
    await this.#signal('SIGTERM', 3_000).catch(() => this.#signal('SIGKILL', 5_000));
    rmSync(this.dir, { recursive: true, force: true });
  }

  #signal(signal, waitMs) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server ignored ${signal}`)), waitMs);
      proc.once('exit', () => { clearTimeout(timer); resolve(); });
      proc.kill(signal);
    });
  }

  logTail(lines = 40) {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no server log)';
    }
  }
}

/** Logs in over REST and returns the `name=value` cookie pair to send back. */
export async function login(baseUrl, email, password = PASSWORD) {
  const res = await fetch(`${baseUrl}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (res.status !== 200) throw new Error(`login ${email}: HTTP ${res.status} ${await res.text()}`);
  const setCookie = res.headers.getSetCookie();
  const session = setCookie.find((c) => c.startsWith('syncscript.session-token=')) ?? setCookie[0];
  if (!session) throw new Error(`login ${email}: no Set-Cookie header`);
  return session.split(';')[0];
}

/** Logs every demo account in: `{owner, contributor, viewer, …}` → cookie pair. */
export async function loginDemo(baseUrl) {
  const cookies = {};
  for (const [who, email] of Object.entries(DEMO)) cookies[who] = await login(baseUrl, email);
  return cookies;
}

/** One REST call with a cookie; returns {status, body}. Throws on an unexpected status. */
export async function api(baseUrl, cookie, method, route, body, expectStatus) {
  const headers = {};
  if (cookie) headers.cookie = cookie;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  if (expectStatus !== undefined && res.status !== expectStatus) {
    throw new Error(`${method} ${route}: expected ${expectStatus}, got ${res.status} ${text}`);
  }
  return { status: res.status, body: json };
}

export async function demoVaultId(baseUrl, ownerCookie) {
  const { body } = await api(baseUrl, ownerCookie, 'GET', '/api/vaults', undefined, 200);
  const vault = body.vaults.find((v) => v.name === 'Demo Vault');
  if (!vault) throw new Error(`no "Demo Vault" in ${JSON.stringify(body)}`);
  return vault.id;
}

export async function createSource(baseUrl, cookie, vaultId, title, fileUrl = 'https://example.com/doc.pdf') {
  const { body } = await api(baseUrl, cookie, 'POST', `/api/vaults/${vaultId}/sources`, { title, fileUrl }, 201);
  return body.source;
}

export async function latestSeq(baseUrl, cookie, vaultId) {
  const { body } = await api(baseUrl, cookie, 'GET', `/api/vaults/${vaultId}/events?since=0&limit=1`, undefined, 200);
  return body.latestSeq;
}

/** Resolves with the first argument of the next `event`, or rejects after `ms`. */
export function once(emitter, event, ms = 5_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    const handler = (arg) => {
      clearTimeout(timer);
      resolve(arg);
    };
    emitter.once(event, handler);
  });
}

/** Polls `check` until it returns a truthy value or `ms` passes. */
export async function waitFor(check, ms = 5_000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(25);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** The PostgreSQL server the multi-node suite uses (CI_POSTGRES_URL overrides it, as in .ci/run). */
export function postgresUrl() {
  return process.env.CI_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
}

/** Runs one SQL statement with psql on `url`; rejects with psql's stderr when it fails. */
export function psql(url, sql) {
  return new Promise((resolve, reject) => {
    const proc = spawn('psql', [url, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    proc.once('error', reject);
    proc.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`psql ${sql}: exit ${code}: ${err}`))));
  });
}

/**
 * Starts `count` nodes at once on one fresh PostgreSQL database (demo seed on, so they race
 * to migrate and seed it). `stop()` stops every node and drops the database.
 */
export async function startCluster(count, extraEnv = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`server binary not found at ${bin} (build it or set SYNCSCRIPT_BIN)`);
  const admin = postgresUrl();
  const database = `syncscript_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  await psql(admin, `CREATE DATABASE "${database}"`);
  const url = new URL(admin);
  url.pathname = `/${database}`;
  const cluster = {
    database,
    databaseUrl: url.toString(),
    nodes: [],
    async stop() {
      await Promise.allSettled(this.nodes.map((node) => node.stop()));
      await psql(admin, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    },
  };
  const ports = new Set();
  try {
    for (let i = 0; i < count; i += 1) {
      let port = await freePort();
      while (ports.has(port)) port = await freePort();
      ports.add(port);
      const dir = mkdtempSync(path.join(tmpdir(), `syncscript-node${i + 1}-`));
      cluster.nodes.push(new Server(bin, dir, port, { SYNCSCRIPT_DATABASE__URL: cluster.databaseUrl, ...extraEnv }));
    }
    await Promise.all(cluster.nodes.map((node) => node.start()));
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}

/**
 * Imports the client library (CONTRACT §10) exactly as `baseUrl` serves it, checking that it
 * is served as JavaScript: the module goes to a temp .mjs file, never from the source tree.
 */
export async function importServedClient(baseUrl) {
  const res = await fetch(`${baseUrl}/assets/syncscript-client.js`);
  if (res.status !== 200) throw new Error(`GET /assets/syncscript-client.js: HTTP ${res.status}`);
  const type = res.headers.get('content-type') || '';
  if (!/^text\/javascript\b/.test(type)) throw new Error(`syncscript-client.js served as ${type}`);
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'syncscript-client-')), 'syncscript-client.mjs');
  writeFileSync(file, await res.text());
  return import(file);
}

/**
 * Reports every Content-Security-Policy violation on a Playwright page into `errors`: the
 * page's `securitypolicyviolation` events, and Chromium's console errors about the policy.
 */
export function watchCsp(page, errors) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|CSP violation/.test(msg.text())) {
      errors.push(`${page.url()}: ${msg.text()}`);
    }
  });
  return page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
}
