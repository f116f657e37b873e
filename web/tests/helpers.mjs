// Shared plumbing for the browser tests: a static server for the built site, Debian's Chromium
// with WebGPU on SwiftShader, and the native CLI as the reference.
import { createServer } from 'node:http';
import { readFile, mkdir, stat } from 'node:fs/promises';
import { join, extname, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { before, after } from 'node:test';

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml', '.json': 'application/json',
};

export const SITE = process.env.CONCORD_SITE;
/** The site built without the `test-hooks` feature (what `cargo xtask dist` ships). */
export const RELEASE_SITE = process.env.CONCORD_RELEASE_SITE;
export const CLI = process.env.CONCORD_CLI;
export const ARTIFACTS = process.env.CONCORD_ARTIFACTS ?? resolve('../target/browser');

/** Serve `dir` on 127.0.0.1 at a free port; resolves to { url, close }. */
export async function serveSite(dir, variable = 'CONCORD_SITE') {
  if (!dir) throw new Error(`${variable} is not set: run the browser tests through \`cargo xtask test\``);
  await stat(join(dir, 'index.html'));
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = join(dir, path.endsWith('/') ? path + 'index.html' : path);
    try {
      const body = await readFile(file);
      // CORS for every file, as `cargo xtask serve` sends it: a sandboxed iframe of embed.html
      // (an opaque origin) loads the module scripts and the wasm with CORS requests.
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'access-control-allow-origin': '*',
      });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((ok) => server.close(ok)) };
}

/** Headless Chromium with WebGPU on SwiftShader (flags from shared/reference/toolchain.md).
 *  Playwright gives every launch a fresh profile directory of its own. */
export async function launchBrowser({ webgpu = true } = {}) {
  const gpuFlags = webgpu ? ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'] : ['--disable-gpu'];
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', ...gpuFlags,
    ],
  });
}

/** Open the page, recording console errors and page errors into `errors`. */
export async function openPage(browser, url, errors) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(url);
  await page.waitForFunction(() => window.concord && window.concord.ready === true, null, { timeout: 120_000 });
  return page;
}

/** The native CPU reference: `concord train … --json`. */
export function nativeRun({ problem, method, c, start, steps, lr, optimizer }) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--problem', problem, '--method', method, `--start=${start[0]},${start[1]}`,
    '--steps', String(steps), '--lr', String(lr), '--optimizer', optimizer, '--json'];
  if (c !== null && c !== undefined) args.push('--param', `c=${c}`);
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

export async function artifactPath(name) {
  await mkdir(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** The built site served and a browser (WebGPU unless `webgpu: false`) launched once per test file; the returned object's
 *  `server` and `browser` are filled in by the file's `before` hook and closed by its `after`. */
export function siteAndBrowser({ webgpu = true } = {}) {
  const ctx = { server: null, browser: null };
  before(async () => {
    ctx.server = await serveSite(SITE);
    ctx.browser = await launchBrowser({ webgpu });
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.server?.close();
  });
  return ctx;
}

/**
 * The step count once Pause has taken hold: a GPU batch submitted before the click still lands
 * (it publishes its steps when it is read back, which on a loaded machine can take longer than
 * a fixed wait). Polls until the count has not changed for 400 ms (at most 20 s) and returns it;
 * the caller then checks that it stays.
 */
export async function settledSteps(page) {
  // After Pause a batch already submitted (its GPU read-back, or its CPU part spread over
  // frames) still lands; `busy` says one is under way. Wait for it, then for a quiet 400 ms.
  await page.waitForFunction(() => !window.concord.state().busy, null, { timeout: 30_000 });
  const read = () => page.evaluate(() => window.concord.state().steps);
  let last = await read();
  const deadline = Date.now() + 20_000;
  for (;;) {
    await page.waitForTimeout(400);
    const now = await read();
    if (now === last || Date.now() > deadline) return now;
    last = now;
  }
}

// The GPU parity tests' shared setup (gpu_arena, gpu_stateful): the page's state and steps
// through the test hooks, the native CPU run of a preset, and a browser run's largest absolute
// gap to it over the final train and test losses.
export const pageState = (page) => page.evaluate(() => window.concord.state());
export const pageStep = (page, n) => page.evaluate((k) => window.concord.step(k), n);

/** The native CPU trainer on the same preset: `concord train --preset … --backend cpu --json`. */
export function nativePreset(preset, method, steps) {
  if (!CLI) throw new Error('CONCORD_CLI is not set: run the browser tests through `cargo xtask test`');
  const args = ['train', '--preset', preset, '--method', method, '--backend', 'cpu', '--steps', String(steps), '--json'];
  return JSON.parse(execFileSync(CLI, args, { encoding: 'utf8' }));
}

/** max |browser − native| over the final train losses and the test losses. */
export function finalLossGap(run, native) {
  const pairs = [...run.trainLosses.map((l, t) => [l, native.final_losses[t]]),
    ...run.testLosses.map((l, t) => [l, native.test_losses[t]])];
  return Math.max(...pairs.map(([a, b]) => Math.abs(a - b)));
}
