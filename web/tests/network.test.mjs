// The network view: the per-neuron conflict the page shows is the CPU reference's at the same
// weights, the numbers are reachable by hover and by keyboard, a click enlarges a neuron, and
// `network_hide=true` hides the panel. On WebGPU the thumbnails come from the GPU's grid pass
// (`thumbnailsSource: "gpu"`) and match a recomputation here from the panel's weights — an
// MLP run, and an MMoE run (pre-layer and expert neurons). CGC and PLE runs draw their
// task-owned experts apart and their shared neurons' numbers match `concord neurons`.
//
// Reference: `concord neurons --config export.json --run K` (concord-core's neuron_conflicts,
// native f64) at the parameters of the page's export, which must be the parameters the panel
// used (compared exactly). Both sides compute in f64 from the same weights; they differ only by
// wasm vs native rounding (libm's tanh/exp, FMA in the native GEMM): tolerance 1e-9 on each
// cosine (absolute) and on each norm (relative).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

const TOL = 1e-9;
// GPU thumbnails: f32 forward pass (SwiftShader) against f64 here, activations in [−1, 1].
const THUMB_TOL = 1e-5;
const ctx = siteAndBrowser({ webgpu: false });
const gpuCtx = siteAndBrowser();

/** The panel's result once it is of `steps` steps of run `run`. */
async function networkAt(page, run, steps) {
  await page.waitForFunction(
    ([r, s]) => { const n = window.concord.network(); return n && !n.busy && n.result && n.result.run === r && n.result.steps === s; },
    [run, steps],
    { timeout: 30_000 },
  );
  const n = await page.evaluate(() => window.concord.network());
  assert.equal(n.error, null);
  return n.result;
}

/**
 * The native reference for the panel's result `r` of run `run`: the page's export is written to
 * `artifact`, the panel must have used its weights, and `concord neurons` on it must give every
 * neuron's per-task norms (relative), cosines and min cos within TOL. Returns the CLI's output,
 * the number of defined cosines (every pair), the number of neurons whose tasks 1 and 2 have a
 * defined cosine, and the largest gap.
 */
async function againstNeurons(page, r, run, artifact) {
  const text = await page.evaluate(() => window.concord.exportRun());
  const path = await artifactPath(artifact);
  await writeFile(path, text);
  assert.deepEqual(r.params, JSON.parse(text).runs[run].record.params, 'the panel used the exported weights');
  const ref = JSON.parse(execFileSync(CLI, ['neurons', '--config', path, '--run', String(run)], { encoding: 'utf8' }));
  let worst = 0;
  let defined = 0;
  let between = 0;
  ref.layers.forEach((layer, l) => layer.forEach((n, j) => {
    const got = r.layers[l][j];
    if (n.cosines[0][1] !== null) between++;
    n.norms.forEach((g, t) => {
      const gap = Math.abs(got.norms[t] - g) / Math.max(Math.abs(g), 1e-300);
      worst = Math.max(worst, gap);
      assert.ok(gap <= TOL, `layer ${l} neuron ${j} norm ${t}: ${got.norms[t]} vs ${g}`);
    });
    n.cosines.forEach((row, a) => row.forEach((c, b) => {
      if (c === null) { assert.equal(got.cosines[a][b], null); return; }
      defined++;
      const gap = Math.abs(got.cosines[a][b] - c);
      worst = Math.max(worst, gap);
      assert.ok(gap <= TOL, `layer ${l} neuron ${j} cos[${a}][${b}]: ${got.cosines[a][b]} vs ${c}`);
    }));
    assert.ok(n.min_cos === null ? got.min_cos === null : Math.abs(got.min_cos - n.min_cos) <= TOL);
  }));
  return { ref, defined, between, worst };
}

