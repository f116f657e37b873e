// The multi-task playground as a user drives it: the arena trains several methods at once,
// UI changes of method, dataset and learning rate change the run, URL state restores exactly,
// CSV upload (and its errors), export → import, a PNG of a panel, and one screenshot per preset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { siteAndBrowser, openPage, artifactPath, settledSteps } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

/** The hash as a key → value map. */
const hashMap = (hash) =>
  Object.fromEntries(hash.replace(/^#/, '').split('&').filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    return [p.slice(0, i), p.slice(i + 1)].map(decodeURIComponent);
  }));

test('the arena trains four methods at once from the same initial weights, without console errors', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&play=false`, errors);
  let s = await state(page);
  assert.equal(s.mode, 'multitask');
  // WebGPU by default (SwiftShader here): every one of these aggregators runs on the GPU trainer.
  assert.equal(s.backend, 'webgpu', `page says: ${s.reason} / ${s.backendText}`);
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu', 'webgpu', 'webgpu']);
  assert.deepEqual(s.runs.map((r) => r.aggregator), ['mean', 'pcgrad', 'mgda', 'cagrad']);
  assert.ok(s.runs.every((r) => r.error === null && r.steps === 0));
  // Same seed, same data, same init: every run starts from identical weights and losses.
  for (const r of s.runs) {
    assert.deepEqual(r.paramsHead, s.runs[0].paramsHead);
    assert.deepEqual(r.trainLosses, s.runs[0].trainLosses);
  }
  const start = s.runs[0].trainLosses;
  s = await step(page, 40);
  assert.equal(s.steps, 40);
  assert.ok(s.runs.every((r) => r.steps === 40 && r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  assert.ok(s.runs.every((r) => r.trainLosses.some((l, t) => l !== start[t])), 'every run moved');
  const finals = new Set(s.runs.map((r) => r.paramsSum));
  assert.ok(finals.size >= 3, `the methods train differently: ${[...finals]}`);
  // XOR vs 90 % flipped XOR: the task gradients start opposed.
  assert.ok(s.runs[0].cosine[0][1] < 0, `cos(g1, g2) = ${s.runs[0].cosine[0][1]}`);
  // Playing advances the runs; pausing stops them.
  await page.click('button[aria-label="Play"]');
  await page.waitForFunction(() => window.concord.state().steps > 45, null, { timeout: 20_000 });
  await page.click('button[aria-label="Pause"]');
  const paused = await settledSteps(page);
  await page.waitForTimeout(500);
  assert.equal((await state(page)).steps, paused, 'pause stops the arena');
  assert.match(await page.textContent('[data-testid=backend]'), /^WebGPU · /);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the arena trains two methods at once', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=circle-vs-gauss&arena=mean,mgda&play=false`, errors);
  const s = await step(page, 30);
  assert.equal(s.runs.length, 2);
  assert.deepEqual(s.runs.map((r) => [r.aggregator, r.steps]), [['mean', 30], ['mgda', 30]]);
  assert.notEqual(s.runs[0].paramsSum, s.runs[1].paramsSum, 'Mean and MGDA take different steps');
  assert.ok(s.runs.every((r) => r.curvePoints >= 7), 'loss curves sampled every 5 steps');
  assert.deepEqual(errors, []);
  await page.close();
});

