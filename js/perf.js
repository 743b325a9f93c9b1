// The performance test suite: drives real connections of an engine at a held message rate and
// measures delivery end to end (write to the reader's receipt of the batch).
import { describe } from './priority.js';
import { checkPattern, makePayload, patternValue } from './sources.js';
import { version } from './version.js';

const now = () => performance.now();

/** Timer granularity of the writer loop: messages due within a tick are written as one batch. */
const MIN_TICK_MS = 4;
const MAX_TICK_MS = 50;
/** How often progress is reported and the heap sampled. */
const SAMPLE_MS = 100;

/** The five standard scenarios of the old suite, same parameters (durations in ms). */
export const STANDARD_PERFORMANCE_TESTS = [
  { name: 'Low Volume Baseline', duration: 30000, messageRate: 10, messageSize: 100, concurrentConnections: 1, dataPattern: 'sequential' },
  { name: 'Medium Volume Test', duration: 60000, messageRate: 100, messageSize: 500, concurrentConnections: 5, dataPattern: 'random' },
  { name: 'High Volume Stress Test', duration: 120000, messageRate: 1000, messageSize: 1000, concurrentConnections: 10, dataPattern: 'sine-wave' },
  {
    name: 'Burst Traffic Test',
    duration: 90000,
    messageRate: 50,
    messageSize: 200,
    concurrentConnections: 3,
    burstMode: { enabled: true, burstSize: 100, burstInterval: 5000 },
    dataPattern: 'step',
  },
  { name: 'Extreme Load Test', duration: 60000, messageRate: 2000, messageSize: 2000, concurrentConnections: 20, dataPattern: 'random' },
];

function num(v, name) {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be finite, got ${describe(v)}`);
  return v;
}

function positive(v, name, unit) {
  num(v, name);
  if (!(v > 0)) throw new RangeError(`${name} must be > 0${unit ? ` (${unit})` : ''}, got ${v}`);
  return v;
}

function integer(v, name, min, unit) {
  num(v, name);
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}${unit ? ` (${unit})` : ''}, got ${v}`);
  return v;
}

/** Validates a PerformanceTestConfig and returns a plain copy of it. */
export function checkConfig(config, what = 'config') {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new TypeError(`${what} must be a PerformanceTestConfig object, got ${describe(config)}`);
  }
  const c = config;
  if (typeof c.name !== 'string') throw new TypeError(`${what}.name must be a string, got ${describe(c.name)}`);
  if (c.name.trim().length === 0) throw new TypeError(`${what}.name must be a non-empty string`);
  positive(c.duration, `${what}.duration`, 'ms');
  positive(c.messageRate, `${what}.messageRate`, 'messages per second per connection');
  integer(c.messageSize, `${what}.messageSize`, 0, 'bytes');
  integer(c.concurrentConnections, `${what}.concurrentConnections`, 1);
  checkPattern(c.dataPattern, `${what}.dataPattern`);
  const out = {
    name: c.name,
    duration: c.duration,
    messageRate: c.messageRate,
    messageSize: c.messageSize,
    concurrentConnections: c.concurrentConnections,
  };
  if (c.burstMode !== undefined) {
    const b = c.burstMode;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new TypeError(`${what}.burstMode must be an object, got ${describe(b)}`);
    if (typeof b.enabled !== 'boolean') throw new TypeError(`${what}.burstMode.enabled must be a boolean, got ${describe(b.enabled)}`);
    if (b.enabled) {
      integer(b.burstSize, `${what}.burstMode.burstSize`, 1, 'messages');
      positive(b.burstInterval, `${what}.burstMode.burstInterval`, 'ms');
      out.burstMode = { enabled: true, burstSize: b.burstSize, burstInterval: b.burstInterval };
    } else {
      out.burstMode = { enabled: false, burstSize: b.burstSize, burstInterval: b.burstInterval };
    }
  }
  out.dataPattern = c.dataPattern;
  return out;
}

/** Bursts during a test: one every burstInterval ms from the start, excluding the start and the end. */
function burstCount(cfg) {
  const b = cfg.burstMode;
  if (!b || !b.enabled) return 0;
  return Math.max(0, Math.ceil(cfg.duration / b.burstInterval) - 1);
}

/** Regular messages per connection over the test. */
function regularCount(cfg) {
  return Math.floor((cfg.messageRate * cfg.duration) / 1000);
}

/** Messages a test offers in total: rate × duration plus bursts, per connection. */
export function expectedMessages(cfg) {
  const b = cfg.burstMode && cfg.burstMode.enabled ? burstCount(cfg) * cfg.burstMode.burstSize : 0;
  return cfg.concurrentConnections * (regularCount(cfg) + b);
}

