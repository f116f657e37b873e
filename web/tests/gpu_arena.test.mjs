// The arena on WebGPU (SwiftShader): a preset trained by concord-gpu's GpuTrainer in the browser
// matches the native CPU reference (`concord train --preset … --backend cpu --json`), a device
// loss continues on the CPU with a notice, a loss-weighted run trains on the GPU too, a config
// the GPU cannot train runs on the CPU with the reason shown, and a browser without WebGPU runs
// every run on the CPU and says why. The heatmaps' 100 × 100 grid is predicted on the GPU for GPU runs (checked against concord-core).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  siteAndBrowser, openPage, artifactPath, launchBrowser, pageState as state, pageStep as step, nativePreset, finalLossGap,
} from './helpers.mjs';

const ctx = siteAndBrowser();

// f32 on the GPU against f64 on the CPU, after STEPS Adam steps (lr 0.01, mini-batches of 50)
// of the 2-8-8 MLP: the per-task train and test losses (about 0.3–0.7) agree to this absolute
// tolerance. Measured with SwiftShader (Chromium headless): largest gap 6.4e-8 over mean, upgrad
// and mgda (the test prints it); train_parity.rs sees relative gaps of ~2e-6 on lavapipe.
const STEPS = 200;
const LOSS_TOL = 1e-5;
// The heatmap grid (100 × 100 points) predicted on the GPU against concord-core's forward pass at
// the same read-back parameters: f32 forward arithmetic only, on outputs (logits) of order 1–10.
const GRID_TOL = 1e-4;

test('the arena trains xor-conflict on WebGPU and matches the native CPU run', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,upgrad,mgda&play=false`, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu', 'webgpu']);
  assert.ok(s.runs.every((r) => r.backendReason === null));
  const readout = await page.textContent('[data-testid=backend]');
  assert.ok(readout.startsWith('WebGPU · ') && readout.endsWith(` — ${s.runs.map((r) => r.label).join(', ')}`), readout);
  s = await step(page, STEPS);
  assert.equal(s.steps, STEPS);
  let worst = 0;
  for (const run of s.runs) {
    assert.equal(run.error, null, `${run.method}: ${run.error}`);
    assert.equal(run.steps, STEPS);
    const native = nativePreset('xor-conflict', run.aggregator, STEPS);
    assert.equal(native.error, null);
    const gap = finalLossGap(run, native);
    worst = Math.max(worst, gap);
    assert.ok(gap <= LOSS_TOL,
      `${run.method}: browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}: gap ${gap}`);
    // The losses moved: the comparison is not between two initial states.
    assert.ok(native.final_losses.every((l) => l < 0.69), `${run.method} trained: ${native.final_losses}`);
  }
  console.log(`gpu_arena: largest |GPU − CPU| loss gap after ${STEPS} steps: ${worst.toExponential(2)} (tolerance ${LOSS_TOL})`);
  // The decision-boundary grid was computed on the GPU, at the read-back parameters.
  const grid = await page.evaluate(() => window.concord.gridCheck());
  assert.deepEqual(grid.map((g) => [g.grid, g.cells]), [['webgpu', 10_000], ['webgpu', 10_000], ['webgpu', 10_000]]);
  const gridGap = Math.max(...grid.map((g) => g.maxGap));
  console.log(`gpu_arena: largest |GPU − CPU| heatmap grid output gap: ${gridGap.toExponential(2)} (tolerance ${GRID_TOL})`);
  assert.ok(gridGap <= GRID_TOL, JSON.stringify(grid));
  // The loss curves and the conflict metrics come from the read-back history.
  assert.ok(s.runs.every((r) => r.curvePoints >= STEPS / 5), JSON.stringify(s.runs.map((r) => r.curvePoints)));
  assert.ok(s.runs.every((r) => r.cosine.length === 2 && Number.isFinite(r.conflictRatio)));
  assert.deepEqual(errors, []);
  await page.close();
});

test('a GPU device loss continues the arena on the CPU from the last read-back state, with a notice', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,mgda&play=false`, errors);
  const initial = (await state(page)).runs.map((r) => r.trainLosses);
  let s = await step(page, 40);
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu']);
  const at40 = s.runs.map((r) => r.trainLosses);
  assert.equal(await page.evaluate(() => window.concord._simulateGpuFailure()), true);
  // The next submission's readback fails: its step is redone on the CPU from step 40's state.
  s = await step(page, 1);
  assert.equal(s.steps, 41, 'exactly one more step, though its GPU readback was lost (redone on the CPU)');
  assert.deepEqual(s.runs.map((r) => [r.backend, r.steps, r.error]), [['cpu', 41, null], ['cpu', 41, null]]);
  for (const r of s.runs) {
    assert.match(r.backendReason, /GPU failed at step 40 \(simulated device loss.*\); the runs continue on the CPU from the last read-back state/);
  }
  assert.match(s.reason, /GPU failed at step 40/);
  const readout = await page.textContent('[data-testid=backend]');
  assert.ok(readout.includes(`CPU · concord-core trainer (wasm) — ${s.runs[0].label}: the GPU failed at step 40`), readout);
  // From step 40's parameters, not from the start: one Adam step (lr 0.01) moves each loss by
  // less than 0.02, while 40 steps moved it by more than 0.05.
  s.runs.forEach((r, i) => {
    const moved = Math.max(...at40[i].map((l, t) => Math.abs(l - initial[i][t])));
    const step41 = Math.max(...r.trainLosses.map((l, t) => Math.abs(l - at40[i][t])));
    assert.ok(moved > 0.05 && step41 < 0.02, `${r.method}: initial ${initial[i]}, step 40 ${at40[i]}, step 41 ${r.trainLosses}`);
  });
  s = await step(page, 20);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.steps, r.error]), [['cpu', 61, null], ['cpu', 61, null]]);
  // The heatmaps follow: the CPU computes the grid now.
  assert.deepEqual((await page.evaluate(() => window.concord.gridCheck())).map((g) => g.grid), ['cpu', 'cpu']);
  await page.screenshot({ path: await artifactPath('arena-gpu-failure-fallback.png') });
  // The device-loss warning is a console warning, not an error.
  assert.deepEqual(errors, []);
  await page.close();
});

