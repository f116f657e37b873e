// The CAGrad toy in a real browser: WebGPU must be used, and the WGSL trajectories must land
// where the native CPU reference (f64) lands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, nativeRun, artifactPath } from './helpers.mjs';

// f32 on the GPU against f64 on the CPU after STEPS Adam steps of lr 1e-3. Measured on
// SwiftShader: 5.4e-6 at most; 1e-4 leaves room for other adapters' rounding, while any real
// difference in the maths (a wrong subgradient, weighting or optimizer step) moves a run by
// about lr per step, far more.
const STEPS = 1500;
const TOLERANCE = 1e-4;

const ctx = siteAndBrowser();

for (const problem of ['cagrad-toy', 'cagrad-toy-scaled']) {
  test(`${problem}: WebGPU trajectories match the native CPU run`, async (t) => {
    const errors = [];
    const page = await openPage(
      ctx.browser,
      `${ctx.server.url}#preset=${problem}&play=false&methods=mean,mgda,pcgrad,cagrad&c=0.5&optimizer=adam&lr=0.001`,
      errors,
    );
    const initial = await page.evaluate(() => window.concord.state());
    assert.equal(initial.backend, 'webgpu', `expected WebGPU, page says: ${initial.reason}`);
    assert.equal(initial.problem, problem);
    assert.equal(initial.steps, 0);

    const state = await page.evaluate((n) => window.concord.step(n), STEPS);
    assert.equal(state.steps, STEPS);
    const starts = problem === 'cagrad-toy' ? 3 : 5;
    assert.equal(state.runs.length, 4 * starts, 'one run per method and start');
    let worst = 0;
    for (const run of state.runs) {
      const ref = nativeRun({ problem, method: run.method, c: run.c, start: run.start, steps: STEPS, lr: 0.001, optimizer: 'adam' });
      const moved = Math.hypot(ref.final[0] - run.start[0], ref.final[1] - run.start[1]);
      assert.ok(moved > 0.1, `${run.method} from ${run.start} barely moved (${moved}); the comparison would prove nothing`);
      const gap = Math.hypot(run.position[0] - ref.final[0], run.position[1] - ref.final[1]);
      assert.ok(gap < TOLERANCE, `${run.method} from ${run.start}: browser ${run.position} vs native ${ref.final} (gap ${gap})`);
      worst = Math.max(worst, gap);
    }
    t.diagnostic(`adapter ${state.adapter}; largest browser-vs-native gap after ${STEPS} steps: ${worst.toExponential(2)}`);
    await page.screenshot({ path: await artifactPath(`${problem}.png`), fullPage: true });
    assert.deepEqual(errors, [], 'no console errors');
    await page.close();
  });
}

// A loss weighting on the toy stays on WebGPU (its kernel runs between single-step dispatches,
// its state on the GPU) and lands where the native CPU run lands. 300 steps keep this short;
// the tolerance is the test above's (f32 vs f64; measured on SwiftShader 2.9e-7 at most, and
// natively every weighting is within 4.0e-6, crates/concord-gpu/tests/toy_loss_weighting.rs),
// while a weighting that were not applied moves x by far more (GLS's λ leaves 1 by 0.55).
test('cagrad-toy: loss weightings run on WebGPU and match the native CPU run', async (t) => {
  const steps = 300;
  const methods = ['mean+gls', 'mean+famo', 'upgrad+uw', 'mean+rlw'];
  const errors = [];
  const page = await openPage(
    ctx.browser,
    `${ctx.server.url}#preset=cagrad-toy&play=false&arena=${methods.join(',')}&optimizer=adam&lr=0.001`,
    errors,
  );
  const initial = await page.evaluate(() => window.concord.state());
  assert.equal(initial.backend, 'webgpu', `expected WebGPU, page says: ${initial.reason}`);
  const state = await page.evaluate((n) => window.concord.step(n), steps);
  assert.equal(state.steps, steps);
  assert.equal(state.runs.length, methods.length * 3, 'one run per method and start');
  let worst = 0;
  for (const run of state.runs) {
    assert.equal(run.backend, 'webgpu', `${run.method}: ${run.backendReason}`);
    // A toy run's `method` is the aggregator alone; the weighting is its own field.
    assert.ok(run.weighting, `${run.method}: the run has its loss weighting`);
    const spec = `${run.method}+${run.weighting}`;
    assert.ok(methods.includes(spec), spec);
    const ref = nativeRun({ problem: 'cagrad-toy', method: spec, c: null, start: run.start, steps, lr: 0.001, optimizer: 'adam' });
    const gap = Math.hypot(run.position[0] - ref.final[0], run.position[1] - ref.final[1]);
    assert.ok(gap < TOLERANCE, `${spec} from ${run.start}: browser ${run.position} vs native ${ref.final} (gap ${gap})`);
    worst = Math.max(worst, gap);
  }
  t.diagnostic(`loss weightings: largest browser-vs-native gap after ${steps} steps: ${worst.toExponential(2)}`);
  const text = await page.locator('body').innerText();
  assert.ok(!/not on the GPU/.test(text), 'the page must not say a weighting is not on the GPU');
  assert.deepEqual(errors, [], 'no console errors');
  await page.close();
});

// The toy kernel's stateful and per-coordinate methods stay on WebGPU too: GradVac keeps its
// cosine targets in the run's GPU memory buffer across steps and dispatches, GradDrop takes its
// draws from the CPU aggregator's stream (uploaded per submission). Both land where the native
// CPU run lands (natively within 7.3e-6, crates/concord-gpu/tests/toy_stateful.rs); a lost
// memory (GradVac back to PCGrad) or a draw from the wrong step moves x by 1.5e-2 or more.
test('cagrad-toy: gradvac and graddrop run on WebGPU and match the native CPU run', async (t) => {
  const steps = 300;
  const methods = ['gradvac', 'graddrop'];
  const errors = [];
  const page = await openPage(
    ctx.browser,
    `${ctx.server.url}#preset=cagrad-toy&play=false&arena=${methods.join(',')}&optimizer=adam&lr=0.001`,
    errors,
  );
  const initial = await page.evaluate(() => window.concord.state());
  assert.equal(initial.backend, 'webgpu', `expected WebGPU, page says: ${initial.reason}`);
  const state = await page.evaluate((n) => window.concord.step(n), steps);
  assert.equal(state.steps, steps);
  assert.equal(state.runs.length, methods.length * 3, 'one run per method and start');
  let worst = 0;
  for (const run of state.runs) {
    assert.equal(run.backend, 'webgpu', `${run.method}: ${run.backendReason}`);
    assert.ok(methods.includes(run.method), run.method);
    const ref = nativeRun({ problem: 'cagrad-toy', method: run.method, c: null, start: run.start, steps, lr: 0.001, optimizer: 'adam' });
    const gap = Math.hypot(run.position[0] - ref.final[0], run.position[1] - ref.final[1]);
    assert.ok(gap < TOLERANCE, `${run.method} from ${run.start}: browser ${run.position} vs native ${ref.final} (gap ${gap})`);
    worst = Math.max(worst, gap);
  }
  t.diagnostic(`gradvac / graddrop: largest browser-vs-native gap after ${steps} steps: ${worst.toExponential(2)}`);
  const text = await page.locator('body').innerText();
  assert.ok(!/not on the GPU|falls? back to the CPU/.test(text), 'the page must not say these run on the CPU');
  await page.screenshot({ path: await artifactPath('toy-gradvac-graddrop.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no console errors');
  await page.close();
});
