// The embeddable figure (<concord-figure>, web/concord-embed.js + figure.rs), its iframe form
// (embed.html) and the gallery article, in headless Chromium with WebGPU (SwiftShader):
// - the gallery loads with no console error, starts lazily, runs all its figures at once; a
//   figure scrolled out of view stops and resumes when back; reduced motion keeps them paused
//   until play();
// - two figures with different presets on one page give the same losses as each alone, and as
//   `concord train` natively;
// - the iframe form in <iframe sandbox="allow-scripts"> reports its height; a garbage attribute
//   gives a notice and the defaults; a module that cannot load says so in the figure;
// - every page (playground, embed, gallery, EMBEDDING.md's snippets) loads under its CSP and
//   sends no request off the machine (any non-local request is aborted and fails the test);
// - EMBEDDING.md's ```html snippets are served as pages and work as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { siteAndBrowser, nativeRun, artifactPath, CLI } from './helpers.mjs';

const ctx = siteAndBrowser();
const LOCAL = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A fresh browser context and page: console errors and page errors go to `errors`; every request
 * to a host that is not this machine is aborted and recorded in `offsite`; `pages` maps a path to
 * an HTML body served at that path on the site's origin (test pages next to the built files);
 * `fail` (a RegExp) answers matching local requests with 404.
 */
async function open({ width = 1400, height = 1000, pages = {}, fail = null, reducedMotion, colorScheme } = {}) {
  const context = await ctx.browser.newContext({ viewport: { width, height }, reducedMotion, colorScheme });
  const errors = [];
  const offsite = [];
  const requests = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    requests.push(url.pathname);
    if (!LOCAL.has(url.hostname)) {
      offsite.push(url.href);
      return route.abort('blockedbyclient');
    }
    if (fail && fail.test(url.pathname)) return route.fulfill({ status: 404, body: 'not found' });
    if (Object.hasOwn(pages, url.pathname)) return route.fulfill({ status: 200, contentType: 'text/html', body: pages[url.pathname] });
    return route.continue();
  });
  const page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(String(err)));
  return { page, context, errors, offsite, requests };
}

/** A minimal page around `body`, next to the built site (relative URLs reach its files). */
const htmlPage = (body, title = 'Concord embedding test') =>
  `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8" /><meta name="viewport" content="width=device-width, initial-scale=1" /><title>${title}</title></head><body>${body}</body></html>`;

/** Each figure's step count (null: not mounted). */
const stepCounts = (page) =>
  page.evaluate(() => [...document.querySelectorAll('concord-figure')].map((f) => f.state()?.steps ?? null));

/** Scroll figure `i` into view and wait until it is ready. */
async function readyFigure(page, i) {
  await page.evaluate((k) => document.querySelectorAll('concord-figure')[k].scrollIntoView({ block: 'center' }), i);
  await page.waitForFunction((k) => document.querySelectorAll('concord-figure')[k].ready === true, i, { timeout: 120_000 });
}

/** Wait until figure `i` has passed `steps` steps. */
const stepsPast = (page, i, steps, timeout = 60_000) =>
  page.waitForFunction(([k, n]) => (document.querySelectorAll('concord-figure')[k].state()?.steps ?? 0) > n, [i, steps], { timeout });

