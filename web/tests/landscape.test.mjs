// The landscape panel as a user drives it: train the arena, press "Compute landscape", and check
// the drawn canvases and the numbers the hook exposes against their definitions
// (shared/reference/landscapes.md), recomputed here from the exposed curves and points.
//
// No comparison with `concord landscape --json`: the CLI trains concord-core's preset config,
// which is not the playground's (data size, batch and lr come from the page's own defaults), so
// its slice is of a different run; the centre value is checked against the page's own
// `state().runs[k].trainLosses` instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);
const landscape = (page) => page.evaluate(() => window.concord.landscape());

/**
 * Relative tolerance of "the slice's centre is the run's loss": the slice recomputes L at
 * θ + 0·δ + 0·η = θ in f64. A CPU run's own loss is that same f64 number (1e-9); a WebGPU run's
 * loss was computed by the GPU in f32 at the same θ (f32 rounding of a mean over the train set:
 * 1e-5).
 */
let CENTRE_TOL = 1e-9;
const setTolerance = (s) => { CENTRE_TOL = s.runs.some((r) => r.backend === 'webgpu') ? 1e-5 : 1e-9; };

/** Press the button and wait until the result for `steps` is in. */
async function compute(page, steps) {
  await page.click('[data-testid=landscape-compute]');
  await page.waitForFunction(
    (s) => { const l = window.concord.landscape(); return !l.busy && (l.error || (l.result && l.result.steps === s)); },
    steps,
    { timeout: 180_000 },
  );
  const l = await landscape(page);
  assert.equal(l.error, null, `compute failed: ${l.error}`);
  // A slice computed by the GPU kernel (f32 forward) meets the f64 loss to f32 rounding.
  if (l.result.sliceBackend === 'webgpu') CENTRE_TOL = Math.max(CENTRE_TOL, 1e-5);
  return l.result;
}

/** Share of pixels that are not white, and the number of distinct colours, of a canvas. */
const inked = (page, selector) =>
  page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) ink++;
      if (i % 64 === 0) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { share: ink / (d.length / 4), colours: colours.size };
  }, selector);

const close = (a, b, tol) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));

