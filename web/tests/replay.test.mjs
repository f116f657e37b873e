// A run exported from the page replays headless: `concord train --config FILE --run K` trains
// the exported config natively for the steps the page took and must land on the page's losses.
// The page here has no WebGPU, so every run trains on its CPU engine (wasm), as natively.
//
// Tolerances (relative; measured 2026-12-06, each test prints its largest gap):
// - f64, methods whose weights are closed-form or an exact solve (mean, UPGrad, UW): within
//   1e-12. Not bit-for-bit: the same operations run in the same order, but wasm's libm and the
//   native one round exp/ln differently in the last bit, and nalgebra's products go through
//   matrixmultiply, whose native kernel fuses multiply-adds (FMA) where wasm's does not (seen:
//   5e-17 on xor-conflict after 200 steps, 5e-16 on gradnorm-scales; the toy: bit-for-bit).
// - f64, CAGrad (an interior-point solve, clarabel, that stops at a gap tolerance): its weights
//   differ by ~5e-12 from step 0, as two solves to a tolerance do, and the gaps add up over the
//   steps; within 1e-8 (seen: 9e-10 after 200 steps).
// - f32 (the page's default fast path): within 1e-6 — wasm's sgemm kernel (128-bit, no FMA) and
//   the native one (AVX-512 FMA) add in different orders (seen: 2e-7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

const ctx = siteAndBrowser({ webgpu: false });

/** Train `steps` on the page at `hash`, export, and replay every run natively. */
async function exportAndReplay(name, hash, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#${hash}&play=false`, errors);
  const s = await page.evaluate((n) => window.concord.step(n), steps);
  assert.equal(s.backend, 'cpu');
  assert.ok(s.runs.every((r) => r.steps === steps && r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  const text = await page.evaluate(() => window.concord.exportRun());
  await page.close();
  assert.deepEqual(errors, []);
  const path = await artifactPath(`replay-${name}.json`);
  await writeFile(path, text);
  const file = JSON.parse(text);
  return file.runs.map((run, k) => {
    assert.equal(run.backend, 'cpu', 'the export says where the run trained');
    const out = JSON.parse(execFileSync(CLI, ['train', '--config', path, '--run', String(k), '--json'], { encoding: 'utf8' }));
    return { page: run, out };
  });
}

function gaps(page, out) {
  const pairs = [[page.record.final_train_losses, out.final_losses ?? out.losses]];
  if (page.record.final_test_losses) pairs.push([page.record.final_test_losses, out.test_losses]);
  return pairs.flatMap(([a, b]) => {
    assert.equal(a.length, b.length);
    return a.map((x, i) => ({ abs: Math.abs(x - b[i]), rel: Math.abs(x - b[i]) / Math.max(Math.abs(x), 1e-300) }));
  });
}

test('an f64 run exported from the page replays natively within 1e-12 (CAGrad: 1e-8), every arena run', async () => {
  const runs = await exportAndReplay('f64', 'preset=xor-conflict&arena=mean,upgrad,cagrad:c=0.3&precision=f64', 200);
  assert.equal(runs.length, 3);
  for (const { page, out } of runs) {
    assert.equal(out.steps, 200);
    assert.equal(out.method_spec, page.method);
    assert.equal(out.recorded.steps, 200);
    const worst = Math.max(...gaps(page, out).map((g) => g.rel));
    const tol = page.method.startsWith('cagrad') ? 1e-8 : 1e-12;
    console.log(`f64 ${page.method}: largest relative |page − native| = ${worst.toExponential(2)} (tolerance ${tol})`);
    assert.ok(worst <= tol, `${page.method}: ${worst}`);
    assert.ok(out.recorded.max_abs_diff <= tol, 'the CLI reports the gap');
  }
});

test('a loss-weighted run on another preset replays too (f64), and the f32 fast path within 1e-6', async () => {
  const [weighted] = await exportAndReplay('gradnorm-f64', 'preset=gradnorm-scales&arena=upgrad%2Buw&precision=f64', 60);
  assert.equal(weighted.out.method_spec, 'upgrad+uw');
  // Losses from ~0.5 to ~10⁴ here.
  const worst = Math.max(...gaps(weighted.page, weighted.out).map((g) => g.rel));
  console.log(`f64 upgrad+uw on gradnorm-scales: largest relative |page − native| = ${worst.toExponential(2)}`);
  assert.ok(worst <= 1e-12, `${worst}`);

  const runs = await exportAndReplay('f32', 'preset=xor-conflict&arena=mean,upgrad', 200);
  for (const { page, out } of runs) {
    const worst = Math.max(...gaps(page, out).map((g) => g.rel));
    console.log(`f32 ${page.method}: largest relative |page − native| = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-6, `${page.method}: ${worst}`);
  }
});

test('a sample-weighted run (harmonize, curriculum) chosen on the page replays natively within 1e-12', async () => {
  // A sample-weighting stage always runs the f64 reference, whatever the page's precision.
  const runs = await exportAndReplay('samples', 'preset=conflict-wedge&arena=mean+harmonize,upgrad%2Bcurriculum:start=0.3', 120);
  assert.deepEqual(runs.map((r) => r.page.method), ['mean+harmonize', 'upgrad+curriculum:start=0.3']);
  for (const { page, out } of runs) {
    assert.equal(out.method_spec, page.method);
    const stages = page.record.history.map((h) => h.sample_stage);
    assert.ok(stages.every((s) => s && s.samples === 50), 'every step records its stage on the 50-sample batch');
    assert.ok(stages.some((s) => s.changed > 0), `${page.method}: the stage changed some samples`);
    const worst = Math.max(...gaps(page, out).map((g) => g.rel));
    console.log(`${page.method} (page precision f32 → the f64 reference): largest relative |page − native| = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-12, `${page.method}: ${worst}`);
  }
});

test('a toy run replays from its own start', async () => {
  const runs = await exportAndReplay('toy', 'preset=cagrad-toy&arena=cagrad', 2000);
  assert.equal(runs.length, 3, 'one run per published start');
  for (const { page, out } of runs) {
    assert.deepEqual(out.start, [page.record.config.data.start[0], page.record.config.data.start[1]]);
    assert.equal(out.steps, 2000);
    const worst = Math.max(...out.losses.map((l, i) => Math.abs(l - page.record.final_train_losses[i])));
    assert.ok(worst <= 1e-12, `${JSON.stringify(out.start)}: ${worst}`);
  }
});
