// Narrow screens: at 360 px the panels stack and nothing scrolls sideways, and the controls still
// work; at 1400 px the three columns stay side by side as before. Screenshots go to the artifacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();

async function open(width, hash, errors) {
  const page = await ctx.browser.newPage({ viewport: { width, height: 800 } });
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(`${ctx.server.url}#${hash}`);
  await page.waitForFunction(() => window.concord && window.concord.ready === true, null, { timeout: 120_000 });
  return page;
}
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth);

test('360 px: no horizontal scroll, panels stacked, controls usable', async () => {
  const errors = [];
  // The default preset under a lesson step (the bar too), the toy (its segmented buttons) and MoE
  // (its fixed-width canvases).
  for (const hash of ['lesson=4&play=false', 'preset=cagrad-toy&play=false', 'preset=task-experts&play=false']) {
    const page = await open(360, hash, errors);
    assert.ok(await overflow(page) <= 360, `#${hash}: scrollWidth ${await overflow(page)} > 360`);
    if (hash.startsWith('lesson')) {
      await page.screenshot({ path: await artifactPath('narrow-360-top.png') });
      await page.screenshot({ path: await artifactPath('narrow-360.png'), fullPage: true });
      const [controls, figure] = await Promise.all(['.controls', '.figure'].map((s) => page.locator(s).boundingBox()));
      assert.ok(figure.y >= controls.y + controls.height, 'the figures stack under the settings');
      // A control still works: the preset select switches the preset.
      await page.selectOption('#preset-select', 'circle-vs-gauss');
      await page.waitForFunction(() => window.concord.state().preset === 'circle-vs-gauss');
    }
    await page.close();
  }
  assert.deepEqual(errors, []);
});

test('1400 px: settings, figures and explanation side by side', async () => {
  const errors = [];
  const page = await open(1400, 'play=false', errors);
  assert.ok(await overflow(page) <= 1400);
  const boxes = await Promise.all(['.controls', '.figure', '.side'].map((s) => page.locator(s).boundingBox()));
  assert.ok(boxes[0].x + boxes[0].width <= boxes[1].x && boxes[1].x + boxes[1].width <= boxes[2].x, JSON.stringify(boxes));
  assert.ok(Math.abs(boxes[0].y - boxes[1].y) < 2 && Math.abs(boxes[1].y - boxes[2].y) < 2, 'one row');
  await page.screenshot({ path: await artifactPath('wide-1400.png') });
  assert.deepEqual(errors, []);
  await page.close();
});