test('changing the method, the dataset and the learning rate through the UI changes the run', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,pcgrad&play=false`, errors);
  const mean = (await step(page, 20)).runs[0];

  // Method: slot 1 becomes MGDA; the arena restarts from step 0 and trains differently.
  await page.selectOption('#arena-1-aggregator', 'mgda');
  await page.waitForFunction(() => window.concord.state().runs[0].aggregator === 'mgda');
  let s = await state(page);
  assert.equal(s.steps, 0, 'a new method restarts the arena');
  assert.match(await page.evaluate(() => location.hash), /arena=mgda,pcgrad/);
  s = await step(page, 20);
  assert.notEqual(s.runs[0].paramsSum, mean.paramsSum, 'MGDA moved the weights differently from Mean');

  // Dataset: task 1 becomes the circle; the task list and the losses change.
  const before = s.runs[0].trainLosses;
  await page.selectOption('#task-1-dataset', 'circle');
  await page.waitForFunction(() => window.concord.state().tasks[0].includes('circle'));
  s = await state(page);
  assert.equal(s.steps, 0);
  assert.notDeepEqual(s.runs[0].trainLosses, before);
  assert.match(await page.evaluate(() => location.hash), /tasks=circle,xor/);

  // Learning rate: applied live, no reset; the next steps use it.
  s = await step(page, 10);
  const atTen = s.runs.map((r) => r.paramsSum);
  await page.selectOption('#lr-select', '0.1');
  await page.waitForFunction(() => window.concord.state().lr === 0.1);
  s = await state(page);
  assert.equal(s.steps, 10, 'the learning rate does not reset the arena');
  assert.deepEqual(s.runs.map((r) => r.paramsSum), atTen, 'weights kept');
  s = await step(page, 5);
  assert.equal(s.steps, 15);
  assert.match(await page.evaluate(() => location.hash), /lr=0\.1/);

  // Regenerate: a new seed, so new data and new initial weights, from step 0.
  const seed = s.seed;
  const weights = (await state(page)).runs[0].paramsHead;
  await page.click('#regenerate');
  await page.waitForFunction((old) => window.concord.state().seed !== old, seed);
  s = await state(page);
  assert.equal(s.steps, 0);
  assert.notDeepEqual(s.runs[0].paramsHead, weights);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the preset select switches between the arena and the WebGPU toy, resetting the settings', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&lr=0.3&play=false`, errors);
  await page.selectOption('#preset-select', 'cagrad-toy');
  await page.waitForFunction(() => window.concord.state().mode === 'toy' && window.concord.state().runs.length === 12);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu');
  assert.equal(s.lr, 0.001, 'the toy preset brings its own learning rate');
  assert.equal((await step(page, 100)).steps, 100);
  await page.selectOption('#preset-select', 'sinusoid-phases');
  await page.waitForFunction(() => window.concord.state().mode === 'multitask');
  s = await state(page);
  assert.equal(s.preset, 'sinusoid-phases');
  assert.equal(s.tasks.length, 3);
  assert.equal(s.steps, 0);
  assert.match(await page.evaluate(() => location.hash), /preset=sinusoid-phases/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the conflict knob sets the initial conflict between the two XOR tasks', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean&play=false`, errors);
  // Tied heads: the tasks differ only by the labels κ flips. κ = −0.8 flips 90 % of task 2.
  let s = await step(page, 1);
  const opposed = s.runs[0].cosine[0][1];
  assert.ok(opposed < -0.5, `κ = −0.8: cos(g1, g2) = ${opposed}`);
  // Move the slider to κ = 1 (no flip): two identical tasks, identical gradients.
  await page.$eval('#conflict-range', (el) => { el.value = '1'; el.dispatchEvent(new Event('change', { bubbles: true })); });
  await page.waitForFunction(() => /conflict=1(&|$)/.test(location.hash));
  s = await step(page, 1);
  assert.ok(Math.abs(s.runs[0].cosine[0][1] - 1) < 1e-9, `κ = 1: cos(g1, g2) = ${s.runs[0].cosine[0][1]}`);
  assert.deepEqual(s.runs[0].trainLosses[0], s.runs[0].trainLosses[1], 'identical tasks, identical losses');
  assert.deepEqual(errors, []);
  await page.close();
});

