// TF Playground's trunk controls on the page: a feature toggle changes the model's input
// dimension, L2 leaves a smaller weight norm than the same run without it (and trains on the
// CPU with the reason shown), the URL round-trips, `_hide` hides a control, discretize changes
// the heatmap. One short page session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const heatmap = (page) => page.evaluate(() =>
  document.querySelector('canvas[aria-label="Per-task outputs of every method"]').toDataURL());

test('features, L2, discretize, URL keys and _hide flags', async () => {
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

  // L2 at rate 0.3: same data, init and batches, smaller ‖w‖; the GPU has no kernel for it.
  await page.selectOption('#regularization-select', 'L2');
  await page.selectOption('#reg-rate-select', '0.3');
  await page.waitForFunction(() => /regularizationRate=0\.3/.test(location.hash) && window.concord.ready,
    null, { timeout: 30_000 });
  s = await page.evaluate(() => window.concord.reset());
  assert.equal(s.steps, 0);
  s = await page.evaluate(() => window.concord.step(40));
  assert.equal(s.runs[0].inputDim, 3);
  assert.equal(s.runs[0].backend, 'cpu');
  assert.match(s.runs[0].backendReason ?? '', /regularization 'L2' has no GPU kernel yet/);
  assert.ok(s.runs[0].weightNorm < 0.9 * plainNorm, `L2 ‖w‖ ${s.runs[0].weightNorm} vs ${plainNorm}`);

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
