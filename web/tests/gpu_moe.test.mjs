// MoE runs in the arena on WebGPU (SwiftShader): an MMoE model (one softmax gate per task; the
// shared softmax gate is the same kernels with one gate, covered natively by concord-cli's
// train_moe.rs and concord-gpu's moe_train_parity.rs) and a switch-router model (the routing core's
// top-1 choice with capacity, dropping tokens) train on concord-gpu's GpuTrainer in the browser
// and match the native CPU trainer (`concord train --preset xor-conflict --model moe --router R
// --backend cpu --json`): the losses, and the last step's routing statistics, which the GPU
// records as the CPU does (concord-gpu's moe_stats_parity.rs checks every router natively).
// The architectures PLE and DSelect-k train there too (CGC: gpu_arch.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, finalLossGap, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

// f32 on the GPU against f64 on the CPU after STEPS Adam steps (lr 0.01, batches of 50) of the
// MoE model (2-8-8 pre-layers, 4 experts of hidden 8): absolute gap of the per-task train and
// test losses (about 1e-2 by then). Measured with SwiftShader after 60 steps: softmax 2.3e-8,
// mmoe 1.6e-8 (the test prints it).
const STEPS = 40;
const LOSS_TOL = 1e-5;
const GRID_TOL = 1e-4;
// The last step's routing (the page records every step; the CLI's `moe.last_step` is step 39):
// the token counts (load, f_i, dropped, unrouted: shares of the 50-token batch, one token =
// 0.02) must be equal — every routing decision alike — and the probabilities, P(t,e), the aux
// values and the per-expert cosines within ROUTING_TOL relative to |cpu| + 1e-3 (f32 on
// WebGPU against f64 after 40 steps, as the losses).
const ROUTING_TOL = 1e-4;

/** The largest relative gap of the continuous routing statistics; asserts the counts equal. */
function routingGap(router, page, cli) {
  const rel = (a, b) => Math.abs(a - b) / (Math.abs(b) + 1e-3);
  let gap = 0;
  assert.equal(page.routing.tasks.length, cli.routing.tasks.length);
  page.routing.tasks.forEach((a, t) => {
    const b = cli.routing.tasks[t];
    for (const key of ['load', 'top1_fraction', 'dropped', 'unrouted', 'capacity']) {
      assert.deepEqual(a[key], b[key], `${router} task ${t + 1} ${key}: WebGPU ${JSON.stringify(a[key])} vs CPU ${JSON.stringify(b[key])}`);
    }
    a.router_prob.forEach((v, e) => { gap = Math.max(gap, rel(v, b.router_prob[e])); });
  });
  cli.routing.task_expert.flat().forEach((v, i) => { gap = Math.max(gap, rel(page.routing.task_expert.flat()[i], v)); });
  for (const key of ['load_balance', 'z_loss', 'importance_cv2', 'load_cv2', 'mutual_info_loss', 'mutual_information']) {
    gap = Math.max(gap, rel(page.routing.aux[key], cli.routing.aux[key]));
  }
  assert.equal(page.expert_cosine.length, cli.expert_cosine.length);
  cli.expert_cosine.forEach((m, e) => m.flat().forEach((v, i) => {
    const w = page.expert_cosine[e].flat()[i];
    assert.equal(w === null, v === null, `${router} expert ${e + 1}: cosine defined on one side only`);
    if (v !== null) gap = Math.max(gap, rel(w, v));
  }));
  return gap;
}

function nativeMoe(router, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--preset', 'xor-conflict', '--method', 'mean', '--model', 'moe', '--router', router,
    '--backend', 'cpu', '--steps', String(steps), '--json'];
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

