// Accessibility: axe-core scans the playground (the default preset, a toy, a lesson step) and
// fails on any serious or critical violation (unlabelled controls, contrast, names that do not
// match the visible text, …); Tab reaches the controls with a visible focus ring; nothing but a
// real control looks clickable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { siteAndBrowser, openPage } from './helpers.mjs';

const ctx = siteAndBrowser();
const AXE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Serious and critical violations on the page, one line each. */
async function scan(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

for (const hash of ['play=false', 'preset=cagrad-toy&play=false', 'lesson=5&play=false']) {
  test(`axe: no serious or critical violations at #${hash}`, async (t) => {
    const errors = [];
    const page = await openPage(ctx.browser, `${ctx.server.url}#${hash}`, errors);
    const found = await scan(page);
    t.diagnostic(`${found.length} serious/critical`);
    assert.deepEqual(found, []);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

test('keyboard: Tab reaches the controls, each with a visible focus ring; clickables are controls', async () => {
  const errors = [];
  const page = await openPage(ctx.browser, `${ctx.server.url}#lesson=4&play=false`, errors);
  const seen = new Set();
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press('Tab');
    const el = await page.evaluate(() => {
      const a = document.activeElement;
      const css = getComputedStyle(a);
      return { tag: a.tagName, id: a.id, label: a.getAttribute('aria-label') ?? a.textContent.trim().slice(0, 30), ring: css.outlineStyle !== 'none' && parseFloat(css.outlineWidth) >= 2 };
    });
    assert.ok(el.ring, `no focus ring on ${el.tag}#${el.id} “${el.label}”`);
    seen.add(el.id || el.label);
  }
  for (const id of ['lesson-prev', 'lesson-next', 'preset-select', 'conflict-range']) assert.ok(seen.has(id), `Tab reaches #${id}: ${[...seen]}`);
  // Buttons are buttons: nothing that is not a control (or a control's label) has a hand cursor.
  const fake = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((el) => getComputedStyle(el).cursor === 'pointer' && !el.closest('button, a, label, select, input, summary'))
    .map((el) => `${el.tagName}.${el.className}`));
  assert.deepEqual(fake, []);
  assert.deepEqual(errors, []);
  await page.close();
});
