// npm run bench:scale — the Redis Streams scale-out: 1, 2 and 4 worker processes on 8 partitions.
// Starts its own redis-server (loopback, temporary folder, AOF on), offers up to RATE msg/s for
// SECONDS per configuration from this process, and reports:
//   throughput   inputs read by the workers per second until the backlog is gone
//   latency      a window result's arrival at a gateway client (XREAD) minus its window's end
//                (event time = the producer's wall clock), p50 / p95
//   CPU          of redis-server and of the workers (from /proc, % of one core)
//   scaling      throughput relative to one worker
//   drain        phase 1: inputs per second W workers get through a backlog of DRAIN entries
//                written before they start (independent of the producer's pace)
// Environment: RATE (default 200000), SECONDS (default 4), WORKERS (default "1,2,4"), DRAIN (100000),
// WINDOW (default 1s), KEYS (default 1000 distinct keys), PROF (a folder: CPU profiles of the workers).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { connectRedis, createRedisProducer, redisGatewaySource, streamKeys } from '../redis/index.mjs';
import { startRedis } from '../tests/js/redis-helpers.mjs';

const RATE = Number(process.env.RATE ?? 200_000);
const SECONDS = Number(process.env.SECONDS ?? 4);
const WORKERS = (process.env.WORKERS ?? '1,2,4').split(',').map(Number);
const WINDOW = process.env.WINDOW ?? '1s';
const NKEYS = Number(process.env.KEYS ?? 1000);
const DRAIN = Number(process.env.DRAIN ?? 100_000);
// PROF=dir: the workers run with --cpu-prof and write their profiles there.
const PROF = process.env.PROF;
const PARTITIONS = 8;
const cli = fileURLToPath(new URL('../bin/nodeflow-stream.mjs', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const allProcs = [];
const TICK = 100; // USER_HZ, 100 on Linux

function readFileSyncSafe(p) {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}
/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid) {
  const s = readFileSyncSafe(`/proc/${pid}/stat`);
  if (!s) return NaN;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}
const pct = (xs, q) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

async function groupState(admin) {
  let lag = 0;
  let pending = 0;
  for (const k of streamKeys('b:in', PARTITIONS)) {
    let groups;
    try {
      groups = await admin.sendCommand(['XINFO', 'GROUPS', k]);
    } catch {
      return { lag: Infinity, pending: Infinity }; // stream not there yet
    }
    const g = groups[0];
    if (!g) return { lag: Infinity, pending: Infinity };
    lag += Number(g[g.indexOf('lag') + 1]);
    pending += Number(g[g.indexOf('pending') + 1]);
  }
  return { lag, pending };
}

async function entriesRead(admin) {
  let n = 0;
  for (const k of streamKeys('b:in', PARTITIONS)) {
    const g = (await admin.sendCommand(['XINFO', 'GROUPS', k]).catch(() => []))[0];
    if (g) n += Number(g[g.indexOf('entries-read') + 1] ?? 0);
  }
  return n;
}

const message = (seq, now) => ({ id: `b${seq}`, timestamp: now, sourceNodeId: 'bench', targetNodeId: 'agg', port: 'out', data: seq % 100, metadata: { key: `sensor-${seq % NKEYS}` } });

async function runConfig(redis, admin, workers) {
  await admin.sendCommand(['FLUSHALL']);
  // Phase 1 (drain): a backlog written before the workers start, so the producer's pace does not
  // limit what is measured: how fast W workers read, aggregate, write and ack.
  const pre = await createRedisProducer({ url: redis.url, prefix: 'b:in', partitions: PARTITIONS });
  const base = Date.now() - 60_000;
  for (let i = 0; i < DRAIN; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(DRAIN, i + 1000); j++) batch.push(message(j, base + Math.floor((j / DRAIN) * 10_000)));
    await pre.write(batch);
  }
  await pre.close();
  // A gate: every partition's lease is held by nobody-in-particular until all W workers are up,
  // so that they start on the backlog together (otherwise the first one up drains it alone).
  const leases = streamKeys('b:in:lease', PARTITIONS); // the workers' lease keys b:in:lease:{p}
  for (const k of leases) await admin.sendCommand(['SET', k, 'bench-gate', 'PX', '60000']);
  const procs = [];
  for (let i = 0; i < workers; i++) {
    const prof = PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`, `--cpu-prof-name=worker-${workers}w-${i}.cpuprofile`] : [];
    const child = spawn(process.execPath, [...prof, cli, 'worker', '--redis', redis.url, '--group', 'bench', '--partitions', String(PARTITIONS), '--window', WINDOW, '--prefix', 'b:in', '--output', 'b:out', '--lease', '3s', '--name', `bench-w${i}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.log = '';
    child.stderr.on('data', (d) => (child.log += d));
    child.exited = new Promise((r) => child.once('exit', r));
    procs.push(child);
    allProcs.push(child);
  }
  // Wait until every worker has registered, then open the gate.
  let deadline = Date.now() + 20_000;
  while (Number(await admin.sendCommand(['ZCARD', 'b:in:workers:bench'])) < workers) {
    if (Date.now() > deadline) throw new Error('workers did not start');
    await sleep(50);
  }
  const gateOpen = Date.now();
  await admin.sendCommand(['DEL', ...leases]);
  deadline = Date.now() + 20_000;
  for (;;) {
    const owned = Number(await admin.sendCommand(['EXISTS', ...leases]));
    if (owned === PARTITIONS && procs.every((p) => /took partitions/.test(p.log))) break;
    if (Date.now() > deadline) throw new Error('workers did not take the partitions');
    await sleep(10);
  }
  // Measured from the moment every partition has its worker (what was read before does not count)
  // until everything is read (group lag 0); the tail until every input is acked (the last
  // windows close by idle flush, one window later) is reported apart.
  const drainStart = Date.now();
  const takenAfter = drainStart - gateOpen;
  const read0 = await entriesRead(admin);
  const cpuD0 = { redis: cpuSeconds(redis.pid), workers: procs.map((p) => cpuSeconds(p.pid)) };
  let readAll = null;
  for (const end = Date.now() + 120_000; Date.now() < end; await sleep(10)) {
    const s = await groupState(admin);
    if (readAll === null && s.lag === 0) readAll = Date.now();
    if (s.lag === 0 && s.pending === 0) break;
  }
  const ackTail = Date.now() - (readAll ?? Date.now());
  const drainWall = ((readAll ?? Date.now()) - drainStart) / 1000;
  const drained = DRAIN - read0;
  const cpuD1 = { redis: cpuSeconds(redis.pid), workers: procs.map((p) => cpuSeconds(p.pid)) };
  const drain = {
    takenAfter,
    ackTail,
    drained,
    drainThroughput: Math.round(drained / drainWall),
    drainRedisCpu: (100 * (cpuD1.redis - cpuD0.redis)) / drainWall,
    drainWorkerCpu: (100 * cpuD1.workers.reduce((s, c, i) => s + (c - cpuD0.workers[i]), 0)) / drainWall,
  };
  // Work per CPU second: what a dedicated core would sustain (the figures above depend on how
  // much CPU this shared machine gave each process).
  drain.perWorkerCpuSecond = Math.round(drained / (cpuD1.workers.reduce((s, c, i) => s + (c - cpuD0.workers[i]), 0) || NaN));
  drain.perRedisCpuSecond = Math.round(drained / (cpuD1.redis - cpuD0.redis || NaN));
  await sleep(1500); // let the lease rebalancing settle

  const latencies = [];
  const gw = await redisGatewaySource({ url: redis.url, topics: { out: 'b:out' }, block: 100 });
  gw.attach({
    publish(_topic, messages) {
      const now = Date.now();
      for (const m of messages) if (m.data && typeof m.data.end === 'number') latencies.push(now - m.data.end);
    },
  });
  await sleep(200);

  const prod = await createRedisProducer({ url: redis.url, prefix: 'b:in', partitions: PARTITIONS, maxLen: 2_000_000 });
  const cpu0 = { redis: cpuSeconds(redis.pid), workers: procs.map((p) => cpuSeconds(p.pid)), self: cpuSeconds(process.pid) };
  const t0 = Date.now();
  let sent = 0;
  let seq = 0;
  const perTick = Math.max(1, Math.round(RATE / 100)); // one batch per 10 ms
  const inflight = new Set();
  while (Date.now() - t0 < SECONDS * 1000) {
    const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
    // Offer what is due, in batches; at most 4 batches in flight (what one producer sustains).
    while (sent < due && inflight.size < 4) {
      const n = Math.min(perTick, due - sent);
      const now = Date.now();
      const batch = new Array(n);
      for (let i = 0; i < n; i++, seq++) batch[i] = message(DRAIN + seq, now);
      sent += n;
      const p = prod.write(batch).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await sleep(inflight.size >= 4 ? 0 : 5);
  }
  await Promise.all(inflight);
  const tProduced = Date.now();
  // Wait for the workers to read everything (lag 0), then for the results to be out.
  let tRead = null;
  const end = Date.now() + 60_000;
  for (;;) {
    const s = await groupState(admin);
    if (tRead === null && s.lag === 0) tRead = Date.now();
    if (tRead !== null && s.pending === 0) break;
    if (Date.now() > end) break;
    await sleep(25);
  }
  const tDone = Date.now();
  const cpu1 = { redis: cpuSeconds(redis.pid), workers: procs.map((p) => cpuSeconds(p.pid)), self: cpuSeconds(process.pid) };
  const load = readFileSyncSafe('/proc/loadavg')?.split(' ')[0];
  await sleep(300); // last results to the gateway
  await gw.close();
  await prod.close();
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  const wall = (tDone - t0) / 1000;
  const outLen = Number(await admin.sendCommand(['XLEN', 'b:out']));
  return {
    workers,
    ...drain,
    offered: Math.round(sent / ((tProduced - t0) / 1000)),
    sent,
    throughput: tRead ? Math.round(sent / ((tRead - t0) / 1000)) : NaN,
    lagAtEnd: tRead === null,
    p50: pct(latencies, 0.5),
    p95: pct(latencies, 0.95),
    results: outLen,
    redisCpu: (100 * (cpu1.redis - cpu0.redis)) / wall,
    workerCpu: (100 * cpu1.workers.reduce((s, c, i) => s + (c - cpu0.workers[i]), 0)) / wall,
    // This process: the producer (JSON + XADD pipelining) and the gateway source's XREAD.
    producerCpu: (100 * (cpu1.self - cpu0.self)) / wall,
    maxWorkerCpu: (100 * Math.max(...cpu1.workers.map((c, i) => c - cpu0.workers[i]))) / wall,
    loadavg: Number(load),
  };
}

const redis = await startRedis();
const admin = await connectRedis(redis.url);
// Ctrl-C: stop the workers and Redis (the 'exit' hooks kill what is left).
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));
process.on('exit', () => {
  for (const p of allProcs) p.kill('SIGKILL');
});
const rows = [];
try {
  console.log(`scale-out bench: ${PARTITIONS} partitions, window ${WINDOW}, ${NKEYS} keys, offered up to ${RATE} msg/s for ${SECONDS} s per run`);
  for (const w of WORKERS) {
    const r = await runConfig(redis, admin, w);
    rows.push(r);
    console.log(JSON.stringify(r));
  }
} finally {
  await admin.close();
  await redis.destroy();
}
const baseDrain = rows[0]?.drainThroughput;
console.log('\n| workers | drain msg/s | scaling | Redis / workers CPU (drain) | msgs per worker CPU-s | msgs per Redis CPU-s | offered msg/s | live throughput msg/s | result latency p50 / p95 (ms) | Redis / workers (busiest) / producer CPU (live) | load avg |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.workers} | ${r.drainThroughput.toLocaleString('en-US')} | ${(r.drainThroughput / baseDrain).toFixed(2)} | ${r.drainRedisCpu.toFixed(0)}% / ${r.drainWorkerCpu.toFixed(0)}% | ${r.perWorkerCpuSecond.toLocaleString('en-US')} | ${r.perRedisCpuSecond.toLocaleString('en-US')} | ${r.offered.toLocaleString('en-US')} | ${Number.isFinite(r.throughput) ? r.throughput.toLocaleString('en-US') : 'backlog left'} | ${r.p50} / ${r.p95} | ${r.redisCpu.toFixed(0)}% / ${r.workerCpu.toFixed(0)}% (${r.maxWorkerCpu.toFixed(0)}%) / ${r.producerCpu.toFixed(0)}% | ${r.loadavg} |`);
}
console.log('(CPU in % of one core; the machine has', cpus().length, 'cores, shared with whatever else runs: see load avg.)');
