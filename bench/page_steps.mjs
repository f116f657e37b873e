#!/usr/bin/env node
// The page's trainer (wasm, in headless Chromium) against the native CPU trainer: steps/s.
//
// What it measures
//   For each preset and method: the raw step rate of the page's wasm CPU trainer — one run, not
//   limited by frames: `window.concord.benchTrain(preset, method, steps, warmup)` builds a
//   concord_core::train::Trainer of `preset(name)` with that method, takes `warmup` untimed
//   steps, then times `steps` calls of `Trainer::step` with performance.now() — against the
//   native CPU trainer on the same machine, `concord bench train --preset P --method M --steps N
//   --warmup W --json` (the same Trainer, the same config, the same loop, timed with Instant).
//   Both sides use the preset's default precision unless --precision is given (f32: the fast
//   path; f64: the reference). The step count per preset is chosen once so that the native run
//   takes about --seconds (a short native calibration run first); page and native then run the
//   same count. Each case is repeated --repeats times, page and native alternating, and the
//   median steps/s of each side is reported; ratio = page / native (the issue's target: ≥ 0.5).
//   The page is opened with #play=false so that its own playground does not train meanwhile,
//   in Chromium without WebGPU (--disable-gpu): the page's CPU path.
//
// What it needs (it builds nothing itself)
//   * a site built WITH the `test-hooks` feature (window.concord exists only there), e.g. the one
//     `cargo xtask test` leaves in target/browser-dist, or
//       PATH=web/node_modules/.bin:$HOME/.cargo/bin:$PATH \
//         trunk build --release --offline --features test-hooks --dist /tmp/site-simd
//     (the wasm's target features come from .cargo/config.toml: +simd128; a scalar build for
//     comparison: the same with RUSTFLAGS= and a separate CARGO_TARGET_DIR);
//   * the native CLI in release: cargo build --release -p concord-cli (target/release/concord);
//   * Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) and web/node_modules (npm ci in web/).
//
// How to run (from the repository root; on an idle machine — other processes inflate both
// columns, unevenly; the script records the load average before and after)
//   node bench/page_steps.mjs
//   options: --site LABEL=DIR (repeatable; default page=$CONCORD_SITE or target/browser-dist),
//            --cli PATH (default target/release/concord), --presets a,b (default xor-conflict,
//            sinusoid-phases,gradnorm-scales), --methods mean,upgrad (default), --seconds 1.5,
//            --warmup 50, --repeats 3, --precision f32|f64, --out bench/page-results,
//            --profile PREFIX (also one untimed benchTrain per case under Chrome's sampling CPU
//            profiler, CDP Profiler: PREFIX-LABEL-PRESET-METHOD.cpuprofile, opens in Chrome
//            DevTools; the top functions by self time are printed and kept in OUT.json. Function
//            names need a wasm with its name section: trunk's wasm-opt -Oz strips it, so profile
//            a site built with data-wasm-opt="0" in index.html)
//   It prints the table and writes OUT.json (every measurement) and OUT.md (the table pasted
//   into BENCHMARKS.md, section "The page's trainer (wasm) against native").
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { serveSite, launchBrowser } from '../web/tests/helpers.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = {
    sites: [], cli: join(ROOT, 'target/release/concord'),
    presets: ['xor-conflict', 'sinusoid-phases', 'gradnorm-scales'], methods: ['mean', 'upgrad'],
    seconds: 1.5, warmup: 50, repeats: 3, precision: null, out: join(ROOT, 'bench/page-results'), profile: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--site': {
        const v = value();
        const eq = v.indexOf('=');
        o.sites.push(eq > 0 ? { label: v.slice(0, eq), dir: resolve(v.slice(eq + 1)) } : { label: 'page', dir: resolve(v) });
        break;
      }
      case '--cli': o.cli = resolve(value()); break;
      case '--presets': o.presets = value().split(',').filter(Boolean); break;
      case '--methods': o.methods = value().split(',').filter(Boolean); break;
      case '--seconds': o.seconds = Number(value()); break;
      case '--warmup': o.warmup = Number(value()); break;
      case '--repeats': o.repeats = Number(value()); break;
      case '--precision': o.precision = value(); break;
      case '--out': o.out = resolve(value()); break;
      case '--profile': o.profile = resolve(value()); break;
      case '--help': case '-h':
        console.log('usage: node bench/page_steps.mjs [--site LABEL=DIR]... [--cli PATH] [--presets a,b] [--methods a,b] [--seconds S] [--warmup N] [--repeats N] [--precision f32|f64] [--out PREFIX]');
        process.exit(0);
        break;
      default: throw new Error(`unknown option ${argv[i]} (--help lists them)`);
    }
  }
  if (o.sites.length === 0) o.sites.push({ label: 'page', dir: resolve(process.env.CONCORD_SITE ?? join(ROOT, 'target/browser-dist')) });
  if (!(o.seconds > 0) || !(o.warmup >= 0) || !(o.repeats >= 1)) throw new Error('--seconds > 0, --warmup >= 0, --repeats >= 1');
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function native(o, preset, method, steps) {
  const args = ['bench', 'train', '--preset', preset, '--method', method, '--steps', String(steps),
    '--warmup', String(o.warmup), '--json'];
  if (o.precision) args.push('--precision', o.precision);
  const r = JSON.parse(execFileSync(o.cli, args, { encoding: 'utf8' }));
  return { stepsPerSecond: r.steps_per_second, seconds: r.seconds, precision: r.precision ?? null };
}