test('a loss-weighted run (upgrad + dwa) trains on WebGPU and matches the native CPU run', async () => {
  // DWA's epoch means live on the GPU (loss_weighting.wgsl); 100 steps of 5 batches per epoch
  // turn over 20 epochs, so its weights move. Tolerance as above (measured with SwiftShader:
  // 1.7e-7; concord-gpu's loss_weighting_parity.rs measures 2.3e-6 relative on lavapipe).
  const steps = STEPS / 2;
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=upgrad+dwa&play=false`, errors);
  let s = await state(page);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null]], s.runs[0].backendReason);
  s = await step(page, steps);
  const run = s.runs[0];
  assert.deepEqual([run.steps, run.error], [steps, null]);
  const native = nativePreset('xor-conflict', 'upgrad+dwa', steps);
  assert.equal(native.error, null);
  const gap = finalLossGap(run, native);
  console.log(`gpu_arena: upgrad+dwa |GPU − CPU| loss gap after ${steps} steps: ${gap.toExponential(2)} (tolerance ${LOSS_TOL})`);
  assert.ok(gap <= LOSS_TOL, `browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a config the GPU cannot train (a sample-weighting stage) runs on the CPU with the reason shown', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,mean+harmonize&play=false`, errors);
  let s = await state(page);
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'cpu']);
  assert.equal(s.runs[0].backendReason, null);
  assert.match(s.runs[1].backendReason, /GPU trainer cannot run this config: .*sample weighting 'harmonize' has no GPU kernel/);
  const readout = await page.textContent('[data-testid=backend]');
  assert.ok(readout.startsWith(`WebGPU · `) && readout.includes(` — ${s.runs[0].label} · `), readout);
  assert.ok(readout.includes(`CPU · concord-core trainer (wasm) — ${s.runs[1].label}: the GPU trainer cannot run this config: `), readout);
  assert.match(readout, /sample weighting 'harmonize' has no GPU kernel/);
  // Both train in lock-step, each on its own backend.
  s = await step(page, 15);
  assert.deepEqual(s.runs.map((r) => [r.steps, r.error]), [[15, null], [15, null]]);
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebGPU every arena run is on the CPU and the page says why', async () => {
  const noGpu = await launchBrowser({ webgpu: false });
  try {
    const errors = [];
    const page = await openPage(noGpu, `${ctx.server.url}#preset=xor-conflict&arena=mean,mgda&play=false`, errors);
    let s = await state(page);
    assert.deepEqual(s.runs.map((r) => r.backend), ['cpu', 'cpu']);
    for (const r of s.runs) assert.match(r.backendReason, /WebGPU is not available/);
    assert.match(s.reason, /WebGPU is not available/);
    const readout = await page.textContent('[data-testid=backend]');
    assert.ok(readout.startsWith(`CPU · concord-core trainer (wasm) — ${s.runs[0].label}: WebGPU is not available`), readout);
    s = await step(page, 10);
    assert.deepEqual(s.runs.map((r) => [r.steps, r.error]), [[10, null], [10, null]]);
    assert.deepEqual((await page.evaluate(() => window.concord.gridCheck())).map((g) => g.grid), ['cpu', 'cpu']);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await noGpu.close();
  }
});
