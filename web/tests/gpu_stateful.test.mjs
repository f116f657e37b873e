// Aggregators that are not plain Gramian weightings, on WebGPU (SwiftShader): GradVac and MoDo
// keep their state (cosine targets, λ) in a GPU buffer across the steps of the browser's
// GpuTrainer; TrimmedMean and GradDrop run per coordinate straight from J (GradDrop with the
// CPU aggregator's draws, uploaded). Each run matches the native CPU trainer
// (`concord train --preset … --method … --backend cpu --json`). Until these page builds they
// fell back to the CPU ("no GPU kernel").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, pageState as state, pageStep as step, nativePreset, finalLossGap } from './helpers.mjs';

const ctx = siteAndBrowser();

// As gpu_arena.test.mjs: f32 on the GPU against f64 on the CPU after STEPS steps, absolute gap
// on losses of about 0.3–0.7 (0.007–0.06 on sinusoid-phases). Measured with SwiftShader
// (Chromium headless): 1.0e-7 for gradvac / modo, 8.2e-8 for trimmed-mean / graddrop
// (train_parity_stateful.rs and coordinate_parity.rs: relative ≤ 2e-6 and ≤ 1.2e-5 on lavapipe).
const STEPS = 100;
const LOSS_TOL = 1e-5;

/** Train the arena `methods` (arena entries) on `preset` for STEPS steps on WebGPU and compare
 * every run with the native CPU run of the same method text; returns the largest gap. The native
 * run's losses must end below `trained` (they start near 0.69 on xor-conflict, 0.47–0.56 on
 * sinusoid-phases): the comparison is not between two initial states. */
async function trainAndCompare(preset, methods, trained) {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=${preset}&arena=${methods.join(',')}&play=false`, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), methods.map(() => ['webgpu', null]));
  s = await step(page, STEPS);
  let worst = 0;
  for (const [i, run] of s.runs.entries()) {
    assert.equal(run.error, null, `${run.method}: ${run.error}`);
    assert.equal(run.steps, STEPS);
    const native = nativePreset(preset, methods[i], STEPS);
    assert.equal(native.error, null);
    const gap = finalLossGap(run, native);
    worst = Math.max(worst, gap);
    assert.ok(gap <= LOSS_TOL,
      `${run.method}: browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}: gap ${gap}`);
    assert.ok(native.final_losses.every((l) => l < trained), `${run.method} trained: ${native.final_losses}`);
  }
  assert.deepEqual(errors, []);
  await page.close();
  return worst;
}

test('gradvac and modo train on WebGPU with their state on the GPU and match the native CPU run', async () => {
  const worst = await trainAndCompare('xor-conflict', ['gradvac', 'modo'], 0.69);
  console.log(`gpu_stateful: largest |GPU − CPU| loss gap after ${STEPS} steps: ${worst.toExponential(2)} (tolerance ${LOSS_TOL})`);
});

test('trimmed-mean and graddrop train on WebGPU from J and match the native CPU run', async () => {
  // sinusoid-phases has three tasks, so trim 1 keeps each coordinate's median.
  const worst = await trainAndCompare('sinusoid-phases', ['trimmed-mean:trim_number=1', 'graddrop'], 0.2);
  console.log(`gpu_stateful: trimmed-mean / graddrop largest |GPU − CPU| loss gap after ${STEPS} steps: ${worst.toExponential(2)} (tolerance ${LOSS_TOL})`);
});
