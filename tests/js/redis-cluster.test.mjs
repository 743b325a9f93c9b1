// The bridge, the worker and the gateway source on a real 3-master Redis Cluster (three
// redis-servers on free loopback ports, joined by `redis-cli --cluster create`). Partitions carry
// the hash tag `{p}`, so they land on different slots and masters; every message is checked by id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine } from '@nodeflow/stream-engine';
import {
  connectRedisCluster, createRedisProducer, createRedisConsumer, startWorker, redisGatewaySource, streamKey, streamKeys, hashTag,
} from '@nodeflow/stream-engine/redis';
import { startRedisCluster } from './redis-helpers.mjs';

const skip = process.env.NODEFLOW_REDIS_CLUSTER === '0' ? 'NODEFLOW_REDIS_CLUSTER=0' : false;
let cl;
let admin;
before(async () => {
  if (skip) return;
  cl = await startRedisCluster({ masters: 3 });
  admin = await connectRedisCluster({ rootNodes: [cl.urls[0]] }, { onError: () => {} });
});
after(async () => {
  await admin?.close().catch(() => admin.destroy());
  await cl?.destroy();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (pred, what, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
};
const msg = (i) => ({ id: `m${i}`, timestamp: i, sourceNodeId: 'sensor', targetNodeId: 'agg', port: 'out', data: i % 17, metadata: { key: `k${i % 12}` } });

/** The master port owning each key's slot, from CLUSTER KEYSLOT and CLUSTER SLOTS. */
async function mastersOf(keys) {
  const ranges = await admin.sendCommand(['CLUSTER', 'SLOTS']);
  const out = [];
  for (const k of keys) {
    const slot = Number(await admin.sendCommand(['CLUSTER', 'KEYSLOT', k]));
    const r = ranges.find(([lo, hi]) => slot >= Number(lo) && slot <= Number(hi));
    out.push({ key: k, slot, master: Number(r[2][1]) });
  }
  return out;
}

test('partitions {p} spread over slots and masters; producer and consumer group work through createCluster, each id once', { skip }, async () => {
  const P = 8;
  const keys = streamKeys('c:in', P);
  const where = await mastersOf(keys);
  assert.equal(new Set(where.map((w) => w.slot)).size, P, 'one slot per partition');
  assert.equal(new Set(where.map((w) => w.master)).size, 3, 'the partitions use all three masters');
  assert.deepEqual(keys.map(hashTag), ['0', '1', '2', '3', '4', '5', '6', '7']);

  const producer = await createRedisProducer({ cluster: { rootNodes: cl.urls }, prefix: 'c:in', partitions: P });
  const N = 2000;
  const ids = [];
  for (let i = 0; i < N; i += 100) {
    const batch = Array.from({ length: 100 }, (_, j) => msg(i + j));
    ids.push(...(await producer.write(batch)));
  }
  assert.equal(ids.length, N);
  let total = 0;
  for (const k of keys) total += Number(await admin.sendCommand(['XLEN', k]));
  assert.equal(total, N);

  // Two group members (one per process in production), each an engine connection acked on delivery.
  const engine = new StreamEngine();
  const got = new Map();
  const members = await Promise.all(['a', 'b'].map((name) =>
    createRedisConsumer({ cluster: { rootNodes: [cl.urls[1]] }, group: 'g', consumer: name, streams: name === 'a' ? keys.slice(0, 4) : keys.slice(4), count: 200, block: 200 })));
  const pipes = members.map((c, i) => {
    const id = engine.createConnection('redis', `member${i}`, 'out', 'in', { bufferSize: 500, dropPolicy: 'block' });
    const conn = engine.getConnection(id);
    const piping = c.readable.pipeTo(conn.writable).catch(() => {});
    const reading = (async () => {
      const reader = conn.readable.pipeThrough(c.delivered()).getReader();
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ done: true }));
        if (done) break;
        for (const m of value) got.set(m.id, (got.get(m.id) ?? 0) + 1);
      }
    })();
    return { piping, reading };
  });
  try {
    await until(() => got.size === N, `all ${N} read (got ${got.size})`);
    await until(async () => {
      let pending = 0;
      for (const k of keys) pending += Number((await admin.sendCommand(['XPENDING', k, 'g']))[0]);
      return pending === 0;
    }, 'every entry acked');
    const dups = [...got].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(dups, []);
    for (let i = 0; i < N; i++) assert.ok(got.has(`m${i}`), `m${i}`);
    assert.equal(members[0].stats.read + members[1].stats.read, N);
  } finally {
    for (const c of members) await c.close();
    engine.destroy();
    await Promise.allSettled(pipes.flatMap((p) => [p.piping, p.reading]));
    await producer.close();
  }
});

