// The shipped bundle (wasm + JS + CSS + HTML of the release build) must stay at or under
// 1.5 MB gzipped: the figure a visitor downloads before the page starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, extname } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SITE } from './helpers.mjs';

const LIMIT = 1.5 * 1024 * 1024;
const SHIPPED = new Set(['.wasm', '.js', '.css', '.html']);

test('the release bundle is at most 1.5 MB gzipped', async (t) => {
  assert.ok(SITE, 'CONCORD_SITE is not set: run the browser tests through `cargo xtask test`');
  const files = (await readdir(SITE)).filter((f) => SHIPPED.has(extname(f)));
  assert.ok(files.some((f) => f.endsWith('.wasm')), `no .wasm in ${SITE}: ${files}`);
  let total = 0;
  for (const f of files) {
    const gz = gzipSync(await readFile(join(SITE, f)), { level: 9 }).length;
    t.diagnostic(`${f}: ${(gz / 1024).toFixed(1)} KiB gzipped`);
    total += gz;
  }
  t.diagnostic(`total: ${(total / 1024).toFixed(1)} KiB gzipped (limit ${(LIMIT / 1024).toFixed(0)} KiB)`);
  assert.ok(total <= LIMIT, `${total} bytes gzipped > ${LIMIT}`);
});