test('the per-neuron conflict matches the CPU reference; hover, focus and click show it', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,pcgrad&hidden=6,4&play=false`, errors);
  const STEPS = 40;
  const s = await page.evaluate((n) => window.concord.step(n), STEPS);
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null));
  // The select picks the run (default the first).
  await networkAt(page, 0, STEPS);
  await page.selectOption('[data-testid=network-run]', '1');
  const r = await networkAt(page, 1, STEPS);
  assert.deepEqual(r.hidden, [6, 4]);
  assert.deepEqual(r.inputs, ['x₁', 'x₂']);
  assert.equal(r.layers.length, 2);
  assert.deepEqual(r.layers.map((l) => l.length), [6, 4]);

  const { ref, defined, worst } = await againstNeurons(page, r, 1, 'network-export.json');
  assert.equal(ref.steps, STEPS);
  console.log(`# ${defined} cosines, largest gap to the native reference ${worst.toExponential(2)}`);
  assert.ok(defined >= 20, 'most neurons have a defined cosine');

  // Hover: the tooltip shows the neuron's numbers (as the page formats them).
  const neuron = page.locator('[data-testid=network-neuron][data-l="0"][data-j="2"]');
  const n02 = r.layers[0][2];
  const shown = (v) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;
  await neuron.hover();
  const tip = page.locator('[data-testid=network-tooltip]');
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await tip.innerText(), /Layer 1, neuron 3/);
  assert.ok((await tip.innerText()).includes(shown(n02.cosines[0][1])), await tip.innerText());
  await page.mouse.move(0, 0);
  await tip.waitFor({ state: 'hidden', timeout: 5000 });
  // Keyboard focus shows the same; the aria-label carries the numbers too.
  const label = await neuron.getAttribute('aria-label');
  assert.ok(label.includes(shown(n02.cosines[0][1])), label);
  assert.equal(await neuron.evaluate((e) => e.tagName), 'BUTTON', 'a real button: Tab reaches it, Enter and Space click it');
  await neuron.focus();
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await tip.innerText(), /Layer 1, neuron 3/);
  // Enter enlarges; the large canvas is painted; Escape closes.
  await page.keyboard.press('Enter');
  const large = page.locator('[data-testid=network-large]');
  await large.waitFor({ state: 'visible', timeout: 5000 });
  await page.waitForFunction(() => {
    const c = document.querySelector('.net-large-canvas');
    if (!c || c.width < 50) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return d.some((v, i) => i % 4 === 3 && v === 255);
  }, null, { timeout: 10_000 });
  const cpuLarge = (await page.evaluate(() => window.concord.network())).result.large;
  assert.equal(cpuLarge.source, 'cpu', 'a CPU run enlarges on the CPU');
  await page.keyboard.press('Escape');
  await large.waitFor({ state: 'hidden', timeout: 5000 });
  await neuron.click();
  await large.waitFor({ state: 'visible', timeout: 5000 });
  // The thumbnails are painted (TF's colours, not blank).
  const thumbs = await page.evaluate(() => [...document.querySelectorAll('canvas[data-thumb=hidden]')].map((c) => c.width));
  assert.equal(thumbs.length, 10);
  assert.ok(thumbs.every((w) => w === 20));
  assert.equal(r.thumbnailsSource, 'cpu', 'a CPU run draws CPU thumbnails');
  assert.equal(await page.locator('canvas[data-thumb=input]').count(), 2, 'the inputs show their heatmaps');

  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-view.png') });
  await page.close();
  assert.deepEqual(errors, []);
});

test('many tasks, a wide trunk and network_hide', async () => {
  const errors = [];
  // Three tasks and 3 layers of 64: the ring is the most negative pair, nothing panics.
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&tasks=xor,circle,gauss&losses=bce,bce,bce&arena=mean&hidden=64,64,64&play=false`, errors);
  await page.evaluate(() => window.concord.step(5));
  const r = await networkAt(page, 0, 5);
  assert.deepEqual(r.layers.map((l) => l.length), [64, 64, 64]);
  for (const layer of r.layers) {
    for (const n of layer) {
      const pairs = [[0, 1], [0, 2], [1, 2]].map(([a, b]) => n.cosines[a][b]).filter((c) => c !== null);
      if (pairs.length) assert.equal(n.min_cos, Math.min(...pairs));
    }
  }
  assert.equal(await page.locator('[data-testid=network-neuron]').count(), 192);
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-wide.png') });
  await page.close();

  const hidden = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean&play=false&network_hide=true`, errors);
  assert.equal(await hidden.isVisible('[data-panel=network]'), false, 'network_hide hides the panel');
  await hidden.close();
  assert.deepEqual(errors, []);
});

