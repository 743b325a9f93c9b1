// Fault tests of the scale-out worker against a real redis-server: a worker killed mid-stream,
// Redis restarted, a slow downstream. Every input's effect must appear in the output exactly
// once (checked per message id through the results' lineage).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectRedis, createRedisProducer, startWorker, streamKeys } from '@nodeflow/stream-engine/redis';
import { startRedis } from './redis-helpers.mjs';

const cli = fileURLToPath(new URL('../../bin/nodeflow-stream.mjs', import.meta.url));
let redis;
let admin;
before(async () => {
  redis = await startRedis();
  admin = await connectRedis(redis.url, { onError: () => {} });
});
after(async () => {
  await admin?.close().catch(() => {});
  await redis?.destroy();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (pred, what, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
};
const msg = (i) => ({ id: `m${i}`, timestamp: i, sourceNodeId: 'sensor', targetNodeId: 'agg', port: 'out', data: i % 17, metadata: { key: `k${i % 12}` } });

/** id -> how many output records cover it (window results list their inputs; late records one). */
async function effects(key) {
  const rows = await admin.sendCommand(['XRANGE', key, '-', '+']);
  const seen = new Map();
  for (const [, f] of rows) {
    const m = JSON.parse(f[3]);
    for (const id of m.data.inputs ?? [m.data.input]) seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

function assertExactlyOnce(seen, n) {
  const missing = [];
  const dups = [];
  for (let i = 0; i < n; i++) {
    const c = seen.get(`m${i}`) ?? 0;
    if (c === 0) missing.push(`m${i}`);
    if (c > 1) dups.push(`m${i}`);
  }
  assert.deepEqual({ missing: missing.slice(0, 10), dups: dups.slice(0, 10) }, { missing: [], dups: [] });
  assert.equal(seen.size, n, 'nothing but the inputs');
}

async function pendingTotal(prefix, partitions, group) {
  let n = 0;
  for (const k of streamKeys(prefix, partitions)) n += Number((await admin.sendCommand(['XPENDING', k, group]))[0]);
  return n;
}

function spawnWorker(args) {
  const child = spawn(process.execPath, [cli, 'worker', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.log = '';
  child.stderr.on('data', (d) => (child.log += d));
  child.exited = new Promise((r) => child.once('exit', r));
  return child;
}

test('kill a worker mid-stream: another claims its pending entries; every input has exactly one effect', async () => {
  const common = ['--redis', redis.url, '--group', 'gk', '--partitions', '4', '--prefix', 'k:in', '--output', 'k:out', '--window', '100ms', '--lease', '1s', '--idle-flush', '300ms', '--lineage'];
  const a = spawnWorker([...common, '--name', 'wa']);
  const b = spawnWorker([...common, '--name', 'wb']);
  try {
    await until(() => /took partitions/.test(a.log) && /took partitions/.test(b.log), 'both workers own partitions', 15_000);
    const prod = await createRedisProducer({ url: redis.url, prefix: 'k:in', partitions: 4 });
    const N = 4000;
    let i = 0;
    const produce = async (upTo) => {
      for (; i < upTo; i += 100) {
        await prod.write(Array.from({ length: 100 }, (_, j) => msg(i + j)));
        await sleep(10);
      }
    };
    await produce(2000);
    // wa holds entries in open windows right now: kill it without any chance to clean up.
    const aPending = async () => {
      let n = 0;
      for (const k of streamKeys('k:in', 4)) {
        const s = await admin.sendCommand(['XPENDING', k, 'gk']);
        for (const [c, count] of s[3] ?? []) if (String(c) === 'wa') n += Number(count);
      }
      return n;
    };
    await until(async () => (await aPending()) > 0, 'wa has pending entries');
    a.kill('SIGKILL');
    await a.exited;
    await produce(N);
    await prod.close();
    await until(async () => (await effects('k:out')).size >= N, 'every input has an effect', 40_000);
    assertExactlyOnce(await effects('k:out'), N);
    await until(async () => (await pendingTotal('k:in', 4, 'gk')) === 0, 'nothing left pending');
    assert.match(b.log, /took partitions/);
    const bTook = [...b.log.matchAll(/took partitions ([\d,]+)/g)].flatMap((m) => m[1].split(',')).map(Number);
    assert.deepEqual([...new Set(bTook)].sort(), [0, 1, 2, 3], 'the survivor took over every partition');
  } finally {
    for (const w of [a, b]) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
  }
});

test('restart Redis: workers reconnect with backoff and go on; every input Redis kept has exactly one effect', async () => {
  const opts = { url: redis.url, group: 'gr', partitions: 4, prefix: 'r:in', output: 'r:out', window: 100, leaseMs: 3000, idleFlush: 300, lineage: true };
  const w1 = await startWorker({ ...opts, name: 'w1' });
  const w2 = await startWorker({ ...opts, name: 'w2' });
  const prod = await createRedisProducer({ url: redis.url, prefix: 'r:in', partitions: 4, onError: () => {} });
  try {
    const N = 3000;
    for (let i = 0; i < 1500; i += 100) await prod.write(Array.from({ length: 100 }, (_, j) => msg(i + j)));
    await until(async () => (await effects('r:out')).size > 0, 'some output before the restart');
    await redis.stop(); // SIGTERM: Redis writes its AOF out and exits
    await sleep(300);
    await redis.restart();
    for (let i = 1500; i < N; i += 100) await prod.write(Array.from({ length: 100 }, (_, j) => msg(i + j)));
    await until(async () => (await effects('r:out')).size >= N, 'every input has an effect', 40_000);
    assertExactlyOnce(await effects('r:out'), N);
    let kept = 0;
    for (const k of streamKeys('r:in', 4)) kept += Number(await admin.sendCommand(['XLEN', k]));
    assert.equal(kept, N, 'Redis kept every input (AOF)');
    const errors = w1.stats.errors + w2.stats.errors + w1.consumer.stats.errors + w2.consumer.stats.errors;
    assert.ok(errors > 0, 'the workers saw the outage');
    await until(async () => (await pendingTotal('r:in', 4, 'gr')) === 0, 'nothing left pending');
  } finally {
    await prod.close();
    await w1.stop();
    await w2.stop();
  }
});

test('slow downstream: the worker stops reading, Redis holds the backlog, buffered counts stay bounded', async () => {
  const w = await startWorker({
    url: redis.url, group: 'gs', partitions: 2, prefix: 's:in', output: 's:out', window: 50, leaseMs: 3000, idleFlush: 300,
    lineage: true, name: 'slow', delay: 15, count: 50, maxInFlight: 300, bufferSize: 100,
  });
  try {
    await until(async () => w.owned().length === 2, 'the worker owns both partitions');
    const prod = await createRedisProducer({ url: redis.url, prefix: 's:in', partitions: 2 });
    const N = 3000;
    for (let i = 0; i < N; i += 500) await prod.write(Array.from({ length: 500 }, (_, j) => msg(i + j)));
    await prod.close();
    let maxLag = 0;
    let maxInFlight = 0;
    let maxBuffered = 0;
    await until(async () => {
      maxInFlight = Math.max(maxInFlight, w.consumer.stats.inFlight);
      maxBuffered = Math.max(maxBuffered, w.buffered());
      let lag = 0;
      for (const k of streamKeys('s:in', 2)) {
        const g = (await admin.sendCommand(['XINFO', 'GROUPS', k]))[0];
        // Before the group exists on this stream, everything in it is backlog.
        lag += g ? Number(g[g.indexOf('lag') + 1]) : Number(await admin.sendCommand(['XLEN', k]));
      }
      maxLag = Math.max(maxLag, lag);
      return (await effects('s:out')).size >= N;
    }, 'every input has an effect', 60_000);
    assertExactlyOnce(await effects('s:out'), N);
    assert.ok(maxInFlight <= 300, `entries read but not done: ${maxInFlight}`);
    assert.ok(w.consumer.stats.maxInFlightSeen <= 300, `max in flight ${w.consumer.stats.maxInFlightSeen}`);
    assert.ok(maxBuffered <= 100, `connection buffer ${maxBuffered}`);
    assert.ok(maxLag >= 1000, `Redis held the backlog: max lag ${maxLag}`);
  } finally {
    await w.stop();
  }
});

test('the worker subcommand refuses bad usage with exit code 2', async () => {
  for (const [args, re] of [[[], /needs --redis/], [['--redis', 'http://x'], /redis:\/\//], [['--redis', redis.url, '--window', 'soon'], /window/], [['--redis', redis.url, '--partitions', '0'], /partitions/],
    [['--cluster', 'redis://127.0.0.1:7000,redis://127.0.0.1:7001'], /--cluster needs an --output with \{p\}/],
    [['--cluster', 'redis://127.0.0.1:7000,tcp://x', '--output', 'o:{p}'], /--cluster must be redis:\/\/ URLs, got 'tcp:\/\/x'/],
    [['--redis', redis.url, '--cluster', redis.url], /not both/]]) {
    const child = spawnWorker(args);
    const code = await child.exited;
    assert.equal(code, 2, child.log);
    assert.match(child.log, re);
  }
});
