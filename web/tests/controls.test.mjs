// The page as a user drives it: exact stepping, live learning-rate edits, play/pause, reset,
// URL state with bad values, hide flags, keyboard, a GPU failure mid-run, and no WebGPU at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteAndBrowser, launchBrowser, openPage, artifactPath, settledSteps } from './helpers.mjs';

const ctx = siteAndBrowser();

const state = (page) => page.evaluate(() => window.concord.state());

test('stepping is exact, the learning rate changes live, play/pause and reset work', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=cagrad-toy&play=false`, errors);
  let s = await state(page);
  assert.equal(s.backend, 'webgpu');
  assert.equal(s.runs.length, 12, 'Mean, PCGrad, MGDA, CAGrad from three starts');
  assert.ok(s.runs.every((r) => r.position[0] === r.start[0] && r.position[1] === r.start[1]));
  await page.waitForTimeout(400);
  assert.equal((await state(page)).steps, 0, '#play=false keeps it paused');

  s = await page.evaluate(() => window.concord.step(1));
  assert.equal(s.steps, 1);
  // Adam's first step moves each coordinate by the learning rate.
  assert.ok(Math.abs(Math.abs(s.runs[0].position[0] - s.runs[0].start[0]) - 0.001) < 1e-5);
  s = await page.evaluate(() => window.concord.step(2000));
  assert.equal(s.steps, 2001);
  const before = s.runs.map((r) => r.position);

  await page.selectOption('#lr-select', '0.01');
  await page.waitForTimeout(200);
  s = await state(page);
  assert.equal(s.lr, 0.01);
  assert.equal(s.steps, 2001, 'changing the learning rate does not reset the runs');
  assert.deepEqual(s.runs.map((r) => r.position), before);
  assert.match(await page.evaluate(() => location.hash), /lr=0\.01/);
  s = await page.evaluate(() => window.concord.step(100));
  assert.equal(s.steps, 2101);

  s = await page.evaluate(() => window.concord.reset());
  assert.equal(s.steps, 0);
  await page.click('button[aria-label="Play"]');
  await page.waitForFunction(() => window.concord.state().steps > 0, null, { timeout: 20_000 });
  await page.click('button[aria-label="Pause"]');
  const paused = await settledSteps(page);
  await page.waitForTimeout(600);
  assert.equal((await state(page)).steps, paused, 'pause stops the runs');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a GPU failure mid-run continues on the CPU from the last positions and says so', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#preset=cagrad-toy&play=false`, errors);
  const before = await page.evaluate(() => window.concord.step(500));
  assert.ok(await page.evaluate(() => window.concord._simulateGpuFailure()));
  const s = await page.evaluate(() => window.concord.step(300));
  assert.equal(s.backend, 'cpu');
  assert.equal(s.steps, before.steps + 300, 'no step lost or repeated across the switch');
  assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu');
  const readout = await page.textContent('[data-testid=backend]');
  assert.match(readout, /CPU fallback/);
  assert.match(readout, /optimizer state restarted/);
  await page.screenshot({ path: await artifactPath('gpu-failure-fallback.png') });
  await page.close();
});

test('a malformed URL is clamped or dropped with a visible notice; hide flags trim the page', async () => {
  const errors = [];
  const page = await openPage(
    ctx.browser,
    `${ctx.server.url}#preset=cagrad-toy-scaled&methods=mgda,bogus,cagrad&c=99&lr=-1&spf=abc&play=false&hideText=true&lr_hide=true&view=l1`,
    errors,
  );
  const s = await state(page);
  assert.equal(s.problem, 'cagrad-toy-scaled');
  assert.equal(s.runs.length, 10, 'MGDA and CAGrad from five starts; the unknown method is dropped');
  assert.ok(s.runs.filter((r) => r.method === 'cagrad').every((r) => r.c === 10), 'c clamped to its maximum');
  const notices = await page.textContent('[data-testid=notices]');
  for (const bad of ['bogus', 'c=99', 'spf=abc']) assert.ok(notices.includes(bad), `notice names ${bad}: ${notices}`);
  assert.equal(await page.isVisible('#lr-select'), false, 'lr_hide hides the control');
  assert.equal(await page.isVisible('.explain'), false, 'hideText hides the explanation');
  await page.screenshot({ path: await artifactPath('bad-url-notices.png') });

  await page.evaluate(() => { location.hash = '#preset=cagrad-toy&methods=sum&play=false'; });
  await page.waitForFunction(() => window.concord.state().runs.length === 3, null, { timeout: 10_000 });
  await page.click('h1');
  await page.keyboard.press('s');
  await page.waitForFunction(() => window.concord.state().steps === 200, null, { timeout: 20_000 });
  await page.keyboard.press('r');
  assert.equal((await state(page)).steps, 0, 'R resets');
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebGPU the page runs on the CPU and says why', async () => {
  const noGpu = await launchBrowser({ webgpu: false });
  try {
    const page = await openPage(noGpu, `${ctx.server.url}#preset=cagrad-toy&play=false&methods=mean,mgda`, []);
    let s = await state(page);
    assert.equal(s.backend, 'cpu');
    assert.ok(typeof s.reason === 'string' && s.reason.length > 0, 'a reason is given');
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu');
    assert.match(await page.textContent('[data-testid=backend]'), /CPU fallback/);
    s = await page.evaluate(() => window.concord.step(250));
    assert.equal(s.steps, 250);
    await page.screenshot({ path: await artifactPath('cpu-fallback.png') });
  } finally {
    await noGpu.close();
  }
});