// An MoE run (MMoE: a dense softmax gate per task, 4 experts of 8 hidden neurons after one
// pre-layer of 4): the pre-layer's and the experts' neurons are drawn, their conflict numbers are
// the native reference's (`concord neurons` on the export: concord-core's moe_neuron_conflicts,
// same tolerance as the MLP's), the expert → head links carry each task's mean gate weight, and
// the CPU thumbnails of pre-layer and expert neurons match a recomputation from the weights.
test('an MoE run: its pre-layer and expert neurons, conflict = the CPU reference, gates on the links', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&model=moe&router=mmoe&experts=4&hidden=4&arena=mean,pcgrad&play=false`, errors);
  const STEPS = 20;
  const s = await page.evaluate((n) => window.concord.step(n), STEPS);
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null));
  await page.selectOption('[data-testid=network-run]', '1');
  const r = await networkAt(page, 1, STEPS);
  assert.equal(r.note, null);
  assert.equal(r.router, 'mmoe');
  assert.equal(r.preLayers, 1);
  assert.deepEqual(r.layers.map((l) => l.length), [4, 8, 8, 8, 8], 'one pre-layer, then 4 experts of 8');
  assert.equal(await page.locator('[data-testid=network-neuron]').count(), 36);
  assert.equal(await page.locator('[data-testid=network-neuron][data-expert="3"]').count(), 8);
  assert.equal(await page.locator('[data-testid=network-expert]').count(), 4);
  // MMoE: each task's gate is a softmax over the experts, so its mean weights sum to 1.
  assert.equal(r.gates.length, 2);
  for (const g of r.gates) {
    assert.equal(g.length, 4);
    assert.ok(Math.abs(g.reduce((a, b) => a + b, 0) - 1) < 1e-12, `${g}`);
  }
  // Expert → head links: 4 experts × 8 neurons × 2 heads, each with its task's gate.
  const gated = await page.evaluate(() => [...document.querySelectorAll('.network-links path[data-gate]')].map((p) => Number(p.getAttribute('data-gate'))));
  assert.equal(gated.length, 64);
  const want = new Set(r.gates.flat().map((g) => g.toFixed(4)));
  assert.ok(gated.every((g) => want.has(g.toFixed(4))), 'every gated link shows a task\'s mean gate weight');

  const { ref, between, worst } = await againstNeurons(page, r, 1, 'network-moe-export.json');
  assert.equal(ref.pre_layers, 1);
  assert.deepEqual(ref.layers.map((l) => l.length), [4, 8, 8, 8, 8]);
  console.log(`# MoE: ${between} cosines, largest gap to the native reference ${worst.toExponential(2)}`);
  assert.ok(between >= 30, 'MMoE trains every expert: most cosines are defined');

  // Thumbnails (CPU, f64) of pre-layer and expert neurons against a recomputation: the layout
  // is pre-layers, then the gates (one E × H per task for MMoE, no bias), then per expert its
  // hidden layer (8 × H, b) and output layer (H × 8, b).
  assert.equal(r.thumbnailsSource, 'cpu');
  const act = Math.tanh;
  const H = 4, E = 4, EH = 8;
  let thumbGap = 0;
  let experts = 0;
  for (const { layer, neuron, point, value } of r.thumbSample) {
    const a = hiddenAt(r.params, r.inputs, r.hidden, 'tanh', point)[0];
    let want;
    if (layer === 0) want = a[neuron];
    else {
      experts++;
      const e = layer - 1;
      const start = (2 * H + H) + 2 * E * H + e * (EH * H + EH + H * EH + H);
      let z = r.params[start + EH * H + neuron];
      for (let k = 0; k < H; k++) z += r.params[start + neuron * H + k] * a[k];
      want = act(z);
    }
    thumbGap = Math.max(thumbGap, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= 1e-12, `layer ${layer} neuron ${neuron} at ${point}: ${value} vs ${want}`);
  }
  assert.ok(experts >= 16, 'the sample holds expert neurons');

  // Hover an expert neuron: its numbers and its expert's gate weights; a click enlarges it.
  const neuron = page.locator('[data-testid=network-neuron][data-l="2"][data-j="0"]');
  await neuron.hover();
  const tip = page.locator('[data-testid=network-tooltip]');
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  const tipText = await tip.innerText();
  assert.match(tipText, /Expert 2, neuron 1/);
  assert.match(tipText, /mean gate weight/);
  await neuron.click();
  await page.locator('[data-testid=network-large]').waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await page.locator('[data-testid=network-large]').innerText(), /Expert 2, neuron 1/);
  await page.waitForFunction(() => {
    const c = document.querySelector('.net-large-canvas');
    if (!c || c.width < 50) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return d.some((v, i) => i % 4 === 3 && v === 255);
  }, null, { timeout: 10_000 });
  await page.keyboard.press('Escape');
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-moe.png') });
  await page.close();
  assert.deepEqual(errors, []);
});

/** Trunk activations at a 2-D point from the flat parameters (concord-core's layout: per layer
 *  W row-major fan_out × fan_in, then b), the point through the run's input features. */
