// Node entry: the nodejs build of the wasm module loads synchronously, so no init is needed.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { platform } from './runtime.js';

export * from './index.js';

// V8 11.3 (Node 20) can abort the whole process ("Fatal error ... unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when TurboFan code that inlined a JS->Wasm call
// deoptimizes; the gateway bench (1,000 sockets, ~1,000 connections) hit it within seconds.
// Not inlining those calls avoids it. Later V8s (Node 22+) are left alone.
if (Number.parseInt(process.versions.v8, 10) <= 11) {
  try {
    setFlagsFromString('--no-turbo-inline-js-wasm-calls');
  } catch {
    // not a flag of this V8: nothing to avoid
  }
}

platform.heap = () => {
  const s = getHeapStatistics();
  return { used: s.used_heap_size, total: s.total_heap_size, limit: s.heap_size_limit };
};

/** A no-op in Node (kept so that isomorphic code can always `await init()`). */
export default async function init() {}