async function pageRun(page, o, preset, method, steps) {
  const r = await page.evaluate(([p, m, s, w, prec]) => window.concord.benchTrain(p, m, s, w, prec ?? undefined),
    [preset, method, steps, o.warmup, o.precision]);
  if (r.error) throw new Error(`benchTrain(${preset}, ${method}): ${r.error}`);
  return r;
}

/** The wasm file's size, gzipped size and whether its target_features section names simd128
 *  (wasm-opt keeps that section). */
async function wasmInfo(dir) {
  const { readdir } = await import('node:fs/promises');
  const { gzipSync } = await import('node:zlib');
  const name = (await readdir(dir)).find((f) => f.endsWith('.wasm'));
  if (!name) throw new Error(`no .wasm in ${dir}`);
  const bytes = await readFile(join(dir, name));
  return { file: name, bytes: bytes.length, gzipBytes: gzipSync(bytes, { level: 9 }).length,
    simd128: bytes.includes(Buffer.from('simd128')) };
}

/** One benchTrain call under the CDP sampling profiler: the profile written to `file`, and the
 *  top functions by self time (share of all samples). */
async function profileRun(page, o, preset, method, steps, file) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  await cdp.send('Profiler.start');
  await pageRun(page, o, preset, method, steps);
  const { profile } = await cdp.send('Profiler.stop');
  await cdp.detach();
  await writeFile(file, JSON.stringify(profile));
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  for (const id of profile.samples) {
    const f = byNode.get(id).callFrame;
    const name = f.functionName || `(anonymous ${f.url.split('/').pop()}:${f.lineNumber})`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const total = profile.samples.length;
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([name, n]) => ({ name, share: n / total }));
}