const FEATURES = { 'x₁': (p) => p[0], 'x₂': (p) => p[1], 'x₁²': (p) => p[0] ** 2, 'x₂²': (p) => p[1] ** 2,
  'x₁x₂': (p) => p[0] * p[1], 'sin x₁': (p) => Math.sin(p[0]), 'sin x₂': (p) => Math.sin(p[1]) };
const ACTIVATIONS = { tanh: Math.tanh, relu: (z) => Math.max(z, 0), sigmoid: (z) => 1 / (1 + Math.exp(-z)), linear: (z) => z };
function hiddenAt(params, inputs, hidden, activation, point) {
  let a = inputs.map((f) => FEATURES[f](point));
  let off = 0;
  const layers = [];
  for (const width of hidden) {
    const fanIn = a.length;
    const bias = off + fanIn * width;
    a = Array.from({ length: width }, (_, j) => {
      let z = params[bias + j];
      for (let k = 0; k < fanIn; k++) z += params[off + j * fanIn + k] * a[k];
      return ACTIVATIONS[activation](z);
    });
    off = bias + width;
    layers.push(a);
  }
  return layers;
}

test('on WebGPU the thumbnails come from the GPU and match a recomputation from the weights', async () => {
  const errors = [];
  const page = await openPage(gpuCtx.browser, `${gpuCtx.server.url}#preset=xor-conflict&arena=mean&hidden=6,4&xSquared=true&sinX=true&play=false`, errors);
  const s = await page.evaluate(() => window.concord.state());
  assert.equal(s.runs[0].backend, 'webgpu', `expected WebGPU, page says: ${s.reason}`);
  const STEPS = 30;
  await page.evaluate((n) => window.concord.step(n), STEPS);
  const r = await networkAt(page, 0, STEPS);
  assert.equal(r.thumbnailsSource, 'gpu');
  assert.deepEqual(r.inputs, ['x₁', 'x₂', 'x₁²', 'sin x₁']);
  const config = JSON.parse(await page.evaluate(() => window.concord.exportRun())).runs[0].record.config;
  assert.ok(r.thumbSample.length >= 16);
  let worst = 0;
  for (const { layer, neuron, point, value } of r.thumbSample) {
    const want = hiddenAt(r.params, r.inputs, r.hidden, config.model.activation, point)[layer][neuron];
    worst = Math.max(worst, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= THUMB_TOL, `layer ${layer} neuron ${neuron} at ${point}: ${value} vs ${want}`);
  }
  console.log(`# ${r.thumbSample.length} GPU thumbnail activations, largest gap to the recomputation ${worst.toExponential(2)}`);
  assert.ok(new Set(r.thumbSample.map((t) => t.value.toFixed(4))).size > 4, 'the activations vary');
  // f64 on both sides would agree to ~1e-15: a gap of f32's size says the values are the GPU's.
  assert.ok(worst > 1e-12, `gap ${worst}: these look like f64 (CPU) activations`);
  assert.equal(await page.locator('canvas[data-thumb=input]').count(), 4);
  // The enlarged map: until a read-back gathers it, the CPU's; after one (2 more steps), the
  // GPU's 100 × 100 gather of that neuron from the grid pass, matching a recomputation.
  await page.locator('[data-testid=network-neuron][data-l="1"][data-j="2"]').click();
  await page.locator('[data-testid=network-large]').waitFor({ state: 'visible', timeout: 5000 });
  await page.evaluate(() => window.concord.step(2));
  await page.waitForFunction(
    (s) => { const n = window.concord.network(); return n && !n.busy && n.result && n.result.steps === s && n.result.large && n.result.large.source === 'gpu'; },
    STEPS + 2,
    { timeout: 30_000 },
  );
  const big = (await page.evaluate(() => window.concord.network())).result;
  assert.deepEqual([big.large.layer, big.large.neuron], [1, 2]);
  let bigWorst = 0;
  for (const { point, value } of big.large.sample) {
    const want = hiddenAt(big.params, big.inputs, big.hidden, config.model.activation, point)[1][2];
    bigWorst = Math.max(bigWorst, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= THUMB_TOL, `enlarged at ${point}: ${value} vs ${want}`);
  }
  console.log(`# ${big.large.sample.length} GPU enlarged-map values, largest gap to the recomputation ${bigWorst.toExponential(2)}`);
  assert.ok(bigWorst > 1e-12, `gap ${bigWorst}: these look like f64 (CPU) activations`);
  assert.match(await page.locator('[data-testid=network-large]').innerText(), /GPU/);
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-gpu-features.png') });
  await page.close();
  assert.deepEqual(errors, []);
});

