// The MoE panel in the browser: the task-experts preset trains an MoE block in the arena, the
// panel draws its routing (P(t,e) heatmap, f_i/P_i bars, routing map, per-expert conflict), the
// hook's routing stats equal the CLI's for the same run, and the panel is absent for MLP runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

// Without WebGPU: the panel and the CPU trainer against the CLI to 1e-9 (one MoE run's first
// WebGPU step on SwiftShader compiles its kernels for tens of seconds); gpu_moe.test.mjs checks
// the routing statistics of MoE runs on WebGPU against the CPU.
const ctx = siteAndBrowser({ webgpu: false });
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);
const STEPS = 30;

/** Non-white pixels of each canvas in the MoE panel, by its data-panel key. */
const inkedPixels = (page) =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-panel=moe] [data-panel]')].map((fig) => {
        const c = fig.querySelector('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) n += 1;
        return [fig.dataset.panel, n];
      }),
    ),
  );

test('task-experts: the MoE panel draws the routing and matches the CLI’s routing stats', async (t) => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts&play=false`, errors);
  let s = await state(page);
  assert.equal(s.preset, 'task-experts');
  assert.deepEqual(s.runs.map((r) => r.aggregator), ['mean', 'pcgrad']);
  s = await step(page, STEPS);
  assert.ok(s.runs.every((r) => r.error === null && r.steps === STEPS), JSON.stringify(s.runs.map((r) => r.error)));
  // A browser without WebGPU: the runs are on the CPU, and say why.
  for (const r of s.runs) {
    assert.equal(r.backend, 'cpu');
    assert.match(r.backendReason, /WebGPU|device/, r.backendReason);
  }
  const moe = s.runs[0].moe;
  assert.ok(moe, 'the hook exposes the MoE record');
  assert.equal(moe.routing.tasks.length, 2);
  assert.equal(moe.expert_cosine.length, 4, 'one cosine matrix per expert');

  // Same preset, seed and steps through the native CLI: the last batch's routing is the same.
  // Load is a share of 50 tokens (one token = 0.02), so 1e-9 means every routing decision agrees;
  // router probabilities are floats through wasm vs native libm: 1e-6.
  const cli = JSON.parse(execFileSync(CLI, ['train', '--preset', 'task-experts', '--method', 'mean', '--steps', String(STEPS), '--json'], { encoding: 'utf8' }));
  const ref = cli.moe.last_step.routing;
  const maxDiff = (key) => Math.max(...[0, 1].flatMap((k) => moe.routing.tasks[k][key].map((v, e) => Math.abs(v - ref.tasks[k][key][e]))));
  t.diagnostic(`max |page − CLI|: load ${maxDiff('load')}, P_i ${maxDiff('router_prob')}; page load ${JSON.stringify(moe.routing.tasks.map((x) => x.load))}`);
  for (let t = 0; t < 2; t += 1) {
    const [a, b] = [moe.routing.tasks[t], ref.tasks[t]];
    assert.equal(a.load.length, 4);
    a.load.forEach((v, e) => assert.ok(Math.abs(v - b.load[e]) <= 1e-9, `task ${t + 1} expert ${e + 1} load ${v} vs CLI ${b.load[e]}`));
    a.router_prob.forEach((v, e) => assert.ok(Math.abs(v - b.router_prob[e]) <= 1e-6, `task ${t + 1} expert ${e + 1} P_i ${v} vs CLI ${b.router_prob[e]}`));
    assert.equal(a.dropped, b.dropped);
  }
  moe.routing.task_expert.flat().forEach((v, i) => assert.ok(Math.abs(v - ref.task_expert.flat()[i]) <= 1e-6, `P(t,e)[${i}]`));

  // The panel is shown and each canvas has ink (the map is mostly colour, the others text + cells).
  await page.waitForTimeout(300);
  assert.ok(await page.isVisible('[data-panel=moe]'), 'the MoE panel is visible');
  const ink = await inkedPixels(page);
  for (const key of ['moeRouting', 'moeCapacity', 'moeMap', 'moeConflict']) {
    assert.ok(ink[key] > 1500, `${key} canvas drawn: ${ink[key]} non-white pixels`);
  }
  // The routing map is a coloured field: at least a third of its device pixels are non-white.
  const mapShare = await page.evaluate(() => {
    const c = document.querySelector('[data-panel=moeMap] canvas');
    return c.width * c.height;
  });
  assert.ok(ink.moeMap > mapShare / 6, `map coloured: ${ink.moeMap} of ${mapShare}`);

  // PNG export of the panel.
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('button[aria-label="Download the MoE routing map panel as PNG"]')]);
  assert.equal(png.suggestedFilename(), 'concord-moeMap.png');
  const bytes = await readFile(await png.path());
  assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG file');

  await page.locator('[data-panel=moe]').screenshot({ path: await artifactPath('moe-panel.png') });
  await page.screenshot({ path: await artifactPath('preset-task-experts.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the dense twin and MLP presets hide the MoE panel; the model select switches to MoE', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=task-experts-dense&play=false`, errors);
  let s = await step(page, 10);
  assert.ok(s.runs.every((r) => r.error === null && r.moe === null));
  assert.ok(!(await page.isVisible('[data-panel=moe]')), 'no MoE panel for an MLP run');
  await page.screenshot({ path: await artifactPath('preset-task-experts-dense.png'), fullPage: true });

  // The Model panel's select turns the MLP trunk into trunk + MoE block (switch router, cf 2).
  await page.selectOption('#model-select', 'moe');
  await page.selectOption('#router-select', 'switch');
  await page.fill('#cf-input', '2');
  await page.locator('#cf-input').dispatchEvent('change');
  await page.waitForFunction(() => /cf=2(&|$)/.test(location.hash));
  assert.match(await page.evaluate(() => location.hash), /model=moe.*router=switch/);
  s = await step(page, 10);
  assert.ok(s.runs.every((r) => r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  assert.ok(s.runs[0].moe.routing.tasks[0].capacity > 0, 'switch routing has a capacity');
  await page.waitForTimeout(300);
  assert.ok(await page.isVisible('[data-panel=moe]'));
  await page.locator('[data-panel=moe]').screenshot({ path: await artifactPath('moe-switch.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('CGC: the routing map’s legend names each task’s own experts by the task', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&model=moe&router=cgc&experts=2&arena=mean&play=false`, errors);
  await step(page, 5);
  const map = page.locator('[data-panel=moeMap] canvas');
  // The map redraws on its own throttle: wait for the legend rather than a fixed time.
  await page.waitForFunction(() => /own/.test(document.querySelector('[data-panel=moeMap] canvas')?.getAttribute('aria-label') ?? ''), null, { timeout: 20000 });
  const label = await map.getAttribute('aria-label');
  // [shared; task 1's own; task 2's own] (CGC's task_experts = 1), named by the preset's tasks.
  assert.match(label, /experts: Shared 1, Shared 2, 1 \S+ expert 1 \(own\), 2 \S+ expert 1 \(own\)$/, label);
  assert.doesNotMatch(label, /’s/);
  const card = page.locator('[data-panel=moeMap]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('moe-cgc-map.png') });
  assert.deepEqual(errors, []);
  await page.close();
});
