// The Redis Streams bridge against a real redis-server (started here, on a free loopback port).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine } from '@nodeflow/stream-engine';
import {
  fnv1a32, partitionOf, streamKey, streamKeys, connectRedis, createRedisProducer, createRedisConsumer,
} from '@nodeflow/stream-engine/redis';
import { startRedis } from './redis-helpers.mjs';

let redis;
let admin;
before(async () => {
  redis = await startRedis();
  admin = await connectRedis(redis.url);
});
after(async () => {
  await admin?.close();
  await redis?.destroy();
});

const msg = (id, extra = {}) => ({ id, timestamp: 0, sourceNodeId: 's', targetNodeId: 't', port: 'o', data: id, ...extra });
const until = async (pred, what, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const pendingCount = async (key, group) => Number((await admin.sendCommand(['XPENDING', key, group]))[0]);

test('FNV-1a matches the published 32-bit test vectors and picks the partition', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  assert.equal(partitionOf(msg('x', { metadata: { key: 'foobar' } }), 8), 0xbf9cf968 % 8);
  assert.equal(partitionOf(msg('foobar'), 7), 0xbf9cf968 % 7, 'the id when there is no key');
  assert.equal(streamKey('in', 3), 'in:{3}');
});

test('the producer XADDs each message to its key partition and trims approximately', async () => {
  const prod = await createRedisProducer({ url: redis.url, prefix: 'p1', partitions: 4, maxLen: 100 });
  const w = prod.writable.getWriter();
  const sent = [];
  for (let b = 0; b < 20; b++) {
    const batch = Array.from({ length: 50 }, (_, i) => msg(`m${b * 50 + i}`, { metadata: { key: `k${i % 7}` } }));
    sent.push(...batch);
    await w.write(batch);
  }
  await w.close();
  assert.equal(prod.stats.written, 1000);
  for (const key of streamKeys('p1', 4)) {
    const len = Number(await admin.sendCommand(['XLEN', key]));
    assert.ok(len < 1000 / 4 + 1 && len >= 100, `${key} trimmed near 100, has ${len}`);
    const rows = await admin.sendCommand(['XRANGE', key, '-', '+']);
    for (const [, f] of rows) {
      const m = JSON.parse(f[3]);
      assert.equal(f[1], m.id);
      assert.equal(streamKey('p1', partitionOf(m, 4)), key, `${m.id} in its partition`);
    }
  }
  // the last entry of each key is kept (trimming drops the oldest)
  const last = sent[sent.length - 1];
  const rows = await admin.sendCommand(['XREVRANGE', streamKey('p1', partitionOf(last, 4)), '+', '-', 'COUNT', '1']);
  assert.equal(JSON.parse(rows[0][1][3]).id, last.id);
  await assert.rejects(createRedisProducer({ url: redis.url, partitions: 0 }), { name: 'RangeError', message: /^partitions/ });
});

test('entries are acked once the connection delivers them or drops them with a reason, per message id', async () => {
  const prod = await createRedisProducer({ url: redis.url, prefix: 'p2', partitions: 2 });
  const ids = Array.from({ length: 600 }, (_, i) => `m${i}`);
  await prod.write(ids.map((id) => msg(id, { metadata: { priority: 'low' } })));
  await prod.close();
  const cons = await createRedisConsumer({ url: redis.url, group: 'g2', streams: streamKeys('p2', 2), count: 50, block: 50, maxInFlight: 200 });
  const engine = new StreamEngine({ batchTimeout: 0 });
  const dropped = new Map();
  const id = engine.createConnection('redis', 'ui', 'out', 'in', {
    bufferSize: 40,
    dropPolicy: 'oldest',
    onDrop: (m, reason) => {
      dropped.set(m.id, reason);
      cons.onDrop(m, reason);
    },
  });
  const c = engine.getConnection(id);
  cons.readable.pipeTo(c.writable).catch(() => {});
  const delivered = new Map();
  const reader = c.readable.pipeThrough(cons.delivered()).getReader();
  while (delivered.size + dropped.size < ids.length) {
    const { value } = await reader.read();
    for (const m of value) delivered.set(m.id, (delivered.get(m.id) ?? 0) + 1);
    if (delivered.size % 5 === 0) await new Promise((r) => setTimeout(r, 2)); // a slowish reader: some drops
  }
  for (const x of ids) {
    const n = (delivered.get(x) ?? 0) + (dropped.has(x) ? 1 : 0);
    assert.equal(n, 1, `${x} delivered or dropped exactly once`);
  }
  for (const r of dropped.values()) assert.equal(r, 'oldest');
  await until(async () => cons.stats.acked === ids.length, 'every entry acked');
  assert.equal(await pendingCount('p2:{0}', 'g2') + await pendingCount('p2:{1}', 'g2'), 0);
  assert.equal(cons.stats.dropped.oldest ?? 0, dropped.size);
  assert.ok(cons.stats.maxInFlightSeen <= 200);
  await reader.cancel();
  await cons.close();
  engine.destroy();
});

