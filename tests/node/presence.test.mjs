// Presence in a busy vault (CONTRACT §7): more than fifty users online, so the snapshot and
// the diffs come in pages of at most fifty, with the official socket.io-client and with the
// realtime test page in Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { chromium } from 'playwright-core';
import { DEMO, PASSWORD, api, demoVaultId, login, loginDemo, once, skipReason, startServer } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CROWD = 55;

describe('presence of a crowd', { skip: skipReason(), timeout: 180_000 }, () => {
  let server;
  let base;
  let vaultId;
  const cookies = {};
  const sockets = [];

  async function connected(cookie) {
    const socket = io(base, { reconnection: false, timeout: 10_000, extraHeaders: { cookie } });
    sockets.push(socket);
    await once(socket, 'connect', 10_000);
    return socket;
  }

  /** Joins and collects presence packets until one without `more`. */
  async function joinForSnapshot(cookie) {
    const socket = await connected(cookie);
    const pages = [];
    const whole = new Promise((resolve) => {
      socket.on('presence', (page) => {
        pages.push(page);
        if (page.more !== true) resolve();
      });
    });
    const ack = await socket.timeout(10_000).emitWithAck('vault:join', { vaultId });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await whole;
    return { socket, pages };
  }

  before(async () => {
    server = await startServer({ SYNCSCRIPT_REALTIME__PRESENCE_INTERVAL: '500ms' });
    base = server.baseUrl;
    Object.assign(cookies, await loginDemo(base));
    vaultId = await demoVaultId(base, cookies.owner);
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    await server?.stop();
  });

  test('a crowd arriving comes as diffs of at most fifty, and a newcomer gets the list in pages', async () => {
    const { socket: watcher } = await joinForSnapshot(cookies.owner);
    const diffs = [];
    watcher.on('presence:diff', (diff) => diffs.push(diff));

    const crowd = [];
    for (let i = 0; i < CROWD; i += 1) {
      const email = `crowd${i}-${Date.now()}@example.com`;
      const res = await fetch(`${base}/api/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, name: `Crowd ${i}`, password: PASSWORD }),
      });
      assert.equal(res.status, 201, await res.text());
      await api(base, cookies.owner, 'POST', `/api/vaults/${vaultId}/members`, { email, role: 'viewer' }, 201);
      crowd.push(res.headers.getSetCookie()[0].split(';')[0]);
    }
    await Promise.all(crowd.map(async (cookie) => {
      const socket = await connected(cookie);
      const ack = await socket.timeout(10_000).emitWithAck('vault:join', { vaultId });
      assert.equal(ack.ok, true);
    }));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.ok(diffs.every((d) => d.joins.length + d.leaves.length <= 100 && d.joins.length <= 50),
      `pages of at most fifty: ${diffs.map((d) => d.joins.length)}`);
    const arrived = diffs.flatMap((d) => d.joins.filter((u) => u.userName.startsWith('Crowd ')));
    assert.equal(new Set(arrived.map((u) => u.userId)).size, CROWD);

    const { pages } = await joinForSnapshot(cookies.contributor);
    assert.ok(pages.length >= 2, `${pages.length} pages`);
    assert.ok(pages.slice(0, -1).every((p) => p.more === true), 'all but the last say more');
    assert.ok(pages.every((p) => p.users.length <= 50));
    const names = pages.flatMap((p) => p.users.map((u) => u.userName));
    assert.equal(names.length, CROWD + 2, 'the crowd, the owner and the newcomer, once each');
    assert.equal(new Set(names).size, names.length);
  });

  test('the realtime page lists everyone online when the list comes in pages', async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (err) => errors.push(err.message));
      const res = await context.request.post(`${base}/api/auth/login`, { data: { email: DEMO.viewer, password: PASSWORD } });
      assert.equal(res.status(), 200);
      await page.goto(`${base}/test/realtime?vaultId=${vaultId}`);
      // The owner, the contributor, the crowd (previous test) and the viewer itself.
      const expected = CROWD + 3;
      await page.waitForFunction(
        (n) => document.querySelectorAll('[data-testid="presence-list"] [data-testid="presence-item"]').length === n,
        expected,
        { timeout: 10_000 },
      ).catch(async (err) => {
        const shown = await page.locator('[data-testid="presence-item"]').count();
        throw new Error(`presence list shows ${shown}, not ${expected}: ${err.message}`);
      });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
