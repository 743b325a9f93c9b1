// Node entry: the nodejs build of the wasm module loads synchronously, so no init is needed.
import { getHeapStatistics } from 'node:v8';
import { platform } from './runtime.js';

export * from './index.js';

platform.heap = () => {
  const s = getHeapStatistics();
  return { used: s.used_heap_size, total: s.total_heap_size, limit: s.heap_size_limit };
};

/** A no-op in Node (kept so that isomorphic code can always `await init()`). */
export default async function init() {}
