// An MoE run in the arena on WebGPU (SwiftShader): an MMoE model (one softmax gate per task; the
// shared softmax gate is the same kernels with one gate, covered natively by concord-cli's
// train_moe.rs and concord-gpu's moe_train_parity.rs) trains on concord-gpu's GpuTrainer in the
// browser and matches the native CPU trainer (`concord train --preset xor-conflict --model moe
// --router mmoe --backend cpu --json`). A selecting router (switch) trains on the GPU natively
// (CLI, moe_train_parity.rs) but the page keeps it on the CPU, saying why: the GPU records no
// routing statistics yet and its MoE panel needs them; an architecture without GPU kernels (PLE)
// is not on the GPU (CGC is: gpu_arch.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

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

function nativeMoe(router, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--preset', 'xor-conflict', '--method', 'mean', '--model', 'moe', '--router', router,
    '--backend', 'cpu', '--steps', String(steps), '--json'];
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

for (const router of ['mmoe']) {
  test(`an MoE run (${router} router) trains on WebGPU and matches the native CPU run`, async () => {
    const errors = [];
    const url = `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=${router}&play=false`;
    const page = await openPage(ctx.browser, url, errors);
    let s = await state(page);
    assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
    assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null]]);
    s = await step(page, STEPS);
    const run = s.runs[0];
    assert.equal(run.error, null, run.error);
    assert.equal(run.steps, STEPS);
    const native = nativeMoe(router, STEPS);
    assert.equal(native.error, null);
    assert.equal(native.model, 'moe');
    const pairs = [...run.trainLosses.map((l, t) => [l, native.final_losses[t]]),
      ...run.testLosses.map((l, t) => [l, native.test_losses[t]])];
    const gap = Math.max(...pairs.map(([a, b]) => Math.abs(a - b)));
    console.log(`gpu_moe ${router}: largest |GPU − CPU| loss gap after ${STEPS} steps: ${gap.toExponential(2)} (tolerance ${LOSS_TOL})`);
    assert.ok(gap <= LOSS_TOL, `browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}`);
    // The run trained (not two initial states compared).
    assert.ok(native.final_losses.every((l) => l < 0.5), `trained: ${native.final_losses}`);
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

test('a selecting router and an architecture run on the CPU and say why', async () => {
  const errors = [];
  const cases = [['switch', /MoE router 'switch' stays on the CPU on this page: the GPU trainer records no routing statistics/],
    ['ple', /the ple architecture is not on the GPU/]];
  for (const [router, why] of cases) {
    const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=${router}&play=false`, errors);
    const s = await state(page);
    assert.equal(s.runs[0].backend, 'cpu', router);
    assert.match(s.runs[0].backendReason, why, s.runs[0].backendReason);
    await page.close();
  }
  assert.deepEqual(errors, []);
});