test('a worker on the cluster: per-partition outputs {p}, every input has exactly one effect', { skip }, async () => {
  const P = 4;
  await assert.rejects(startWorker({ cluster: { rootNodes: cl.urls }, partitions: P, output: 'w:out' }), { name: 'RangeError', message: /\{p\}/ });
  const w = await startWorker({
    cluster: { rootNodes: [cl.urls[2]] }, group: 'wg', partitions: P, prefix: 'w:in', output: 'w:out:{p}', window: 100, idleFlush: 200, leaseMs: 2000, lineage: true,
  });
  const producer = await createRedisProducer({ cluster: { rootNodes: cl.urls }, prefix: 'w:in', partitions: P });
  try {
    await until(() => w.owned().length === P, 'the worker owns every partition');
    const N = 1200;
    for (let i = 0; i < N; i += 100) await producer.write(Array.from({ length: 100 }, (_, j) => msg(i + j)));
    const outs = Array.from({ length: P }, (_, p) => `w:out:{${p}}`);
    const effects = async () => {
      const seen = new Map();
      for (const k of outs) {
        for (const [, f] of await admin.sendCommand(['XRANGE', k, '-', '+'])) {
          const m = JSON.parse(f[3]);
          for (const id of m.data.inputs ?? [m.data.input]) seen.set(id, (seen.get(id) ?? 0) + 1);
        }
      }
      return seen;
    };
    await until(async () => (await effects()).size === N, 'every input has an effect');
    await until(async () => {
      let pending = 0;
      for (const k of streamKeys('w:in', P)) pending += Number((await admin.sendCommand(['XPENDING', k, 'wg']))[0]);
      return pending === 0;
    }, 'every input acked');
    const seen = await effects();
    const wrong = [...seen].filter(([, n]) => n !== 1).map(([id]) => id);
    assert.deepEqual(wrong, []);
    for (let i = 0; i < N; i++) assert.ok(seen.has(`m${i}`), `m${i}`);
    // Each partition's output shares its input's slot (the emission script needs that).
    const where = await mastersOf([...streamKeys('w:in', P), ...outs]);
    for (let p = 0; p < P; p++) assert.equal(where[p].slot, where[P + p].slot);
  } finally {
    await w.stop();
    await producer.close();
  }
});

test('the gateway source on the cluster: live feed across slots (XREAD per slot), history and gaps', { skip }, async () => {
  const topics = { a: streamKey('g:out', 0), b: streamKey('g:out', 5) };
  const [wa, wb] = await mastersOf([topics.a, topics.b]);
  assert.notEqual(wa.slot, wb.slot);
  const src = await redisGatewaySource({ cluster: { rootNodes: cl.urls }, topics, block: 100 });
  const calls = [];
  src.attach({ publish: (topic, messages, { seq }) => calls.push(...messages.map((m, i) => ({ topic, id: m.id, seq: seq[i] }))) });
  try {
    await sleep(200);
    const sa = await src.history.append('a', [msg(1), msg(2)]);
    await src.history.append('b', [msg(3)]);
    await until(() => calls.length === 3, 'three published');
    assert.deepEqual(calls.filter((c) => c.topic === 'a').map((c) => [c.id, c.seq]), [['m1', sa[0]], ['m2', sa[1]]]);
    assert.deepEqual(calls.filter((c) => c.topic === 'b').map((c) => c.id), ['m3']);
    const r = await src.history.since('a', sa[0], 10);
    assert.deepEqual([r.entries.map((e) => e.message.id), r.gap], [['m2'], false]);
    await admin.sendCommand(['XTRIM', topics.a, 'MAXLEN', '0']);
    assert.equal((await src.history.since('a', sa[0], 10)).gap, true);
  } finally {
    await src.close();
  }
});
