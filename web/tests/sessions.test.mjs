// One engine, several playgrounds: a second playground mounted on the same page (its own
// session and state) advances and resets independently of the page's own; old toy links
// (`methods=…&c=…`) still load the same runs, translated once into the `arena` key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();

test('two playgrounds on one page run and reset independently', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=cagrad-toy&play=false`, errors);
  await page.evaluate(() => {
    const el = document.createElement('div');
    el.id = 'second';
    document.body.appendChild(el);
    window.second = window.concord.mount(el, 'preset=xor-conflict&arena=mean,mgda&play=false');
  });
  await page.waitForFunction(() => window.second.ready === true, null, { timeout: 120_000 });
  const main = () => page.evaluate(() => window.concord.state());
  const other = () => page.evaluate(() => window.second.state());
  let [a, b] = [await main(), await other()];
  assert.equal(a.mode, 'toy');
  assert.equal(a.runs.length, 12, 'four methods from three starts');
  assert.equal(b.mode, 'multitask');
  assert.deepEqual(b.runs.map((r) => r.method), ['mean', 'mgda']);
  assert.equal(a.steps + b.steps, 0);

  a = await page.evaluate(() => window.concord.step(300));
  assert.equal(a.steps, 300);
  assert.equal((await other()).steps, 0, 'stepping the page playground leaves the other alone');
  b = await page.evaluate(() => window.second.step(20));
  assert.equal(b.steps, 20);
  assert.ok(b.runs.every((r) => r.steps === 20));
  assert.equal((await main()).steps, 300, 'stepping the mounted playground leaves the page one alone');

  a = await page.evaluate(() => window.concord.reset());
  assert.equal(a.steps, 0);
  assert.equal((await other()).steps, 20, 'a reset of one keeps the other');
  b = await page.evaluate(() => window.second.reset());
  assert.equal(b.steps, 0);
  a = await page.evaluate(() => window.concord.step(50));
  assert.equal(a.steps, 50);
  assert.equal((await other()).steps, 0);
  // The mounted playground keeps its state out of the page's URL.
  assert.match(await page.evaluate(() => location.hash), /preset=cagrad-toy/);
  assert.equal(await page.locator('.playground').count(), 2);
  await page.screenshot({ path: await artifactPath('two-playgrounds.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('an old toy link loads the same runs under the new key, with a notice', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=cagrad-toy&methods=mean,mgda,cagrad&c=0.3&play=false`, errors);
  const s = await page.evaluate(() => window.concord.state());
  assert.equal(s.problem, 'cagrad-toy');
  assert.equal(s.runs.length, 9, 'three methods from three starts');
  assert.deepEqual([...new Set(s.runs.map((r) => r.method))], ['mean', 'mgda', 'cagrad']);
  assert.ok(s.runs.filter((r) => r.method === 'cagrad').every((r) => r.c === 0.3), 'c reaches CAGrad');
  const hash = await page.evaluate(() => decodeURIComponent(location.hash));
  assert.match(hash, /arena=mean,mgda,cagrad:c=0\.3/);
  assert.doesNotMatch(hash, /methods=|&c=/, 'the old keys are translated once');
  assert.match(await page.textContent('[data-testid=notices]'), /renamed/);
  const after = await page.evaluate(() => window.concord.step(200));
  assert.equal(after.steps, 200);
  assert.ok(after.runs.every((r) => r.position[0] !== r.start[0] || r.position[1] !== r.start[1]), 'every run moved');
  await page.screenshot({ path: await artifactPath('toy-old-link.png'), fullPage: true });
  // A link copied from the old page holds every key, arena (unused on a toy) included: the old
  // toy keys still decide the runs.
  await page.evaluate(() => {
    location.hash = '#preset=cagrad-toy&arena=mean,pcgrad,mgda,cagrad&methods=sum,cagrad&c=2&view=average&optimizer=adam&lr=0.001&spf=200&play=false';
  });
  await page.waitForFunction(() => window.concord.state().runs.length === 6);
  const full = await page.evaluate(() => window.concord.state());
  assert.deepEqual([...new Set(full.runs.map((r) => r.method))], ['sum', 'cagrad']);
  assert.ok(full.runs.filter((r) => r.method === 'cagrad').every((r) => r.c === 2), 'c reaches CAGrad');
  assert.deepEqual(errors, []);
  await page.close();
});
