// The released site (built without the `test-hooks` feature, as `cargo xtask dist` builds it):
// no `window.concord` test hook, and the playground still works (it renders, Play advances the
// step counter). `cargo xtask test` builds that site too and passes it as CONCORD_RELEASE_SITE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RELEASE_SITE, serveSite, launchBrowser } from './helpers.mjs';

const ctx = { server: null, browser: null };
before(async () => {
  ctx.server = await serveSite(RELEASE_SITE, 'CONCORD_RELEASE_SITE');
  ctx.browser = await launchBrowser();
});
after(async () => {
  await ctx.browser?.close();
  await ctx.server?.close();
});

const steps = (page) => page.evaluate(() => Number(document.querySelector('[data-testid=steps]').textContent.replace(/,/g, '')));

test('the released site has no window.concord test hooks, makes no request off this machine, and Play runs the playground', async () => {
  const errors = [];
  const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 1000 } });
  // Every request to a host that is not this machine fails the test (and is not made).
  const offsite = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return route.continue();
    offsite.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(`${ctx.server.url}#preset=xor-conflict&play=false`);
  await page.waitForSelector('[data-testid=steps]', { timeout: 120_000 });
  // The page has rendered its panels (the wasm module ran).
  await page.waitForSelector('canvas', { timeout: 120_000 });
  assert.equal(await page.evaluate(() => typeof window.concord), 'undefined');
  assert.equal(await page.evaluate(() => Object.keys(window).some((k) => /simulateGpuFailure|gridCheck/.test(k))), false);
  const before = await steps(page);
  await page.click('button.play-btn');
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid=steps]').textContent.replace(/,/g, '')) > n + 10, before, { timeout: 60_000 });
  await page.click('button.play-btn');
  assert.ok((await steps(page)) > before, 'Play advanced the visible step counter');
  assert.deepEqual(errors, []);
  assert.deepEqual(offsite, [], 'no request left this machine');
  await context.close();
});
