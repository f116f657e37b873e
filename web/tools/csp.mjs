// trunk post_build hook: every HTML page of the build ships a Content-Security-Policy meta tag,
// and the inline scripts trunk writes into a page (its wasm loader in index.html) are allowed by
// their sha256, filled into that tag's script-src here — so script-src never needs
// 'unsafe-inline'. Run by trunk with TRUNK_STAGING_DIR set (Trunk.toml [[hooks]]), or by hand:
// `node web/tools/csp.mjs <dir>`. Idempotent: old hashes are replaced.
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const dir = process.argv[2] ?? process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error('csp.mjs: no directory (TRUNK_STAGING_DIR is unset and no argument was given)');
  process.exit(2);
}

const META = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"\s*\/?>/i;
// A <script> without src: its text is what the browser hashes (UTF-8, exactly as written).
const INLINE = /<script\b(?![^>]*\bsrc\s*=)[^>]*>([\s\S]*?)<\/script\s*>/gi;

/** The page with its CSP's script-src listing the hashes of its inline scripts. */
export function fillHashes(html, name = 'page') {
  const meta = META.exec(html);
  if (!meta) throw new Error(`${name}: no <meta http-equiv="Content-Security-Policy"> tag`);
  const firstScript = html.search(/<script\b/i);
  if (firstScript !== -1 && firstScript < meta.index) {
    throw new Error(`${name}: a <script> comes before the CSP meta tag (the policy would not cover it)`);
  }
  const hashes = [...html.matchAll(INLINE)]
    .map((m) => m[1])
    .filter((text) => text.trim() !== '')
    .map((text) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`);
  const directives = meta[1].split(';').map((d) => d.trim()).filter(Boolean);
  const at = directives.findIndex((d) => d.split(/\s+/)[0] === 'script-src');
  if (at === -1) throw new Error(`${name}: the CSP has no script-src directive`);
  const sources = directives[at].split(/\s+/).slice(1).filter((s) => !/^'sha(256|384|512)-/.test(s));
  for (const bad of ["'unsafe-inline'", "'unsafe-eval'"]) {
    if (sources.includes(bad)) throw new Error(`${name}: script-src must not allow ${bad}`);
  }
  directives[at] = ['script-src', ...sources, ...new Set(hashes)].join(' ');
  const tag = `<meta http-equiv="Content-Security-Policy" content="${directives.join('; ')}" />`;
  return { html: html.slice(0, meta.index) + tag + html.slice(meta.index + meta[0].length), hashes };
}

const pages = (await readdir(dir)).filter((f) => f.endsWith('.html')).sort();
if (pages.length === 0) {
  console.error(`csp.mjs: no HTML page in ${dir}`);
  process.exit(1);
}
try {
  for (const page of pages) {
    const path = join(dir, page);
    const { html, hashes } = fillHashes(await readFile(path, 'utf8'), page);
    await writeFile(path, html);
    console.log(`csp.mjs: ${page}: ${hashes.length} inline script(s) allowed by hash`);
  }
} catch (e) {
  console.error(`csp.mjs: ${e.message}`);
  process.exit(1);
}
