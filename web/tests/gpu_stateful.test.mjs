// Stateful aggregators on WebGPU (SwiftShader): GradVac and MoDo keep their state (cosine
// targets, λ) in a GPU buffer across the steps of the browser's GpuTrainer, and the run matches
// the native CPU trainer (`concord train --preset xor-conflict --method … --backend cpu --json`).
// Until this page build they fell back to the CPU ("no GPU kernel").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

function nativePreset(preset, method, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--preset', preset, '--method', method, '--backend', 'cpu', '--steps', String(steps), '--json'];
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

// As gpu_arena.test.mjs: f32 on the GPU against f64 on the CPU after STEPS steps, absolute gap
// on losses of about 0.3–0.7. Measured with SwiftShader (Chromium headless): 1.0e-7
// (train_parity_stateful.rs: relative ≤ 2e-6 on lavapipe).
const STEPS = 100;
const LOSS_TOL = 1e-5;

test('gradvac and modo train on WebGPU with their state on the GPU and match the native CPU run', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=gradvac,modo&play=false`, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu', `expected WebGPU, page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => [r.backend, r.backendReason]), [['webgpu', null], ['webgpu', null]]);
  s = await step(page, STEPS);
  let worst = 0;
  for (const run of s.runs) {
    assert.equal(run.error, null, `${run.method}: ${run.error}`);
    assert.equal(run.steps, STEPS);
    const native = nativePreset('xor-conflict', run.aggregator, STEPS);
    assert.equal(native.error, null);
    const pairs = [...run.trainLosses.map((l, t) => [l, native.final_losses[t]]),
      ...run.testLosses.map((l, t) => [l, native.test_losses[t]])];
    const gap = Math.max(...pairs.map(([a, b]) => Math.abs(a - b)));
    worst = Math.max(worst, gap);
    assert.ok(gap <= LOSS_TOL,
      `${run.method}: browser GPU ${JSON.stringify([run.trainLosses, run.testLosses])} vs native CPU ${JSON.stringify([native.final_losses, native.test_losses])}: gap ${gap}`);
    assert.ok(native.final_losses.every((l) => l < 0.69), `${run.method} trained: ${native.final_losses}`);
  }
  console.log(`gpu_stateful: largest |GPU − CPU| loss gap after ${STEPS} steps: ${worst.toExponential(2)} (tolerance ${LOSS_TOL})`);
  assert.deepEqual(errors, []);
  await page.close();
});
