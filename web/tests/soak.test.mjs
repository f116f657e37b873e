// Soak: 4 arena runs trained for CONCORD_SOAK_STEPS steps (through window.concord.step) on the
// default preset (xor-conflict) and on a 16-expert MoE preset; the wasm memory (its linear
// memory only grows, so it is the high-water mark of the page's Rust heap) measured halfway and
// at the end must stay within MEMORY_BUDGET_MB and grow at most MAX_GROWTH between the two.
//
// CI runs the short version (SHORT_STEPS steps, about a minute). The full run is a documented
// command (RELIABILITY.md, "Memory"):
//
//     cargo xtask soak                 # 50 000 steps, both presets, then the figures
//     CONCORD_SOAK_STEPS=50000 node --test tests/soak.test.mjs   (from web/, with CONCORD_SITE)
//
// The runs train on the CPU (a browser without WebGPU): every run's state is then in the wasm
// heap (a GPU run keeps its history there too, its buffers elsewhere), and SwiftShader's WebGPU
// would take half an hour per preset. CONCORD_SOAK_WEBGPU=1 runs them on WebGPU instead.
// Each preset's figures go to $CONCORD_ARTIFACTS/soak-<preset>.json.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { serveSite, launchBrowser, openPage, artifactPath, SITE } from './helpers.mjs';

const SHORT_STEPS = 6000;
const STEPS = Number(process.env.CONCORD_SOAK_STEPS ?? SHORT_STEPS);
const WEBGPU = process.env.CONCORD_SOAK_WEBGPU === '1';
/** Measured (RELIABILITY.md, "Memory"): 22 MB (xor-conflict) and 160 MB (the 16-expert MoE)
 *  after 50 000 steps. */
const MEMORY_BUDGET_MB = 256;
/** Growth between the halfway mark and the end: 10 % over 25k → 50k steps. Shorter soaks still
 *  fill the bounded histories (2048 records after about 2 000 steps) and the loss curves (4000
 *  points at 20 000 steps) in their second half: 15 %. */
const MAX_GROWTH = STEPS >= 50_000 ? 0.1 : 0.15;
/** Steps per request: the page serves each in frame-sized pieces and resolves on read-back. */
const CHUNK = 1000;

let server;
let browser;
after(async () => {
  await browser?.close();
  await server?.close();
});

const MB = 1024 * 1024;

async function soak(name, hash) {
  server ??= await serveSite(SITE);
  browser ??= await launchBrowser({ webgpu: WEBGPU });
  const errors = [];
  const page = await openPage(browser, `${server.url}#${hash}&play=false`, errors);
  let s = await page.evaluate(() => window.concord.state());
  assert.equal(s.runs.length, 4, name);
  const backends = [...new Set(s.runs.map((r) => r.backend))];
  const marks = [];
  const t0 = Date.now();
  let steps = 0;
  while (steps < STEPS) {
    const n = Math.min(CHUNK, STEPS - steps);
    s = await page.evaluate((k) => window.concord.step(k), n);
    steps += n;
    assert.equal(s.steps, steps, `${name}: the counter`);
    if (steps === Math.floor(STEPS / 2) || steps === STEPS || steps % 10_000 === 0) {
      marks.push({
        steps,
        seconds: (Date.now() - t0) / 1000,
        wasmBytes: await page.evaluate(() => window.concord.wasmMemory()),
        jsHeapBytes: await page.evaluate(() => performance.memory?.usedJSHeapSize ?? null),
        historyLen: s.runs.map((r) => r.historyLen),
        curvePoints: s.runs.map((r) => r.curvePoints),
      });
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(s.runs.every((r) => r.steps === STEPS && r.error === null), `${name}: ${JSON.stringify(s.runs.map((r) => [r.steps, r.error]))}`);
  const half = marks.find((m) => m.steps === Math.floor(STEPS / 2));
  const end = marks.at(-1);
  const growth = (end.wasmBytes - half.wasmBytes) / half.wasmBytes;
  const figures = {
    preset: name,
    hash,
    backends,
    steps: STEPS,
    seconds,
    stepsPerSecond: STEPS / seconds,
    wasmMbHalf: half.wasmBytes / MB,
    wasmMbEnd: end.wasmBytes / MB,
    growth,
    marks,
  };
  console.log(
    `${name} (${backends.join(', ')}): ${STEPS} steps in ${seconds.toFixed(0)} s (${figures.stepsPerSecond.toFixed(0)} steps/s); ` +
      `wasm memory ${figures.wasmMbHalf.toFixed(1)} MB at ${half.steps}, ${figures.wasmMbEnd.toFixed(1)} MB at ${end.steps} ` +
      `(${(growth * 100).toFixed(1)} %); history ${end.historyLen.join('/')}, curve ${end.curvePoints.join('/')}`,
  );
  await writeFile(await artifactPath(`soak-${name}.json`), JSON.stringify(figures, null, 2));
  assert.ok(end.wasmBytes <= MEMORY_BUDGET_MB * MB, `${name}: ${figures.wasmMbEnd.toFixed(1)} MB of wasm memory (budget ${MEMORY_BUDGET_MB} MB)`);
  assert.ok(growth <= MAX_GROWTH, `${name}: wasm memory grew ${(growth * 100).toFixed(1)} % from ${half.steps} to ${end.steps} steps (at most ${MAX_GROWTH * 100} %)`);
  assert.ok(end.historyLen.every((h) => h <= 2048), `${name}: histories ${end.historyLen}`);
  assert.ok(end.curvePoints.every((c) => c <= 4000), `${name}: curves ${end.curvePoints}`);
  if (!WEBGPU) assert.deepEqual(errors, [], name);
  await page.close();
}

test(`soak: the default preset, 4 runs, ${STEPS} steps, flat wasm memory`, async () => {
  await soak('xor-conflict', 'preset=xor-conflict');
});

test(`soak: a 16-expert MoE (switch router), 4 runs, ${STEPS} steps, flat wasm memory`, async () => {
  await soak('moe16-switch', 'preset=xor-conflict&model=moe&experts=16&router=switch');
});
