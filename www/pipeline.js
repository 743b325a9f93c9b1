// The glue between a data source (a ReadableStream of single messages) and a connection's
// writable, shared by the demo and the browser benchmark.
//
// source ──pipeTo──▶ batching sink ──writer.write(array)──▶ connection.writable
//
// Why not `source.pipeTo(connection.writable)` directly? Two reasons, both measured in Chromium:
// 1. A source that is behind its schedule produces its next message as soon as the previous one
//    is read, and the connection accepts a message synchronously, so such a pipe is one endless
//    chain of microtasks: no frame is drawn and no timer fires until it catches up (tasks of
//    100-300 ms at 10 x 10,000 msg/s). The sink below yields to the event loop after a few ms.
// 2. Arrays are the engine's fast path: one wasm call per batch instead of one per message.
// Backpressure still flows: while the connection holds a write (a full buffer without a drop
// policy, or a held write under a handler), the sink holds the pipe and the source waits.

const now = () => performance.now();

// A macrotask hop that is not clamped like nested setTimeout(0).
const channel = typeof MessageChannel === 'function' ? new MessageChannel() : null;
const hops = [];
if (channel) {
  channel.port1.onmessage = () => hops.shift()?.();
}
export function nextTask() {
  return new Promise((resolve) => {
    if (channel) {
      hops.push(resolve);
      channel.port2.postMessage(0);
    } else setTimeout(resolve, 0);
  });
}

/**
 * Pipes `source` (single messages) into `writable` (a connection's writable) in arrays of at most
 * `maxBatch` messages, sent at the latest `flushMs` after their first message, and yields to the
 * event loop after `sliceMs` of continuous work. Returns `{ abort, signal, done }`; `done` settles
 * when the pipe stops (the source ended, `abort()`, or the connection refused a write). The
 * writable is released, not closed or aborted: the connection outlives its sources.
 */
export function pipeSource(source, writable, { maxBatch = 256, flushMs = 4, sliceMs = 6 } = {}) {
  const ac = new AbortController();
  const writer = writable.getWriter();
  let buf = [];
  let timer = null;
  let inflight = null; // the connection's promise for the last array, while it is pending
  let sliceStart = -1; // -1: no slice open; the next task boundary closes the open one
  const closeSlice = () => {
    sliceStart = -1;
  };
  const send = () => {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (buf.length === 0) return inflight ?? undefined;
    const out = buf;
    buf = [];
    const p = writer.write(out);
    inflight = p;
    p.then(
      () => {
        if (inflight === p) inflight = null;
      },
      () => {}, // reported through the next write (the pipe stops)
    );
    return p;
  };
  const write = (msg) => {
    // The connection is holding the previous array: so is the pipe.
    if (inflight !== null) return inflight.then(() => write(msg));
    const t = now();
    if (sliceStart < 0) {
      sliceStart = t;
      nextTask().then(closeSlice); // runs only once the event loop gets to run a task
    }
    buf.push(msg);
    if (buf.length >= maxBatch) return send();
    if (timer === null) timer = setTimeout(send, flushMs);
    if (t - sliceStart > sliceMs) return Promise.all([send(), nextTask()]).then(closeSlice);
    return undefined;
  };
  const sink = new WritableStream({ write, close: () => send() }, { highWaterMark: 1 });
  const done = source.pipeTo(sink, { signal: ac.signal }).finally(() => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    buf = [];
    writer.releaseLock();
  });
  return { abort: () => ac.abort(), signal: ac.signal, done };
}
