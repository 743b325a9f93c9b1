#!/usr/bin/env node
// Soak benchmark of @nodeflow/stream-engine (a benchmark, not a test): sustained overload for
// minutes, with memory sampled over time and every message tracked by id.
//
//   node bench/soak.mjs [--minutes 10] [--scenarios crash,default,adaptive,oldest,conflate]
//                       [--sample-seconds 60] [--json PATH]
//   node bench/soak.mjs --child <scenario> [--seconds N] [--sample-seconds N]
//
// The parent runs each scenario in its own child process (in parallel, with the same Node binary
// as the parent, so `scripts/node18 bench/soak.mjs` soaks Node 18), so that one run of
// `--minutes` covers them all and a crash of one child is reported, not fatal. Each child prints
// one JSON line per sample and a final result line; the parent prints a table and writes JSON to
// bench/results/.
//
// Scenarios: 10 connections, each written an array of 50 messages every 10 ms without awaiting
// (5,000 msg/s per connection), read by readers that sleep 2 ms per message delivered (ten times
// slower than the producer):
//   crash     DefaultBackpressureHandler, 10% critical and 90% low: the pattern of issue 8 item 2
//             that aborted Node 20 (V8 "unreachable code" in the deoptimizer) before the fix
//   default   DefaultBackpressureHandler, 10% critical, 30% high, 60% low
//   adaptive  AdaptiveBackpressureHandler({ targetLatency: 100 }), same mix
//   oldest    dropPolicy: 'oldest', same mix
//   conflate  conflate: true under DefaultBackpressureHandler; non-critical messages carry one of
//             100 keys per connection, critical ones none
//
// The oracle: every id written must end exactly once as delivered (on its own connection's
// reader), dropped (onDrop, with a reason) or dead-lettered; never twice, never missing, never on
// another connection, never a hole (undefined) in a batch. It keeps memory bounded: ids are
// tracked in chunks of 64k that are freed once all their ids are settled, so the process's memory
// figures are the engine's, not the oracle's.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamEngine, DefaultBackpressureHandler, AdaptiveBackpressureHandler } from '@nodeflow/stream-engine';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCENARIOS = ['crash', 'default', 'adaptive', 'oldest', 'conflate'];
const CONNECTIONS = 10;
const BATCH = 50;
const PERIOD_MS = 10;
const READ_MS_PER_MESSAGE = 2;
const MAX_CATCH_UP = 5;
const REASONS = ['priority', 'oldest', 'newest', 'conflated', 'dead-letter'];

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Resolves when `promise` does or after `ms`, whichever is first; leaves no timer behind. */
function within(promise, ms) {
  let timer;
  const guard = new Promise((r) => {
    timer = setTimeout(r, ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// ---- the per-id oracle ------------------------------------------------------------------------

const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const WRITTEN = 1;
const OUTCOME = { delivered: 2, dropped: 3, 'dead-letter': 4, refused: 5 };

/** One connection's ids: 0..written-1, each settled exactly once. */
class Oracle {
  constructor() {
    this.written = 0;
    this.open = 0; // written, not settled yet
    this.chunks = new Map(); // chunk index -> { st: Uint8Array, open }
    this.duplicates = 0;
    this.unknown = 0;
    this.examples = [];
  }

  /** Registers the next id; returns its sequence number. */
  write() {
    const seq = this.written++;
    const ci = seq >>> CHUNK_BITS;
    let ch = this.chunks.get(ci);
    if (ch === undefined) {
      ch = { st: new Uint8Array(CHUNK), open: 0 };
      this.chunks.set(ci, ch);
    }
    ch.st[seq & (CHUNK - 1)] = WRITTEN;
    ch.open++;
    this.open++;
    return seq;
  }

  settle(seq, outcome) {
    if (!(seq >= 0 && seq < this.written)) return this._bad('unknown', seq, outcome);
    const ci = seq >>> CHUNK_BITS;
    const ch = this.chunks.get(ci);
    // A freed chunk had every id settled: a second outcome is a duplicate.
    if (ch === undefined) return this._bad('duplicates', seq, outcome);
    const i = seq & (CHUNK - 1);
    if (ch.st[i] !== WRITTEN) return this._bad('duplicates', seq, outcome);
    ch.st[i] = OUTCOME[outcome];
    ch.open--;
    this.open--;
    if (ch.open === 0 && (ci + 1) * CHUNK <= this.written) this.chunks.delete(ci);
  }

  _bad(kind, seq, outcome) {
    this[kind]++;
    if (this.examples.length < 5) this.examples.push(`${kind}: seq ${seq} ${outcome}`);
  }
}

// ---- one scenario in this process --------------------------------------------------------------

function connectionOptions(scenario, onDrop) {
  switch (scenario) {
    case 'crash':
    case 'default':
      return { onDrop };
    case 'adaptive':
      return { onDrop, backpressureHandler: new AdaptiveBackpressureHandler({ targetLatency: 100 }) };
    case 'oldest':
      return { onDrop, dropPolicy: 'oldest' };
    case 'conflate':
      return { onDrop, conflate: true };
    default:
      throw new Error(`unknown scenario ${scenario}; one of ${SCENARIOS.join(', ')}`);
  }
}

/**
 * Priority of the i-th message of a connection. `crash`: every tenth critical, the rest low, as
 * reported. The overload soaks: 5% critical, 25% high, 70% low. Critical messages are never
 * dropped, so they must stay below what the reader takes (250 of its 500 msg/s): at 10% they
 * alone would match the reader, and any slowdown of the reader would queue critical writes in the
 * WritableStream without bound (by design: they wait, as on a lossless connection).
 */
function priorityFor(scenario, seq) {
  if (scenario === 'crash') return seq % 10 === 0 ? 'critical' : 'low';
  const r = seq % 20;
  if (r === 0) return 'critical';
  return r <= 5 ? 'high' : 'low';
}

async function runChild(scenario, seconds, sampleSeconds) {
  const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  const engine = new StreamEngine({ metricsInterval: 1000 });
  engine.setBackpressureHandler(new DefaultBackpressureHandler());
  const conns = [];
  let criticalDrops = 0;
  const drops = Object.fromEntries(REASONS.map((r) => [r, 0]));
  let misrouted = 0;
  let holes = 0;
  let refusedWrites = 0;
  let writeErrors = [];
  let delivered = 0;
  let draining = false;

  for (let c = 0; c < CONNECTIONS; c++) {
    const oracle = new Oracle();
    const onDrop = (m, reason) => {
      if (reason in drops) drops[reason]++;
      if (m?.metadata?.priority === 'critical') criticalDrops++;
      const { conn, seq } = decode(m);
      if (conn !== c) misrouted++;
      else oracle.settle(seq, reason === 'dead-letter' ? 'dead-letter' : 'dropped');
    };
    const id = engine.createConnection(`src${c}`, `dst${c}`, 'out', 'in', connectionOptions(scenario, onDrop));
    const connection = engine.getConnection(id);
    conns.push({ c, id, connection, writer: connection.writer, oracle, inflight: 0, reading: null });
  }

  // data = seq * 16 + connection index: one number, no extra allocation per message.
  function decode(m) {
    const d = typeof m?.data === 'number' ? m.data : NaN;
    return { conn: d % 16, seq: Math.floor(d / 16) };
  }

  function makeBatch(k) {
    const arr = new Array(BATCH);
    const ts = Date.now();
    for (let i = 0; i < BATCH; i++) {
      const seq = k.oracle.write();
      const priority = priorityFor(scenario, seq);
      const metadata = scenario === 'conflate' && priority !== 'critical' ? { priority, key: `k${seq % 100}` } : { priority };
      arr[i] = { id: `${k.c}:${seq}`, timestamp: ts, sourceNodeId: `src${k.c}`, targetNodeId: `dst${k.c}`, port: 'out', data: seq * 16 + k.c, metadata };
    }
    return arr;
  }

  function writeBatch(k) {
    const arr = makeBatch(k);
    k.inflight++;
    // Not awaited: the producer ignores backpressure, as in the reported crash.
    k.writer.write(arr).then(
      () => {
        k.inflight--;
      },
      (e) => {
        k.inflight--;
        refusedWrites++;
        if (writeErrors.length < 3) writeErrors.push(String(e?.message ?? e));
        for (const m of arr) k.oracle.settle(decode(m).seq, 'refused');
      },
    );
  }

  async function read(k) {
    const reader = k.connection.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (let i = 0; i < value.length; i++) {
        const m = value[i];
        if (m === undefined || m === null) {
          holes++;
          continue;
        }
        const { conn, seq } = decode(m);
        if (conn !== k.c) misrouted++;
        else k.oracle.settle(seq, 'delivered');
      }
      delivered += value.length;
      if (!draining) await sleep(READ_MS_PER_MESSAGE * value.length);
    }
  }

  for (const k of conns) k.reading = read(k);

  const start = performance.now();
  let lastCpu = process.cpuUsage();
  let lastWall = start;
  const sample = (final = false) => {
    const cpu = process.cpuUsage(lastCpu);
    const wall = performance.now();
    const cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / (wall - lastWall)) * 100);
    lastCpu = process.cpuUsage();
    lastWall = wall;
    // A full GC first (the parent starts children with --expose-gc): the figures are what is
    // retained, not how far the heap happened to grow since the last collection.
    globalThis.gc?.();
    const mu = process.memoryUsage();
    const all = engine.getMetrics();
    const sys = all.system;
    emit({
      type: 'sample',
      final,
      t: Math.round((performance.now() - start) / 1000),
      rssMB: +(mu.rss / 2 ** 20).toFixed(1),
      heapMB: +(mu.heapUsed / 2 ** 20).toFixed(1),
      wasmMB: +(sys.wasmMemoryBytes / 2 ** 20).toFixed(2),
      written: conns.reduce((s, k) => s + k.oracle.written, 0),
      delivered,
      criticalDrops,
      // Writes not yet completed (queued in the WritableStreams or held): bounded if the engine
      // keeps up with the producer.
      pendingWrites: conns.reduce((s, k) => s + k.inflight, 0),
      // Messages held by the engine (buffered), over all connections.
      buffered: Object.values(all.connections).reduce((s, c) => s + c.bufferSize, 0),
      // This process's CPU use since the last sample (100 = one core): below what the load
      // needs, the machine, not the engine, is the limit.
      cpuPct,
      oracleChunks: conns.reduce((s, k) => s + k.oracle.chunks.size, 0),
    });
  };

  // Producer: the reported pattern, one array of 50 per connection every 10 ms from a timer,
  // paced against the clock (a late tick writes the arrays that are due, at most MAX_CATCH_UP),
  // so that a busy machine still offers 5,000 msg/s per connection.
  let batches = 0;
  const producer = setInterval(() => {
    const due = Math.min(MAX_CATCH_UP, Math.floor((performance.now() - start) / PERIOD_MS) - batches);
    for (let i = 0; i < due; i++) {
      for (const k of conns) writeBatch(k);
      batches++;
    }
    if (due === MAX_CATCH_UP) batches = Math.floor((performance.now() - start) / PERIOD_MS); // give up the backlog
  }, PERIOD_MS);
  const sampler = setInterval(sample, sampleSeconds * 1000);
  await sleep(seconds * 1000);
  clearInterval(producer);
  clearInterval(sampler);
  sample(true);

  // Drain: let every write settle, close the writers, read the rest at full speed.
  draining = true;
  const drainStart = performance.now();
  while (conns.some((k) => k.inflight > 0) && performance.now() - drainStart < 60000) await sleep(10);
  await Promise.all(conns.map((k) => k.writer.close().catch(() => {})));
  await within(Promise.all(conns.map((k) => k.reading)), 60000);
  for (const k of conns) {
    for (const m of k.connection.deadLetters()) {
      const { conn, seq } = decode(m);
      // onDrop already reported these with reason 'dead-letter'; deadLetters() must match.
      if (conn !== k.c) misrouted++;
      else if (k.oracle.chunks.get(seq >>> CHUNK_BITS)?.st[seq & (CHUNK - 1)] !== OUTCOME['dead-letter']) k.oracle._bad('unknown', seq, 'deadLetters() without onDrop');
    }
  }

  const written = conns.reduce((s, k) => s + k.oracle.written, 0);
  const missing = conns.reduce((s, k) => s + k.oracle.open, 0);
  const duplicates = conns.reduce((s, k) => s + k.oracle.duplicates, 0);
  const unknown = conns.reduce((s, k) => s + k.oracle.unknown, 0);
  const examples = conns.flatMap((k) => k.oracle.examples.map((e) => `conn ${k.c} ${e}`)).slice(0, 10);
  const oracleOk = missing === 0 && duplicates === 0 && unknown === 0 && misrouted === 0 && holes === 0 && refusedWrites === 0;
  emit({
    type: 'result',
    scenario,
    node: process.version,
    seconds,
    written,
    delivered,
    drops,
    criticalDrops,
    refusedWrites,
    writeErrors,
    oracle: { ok: oracleOk, missing, duplicates, unknown, misrouted, holes, examples },
  });
  engine.destroy();
  return oracleOk && criticalDrops === 0;
}

// ---- the parent: scenarios in parallel child processes ------------------------------------------

function runScenario(scenario, seconds, sampleSeconds) {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), '--child', scenario, '--seconds', String(seconds), '--sample-seconds', String(sampleSeconds)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const samples = [];
    let result = null;
    let buf = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const o = JSON.parse(line);
          if (o.type === 'sample') {
            samples.push(o);
            process.stderr.write(`[${scenario}] t=${o.t}s rss ${o.rssMB} MB heap ${o.heapMB} MB wasm ${o.wasmMB} MB written ${o.written} pending writes ${o.pendingWrites} buffered ${o.buffered} cpu ${o.cpuPct}% critical drops ${o.criticalDrops}\n`);
          } else if (o.type === 'result') result = o;
        } catch {
          process.stderr.write(`[${scenario}] ${line}\n`);
        }
      }
    });
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.on('exit', (code, signal) => done({ scenario, code, signal, samples, result, stderrTail: stderr.trim().split('\n').slice(-8).join('\n') }));
  });
}

