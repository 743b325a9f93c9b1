// Runs every ```js example in the README as a user would (an ES module importing the package),
// and checks each `console.log(...); // expected` comment against what it printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

function expectations(code) {
  // One entry per console.log line, in order: the expected text, or null when not stated.
  return code
    .split('\n')
    .filter((l) => /^\s*console\.log\(/.test(l) || /^\s+console\.log\(/.test(l))
    .map((l) => {
      const m = l.match(/\);\s*\/\/\s*(.+)$/);
      return m ? m[1].trim() : null;
    });
}

function matches(actual, expected) {
  if (actual === expected) return true;
  return expected.startsWith(actual) && /^[^A-Za-z0-9_]/.test(expected.slice(actual.length));
}

test('the README has examples', () => {
  assert.ok(blocks.length >= 10, `found ${blocks.length}`);
});

const dir = mkdtempSync(join(root, 'test-output-readme-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

blocks.forEach((code, i) => {
  const title = code.split('\n').find((l) => l.includes('console.log')) ?? code.split('\n')[0];
  test(`README example ${i + 1}: ${title.trim().slice(0, 60)}`, () => {
    const file = join(dir, `example-${i + 1}.mjs`);
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}`);
    const out = r.stdout.split('\n').filter((l) => l.length > 0);
    const exp = expectations(code);
    exp.forEach((e, k) => {
      if (e === null) return;
      assert.ok(k < out.length, `missing output line ${k + 1} (expected ${e})\n${r.stdout}`);
      assert.ok(matches(out[k], e), `line ${k + 1}: printed ${JSON.stringify(out[k])}, README says ${JSON.stringify(e)}`);
    });
  });
});