test('every control has a label and the main ones are reachable with Tab', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&play=false`, errors);
  const unlabelled = await page.$$eval('input, select, button', (els) => els
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, [], 'controls without a label');
  const reached = new Set();
  await page.click('h1');
  for (let i = 0; i < 120; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute('aria-label') || ''));
  }
  for (const id of ['Play', 'Step', 'Reset', 'preset-select', 'task-1-dataset', 'conflict-range', 'csv-upload', 'activation-select',
    'arena-1-aggregator', 'arena-1-params', 'lr-select', 'copy-link', 'export-run', 'import-run', 'layer-toggle']) {
    assert.ok(reached.has(id), `Tab reaches ${id}`);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test('a URL with settings restores them exactly; a garbage URL shows a notice', async () => {
  const errors = [];
  const settings = {
    preset: 'circle-vs-gauss', tasks: 'circle,gauss,spiral', inputs: 'uniform', points: '300', noise: '10',
    trainRatio: '70', conflict: '0.4', conflictTask: '3', seed: '42', hidden: '5,4,3', activation: 'relu',
    losses: 'bce,mse,bce', tiedHeads: 'false', batch: '20', arena: 'mean,cagrad:c=0.3,upgrad+uw',
    optimizer: 'sgd', lr: '0.03', spf: '3', play: 'false', layers: 'true', showTest: 'false',
  };
  const query = Object.entries(settings).map(([k, v]) => `${k}=${v}`).join('&');
  let page = await openPage(ctx.browser, `${ctx.server.url}#${query}`, errors);
  assert.equal(await page.isVisible('[data-testid=notices]'), false, 'a clean URL gives no notice');
  const written = hashMap(await page.evaluate(() => location.hash));
  for (const [k, v] of Object.entries(settings)) assert.equal(written[k], v, `hash key ${k}`);
  const s = await state(page);
  assert.equal(s.preset, 'circle-vs-gauss');
  assert.equal(s.seed, 42);
  assert.equal(s.lr, 0.03);
  assert.equal(s.optimizer, 'sgd');
  assert.equal(s.tasks.length, 3);
  assert.deepEqual(s.runs.map((r) => r.method), ['mean', 'cagrad:c=0.3', 'upgrad+uw']);
  // The controls show the restored values.
  assert.equal(await page.inputValue('#activation-select'), 'relu');
  assert.equal(await page.inputValue('#seed-input'), '42');
  assert.equal(await page.inputValue('#task-3-dataset'), 'spiral');
  assert.equal(await page.inputValue('#task-2-loss'), 'mse');
  assert.deepEqual(await Promise.all([1, 2, 3].map((l) => page.inputValue(`#layer-${l}-width`))), ['5', '4', '3']);
  assert.equal(await page.inputValue('#arena-2-params'), 'c=0.3');
  assert.equal(await page.inputValue('#arena-3-weighting'), 'uw');
  assert.equal(await page.isChecked('#layer-toggle'), true);
  assert.equal(await page.isChecked('#show-test'), false);
  await page.close();

  page = await openPage(ctx.browser, `${ctx.server.url}#preset=banana&tasks=xor&hidden=a,b&lr=NaN&arena=foo&noise=999&zzz=1&play=false&curves_hide=true&data_hide=true`, errors);
  assert.equal(await page.isVisible('[data-panel=curves]'), false, 'curves_hide hides the loss curves');
  assert.equal(await page.isVisible('#task-1-dataset'), false, 'data_hide hides the data panel');
  assert.equal(await page.isVisible('[data-panel=cosine]'), true);
  const notices = await page.textContent('[data-testid=notices]');
  for (const bad of ['preset=banana', 'tasks=xor', 'hidden=a,b', 'lr=NaN', 'arena=foo', 'noise=999', 'zzz']) {
    assert.ok(notices.includes(bad), `the notice names ${bad}: ${notices}`);
  }
  const g = await state(page);
  assert.equal(g.mode, 'multitask', 'the defaults are used instead');
  assert.equal(g.runs.length, 4);
  assert.equal((await step(page, 3)).steps, 3, 'the page still trains');
  await page.screenshot({ path: await artifactPath('arena-bad-url.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a CSV upload trains on the file; a bad CSV shows the parser error', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,upgrad&play=false`, errors);
  // Two tasks on a 10 × 10 grid: the sign of x1 and the sign of x2.
  const rows = ['x1,x2,left,top'];
  for (let i = 0; i < 10; i++) for (let j = 0; j < 10; j++) {
    const x = i - 4.5; const y = j - 4.5;
    rows.push(`${x},${y},${x < 0 ? 1 : -1},${y > 0 ? 1 : -1}`);
  }
  await page.setInputFiles('#csv-upload', { name: 'quadrants.csv', mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n')) });
  await page.waitForFunction(() => window.concord.state().csv === 'quadrants.csv', null, { timeout: 10_000 });
  let s = await state(page);
  assert.deepEqual(s.tasks, ['left', 'top']);
  assert.match(await page.textContent('[data-testid=csv-status]'), /quadrants\.csv: 100 points, 2 tasks/);
  assert.match(await page.textContent('[data-testid=csv-card]'), /quadrants\.csv/, 'the card says the data are yours');
  assert.equal(await page.isVisible('[data-testid=preset-card]'), false);
  s = await step(page, 30);
  assert.ok(s.runs.every((r) => r.steps === 30 && r.error === null));
  assert.ok(s.runs[0].trainLosses.every((l) => l < Math.log(2)), `learning the quadrants: ${s.runs[0].trainLosses}`);
  await page.screenshot({ path: await artifactPath('arena-csv.png'), fullPage: true });

  await page.setInputFiles('#csv-upload', { name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('x1,x2,a\n1,2,1\n3,oops,1\n') });
  await page.waitForSelector('[data-testid=io-error]:not(.hidden)');
  const err = await page.textContent('[data-testid=io-error]');
  assert.match(err, /bad\.csv: line 3, column 2/);
  assert.equal((await state(page)).csv, 'quadrants.csv', 'the good data stays in use');
  // A file over the size limit is refused from File.size, before it is read.
  const big = Buffer.alloc(33 * 1024 * 1024, ' ');
  await page.setInputFiles('#csv-upload', { name: 'big.csv', mimeType: 'text/csv', buffer: big });
  await page.waitForFunction(() => /big\.csv/.test(document.querySelector('[data-testid=io-error]').textContent));
  assert.match(await page.textContent('[data-testid=io-error]'), /big\.csv: the file is 33\.0 MB; a CSV file may be at most 32\.0 MB \(not read\)/);
  assert.equal((await state(page)).csv, 'quadrants.csv', 'the good data stays in use');
  await page.click('#csv-clear');
  await page.waitForFunction(() => window.concord.state().csv === null);
  assert.deepEqual(errors, []);
  await page.close();
});

test('export then import reproduces the run; a panel downloads as PNG', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,cagrad:c=0.3&seed=5&play=false`, errors);
  const saved = await step(page, 25);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-run')]);
  assert.equal(download.suggestedFilename(), 'concord-run.json');
  const json = await readFile(await download.path(), 'utf8');
  const file = JSON.parse(json);
  assert.equal(file.runs.length, 2);
  assert.equal(file.runs[0].record.history.length, 25, 'the metrics history travels with the weights');

  // Change the run, then import the file.
  await page.fill('#seed-input', '9');
  await page.locator('#seed-input').dispatchEvent('change');
  await page.waitForFunction(() => window.concord.state().seed === 9);
  assert.equal((await state(page)).steps, 0);
  await page.setInputFiles('#import-run', { name: 'concord-run.json', mimeType: 'application/json', buffer: Buffer.from(json) });
  await page.waitForFunction(() => window.concord.state().steps === 25, null, { timeout: 10_000 });
  const back = await state(page);
  assert.equal(back.seed, 5);
  for (const [a, b] of back.runs.map((r, i) => [r, saved.runs[i]])) {
    assert.equal(a.method, b.method);
    assert.equal(a.steps, b.steps);
    assert.deepEqual(a.paramsHead, b.paramsHead);
    assert.equal(a.paramsSum, b.paramsSum);
    assert.deepEqual(a.trainLosses, b.trainLosses);
    assert.deepEqual(a.cosine, b.cosine);
    assert.equal(a.curvePoints, b.curvePoints);
  }
  assert.match(await page.evaluate(() => location.hash), /seed=5/);
  // A broken file is refused with a message and changes nothing.
  assert.match(await page.evaluate(() => window.concord.importRun('{"format":"nope"}')), /not a Concord run file|unsupported/);
  assert.equal((await state(page)).steps, 25);
  await page.setInputFiles('#import-run', { name: 'x.json', mimeType: 'application/json', buffer: Buffer.from('not json') });
  await page.waitForSelector('[data-testid=import-error]:not(.hidden)');
  assert.match(await page.textContent('[data-testid=import-error]'), /not a Concord run file/);
  assert.equal((await state(page)).steps, 25, 'a bad file changes nothing');
  // A run file over the size limit is refused from File.size, before it is read (Playwright takes
  // buffers up to 50 MB only, so the file goes through a path).
  const bigPath = await artifactPath('oversized-run.json');
  await writeFile(bigPath, Buffer.alloc(129 * 1024 * 1024, ' '));
  try {
    await page.setInputFiles('#import-run', bigPath);
    await page.waitForFunction(() => /oversized-run/.test(document.querySelector('[data-testid=import-error]').textContent));
    assert.match(await page.textContent('[data-testid=import-error]'), /the file is 129\.0 MB; a run file may be at most 128\.0 MB \(not read\)/);
  } finally {
    await rm(bigPath, { force: true });
  }
  assert.equal((await state(page)).steps, 25, 'an oversized file changes nothing');

  const [png] = await Promise.all([page.waitForEvent('download'), page.click('button[aria-label="Download the Loss curves per task panel as PNG"]')]);
  assert.equal(png.suggestedFilename(), 'concord-curves.png');
  const bytes = await readFile(await png.path());
  assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG file');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a broken run file is refused and changes nothing; a diverged run (inf/NaN losses) imports back', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=xor-conflict&arena=mean,cagrad:c=0.3&seed=5&play=false`, errors);
  const saved = await step(page, 15);
  const file = JSON.parse(await page.evaluate(() => window.concord.exportRun()));
  const unchanged = async (why) => {
    const s = await state(page);
    assert.equal(s.steps, 15, why);
    assert.equal(s.seed, 5, why);
    assert.equal(s.csv, null, why);
    assert.deepEqual(s.runs.map((r) => [r.steps, r.paramsSum, r.error]), saved.runs.map((r) => [r.steps, r.paramsSum, r.error]), why);
    assert.match(await page.evaluate(() => location.hash), /seed=5/, why);
  };

  // An inconsistent dataset (a label column shorter than the points): the old importer split it
  // and indexed past the column — a panic, which kills the tab in the release build.
  const broken = structuredClone(file);
  broken.csv = { name: 'broken.csv', data: { task_names: ['a', 'b'], kinds: ['binary', 'binary'],
    points: [[0, 0], [1, 1], [2, 0], [0, 2]], labels: [[1, -1, 1, -1], [1, -1]], n_train: 4 } };
  await page.setInputFiles('#import-run', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(broken)) });
  await page.waitForSelector('[data-testid=import-error]:not(.hidden)');
  assert.match(await page.textContent('[data-testid=import-error]'), /the file's CSV data: task 1 \('b'\) has 2 labels for 4 points/);
  await unchanged('an inconsistent dataset changes nothing');

  // Other settings and a record that does not fit them: the old importer applied the settings and
  // rebuilt the runs before the restore failed (half-applied). Now nothing changes.
  const half = structuredClone(file);
  half.hash = half.hash.replace('seed=5', 'seed=9');
  half.runs[1].record.params.pop();
  assert.equal(await page.evaluate((t) => window.concord.importRun(t), JSON.stringify(half)).then((e) => /parameters, this model has/.test(e)), true);
  await unchanged('a record that does not fit changes nothing');
  // The page lives on: it still trains.
  assert.equal((await step(page, 5)).steps, 20);

  // A diverged run: its non-finite losses are written "inf"/"nan" and import back.
  const diverged = structuredClone(file);
  diverged.runs[1].record.final_train_losses = ['inf', 'nan'];
  diverged.runs[1].curve.at(-1).train = ['inf', 2.5];
  diverged.runs[1].error = 'step 15: a task loss is not finite ([inf, NaN]); the run stopped';
  assert.equal(await page.evaluate((t) => window.concord.importRun(t), JSON.stringify(diverged)), null);
  const back = await state(page);
  assert.equal(back.steps, 15);
  assert.equal(back.runs[1].error, diverged.runs[1].error);
  assert.equal(back.runs[0].paramsSum, saved.runs[0].paramsSum);
  assert.deepEqual(back.runs[1].trainLosses, [null, null], 'state() writes ±inf/NaN as null');
  const again = await page.evaluate(() => window.concord.exportRun());
  assert.match(again, /"final_train_losses":\["inf","nan"\]/);
  assert.equal(await page.evaluate((t) => window.concord.importRun(t), again), null, 'the exported diverged run imports again');
  // The upload control shows no error for it.
  await page.setInputFiles('#import-run', { name: 'diverged.json', mimeType: 'application/json', buffer: Buffer.from(again) });
  await page.waitForFunction(() => document.querySelector('[data-testid=import-error]').classList.contains('hidden'));
  assert.deepEqual(errors, []);
  await page.close();
});

// Enough steps to train every run on WebGPU (SwiftShader on CI: ~0.2 s a step for four MLP runs)
// and draw every panel; the toys' trajectories against the native runs are toy.test.mjs's.
const PRESETS = {
  'xor-conflict': 100, 'circle-vs-gauss': 100, 'gradnorm-scales': 100, 'sinusoid-phases': 100,
  'pareto-synthetic': 300, 'cagrad-toy': 2_000, 'cagrad-toy-scaled': 2_000,
};

for (const [preset, steps] of Object.entries(PRESETS)) {
  test(`preset ${preset}: trains, explains itself, screenshot saved`, async () => {
    const errors = [];
    const page = await openPage(ctx.browser, `${ctx.server.url}#preset=${preset}&play=false`, errors);
    const s = await step(page, steps);
    assert.equal(s.steps, steps);
    if (s.mode === 'multitask') {
      assert.ok(s.runs.every((r) => r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
    }
    assert.equal(await page.inputValue('#preset-select'), preset);
    assert.ok((await page.textContent('[data-testid=preset-card]')).includes('What to look for'));
    await page.waitForTimeout(300);
    await page.screenshot({ path: await artifactPath(`preset-${preset}.png`), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });
}
