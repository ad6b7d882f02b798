// The realtime test page (CONTRACT §8) in a real Chromium, against the real server.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import {
  DEMO, PASSWORD, api, createSource, demoVaultId, login, loginDemo, repoRoot, skipReason, startServer, waitFor,
  watchCsp,
} from './helpers.mjs';

const skip = skipReason();
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = path.join(repoRoot, 'target', 'screenshots');
const XSS_TITLE = '<img src=x onerror=alert(1)>';
const MAX_REPLAY = 2;

describe('the realtime page in Chromium', { skip, timeout: 300_000 }, () => {
  let server;
  let base;
  let browser;
  let vaultId;
  const cookies = {};
  let contexts = [];
  let pageErrors = [];

  const realtimeUrl = () => `${base}/test/realtime?vaultId=${vaultId}`;
  const status = (page) => page.getByTestId('connection-status');
  const item = (page, id) => page.locator(`[data-testid="source-item"][data-source-id="${id}"]`);
  const itemByTitle = (page, title) => page.locator('[data-testid="source-item"]', {
    has: page.locator('[data-testid="source-title"]', { hasText: title }),
  });

  async function newPage(viewport = { width: 1280, height: 800 }) {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    await watchCsp(page, pageErrors);
    return page;
  }

  /** A page whose context signed in over REST; returns it with the user. */
  async function signedIn(email, viewport) {
    const page = await newPage(viewport);
    const res = await page.context().request.post(`${base}/api/auth/login`, { data: { email, password: PASSWORD } });
    assert.equal(res.status(), 200, `login ${email}: ${await res.text()}`);
    const { user } = await res.json();
    return { page, user };
  }

  async function statusText(page, text, timeout = 5_000) {
    await page.waitForFunction(
      ([expected]) => document.querySelector('[data-testid="connection-status"]')?.textContent === expected,
      [text],
      { timeout },
    ).catch(async (err) => {
      const log = await page.getByTestId('event-log').textContent().catch(() => '(none)');
      throw new Error(`status never became "${text}" (is "${await status(page).textContent()}"): ${err.message}\n`
        + `page event log: ${log}\nserver log:\n${server.logTail(20)}`);
    });
  }

  async function openRealtime(page) {
    await page.goto(realtimeUrl());
    await statusText(page, `Connected to vault-${vaultId}`);
  }

  async function titleOf(page, id) {
    return item(page, id).getByTestId('source-title').textContent();
  }

  async function sourceIds(page) {
    return page.locator('[data-testid="source-item"]').evaluateAll((els) => els.map((el) => el.dataset.sourceId));
  }

  before(async () => {
    // A tiny replay limit, so a page that misses three events must resync over REST.
    server = await startServer({ SYNCSCRIPT_REALTIME__MAX_REPLAY: String(MAX_REPLAY) });
    base = server.baseUrl;
    Object.assign(cookies, await loginDemo(base));
    vaultId = await demoVaultId(base, cookies.owner);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  afterEach(async () => {
    for (const context of contexts) await context.close();
    contexts = [];
    const errors = pageErrors;
    pageErrors = [];
    assert.deepEqual(errors, [], 'uncaught errors in the page');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('every page runs under its Content-Security-Policy without a violation, its socket on a WebSocket', async () => {
    const page = await newPage();
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${base}/login`);
    await page.fill('input[type="email"]', DEMO.owner);
    await page.fill('input[type="password"]', PASSWORD);
    await Promise.all([page.waitForURL(`${base}/`), page.click('button[type="submit"]')]);
    await page.locator(`a[href*="${vaultId}"]`).first().waitFor();
    await page.goto(realtimeUrl());
    await statusText(page, `Connected to vault-${vaultId}`);
    await waitFor(() => sockets.some((url) => url.startsWith(base.replace('http', 'ws'))), 5_000, 'a WebSocket');
    // pageErrors (checked after each test) holds every violation reported on the three pages.
  });

  test('the sign-in page shows the server error and never follows a foreign next', async () => {
    const page = await newPage();
    await page.goto(`${base}/login?next=//evil.example/steal`);
    await page.getByTestId('login-email').fill(DEMO.viewer);
    await page.getByTestId('login-password').fill('wrong-password');
    const [response] = await Promise.all([
      page.waitForResponse((res) => res.url().endsWith('/api/auth/login')),
      page.getByTestId('login-submit').click(),
    ]);
    assert.equal(response.status(), 401);
    const { error } = await response.json();
    await page.waitForFunction(() => document.querySelector('[data-testid="login-error"]')?.textContent !== '');
    assert.equal(await page.getByTestId('login-error').textContent(), error.message);

    await page.getByTestId('login-password').fill(PASSWORD);
    await page.getByTestId('login-submit').click();
    await page.waitForURL(`${base}/`);
    await page.getByRole('link', { name: 'Demo Vault' }).waitFor();
    await page.getByTestId('logout').click();
    await page.waitForURL(/\/login$/);
    const after = await page.context().request.get(`${base}/api/auth/session`);
    assert.equal(after.status(), 401);
  });

  test('owner and contributor see each other add, edit and delete within a second', async () => {
    // The owner goes through the real sign-in page and the vault list.
    const owner = await newPage();
    await owner.goto(`${base}/login?next=/`);
    await owner.getByTestId('login-email').fill(DEMO.owner);
    await owner.getByTestId('login-password').fill(PASSWORD);
    await owner.getByTestId('login-submit').click();
    await owner.waitForURL(`${base}/`);
    await owner.getByRole('link', { name: 'Demo Vault' }).click();
    await owner.waitForURL(realtimeUrl());
    await statusText(owner, `Connected to vault-${vaultId}`);
    assert.equal(await owner.getByTestId('role').textContent(), 'owner');

    const { page: contributor, user: contributorUser } = await signedIn(DEMO.contributor);
    await openRealtime(contributor);
    assert.equal(await contributor.getByTestId('role').textContent(), 'contributor');
    await owner.locator(`[data-testid="presence-list"] [data-user-id="${contributorUser.id}"]`)
      .waitFor({ timeout: 2_000 });
    assert.equal(await owner.locator(`[data-testid="presence-list"] [data-user-id="${contributorUser.id}"]`).count(), 1);

    const title = `Added in the page ${Date.now()}`;
    await owner.getByTestId('source-title-input').fill(title);
    await owner.getByTestId('source-url-input').fill('https://example.com/added.pdf');
    await owner.getByTestId('source-submit').click();
    await itemByTitle(contributor, title).waitFor({ timeout: 1_000 });
    const id = await itemByTitle(contributor, title).getAttribute('data-source-id');
    assert.ok(id);
    assert.equal(await item(owner, id).count(), 1);

    const renamed = `${title} (edited)`;
    await item(contributor, id).getByTestId('source-edit').click();
    await item(contributor, id).getByTestId('source-edit-title').fill(renamed);
    await item(contributor, id).getByTestId('source-edit-save').click();
    await owner.waitForFunction(
      ([sourceId, expected]) => document.querySelector(`[data-testid="source-item"][data-source-id="${sourceId}"] [data-testid="source-title"]`)?.textContent === expected,
      [id, renamed],
      { timeout: 1_000 },
    );

    await item(owner, id).getByTestId('source-delete').click();
    await item(contributor, id).waitFor({ state: 'detached', timeout: 1_000 });
    await item(owner, id).waitFor({ state: 'detached', timeout: 1_000 });

    const log = await contributor.getByTestId('event-log').textContent();
    for (const type of ['source:created', 'source:updated', 'source:deleted']) assert.match(log, new RegExp(type));
  });

  test('a viewer sees updates but no add, edit or delete controls', async () => {
    const { page } = await signedIn(DEMO.viewer);
    await openRealtime(page);
    assert.equal(await page.getByTestId('role').textContent(), 'viewer');
    assert.equal(await page.getByTestId('source-title-input').isVisible(), false);
    assert.equal(await page.getByTestId('source-url-input').isVisible(), false);
    assert.equal(await page.getByTestId('source-submit').isVisible(), false);

    const source = await createSource(base, cookies.owner, vaultId, `Seen by the viewer ${Date.now()}`);
    await item(page, source.id).waitFor({ timeout: 1_000 });
    assert.equal(await titleOf(page, source.id), source.title);
    assert.equal(await page.getByTestId('source-edit').count(), 0);
    assert.equal(await page.getByTestId('source-delete').count(), 0);
    assert.ok((await page.getByTestId('source-item').count()) >= 1);
  });

  test('an outsider sees Access denied and no sources', async () => {
    const { page } = await signedIn(DEMO.outsider);
    await page.goto(realtimeUrl());
    await statusText(page, 'Access denied');
    assert.equal(await page.getByTestId('source-item').count(), 0);
    assert.equal(await page.getByTestId('source-submit').isVisible(), false);
  });

  test('a member removed while watching sees Access denied and the list cleared', async () => {
    const { body } = await api(base, cookies.owner, 'POST', '/api/vaults', { name: `Revocation ${Date.now()}` }, 201);
    const otherVault = body.vault.id;
    const { page, user } = await signedIn(DEMO.viewer);
    await api(base, cookies.owner, 'POST', `/api/vaults/${otherVault}/members`, { email: DEMO.viewer, role: 'contributor' }, 201);
    await createSource(base, cookies.owner, otherVault, 'About to vanish');
    await page.goto(`${base}/test/realtime?vaultId=${otherVault}`);
    await statusText(page, `Connected to vault-${otherVault}`);
    assert.equal(await page.getByTestId('source-item').count(), 1);

    await api(base, cookies.owner, 'DELETE', `/api/vaults/${otherVault}/members/${user.id}`, undefined, 204);
    await statusText(page, 'Access denied', 1_000);
    assert.equal(await page.getByTestId('source-item').count(), 0);
    assert.equal(await page.getByTestId('source-submit').isVisible(), false);
  });

  test('a page whose session is logged out elsewhere shows Signed out', async () => {
    const { page } = await signedIn(DEMO.viewer);
    await openRealtime(page);
    const res = await page.context().request.post(`${base}/api/auth/logout`);
    assert.equal(res.status(), 204);
    await statusText(page, 'Signed out', 3_000);
    assert.equal(await page.getByTestId('source-item').count(), 0);
  });

  test('after the server is killed and restarted the page reconnects and shows missed sources once', async () => {
    const { page } = await signedIn(DEMO.owner);
    await openRealtime(page);
    const before = await sourceIds(page);

    await server.kill();
    await statusText(page, 'Reconnecting…', 2_000);
    await server.start();
    const added = [];
    for (const title of ['Added while away 1', 'Added while away 2']) {
      added.push(await createSource(base, cookies.contributor, vaultId, title));
    }
    const back = Date.now();
    await page.waitForFunction(
      ([expected, ids]) => document.querySelector('[data-testid="connection-status"]')?.textContent === expected
        && ids.every((id) => document.querySelector(`[data-testid="source-item"][data-source-id="${id}"]`)),
      [`Connected to vault-${vaultId}`, added.map((s) => s.id)],
      { timeout: 2_000 },
    ).catch(async (err) => {
      throw new Error(`not reconnected with both sources within 2 s (status "${await status(page).textContent()}"): ${err.message}`);
    });
    assert.ok(Date.now() - back <= 2_000);

    await sleep(500); // let any late duplicate arrive
    const after = await sourceIds(page);
    assert.equal(new Set(after).size, after.length, `duplicates in ${after}`);
    assert.deepEqual(after.slice(0, 2), [added[1].id, added[0].id], 'newest first');
    assert.deepEqual(after.slice(2), before);
  });

  test('a page that missed more than max_replay events reloads over REST and shows each once', async () => {
    const { page } = await signedIn(DEMO.owner);
    await openRealtime(page);
    const before = await sourceIds(page);
    const deleted = before[0];

    // Offline keeps the page from reconnecting before every mutation is in.
    await server.kill();
    await statusText(page, 'Reconnecting…', 2_000);
    await page.context().setOffline(true);
    await server.start();
    await api(base, cookies.contributor, 'DELETE', `/api/sources/${deleted}`, undefined, 204);
    const added = [];
    for (let i = 1; i <= MAX_REPLAY + 1; i++) {
      added.push(await createSource(base, cookies.contributor, vaultId, `Missed during the outage ${i}`));
    }
    await page.context().setOffline(false);
    await page.waitForFunction(
      ([expected, ids, gone]) => document.querySelector('[data-testid="connection-status"]')?.textContent === expected
        && ids.every((id) => document.querySelector(`[data-testid="source-item"][data-source-id="${id}"]`))
        && !document.querySelector(`[data-testid="source-item"][data-source-id="${gone}"]`),
      [`Connected to vault-${vaultId}`, added.map((s) => s.id), deleted],
      // Reconnecting and reloading over REST is quick, but a loaded CI machine may take longer.
      { timeout: 10_000 },
    );
    await sleep(300);
    const after = await sourceIds(page);
    assert.equal(new Set(after).size, after.length, `duplicates in ${after}`);
    assert.deepEqual(after, [...added.map((s) => s.id).reverse(), ...before.slice(1)]);
    assert.match(await page.getByTestId('event-log').textContent(), /resync/);
  });

  test('a title made of HTML renders as plain text', async () => {
    const { page } = await signedIn(DEMO.owner);
    const dialogs = [];
    page.on('dialog', async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
    await openRealtime(page);

    const source = await createSource(base, cookies.contributor, vaultId, XSS_TITLE);
    await item(page, source.id).waitFor({ timeout: 1_000 });
    assert.equal(await titleOf(page, source.id), XSS_TITLE);

    const typed = '"><script>alert(2)</script>';
    await page.getByTestId('source-title-input').fill(typed);
    await page.getByTestId('source-url-input').fill('https://example.com/typed');
    await page.getByTestId('source-submit').click();
    await itemByTitle(page, typed).waitFor({ timeout: 1_000 });

    await sleep(300);
    assert.equal(await page.locator('[data-testid="source-list"] img, [data-testid="source-list"] script').count(), 0);
    assert.deepEqual(dialogs, []);
  });

  test('screenshots of the realtime page at desktop and phone width', async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 375, height: 740 }]]) {
      const { page } = await signedIn(DEMO.owner, viewport);
      await openRealtime(page);
      await page.locator('[data-testid="presence-item"]').first().waitFor({ timeout: 2_000 });
      const file = path.join(SCREENSHOTS, `realtime-${name}.png`);
      await page.screenshot({ path: file });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: page is ${overflow}px wider than the viewport`);
    }
  });
});
