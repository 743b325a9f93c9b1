// Node: the package ships one .wasm (pkg/web/stream_engine_bg.wasm), shared with browsers; Node
// reads it from disk and instantiates it synchronously. Every Node entry (the package, the
// gateway) calls initNode(), and the ESM entries share one chunk, so a process has one instance.
import { getHeapStatistics } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import { initSync } from '#wasm';
import wasmBytes from '#wasm-bytes';
import * as stagesGlue from '#wasm-stages';
import stagesBytes from '#wasm-stages-bytes';
import { platform } from './runtime.js';

let done = false;

/** Instantiates the module and sets the Node platform hooks, once. */
export function initNode() {
  if (done) return;
  done = true;
  initSync({ module: wasmBytes });
  // The window/downsample stages' .wasm: read and instantiated on first use (js/aggregate.js).
  platform.stages = { glue: stagesGlue, bytes: stagesBytes };
  // serveEngine() in a worker_threads Worker answers on parentPort by default.
  platform.parentPort = parentPort;
  platform.heap = () => {
    const s = getHeapStatistics();
    return { used: s.used_heap_size, total: s.total_heap_size, limit: s.heap_size_limit };
  };
}
