// A framework-neutral replacement of the old `useStreamData` hook: reads a connection's batches,
// keeps the last `bufferSize` messages in a ring, and reports to `onUpdate` at a display rate,
// never per message.
import { describe } from './priority.js';

/** Local rates and latencies are computed over this window (ms), in BUCKETS buckets. */
const WINDOW_MS = 1000;
const BUCKETS = 10;
const BUCKET_MS = WINDOW_MS / BUCKETS;

const now = () => performance.now();
/** Engine metrics are read at most this often per widget: a snapshot merges histograms, which
 * is cheap once but not once per frame per widget. */
const METRICS_MS = 250;

/**
 * Subscribes a widget to `readable` (a connection's readable: batches of messages).
 * `onUpdate({ data, isConnected, metrics })` is called at most once per `updateInterval` ms and,
 * where `requestAnimationFrame` exists, at most once per animation frame, and only when something
 * changed: `data` is a new array of the last `bufferSize` messages, oldest first, and `added` the
 * messages received since the previous update (at most `bufferSize`), for widgets that append.
 * `isConnected`
 * turns false once the readable ends or errors (a last update says so). `metrics` holds
 * `messageCount` (messages received by this widget), and `averageLatency` and `messagesPerSecond`
 * from `engine.getMetrics(connectionId)` when both are given (with the other connection metrics,
 * read at most every 250 ms while connected),
 * else computed locally over the last second (latency from `message.timestamp`, as Date.now()).
 * Returns an unsubscribe function: it cancels the reader and stops the timers; no update follows.
 */
