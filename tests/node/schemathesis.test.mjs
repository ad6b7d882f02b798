// Schemathesis (PyPI, pinned in tests/python/requirements.txt) against the real binary: it reads
// /api/openapi.json, generates requests from it (valid ones, invalid ones, methods a path does
// not have, sequences that follow one response into the next request) and checks every answer
// against the document. A test of the document as much as of the server: when it finds
// something, fix the cause (server or document); never loosen the checks or the run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEMO, login, repoRoot, skipReason, startServer } from './helpers.mjs';

const skip = skipReason();
const SCHEMATHESIS = process.env.SCHEMATHESIS
  || path.join(repoRoot, 'tests/python/.venv/bin/schemathesis');
// Fixed, so that a run is reproducible; bounded, so that it stays under a minute.
const SEED = '1';
const MAX_EXAMPLES = '10';

/** Runs `cmd args` in `cwd`; resolves with its exit code and combined output. */
function run(cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('error', (err) => reject(err.code === 'ENOENT'
      ? new Error(`${cmd} is missing: run tests/node/run.sh, which installs it`)
      : err));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The server's own count of HTTP requests (`/metrics`). */
async function requestsServed(baseUrl) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => /^\w*http_requests_total /.test(l));
  assert.ok(line, `no http_requests_total in /metrics:\n${text}`);
  return Number(line.split(' ')[1]);
}

describe('Schemathesis against the served OpenAPI document', { skip, timeout: 180_000 }, () => {
  let server;
  let dir;

  before(async () => {
    server = await startServer();
    dir = mkdtempSync(path.join(tmpdir(), 'syncscript-schemathesis-'));
  });

  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('finds no disagreement between the server and its document', async () => {
    const cookie = await login(server.baseUrl, DEMO.owner);
    const token = cookie.slice(cookie.indexOf('=') + 1);
    // The session as the document's `session` apiKey scheme (not a fixed Cookie header), so
    // that Schemathesis also sends requests without it and checks they are refused.
    // Adding a member names an existing account (CONTRACT §5 answers 404 for an unknown email,
    // which the stateful checks would read as "the vault just created is gone"): the demo
    // accounts are the test data. The unknown-email 404 is pinned in tests/it/members.rs.
    writeFileSync(path.join(dir, 'schemathesis.toml'), [
      '[auth.openapi.session]',
      `api_key = "${token}"`,
      '',
      '[dictionaries.accounts]',
      `values = ${JSON.stringify(Object.values(DEMO))}`,
      '',
      '[[operations]]',
      'include-path = "/api/vaults/{id}/members"',
      'include-method = "POST"',
      'parameters = { "body.email" = { dictionary = "accounts" } }',
      '',
    ].join('\n'));
    const before = await requestsServed(server.baseUrl);
    const { code, output } = await run(SCHEMATHESIS, [
      'run', `${server.baseUrl}/api/openapi.json`,
      '--checks', 'all',
      // Logging out deletes the very session every other request is signed in with.
      '--exclude-path', '/api/auth/logout',
      '--max-examples', MAX_EXAMPLES,
      '--seed', SEED,
    ], dir);
    const sent = await requestsServed(server.baseUrl) - before - 1;
    const summary = output.split('\n').filter((l) => /generated|passed|failed|Seed:|=====/.test(l));
    console.log(`schemathesis sent ${sent} requests (seed ${SEED}, ${MAX_EXAMPLES} examples)\n${summary.join('\n')}`);
    assert.equal(code, 0, `schemathesis found failures:\n${output}`);
    assert.match(output, /(\d+) generated, \1 passed/);
    assert.ok(sent > 0, 'schemathesis sent no request');
  });
});
