// TF Playground's trunk controls on the page: a feature toggle changes the model's input
// dimension, L2 trains on WebGPU (concord-gpu's penalty kernel), leaves a smaller weight norm
// than the same run without it and matches the native CPU replay of the exported run (`concord
// train --config … --run 0 --out …`; final train and test losses within 1e-5 absolute, as
// gpu_arena.test.mjs), the URL round-trips, `_hide` hides a control, discretize changes the
// heatmap. One short page session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { siteAndBrowser, openPage, artifactPath, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const heatmap = (page) => page.evaluate(() =>
  document.querySelector('canvas[aria-label="Per-task outputs of every method"]').toDataURL());

test('features, L2, discretize, URL keys and _hide flags', async () => {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const errors = [];
  const base = `${ctx.server.url}#preset=xor-conflict&arena=mean&play=false&sinY_hide=true`;
  const page = await openPage(ctx.browser, base, errors);
  let s = await state(page);
  assert.equal(s.runs[0].inputDim, 2, 'x₁, x₂ by default');
  assert.equal(await page.isVisible('#feature-sinY'), false, 'sinY_hide hides its toggle');
  assert.equal(await page.isVisible('#feature-xSquared'), true);

  // A feature toggle through the UI: the model now reads three inputs.
  await page.check('#feature-xSquared');
  await page.waitForFunction(() => window.concord.ready && window.concord.state().runs[0]?.inputDim === 3,
    null, { timeout: 30_000 });
  assert.match(await page.textContent('[data-testid=input-dim]'), /^3$/);
  assert.match(await page.evaluate(() => location.hash), /xSquared=true/);
  const plain = await page.evaluate(() => window.concord.step(40));
  const plainNorm = plain.runs[0].weightNorm;
  assert.ok(plainNorm > 0);

  // L2 at rate 0.3: same data, init and batches, smaller ‖w‖, on WebGPU as the plain run.
  await page.selectOption('#regularization-select', 'L2');
  await page.selectOption('#reg-rate-select', '0.3');
  await page.waitForFunction(() => /regularizationRate=0\.3/.test(location.hash) && window.concord.ready,
    null, { timeout: 30_000 });
  s = await page.evaluate(() => window.concord.reset());
  assert.equal(s.steps, 0);
  s = await page.evaluate(() => window.concord.step(40));
  assert.equal(s.runs[0].inputDim, 3);
  assert.equal(s.runs[0].backend, 'webgpu', `L2 run: ${s.runs[0].backendReason} / ${s.backendText}`);
  assert.equal(plain.runs[0].backend, 'webgpu');
  assert.ok(s.runs[0].weightNorm < 0.9 * plainNorm, `L2 ‖w‖ ${s.runs[0].weightNorm} vs ${plainNorm}`);
  // The native CPU replay of the exported run (f64 reference where the page's GPU ran f32).
  const path = await artifactPath('tf-controls-l2.json');
  await writeFile(path, await page.evaluate(() => window.concord.exportRun()));
  const run = JSON.parse(await readFile(path, 'utf8')).runs[0];
  assert.equal(run.backend, 'webgpu');
  assert.deepEqual(run.record.config.regularization, { penalty: 'L2', rate: 0.3 });
  const out = await artifactPath('tf-controls-l2-native.json');
  execFileSync(CLI, ['train', '--config', path, '--run', '0', '--out', out], { encoding: 'utf8' });
  const native = JSON.parse(await readFile(out, 'utf8'));
  assert.equal(native.steps_done, run.record.steps_done);
  let worst = 0;
  const pairs = [[run.record.final_train_losses, native.final_train_losses]];
  if (native.final_test_losses) pairs.push([run.record.final_test_losses, native.final_test_losses]);
  for (const [x, y] of pairs) x.forEach((v, t) => { worst = Math.max(worst, Math.abs(v - y[t])); });
  console.log(`tf_controls: L2 on WebGPU vs the native replay: largest loss gap ${worst}`);
  assert.ok(worst <= 1e-5, `L2 page vs native: ${worst}`);

  // Discretize: the heatmap redraws with sign(output).
  const before = await heatmap(page);
  await page.check('#discretize');
  await page.waitForFunction((b) =>
    document.querySelector('canvas[aria-label="Per-task outputs of every method"]').toDataURL() !== b,
  before, { timeout: 20_000 });
  assert.match(await page.evaluate(() => location.hash), /discretize=true/);
  await page.locator('[data-panel=trunk]').screenshot({ path: await artifactPath('tf-controls.png') });

  // The URL round-trips: a fresh page from this hash has the same settings and run.
  const hash = await page.evaluate(() => location.hash);
  const again = await openPage(ctx.browser, `${ctx.server.url}${hash}`, errors);
  s = await state(again);
  assert.equal(await again.evaluate(() => location.hash), hash);
  assert.equal(s.runs[0].inputDim, 3);
  assert.deepEqual(s.runs[0].features, ['x', 'y', 'xSquared']);
  assert.equal(await again.isChecked('#discretize'), true);
  assert.equal(await again.inputValue('#regularization-select'), 'L2');
  // TF's names: showTestData=false and its _hide flag.
  const tf = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean&play=false&showTestData=false&discretize_hide=true&regularizationRate_hide=true`, errors);
  assert.equal(await tf.isChecked('#show-test'), false);
  assert.equal(await tf.isVisible('#discretize'), false);
  assert.equal(await tf.isVisible('#reg-rate-select'), false);
  assert.deepEqual(errors, []);
  await Promise.all([page.close(), again.close(), tf.close()]);
});
