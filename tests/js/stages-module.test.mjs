// The two WebAssembly modules of the package keep to their own exports: the engine's
// (pkg/web/) has no window/downsample code, the stages' (pkg/stages/, crates/stages) none of the
// engine's. That split is what keeps the engine's download small (README "Footprint"): a
// stages export creeping back into the main crate, or the `bindings` feature leaking into the
// stages build, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const exportsOf = (file) =>
  WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(root + file)))
    .map((e) => e.name)
    .filter((n) => !n.startsWith('__') && n !== 'memory');

test('the engine module has no stage exports, the stages module no engine exports', () => {
  const main = exportsOf('pkg/web/stream_engine_bg.wasm');
  const stages = exportsOf('pkg/stages/stream_engine_stages_bg.wasm');
  assert.ok(main.includes('enginecore_new') && main.includes('enginecore_push'), main.join());
  assert.deepEqual(main.filter((n) => /windowaggregator|downsampler|^lttb$/i.test(n)), []);
  assert.deepEqual(
    [...stages].sort(),
    [
      'lttb',
      'minmaxdownsamplercore_addMany', 'minmaxdownsamplercore_flush', 'minmaxdownsamplercore_new', 'minmaxdownsamplercore_stats', 'minmaxdownsamplercore_take',
      'windowaggregatorcore_addMany', 'windowaggregatorcore_advance', 'windowaggregatorcore_flush', 'windowaggregatorcore_new', 'windowaggregatorcore_stats',
      'windowaggregatorcore_takeLineage', 'windowaggregatorcore_takeReleased', 'windowaggregatorcore_takeResults', 'windowaggregatorcore_watermark',
    ],
  );
});

test('Node loads the stages module on first use only, synchronously', async () => {
  const { spawnSync } = await import('node:child_process');
  // A fresh process: importing the package and using the engine instantiates one module; the
  // first WindowAggregator instantiates the second (counted through WebAssembly.Instance).
  const script = `
    const counts = { instances: 0 };
    const I = WebAssembly.Instance;
    WebAssembly.Instance = function (...a) { counts.instances++; return new I(...a); };
    WebAssembly.Instance.prototype = I.prototype;
    const api = await import(${JSON.stringify(root + 'dist/node.mjs')});
    new api.StreamEngine().destroy();
    const before = counts.instances;
    const out = new api.WindowAggregator({ size: 10 }).add([{ id: 'a', timestamp: 1, data: 4 }, { id: 'b', timestamp: 10, data: 1 }]);
    console.log(before, counts.instances, out.results[0].data.sum);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '1 2 4');
});
