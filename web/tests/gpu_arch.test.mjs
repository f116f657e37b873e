// A CGC run (the PLE paper's customised gate control: shared experts plus one per task, a softmax
// gate per task) in the arena on WebGPU (SwiftShader): it trains on concord-gpu's GpuTrainer in
// the browser (`kernels::moe_arch`) and matches the native CPU trainer (`concord train --preset
// xor-conflict --model moe --router cgc --backend cpu --json`); its heatmap grid is the GPU's
// forward pass, and the network view's thumbnails — shared and task-owned experts alike — come
// from the GPU and match a recomputation from the run's parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, finalLossGap, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

// As gpu_moe.test.mjs: f32 on the GPU vs f64 on the CPU after STEPS Adam steps, absolute gap
// of the per-task train and test losses; grid and thumbnails as gpu_moe / network.test.mjs.
const STEPS = 40;
const LOSS_TOL = 1e-5;
const GRID_TOL = 1e-4;
const THUMB_TOL = 1e-5;

const FEATURES = { 'x₁': (p) => p[0], 'x₂': (p) => p[1], 'x₁²': (p) => p[0] ** 2, 'x₂²': (p) => p[1] ** 2,
  'x₁x₂': (p) => p[0] * p[1], 'sin x₁': (p) => Math.sin(p[0]), 'sin x₂': (p) => Math.sin(p[1]) };
const ACTIVATIONS = { tanh: Math.tanh, relu: (z) => Math.max(z, 0), sigmoid: (z) => 1 / (1 + Math.exp(-z)), linear: (z) => z };

/** φ(W·a + b) of a dense layer whose W (fanOut × fanIn, row-major) starts at `off`. */
function dense(params, off, a, fanOut, act) {
  const bias = off + fanOut * a.length;
  return Array.from({ length: fanOut }, (_, j) => {
    let z = params[bias + j];
    for (let k = 0; k < a.length; k++) z += params[off + j * a.length + k] * a[k];
    return ACTIVATIONS[act](z);
  });
}

/** A CGC run's hidden activations at a point, in `Moe::hidden_activations`' order (pre-layers,
 *  shared experts, then each task's experts). concord-core's layout (extraction.rs): the
 *  pre-layers, the shared experts (hidden EH × H + b, out H × EH + b), then per task its gate
 *  (candidates × H + b), its experts, its head (1 × H + b). Every expert reads a. */
function cgcHiddenAt(params, inputs, hidden, act, { shared, own, eh, tasks }, point) {
  let a = inputs.map((f) => FEATURES[f](point));
  let off = 0;
  const out = [];
  for (const w of hidden) {
    const fanIn = a.length;
    a = dense(params, off, a, w, act);
    off += w * fanIn + w;
    out.push(a);
  }
  const H = a.length;
  const expert = eh * H + eh + H * eh + H;
  for (let e = 0; e < shared; e++) out.push(dense(params, off + e * expert, a, eh, act));
  off += shared * expert;
  for (let t = 0; t < tasks; t++) {
    off += (shared + own) * H + shared + own;
    for (let e = 0; e < own; e++) out.push(dense(params, off + e * expert, a, eh, act));
    off += own * expert + H + 1;
  }
  return out;
}

test('a CGC run trains on WebGPU, matches the native CPU run, and its thumbnails come from the GPU', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const url = `${ctx.server.url}#preset=xor-conflict&arena=mean&model=moe&router=cgc&experts=2&play=false`;
  const page = await openPage(ctx.browser, url, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null]]);
  s = await step(page, STEPS);
  const run = s.runs[0];
  assert.equal(run.error, null, run.error);
  assert.equal(run.steps, STEPS);
  const native = JSON.parse(execFileSync(CLI, ['train', '--preset', 'xor-conflict', '--method', 'mean', '--model', 'moe',
    '--router', 'cgc', '--experts', '2', '--backend', 'cpu', '--steps', String(STEPS), '--json'], { encoding: 'utf8' }));
  assert.equal(native.error, null);
  const gap = finalLossGap(run, native);
  console.log(`gpu_arch cgc: largest |GPU − CPU| loss gap after ${STEPS} steps: ${gap.toExponential(2)} (tolerance ${LOSS_TOL})`);
  assert.ok(gap <= LOSS_TOL, `browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}`);
  assert.ok(native.final_losses.every((l) => l < 0.69), `trained: ${native.final_losses}`);
  const grid = await page.evaluate(() => window.concord.gridCheck());
  assert.deepEqual(grid.map((g) => [g.grid, g.cells]), [['webgpu', 10_000]]);
  assert.ok(grid[0].maxGap <= GRID_TOL, JSON.stringify(grid));

  // The network view: the thumbnails of the pre-layers, the 2 shared experts and each task's own
  // expert, gathered on the GPU after a read-back.
  await page.waitForFunction(
    (n) => { const v = window.concord.network(); return v && !v.busy && v.result && v.result.steps === n && v.result.thumbnailsSource === 'gpu'; },
    STEPS,
    { timeout: 30_000 },
  );
  const r = (await page.evaluate(() => window.concord.network())).result;
  assert.equal(r.router, 'cgc');
  const config = JSON.parse(await page.evaluate(() => window.concord.exportRun())).runs[0].record.config;
  const shape = { shared: 2, own: 1, eh: config.moe.expert_hidden, tasks: 2 };
  assert.equal(r.layers.length, r.hidden.length + 4, 'pre-layers, 2 shared experts, 1 expert per task');
  let worst = 0;
  let ownValues = 0;
  for (const { layer, neuron, point, value } of r.thumbSample) {
    const want = cgcHiddenAt(r.params, r.inputs, r.hidden, config.model.activation, shape, point)[layer][neuron];
    if (layer >= r.hidden.length + 2) ownValues++;
    worst = Math.max(worst, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= THUMB_TOL, `layer ${layer} neuron ${neuron} at ${point}: ${value} vs ${want}`);
  }
  console.log(`gpu_arch cgc: ${r.thumbSample.length} GPU thumbnail activations (${ownValues} of task-owned experts), largest gap ${worst.toExponential(2)}`);
  assert.ok(ownValues > 0, 'the sample holds task-owned expert neurons');
  assert.ok(worst > 1e-12, `gap ${worst}: these look like f64 (CPU) activations`);
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-cgc-gpu.png') });
  assert.deepEqual(errors, []);
  await page.close();
});
