// nginx as a child process with a prefix of its own on a free port, configured with README.md's
// own nginx block (the "Several nodes behind a load balancer" section) around the test's nodes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, repoRoot } from './helpers.mjs';

export const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';

/** Why the nginx suites cannot run here, or false. */
export function nginxSkipReason() {
  if (!existsSync(NGINX)) return `nginx is not installed (${NGINX}); .ci/run installs Debian's nginx package`;
  return false;
}

/** The one ```nginx block of the README's "Several nodes behind a load balancer" section. */
export function readmeNginxBlock() {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Several nodes behind a load balancer'));
  assert.ok(section, 'README.md has a "## Several nodes behind a load balancer" section');
  const blocks = [...section.matchAll(/^```nginx\n([\s\S]*?)^```$/gm)];
  assert.equal(blocks.length, 1, 'that section has exactly one ```nginx block');
  return blocks[0][1];
}

/** The README block with the test's nodes and port, wrapped in a main config of its own. */
function nginxConfig(dir, nodePorts, listenPort) {
  let block = readmeNginxBlock();
  const upstream = /^upstream syncscript \{\n[\s\S]*?^\}/m.exec(block);
  assert.ok(upstream, 'the block has an `upstream syncscript { ... }`');
  let i = 0;
  const servers = upstream[0].replace(/\bserver 10\.0\.0\.1\d:3000\b([^;]*);/g, (_, params) => {
    i += 1;
    return `server 127.0.0.1:${nodePorts[i - 1]}${params};`;
  });
  assert.equal(i, nodePorts.length, `the upstream lists ${nodePorts.length} servers 10.0.0.1x:3000`);
  block = block.replace(upstream[0], servers);
  assert.equal(block.match(/^\s*listen 80;$/gm)?.length, 1, 'the block has one `listen 80;`');
  block = block.replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${listenPort};`);
  return `# Written by tests/node/nginx.mjs around README.md's nginx block.
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
    worker_connections 512;
}
http {
    log_format upstreams '$request_method $request_uri $status $upstream_addr $upstream_status';
    access_log ${dir}/access.log upstreams;
    client_body_temp_path ${dir}/client_body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;

    # ----- README.md -----
${block.replace(/^(?=.)/gm, '    ')}    # ----- end of README.md -----
}
`;
}

export async function startNginx(nodePorts) {
  const dir = mkdtempSync(path.join(tmpdir(), 'syncscript-nginx-'));
  chmodSync(dir, 0o755); // nginx's workers drop root
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, nodePorts, port));
  const errorLog = path.join(dir, 'error.log');
  const proc = spawn(NGINX, ['-e', errorLog, '-p', dir, '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  let exited = null;
  proc.once('exit', (code, signal) => { exited = { code, signal }; });
  const read = (file) => { try { return readFileSync(path.join(dir, file), 'utf8'); } catch { return ''; } };
  const nginx = {
    dir,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    errorLog: () => `${output}${read('error.log')}`,
    accessLog: () => read('access.log'),
    config: () => read('nginx.conf'),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGTERM'); // the master stops its workers; SIGKILL would orphan them
        const done = await Promise.race([gone.then(() => true), sleep(5_000, false, { ref: false })]);
        if (!done) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`nginx exited at start (${JSON.stringify(exited)}):\n${nginx.errorLog()}\n${nginx.config()}`);
    try {
      const res = await fetch(`${nginx.baseUrl}/readyz`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) return nginx;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`nginx not serving /readyz within 10 s:\n${nginx.errorLog()}`);
    await sleep(50);
  }
}
