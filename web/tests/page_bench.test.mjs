// The page's trainer benchmark hook, window.concord.benchTrain (bench/page_steps.mjs times the
// page's wasm CPU trainer with it): it trains the same run as the native CLI — the preset's
// Trainer with the given method, warm-up + timed steps — and reports a step rate and the final
// whole-train-set losses; bad arguments give {error} and leave the page working. No timing is
// asserted here (the benchmark measures speed; a test only checks that the hook measures the
// right thing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, openPage, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const PRESET = 'xor-conflict';
const WARMUP = 50;
const STEPS = 150;
// |page − native| / |native| per task after 200 steps. The page runs the same Rust code compiled
// to wasm; what may differ is libm (exp/tanh/ln in wasm's compiled-in libm vs the system's) and,
// on the f32 fast path, the order of the vectorised sums (SIMD128 vs AVX): rounding-level
// differences that 200 Adam steps keep far below this bound. A run of a different length (the
// warm-up dropped: 150 steps) is checked to miss it, so the bound tells runs apart.
const REL_TOL = 1e-4;

const native = (method, steps) =>
  JSON.parse(execFileSync(CLI, ['train', '--preset', PRESET, '--method', method, '--steps', String(steps), '--json'], { encoding: 'utf8' }));
const relGap = (a, b) => Math.max(...a.map((x, t) => Math.abs(x - b[t]) / Math.abs(b[t])));

test('benchTrain: the page’s wasm trainer ends at the native CLI’s losses and reports a step rate', async (t) => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=${PRESET}&play=false`, errors);
  for (const method of ['mean', 'upgrad']) {
    const r = await page.evaluate(([p, m, s, w]) => window.concord.benchTrain(p, m, s, w), [PRESET, method, STEPS, WARMUP]);
    assert.equal(r.error, undefined, `benchTrain error: ${r.error}`);
    assert.equal(r.preset, PRESET);
    assert.equal(r.method, method);
    assert.equal(r.steps, STEPS);
    assert.equal(r.warmup, WARMUP);
    assert.ok(['f32', 'f64'].includes(r.precision), r.precision);
    assert.ok(Number.isFinite(r.seconds) && r.seconds >= 0, `seconds ${r.seconds}`);
    assert.ok(r.stepsPerSecond > 0, `stepsPerSecond ${r.stepsPerSecond}`);
    const ref = native(method, WARMUP + STEPS);
    assert.equal(ref.steps, WARMUP + STEPS);
    assert.equal(r.trainLosses.length, ref.final_losses.length);
    const gap = relGap(r.trainLosses, ref.final_losses);
    t.diagnostic(`${method} (${r.precision}): page ${JSON.stringify(r.trainLosses)} vs native ${JSON.stringify(ref.final_losses)}: relative gap ${gap.toExponential(2)}`);
    assert.ok(gap <= REL_TOL, `${method}: page ${JSON.stringify(r.trainLosses)} vs native ${JSON.stringify(ref.final_losses)}: gap ${gap}`);
    assert.ok(ref.final_losses.every((l) => l < Math.log(2)), `${method} trained: ${ref.final_losses}`);
    // The bound tells runs apart: 50 steps fewer is far outside it.
    const shorter = native(method, STEPS);
    assert.ok(relGap(r.trainLosses, shorter.final_losses) > 100 * REL_TOL, `a 150-step run is distinguishable: ${shorter.final_losses}`);
  }
  // Precision picks the arithmetic (the reference path on request).
  const f64 = await page.evaluate(([p]) => window.concord.benchTrain(p, 'mean', 5, 0, 'f64'), [PRESET]);
  assert.equal(f64.error, undefined, `benchTrain f64 error: ${f64.error}`);
  assert.equal(f64.precision, 'f64');
  // Bad arguments: a message, no panic (a release wasm would abort), the page goes on.
  const bad = await page.evaluate(() => [
    window.concord.benchTrain('no-such-preset', 'mean', 10, 0),
    window.concord.benchTrain('xor-conflict', 'no-such-method', 10, 0),
    window.concord.benchTrain('xor-conflict', 'mean', 0, 0),
    window.concord.benchTrain('xor-conflict', 'mean', 10, -1),
    window.concord.benchTrain('xor-conflict', 'mean', 10, 0, 'f16'),
    window.concord.benchTrain(),
  ]);
  for (const b of bad) assert.equal(typeof b.error, 'string', JSON.stringify(b));
  assert.match(bad[0].error, /no-such-preset/);
  const s = await page.evaluate(() => window.concord.step(5));
  assert.ok(s.runs.every((run) => run.error === null && run.steps === 5), 'the page trains on');
  assert.deepEqual(errors, []);
  await page.close();
});
