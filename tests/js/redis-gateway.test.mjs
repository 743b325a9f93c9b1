// Gateway Redis mode against a real redis-server, with a minimal gateway that records publish().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectRedis, redisGatewaySource, compareIds } from '@nodeflow/stream-engine/redis';
import { startRedis } from './redis-helpers.mjs';

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
const until = async (pred, what, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
};
const msg = (i) => ({ id: `r${i}`, timestamp: i, sourceNodeId: 'worker', targetNodeId: '*', port: 'out', data: { i } });

/** The smallest real gateway: records what it is asked to publish. */
function recordingGateway() {
  const calls = [];
  return {
    calls,
    publish(topic, messages, { seq }) {
      calls.push({ topic, ids: messages.map((m) => m.id), seq });
    },
    published: () => calls.flatMap((c) => c.seq.map((s, i) => ({ topic: c.topic, seq: s, id: c.ids[i] }))),
  };
}

test('attach publishes new entries with their Redis ids as seq; history replays after a seq, exclusive', async () => {
  const src = await redisGatewaySource({ url: redis.url, topics: { metrics: 'gw:metrics', alerts: 'gw:alerts' }, block: 100 });
  after(() => src.close());
  await src.history.append('metrics', [msg(0), msg(1)]); // before attach: history only
  const gw = recordingGateway();
  src.attach(gw);
  await sleep(150);
  const ids = await src.history.append('metrics', [msg(2), msg(3), msg(4)]);
  await admin.sendCommand(['XADD', 'gw:alerts', '*', 'id', 'a1', 'm', JSON.stringify({ id: 'a1', data: 'hot' })]); // e.g. a worker
  await until(() => gw.published().length === 4, 'four published');
  const pub = gw.published();
  assert.deepEqual(pub.filter((p) => p.topic === 'metrics').map((p) => [p.id, p.seq]), [['r2', ids[0]], ['r3', ids[1]], ['r4', ids[2]]]);
  assert.deepEqual(pub.filter((p) => p.topic === 'alerts').map((p) => p.id), ['a1']);

  const all = await src.history.since('metrics', null, 100);
  assert.deepEqual(all.entries.map((e) => e.message.id), ['r0', 'r1', 'r2', 'r3', 'r4']);
  assert.equal(all.gap, false);
  const after2 = await src.history.since('metrics', ids[0], 1);
  assert.deepEqual(after2.entries.map((e) => [e.seq, e.message.id]), [[ids[1], 'r3']]);
  assert.equal(after2.gap, false);
  assert.deepEqual((await src.history.since('metrics', ids[2], 10)).entries, []);
  await src.close();
});

test('a client resumes on another gateway without duplicates; a gap only when retention dropped what it missed', async () => {
  const topics = { t: 'gw:resume' };
  const a = await redisGatewaySource({ url: redis.url, topics, block: 100 });
  const b = await redisGatewaySource({ url: redis.url, topics, block: 100 });
  try {
  const ga = recordingGateway();
  const gb = recordingGateway();
  a.attach(ga);
  b.attach(gb);
  await sleep(150);
  for (let i = 0; i < 20; i++) await a.history.append('t', msg(i));
  await until(() => ga.published().length === 20 && gb.published().length === 20, 'both gateways broadcast everything');
  // A client saw r0..r9 on gateway a, which dies; it resumes on b from its last seq.
  const last = ga.published()[9].seq;
  await a.close();
  const resumed = await b.history.since('t', last, 100);
  assert.deepEqual(resumed.entries.map((e) => e.message.id), Array.from({ length: 10 }, (_, i) => `r${i + 10}`));
  assert.equal(resumed.gap, false);
  // Retention: trim to the 5 newest. A client at r9 missed r10..r14 for good: gap. One at r16 did not.
  await admin.sendCommand(['XTRIM', 'gw:resume', 'MAXLEN', '5']);
  const gapped = await b.history.since('t', last, 100);
  assert.equal(gapped.gap, true);
  assert.deepEqual(gapped.entries.map((e) => e.message.id), ['r15', 'r16', 'r17', 'r18', 'r19']);
  const fine = await b.history.since('t', gb.published()[16].seq, 100);
  assert.equal(fine.gap, false);
  assert.deepEqual(fine.entries.map((e) => e.message.id), ['r17', 'r18', 'r19']);
  // A stream that is gone entirely is a gap for a client that had seen something.
  await admin.sendCommand(['DEL', 'gw:resume']);
  assert.equal((await b.history.since('t', last, 1)).gap, true);
  } finally {
    await a.close();
    await b.close();
  }
});

test('the live feed survives a Redis restart (reconnect with backoff), and bad arguments are clear errors', async () => {
  const src = await redisGatewaySource({ url: redis.url, topics: { t: 'gw:restart' }, block: 100, onError: () => {} });
  after(() => src.close());
  const gw = recordingGateway();
  src.attach(gw);
  await sleep(150);
  await src.history.append('t', [msg(1)]);
  await until(() => gw.published().length === 1, 'first published');
  await redis.stop();
  await sleep(200);
  await redis.restart();
  await admin.sendCommand(['XADD', 'gw:restart', '*', 'id', 'r2', 'm', JSON.stringify(msg(2))]);
  await until(() => gw.published().length === 2, 'published after the restart');
  assert.deepEqual(gw.published().map((p) => p.id), ['r1', 'r2']);
  assert.ok(src.stats.errors > 0, 'the outage was seen');
  const seqs = gw.published().map((p) => p.seq);
  assert.ok(compareIds(seqs[0], seqs[1]) < 0);

  await assert.rejects(src.history.since('nope', null, 1), { name: 'RangeError', message: /topic/ });
  await assert.rejects(src.history.since('t', 'yesterday', 1), { name: 'TypeError', message: /^afterSeq/ });
  await assert.rejects(src.history.since('t', null, 0), { name: 'RangeError', message: /^limit/ });
  assert.throws(() => src.attach({}), { name: 'TypeError', message: /publish/ });
  await assert.rejects(redisGatewaySource({ url: redis.url, topics: {} }), { name: 'TypeError', message: /^topics/ });
  await src.close();
});
