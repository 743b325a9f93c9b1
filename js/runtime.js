// Platform facts the entry points fill in: whether the wasm module is loaded, and how to read
// the JS heap (Node's v8 statistics, Chrome's performance.memory).
export const runtime = { ready: true };

export const platform = {
  heap() {
    const pm = globalThis.performance?.memory;
    if (pm && pm.jsHeapSizeLimit) return { used: pm.usedJSHeapSize, total: pm.totalJSHeapSize, limit: pm.jsHeapSizeLimit };
    return null;
  },
};
