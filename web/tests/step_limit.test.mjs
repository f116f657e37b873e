// One stop contract at the step limit, on every backend the page uses: an arena on WebGPU, an
// arena on the CPU (an MoE model, in a browser without WebGPU), the toys on WebGPU and on the CPU. A run that reaches its
// limit stops there with the same words and step count, the session's counter stops with it,
// a request past it resolves at the limit, and Play does not move it on. (Before, a GPU arena
// run past the 20 000-step cap silently did nothing while the counter climbed.) The page's limit
// is concord-core's 10⁷ steps; `_setRunLimit` lowers it for the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, launchBrowser, openPage } from './helpers.mjs';

const ctx = siteAndBrowser();

const message = (limit) => `step ${limit}: the run reached the page's limit of ${limit} steps and stopped`;

async function stopsAtTheLimit(page, limit, backend, runs) {
  let s = await page.evaluate((n) => window.concord._setRunLimit(n), limit);
  assert.equal(s.steps, 0);
  assert.equal(s.runs.length, runs);
  assert.ok(s.runs.every((r) => r.backend === backend), `${s.runs.map((r) => r.backend)} on ${backend}`);
  assert.ok(s.runs.every((r) => r.error === null));
  // A request past the limit resolves at it.
  s = await page.evaluate((n) => window.concord.step(n), limit + 250);
  assert.equal(s.steps, limit, 'the counter stops at the limit');
  for (const r of s.runs) {
    assert.equal(r.steps, limit, `${r.label}: steps`);
    assert.equal(r.error, message(limit), `${r.label}: the stop`);
  }
  // Nothing moves on after it: neither a request nor Play.
  s = await page.evaluate(() => window.concord.step(10));
  assert.equal(s.steps, limit);
  await page.click('button[aria-label="Play"]');
  await page.waitForTimeout(600);
  s = await page.evaluate(() => window.concord.state());
  assert.equal(s.steps, limit);
  assert.ok(s.runs.every((r) => r.steps === limit));
  await page.click('button[aria-label="Pause"]');
  // Back to the page's own limit: the runs start afresh, none stopped.
  s = await page.evaluate(() => window.concord._setRunLimit(null));
  assert.ok(s.runs.every((r) => r.error === null && r.steps === 0));
  s = await page.evaluate((n) => window.concord.step(n), limit + 5);
  assert.equal(s.steps, limit + 5);
  assert.ok(s.runs.every((r) => r.error === null && r.steps === limit + 5));
}

test('an arena on WebGPU and one on the CPU stop at the step limit in the same words', async () => {
  const errors = [];
  let page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&play=false`, errors);
  await stopsAtTheLimit(page, 120, 'webgpu', 4);
  await page.close();
  const noGpu = await launchBrowser({ webgpu: false });
  try {
    // (Its console may say there is no WebGPU: not this test's concern.)
    page = await openPage(noGpu, `${ctx.server.url}#preset=task-experts&play=false`, []);
    await stopsAtTheLimit(page, 75, 'cpu', 2);
  } finally {
    await noGpu.close();
  }
  assert.deepEqual(errors, []);
});

test('the toys stop at the step limit on WebGPU and on the CPU in the same words', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=cagrad-toy&play=false`, errors);
  // The toys record every 100th step: the limit falls between two records.
  await stopsAtTheLimit(page, 350, 'webgpu', 12);
  await page.close();
  const noGpu = await launchBrowser({ webgpu: false });
  try {
    // (Its console may say there is no WebGPU: not this test's concern.)
    const cpu = await openPage(noGpu, `${ctx.server.url}#preset=cagrad-toy&play=false`, []);
    await stopsAtTheLimit(cpu, 350, 'cpu', 12);
  } finally {
    await noGpu.close();
  }
  assert.deepEqual(errors, []);
});
