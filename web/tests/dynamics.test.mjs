// Training dynamics on the page (issue 18): arena runs carry options after their method
// (`mean@sam`, `mean@spam@spikes`, `mean@sequential=20`), read from and written back to the URL,
// edited in the arena's "Training options", trained on WebGPU (SAM, SPAM) or on the CPU (a
// one-task schedule has no GPU kernel), and drawn: task switches and the stability gap on the loss curves, spikes on the loss curves
// and in the "Training dynamics" chart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();
const state = (page) => page.evaluate(() => window.concord.state());
const step = (page, n) => page.evaluate((k) => window.concord.step(k), n);

/** The `arena` value of the page's hash, decoded. */
const arenaOf = (hash) => {
  const pair = hash.replace(/^#/, '').split('&').find((p) => p.startsWith('arena='));
  return pair === undefined ? undefined : decodeURIComponent(pair.slice('arena='.length));
};

/**
 * Reusable by the per-preset claim tests: open the page at `hash` (paused), step every run
 * `steps` steps, and return { page, errors, state, dynamics } where `dynamics` is the
 * Training-dynamics hook's answer for `series` ("spike" | "sam" | "lr" | "norm"): per run
 * {run, spec, colour, backend, steps, points: [[step, value]], switches, spikes, resets,
 * testLosses: [[step, task-1 test loss]], gap: {atSwitch, worst, worstStep, last, gap} | null}.
 * The caller closes the page (and should assert `errors` is empty).
 */
export async function runDynamics(hash, steps, series = 'spike') {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#${hash}${hash.includes('play=') ? '' : '&play=false'}`, errors);
  const s = steps > 0 ? await step(page, steps) : await state(page);
  const dynamics = await page.evaluate((k) => window.concord.dynamics(k), series);
  return { page, errors, state: s, dynamics };
}

const FOUR = 'mean,mean@sam,mean@spam@spikes,mean@sequential=20';

test('runs with options load from the URL, show them, train and write the same arena back', async () => {
  const { page, errors, state: s, dynamics } = await runDynamics(`preset=xor-conflict&arena=${FOUR}`, 40);
  assert.deepEqual(s.runs.map((r) => r.spec), FOUR.split(','));
  assert.deepEqual(s.runs.map((r) => r.label),
    ['Mean', 'Mean · SAM ρ=0.05', 'Mean · SPAM', 'Mean · sequential/20']);
  assert.ok(s.runs.every((r) => r.steps === 40 && r.error === null), JSON.stringify(s.runs.map((r) => r.error)));
  // SAM and SPAM train on the GPU; the sequential schedule has no GPU kernel: that run is on
  // the CPU, with the reason (gpu_dynamics.test.mjs checks the GPU runs' numbers).
  assert.deepEqual(s.runs.map((r) => r.backend), ['webgpu', 'webgpu', 'webgpu', 'cpu']);
  assert.match(s.runs[3].backendReason ?? '', /CPU backend|no GPU kernel|cannot run/);
  // Same start, different training.
  assert.equal(new Set(s.runs.map((r) => r.paramsSum)).size, 4, 'every option changes the run');
  // The page writes the arena back as given, and the options show in the arena's controls.
  assert.equal(arenaOf(await page.evaluate(() => location.hash)), FOUR);
  assert.equal(await page.inputValue('#arena-2-sam'), 'sam');
  assert.equal(await page.inputValue('#arena-3-optimizer'), 'spam');
  assert.equal(await page.isChecked('#arena-3-spikes'), true);
  assert.equal(await page.inputValue('#arena-4-schedule'), 'sequential');
  assert.equal(await page.inputValue('#arena-4-switch'), '20');
  assert.match(await page.textContent('.slot:nth-child(2) summary'), /sam/);
  // The SAM run records its cosine, the SPAM run its spike score, the sequential one a switch.
  const [plain, sam, spam, seq] = dynamics.runs;
  assert.equal(plain.points.length, 0, 'a plain run records no dynamics');
  assert.ok(spam.points.length >= 10, `spike scores: ${spam.points.length}`);
  assert.ok(spam.points.every(([, v]) => v > 0 && Number.isFinite(v)));
  const cos = (await page.evaluate(() => window.concord.dynamics('sam'))).runs[1].points;
  assert.ok(cos.length >= 30 && cos.every(([, v]) => v <= 1 + 1e-9 && v >= -1 - 1e-9), JSON.stringify(cos.slice(0, 3)));
  assert.deepEqual(seq.switches, [20]);
  assert.deepEqual(sam.switches, []);
  // The sequential run evaluates every step; the gap is read off its own task-1 test losses.
  assert.ok(seq.testLosses.length >= 40, `test losses: ${seq.testLosses.length}`);
  assert.ok(seq.gap !== null, 'a gap after the switch');
  const atSwitch = seq.testLosses.find(([st]) => st === 20)[1];
  const after = seq.testLosses.filter(([st]) => st > 20).map(([, l]) => l);
  assert.equal(seq.gap.atSwitch, atSwitch);
  assert.equal(seq.gap.worst, Math.max(...after));
  assert.equal(seq.gap.gap, Math.max(0, Math.max(...after) - atSwitch));
  assert.ok(seq.gap.worstStep > 20);
  // Reloading the page's own URL gives the same runs, without a notice.
  const hash = await page.evaluate(() => location.hash);
  await page.goto(`${ctx.server.url}${hash}`);
  await page.reload();
  await page.waitForFunction(() => window.concord && window.concord.ready === true, null, { timeout: 120_000 });
  assert.deepEqual((await state(page)).runs.map((r) => r.spec), FOUR.split(','));
  assert.equal(await page.isVisible('[data-testid=notices]'), false);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a bad run option gives a notice and drops only that run', async () => {
  const { page, errors, state: s } = await runDynamics('preset=xor-conflict&arena=mean@bogus,mgda,mean@sam=-1', 0);
  assert.deepEqual(s.runs.map((r) => r.spec), ['mgda']);
  const notices = await page.textContent('[data-testid=notices]');
  assert.match(notices, /mean@bogus/);
  assert.match(notices, /unknown run option/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the arena edits a run\'s options; a refused value shows a message and changes nothing', async () => {
  const { page, errors } = await runDynamics('preset=xor-conflict&arena=mean,upgrad', 0);
  await page.click('.slot:nth-child(2) summary');
  await page.selectOption('#arena-2-sam', 'asam');
  await page.waitForFunction(() => window.concord.state().runs[1].spec === 'upgrad@asam');
  await page.click('.slot:nth-child(2) summary').catch(() => {});
  if (!(await page.isVisible('#arena-2-clip'))) await page.click('.slot:nth-child(2) summary');
  await page.fill('#arena-2-clip', '1');
  await page.press('#arena-2-clip', 'Enter');
  await page.waitForFunction(() => window.concord.state().runs[1].spec === 'upgrad@asam@clip=1');
  if (!(await page.isVisible('#arena-2-schedule'))) await page.click('.slot:nth-child(2) summary');
  await page.selectOption('#arena-2-schedule', 'sequential');
  await page.waitForFunction(() => window.concord.state().runs[1].spec === 'upgrad@asam@clip=1@sequential=100');
  assert.match(await page.evaluate(() => location.hash), /arena=mean,upgrad@asam@clip=1@sequential=100/);
  // A negative clip norm: a message, the run unchanged.
  if (!(await page.isVisible('#arena-2-clip'))) await page.click('.slot:nth-child(2) summary');
  await page.fill('#arena-2-clip', '-3');
  await page.press('#arena-2-clip', 'Enter');
  await page.waitForSelector('#option-error:not(.hidden)');
  assert.match(await page.textContent('#option-error'), /Clip norm: .*positive number/);
  assert.equal((await state(page)).runs[1].spec, 'upgrad@asam@clip=1@sequential=100');
  await page.locator('.slot:nth-child(2)').screenshot({ path: await artifactPath('arena-run-options.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the loss curves mark the switch; the dynamics chart shows the spike score and hides without dynamics', async () => {
  const { page, errors } = await runDynamics(`preset=xor-conflict&arena=${FOUR}`, 60);
  assert.equal(await page.isVisible('[data-panel=dynamics] canvas'), true);
  const d = await page.evaluate(() => window.concord.dynamics());
  assert.equal(d.shown, true);
  assert.equal(d.series, 'spike');
  // The switch line: a dashed vertical line in the sequential run's colour at step 20 of 60 on
  // the first task's loss plot — compare a pixel column there with the plain page's.
  const seq = d.runs[3];
  const colour = seq.colour;
  const found = await page.evaluate(([c]) => {
    const canvas = document.querySelector('[data-panel=curves] canvas');
    const g = canvas.getContext('2d');
    const want = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
    const img = g.getImageData(0, 0, canvas.width, canvas.height).data;
    // Columns where many pixels of one column are the run's colour (a vertical line).
    const counts = new Map();
    for (let y = 0; y < canvas.height; y++) {
      for (let x = 0; x < canvas.width; x++) {
        const i = 4 * (y * canvas.width + x);
        if (Math.abs(img[i] - want[0]) + Math.abs(img[i + 1] - want[1]) + Math.abs(img[i + 2] - want[2]) < 40) {
          counts.set(x, (counts.get(x) ?? 0) + 1);
        }
      }
    }
    return Math.max(0, ...counts.values());
  }, [colour]);
  assert.ok(found >= 60, `a vertical line in ${colour}: ${found} pixels in one column`);
  await page.locator('[data-panel=curves]').screenshot({ path: await artifactPath('dynamics-loss-curves.png') });
  await page.locator('[data-panel=dynamics]').screenshot({ path: await artifactPath('dynamics-spike-chart.png') });
  await page.selectOption('#dynamics-series', 'sam');
  await page.locator('[data-panel=dynamics]').screenshot({ path: await artifactPath('dynamics-sam-chart.png') });
  assert.equal((await page.evaluate(() => window.concord.dynamics())).series, 'sam');
  // Without options no run records dynamics (plain Adam or SGD): no chart.
  const plain = await runDynamics('preset=xor-conflict&arena=mean,mgda&optimizer=sgd', 5);
  assert.equal((await plain.page.evaluate(() => window.concord.dynamics())).shown, false);
  assert.equal(await plain.page.isVisible('[data-panel=dynamics]'), false);
  assert.deepEqual(plain.errors, []);
  await plain.page.close();
  assert.deepEqual(errors, []);
  await page.close();
});
