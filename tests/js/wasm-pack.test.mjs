// `wasm-pack build --target web` makes an honest package: its name, description, README and
// exports all say it is the low-level WebAssembly core (not the JS StreamEngine API), the README
// names every export and nothing more, and the module loads and works. Skipped (with the reason)
// when wasm-pack is not installed; `bash scripts/setup.sh --wasm-pack` installs it, and
// scripts/test.sh does that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, 'test-output', 'wasm-pack');
const have = spawnSync('wasm-pack', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = have ? false : 'wasm-pack is not installed: run `bash scripts/setup.sh --wasm-pack`';

/** The names a wasm-bindgen `.d.ts` exports (classes, enums, functions, `default`). */
function exportsOf(dts) {
  const names = new Set();
  for (const m of dts.matchAll(/^export (?:class|enum|function) (\w+)/gm)) names.add(m[1]);
  if (/^export default function/m.test(dts)) names.add('default');
  return names;
}

test('wasm-pack build --target web: name, README and exports say what the package holds', { skip }, async () => {
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync('wasm-pack', ['build', '--target', 'web', '--out-dir', out], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `wasm-pack failed:\n${r.stderr}`);

  const pkg = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'stream-engine');
  assert.notEqual(pkg.name, '@nodeflow/stream-engine', 'not the name of the JS API package');
  assert.match(pkg.description, /WebAssembly core, not the JS API/);
  assert.equal(pkg.main, 'stream_engine.js');
  assert.deepEqual([...pkg.files].sort(), ['stream_engine.d.ts', 'stream_engine.js', 'stream_engine_bg.wasm']);

  const readme = readFileSync(join(out, 'README.md'), 'utf8');
  assert.match(readme.split('\n')[0], /^# stream-engine — the WebAssembly core of `@nodeflow\/stream-engine` \(not its JS API\)$/);
  const dts = readFileSync(join(out, 'stream_engine.d.ts'), 'utf8');
  const exported = exportsOf(dts);
  // The README's export table lists exactly the exports.
  const table = readme.slice(readme.indexOf('## What it exports'), readme.indexOf('## Serving'));
  const listed = new Set([...table.matchAll(/^\| `(\w+)`/gm)].map((m) => m[1]));
  assert.deepEqual([...listed].sort(), [...exported].sort(), 'README export table == the .d.ts exports (update docs/wasm-core-README.md)');
  assert.ok(!exported.has('StreamEngine'), 'the core has no StreamEngine class');

  // The module is usable as it is: load it in Node from the bytes and call into it.
  const mod = await import(pathToFileURL(join(out, 'stream_engine.js')).href);
  assert.deepEqual(Object.keys(mod).sort(), [...exported].sort(), 'the module exports what the .d.ts says');
  mod.initSync({ module: readFileSync(join(out, 'stream_engine_bg.wasm')) });
  assert.equal(mod.dropReasonNames()[0], 'priority');
  assert.equal(mod.priorityNames().critical, 1);
  assert.throws(() => mod.validateOption('fraction', 'dropThreshold', 2), RangeError);
  const core = new mod.EngineCore({ bufferSize: 10 });
  assert.equal(core.config().bufferSize, 10);
  assert.throws(() => new mod.EngineCore({ bufferSize: -1 }), /bufferSize/);
});