test('the gallery starts lazily, loads without console errors or off-site requests, and runs all its figures at once', async () => {
  const { page, context, errors, offsite, requests } = await open();
  await page.goto(`${ctx.server.url}gallery.html`);
  const count = await page.locator('concord-figure').count();
  assert.ok(count >= 4, `the gallery has ${count} figures`);
  // Lazy start: figures more than a screen or two below the fold have not loaded anything.
  await page.waitForFunction(() => document.querySelector('concord-figure').ready === true, null, { timeout: 120_000 });
  const tops = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].map((f) => f.getBoundingClientRect().top));
  const far = tops.map((t, i) => [t, i]).filter(([t]) => t > 3 * 1000).map(([, i]) => i);
  assert.ok(far.length >= 1, `some figure starts far below the fold: ${tops}`);
  const before = await stepCounts(page);
  for (const i of far) assert.equal(before[i], null, `figure ${i} (at ${tops[i]} px) is not mounted before it is scrolled near`);
  assert.equal(requests.filter((p) => p.endsWith('concord-web_bg.wasm')).length, 1, 'the wasm module is fetched once');

  // A screen tall enough for the whole article: every figure is on screen; play() each through
  // the element API (they also autoplay when visible) and watch every count rise together.
  const tall = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: 1400, height: Math.min(tall + 200, 7000) });
  for (let i = 0; i < count; i++) await readyFigure(page, i);
  await page.evaluate(() => Promise.all([...document.querySelectorAll('concord-figure')].map((f) => f.play())));
  // Each advances once started (a GPU figure compiles its pipelines first: ~25 s on SwiftShader)…
  const first = await stepCounts(page);
  for (let i = 0; i < count; i++) await stepsPast(page, i, first[i], 120_000);
  // …and then all of them advance together, from one reading of the counts to the next.
  const a = await stepCounts(page);
  await page.waitForFunction((before) => [...document.querySelectorAll('concord-figure')].every((f, i) => f.state().steps > before[i]), a, { timeout: 60_000 })
    .catch(async (e) => { throw new Error(`not every figure advanced: ${JSON.stringify(a)} → ${JSON.stringify(await stepCounts(page))} (${e.message})`); });
  const states = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].map((f) => f.state()));
  for (const [i, s] of states.entries()) {
    assert.ok(s.playing && s.visible, `figure ${i}: playing ${s.playing}, visible ${s.visible}`);
    assert.ok(s.runs.length > 0 && s.runs.every((r) => r.error === null), `figure ${i}: ${JSON.stringify(s.runs.map((r) => r.error))}`);
  }
  // Every figure shows the panels it asked for, and none says a value was wrong.
  const shown = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].map((f) => [f.getAttribute('view'), f.shadowRoot.querySelector('.concord-figure')?.dataset.view, f.notices()]));
  for (const [asked, view, notices] of shown) {
    assert.ok(view, `the figure for view=${asked} rendered`);
    assert.deepEqual(notices, [], `view=${asked}: ${notices}`);
  }
  assert.equal(states[0].runs.length, 36, 'the toy race: 12 methods from 3 starts');
  assert.equal(states[0].backend, 'webgpu', `the toy race runs on WebGPU: ${states[0].reason}`);
  assert.equal(requests.filter((p) => p.endsWith('concord-web_bg.wasm')).length, 1, 'still one wasm fetch for four figures');
  await page.screenshot({ path: await artifactPath('gallery-all-running.png') });
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a figure scrolled out of view stops advancing and resumes when scrolled back', async () => {
  const { page, context, errors, offsite } = await open();
  await page.goto(`${ctx.server.url}gallery.html`);
  const i = 1; // the cosine figure: autoplay="visible"
  await readyFigure(page, i);
  await stepsPast(page, i, 0, 120_000);
  // Its pace while visible: the time two more frames of steps take (GPU frames on SwiftShader
  // are slow, and one may still be in flight when the figure leaves the screen).
  const t0 = Date.now();
  const s0 = (await stepCounts(page))[i];
  await stepsPast(page, i, s0);
  await stepsPast(page, i, (await stepCounts(page))[i]);
  const pace = Date.now() - t0;
  // Out of view: to the end of the page (where other figures start and load the machine). Once
  // the frame in flight has landed (`busy` false: on CI's SwiftShader, with the other figures
  // starting, a read-back has taken over 3 s), the count stays put for max(3 s, 8 paces): a
  // visible figure makes about 16 frames in that time.
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await page.waitForFunction((k) => {
    const s = document.querySelectorAll('concord-figure')[k].state();
    return s.visible === false && s.busy === false;
  }, i, { timeout: 60_000 });
  const stopped = (await stepCounts(page))[i];
  await page.waitForTimeout(Math.max(3000, 8 * pace));
  let s = await page.evaluate((k) => document.querySelectorAll('concord-figure')[k].state(), i);
  assert.equal(s.steps, stopped, `no steps while off screen (visible, two frames took ${pace} ms)`);
  assert.equal(s.playing, true, 'it is still playing: it only waits to be seen');
  // Back in view: it goes on from where it stopped.
  await page.evaluate((k) => document.querySelectorAll('concord-figure')[k].scrollIntoView({ block: 'center' }), i);
  await stepsPast(page, i, stopped, 4 * pace + 30_000);
  s = await page.evaluate((k) => document.querySelectorAll('concord-figure')[k].state(), i);
  assert.ok(s.visible && s.playing && s.steps > stopped, JSON.stringify({ visible: s.visible, playing: s.playing, steps: s.steps }));
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('with reduced motion the figures stay paused until play()', async () => {
  const { page, context, errors, offsite } = await open({ reducedMotion: 'reduce' });
  await page.goto(`${ctx.server.url}gallery.html`);
  assert.equal(await page.evaluate(() => matchMedia('(prefers-reduced-motion: reduce)').matches), true);
  for (const i of [0, 1]) await readyFigure(page, i);
  await page.waitForTimeout(2000);
  let s = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].slice(0, 2).map((f) => f.state()));
  for (const x of s) assert.deepEqual([x.steps, x.playing], [0, false], 'autoplay="visible" does not start it');
  await page.evaluate(() => document.querySelectorAll('concord-figure')[1].play());
  await stepsPast(page, 1, 0);
  s = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].slice(0, 2).map((f) => f.state()));
  assert.equal(s[1].playing, true);
  assert.equal(s[0].steps, 0, 'the other figure stays paused');
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

