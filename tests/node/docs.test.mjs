// `/api/docs` in a real Chromium: Swagger UI, served by the binary, shows every documented
// route, and the page never sends a request to any other host.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot, skipReason, startServer, watchCsp } from './helpers.mjs';

const skip = skipReason();
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = path.join(repoRoot, 'target', 'screenshots');

describe('the API docs page in Chromium', { skip, timeout: 120_000 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('shows every documented route, loading nothing from another host', async () => {
    const doc = await (await fetch(`${server.baseUrl}/api/openapi.json`)).json();
    const documented = Object.entries(doc.paths)
      .flatMap(([route, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${route}`));
    const page = await (await browser.newContext()).newPage();
    const requests = [];
    const errors = [];
    page.on('request', (req) => requests.push(req.url()));
    page.on('pageerror', (err) => errors.push(err.message));
    await watchCsp(page, errors);

    await page.goto(`${server.baseUrl}/api/docs`);
    await page.locator('.opblock').nth(documented.length - 1).waitFor({ timeout: 15_000 });
    const shown = await page.locator('.opblock').evaluateAll((blocks) => blocks.map((block) => {
      const method = block.querySelector('.opblock-summary-method').textContent.trim();
      const route = block.querySelector('.opblock-summary-path').getAttribute('data-path');
      return `${method} ${route}`;
    }));
    assert.deepEqual(shown.sort(), documented.sort());
    assert.equal(await page.locator('.info .title').first().evaluate((el) => el.firstChild.textContent.trim()), doc.info.title);

    // One operation opened: its request body schema names the contract's constraints.
    await page.locator('#operations-sources-createSource .opblock-summary').click();
    const body = page.locator('#operations-sources-createSource');
    await body.getByText('fileUrl').first().waitFor();
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'api-docs.png'), fullPage: true });

    assert.ok(requests.includes(`${server.baseUrl}/api/openapi.json`), 'the page loads the served document');
    const elsewhere = requests.filter((url) => !url.startsWith(`${server.baseUrl}/`) && !url.startsWith('data:'));
    assert.deepEqual(elsewhere, [], 'requests to other hosts');
    assert.equal(await page.locator('.validator-badge, img[src*="validator"]').count(), 0, 'no validator badge');
    assert.deepEqual(errors, [], 'uncaught errors in the page');
  });
});
