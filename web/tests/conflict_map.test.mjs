// The per-point conflict map (issue 17): on the conflict-wedge preset the map's conflicting
// region (cos < 0) is where the tasks' labels disagree; a GPU run's map (the WGSL kernel at
// read-back) matches concord-core's CPU computation at the same parameters; without WebGPU the
// map comes from the CPU, travels in the run file, and the panel says why a model has none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath, launchBrowser } from './helpers.mjs';

const ctx = siteAndBrowser();
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);
const map = (page, k) => page.evaluate((i) => window.concord.conflictMap(i), k);

/** Of the cells where the tasks' labelling rules disagree (and of the rest), the share with
 *  cos < 0. */
function overlap(m) {
  const n = [0, 0];
  const neg = [0, 0];
  m.cells.forEach((c, i) => {
    const k = m.disagree[i] ? 0 : 1;
    n[k]++;
    if (c !== null && c < 0) neg[k]++;
  });
  return { disagree: neg[0] / n[0], agree: neg[1] / n[1], cells: n };
}

// After 300 steps of conflict-wedge (κ = 0.5: task 2 flipped on the lower-left quarter), the
// share of the quarter's cells with cos < 0, and of the other cells. Measured in Chromium on
// SwiftShader (seed 0, both runs): 0.822 and 0.063; the native f32 trainer gives the same, and
// seeds 0–5 give 0.73–0.93 and 0.04–0.16 (crates/concord-core/src/train/presets.rs' test).
const STEPS = 300;
const MIN_IN_BAND = 0.6;
const MAX_OUTSIDE = 0.2;
// The GPU's cosines (f32 kernels) against concord-core's f64 at the same read-back parameters,
// on all 10 000 cells of both runs: measured 3.0e-7 (Chromium, SwiftShader); concord-gpu's
// parity test sees at most 3.9e-6 on lavapipe over its models.
const PARITY_TOL = 1e-5;
// The share of conflict-wedge's 250 train points whose tasks' gradients conflict after 300 steps:
// the train points of the flipped quarter (measured in Chromium on SwiftShader, seed 0: 0.212,
// the same at every step of both runs — a point whose labels disagree has opposed loss gradients).
const MIN_CONFLICTING = 0.1;
const MAX_CONFLICTING = 0.45;

const sampleConflict = (page) => page.evaluate(() => window.concord.sampleConflict());