// The toy on WebGPU is f32 against the f64 CLI: after TOY_STEPS Adam steps (lr 1e-3) the
// positions agree to 1e-4 (web/tests/toy.test.mjs measured 5.4e-6 at most on SwiftShader). The
// losses follow from the position: the toy's gradients are of order 1–10 around these paths,
// so a 1e-4 position gap bounds the loss gap by ~1e-3.
const TOY_STEPS = 1500;
const TOY_POS_TOL = 1e-4;
const TOY_LOSS_TOL = 1e-3;
// The xor-conflict MLP on WebGPU against the CPU trainer (web/tests/gpu_arena.test.mjs: 6.4e-8 measured).
const NET_STEPS = 200;
const NET_LOSS_TOL = 1e-5;
const TOY_FIGURE = '<concord-figure id="toy" preset="cagrad-toy" methods="mgda,cagrad:c=0.5" controls="minimal" height="420" aria-label="MGDA and CAGrad on the toy"></concord-figure>';
const NET_FIGURE = '<concord-figure id="net" preset="xor-conflict" methods="mean,upgrad" view="curves" controls="minimal" height="420" aria-label="Mean and UPGrad on XOR vs flipped XOR"></concord-figure>';

/** Step the page's figures (by id) through the element API, all at once; their states. */
async function stepFigures(page, plan) {
  return page.evaluate((p) => Promise.all(p.map(([id, n]) => document.getElementById(id).step(n))), plan);
}

