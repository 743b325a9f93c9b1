// Node entry: the package ships one .wasm (pkg/web/stream_engine_bg.wasm), shared with browsers.
// Node reads it from disk and instantiates it synchronously, so no init is needed.
import { getHeapStatistics } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import { initSync } from '#wasm';
import wasmBytes from '#wasm-bytes';
import { platform } from './runtime.js';

initSync({ module: wasmBytes });
// serveEngine() in a worker_threads Worker answers on parentPort by default.
platform.parentPort = parentPort;

export * from './index.js';

platform.heap = () => {
  const s = getHeapStatistics();
  return { used: s.used_heap_size, total: s.total_heap_size, limit: s.heap_size_limit };
};

/** A no-op in Node (kept so that isomorphic code can always `await init()`). */
export default async function init() {}