/** Peak-able JS heap reading without platform imports: Node's process, or Chrome's performance.memory. */
function heapUsed() {
  try {
    const p = globalThis.process;
    if (p && typeof p.memoryUsage === 'function') return p.memoryUsage().heapUsed;
  } catch {
    // not available (e.g. a sandbox)
  }
  const pm = globalThis.performance?.memory;
  return pm && typeof pm.usedJSHeapSize === 'number' ? pm.usedJSHeapSize : 0;
}

function abortError(signal) {
  if (signal.reason !== undefined) return signal.reason;
  const e = new Error('the performance test was aborted');
  e.name = 'AbortError';
  return e;
}

/** A growable list of latencies (ms). */
class Samples {
  constructor(capacity) {
    this.a = new Float64Array(Math.max(16, capacity));
    this.n = 0;
  }
  add(v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  stats() {
    const n = this.n;
    if (n === 0) return { avg: 0, min: 0, max: 0, p95: 0, p99: 0 };
    const s = this.a.subarray(0, n).sort();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += s[i];
    // Nearest-rank percentiles.
    const rank = (p) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
    return { avg: sum / n, min: s[0], max: s[n - 1], p95: rank(0.95), p99: rank(0.99) };
  }
}

let runSeq = 0;

export class PerformanceTestSuite {
  constructor(engine) {
    if (!engine || typeof engine.createConnection !== 'function' || typeof engine.getConnection !== 'function' || typeof engine.getMetrics !== 'function') {
      throw new TypeError(`engine must be a StreamEngine, got ${describe(engine)}`);
    }
    this._engine = engine;
    this._results = [];
  }

