/**
 * examples/express-app's page in a real browser (Debian chromium through playwright-core): it
 * connects with `?token=`, shows a message published through the REST API, and shows the close
 * code a browser gets for a bad token. Skipped, saying why, only when chromium is absent outside CI.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { start, type ExpressExample } from '../examples/express-app/server.js';
import { request } from './adapter-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && !process.env.CI) console.log(`skipping the browser test: ${CHROMIUM} is not installed (apt-get install chromium)`);

describe.skipIf(!available && !process.env.CI)('examples/express-app in a browser', () => {
  let browser: Browser;
  let app: ExpressExample;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
    app = await start({ port: 0 });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('connects with ?token= and shows a message published through the REST API', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${app.port}/?token=${encodeURIComponent(app.demo.bob)}`);
      await page.locator('#status.open').waitFor();
      // The page subscribes after the welcome; wait for the broker to hold the subscription.
      await expect.poll(() => app.broker.stats().subscriptions, { interval: 20 }).toBe(2);
      const posted = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'hello, browser' }, { authorization: `Bearer ${app.demo.alice}` });
      expect(posted.status).toBe(201);
      await page.locator('#log li', { hasText: 'Alice: hello, browser' }).waitFor();

      // The page's own form posts through REST too, with the token it holds.
      await page.fill('input[name=text]', 'typed in the page');
      await page.click('#rest button');
      await page.locator('#log li', { hasText: 'Bob: typed in the page' }).waitFor();
    } finally {
      await page.close();
    }
  });

  it('shows the close code a browser gets for a bad token (4003)', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${app.port}/?token=t2.forged`);
      await page.locator('#status.closed').waitFor();
      expect(await page.locator('#status').textContent()).toContain('4003');
    } finally {
      await page.close();
    }
  });
});