/** An MMoE run's hidden activations at a 2-D point from the flat parameters, in
 *  `Moe::hidden_activations`' order: [pre-layers…, expert 0, …]. Layout (concord-core's
 *  MoeLayout): the pre-layers, then one E × H gate per task (no bias), then per expert its
 *  hidden layer (EH × H, b) and its output layer (H × EH, b). */
function mmoeHiddenAt(params, inputs, hidden, activation, experts, tasks, point) {
  const pre = hiddenAt(params, inputs, hidden, activation, point);
  const a = pre[pre.length - 1];
  const H = a.length;
  let off = 0;
  let fanIn = inputs.length;
  for (const w of hidden) { off += w * fanIn + w; fanIn = w; }
  off += tasks * experts.count * H;
  const EH = experts.hidden;
  const out = [...pre];
  for (let e = 0; e < experts.count; e++) {
    const start = off + e * (EH * H + EH + H * EH + H);
    out.push(Array.from({ length: EH }, (_, j) => {
      let z = params[start + EH * H + j];
      for (let k = 0; k < H; k++) z += params[start + j * H + k] * a[k];
      return ACTIVATIONS[activation](z);
    }));
  }
  return out;
}

test('an MoE run on WebGPU: its pre-layer and expert thumbnails and the enlarged expert map come from the GPU', async () => {
  const errors = [];
  const page = await openPage(gpuCtx.browser, `${gpuCtx.server.url}#preset=xor-conflict&model=moe&router=mmoe&experts=3&hidden=4&arena=mean&play=false`, errors);
  const s = await page.evaluate(() => window.concord.state());
  assert.equal(s.runs[0].backend, 'webgpu', `expected WebGPU, page says: ${s.reason}`);
  const STEPS = 20;
  await page.evaluate((n) => window.concord.step(n), STEPS);
  // The first result may predate the first read-back that gathered the thumbnails.
  await page.waitForFunction(
    (s) => { const n = window.concord.network(); return n && !n.busy && n.result && n.result.steps === s && n.result.thumbnailsSource === 'gpu'; },
    STEPS,
    { timeout: 30_000 },
  );
  const r = (await page.evaluate(() => window.concord.network())).result;
  assert.equal(r.note, null);
  assert.equal(r.router, 'mmoe');
  assert.deepEqual(r.layers.map((l) => l.length), [4, 8, 8, 8], 'one pre-layer, then 3 experts of 8');
  const config = JSON.parse(await page.evaluate(() => window.concord.exportRun())).runs[0].record.config;
  const act = config.model.activation;
  const experts = { count: 3, hidden: 8 };
  let worst = 0;
  let expertValues = 0;
  for (const { layer, neuron, point, value } of r.thumbSample) {
    const want = mmoeHiddenAt(r.params, r.inputs, r.hidden, act, experts, 2, point)[layer][neuron];
    if (layer >= 1) expertValues++;
    worst = Math.max(worst, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= THUMB_TOL, `layer ${layer} neuron ${neuron} at ${point}: ${value} vs ${want}`);
  }
  console.log(`# MoE: ${r.thumbSample.length} GPU thumbnail activations (${expertValues} of experts), largest gap to the recomputation ${worst.toExponential(2)}`);
  assert.ok(expertValues >= 24, 'the sample holds expert neurons');
  assert.ok(new Set(r.thumbSample.map((t) => t.value.toFixed(4))).size > 4, 'the activations vary');
  assert.ok(worst > 1e-12, `gap ${worst}: these look like f64 (CPU) activations`);
  // The enlarged map of expert 3's neuron 5 (layer 1 + 2): after a read-back gathers it, the GPU's.
  await page.locator('[data-testid=network-neuron][data-l="3"][data-j="4"]').click();
  await page.locator('[data-testid=network-large]').waitFor({ state: 'visible', timeout: 5000 });
  await page.evaluate(() => window.concord.step(2));
  await page.waitForFunction(
    (s) => { const n = window.concord.network(); return n && !n.busy && n.result && n.result.steps === s && n.result.large && n.result.large.source === 'gpu'; },
    STEPS + 2,
    { timeout: 30_000 },
  );
  const big = (await page.evaluate(() => window.concord.network())).result;
  assert.deepEqual([big.large.layer, big.large.neuron], [3, 4]);
  let bigWorst = 0;
  for (const { point, value } of big.large.sample) {
    const want = mmoeHiddenAt(big.params, big.inputs, big.hidden, act, experts, 2, point)[3][4];
    bigWorst = Math.max(bigWorst, Math.abs(value - want));
    assert.ok(Math.abs(value - want) <= THUMB_TOL, `enlarged at ${point}: ${value} vs ${want}`);
  }
  console.log(`# MoE: ${big.large.sample.length} GPU enlarged-map values, largest gap ${bigWorst.toExponential(2)}`);
  assert.ok(bigWorst > 1e-12, `gap ${bigWorst}: these look like f64 (CPU) activations`);
  assert.match(await page.locator('[data-testid=network-large]').innerText(), /Expert 3, neuron 5.*GPU/);
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-moe-gpu.png') });
  await page.close();
  assert.deepEqual(errors, []);
});