test('a dead consumer\'s pending entries are claimed by another; entries failing too often go to the dead-letter stream', async () => {
  const prod = await createRedisProducer({ url: redis.url, prefix: 'p3', partitions: 1 });
  await prod.write(Array.from({ length: 30 }, (_, i) => msg(`m${i}`)));
  await prod.close();
  const streams = streamKeys('p3', 1);
  // A reads everything and dies without acking.
  const a = await createRedisConsumer({ url: redis.url, group: 'g3', consumer: 'a', streams, count: 100, block: 50 });
  const ra = a.readable.getReader();
  const { value: took } = await ra.read();
  assert.equal(took.length, 30);
  a.destroy();
  assert.equal(await pendingCount(streams[0], 'g3'), 30);
  // B claims them after claimIdle; acks all but m0..m4, which keep failing.
  const b = await createRedisConsumer({ url: redis.url, group: 'g3', consumer: 'b', streams, count: 100, block: 50, claimIdle: 100, claimInterval: 100, maxDeliveries: 3, deadLetter: 'p3:dead' });
  const rb = b.readable.getReader();
  const seen = new Map();
  const reading = (async () => {
    for (;;) {
      const { value, done } = await rb.read();
      if (done) return;
      for (const m of value) {
        seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
        if (!/^m[0-4]$/.test(m.id)) await b.ack([m]);
        else b.release([m]); // "fails": stays pending, is claimed again later
      }
    }
  })();
  await until(async () => Number(await admin.sendCommand(['XLEN', 'p3:dead'])) === 5, 'five dead letters');
  for (let i = 5; i < 30; i++) assert.equal(seen.get(`m${i}`), 1, `m${i} claimed once and acked`);
  const dead = await admin.sendCommand(['XRANGE', 'p3:dead', '-', '+']);
  const deadIds = dead.map(([, f]) => JSON.parse(Object.fromEntries(f.reduce((acc, x, i, arr) => (i % 2 ? acc : [...acc, [x, arr[i + 1]]]), [])).m).id).sort();
  assert.deepEqual(deadIds, ['m0', 'm1', 'm2', 'm3', 'm4']);
  for (const [, f] of dead) {
    const o = Object.fromEntries(f.reduce((acc, x, i, arr) => (i % 2 ? acc : [...acc, [x, arr[i + 1]]]), []));
    assert.equal(o.stream, streams[0]);
    assert.equal(o.reason, 'max-deliveries');
    assert.ok(Number(o.deliveries) > 3);
  }
  assert.equal(await pendingCount(streams[0], 'g3'), 0, 'nothing left pending');
  assert.equal(b.stats.deadLettered, 5);
  await rb.cancel();
  await reading;
  await b.close();
});

test('a slow downstream stops the reading: Redis holds the backlog, in-flight stays bounded, nothing is lost', async () => {
  const prod = await createRedisProducer({ url: redis.url, prefix: 'p4', partitions: 2 });
  const N = 3000;
  for (let i = 0; i < N; i += 500) await prod.write(Array.from({ length: 500 }, (_, j) => msg(`m${i + j}`)));
  await prod.close();
  const cons = await createRedisConsumer({ url: redis.url, group: 'g4', streams: streamKeys('p4', 2), count: 50, block: 50, maxInFlight: 150 });
  const engine = new StreamEngine({ batchTimeout: 0 });
  const id = engine.createConnection('redis', 'slow', 'out', 'in', { bufferSize: 100, maxBatchSize: 20 });
  const c = engine.getConnection(id);
  cons.readable.pipeTo(c.writable).catch(() => {});
  const reader = c.readable.pipeThrough(cons.delivered()).getReader();
  const got = new Set();
  let maxBuffered = 0;
  let maxLag = 0;
  for (let i = 0; got.size < N; i++) {
    const { value } = await reader.read();
    for (const m of value) got.add(m.id);
    maxBuffered = Math.max(maxBuffered, engine.getMetrics(id).bufferSize);
    if (i % 20 === 0) {
      await new Promise((r) => setTimeout(r, 5)); // the slow part
      const groups = await admin.sendCommand(['XINFO', 'GROUPS', 'p4:{0}']);
      const g = Object.fromEntries(groups[0].reduce((acc, x, k, arr) => (k % 2 ? acc : [...acc, [x, arr[k + 1]]]), []));
      maxLag = Math.max(maxLag, Number(g.lag));
    }
    assert.ok(cons.stats.inFlight <= 150, `in flight ${cons.stats.inFlight}`);
  }
  assert.equal(got.size, N);
  assert.ok(maxBuffered <= 100, `connection buffer ${maxBuffered}`);
  assert.ok(cons.stats.maxInFlightSeen <= 150);
  assert.ok(maxLag > 500, `Redis held the backlog (lag ${maxLag})`);
  await until(async () => cons.stats.acked === N, 'all acked');
  await reader.cancel();
  await cons.close();
  engine.destroy();
});

test('bad options are TypeErrors or RangeErrors naming the field', async () => {
  await assert.rejects(createRedisConsumer({ url: redis.url }), { name: 'TypeError', message: /^group/ });
  await assert.rejects(createRedisConsumer({ url: redis.url, group: 'g', count: 0 }), { name: 'RangeError', message: /^count/ });
  await assert.rejects(createRedisConsumer({ url: redis.url, group: 'g', streams: 'x' }), { name: 'TypeError', message: /^streams/ });
  await assert.rejects(createRedisProducer(null), { name: 'TypeError' });
  const prod = await createRedisProducer({ url: redis.url, prefix: 'p5' });
  await assert.rejects(prod.write([{ nope: 1 }]), { name: 'TypeError', message: /^message/ });
  await prod.close();
});