/** `concord train --preset … --backend cpu --json`: the native CPU trainer. */
function nativePreset(preset, method, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--preset', preset, '--method', method, '--backend', 'cpu', '--steps', String(steps), '--json'];
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

test('two figures with different presets on one page give the numbers each gives alone and the native CLI gives', async (t) => {
  const pages = {
    '/__two.html': htmlPage(`<script type="module" src="concord-embed.js"></script>${TOY_FIGURE}${NET_FIGURE}`),
    '/__toy.html': htmlPage(`<script type="module" src="concord-embed.js"></script>${TOY_FIGURE}`),
    '/__net.html': htmlPage(`<script type="module" src="concord-embed.js"></script>${NET_FIGURE}`),
  };
  const { page, context, errors, offsite } = await open({ pages });
  await page.goto(`${ctx.server.url}__two.html`);
  // step() starts a figure that has not loaded yet; both step concurrently on the one device.
  const [toy, net] = await stepFigures(page, [['toy', TOY_STEPS], ['net', NET_STEPS]]);
  assert.equal(toy.steps, TOY_STEPS);
  assert.equal(net.steps, NET_STEPS);
  assert.equal(toy.mode, 'toy');
  assert.equal(net.mode, 'multitask');
  assert.equal(toy.runs.length, 6, 'two methods from three starts');
  assert.deepEqual(net.runs.map((r) => r.aggregator), ['mean', 'upgrad']);
  assert.deepEqual([toy.backend, net.backend], ['webgpu', 'webgpu'], `${toy.reason} / ${net.reason}`);
  await page.screenshot({ path: await artifactPath('embed-two-figures.png'), fullPage: true });

  await page.goto(`${ctx.server.url}__toy.html`);
  const [toyAlone] = await stepFigures(page, [['toy', TOY_STEPS]]);
  await page.goto(`${ctx.server.url}__net.html`);
  const [netAlone] = await stepFigures(page, [['net', NET_STEPS]]);
  // The same engine on the same device: a figure's neighbour changes nothing, to the bit.
  const toyNumbers = (s) => s.runs.map((r) => [r.method, r.start, r.position, r.trainLosses]);
  const netNumbers = (s) => s.runs.map((r) => [r.spec, r.trainLosses, r.testLosses, r.paramsSum]);
  assert.deepEqual(toyNumbers(toy), toyNumbers(toyAlone), 'the toy figure with a neighbour = alone');
  assert.deepEqual(netNumbers(net), netNumbers(netAlone), 'the network figure with a neighbour = alone');

  let worstPos = 0;
  let worstLoss = 0;
  for (const run of toy.runs) {
    const ref = nativeRun({ problem: 'cagrad-toy', method: run.method, c: run.c, start: run.start, steps: TOY_STEPS, lr: 0.001, optimizer: 'adam' });
    assert.equal(ref.error, null);
    const moved = Math.hypot(ref.final[0] - run.start[0], ref.final[1] - run.start[1]);
    assert.ok(moved > 0.1, `${run.method} from ${run.start} barely moved (${moved})`);
    const gap = Math.hypot(run.position[0] - ref.final[0], run.position[1] - ref.final[1]);
    const lossGap = Math.max(...run.trainLosses.map((l, k) => Math.abs(l - ref.losses[k])));
    worstPos = Math.max(worstPos, gap);
    worstLoss = Math.max(worstLoss, lossGap);
    assert.ok(gap < TOY_POS_TOL, `${run.method} from ${run.start}: figure ${run.position} vs native ${ref.final} (gap ${gap})`);
    assert.ok(lossGap < TOY_LOSS_TOL, `${run.method} from ${run.start}: figure losses ${run.trainLosses} vs native ${ref.losses}`);
  }
  let worstNet = 0;
  for (const run of net.runs) {
    const ref = nativePreset('xor-conflict', run.aggregator, NET_STEPS);
    assert.equal(ref.error, null);
    const pairs = [...run.trainLosses.map((l, k) => [l, ref.final_losses[k]]), ...run.testLosses.map((l, k) => [l, ref.test_losses[k]])];
    const gap = Math.max(...pairs.map(([x, y]) => Math.abs(x - y)));
    worstNet = Math.max(worstNet, gap);
    assert.ok(gap <= NET_LOSS_TOL, `${run.aggregator}: figure ${JSON.stringify([run.trainLosses, run.testLosses])} vs native ${JSON.stringify([ref.final_losses, ref.test_losses])}`);
    assert.ok(ref.final_losses.every((l) => l < 0.69), `${run.aggregator} trained: ${ref.final_losses}`);
  }
  t.diagnostic(`toy: largest |figure − native| position gap ${worstPos.toExponential(2)}, loss gap ${worstLoss.toExponential(2)}; xor-conflict loss gap ${worstNet.toExponential(2)}`);
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

/** EMBEDDING.md's ```html blocks, in order. */
async function embeddingSnippets() {
  const md = await readFile(new URL('../../EMBEDDING.md', import.meta.url), 'utf8');
  return [...md.matchAll(/^```html\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

test("EMBEDDING.md's snippets work as written: the element, the sandboxed iframe (which reports its height), a script driving a figure", async () => {
  const snippets = await embeddingSnippets();
  assert.ok(snippets.length >= 3, `EMBEDDING.md has ${snippets.length} html snippets`);
  assert.ok(snippets.some((s) => s.includes('<concord-figure')), 'a custom element snippet');
  assert.ok(snippets.some((s) => /<iframe[^>]*sandbox="allow-scripts"/.test(s)), 'a sandboxed iframe snippet');
  const pages = Object.fromEntries(snippets.map((s, i) => [`/__embedding-${i}.html`, htmlPage(s)]));
  const { page, context, errors, offsite } = await open({ pages });
  // Every concord:resize message any frame's parent receives, recorded before the page's scripts run.
  await context.addInitScript(() => {
    window.__resizes = [];
    addEventListener('message', (e) => { if (e.data?.type === 'concord:resize') window.__resizes.push(e.data.height); });
  });
  for (const [i, snippet] of snippets.entries()) {
    await page.goto(`${ctx.server.url}__embedding-${i}.html`);
    const figures = await page.locator('concord-figure').count();
    for (let k = 0; k < figures; k++) await readyFigure(page, k);
    for (let k = 0; k < figures; k++) {
      assert.deepEqual(await page.evaluate((j) => document.querySelectorAll('concord-figure')[j].notices(), k), [], `snippet ${i}, figure ${k}: no notices`);
    }
    if (snippet.includes('autoplay="visible"') && figures > 0) await stepsPast(page, 0, 0);
    if (snippet.includes('<iframe')) {
      const frame = page.frames().find((f) => f.url().includes('embed.html'));
      assert.ok(frame, 'the iframe loaded embed.html');
      assert.equal(await frame.evaluate(() => origin), 'null', 'sandbox="allow-scripts": an opaque origin');
      await frame.waitForFunction(() => document.querySelector('concord-figure')?.ready === true, null, { timeout: 120_000 });
      // It posts its height, and the snippet's listener sizes the iframe to the last one.
      await page.waitForFunction(() => {
        const h = window.__resizes.at(-1);
        const doc = document.querySelector('iframe').getBoundingClientRect().height;
        return h > 200 && Math.abs(doc - h) < 1;
      }, null, { timeout: 30_000 });
      const inner = await frame.evaluate(() => Math.ceil(document.documentElement.getBoundingClientRect().height));
      const last = await page.evaluate(() => window.__resizes.at(-1));
      assert.equal(last, inner, 'the posted height is the frame document\'s height');
      assert.equal(await frame.evaluate(() => document.querySelector('concord-figure').getAttribute('preset')), 'xor-conflict');
      await frame.waitForFunction(() => document.querySelector('concord-figure').state().steps > 0, null, { timeout: 60_000 });
    }
    if (snippet.includes('race-step')) {
      await page.click('#race-step');
      await page.waitForFunction(() => document.getElementById('race-count').textContent === '1000', null, { timeout: 120_000 });
      assert.equal(await page.evaluate(() => document.getElementById('race').state().steps), 1000);
    }
    await page.screenshot({ path: await artifactPath(`embedding-snippet-${i}.png`), fullPage: true });
  }
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('garbage attributes give notices inside the figure and the defaults; attribute changes apply live', async () => {
  const pages = {
    '/__garbage.html': htmlPage(`<script type="module" src="concord-embed.js"></script>
      <concord-figure preset="cagrad-toy" methods="mgda,cagrad" lr="banana" view="nonsense" controls="everything" wat="1"
                      aria-label="A figure with bad attributes"></concord-figure>`),
  };
  const { page, context, errors, offsite } = await open({ pages });
  await page.goto(`${ctx.server.url}__garbage.html`);
  await readyFigure(page, 0);
  const fig = 'concord-figure';
  // CSS locators pierce the open shadow root.
  const notices = await page.locator(`${fig} [data-testid=notices]`).textContent();
  for (const word of ['banana', 'nonsense', 'everything', 'wat']) assert.ok(notices.includes(word), `a notice names “${word}”: ${notices}`);
  const state = await page.evaluate(() => document.querySelector('concord-figure').getState());
  assert.equal(state.lr, '0.001', 'the toy preset\'s learning rate');
  assert.equal(state.view, 'toy');
  assert.equal(state.controls, 'minimal');
  assert.equal(await page.locator(`${fig} .concord-figure[data-view=toy]`).count(), 1);
  assert.ok(await page.locator(`${fig} .figure-bar [data-testid=steps]`).isVisible(), 'the minimal controls are there');
  let s = await page.evaluate(() => document.querySelector('concord-figure').step(10));
  assert.equal(s.steps, 10, 'the figure runs');
  assert.equal(s.runs.length, 6);
  // Live: new methods replace the runs; a new bad value gets its notice; removing it clears it.
  await page.evaluate(() => document.querySelector('concord-figure').setAttribute('methods', 'pcgrad'));
  await page.waitForFunction(() => { const r = document.querySelector('concord-figure').state().runs; return r.length === 3 && r.every((x) => x.method === 'pcgrad'); });
  await page.evaluate(() => document.querySelector('concord-figure').setAttribute('lr', 'also-garbage'));
  await page.waitForFunction(() => document.querySelector('concord-figure').notices().some((n) => n.includes('also-garbage')));
  await page.evaluate(() => {
    const f = document.querySelector('concord-figure');
    for (const a of ['lr', 'view', 'controls', 'wat']) f.removeAttribute(a);
  });
  await page.waitForFunction(() => document.querySelector('concord-figure').notices().length === 0);
  assert.equal(await page.locator(`${fig} [data-testid=notices]`).count(), 0, 'no notice box left');
  s = await page.evaluate(() => document.querySelector('concord-figure').step(5));
  assert.ok(s.runs.every((r) => r.error === null));
  await page.screenshot({ path: await artifactPath('embed-garbage.png'), fullPage: true });
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a figure whose module cannot load says so inside itself and fires concord-error', async () => {
  const pages = {
    '/__broken.html': htmlPage(`<script type="module" src="concord-embed.js"></script>
      <concord-figure preset="xor-conflict" aria-label="A figure whose wasm is missing"></concord-figure>`),
  };
  const { page, context, errors, offsite } = await open({ pages, fail: /concord-web_bg\.wasm$/ });
  await page.addInitScript(() => {
    window.__errors = [];
    addEventListener('concord-error', (e) => window.__errors.push(e.detail.message));
  });
  await page.goto(`${ctx.server.url}__broken.html`);
  await page.waitForFunction(() => window.__errors.length > 0, null, { timeout: 60_000 });
  const message = await page.locator('concord-figure [role=alert]').textContent();
  assert.match(message, /could not start/);
  assert.equal((await page.evaluate(() => window.__errors))[0], message);
  const rejected = await page.evaluate(() => document.querySelector('concord-figure').step(1).then(() => 'resolved', (e) => e.message));
  assert.match(rejected, /could not start/, 'the API rejects with the reason');
  await page.screenshot({ path: await artifactPath('embed-load-error.png') });
  assert.deepEqual(offsite, []);
  assert.ok(errors.every((e) => /404|Not Found|could not start|WebAssembly|wasm/i.test(e)), `only the missing wasm: ${errors}`);
  await context.close();
});

test('the playground and embed.html load under their CSP, with no inline script allowed but trunk\'s loader', async () => {
  const { page, context, errors, offsite } = await open();
  await page.goto(`${ctx.server.url}index.html#preset=xor-conflict&play=false`);
  await page.waitForFunction(() => window.concord?.ready === true, null, { timeout: 120_000 });
  const csp = await page.getAttribute('meta[http-equiv=Content-Security-Policy]', 'content');
  const scriptSrc = csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src'));
  assert.match(scriptSrc, /^script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/=]{44}'$/, csp);
  assert.doesNotMatch(csp, /'unsafe-eval'/, csp);
  const s = await page.evaluate(() => window.concord.step(5));
  assert.equal(s.steps, 5);
  assert.deepEqual(errors, [], 'no CSP violation or other console error on the playground');
  // The policy is enforced: a script injected inline does not run.
  const blocked = await page.evaluate(() => new Promise((resolve) => {
    addEventListener('securitypolicyviolation', (e) => resolve([e.violatedDirective, window.__inlineRan ?? null]), { once: true });
    const el = document.createElement('script');
    el.textContent = 'window.__inlineRan = true';
    document.body.appendChild(el);
  }));
  assert.deepEqual(blocked, ['script-src-elem', null]);

  const embed = await context.newPage();
  const embedErrors = [];
  embed.on('console', (msg) => { if (msg.type() === 'error') embedErrors.push(msg.text()); });
  embed.on('pageerror', (err) => embedErrors.push(String(err)));
  await embed.goto(`${ctx.server.url}embed.html#preset=xor-conflict&methods=mean,mgda&view=cosine`);
  await embed.waitForFunction(() => document.querySelector('concord-figure')?.ready === true, null, { timeout: 120_000 });
  let st = await embed.evaluate(() => document.querySelector('concord-figure').getState());
  assert.deepEqual([st.preset, st.arena, st.view], ['xor-conflict', 'mean,mgda', 'cosine']);
  // The hash is the figure's settings: a new hash applies them (keys not in it back to defaults).
  await embed.evaluate(() => { location.hash = '#preset=cagrad-toy&methods=pcgrad'; });
  await embed.waitForFunction(() => document.querySelector('concord-figure').getState().preset === 'cagrad-toy');
  st = await embed.evaluate(() => document.querySelector('concord-figure').getState());
  assert.deepEqual([st.arena, st.view], ['pcgrad', 'toy']);
  assert.equal(await embed.locator('body > *:not(concord-figure):not(noscript)').count(), 0, 'no page chrome');
  assert.deepEqual(embedErrors, []);
  assert.deepEqual(offsite, []);
  await context.close();
});

test('the gallery at 1400 px and at 320 px, light and dark: no horizontal scroll (screenshots)', async () => {
  // One page, resized and switched between schemes in place (the figures follow live).
  const { page, context, errors, offsite } = await open({ width: 1400, height: 900, colorScheme: 'light' });
  await page.goto(`${ctx.server.url}gallery.html`);
  const count = await page.locator('concord-figure').count();
  for (let i = 0; i < count; i++) await readyFigure(page, i);
  // The toy race with trails to look at; the figures paused for a steady picture.
  await page.evaluate(async () => {
    const figs = [...document.querySelectorAll('concord-figure')];
    await Promise.all(figs.map((f) => f.pause()));
    await Promise.all([figs[0].step(2000), figs[1].step(100), figs[2].step(300), figs[3].step(100)]);
  });
  for (const [width, colorScheme] of [[1400, 'light'], [1400, 'dark'], [320, 'light'], [320, 'dark']]) {
    await page.setViewportSize({ width, height: 900 });
    await page.emulateMedia({ colorScheme });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(500);
    const [scrollWidth, clientWidth] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(scrollWidth <= clientWidth, `${width} px ${colorScheme}: the page scrolls sideways (${scrollWidth} > ${clientWidth})`);
    const rights = await page.evaluate(() => [...document.querySelectorAll('concord-figure')].map((f) => f.getBoundingClientRect().right));
    assert.ok(rights.every((r) => r <= clientWidth + 0.5), `${width} px: a figure sticks out: ${rights}`);
    const dark = await page.evaluate(() => getComputedStyle(document.querySelector('concord-figure').shadowRoot.querySelector('.concord-figure')).getPropertyValue('--ink').trim());
    assert.equal(dark, colorScheme === 'dark' ? '#e3e6ea' : '#1f2328', `the figure's ink follows the ${colorScheme} scheme`);
    await page.screenshot({ path: await artifactPath(`gallery-${width}-${colorScheme}.png`), fullPage: true });
    if (width === 1400) {
      const top = await page.evaluate(() => document.querySelector('concord-figure').getBoundingClientRect().top + scrollY);
      await page.screenshot({ path: await artifactPath(`gallery-${colorScheme}-first-figure.png`), fullPage: true, clip: { x: 0, y: Math.max(0, top - 300), width: 1400, height: 1300 } });
    }
  }
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the element API and its events: ready once, steps throttled, errors, setState, exportRun, removal stops the figure', async () => {
  const pages = {
    '/__events.html': htmlPage(`<script type="module" src="concord-embed.js"></script>
      <concord-figure id="a" preset="cagrad-toy" methods="mgda" steps-per-frame="20" controls="minimal" aria-label="MGDA on the toy"></concord-figure>`),
  };
  const { page, context, errors, offsite } = await open({ pages });
  await context.addInitScript(() => {
    window.__events = [];
    for (const name of ['concord-ready', 'concord-step', 'concord-error']) {
      addEventListener(name, (e) => window.__events.push({ name, at: performance.now(), steps: e.detail?.steps, message: e.detail?.message }), true);
    }
  });
  await page.goto(`${ctx.server.url}__events.html`);
  await readyFigure(page, 0);
  const events = (name) => page.evaluate((n) => window.__events.filter((e) => e.name === n), name);
  assert.equal((await events('concord-ready')).length, 1, 'concord-ready fires once');
  // Playing: concord-step arrives throttled (250 ms apart at the least) with a rising step count.
  await page.evaluate(() => document.getElementById('a').play());
  await page.waitForFunction(() => window.__events.filter((e) => e.name === 'concord-step').length >= 4, null, { timeout: 120_000 });
  await page.evaluate(() => document.getElementById('a').pause());
  await page.waitForTimeout(800);
  const steps = await events('concord-step');
  const gaps = steps.slice(1).map((e, i) => e.at - steps[i].at);
  assert.ok(gaps.every((g) => g >= 200), `concord-step events are throttled: gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
  assert.ok(steps.every((e, i) => i === 0 || e.steps >= steps[i - 1].steps), 'step counts never go back');
  const final = await page.evaluate(() => document.getElementById('a').state().steps);
  assert.equal(steps.at(-1).steps, final, 'the last event carries the final count');
  // getState/setState speak the attribute space; setState returns the notices.
  const st = await page.evaluate(() => document.getElementById('a').getState());
  assert.equal(st.preset, 'cagrad-toy');
  assert.equal(st.spf, '20');
  const notices = await page.evaluate(() => document.getElementById('a').setState({ lr: 'nope', methods: 'mgda,pcgrad' }));
  assert.ok(notices.some((n) => n.includes('nope')), JSON.stringify(notices));
  await page.waitForFunction(() => document.getElementById('a').state().runs.length === 6);
  // exportRun: the runs as JSON the playground can import.
  const exported = JSON.parse(await page.evaluate(() => document.getElementById('a').exportRun()));
  assert.equal(exported.format, 'concord-playground-run');
  assert.equal(exported.runs.length, 6);
  // A setting that cannot train fires concord-error and shows why, without killing the figure.
  await page.evaluate(() => document.getElementById('a').setState({ preset: 'xor-conflict', tasks: 'reg-plane,xor', losses: 'bce,bce' }));
  await page.waitForFunction(() => window.__events.some((e) => e.name === 'concord-error'), null, { timeout: 60_000 });
  const message = (await events('concord-error'))[0].message;
  assert.ok(typeof message === 'string' && message.length > 10, `concord-error carries the reason: ${message}`);
  const shown = await page.locator('concord-figure [data-testid=run-error]').textContent();
  assert.ok(shown.includes(message), `the reason shows inside the figure: ${shown}`);
  await page.evaluate(() => document.getElementById('a').setState({ losses: 'mse,bce' }));
  const back = await page.evaluate(() => document.getElementById('a').step(3));
  assert.equal(back.steps, 3, 'fixed settings train again');
  // Removing the element disposes its session: nothing steps or errs afterwards.
  await page.evaluate(() => document.getElementById('a').play());
  await page.evaluate(() => { window.__gone = document.getElementById('a'); window.__gone.remove(); window.__events.length = 0; });
  await page.waitForTimeout(1500);
  assert.deepEqual(await events('concord-step'), [], 'a removed figure fires no more steps');
  assert.equal(await page.evaluate(() => window.__gone.state()), null, 'its handle is gone');
  assert.deepEqual(offsite, []);
  assert.deepEqual(errors, []);
  await context.close();
});
