// Training dynamics on WebGPU (issue 18's GPU parity): an arena of a SAM run with clipping,
// warm-up and cosine and a SPAM run (ΔT = 30, with the spike score) trains on concord-gpu's
// GpuTrainer in the browser (SwiftShader), and every recorded step's dynamics record and the
// final losses match the native CPU replay of the exported runs (`concord train --config …
// --run k --out …`, the f64 reference for SAM).
//
// Tolerances (f32 on the GPU against the CPU after 60 steps): lr and resets equal (the host
// works them out in f64 as the CPU does); ‖d‖ and the spike score relative 1e-3, cos(d₀, d)
// absolute 1e-4, the final train and test losses absolute 1e-5 (gpu_arena.test.mjs's). On
// lavapipe natively concord-gpu's tests/dynamics_parity.rs sees ≤ 2e-6 relative on all of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const ARENA = 'mean@sam@clip=1@warmup=20@cosine,mean@spam=30@spikes';
const STEPS = 60;

const rel = (a, b) => Math.abs(a - b) / (Math.abs(a) + 1e-3);

test('SAM + clip + warm-up + cosine and SPAM train on WebGPU and match the native CPU replay', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=${ARENA}&play=false`, errors);
  let s = await page.evaluate(() => window.concord.state());
  assert.equal(s.backend, 'webgpu', `page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu'], JSON.stringify(s.runs.map((r) => r.backendReason)));
  s = await page.evaluate((n) => window.concord.step(n), STEPS);
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  const text = await page.evaluate(() => window.concord.exportRun());
  await page.close();
  assert.deepEqual(errors, []);
  const path = await artifactPath('gpu-dynamics.json');
  await writeFile(path, text);
  const file = JSON.parse(text);
  const worst = { norm: 0, cos: 0, spike: 0, loss: 0 };
  let spikes = 0;
  let resets = 0;
  for (const [k, run] of file.runs.entries()) {
    assert.equal(run.backend, 'webgpu', 'the export says where the run trained');
    const out = await artifactPath(`gpu-dynamics-native-${k}.json`);
    execFileSync(CLI, ['train', '--config', path, '--run', String(k), '--out', out], { encoding: 'utf8' });
    const native = JSON.parse(await readFile(out, 'utf8'));
    // Matched by step: the page and the replay may record on different cadences.
    const cpu = new Map(native.history.map((r) => [r.step, r]));
    const page = run.record.history.filter((r) => cpu.has(r.step));
    assert.ok(page.length >= STEPS / 2, `${page.length} steps recorded on both`);
    for (const p of page) {
      const [a, b] = [p.dynamics, cpu.get(p.step).dynamics];
      assert.ok(a && b, `step ${p.step}: a dynamics record on both`);
      assert.equal(a.lr, b.lr, `step ${p.step}: lr`);
      assert.equal(a.reset ?? false, b.reset ?? false, `step ${p.step}: reset`);
      worst.norm = Math.max(worst.norm, rel(b.grad_norm, a.grad_norm));
      assert.equal(a.sam_cosine === undefined, b.sam_cosine === undefined, `step ${p.step}: SAM cosine`);
      if (b.sam_cosine !== undefined) worst.cos = Math.max(worst.cos, Math.abs(a.sam_cosine - b.sam_cosine));
      assert.equal(a.spike_score === undefined, b.spike_score === undefined, `step ${p.step}: spike score`);
      if (b.spike_score !== undefined) {
        worst.spike = Math.max(worst.spike, rel(b.spike_score, a.spike_score));
        spikes += 1;
      }
      if (b.reset) resets += 1;
    }
    const pairs = [[run.record.final_train_losses, native.final_train_losses]];
    if (native.final_test_losses) pairs.push([run.record.final_test_losses, native.final_test_losses]);
    for (const [x, y] of pairs) x.forEach((v, t) => { worst.loss = Math.max(worst.loss, Math.abs(v - y[t])); });
  }
  console.log(`gpu_dynamics: largest gaps ${JSON.stringify(worst)} (${spikes} spike scores, ${resets} resets)`);
  assert.ok(spikes >= 10 && resets >= 1, `SPAM scored ${spikes} steps and reset ${resets} times`);
  assert.ok(worst.norm <= 1e-3 && worst.spike <= 1e-3, JSON.stringify(worst));
  assert.ok(worst.cos <= 1e-4 && worst.loss <= 1e-5, JSON.stringify(worst));
});