for (const router of ['mmoe', 'switch']) {
  test(`an MoE run (${router} router) trains on WebGPU and matches the native CPU run`, async () => {
    const errors = [];
    const url = `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=${router}&play=false`;
    const page = await openPage(ctx.browser, url, errors);
    let s = await state(page);
    assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
    assert.match(s.backendText, /GPU/, s.backendText);
    assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null]]);
    s = await step(page, STEPS);
    const run = s.runs[0];
    assert.equal(run.error, null, run.error);
    assert.equal(run.steps, STEPS);
    const native = nativeMoe(router, STEPS);
    assert.equal(native.error, null);
    assert.equal(native.model, 'moe');
    const gap = finalLossGap(run, native);
    console.log(`gpu_moe ${router}: largest |GPU − CPU| loss gap after ${STEPS} steps: ${gap.toExponential(2)} (tolerance ${LOSS_TOL})`);
    assert.ok(gap <= LOSS_TOL, `browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}`);
    // The run trained (not two initial states compared).
    assert.ok(native.final_losses.every((l) => l < 0.5), `trained: ${native.final_losses}`);
    // The GPU recorded the routing, and it is the CPU's.
    assert.ok(run.moe, 'the WebGPU run records its routing');
    const rgap = routingGap(router, run.moe, native.moe.last_step);
    console.log(`gpu_moe ${router}: routing statistics, largest relative gap ${rgap.toExponential(2)} (tolerance ${ROUTING_TOL}); ` +
      `dropped ${run.moe.routing.tasks.map((t) => t.dropped)}, load ${JSON.stringify(run.moe.routing.tasks.map((t) => t.load))}`);
    assert.ok(rgap <= ROUTING_TOL, `routing gap ${rgap}`);
    if (router === 'switch') assert.ok(run.moe.routing.tasks.every((t) => t.capacity > 0));
    // The heatmap grid of the MoE run is the GPU's MoE forward pass.
    const grid = await page.evaluate(() => window.concord.gridCheck());
    assert.deepEqual(grid.map((g) => [g.grid, g.cells]), [['webgpu', 10_000]]);
    assert.ok(grid[0].maxGap <= GRID_TOL, JSON.stringify(grid));
    const panel = page.locator('[data-panel=moe]');
    await panel.scrollIntoViewIfNeeded();
    await panel.screenshot({ path: await artifactPath(`gpu-moe-${router}-panel.png`) });
    assert.deepEqual(errors, []);
    await page.close();
  });
}

// PLE (two levels of extraction) and DSelect-k (selector gates) train on WebGPU too
// (`kernels::moe_arch` level by level, `kernels::moe_dselect`) and match the native CPU run's
// losses (their GPU steps record no routing statistics yet; CGC: gpu_arch.test.mjs).
// The page's and the CLI's options spelled out on both sides (the page's default k is 1, the
// CLI's 2 for dselect-k). DSelect-k with k ≥ 2 stays on the CPU on the page: in SwiftShader it
// parts from the CPU by 1e-1 within 40 steps, not yet understood (it agrees on lavapipe).
for (const [router, extra, flags] of [
  ['ple', '&taskExperts=2', ['--task-experts', '2']],
  ['dselect-k', '&experts=3&k=1', ['--experts', '3', '--k', '1']],
]) {
  test(`an MoE architecture (${router}) trains on WebGPU and matches the native CPU run`, async () => {
    const errors = [];
    const url = `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=${router}${extra}&play=false`;
    const page = await openPage(ctx.browser, url, errors);
    let s = await state(page);
    assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
    assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null]]);
    s = await step(page, STEPS);
    const run = s.runs[0];
    assert.equal(run.error, null, run.error);
    assert.equal(run.steps, STEPS);
    const native = JSON.parse(execFileSync(CLI, ['train', '--preset', 'xor-conflict', '--method', 'mean', '--model', 'moe',
      '--router', router, ...flags, '--backend', 'cpu', '--steps', String(STEPS), '--json'], { encoding: 'utf8' }));
    assert.equal(native.error, null);
    const gap = finalLossGap(run, native);
    console.log(`gpu_moe ${router}: largest |GPU − CPU| loss gap after ${STEPS} steps: ${gap.toExponential(2)} (tolerance ${LOSS_TOL})`);
    assert.ok(gap <= LOSS_TOL, `browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}`);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

test('DSelect-k with k ≥ 2 stays on the CPU on WebGPU and says why', async () => {
  const errors = [];
  const url = `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=dselect-k&experts=3&k=2&play=false`;
  const page = await openPage(ctx.browser, url, errors);
  const s = await state(page);
  assert.equal(s.runs[0].backend, 'cpu');
  assert.match(s.runs[0].backendReason, /DSelect-k with k ≥ 2 is not verified on WebGPU yet/, s.runs[0].backendReason);
  await page.close();
  assert.deepEqual(errors, []);
});