test('the landscape panel slices, projects, interpolates, measures sharpness and the Pareto front', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,pcgrad,mgda&play=false`, errors);
  const STEPS = 60;
  const s = await step(page, STEPS);
  setTolerance(s);
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null));
  const r = await compute(page, STEPS);
  console.log(`# ${r.grid}×${r.grid} slice on ${r.sliceBackend}: ${r.sliceMs.toFixed(0)} ms, whole computation ${r.computeMs.toFixed(0)} ms`);
  // The page has WebGPU (SwiftShader) and the runs are MLPs: one batched GPU dispatch.
  assert.equal(r.sliceBackend, 'webgpu');

  // The slice: default 51 × 51 random filter-normalised plane through run 0, centre = θ.
  const N = 51;
  const C = (N - 1) / 2;
  assert.equal(r.grid, N);
  assert.equal(r.directions, 'random');
  assert.equal(r.total.length, N * N);
  assert.equal(r.alphas[C], 0);
  assert.equal(r.betas[C], 0);
  assert.ok(r.total.every(Number.isFinite));
  const runLoss = s.runs[0].trainLosses.reduce((a, b) => a + b, 0);
  assert.ok(close(r.centreTotal, runLoss, CENTRE_TOL), `centre ${r.centreTotal} vs the run's loss ${runLoss}`);
  assert.ok(close(r.total[C * N + C], runLoss, CENTRE_TOL));
  // Total = Σ tasks everywhere.
  for (let k = 0; k < r.total.length; k += 37) {
    assert.ok(close(r.total[k], r.tasks[0][k] + r.tasks[1][k], 1e-12));
  }
  // Off the centre the loss changes (the plane is not degenerate).
  assert.ok(Math.max(...r.total) > 1.01 * runLoss);

  // Trajectories: one per run; all start at the shared initial weights; run 0 ends at the centre.
  assert.equal(r.paths.length, 3);
  for (const p of r.paths) {
    assert.ok(close(p.coords[0][0], r.paths[0].coords[0][0], 1e-9) && close(p.coords[0][1], r.paths[0].coords[0][1], 1e-9));
    assert.ok(p.coords.length >= 2);
  }
  const end = r.paths[0].coords.at(-1);
  assert.ok(Math.abs(end[0]) < 1e-9 && Math.abs(end[1]) < 1e-9, `run 0 ends at ${end}`);

  // Interpolation between runs 0 and 1: ends are the runs' losses; both barriers by definition.
  const i = r.interpolation;
  assert.ok(i && i.alphas.length === 21);
  const run1 = s.runs[1].trainLosses.reduce((a, b) => a + b, 0);
  assert.ok(close(i.total[0], runLoss, CENTRE_TOL) && close(i.total.at(-1), run1, CENTRE_TOL));
  const [l0, l1] = [i.total[0], i.total.at(-1)];
  const frankle = Math.max(...i.total) - (l0 + l1) / 2;
  const entezari = Math.max(...i.total.map((v, k) => v - ((1 - i.alphas[k]) * l0 + i.alphas[k] * l1)));
  assert.ok(Number.isFinite(i.barrierFrankle) && Number.isFinite(i.barrierEntezari));
  assert.ok(close(i.barrierFrankle, frankle, 1e-12), `${i.barrierFrankle} vs ${frankle}`);
  assert.ok(close(i.barrierEntezari, entezari, 1e-12), `${i.barrierEntezari} vs ${entezari}`);

  // Sharpness over training, per run: finite λ_max at several steps ending now, finite trace.
  assert.equal(r.sharpness.length, 3);
  for (const sh of r.sharpness) {
    assert.ok(sh.steps.length >= 3 && sh.steps.at(-1) === STEPS, JSON.stringify(sh.steps));
    assert.ok(sh.lambdaMax.every(Number.isFinite), JSON.stringify(sh.lambdaMax));
    assert.ok(Number.isFinite(sh.trace));
  }

  // Pareto (drawn in the loss-space panel): the front is non-dominated, HV > 0 and equals the staircase sum.
  const pv = r.pareto;
  assert.ok(pv.points.length >= 3 * (STEPS / 5));
  const front = pv.front.map((k) => pv.points[k]);
  for (const a of front) {
    assert.ok(!pv.points.some((b) => b[0] <= a[0] && b[1] <= a[1] && (b[0] < a[0] || b[1] < a[1])), 'front point dominated');
  }
  let hv = 0;
  let level = pv.reference[1];
  for (const [x, y] of [...front].sort((a, b) => a[0] - b[0])) {
    hv += (pv.reference[0] - x) * (level - y);
    level = y;
  }
  assert.ok(pv.hypervolume > 0);
  assert.ok(close(pv.hypervolume, hv, 1e-12), `${pv.hypervolume} vs ${hv}`);

  // Drawn: every canvas has ink, the slice many colours.
  for (const id of ['landscape-slice', 'landscape-interp', 'landscape-sharpness']) {
    const d = await inked(page, `[data-testid=${id}]`);
    assert.ok(d.share > 0.05, `${id} is blank (${d.share})`);
  }
  assert.ok((await inked(page, '[data-testid=landscape-slice]')).colours >= 8);
  await page.locator('[data-panel=landscape]').screenshot({ path: await artifactPath('landscape-panel.png') });
  await page.locator('[data-panel=lossSpace]').screenshot({ path: await artifactPath('landscape-loss-space-front.png') });

  // Directions through the UI: the hash records them; gradients span the plane.
  await page.selectOption('[data-testid=landscape-directions]', 'gradients');
  await page.selectOption('[data-testid=landscape-task]', '0');
  assert.match(await page.evaluate(() => location.hash), /landDirections=gradients/);
  assert.match(await page.evaluate(() => location.hash), /landTask=1/);
  assert.equal((await state(page)).steps, STEPS, 'landscape settings do not restart the arena');
  const g = await compute(page, STEPS);
  assert.equal(g.directions, 'gradients');
  assert.ok(close(g.centreTotal, runLoss, CENTRE_TOL));
  await page.locator('[data-panel=landscape]').screenshot({ path: await artifactPath('landscape-gradients-task1.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('landscape URL keys restore and bad values fall back with a notice; 31 × 31 and start-end work', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,mgda&play=false&landDirections=start-end&landGrid=31`, errors);
  const s = await step(page, 20);
  setTolerance(s);
  const r = await compute(page, 20);
  console.log(`# 31×31 slice: ${r.sliceMs.toFixed(0)} ms, whole computation ${r.computeMs.toFixed(0)} ms`);
  assert.equal(r.grid, 31);
  assert.equal(r.directions, 'start-end');
  assert.ok(close(r.centreTotal, s.runs[0].trainLosses.reduce((a, b) => a + b, 0), CENTRE_TOL));
  assert.ok(r.total.every(Number.isFinite));
  // PCA of the trajectory: two explained-variance ratios in [0, 1] that sum to at most 1.
  await page.selectOption('[data-testid=landscape-directions]', 'pca');
  const p = await compute(page, 20);
  assert.equal(p.directions, 'pca');
  const [e1, e2] = p.explainedVariance;
  assert.ok(e1 >= e2 && e2 >= 0 && e1 + e2 <= 1 + 1e-12, `${e1}, ${e2}`);
  assert.ok(close(p.centreTotal, r.centreTotal, CENTRE_TOL), 'same θ, same centre whatever the plane');
  // Slice through the second run instead: its loss at the centre; interpolation runs from it to run 0.
  await page.selectOption('[data-testid=landscape-run]', '1');
  const m = await compute(page, 20);
  const mgda = s.runs[1].trainLosses.reduce((a, b) => a + b, 0);
  assert.equal(m.run, 1);
  assert.ok(close(m.centreTotal, mgda, CENTRE_TOL), `${m.centreTotal} vs ${mgda}`);
  assert.equal(m.interpolation.from, s.runs[1].label);
  assert.equal(m.interpolation.to, s.runs[0].label);
  assert.ok(close(m.interpolation.total[0], mgda, CENTRE_TOL));
  await page.goto(`${ctx.server.url}#preset=xor-conflict&play=false&landDirections=sideways&landGrid=7x`);
  await page.waitForFunction(() => window.concord && window.concord.ready === true);
  const notices = await page.textContent('body');
  assert.match(notices, /landDirections=sideways/);
  assert.match(notices, /landGrid=7x/);
  assert.match(await page.evaluate(() => location.hash), /landDirections=random&landGrid=51/);
  await page.goto(`${ctx.server.url}#preset=xor-conflict&play=false&landscape_hide=true`);
  await page.waitForFunction(() => window.concord && window.concord.ready === true);
  assert.equal(await page.locator('[data-panel=landscape]').isVisible(), false);
  assert.deepEqual(errors, []);
  await page.close();
});
