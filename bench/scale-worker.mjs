// node bench/scale-worker.mjs — the cost of one worker per message, without the other processes
// of bench:scale: a backlog of N entries (8 partitions, 1000 keys, 10 s of event time) is written
// first, then one worker (in this process) reads, aggregates in 1 s windows, writes the results
// and acks. Reports the read rate and the CPU time of this process (the worker) and of Redis
// per message. Environment: N (default 100000), RUNS (default 3).
import { readFileSync } from 'node:fs';
import { connectRedis, createRedisProducer, startWorker } from '../redis/index.mjs';
import { startRedis } from '../tests/js/redis-helpers.mjs';

const N = Number(process.env.N ?? 100_000);
const RUNS = Number(process.env.RUNS ?? 3);
/** CPU ms (user + system) of a process so far, from /proc. */
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(x[11]) + Number(x[12])) * 10;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const redis = await startRedis();
const admin = await connectRedis(redis.url);
try {
  for (let run = 0; run < RUNS; run++) {
    await admin.sendCommand(['FLUSHALL']);
    const pre = await createRedisProducer({ url: redis.url, prefix: 'b:in', partitions: 8 });
    const base = Date.now() - 60_000;
    for (let i = 0; i < N; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) {
        batch.push({ id: `b${j}`, timestamp: base + Math.floor((j / N) * 10_000), sourceNodeId: 'bench', targetNodeId: 'agg', port: 'out', data: j % 100, metadata: { key: `sensor-${j % 1000}` } });
      }
      await pre.write(batch);
    }
    await pre.close();
    const t0 = Date.now();
    const self0 = cpuMs(process.pid);
    const redis0 = cpuMs(redis.pid);
    const w = await startWorker({ url: redis.url, group: 'bench', partitions: 8, prefix: 'b:in', output: 'b:out', window: 1000, leaseMs: 3000, name: `w${run}` });
    let tRead = 0;
    for (const end = Date.now() + 120_000; w.stats.acked < N && Date.now() < end; await sleep(10)) {
      if (!tRead && w.consumer.stats.read >= N) tRead = Date.now();
    }
    const self = cpuMs(process.pid) - self0;
    const red = cpuMs(redis.pid) - redis0;
    console.log(JSON.stringify({
      run, n: N, readRate: Math.round(N / ((tRead - t0) / 1000)), allAckedMs: Date.now() - t0, batches: w.stats.batches,
      workerCpuMs: self, redisCpuMs: red, perWorkerCpuSecond: Math.round(N / (self / 1000)), perRedisCpuSecond: Math.round(N / (red / 1000)),
      loadavg: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    }));
    await w.stop();
  }
} finally {
  await admin.close();
  await redis.destroy();
}