  /**
   * Runs one test on fresh connections of the engine: writes `messageRate` messages per second
   * per connection (paced against the clock, plus bursts), reads every connection concurrently,
   * and measures each message from its write to the moment its reader received its batch.
   */
  async runTest(config, options) {
    const cfg = checkConfig(config);
    const o = options ?? {};
    if (typeof o !== 'object') throw new TypeError(`options must be an object, got ${describe(o)}`);
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`onProgress must be a function, got ${describe(o.onProgress)}`);
    const signal = o.signal;
    if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof signal.addEventListener !== 'function')) {
      throw new TypeError(`signal must be an AbortSignal, got ${describe(signal)}`);
    }
    if (signal?.aborted) throw abortError(signal);
    const engine = this._engine;
    if (engine.destroyed) throw new Error('StreamEngine has been destroyed');
    const progress = (f) => {
      if (!o.onProgress) return;
      try {
        o.onProgress(f);
      } catch (e) {
        console.error(e);
      }
    };

    const n = cfg.concurrentConnections;
    const perConn = regularCount(cfg);
    const bursts = burstCount(cfg);
    const burstSize = bursts > 0 ? cfg.burstMode.burstSize : 0;
    const expected = expectedMessages(cfg);
    const payload = makePayload(cfg.messageSize);

    // Fresh connections with ids unique on this engine.
    let run;
    do run = ++runSeq;
    while (engine.getConnection(`perf-${run}-0-src:out->perf-${run}-0-dst:in`) !== undefined);
    const conns = [];
    try {
      for (let i = 0; i < n; i++) {
        const src = `perf-${run}-${i}-src`;
        const dst = `perf-${run}-${i}-dst`;
        const id = engine.createConnection(src, dst, 'out', 'in');
        const conn = engine.getConnection(id);
        // Work-around (engine): a write refused for lack of room whose own call delivers a batch
        // that empties the buffer is never retried, which can only happen when bufferSize <=
        // maxBatchSize. There, writes are kept within the free room.
        const capWrites = conn.config.bufferSize <= conn.config.maxBatchSize;
        conns.push({ id, src, dst, conn, capWrites, writer: null, sent: 0, seq: 0, inflight: null, closed: false });
      }
    } catch (e) {
      for (const c of conns) engine.closeConnection(c.id).catch(() => {});
      throw e;
    }

    const samples = new Samples(Math.min(expected, 1 << 24) + 16);
    let received = 0;
    let peakHeap = heapUsed();
    let aborted = false;

    // Readers: one per connection, concurrently.
    const readers = conns.map(async (c) => {
      const reader = c.conn.readable.getReader();
      c.reader = reader;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const t = now();
          for (let i = 0; i < value.length; i++) samples.add(t - value[i].data.sentAt);
          received += value.length;
        }
      } catch {
        // the connection failed: what was not delivered counts as failed
      }
    });

    const makeBatch = (c, count, el, t) => {
      const wall = Date.now();
      const batch = new Array(count);
      for (let i = 0; i < count; i++) {
        const seq = c.seq++;
        const data = { value: patternValue(cfg.dataPattern, seq, el, 100, 1000), seq, sentAt: t };
        if (payload !== undefined) data.payload = payload;
        batch[i] = { id: `${c.src}-${seq}`, timestamp: wall, sourceNodeId: c.src, targetNodeId: c.dst, port: 'out', data };
      }
      return batch;
    };

    const dueAt = (el) => {
      const regular = Math.min(perConn, Math.floor((el * cfg.messageRate) / 1000));
      const b = bursts > 0 ? Math.min(bursts, Math.floor(el / cfg.burstMode.burstInterval)) : 0;
      return regular + b * burstSize;
    };
    const total = perConn + bursts * burstSize; // per connection

    /** Writes what is due on `c`; returns true while some of its messages are still unwritten. */
    const writeDue = (c, el, final) => {
      if (c.closed) return false;
      if (c.writer === null) c.writer = c.conn.writer;
      // A write still in flight (refused for now, or held under backpressure): let the backlog
      // build up and write it as one batch later, unless this is the last write.
      if (!final && c.writer.desiredSize !== null && c.writer.desiredSize <= 0) return true;
      let count = (final ? total : dueAt(el)) - c.sent;
      if (count > 0 && c.capWrites) {
        let free = count;
        try {
          const m = engine.getMetrics(c.id);
          free = m.bufferCapacity - m.bufferSize;
        } catch {
          // closed from outside: the write is refused below
        }
        if (c.writer.desiredSize !== null && c.writer.desiredSize <= 0) free = 0;
        count = Math.min(count, free);
      }
      if (count > 0) {
        c.sent += count;
        const batch = makeBatch(c, count, el, now());
        c.inflight = c.writer.write(batch).then(
          () => undefined,
          () => {
            // Refused (the connection closed or failed): these messages count as failed.
            c.writer = null; // the connection hands out a fresh writable after a rejected write
          },
        );
      }
      return c.sent < total;
    };

    const startTime = Date.now();
    const start = now();
    let lastSample = start;
    progress(0);

    await new Promise((resolve) => {
      let timer = null;
      const onAbort = () => {
        aborted = true;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const tick = () => {
        timer = null;
        if (aborted) return;
        const t = now();
        const el = t - start;
        const final = el >= cfg.duration;
        let unwritten = false;
        for (const c of conns) if (writeDue(c, final ? cfg.duration : el, final)) unwritten = true;
        if (t - lastSample >= SAMPLE_MS) {
          lastSample = t;
          peakHeap = Math.max(peakHeap, heapUsed());
          progress(Math.min(0.99, el / cfg.duration)); // 1 once delivery is complete
          if (aborted) return; // aborted from the progress callback
        }
        if (final && !unwritten) {
          signal?.removeEventListener('abort', onAbort);
          resolve();
          return;
        }
        // Next: the next regular slot or burst, within [MIN_TICK_MS, MAX_TICK_MS].
        let next = ((Math.floor((el * cfg.messageRate) / 1000) + 1) * 1000) / cfg.messageRate;
        if (bursts > 0) next = Math.min(next, (Math.floor(el / cfg.burstMode.burstInterval) + 1) * cfg.burstMode.burstInterval);
        next = Math.min(next, cfg.duration);
        timer = setTimeout(tick, Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, next - el)));
      };
      tick();
    });

    // The last writes settle once the readers have made room (or are refused).
    if (!aborted) await Promise.all(conns.map((c) => c.inflight));

    // Drops and backpressure are final once writing has stopped: read them before closing.
    let dropped = 0;
    let backpressureEvents = 0;
    for (const c of conns) {
      try {
        const m = engine.getMetrics(c.id);
        dropped += m.dropped;
        backpressureEvents += m.backpressureEvents;
      } catch {
        // closed from outside: nothing to add
      }
    }
    for (const c of conns) {
      c.closed = true;
      if (aborted) c.reader?.cancel().catch(() => {});
      // A cancelled (finished) connection stays listed with its final figures until closed.
      if (engine.getConnection(c.id) === c.conn) await engine.closeConnection(c.id);
    }
    await Promise.all(readers);
    const duration = now() - start;
    peakHeap = Math.max(peakHeap, heapUsed());
    if (aborted) throw abortError(signal);

    // WebAssembly memory only grows, so its size now is its peak.
    let wasm = 0;
    try {
      wasm = engine.getMetrics().system.wasmMemoryBytes ?? 0;
    } catch {
      wasm = 0;
    }
    const st = samples.stats();
    // Failures: refused writes and messages never delivered (drops are counted on their own).
    const failed = Math.max(0, expected - received - dropped);
    const result = {
      config: cfg,
      startTime,
      endTime: startTime + Math.round(duration),
      duration,
      totalMessages: received,
      avgMessagesPerSecond: duration > 0 ? (received * 1000) / duration : 0,
      avgLatency: st.avg,
      minLatency: st.min,
      maxLatency: st.max,
      p95Latency: st.p95,
      p99Latency: st.p99,
      errorRate: expected > 0 ? failed / expected : 0,
      backpressureEvents,
      droppedMessages: dropped,
      memoryUsage: peakHeap + wasm,
    };
    this._results.push(result);
    progress(1);
    return result;
  }

  /** Runs the tests one after the other; returns their results (also kept for the report). */
  async runTestSuite(configs, options) {
    if (!Array.isArray(configs)) throw new TypeError(`configs must be an array of PerformanceTestConfig, got ${describe(configs)}`);
    configs.forEach((c, i) => checkConfig(c, `configs[${i}]`));
    const o = options ?? {};
    if (typeof o !== 'object') throw new TypeError(`options must be an object, got ${describe(o)}`);
    if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`onProgress must be a function, got ${describe(o.onProgress)}`);
    const results = [];
    for (const config of configs) {
      const onProgress = o.onProgress ? (f) => o.onProgress(config.name, f) : undefined;
      results.push(await this.runTest(config, { onProgress, signal: o.signal }));
    }
    return results;
  }

  /** All results so far, oldest first. */
  getResults() {
    return [...this._results];
  }

  /** A Markdown report of all results so far. */
  generateReport() {
    const lines = ['# Performance Test Report', ''];
    lines.push(`- **Engine Version**: ${version}`);
    lines.push(`- **Generated**: ${new Date().toISOString()}`);
    lines.push(`- **Tests**: ${this._results.length}`);
    lines.push('');
    if (this._results.length === 0) {
      lines.push('No tests have been run.', '');
      return lines.join('\n');
    }
    lines.push('## Summary', '');
    lines.push('| Test | Messages | Throughput (msg/s) | Avg Latency (ms) | P95 (ms) | P99 (ms) | Error Rate | Dropped |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of this._results) {
      lines.push(`| ${r.config.name.replace(/\|/g, '\\|')} | ${int(r.totalMessages)} | ${fix(r.avgMessagesPerSecond)} | ${fix(r.avgLatency)} | ${fix(r.p95Latency)} | ${fix(r.p99Latency)} | ${pct(r.errorRate)} | ${int(r.droppedMessages)} |`);
    }
    lines.push('');
    for (const r of this._results) {
      const c = r.config;
      lines.push(`## ${c.name}`, '');
      lines.push('### Configuration', '');
      lines.push(`- **Duration**: ${int(c.duration)} ms`);
      lines.push(`- **Message Rate**: ${num2(c.messageRate)} msg/s per connection`);
      lines.push(`- **Message Size**: ${int(c.messageSize)} bytes`);
      lines.push(`- **Concurrent Connections**: ${int(c.concurrentConnections)}`);
      lines.push(`- **Data Pattern**: ${c.dataPattern}`);
      const b = c.burstMode;
      lines.push(`- **Burst Mode**: ${b && b.enabled ? `${int(b.burstSize)} messages every ${int(b.burstInterval)} ms` : 'disabled'}`);
      lines.push('');
      lines.push('### Results', '');
      lines.push(`- **Expected Messages**: ${int(expectedMessages(c))}`);
      lines.push(`- **Total Messages**: ${int(r.totalMessages)}`);
      lines.push(`- **Measured Duration**: ${fix(r.duration)} ms`);
      lines.push(`- **Average Throughput**: ${fix(r.avgMessagesPerSecond)} msg/s`);
      lines.push(`- **Average Latency**: ${fix(r.avgLatency)} ms`);
      lines.push(`- **Min Latency**: ${fix(r.minLatency)} ms`);
      lines.push(`- **Max Latency**: ${fix(r.maxLatency)} ms`);
      lines.push(`- **P95 Latency**: ${fix(r.p95Latency)} ms`);
      lines.push(`- **P99 Latency**: ${fix(r.p99Latency)} ms`);
      lines.push(`- **Error Rate**: ${pct(r.errorRate)}`);
      lines.push(`- **Dropped Messages**: ${int(r.droppedMessages)}`);
      lines.push(`- **Backpressure Events**: ${int(r.backpressureEvents)}`);
      lines.push(`- **Memory Usage**: ${(r.memoryUsage / (1024 * 1024)).toFixed(2)} MB`);
      lines.push('');
    }
    return lines.join('\n');
  }
}

function fix(v) {
  return Number.isFinite(v) ? v.toFixed(2) : String(v);
}
function num2(v) {
  return Number.isInteger(v) ? String(v) : fix(v);
}
function int(v) {
  return Number.isFinite(v) ? String(Math.round(v)) : String(v);
}
function pct(v) {
  return `${(v * 100).toFixed(2)}%`;
}