const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US').replace(/,/g, ' ') : x.toFixed(1));

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const loadStart = os.loadavg();
  if (loadStart[0] > 1.2) console.warn(`warning: load average ${loadStart[0].toFixed(2)} > 1.2: the figures will be noisy`);
  const cliVersion = execFileSync(o.cli, ['--version'], { encoding: 'utf8' }).trim();
  const sites = [];
  const browser = await launchBrowser({ webgpu: false });
  try {
    for (const s of o.sites) {
      const server = await serveSite(s.dir);
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${server.url}#preset=xor-conflict&play=false`);
      await page.waitForFunction(() => window.concord && typeof window.concord.benchTrain === 'function', null, { timeout: 120_000 })
        .catch(() => { throw new Error(`${s.dir}: no window.concord.benchTrain — build the site with --features test-hooks (${errors.join('; ')})`); });
      await page.waitForFunction(() => window.concord.ready === true, null, { timeout: 120_000 });
      sites.push({ ...s, server, page, wasm: await wasmInfo(s.dir) });
    }
    const rows = [];
    for (const preset of o.presets) {
      // Steps: about o.seconds of native time (calibrated on the first method), the same for all.
      const cal = native(o, preset, o.methods[0], 200);
      const steps = Math.max(200, Math.round(cal.stepsPerSecond * o.seconds / 100) * 100);
      for (const method of o.methods) {
        const nat = [];
        const pages = sites.map(() => []);
        let losses = null;
        let pagePrecision = null;
        let nativePrecision = null;
        // Untimed: the page's wasm functions of this case tiered up (V8 compiles hot wasm
        // functions with TurboFan in the background; benchTrain's own warm-up may end first).
        for (const s of sites) await pageRun(s.page, o, preset, method, Math.min(steps, 500));
        for (let r = 0; r < o.repeats; r++) {
          const n = native(o, preset, method, steps);
          nat.push(n.stepsPerSecond);
          nativePrecision = n.precision;
          for (let i = 0; i < sites.length; i++) {
            const p = await pageRun(sites[i].page, o, preset, method, steps);
            pages[i].push(p.stepsPerSecond);
            losses = p.trainLosses;
            pagePrecision = p.precision;
          }
        }
        const profiles = {};
        if (o.profile) {
          for (const s of sites) {
            const file = `${o.profile}-${s.label}-${preset}-${method}.cpuprofile`;
            profiles[s.label] = await profileRun(s.page, o, preset, method, steps, file);
            console.log(`  profile ${s.label} (${file}), self time:`);
            for (const f of profiles[s.label]) console.log(`    ${(100 * f.share).toFixed(1).padStart(5)} %  ${f.name}`);
          }
        }
        const row = {
          preset, method, steps, warmup: o.warmup, precision: { page: pagePrecision, native: nativePrecision },
          native: { runs: nat, median: median(nat) },
          page: Object.fromEntries(sites.map((s, i) => [s.label, { runs: pages[i], median: median(pages[i]), ratio: median(pages[i]) / median(nat) }])),
          pageFinalTrainLosses: losses,
          ...(o.profile ? { profiles } : {}),
        };
        rows.push(row);
        const cells = sites.map((s) => `${s.label} ${fmt(row.page[s.label].median)} (${row.page[s.label].ratio.toFixed(2)}×)`).join('  ');
        console.log(`${preset} / ${method}: ${steps} steps  native ${fmt(row.native.median)}  ${cells}`);
      }
    }
    const loadEnd = os.loadavg();
    const result = {
      date: new Date().toISOString(),
      machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, platform: `${os.type()} ${os.release()}` },
      chromium: browser.version(), node: process.version, cli: cliVersion,
      load: { start: loadStart, end: loadEnd },
      options: { seconds: o.seconds, warmup: o.warmup, repeats: o.repeats, precision: o.precision },
      sites: sites.map((s) => ({ label: s.label, dir: s.dir, wasm: s.wasm })),
      rows,
    };
    await writeFile(`${o.out}.json`, JSON.stringify(result, null, 2) + '\n');
    const head = ['preset', 'method', 'precision', 'steps', 'native steps/s', ...sites.flatMap((s) => [`page (${s.label}) steps/s`, `ratio (${s.label})`])];
    const md = [
      `Machine: ${result.machine.cpu}, ${result.machine.cores} cores. Chromium ${result.chromium} (headless, --disable-gpu: the page's CPU path), node ${result.node}, ${cliVersion}. Run ${result.date.slice(0, 16).replace('T', ' ')} UTC (load average at start ${loadStart[0].toFixed(2)}, at end ${loadEnd[0].toFixed(2)}).`,
      '',
      `Sites: ${sites.map((s) => `${s.label} = ${s.wasm.file} ${(s.wasm.bytes / 1024).toFixed(0)} KiB (${(s.wasm.gzipBytes / 1024).toFixed(0)} KiB gzipped), simd128 ${s.wasm.simd128 ? 'on' : 'off'}`).join('; ')}.`,
      '',
      `Median of ${o.repeats} runs each (page and native alternating), ${o.warmup} warm-up steps, then the steps shown; ratio = page / native (target ≥ 0.50).`,
      '',
      `| ${head.join(' | ')} |`,
      `|${head.map((_, i) => (i < 3 ? '---' : '--:')).join('|')}|`,
      ...rows.map((r) => `| ${[r.preset, r.method, r.precision.page === r.precision.native || !r.precision.native ? r.precision.page : `${r.precision.page} / ${r.precision.native}`, r.steps, fmt(r.native.median),
        ...sites.flatMap((s) => [fmt(r.page[s.label].median), r.page[s.label].ratio.toFixed(2)])].join(' | ')} |`),
      '',
    ].join('\n');
    await writeFile(`${o.out}.md`, md);
    console.log('\n' + md);
    console.log(`wrote ${o.out}.json and ${o.out}.md`);
    if (loadEnd[0] > 1.2) console.warn(`warning: load average ${loadEnd[0].toFixed(2)} > 1.2 at the end: rerun on an idle machine`);
  } finally {
    await browser.close();
    for (const s of sites) await s.server.close();
  }
}

main().catch((e) => {
  console.error(`page_steps: ${e.message}`);
  process.exit(1);
});