/** One sample per time (the final one replaces a periodic sample taken at the same second). */
function perSample(run) {
  const byT = new Map();
  for (const s of run.samples) byT.set(s.t, s);
  return [...byT.values()];
}

function table(runs) {
  const rows = [['scenario', 'exit', 'written', 'delivered', 'dropped', 'critical drops', 'written msg/s', 'rss MB per sample', 'heap MB per sample', 'wasm MB', 'oracle']];
  for (const r of runs) {
    const res = r.result;
    const dropped = res ? Object.values(res.drops).reduce((a, b) => a + b, 0) : '-';
    rows.push([
      r.scenario,
      r.signal ?? String(r.code),
      res ? String(res.written) : '-',
      res ? String(res.delivered) : '-',
      String(dropped),
      res ? String(res.criticalDrops) : '-',
      res ? String(Math.round(res.written / res.seconds)) : '-',
      perSample(r).map((s) => Math.round(s.rssMB)).join(' '),
      perSample(r).map((s) => Math.round(s.heapMB)).join(' '),
      [...new Set(r.samples.map((s) => s.wasmMB))].join(' '),
      res ? (res.oracle.ok ? 'ok' : `FAIL ${JSON.stringify(res.oracle)}`) : 'no result',
    ]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n');
}

async function main() {
  const child = arg('child', null);
  if (child !== null) {
    const seconds = Number(arg('seconds', 20));
    const sampleSeconds = Number(arg('sample-seconds', Math.min(60, Math.max(1, Math.floor(seconds / 4)))));
    const ok = await runChild(child, seconds, sampleSeconds);
    process.exitCode = ok ? 0 : 1;
    return;
  }
  const minutes = Number(arg('minutes', 10));
  if (!(minutes > 0)) throw new RangeError(`--minutes must be > 0, got ${arg('minutes')}`);
  const seconds = Math.round(minutes * 60);
  const sampleSeconds = Number(arg('sample-seconds', Math.min(60, Math.max(1, Math.floor(seconds / 4)))));
  const scenarios = arg('scenarios', SCENARIOS.join(',')).split(',');
  for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; one of ${SCENARIOS.join(', ')}`);
  console.log(`soak: ${scenarios.join(', ')} on Node ${process.version}, ${minutes} min each, in parallel; samples every ${sampleSeconds} s`);
  const runs = await Promise.all(scenarios.map((s) => runScenario(s, seconds, sampleSeconds)));
  console.log(table(runs));
  for (const r of runs) if (r.code !== 0) console.log(`\n[${r.scenario}] exit ${r.signal ?? r.code}:\n${r.stderrTail}`);
  const out = arg('json', resolve(HERE, 'results', `soak-node${process.versions.node.split('.')[0]}.json`));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, minutes, sampleSeconds, runs }, null, 2));
  console.log(`\nJSON: ${out}`);
  process.exitCode = runs.every((r) => r.code === 0) ? 0 : 1;
}

await main();