test('CGC and PLE runs: task-owned experts drawn apart, shared-neuron conflict = `concord neurons`', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&model=moe&router=cgc&experts=2&hidden=4&arena=mean&play=false`, errors);
  const STEPS = 20;
  await page.evaluate((n) => window.concord.step(n), STEPS);
  const r = await networkAt(page, 0, STEPS);
  assert.equal(r.note, null);
  assert.equal(r.router, 'cgc');
  // One pre-layer, 2 shared experts (conflict rings), then each task's own expert (CGC's
  // task_experts = 1), each of 8 hidden neurons.
  assert.deepEqual(r.layers.map((l) => l.length), [4, 8, 8, 8, 8]);
  assert.deepEqual(r.experts.map((e) => [e.shared, e.task]), [[true, null], [true, null], [false, 0], [false, 1]]);
  assert.equal(await page.locator('[data-testid=network-neuron]').count(), 36);
  assert.equal(await page.locator('[data-testid=network-neuron][data-owned=true]').count(), 16);
  assert.equal(await page.locator('[data-testid=network-expert]').count(), 4);
  // A task-owned neuron: one task's gradient only, no cosine.
  for (const n of r.layers[3]) {
    assert.equal(n.cosines[0][1], null);
    assert.ok(n.norms[0] > 0 && n.norms[1] === 0, `${n.norms}`);
  }
  // Gated links only from an expert its task's gate can pick: shared → both heads, own → own head.
  const gated = await page.evaluate(() => document.querySelectorAll('.network-links path[data-gate]').length);
  assert.equal(gated, 2 * 8 * 2 + 2 * 8);

  const { ref, between, worst } = await againstNeurons(page, r, 0, 'network-cgc-export.json');
  assert.equal(ref.pre_layers, 1);
  assert.deepEqual(ref.layers.map((l) => l.length), [4, 8, 8], 'the CLI: the pre-layer and the 2 shared experts');
  assert.deepEqual(ref.experts.map((e) => [e.level, e.task, e.shared]), [[0, null, true], [0, null, true]]);
  console.log(`# CGC: ${between} shared-neuron cosines, largest gap to the native reference ${worst.toExponential(2)}`);
  assert.ok(between >= 16, 'the shared experts train: their cosines are defined');
  // Hover a task-owned neuron: it says whose it is.
  await page.locator('[data-testid=network-neuron][data-l="4"][data-j="0"]').hover();
  const tip = page.locator('[data-testid=network-tooltip]');
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await tip.innerText(), /own expert/);
  const card = page.locator('[data-panel=network]');
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: await artifactPath('network-cgc.png') });

  // PLE: two levels, one column each; the level-1 task experts are shared (the shared gate
  // reads them), the level-2 task experts are each task's own.
  await page.close();
  const ple = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&model=moe&router=ple&experts=2&hidden=4&arena=mean&play=false`, errors);
  await ple.evaluate((n) => window.concord.step(n), 5);
  const p = await networkAt(ple, 0, 5);
  assert.equal(p.note, null);
  assert.deepEqual(p.experts.map((e) => [e.level, e.task, e.shared]),
    [[0, null, true], [0, null, true], [0, 0, true], [0, 1, true], [1, null, true], [1, null, true], [1, 0, false], [1, 1, false]]);
  assert.equal(await ple.locator('[data-testid=network-neuron][data-owned=true]').count(), 16);
  assert.equal(await ple.locator('.net-col').count(), 5, 'Input, Layer 1, Level 1, Level 2, Heads');
  const pleCard = ple.locator('[data-panel=network]');
  await pleCard.scrollIntoViewIfNeeded();
  await pleCard.screenshot({ path: await artifactPath('network-ple.png') });
  await ple.close();
  assert.deepEqual(errors, []);
});
