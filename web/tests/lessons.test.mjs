// The guided lesson (lessons.rs, panels/lessons.rs): the bar navigates by buttons, the step list
// and ←/→, each step is a `lesson=N` link, a bad step is a notice and step 1, and every claim a
// step's text makes holds on the page's own numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);
const lessonInHash = (page) => page.evaluate(() => new URLSearchParams(location.hash.slice(1)).get('lesson'));
const open = (errors, hash) => openPage(ctx.browser, `${ctx.server.url}#${hash}`, errors);
/** The outlined control: exactly one, matching `selector`. */
async function assertHighlighted(page, selector) {
  await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains('lesson-target'), selector);
  assert.equal(await page.locator('.lesson-target').count(), 1, 'one control outlined');
}

test('lesson bar: Next/Prev, ←/→ with the bar focused, the step list, and shareable steps', async () => {
  const errors = [];
  const page = await open(errors, 'lesson=1&play=false');
  await page.getByTestId('lesson').waitFor();
  assert.match(await page.getByTestId('lesson').innerText(), /Lesson 1 of 6: One task/);
  await assertHighlighted(page, 'button[aria-label=Reset]');
  await page.click('#lesson-next');
  assert.equal(await lessonInHash(page), '2');
  assert.equal(await page.inputValue('#conflict-range'), '1');
  await assertHighlighted(page, '#conflict-range');
  // ← / → while the bar has focus change the step, not the runs (→ alone would step them).
  await page.getByTestId('lesson').focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(await lessonInHash(page), '3');
  assert.equal((await state(page)).steps, 0, '→ on the bar did not step the runs');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await lessonInHash(page), '2');
  await page.getByRole('button', { name: '5. Experts separate the tasks' }).click();
  assert.equal(await lessonInHash(page), '5');
  assert.equal(await page.inputValue('#model-select'), 'moe');
  await assertHighlighted(page, '#model-select');
  // → on the last step does nothing: re-applying the step would discard the student's runs.
  await page.click('#lesson-next');
  assert.equal(await lessonInHash(page), '6');
  const trained = (await step(page, 3)).steps;
  await page.getByTestId('lesson').focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(await lessonInHash(page), '6');
  assert.equal((await state(page)).steps, trained, '→ on the last step kept the runs');
  await page.click('#lesson-prev');
  await page.click('#lesson-prev');
  assert.equal(await lessonInHash(page), '4');
  await page.click('#lesson-close');
  assert.equal(await lessonInHash(page), null);
  assert.equal(await page.locator('.lesson-target').count(), 0, 'closing removes the outline');
  assert.deepEqual(errors, []);
  await page.close();
});

test('lesson=99: a notice, and step 1', async () => {
  const errors = [];
  const page = await open(errors, 'lesson=99&play=false');
  assert.match(await page.getByTestId('notices').innerText(), /lesson=99: no such step \(1–6\); showing step 1/);
  assert.match(await page.getByTestId('lesson').innerText(), /Lesson 1 of 6/);
  assert.equal((await state(page)).preset, 'circle-vs-gauss');
  assert.deepEqual(errors, []);
  await page.close();
});

test('each step’s claims hold on the page', async (t) => {
  const errors = [];
  // 1. One task: the constant weighting 1, 0 trains task 1, whose loss falls.
  const page = await open(errors, 'lesson=1&play=false');
  let s = await state(page);
  assert.equal(s.runs.length, 1);
  assert.deepEqual(s.runs[0].aggregatorWeights ?? [1, 0], [1, 0]);
  const before = (await step(page, 1)).runs[0].trainLosses[0];
  s = await step(page, 40);
  t.diagnostic(`step 1: task-1 loss ${before.toFixed(3)} → ${s.runs[0].trainLosses[0].toFixed(3)}`);
  assert.ok(s.runs[0].trainLosses[0] < 0.9 * before, 'task 1’s loss falls');

  // 2. κ = 1: the tasks are the same, the cosine is +1.
  await page.evaluate(() => { location.hash = 'lesson=2&play=false'; });
  await page.waitForFunction(() => window.concord.state().preset === 'xor-conflict' && window.concord.state().runs.length === 1);
  s = await step(page, 20);
  t.diagnostic(`step 2: cos ${s.runs[0].cosine[0][1]}`);
  assert.ok(s.runs[0].cosine[0][1] > 0.99, `cos ${s.runs[0].cosine[0][1]}`);

  // 3. κ = −0.8: the cosine starts negative.
  await page.evaluate(() => { location.hash = 'lesson=3&play=false'; });
  await page.waitForFunction(() => window.concord.state().steps === 0);
  s = await step(page, 5);
  t.diagnostic(`step 3: cos after 5 steps ${s.runs[0].cosine[0][1]}`);
  assert.ok(s.runs[0].cosine[0][1] < 0, `cos ${s.runs[0].cosine[0][1]}`);
  await page.screenshot({ path: await artifactPath('lesson-step.png') });

  // 4. Same start, different methods, different losses.
  await page.evaluate(() => { location.hash = 'lesson=4&play=false'; });
  await page.waitForFunction(() => window.concord.state().runs.length === 4);
  s = await state(page);
  assert.deepEqual(s.runs.map((r) => r.aggregator), ['mean', 'pcgrad', 'mgda', 'upgrad']);
  assert.ok(s.runs.every((r) => r.paramsSum === s.runs[0].paramsSum), 'every method starts from the same weights');
  s = await step(page, 30);
  const mean = s.runs[0].trainLosses;
  for (const r of s.runs.slice(1)) {
    const gap = Math.max(...r.trainLosses.map((l, k) => Math.abs(l - mean[k])));
    t.diagnostic(`step 4: ${r.aggregator} vs mean, largest loss gap ${gap.toExponential(2)}`);
    assert.ok(gap > 1e-3, `${r.aggregator} differs from mean`);
  }

  // 5. Task-routed experts: the two tasks' top experts differ.
  await page.evaluate(() => { location.hash = 'lesson=5&play=false'; });
  await page.waitForFunction(() => window.concord.state().preset === 'task-experts');
  s = await step(page, 60);
  const top = (load) => load.indexOf(Math.max(...load));
  const loads = s.runs[0].moe.routing.tasks.map((x) => x.load);
  t.diagnostic(`step 5: loads ${JSON.stringify(loads)}`);
  assert.notEqual(top(loads[0]), top(loads[1]), 'the tasks are routed to different experts');
  assert.ok(await page.isVisible('[data-panel=moe]'), 'the MoE panel is shown');

  // 6. The preset list is the control.
  await page.evaluate(() => { location.hash = 'lesson=6&play=false'; });
  await assertHighlighted(page, '#preset-select');
  assert.deepEqual(errors, []);
  await page.close();
});