export function subscribeWidget(readable, options, onUpdate) {
  if (!readable || typeof readable.getReader !== 'function') throw new TypeError(`readable must be a ReadableStream, got ${describe(readable)}`);
  if (typeof options === 'function' && onUpdate === undefined) {
    onUpdate = options;
    options = undefined;
  }
  const o = options ?? {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`options must be an object, got ${describe(o)}`);
  if (typeof onUpdate !== 'function') throw new TypeError(`onUpdate must be a function, got ${describe(onUpdate)}`);
  const bufferSize = o.bufferSize ?? 1000;
  if (typeof bufferSize !== 'number' || !Number.isInteger(bufferSize) || bufferSize < 1) {
    throw new RangeError(`bufferSize must be a positive integer, got ${describe(bufferSize)}`);
  }
  const updateInterval = o.updateInterval ?? 16;
  if (typeof updateInterval !== 'number' || !Number.isFinite(updateInterval) || updateInterval < 0) {
    throw new RangeError(`updateInterval must be a number >= 0 (ms), got ${describe(updateInterval)}`);
  }
  const engine = o.engine;
  if (engine !== undefined && (engine === null || typeof engine.getMetrics !== 'function')) {
    throw new TypeError(`engine must be a StreamEngine, got ${describe(engine)}`);
  }
  const connectionId = o.connectionId;
  if (connectionId !== undefined && typeof connectionId !== 'string') {
    throw new TypeError(`connectionId must be a string, got ${describe(connectionId)}`);
  }

  const reader = readable.getReader();
  const ring = new Array(bufferSize);
  let head = 0; // next write position
  let size = 0;
  let messageCount = 0;
  let countAtLastUpdate = 0;
  let engineMetrics = null;
  let engineMetricsAt = -Infinity;
  let isConnected = true;
  let stopped = false;
  let dirty = false;
  let lastUpdate = -Infinity;
  let timer = null;
  let frame = null;
  // Local window: per-bucket message counts and latency sums.
  const bucketStart = new Float64Array(BUCKETS).fill(-Infinity);
  const bucketCount = new Float64Array(BUCKETS);
  const bucketLatency = new Float64Array(BUCKETS);
  const bucketLatencyN = new Float64Array(BUCKETS);

  const raf = typeof globalThis.requestAnimationFrame === 'function' ? globalThis.requestAnimationFrame.bind(globalThis) : null;
  const caf = typeof globalThis.cancelAnimationFrame === 'function' ? globalThis.cancelAnimationFrame.bind(globalThis) : null;

  const bucketFor = (t) => {
    const start = Math.floor(t / BUCKET_MS) * BUCKET_MS;
    const i = Math.floor(t / BUCKET_MS) % BUCKETS;
    if (bucketStart[i] !== start) {
      bucketStart[i] = start;
      bucketCount[i] = 0;
      bucketLatency[i] = 0;
      bucketLatencyN[i] = 0;
    }
    return i;
  };

  const localMetrics = (t) => {
    let count = 0;
    let lat = 0;
    let latN = 0;
    let oldest = t;
    for (let i = 0; i < BUCKETS; i++) {
      if (bucketStart[i] > t - WINDOW_MS) {
        count += bucketCount[i];
        lat += bucketLatency[i];
        latN += bucketLatencyN[i];
        oldest = Math.min(oldest, bucketStart[i]);
      }
    }
    // Rate over the part of the window that has passed (a young subscription is not diluted).
    const span = Math.max(BUCKET_MS, Math.min(WINDOW_MS, t - oldest));
    return { averageLatency: latN > 0 ? lat / latN : 0, messagesPerSecond: (count * 1000) / span };
  };

  const snapshot = () => {
    const data = new Array(size);
    const first = (head - size + bufferSize) % bufferSize;
    for (let i = 0; i < size; i++) data[i] = ring[(first + i) % bufferSize];
    const t = now();
    let metrics = null;
    if (engine !== undefined && connectionId !== undefined && isConnected) {
      if (t - engineMetricsAt >= METRICS_MS) {
        engineMetricsAt = t;
        try {
          engineMetrics = engine.getMetrics(connectionId);
        } catch {
          engineMetrics = null; // the connection is gone: local figures
        }
      }
      if (engineMetrics !== null) metrics = { ...engineMetrics, messageCount };
    }
    if (metrics === null) metrics = { messageCount, ...localMetrics(t) };
    const fresh = Math.min(size, messageCount - countAtLastUpdate);
    countAtLastUpdate = messageCount;
    return { data, added: data.slice(size - fresh), isConnected, metrics };
  };

  const flush = () => {
    frame = null;
    timer = null;
    if (stopped || !dirty) return;
    dirty = false;
    lastUpdate = now();
    const update = snapshot();
    try {
      onUpdate(update);
    } catch (e) {
      console.error(e);
    }
  };

  const go = () => {
    timer = null;
    if (stopped) return;
    // Timers can fire a little early by performance.now() (Node counts from the loop's cached
    // time): wait out the rest of the interval.
    const wait = lastUpdate + updateInterval - now();
    if (wait > 0) timer = setTimeout(go, wait);
    else if (raf !== null) frame = raf(flush);
    else flush();
  };

  const schedule = () => {
    dirty = true;
    if (stopped || timer !== null || frame !== null) return;
    const wait = lastUpdate + updateInterval - now();
    if (wait > 0) timer = setTimeout(go, wait);
    else if (raf !== null) frame = raf(flush);
    else timer = setTimeout(flush, 0); // coalesce what arrives in the same turn
  };

  const receive = (batch) => {
    const t = now();
    const wall = Date.now();
    const b = bucketFor(t);
    let lat = 0;
    let latN = 0;
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i];
      ring[head] = m;
      head = head + 1 === bufferSize ? 0 : head + 1;
      const ts = m?.timestamp;
      if (typeof ts === 'number' && ts > 0) {
        lat += Math.max(0, wall - ts);
        latN++;
      }
    }
    size = Math.min(bufferSize, size + batch.length);
    messageCount += batch.length;
    bucketCount[b] += batch.length;
    bucketLatency[b] += lat;
    bucketLatencyN[b] += latN;
    schedule();
  };

  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        if (Array.isArray(value)) receive(value);
        else if (value !== undefined) receive([value]); // a stream of single messages works too
      }
    } catch {
      // errored: reported as disconnected
    }
    if (stopped) return;
    isConnected = false;
    schedule();
  })();

  return function unsubscribe() {
    if (stopped) return;
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (frame !== null && caf !== null) caf(frame);
    frame = null;
    reader.cancel().catch(() => {});
  };
}
