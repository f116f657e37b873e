// The fifth training-dynamics preset, "merge or train jointly?" (merge-or-joint): the Model
// merging panel merges the arena's two single-task parents and the card's claim is checked on
// the page (seed 0; the card quotes seeds 0–4 measured natively by `cargo run --release -p
// concord-core --example merge_preset`, and concord-core's train/dynamics_presets_tests.rs
// checks the same claim on every seed). The page's merge is checked against its own inputs
// (task arithmetic's trunk is θ₀ + λΣτ, its heads the parents') and against `concord merge`,
// which trains the same parents natively.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const STEPS = 500;

/** `concord merge` of the preset (its parents trained natively), parsed merge.json. */
function nativeMerge(how) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const out = mkdtempSync(join(tmpdir(), 'concord-merge-'));
  execFileSync(CLI, ['merge', '--preset', 'merge-or-joint', '--how', how, '--steps', String(STEPS), '--seed', '0', '--out', out]);
  return JSON.parse(readFileSync(join(out, 'merge.json'), 'utf8'));
}

const relGap = (a, b) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

test('merge or train jointly?: the joint runs beat every merge; the merge is the native one', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=merge-or-joint&play=false`, errors);
  const state = await page.evaluate((k) => window.concord.step(k), STEPS);
  assert.deepEqual(state.runs.map((r) => r.spec), ['mean', 'upgrad', 'constant:weights=1;0', 'constant:weights=0;1']);
  assert.ok(state.runs.every((r) => r.error === null && r.steps === STEPS), JSON.stringify(state.runs.map((r) => r.error)));
  assert.equal(await page.isVisible('[data-panel=merge]'), true, 'the panel shows when the arena has a parent per task');
  await page.click('[data-testid=merge-compute]');
  await page.waitForFunction(
    (n) => { const m = window.concord.merge(); return !m.busy && (m.error || (m.result && m.result.step === n)); },
    STEPS,
    { timeout: 120_000 },
  );
  const { result: r, error, shown } = await page.evaluate(() => window.concord.merge());
  assert.equal(error, null);
  assert.equal(shown, true);
  assert.deepEqual(r.merges.map((m) => [m.method, m.lambda]), [['task-arithmetic', 0.4], ['ties', 1], ['projective', 0.07]]);
  assert.deepEqual(r.joints.map((j) => j.label), state.runs.slice(0, 2).map((s) => s.label));

  // The card's claim: both joint runs below every merge on both tasks; every merge's circle
  // loss above the untrained θ₀'s.
  for (const m of r.merges) {
    for (const j of r.joints) {
      assert.ok(j.losses[0] < m.losses[0] && j.losses[1] < m.losses[1],
        `${j.label} ${JSON.stringify(j.losses)} vs ${m.method} ${JSON.stringify(m.losses)}`);
    }
    assert.ok(m.losses[0] > r.theta0.losses[0], `${m.method} circle ${m.losses[0]} vs θ₀ ${r.theta0.losses[0]}`);
    assert.ok(m.barriers.length === 2 && m.barriers.every((b) => Number.isFinite(b.entezari) && b.entezari >= 0
      && Number.isFinite(b.frankle)), JSON.stringify(m.barriers));
  }

  // Task arithmetic from the page's own inputs: trunk θ₀ + 0.4(τ₁ + τ₂), head t parent t's;
  // it sits on the plane at (0.4, 0.4) with nothing off it.
  const ta = r.merges[0];
  const [p1, p2] = r.parentParams;
  let gap = 0;
  for (let i = 0; i < r.base.length; i++) {
    const want = i < r.sharedLen ? r.base[i] + 0.4 * ((p1[i] - r.base[i]) + (p2[i] - r.base[i])) : null;
    if (want !== null) gap = Math.max(gap, Math.abs(ta.params[i] - want));
  }
  assert.ok(gap < 1e-12, `TA trunk vs θ₀ + λΣτ: ${gap}`);
  const headsFromParents = ta.params.slice(r.sharedLen).every((v, k) => v === p1[r.sharedLen + k] || v === p2[r.sharedLen + k]);
  assert.ok(headsFromParents, 'every head entry is a parent\'s');
  assert.ok(Math.abs(ta.coords[0] - 0.4) < 1e-9 && Math.abs(ta.coords[1] - 0.4) < 1e-9 && ta.offPlane < 1e-9,
    JSON.stringify([ta.coords, ta.offPlane]));
  assert.equal(r.planeTotal.length, r.grid * r.grid);
  assert.ok(r.planeTotal.every(Number.isFinite));

  await page.locator('[data-panel=merge]').scrollIntoViewIfNeeded();
  await page.locator('[data-panel=merge]').screenshot({ path: await artifactPath('preset-merge-or-joint.png') });

  // Native: `concord merge` trains the same parents from the same θ₀ (seed 0, 500 steps, on
  // the CPU in f32). θ₀ is the same seeded draw bit for bit; the trained vectors and losses
  // agree within LOSS_TOL relative (the page's wasm CPU trainer vs the native one).
  const LOSS_TOL = 1e-4;
  for (const [k, how] of ['task-arithmetic', 'ties', 'projective'].entries()) {
    const n = nativeMerge(how);
    assert.deepEqual(r.base, n.params.init, 'θ₀');
    const m = r.merges[k];
    for (let t = 0; t < 2; t++) {
      assert.ok(relGap(m.losses[t], n.merged.train[t]) < LOSS_TOL, `${how} task ${t}: page ${m.losses[t]} native ${n.merged.train[t]}`);
      assert.ok(Math.abs(m.barriers[t].entezari - n.barriers[t].entezari) < LOSS_TOL * Math.max(1, n.barriers[t].entezari),
        `${how} barrier ${t}: page ${m.barriers[t].entezari} native ${n.barriers[t].entezari}`);
      assert.ok(relGap(r.parents[t].losses[t], n.parents[t].losses.train[t]) < LOSS_TOL, `parent ${t}`);
    }
    if (k === 0) {
      assert.ok(r.joints[0].losses.every((l, t) => relGap(l, n.joint.losses.train[t]) < LOSS_TOL),
        `joint mean: page ${r.joints[0].losses} native ${n.joint.losses.train}`);
    }
  }

  assert.deepEqual(errors, []);
  await page.close();
});

test('merge or train jointly?: other presets have no Model merging panel', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=circle-vs-gauss&play=false`, errors);
  await page.evaluate(() => window.concord.step(5));
  assert.equal(await page.isVisible('[data-panel=merge]'), false);
  assert.equal((await page.evaluate(() => window.concord.merge())).shown, false);
  assert.deepEqual(errors, []);
  await page.close();
});
