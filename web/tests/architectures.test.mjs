// CGC / PLE / DSelect-k on the page: the router picker's URL key selects an architecture, the run
// trains (here in a browser without WebGPU: the CPU run records the routing, which the GPU trainer
// does not yet; CGC on WebGPU is gpu_arch.test.mjs), the MoE panel shows its routing (task ×
// expert mass over shared + task-owned experts), and the URL round-trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser({ webgpu: false });
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

test('cgc trains on the page, shows per-task expert usage, and its URL round-trips', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts&router=cgc&experts=2&play=false`, errors);
  const s = await step(page, 10);
  assert.ok(s.runs.every((r) => r.error === null && r.steps === 10), JSON.stringify(s.runs.map((r) => r.error)));
  for (const r of s.runs) {
    assert.equal(r.backend, 'cpu');
    if (r.backendReason !== null) assert.match(r.backendReason, /WebGPU|device/, r.backendReason);
  }
  // 2 shared experts + 1 per task: 4 columns; each task's usage sums to 1, and it puts no mass
  // on the other task's expert.
  const routing = s.runs[0].moe.routing;
  assert.equal(routing.task_expert.length, 2);
  assert.equal(routing.task_expert[0].length, 4);
  for (const [t, task] of routing.tasks.entries()) {
    const sum = task.router_prob.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9, `task ${t + 1} usage sums to ${sum}`);
    assert.equal(task.router_prob[3 - t], 0, `task ${t + 1} never uses task ${2 - t}'s expert`);
  }
  await page.waitForTimeout(300);
  assert.ok(await page.isVisible('[data-panel=moe]'), 'the MoE panel is visible');
  await page.locator('[data-panel=moe]').screenshot({ path: await artifactPath('moe-cgc.png') });

  // URL round trip: the hash carries the router; reopening it restores the picker.
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /router=cgc/);
  const again = await openPage(ctx.browser, `${ctx.server.url}${hash}`, errors);
  assert.equal(await again.inputValue('#router-select'), 'cgc');
  assert.equal(await again.evaluate(() => location.hash), hash);
  assert.deepEqual(errors, []);
  await again.close();
  await page.close();
});

// The architectures' own controls: taskExperts (CGC/PLE), gamma and auxEntropy (DSelect-k) come
// from the URL, show in the MoE controls, round-trip, and change the run: 2 task experts give
// PLE 2 + 2·2 expert columns, and a different γ moves DSelect-k's losses.
test('task experts, γ and the entropy weight round-trip through the URL and change the run', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts&router=ple&experts=2&taskExperts=2&play=false`, errors);
  assert.equal(await page.inputValue('#task-experts-input'), '2');
  assert.ok(await page.isDisabled('#gamma-input'), 'γ is DSelect-k\'s');
  const s = await step(page, 5);
  assert.ok(s.runs.every((r) => r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  assert.equal(s.runs[0].moe.routing.task_expert[0].length, 2 + 2 * 2, 'shared + 2 per task');
  assert.match(await page.evaluate(() => location.hash), /taskExperts=2/);

  const losses = async (hash) => {
    const p = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts&router=dselect-k&experts=4&k=2&play=false&${hash}`, errors);
    const r = (await step(p, 10)).runs[0];
    assert.equal(r.error, null);
    const url = await p.evaluate(() => location.hash);
    const inputs = [await p.inputValue('#gamma-input'), await p.inputValue('#aux-entropy-input')];
    await p.close();
    return { losses: r.trainLosses, url, inputs };
  };
  const plain = await losses('gamma=1');
  const wide = await losses('gamma=4&auxEntropy=0.01');
  assert.match(wide.url, /gamma=4/);
  assert.match(wide.url, /auxEntropy=0\.01/);
  assert.deepEqual(wide.inputs, ['4', '0.01']);
  assert.notDeepEqual(wide.losses, plain.losses, 'γ and the entropy weight change the run');

  // A bad value: a notice and a clamped γ that still trains.
  const bad = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts&router=dselect-k&gamma=0&play=false`, errors);
  assert.equal(await bad.inputValue('#gamma-input'), '0.01');
  assert.match(await bad.locator('body').innerText(), /gamma/);
  await bad.close();
  assert.deepEqual(errors, []);
  await page.close();
});
