/**
 * examples/express-app's page in a real browser (Debian chromium through playwright-core), on
 * switchyard/client's browser bundle: it connects with `?token=`, shows a message published
 * through the REST API, shows the close code a browser gets for a bad token, and survives a
 * restart of the app's broker, showing the messages it missed, recovered from history.
 * Skipped, saying why, only when chromium is absent outside CI.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { MemoryStore } from 'switchyard';
import { start, type ExpressExample } from '../examples/express-app/server.js';
import { Users } from '../examples/express-app/users.js';
import { request } from './adapter-helpers.js';
import { clientBundle } from './client-bundle.js';

/** A memory store that outlives the broker closing it: the "database" across an app restart. */
class KeptStore extends MemoryStore {
  override async close(): Promise<void> {}
}

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && !process.env.CI) console.log(`skipping the browser test: ${CHROMIUM} is not installed (apt-get install chromium)`);

describe.skipIf(!available && !process.env.CI)('examples/express-app in a browser', () => {
  let browser: Browser;
  let app: ExpressExample;
  const dir = mkdtempSync(join(tmpdir(), 'sy-page-'));
  const clientScript = join(dir, 'switchyard-client.js');
  const users = new Users();
  const store = new KeptStore();

  beforeAll(async () => {
    writeFileSync(clientScript, (await clientBundle()).code);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
    app = await start({ port: 0, users, store, clientScript });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
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

  it('survives a restart of the broker and shows the messages it missed, recovered from history', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://127.0.0.1:${app.port}/?token=${encodeURIComponent(app.demo.bob)}`);
      await page.locator('#status.open').waitFor();
      await expect.poll(() => app.broker.stats().subscriptions, { interval: 20 }).toBe(2);
      const before = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'before the restart' }, { authorization: `Bearer ${app.demo.alice}` });
      expect(before.status).toBe(201);
      await page.locator('#log li', { hasText: 'before the restart' }).waitFor();

      // The app goes down (its broker closes every socket with 1001) and comes back on the same
      // port. While it is down, two messages reach the room's history (the store is the app's
      // database): the page can only show them by recovering them when it resubscribes.
      const { port } = app;
      await app.stop();
      await page.locator('#status.reconnecting').waitFor();
      for (const text of ['missed one', 'missed two']) {
        await store.appendHistory(
          { topic: 'rooms/lobby', messageId: text, payload: { name: 'Alice', text }, sentAt: Date.now(), from: 'alice' },
          { maxMessages: 100, maxAgeMs: 300_000 },
        );
      }
      app = await start({ port, users, store, clientScript });
      await page.locator('#status.open').waitFor();
      await page.locator('#recovery.ok').waitFor();
      await page.locator('#log li.recovered', { hasText: 'Alice: missed two' }).waitFor();
      const after = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'after the restart' }, { authorization: `Bearer ${app.demo.alice}` });
      expect(after.status).toBe(201);
      await page.locator('#log li', { hasText: 'after the restart' }).waitFor();
      // Newest first in the page: each message once, in order, offsets without a gap (the room
      // already had messages from the first test).
      const items = await page.locator('#log li[data-offset]').evaluateAll((lis) => lis.map((li) => [Number(li.getAttribute('data-offset')), li.textContent]));
      const ours = items.reverse().slice(-4);
      expect(ours.map(([, text]) => text)).toEqual([
        'rooms/lobbyAlice: before the restart',
        'rooms/lobbyAlice: missed one',
        'rooms/lobbyAlice: missed two',
        'rooms/lobbyAlice: after the restart',
      ]);
      const first = ours[0]![0] as number;
      expect(ours.map(([offset]) => offset)).toEqual([first, first + 1, first + 2, first + 3]);
      expect(items.length).toBe(4);
    } finally {
      await page.close();
    }
  });

  // Chromium also closes open sockets (1006) when it goes offline, so this shows the page rides
  // out an offline spell; it does not isolate the client's own offline/online listeners.
  it('goes through an offline spell of the browser and reconnects once online', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`http://127.0.0.1:${app.port}/?token=${encodeURIComponent(app.demo.bob)}`);
      await page.locator('#status.open').waitFor();
      await context.setOffline(true);
      await page.locator('#status.reconnecting').waitFor();
      await context.setOffline(false);
      await page.locator('#status.open').waitFor();
    } finally {
      await context.close();
    }
  });
});
