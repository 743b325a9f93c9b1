// Node entry of `@nodeflow/stream-engine`: the module loads synchronously, so no init is needed.
import { initNode } from './node-platform.js';

initNode();

export * from './index.js';

/** A no-op in Node (kept so that isomorphic code can always `await init()`). */
export default async function init() {}
