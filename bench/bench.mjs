#!/usr/bin/env node
// Benchmarks of @nodeflow/stream-engine, side by side in one Node process.
//
//   node bench/bench.mjs [--quick] [--rounds N] [--messages N]
//                        [--stress-seconds N] [--overload-seconds N] [--json PATH]
//
// 1. Throughput: a plain Web Streams pipe, the engine with one write per message (default
//    batchTimeout and 0), the engine with batch writes (arrays of 50), and RxJS
//    Subject + bufferCount(50), on the same pre-generated messages, interleaved in rounds with a
//    rotating order; the median msg/s of each is reported.
// 2. Stress (the old engine's "High Volume Stress Test"): 10 connections x 1000 msg/s paced
//    against the clock; delivered/expected and write-to-read latency.
// 3. Overload (flow control): one producer at 10x the reader's rate ignoring backpressure, under
//    each flow policy; per-class written/delivered/dropped, latency and memory.
//
// Results go to stdout (tables) and to bench/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Subject, bufferCount } from 'rxjs';
import { StreamEngine, DefaultBackpressureHandler, AdaptiveBackpressureHandler, version } from '@nodeflow/stream-engine';

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** Resolves to the promise's value, or to 'timeout' after `ms`; never keeps the process alive. */
function withTimeout(promise, ms) {
  let timer;
  const guard = new Promise((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}
const HERE = dirname(fileURLToPath(import.meta.url));

// ---- options -------------------------------------------------------------------------------------

function parseArgs(argv) {
  const quick = argv.includes('--quick');
  const o = {
    quick,
    rounds: quick ? 3 : 5,
    messages: quick ? 40_000 : 300_000,
    stressSeconds: quick ? 1 : 5,
    overloadSeconds: quick ? 1.25 : 5,
    json: resolve(HERE, 'results/latest.json'),
    mix: [10, 30, 60], // overload: percent critical, high, low
  };
  const num = (i, name) => {
    const v = Number(argv[i + 1]);
    if (!(v > 0)) throw new Error(`${name} needs a positive number, got ${argv[i + 1]}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') continue;
    else if (a === '--rounds') o.rounds = Math.round(num(i++, a));
    else if (a === '--messages') o.messages = Math.round(num(i++, a));
    else if (a === '--stress-seconds') o.stressSeconds = num(i++, a);
    else if (a === '--overload-seconds') o.overloadSeconds = num(i++, a);
    else if (a === '--json') o.json = resolve(argv[++i]);
    else if (a === '--overload-mix') {
      o.mix = String(argv[++i]).split(',').map(Number);
      if (o.mix.length !== 3 || o.mix.some((x) => !Number.isInteger(x) || x < 0) || o.mix[0] + o.mix[1] + o.mix[2] !== 100) {
        throw new Error(`--overload-mix needs three integer percentages (critical,high,low) summing to 100, got ${argv[i]}`);
      }
    }
    else if (a === '--help' || a === '-h') {
      console.log('usage: node bench/bench.mjs [--quick] [--rounds N] [--messages N] [--stress-seconds N] [--overload-seconds N] [--overload-mix C,H,L] [--json PATH]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

// ---- helpers -------------------------------------------------------------------------------------

// A forced GC between runs makes the runs less noisy (each run starts from a clean heap).
let gc = globalThis.gc;
if (typeof gc !== 'function') {
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc');
  } catch {
    gc = () => {};
  }
}

const errors = [];
process.on('unhandledRejection', (e) => {
  errors.push(String(e?.stack ?? e));
});

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** Exact nearest-rank statistics over the first `n` values of `arr` (sorts a copy). */
function latencyStats(arr, n) {
  if (n === 0) return { count: 0, avg: NaN, p50: NaN, p95: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(arr.subarray(0, n)).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  const q = (p) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
  return { count: n, avg: sum / n, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s[n - 1] };
}

/** Event-loop delay over a run (ms): how late timers and callbacks ran, i.e. machine/CPU noise. */
function loopDelay() {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  return () => {
    h.disable();
    return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
  };
}

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n));
const fmtMs = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const fmtMB = (b) => (b / 1048576).toFixed(1);
const fmtX = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '-');
const ok = (b) => (b ? 'OK' : 'MISS');

/** Prints an aligned table; columns whose header starts with '<' are left-aligned. */
function table(headers, rows) {
  const left = headers.map((h) => h.startsWith('<'));
  const hs = headers.map((h) => (h.startsWith('<') ? h.slice(1) : h));
  const cells = rows.map((r) => r.map((c) => String(c)));
  const w = hs.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (left[i] ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  console.log('  ' + line(hs));
  console.log('  ' + w.map((x) => '-'.repeat(x)).join('  '));
  for (const r of cells) console.log('  ' + line(r));
}

function heading(s) {
  console.log(`\n${s}\n${'='.repeat(s.length)}`);
}

/** Check of the connection invariant messagesIn == messagesOut + dropped + bufferSize. */
function invariant(m) {
  return m.messagesIn === m.messagesOut + m.dropped + m.bufferSize;
}

// ---- messages ------------------------------------------------------------------------------------

function makeMessages(n, { prefix = 'm', source = 'src', target = 'dst', classes = null } = {}) {
  const out = new Array(n);
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const m = { id: `${prefix}${i}`, timestamp: t0 + i, sourceNodeId: source, targetNodeId: target, port: 'out', data: { value: i } };
    if (classes) m.metadata = { priority: classes[i] };
    out[i] = m;
  }
  return out;
}

function chunk(arr, size) {
  const out = [];
  for (let i = 0; i < arr.length; i += size) out.push(arr.slice(i, i + size));
  return out;
}

/** Deterministic mix: in every block of 100, mix[0] critical, mix[1] high, mix[2] low, shuffled. */
function priorityMix(n, mix, seed = 12345) {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const block = [...Array(mix[0]).fill('critical'), ...Array(mix[1]).fill('high'), ...Array(mix[2]).fill('low')];
  const out = new Array(n);
  for (let b = 0; b < n; b += block.length) {
    const blk = block.slice();
    for (let i = blk.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [blk[i], blk[j]] = [blk[j], blk[i]];
    }
    for (let i = 0; i < blk.length && b + i < n; i++) out[b + i] = blk[i];
  }
  return out;
}

// ---- 1. throughput -------------------------------------------------------------------------------

/** The producer pattern shared by the stream contenders: respect writer.ready. */
async function produce(writer, msgs) {
  for (let i = 0; i < msgs.length; i++) {
    if (writer.desiredSize <= 0) await writer.ready;
    writer.write(msgs[i]);
  }
  await writer.ready;
}

async function runPlainPipe(msgs, bufferSize) {
  // A lossless pipe: the sink enqueues into a ReadableStream of highWaterMark bufferSize and
  // waits for a pull when that queue is full.
  let rc;
  let waiting = null;
  const readable = new ReadableStream(
    {
      start(c) {
        rc = c;
      },
      pull() {
        if (waiting !== null) {
          const w = waiting;
          waiting = null;
          w();
        }
      },
    },
    { highWaterMark: bufferSize },
  );
  const writable = new WritableStream({
    write(m) {
      if (rc.desiredSize > 0) {
        rc.enqueue(m);
        return undefined;
      }
      return new Promise((res) => {
        waiting = () => {
          rc.enqueue(m);
          res();
        };
      });
    },
    close() {
      rc.close();
    },
  });
  const writer = writable.getWriter();
  const reader = readable.getReader();
  const n = msgs.length;
  const t0 = now();
  const drain = (async () => {
    let count = 0;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      count++;
    }
    return count;
  })();
  await produce(writer, msgs);
  await writer.close();
  const delivered = await drain;
  const ms = now() - t0;
  return { ms, written: n, delivered, lossless: delivered === n };
}

async function runEngine(input, n, connCfg) {
  // `input` is the message array (one write per message) or an array of batches.
  const engine = new StreamEngine();
  try {
    const id = engine.createConnection('src', 'dst', 'out', 'in', connCfg);
    const conn = engine.getConnection(id);
    const writer = conn.writer;
    const reader = conn.readable.getReader();
    let batches = 0;
    const t0 = now();
    const drain = (async () => {
      let count = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        count += value.length;
        batches++;
      }
      return count;
    })();
    await produce(writer, input);
    const m = engine.getMetrics(id); // all writes settled: in == n
    await writer.close(); // flushes the last partial batch without waiting for batchTimeout
    const delivered = await drain;
    const ms = now() - t0;
    return {
      ms,
      written: n,
      delivered,
      batches,
      metricsIn: m.messagesIn,
      invariant: invariant(m),
      lossless: delivered === n && m.messagesIn === n && m.dropped === 0,
    };
  } finally {
    engine.destroy();
  }
}

async function runRx(msgs, size) {
  const subject = new Subject();
  let delivered = 0;
  let batches = 0;
  const n = msgs.length;
  const t0 = now();
  subject.pipe(bufferCount(size)).subscribe((b) => {
    delivered += b.length;
    batches++;
  });
  for (let i = 0; i < n; i++) subject.next(msgs[i]);
  subject.complete();
  const ms = now() - t0;
  return { ms, written: n, delivered, batches, lossless: delivered === n };
}

async function throughput(opts) {
  const N = opts.messages;
  const BATCH = 50;
  const BUFFER = 10_000;
  const msgs = makeMessages(N);
  const batches = chunk(msgs, BATCH);
  const contenders = [
    { key: 'plain', label: 'plain Web Streams pipe (per message)', run: () => runPlainPipe(msgs, BUFFER) },
    { key: 'engineMsg16', label: 'engine, per-message writes, batchTimeout 16', run: () => runEngine(msgs, N, { bufferSize: BUFFER }) },
    { key: 'engineMsg0', label: 'engine, per-message writes, batchTimeout 0', run: () => runEngine(msgs, N, { bufferSize: BUFFER, batchTimeout: 0 }) },
    { key: 'engineBatch16', label: `engine, batch writes of ${BATCH}, batchTimeout 16`, run: () => runEngine(batches, N, { bufferSize: BUFFER }) },
    { key: 'engineBatch0', label: `engine, batch writes of ${BATCH}, batchTimeout 0`, run: () => runEngine(batches, N, { bufferSize: BUFFER, batchTimeout: 0 }) },
    { key: 'rxjs', label: `RxJS Subject + bufferCount(${BATCH})`, run: () => runRx(msgs, BATCH) },
  ];
  heading(`1. Throughput: ${fmtInt(N)} messages per run, ${opts.rounds} rounds, rotating order`);
  // Round 0 warms up (JIT, wasm tier-up, Node's stream internals) and is not counted: the first
  // few hundred thousand messages through a fresh process run several times slower.
  const res = Object.fromEntries(contenders.map((c) => [c.key, { label: c.label, runs: [], warmup: null }]));
  for (let r = 0; r <= opts.rounds; r++) {
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    const line = [];
    for (const c of order) {
      gc();
      const out = await c.run();
      out.msgPerSec = (out.written / out.ms) * 1000;
      if (r === 0) res[c.key].warmup = out;
      else res[c.key].runs.push(out);
      line.push(`${c.key} ${fmtInt(out.msgPerSec)}`);
    }
    console.log(`  ${r === 0 ? 'warm-up' : `round ${r}`}: ${line.join(', ')}`);
  }
  for (const k in res) {
    const x = res[k];
    x.medianMsgPerSec = median(x.runs.map((o) => o.msgPerSec));
    x.allLossless = x.runs.every((o) => o.lossless);
    x.medianBatches = median(x.runs.map((o) => o.batches ?? o.delivered));
  }
  console.log('');
  table(
    ['<contender', 'median msg/s', 'min msg/s', 'max msg/s', 'batches/run', 'delivered == written'],
    Object.values(res).map((x) => [
      x.label,
      fmtInt(x.medianMsgPerSec),
      fmtInt(Math.min(...x.runs.map((o) => o.msgPerSec))),
      fmtInt(Math.max(...x.runs.map((o) => o.msgPerSec))),
      fmtInt(x.medianBatches),
      x.allLossless ? `yes (${x.runs.length}/${x.runs.length} runs)` : `NO: ${x.runs.map((o) => `${o.delivered}/${o.written}`).join(' ')}`,
    ]),
  );
  const ratios = {
    engineMsgDefaultVsPlain: res.engineMsg16.medianMsgPerSec / res.plain.medianMsgPerSec,
    engineMsg0VsPlain: res.engineMsg0.medianMsgPerSec / res.plain.medianMsgPerSec,
    engineBatchDefaultVsRx: res.engineBatch16.medianMsgPerSec / res.rxjs.medianMsgPerSec,
    engineBatch0VsRx: res.engineBatch0.medianMsgPerSec / res.rxjs.medianMsgPerSec,
  };
  console.log('');
  table(
    ['<ratio (medians)', 'value', 'target', '<verdict'],
    [
      ['engine per-message (batchTimeout 16) / plain pipe', fmtX(ratios.engineMsgDefaultVsPlain), '>= 0.80x', ok(ratios.engineMsgDefaultVsPlain >= 0.8)],
      ['engine per-message (batchTimeout 0) / plain pipe', fmtX(ratios.engineMsg0VsPlain), '>= 0.80x', ok(ratios.engineMsg0VsPlain >= 0.8)],
      ['engine batch (batchTimeout 16) / RxJS', fmtX(ratios.engineBatchDefaultVsRx), '>= 2.00x', ok(ratios.engineBatchDefaultVsRx >= 2)],
      ['engine batch (batchTimeout 0) / RxJS', fmtX(ratios.engineBatch0VsRx), '>= 2.00x', ok(ratios.engineBatch0VsRx >= 2)],
    ],
  );
  return { messages: N, batchSize: BATCH, bufferSize: BUFFER, rounds: opts.rounds, contenders: res, ratios };
}

// ---- 2. stress -----------------------------------------------------------------------------------

async function stressRun(seconds, batchTimeout) {
  const CONNS = 10;
  const RATE = 1000; // per connection, msg/s
  const perConn = Math.round(RATE * seconds);
  const total = CONNS * perConn;
  const writeAt = new Float64Array(total);
  const lat = new Float64Array(total);
  let nLat = 0;
  const engine = new StreamEngine();
  const conns = [];
  for (let c = 0; c < CONNS; c++) {
    const cfg = batchTimeout === undefined ? {} : { batchTimeout };
    const id = engine.createConnection(`stress-src-${c}`, `stress-dst-${c}`, 'out', 'in', cfg);
    const conn = engine.getConnection(id);
    // data.value is the message's global index, to find its write time.
    const msgs = makeMessages(perConn, { prefix: `s${c}-`, source: `stress-src-${c}` });
    for (let k = 0; k < perConn; k++) msgs[k].data.value = c * perConn + k;
    conns.push({ id, conn, writer: conn.writer, reader: conn.readable.getReader(), msgs, written: 0, delivered: 0, batches: 0 });
  }
  const readers = conns.map(async (s) => {
    for (;;) {
      const { value, done } = await s.reader.read();
      if (done) break;
      const t = now();
      for (let i = 0; i < value.length; i++) lat[nLat++] = t - writeAt[value[i].data.value];
      s.delivered += value.length;
      s.batches++;
    }
  });
  let writeErrors = 0;
  const onErr = () => {
    writeErrors++;
  };
  const stopLoop = loopDelay();
  const t0 = now();
  const tick = (final) => {
    const due = final ? perConn : Math.min(perConn, Math.floor(((now() - t0) * RATE) / 1000));
    for (const s of conns) {
      while (s.written < due) {
        const m = s.msgs[s.written++];
        writeAt[m.data.value] = now();
        s.writer.write(m).catch(onErr);
      }
    }
  };
  await new Promise((done) => {
    const timer = setInterval(() => {
      if (now() - t0 >= seconds * 1000) {
        clearInterval(timer);
        tick(true);
        done();
      } else tick(false);
    }, 1);
  });
  const metrics = conns.map((s) => engine.getMetrics(s.id));
  await Promise.all(conns.map((s) => s.writer.close().catch(onErr)));
  const finished = await withTimeout(Promise.all(readers).then(() => 'ok'), 5000);
  const eventLoopDelay = stopLoop();
  engine.destroy();
  const delivered = conns.reduce((a, s) => a + s.delivered, 0);
  const batches = conns.reduce((a, s) => a + s.batches, 0);
  return {
    batchTimeout: batchTimeout ?? engine.config.batchTimeout,
    connections: CONNS,
    ratePerConnection: RATE,
    seconds,
    expected: total,
    delivered,
    batches,
    avgBatchSize: delivered / batches,
    readersFinished: finished === 'ok',
    writeErrors,
    invariantHeld: metrics.every(invariant),
    engineP99: Math.max(...metrics.map((m) => m.p99Latency)),
    eventLoopDelay,
    latency: latencyStats(lat, nLat),
  };
}

async function stress(opts) {
  heading(`2. Stress: 10 connections x 1000 msg/s for ${opts.stressSeconds} s, paced by a 1 ms timer`);
  const runs = [];
  for (const bt of [undefined, 0]) {
    gc();
    runs.push(await stressRun(opts.stressSeconds, bt));
  }
  table(
    ['batchTimeout', 'delivered/expected', 'batches', 'avg batch', 'avg ms', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', '<p99 target', '<verdict', 'engine p99 ms', 'loop delay p99/max ms'],
    runs.map((r) => {
      const target = r.batchTimeout === 0 ? 1 : r.batchTimeout + 4;
      r.p99Target = target;
      r.p99Ok = r.latency.p99 <= target;
      return [
        r.batchTimeout,
        `${fmtInt(r.delivered)}/${fmtInt(r.expected)}`,
        fmtInt(r.batches),
        r.avgBatchSize.toFixed(1),
        fmtMs(r.latency.avg),
        fmtMs(r.latency.p50),
        fmtMs(r.latency.p95),
        fmtMs(r.latency.p99),
        fmtMs(r.latency.max),
        r.batchTimeout === 0 ? '< 1 ms' : `<= ${target} ms`,
        ok(r.p99Ok && r.delivered === r.expected),
        fmtMs(r.engineP99),
        `${fmtMs(r.eventLoopDelay.p99)}/${fmtMs(r.eventLoopDelay.max)}`,
      ];
    }),
  );
  for (const r of runs) {
    if (!r.readersFinished || r.writeErrors || !r.invariantHeld) {
      console.log(`  ! batchTimeout ${r.batchTimeout}: readersFinished=${r.readersFinished} writeErrors=${r.writeErrors} invariant=${r.invariantHeld}`);
    }
  }
  console.log('  (latency: from the writer.write() call to the moment the reader gets the batch; exact percentiles;');
  console.log("   engine p99: the worst connection's p99Latency from getMetrics (accept -> take, histogram-based);");
  console.log('   loop delay: event-loop delay during the run, a measure of CPU contention / timer lateness)');
  return runs;
}

// ---- 3. overload ---------------------------------------------------------------------------------

const CLASSES = ['critical', 'high', 'low'];

async function overloadRun(name, connCfg, seconds, msgs, classes) {
  const RATE = 50_000; // producer, msg/s
  const READ_EVERY = 10; // ms, one batch per read
  const PENDING_CAP = 10_000; // the producer skips writing while more writes than this are pending
  const total = Math.round(RATE * seconds);
  const writeAt = new Float64Array(total);
  const lat = new Float64Array(total);
  const latCrit = new Float64Array(total);
  let nLat = 0;
  let nCrit = 0;
  const written = { critical: 0, high: 0, low: 0 };
  const skipped = { critical: 0, high: 0, low: 0 };
  const deliveredOwn = { critical: 0, high: 0, low: 0 };
  let pending = 0;
  let maxPending = 0;
  let writeErrors = 0;
  const onDone = () => {
    pending--;
  };
  const onErr = () => {
    pending--;
    writeErrors++;
  };

  gc();
  const engine = new StreamEngine();
  const id = engine.createConnection('ov-src', 'ov-dst', 'out', 'in', connCfg);
  const conn = engine.getConnection(id);
  const writer = conn.writer;
  const reader = conn.readable.getReader();

  // Memory samples every 100 ms.
  const mem = [];
  const sample = () => {
    const u = process.memoryUsage();
    mem.push({ t: now() - t0, rss: u.rss, heapUsed: u.heapUsed });
  };

  const stopLoop = loopDelay();
  const t0 = now();
  const tEnd = t0 + seconds * 1000;
  sample();
  const memTimer = setInterval(sample, 100);

  // Reader: one batch every READ_EVERY ms (paced against the clock) until the end, then as fast
  // as possible to drain what is left (latencies of that drain are not counted).
  let fast = false;
  let wake = null;
  let batches = 0;
  let batchesInRun = 0;
  let deliveredInRun = 0;
  const readerDone = (async () => {
    let k = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const t = now();
      batches++;
      if (t <= tEnd) {
        batchesInRun++;
        deliveredInRun += value.length;
      }
      for (let i = 0; i < value.length; i++) {
        const m = value[i];
        const idx = m.data.value;
        const cls = classes[idx];
        deliveredOwn[cls]++;
        if (t <= tEnd) {
          const l = t - writeAt[idx];
          lat[nLat++] = l;
          if (cls === 'critical') latCrit[nCrit++] = l;
        }
      }
      if (fast) continue;
      k++;
      const d = t0 + k * READ_EVERY - now();
      if (d > 0) {
        await new Promise((r) => {
          const timer = setTimeout(() => {
            wake = null;
            r();
          }, d);
          wake = () => {
            clearTimeout(timer);
            wake = null;
            r();
          };
        });
      }
    }
  })();

  // Producer: a 1 ms timer writing the due messages, never awaiting writer.ready.
  let next = 0;
  const tick = (final) => {
    const due = final ? total : Math.min(total, Math.floor(((now() - t0) * RATE) / 1000));
    while (next < due) {
      const i = next++;
      const cls = classes[i];
      if (pending >= PENDING_CAP) {
        skipped[cls]++;
        continue;
      }
      written[cls]++;
      writeAt[i] = now();
      pending++;
      if (pending > maxPending) maxPending = pending;
      writer.write(msgs[i]).then(onDone, onErr);
    }
  };
  await new Promise((done) => {
    const timer = setInterval(() => {
      if (now() >= tEnd) {
        clearInterval(timer);
        tick(true);
        done();
      } else tick(false);
    }, 1);
  });
  const atStop = engine.getMetrics(id);
  const pendingAtStop = pending;
  const eventLoopDelay = stopLoop();
  clearInterval(memTimer);
  sample();

  // Drain: the reader goes fast, the pending writes settle, everything is accounted for.
  fast = true;
  if (wake) wake();
  const drainStart = now();
  while ((pending > 0 || engine.getMetrics(id).bufferSize > 0) && now() - drainStart < 15_000) await sleep(5);
  const final = engine.getMetrics(id);
  const drainMs = now() - drainStart;
  await writer.close().catch(() => {});
  await withTimeout(readerDone, 5000);
  engine.destroy();

  // Memory: value at 1/3 of the run and at the end; "flat" compares the post-GC floor of the
  // heap (minimum heapUsed) of the middle third with that of the last third.
  const span = seconds * 1000;
  const at = (t) => mem.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best), mem[0]);
  const floor = (a, b) => Math.min(...mem.filter((s) => s.t >= a && s.t <= b).map((s) => s.heapUsed));
  const memory = {
    peakRss: Math.max(...mem.map((s) => s.rss)),
    peakHeapUsed: Math.max(...mem.map((s) => s.heapUsed)),
    third: at(span / 3),
    end: mem[mem.length - 1],
    heapFloorMiddle: floor(span / 3, (2 * span) / 3),
    heapFloorLast: floor((2 * span) / 3, span + 1000),
    samples: mem.length,
  };
  memory.heapFloorGrowth = memory.heapFloorLast - memory.heapFloorMiddle;
  memory.flat = memory.heapFloorGrowth < 8 * 1048576;

  const writtenTotal = written.critical + written.high + written.low;
  const deliveredOwnTotal = deliveredOwn.critical + deliveredOwn.high + deliveredOwn.low;
  return {
    name,
    config: describeCfg(connCfg),
    seconds,
    producerRate: RATE,
    readerBatchEveryMs: READ_EVERY,
    pendingCap: PENDING_CAP,
    offered: total,
    written,
    skipped,
    writtenTotal,
    writeErrors,
    maxPendingWrites: maxPending,
    pendingAtStop,
    readerBatches: batches,
    avgBatchInRun: deliveredInRun / batchesInRun,
    deliveredOwn,
    deliveredOwnTotal,
    atStop: pick(atStop),
    final: pick(final),
    invariantAtStop: invariant(atStop),
    invariantFinal: invariant(final),
    drainMs,
    accountedFor: final.messagesIn === writtenTotal && final.messagesOut === deliveredOwnTotal && final.messagesOut + final.dropped === writtenTotal,
    latency: latencyStats(lat, nLat),
    criticalLatency: latencyStats(latCrit, nCrit),
    eventLoopDelay,
    memory,
  };
}

function pick(m) {
  return {
    messagesIn: m.messagesIn,
    messagesOut: m.messagesOut,
    dropped: m.dropped,
    bufferSize: m.bufferSize,
    drops: m.drops,
    dropsByPriority: m.dropsByPriority,
    deliveredByPriority: m.deliveredByPriority,
    backpressureEvents: m.backpressureEvents,
    p95Latency: m.p95Latency,
    p99Latency: m.p99Latency,
    adaptive: m.adaptive,
  };
}

function describeCfg(cfg) {
  const out = {};
  for (const [k, v] of Object.entries(cfg)) {
    out[k] = k === 'backpressureHandler' ? { type: v.constructor.name, options: v.options } : v;
  }
  return out;
}

async function overload(opts) {
  const S = opts.overloadSeconds;
  const mix = opts.mix;
  heading(`3. Overload: producer 50,000 msg/s ignoring backpressure, reader 1 batch (<= 50) per 10 ms, ${S} s per case`);
  console.log(`  mix: ${mix[0]}% critical, ${mix[1]}% high, ${mix[2]}% low; bufferSize 1000, maxBatchSize 50, batchTimeout 16 (defaults)`);
  console.log('  the producer skips a message (counted, not written) while >= 10,000 writes are pending: Node\'s');
  console.log('  WritableStream queue costs O(queue length) per write beyond ~16k queued writes (Array#shift), which');
  console.log('  would otherwise make a lossless connection under a producer that ignores backpressure collapse');
  const total = Math.round(50_000 * S);
  const classes = priorityMix(total, mix);
  const msgs = makeMessages(total, { prefix: 'o', source: 'ov-src', classes });
  const base = { bufferSize: 1000, maxBatchSize: 50 };
  const cases = [
    ['no handler (block)', { ...base }], // the engine's default: dropPolicy 'block', lossless
    ['DefaultBackpressureHandler', { ...base, backpressureHandler: new DefaultBackpressureHandler() }],
    ['Adaptive (target 100 ms)', { ...base, backpressureHandler: new AdaptiveBackpressureHandler({ targetLatency: 100 }) }],
    ["dropPolicy 'priority'", { ...base, dropPolicy: 'priority' }],
  ];
  const runs = [];
  for (const [name, cfg] of cases) {
    const r = await overloadRun(name, cfg, S, msgs, classes);
    runs.push(r);
    console.log(`  ${name}: done (${fmtInt(r.writtenTotal)} written, drain after stop ${fmtMs(r.drainMs)} ms)`);
  }

  console.log('\n  Counts per class (written by the producer / delivered / dropped by the engine; metrics after the drain)');
  const rows = [];
  for (const r of runs) {
    for (const cls of CLASSES) {
      rows.push([
        cls === 'critical' ? r.name : '',
        cls,
        fmtInt(r.written[cls]),
        fmtInt(r.skipped[cls]),
        fmtInt(r.final.deliveredByPriority?.[cls]),
        fmtInt(r.final.dropsByPriority[cls]),
        fmtInt(r.deliveredOwn[cls]),
      ]);
    }
  }
  table(['<case', '<class', 'written', 'skipped', 'delivered', 'dropped', 'reader got'], rows);

  console.log('\n  Accounting (engine metrics): at the stop of the producer, and after draining');
  table(
    ['<case', 'in@stop', 'out@stop', 'dropped@stop', 'buffer@stop', 'pending writes@stop', 'in', 'out', 'dropped', '<drops by reason', '<in==out+dropped+buffer', '<written==delivered+dropped'],
    runs.map((r) => [
      r.name,
      fmtInt(r.atStop.messagesIn),
      fmtInt(r.atStop.messagesOut),
      fmtInt(r.atStop.dropped),
      fmtInt(r.atStop.bufferSize),
      fmtInt(r.pendingAtStop),
      fmtInt(r.final.messagesIn),
      fmtInt(r.final.messagesOut),
      fmtInt(r.final.dropped),
      Object.entries(r.final.drops).filter(([, v]) => v > 0).map(([k, v]) => `${k}:${v}`).join(' ') || '-',
      r.invariantAtStop && r.invariantFinal ? 'yes' : 'NO',
      r.accountedFor ? 'yes' : 'NO',
    ]),
  );

  console.log('\n  Latency of delivered messages (write call -> reader) and reader batch size, during the run; memory of the process');
  table(
    ['<case', 'delivered', 'avg batch', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'crit p99 ms', 'loop delay p99 ms', 'peak rss MB', 'rss 1/3 MB', 'rss end MB', 'peak heap MB', 'heap 1/3 MB', 'heap end MB', 'heap floor growth MB'],
    runs.map((r) => [
      r.name,
      fmtInt(r.latency.count),
      r.avgBatchInRun.toFixed(1),
      fmtMs(r.latency.p50),
      fmtMs(r.latency.p95),
      fmtMs(r.latency.p99),
      fmtMs(r.latency.max),
      fmtMs(r.criticalLatency.p99),
      fmtMs(r.eventLoopDelay.p99),
      fmtMB(r.memory.peakRss),
      fmtMB(r.memory.third.rss),
      fmtMB(r.memory.end.rss),
      fmtMB(r.memory.peakHeapUsed),
      fmtMB(r.memory.third.heapUsed),
      fmtMB(r.memory.end.heapUsed),
      fmtMB(r.memory.heapFloorGrowth),
    ]),
  );

  console.log('\n  Targets');
  const trows = [];
  for (const r of runs) {
    const crit = r.final.dropsByPriority.critical;
    r.targets = { zeroCriticalDrops: crit === 0, memoryFlat: r.memory.flat };
    trows.push([r.name, 'zero critical drops', `${crit} dropped`, ok(crit === 0)]);
    if (r.name.startsWith('Adaptive')) {
      r.targets.p95UnderTarget = r.latency.p95 < 100;
      trows.push([r.name, 'p95 < targetLatency (100 ms)', `${fmtMs(r.latency.p95)} ms`, ok(r.latency.p95 < 100)]);
    }
    trows.push([r.name, 'memory flat (heap floor growth < 8 MB)', `${fmtMB(r.memory.heapFloorGrowth)} MB`, ok(r.memory.flat)]);
    if (r.skipped.critical + r.skipped.high + r.skipped.low > 0) {
      trows.push([r.name, 'producer never skipped (pending cap)', `${fmtInt(r.skipped.critical + r.skipped.high + r.skipped.low)} skipped, max ${fmtInt(r.maxPendingWrites)} pending`, r.name.startsWith('no handler') ? 'expected (lossless)' : 'MISS']);
    }
  }
  table(['<case', '<target', '<measured', '<verdict'], trows);
  return runs;
}

// ---- main ----------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = now();
  const cpus = os.cpus();
  const env = {
    engineVersion: version,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    date: new Date().toISOString(),
    options: { ...opts, json: undefined },
  };
  console.log(`@nodeflow/stream-engine ${version} benchmark${opts.quick ? ' (quick)' : ''}`);
  console.log(`node ${process.version} (${env.platform}), ${env.cpus} x ${env.cpu}`);

  const results = { env };
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const timed = async (fn) => {
    const t = now();
    const before = load();
    const r = await fn(opts);
    const after = load();
    console.log(`  (section took ${((now() - t) / 1000).toFixed(1)} s; load average before: ${before}, after: ${after})`);
    if (Array.isArray(r)) for (const x of r) x.loadAverage = { before, after };
    else r.loadAverage = { before, after };
    return r;
  };
  results.throughput = await timed(throughput);
  results.stress = await timed(stress);
  results.overload = await timed(overload);
  results.unhandledErrors = errors;
  results.totalSeconds = (now() - started) / 1000;

  mkdirSync(dirname(opts.json), { recursive: true });
  writeFileSync(opts.json, JSON.stringify(results, null, 2) + '\n');
  console.log(`\nunhandled errors: ${errors.length}${errors.length ? '\n' + errors.slice(0, 5).join('\n') : ''}`);
  console.log(`total ${results.totalSeconds.toFixed(1)} s; results written to ${opts.json}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
