// The GPU trainer's host-weighting hybrid on WebGPU (SwiftShader): Nash-MTL and FairGrad have no
// WGSL kernel, so each step's G and losses are read back, the weights come from concord-core's
// own aggregator (one instance across the run, in wasm), and w goes back up for the combine and
// the optimizer on the GPU. The read-back future drives the queued steps one at a time (the
// browser never blocks). Each run matches the native CPU trainer (`concord train --preset …
// --method … --backend cpu --json`), and the readout says where the weights come from. Until
// this page build these runs fell back to the CPU ("no GPU kernel").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, pageState as state, pageStep as step, nativePreset, finalLossGap, ARTIFACTS } from './helpers.mjs';

const ctx = siteAndBrowser();

// As gpu_stateful.test.mjs: f32 on the GPU against f64 on the CPU after STEPS steps, absolute
// gap on the final losses (about 0.3–0.7 on xor-conflict). train_parity_host.rs measures these
// two at ≤ 3.1e-6 relative over 200 steps on lavapipe.
const STEPS = 60;
const LOSS_TOL = 1e-5;

// The page's runs of `methods` on WebGPU, each against the native CPU run after STEPS steps;
// `trained`: each native run's final losses are below ln 2 (it learnt something).
async function hybridRuns(methods, trained, shot) {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=${methods.join(',')}&play=false`, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), methods.map(() => ['webgpu', null]));
  assert.match(s.backendText, /weights on the CPU/, s.backendText);
  s = await step(page, STEPS);
  let worst = 0;
  for (const [i, run] of s.runs.entries()) {
    assert.equal(run.error, null, `${run.method}: ${run.error}`);
    assert.equal(run.steps, STEPS);
    const native = nativePreset('xor-conflict', methods[i], STEPS);
    assert.equal(native.error, null);
    const gap = finalLossGap(run, native);
    worst = Math.max(worst, gap);
    assert.ok(gap <= LOSS_TOL,
      `${run.method}: browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}: gap ${gap}`);
    if (trained) assert.ok(native.final_losses.every((l) => l < 0.69), `${run.method} trained: ${native.final_losses}`);
  }
  assert.deepEqual(errors, []);
  if (shot) await page.screenshot({ path: `${ARTIFACTS}/${shot}.png` });
  await page.close();
  console.log(`gpu_hybrid: ${methods.join(', ')}: largest |GPU − CPU| loss gap after ${STEPS} steps: ${worst.toExponential(2)} (tolerance ${LOSS_TOL})`);
}

test('nash-mtl and fairgrad train on WebGPU with weights from the CPU and match the native CPU run', async () => {
  await hybridRuns(['nash-mtl', 'fairgrad:alpha=1'], true, 'gpu_hybrid');
});

// J read back instead of G (ExcessMTL's w from J elementwise; MoCo's and DB-MTL's update d from
// their tracked state, uploaded itself). Until this page build these runs fell back to the CPU.
test('excess-mtl, moco and db-mtl train on WebGPU with J read back and match the native CPU run', async () => {
  await hybridRuns(['excess-mtl', 'moco', 'db-mtl'], false, null);
});
