// The four training-dynamics presets on the page: each card's claim, checked on the runs the
// preset opens with (seed 0; the cards quote seeds 0–4 measured natively by
// `cargo run --release -p concord-core --example dynamics_presets`, and concord-core's
// train/dynamics_presets_tests.rs checks the same claims). sam-flattens' runs train on WebGPU
// (f32); the one-task schedules' runs on the CPU in wasm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, openPage, artifactPath } from './helpers.mjs';

const ctx = siteAndBrowser();
const SQRT_THETA = Math.sqrt(5000);

/** Open a preset paused, step every run `steps` steps; the state and the dynamics hook. */
async function preset(name, steps, series = 'spike') {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=${name}&play=false`, errors);
  const state = await page.evaluate((k) => window.concord.step(k), steps);
  assert.ok(state.runs.every((r) => r.error === null && r.steps === steps), JSON.stringify(state.runs.map((r) => r.error)));
  const dynamics = await page.evaluate((s) => window.concord.dynamics(s), series);
  return { page, errors, state, dynamics };
}

test('SAM flattens: SAM\'s λmax ends below Adam\'s', async () => {
  const { page, errors, state } = await preset('sam-flattens', 500, 'sam');
  assert.deepEqual(state.runs.map((r) => r.spec), ['mean', 'mean@sam', 'mean@asam']);
  await page.click('[data-testid=landscape-compute]');
  await page.waitForFunction(
    () => { const l = window.concord.landscape(); return !l.busy && (l.error || (l.result && l.result.steps === 500)); },
    null,
    { timeout: 300_000 },
  );
  const l = await page.evaluate(() => window.concord.landscape());
  assert.equal(l.error, null);
  const last = l.result.sharpness.map((s) => s.lambdaMax.at(-1));
  assert.ok(last.every((v) => Number.isFinite(v) && v > 0), JSON.stringify(last));
  assert.ok(last[1] < last[0], `λmax at step 500: Adam ${last[0]}, SAM ${last[1]}`);
  assert.ok(last[2] < last[1], `ASAM flattest: ${last[2]} vs SAM ${last[1]}`);
  // The SAM cosine: recorded every step, 1 at the start, below 1 later.
  const sam = (await page.evaluate(() => window.concord.dynamics('sam'))).runs[1].points;
  assert.equal(sam.length, 500);
  assert.ok(sam[0][1] > 0.999 && Math.min(...sam.map(([, v]) => v)) < 0.99, JSON.stringify(sam.slice(0, 2)));
  await page.locator('[data-panel=landscape]').screenshot({ path: await artifactPath('preset-sam-flattens.png') }).catch(() => {});
  assert.deepEqual(errors, []);
  await page.close();
});

test('a spike and SPAM\'s reset: Adam spikes at the switch, SPAM clips, SPAM ΔT=150 resets', async () => {
  const { page, errors, dynamics } = await preset('spam-spike', 160);
  const [adam, spam, reset] = dynamics.runs;
  assert.deepEqual(adam.switches, [150], "the switches within the steps done");
  const near = (points) => points.filter(([s, v]) => s >= 150 && s <= 152 && v > SQRT_THETA);
  assert.ok(near(adam.points).length > 0, `Adam's score at 150–152: ${JSON.stringify(adam.points.filter(([s]) => s >= 148 && s <= 153))}`);
  assert.ok(adam.points.filter(([s]) => s < 150).every(([, v]) => v < SQRT_THETA), 'no spike before the switch');
  assert.ok(adam.spikes.some((s) => s >= 150 && s <= 152), JSON.stringify(adam.spikes));
  assert.ok(spam.spikes.includes(150), `SPAM clips at the switch: ${JSON.stringify(spam.spikes.slice(0, 5))}`);
  assert.deepEqual(reset.resets, [149]);
  assert.ok(reset.points.every(([, v]) => v < SQRT_THETA), 'no spike scored after the reset at the switch');
  await page.locator('[data-panel=dynamics]').screenshot({ path: await artifactPath('preset-spam-spike.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('alternating vs joint: at equal steps the joint run is ahead on the circle task', async () => {
  const { page, errors, state } = await preset('alternating-vs-joint', 500);
  assert.deepEqual(state.runs.map((r) => r.spec), ['mean', 'mean@alternating', 'mean@sample']);
  const circle = state.runs.map((r) => r.testLosses[0]);
  assert.ok(circle[0] < circle[1] && circle[0] < circle[2], `circle test losses ${JSON.stringify(circle)}`);
  await page.locator('[data-panel=curves]').screenshot({ path: await artifactPath('preset-alternating-vs-joint.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('sequential: task 1\'s test loss rises after the switch, the joint run\'s does not', async () => {
  const { page, errors, dynamics } = await preset('sequential-gap', 300);
  const [seq, joint] = dynamics.runs;
  assert.deepEqual(seq.switches, [150, 300]);
  assert.equal(seq.testLosses.length, 300, 'evaluated every step');
  assert.ok(seq.gap.atSwitch < 0.05 && seq.gap.gap > 0.3, JSON.stringify(seq.gap));
  const jointAfter = joint.testLosses.filter(([s]) => s > 149).map(([, l]) => l);
  assert.ok(jointAfter.length > 0 && Math.max(...jointAfter) < 0.05, `joint max after 150: ${Math.max(...jointAfter)}`);
  await page.locator('[data-panel=curves]').screenshot({ path: await artifactPath('preset-sequential-gap.png') });
  assert.deepEqual(errors, []);
  await page.close();
});