/** A run's chart series: from step 0 to the run's step, steps increasing, values in [0, 1]. */
function assertSeries(r, steps) {
  assert.ok(r.points.length >= 2, `${r.run}: ${r.points.length} points`);
  assert.equal(r.points[0].step, 0);
  assert.equal(r.points.at(-1).step, steps, `${r.run}: the last point is the latest read-back`);
  r.points.forEach((p, i) => {
    if (i > 0) assert.ok(p.step > r.points[i - 1].step, `${r.run}: steps increase`);
    assert.equal(p.samples, r.trainPoints);
    for (const v of [p.coherence, p.conflictingFraction, p.opposingShare]) {
      assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${r.run} step ${p.step}: ${JSON.stringify(p)}`);
    }
  });
}

test('conflict-wedge: the map is orange (cos < 0) where the labels disagree, and the GPU map matches the CPU', async () => {
  const errors = [];
  // Mean and PCGrad, both on WebGPU (the preset's own second method, Mean + Harmonize, is a
  // sample-weighting stage the GPU does not have).
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=conflict-wedge&arena=mean,pcgrad&play=false`, errors);
  let s = await page.evaluate(() => window.concord.state());
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu'], s.backendText);
  // Before any step: a map from the CPU at the initial weights (tied heads: the tasks agree).
  let m = await map(page, 0);
  assert.equal(m.step, 0);
  assert.ok(m.conflictShare < 0.01, `tied heads start agreeing: ${m.conflictShare}`);

  s = await step(page, STEPS);
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  for (const k of [0, 1]) {
    m = await map(page, k);
    assert.equal(m.engine, 'webgpu', 'the kernel computed it at the read-back');
    assert.deepEqual([m.step, m.side, m.cells.length], [STEPS, 100, 10_000]);
    const o = overlap(m);
    console.log(`conflict_map: ${m.run}: cos < 0 on ${o.disagree.toFixed(3)} of the ${o.cells[0]} disagreement cells, ` +
      `${o.agree.toFixed(3)} of the ${o.cells[1]} others`);
    assert.equal(o.cells[0], 2500, 'the flipped quarter');
    assert.ok(o.disagree >= MIN_IN_BAND && o.agree <= MAX_OUTSIDE, JSON.stringify(o));
  }
  const check = await page.evaluate(() => window.concord.conflictMapCheck());
  const gap = Math.max(...check.map((c) => c.maxGap));
  console.log(`conflict_map: largest |GPU − CPU| cosine over ${check.length} × 10 000 cells: ${gap.toExponential(2)} (tolerance ${PARITY_TOL})`);
  for (const c of check) {
    assert.deepEqual([c.engine, c.step, c.runSteps, c.side, c.undefinedMismatch], ['webgpu', STEPS, STEPS, 100, 0]);
    assert.ok(c.maxGap <= PARITY_TOL, JSON.stringify(check));
  }

  // The sample-level conflict chart: the WebGPU runs' trainer records none, so the page
  // computes it on its CPU at the read-back parameters, on the whole train set.
  const sc = await sampleConflict(page);
  assert.equal(sc.shown, true);
  assert.equal(await page.isVisible('[data-panel=samples] canvas'), true);
  for (const r of sc.runs) {
    assert.equal(r.backend, 'webgpu');
    assert.equal(r.trainPoints, 250, 'conflict-wedge: 500 points, half for training');
    assertSeries(r, STEPS);
    const last = r.points.at(-1);
    console.log(`conflict_map: ${r.run} (webgpu) at step ${last.step}: α ${last.coherence.toFixed(3)}, ` +
      `conflicting ${last.conflictingFraction.toFixed(3)}, opposing share ${last.opposingShare.toFixed(3)} ` +
      `(${r.points.length} points)`);
    // The flipped quarter's train points are the ones whose tasks' loss gradients oppose.
    assert.ok(last.conflictingFraction >= MIN_CONFLICTING && last.conflictingFraction <= MAX_CONFLICTING,
      JSON.stringify(last));
  }
  await page.locator('[data-panel=samples]').screenshot({ path: await artifactPath('sample-conflict-panel.png') });

  // The panel: a map per run, a readout under the pointer and from the keyboard.
  const canvas = page.locator('[data-panel=conflictMap] canvas');
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  const scale = box.width / 760;
  // The first map spans x 8 … 248 (CSS px of the 760-wide drawing), y 40 … 280: its lower-left.
  await page.mouse.move(box.x + (8 + 240 * 0.15) * scale, box.y + (40 + 240 * 0.8) * scale);
  const readout = page.locator('[data-testid=conflict-map-readout]');
  await page.waitForFunction(() => /cos = /.test(document.querySelector('[data-testid=conflict-map-readout]').textContent));
  assert.match(await readout.textContent(), /^Mean at \(x₁, x₂\) = \(-4\.\d+, -3\.\d+\): cos = -[01]\.\d+ — the tasks oppose here$/);
  await canvas.focus();
  await page.keyboard.press('ArrowRight');
  assert.match(await readout.textContent(), /^Mean at \(x₁, x₂\) = \(0\.\d+, -0\.\d+\): (cos|no cosine)/);
  assert.equal((await page.evaluate(() => window.concord.state())).steps, STEPS, 'an arrow key on the map does not step');
  await page.screenshot({ path: await artifactPath('conflict-wedge.png'), fullPage: true });
  await page.locator('[data-panel=conflictMap]').screenshot({ path: await artifactPath('conflict-map-panel.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebGPU the map comes from the CPU and travels in the run file; an MoE model has none', async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    const errors = [];
    const page = await openPage(browser, `${ctx.server.url}#preset=conflict-wedge&play=false`, errors);
    const s = await step(page, 20);
    assert.deepEqual(s.runs.map((r) => r.backend), ['cpu', 'cpu']);
    const m = await map(page, 1);
    assert.equal(m.engine, 'cpu');
    assert.equal(m.step, 20);
    // Two runs of a 2-16-16 trunk (354 parameters, 3.5 passes a point) within the CPU grid
    // budget (grid.rs: 16·10⁶ multiply-adds a redraw): ⌊√(16·10⁶ / (1239 · 2))⌋ = 80 per side.
    assert.ok(m.side === 80 && m.cells.length === 6400, `side ${m.side}`);
    const file = JSON.parse(await page.evaluate(() => window.concord.exportRun()));
    assert.deepEqual(file.runs.map((r) => [r.conflict_map.engine, r.conflict_map.step, r.conflict_map.side]),
      [['cpu', 20, m.side], ['cpu', 20, m.side]]);
    assert.ok(file.runs[1].conflict_map.min_cos.every((c, i) => c === null || Math.abs(c - m.cells[i]) <= 5.1e-5), '4 decimals');
    await step(page, 5);
    assert.equal(await page.evaluate((t) => window.concord.importRun(t), JSON.stringify(file)), null);
    const back = await map(page, 1);
    assert.deepEqual([back.step, back.side], [20, m.side], 'the imported map is the exported one');

    // The page's wasm: one 100 × 100 CPU map of xor-conflict's model (BENCHMARKS.md).
    const bench = await page.evaluate(() => window.concord.benchConflictMap('xor-conflict', 100, 7));
    console.log(`conflict_map: wasm, one 100 × 100 map of xor-conflict's 2-8-8 model: median ${bench.mapMs.toFixed(1)} ms ` +
      `(min ${bench.mapMsMin.toFixed(1)}), a forward pass of the grid ${bench.forwardMs.toFixed(1)} ms`);
    assert.ok(bench.mapMs > 0 && bench.params === 114, JSON.stringify(bench));

    await page.goto(`${ctx.server.url}#preset=task-experts&play=false`);
    await page.waitForFunction(() => /MoE/.test(document.querySelector('[data-testid=conflict-map-why]')?.textContent ?? ''));
    assert.equal(await page.isVisible('[data-panel=conflictMap] canvas'), false);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

// On the CPU the trainer records the same `SampleConflict` on each step's batch (the page sets
// `sample_metrics`), on ~100 steps of the run's limit: with a full batch (batch = the 250 train
// points) and a limit of 100 steps, every step. The chart's points (the page's own computation at
// its parameter snapshots) must equal the exported records at the same steps.
test('without WebGPU the sample-level chart equals the trainer records in the run file', async () => {
  const browser = await launchBrowser({ webgpu: false });
  try {
    const errors = [];
    const page = await openPage(browser, `${ctx.server.url}#preset=conflict-wedge&play=false&batch=250`, errors);
    const LIMIT = 100;
    let s = await page.evaluate((n) => window.concord._setRunLimit(n), LIMIT);
    assert.deepEqual(s.runs.map((r) => r.backend), ['cpu', 'cpu']);
    // Ten requests of ten steps: a read-back, so a parameter snapshot, every 10 steps.
    for (let i = 0; i < LIMIT / 10; i++) s = await step(page, 10);
    assert.ok(s.runs.every((r) => r.steps === LIMIT), JSON.stringify(s.runs.map((r) => r.steps)));
    const sc = await sampleConflict(page);
    const file = JSON.parse(await page.evaluate(() => window.concord.exportRun()));
    assert.equal(sc.runs.length, file.runs.length);
    let compared = 0;
    let gap = 0;
    sc.runs.forEach((r, k) => {
      assert.equal(r.backend, 'cpu');
      assert.equal(r.trainPoints, 250);
      assertSeries(r, LIMIT);
      const history = file.runs[k].record.history;
      const recorded = history.filter((h) => h.samples);
      assert.equal(recorded.length, LIMIT, `${r.run}: the trainer sampled every step of a ${LIMIT}-step run`);
      for (const p of r.points.filter((q) => q.step < LIMIT)) {
        const h = history.find((x) => x.step === p.step);
        assert.ok(h?.samples, `${r.run}: the export has samples at step ${p.step}`);
        assert.equal(h.samples.samples, p.samples, 'the whole train set is the batch');
        const pairs = [[p.coherence, h.samples.coherence], [p.conflictingFraction, h.samples.conflicting_fraction],
          [p.opposingShare, h.samples.opposing_share]];
        for (const [a, b] of pairs) gap = Math.max(gap, Math.abs(a - b));
        compared++;
      }
      // The latest recorded step before the limit, point for point.
      const lastCommon = r.points.filter((q) => q.step < LIMIT).at(-1);
      const rec = history.find((x) => x.step === lastCommon.step).samples;
      assert.equal(lastCommon.conflictingFraction, rec.conflicting_fraction);
    });
    console.log(`conflict_map: sample-level chart vs the exported trainer records: ${compared} points, ` +
      `largest gap ${gap.toExponential(2)}`);
    assert.ok(compared >= 2 * (LIMIT / 10), `${compared} points compared`);
    // The same computation (f64, same parameters, same points): equal, up to the order of one
    // sum where the f64 reference step hands the trainer its own Jacobian (the preset's Mean +
    // Harmonize runs the reference: seen 1.7e-18; the f32 fast path recomputes it: 0).
    assert.ok(gap <= 1e-12, `largest gap ${gap}`);
    await page.locator('[data-panel=samples]').screenshot({ path: await artifactPath('sample-conflict-cpu.png') });

    // An MoE model: the panel says it measures MLP models only.
    await page.goto(`${ctx.server.url}#preset=task-experts&play=false`);
    await page.waitForFunction(() => window.concord.state().preset === 'task-experts'
      && window.concord.state().runs.length > 0);
    const moe = await sampleConflict(page);
    assert.ok(moe.runs.length > 0 && moe.runs.every((r) => r.trainPoints === 0 && r.points.length === 0),
      JSON.stringify(moe));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
