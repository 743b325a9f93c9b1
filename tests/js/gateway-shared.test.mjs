// The gateway's shared-batch fast path (js/gateway.js: Topic.flush, Subscription._takeShared,
// Client.sendShared): subscribers on the gateway's own policy share one batch per flush, written
// as one frame built once straight to every socket that is free; the others get the batch through
// their engine connection. Real ws sockets on 127.0.0.1; waits are bounded (`until`), never timed.
// Accounting is checked per message id: delivered once, in publish order, or reported to onDrop
// for that client, never both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createGateway } from '@nodeflow/stream-engine/gateway';
import { msg, until, rawClient } from './gateway-helpers.mjs';

const range = (from, to, prefix = 'm') => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
const msgs = (ids) => ids.map((id) => msg(id));

/** The gateway's Client object of the raw client that connected last (ids grow). */
const newestClient = (gw) => [...gw.clients].reduce((a, b) => (b.id > a.id ? b : a));

/** A raw client, its gateway-side Client, subscribed to `topic` (with `policy` when given). */
async function join(gw, topic, policy) {
  const c = await rawClient(gw.url);
  c.client = newestClient(gw);
  c.id = c.client.id;
  c.send({ op: 'subscribe', topic, ...(policy ? { policy } : {}) });
  await until(() => c.of('subscribed').length === 1, 'subscribed');
  c.sub = c.client.subs.get(topic);
  return c;
}

/** Waits until the gateway has processed everything `c` sent so far (frames are handled in order). */
let pingSeq = 0;
async function sync(c) {
  const t = ++pingSeq;
  c.send({ op: 'ping', t });
  await until(() => c.frames.some((f) => f.op === 'pong' && f.t === t), 'pong');
}

/** Records onDrop calls per client id: id -> [[messageId, reason], ...]. */
function dropLog() {
  const byClient = new Map();
  const onDrop = (m, reason, info) => {
    if (!byClient.has(info.client)) byClient.set(info.client, []);
    byClient.get(info.client).push([m.id, reason]);
  };
  return { onDrop, of: (id) => byClient.get(id) ?? [], byClient };
}

const directAndFree = (cs) => cs.every((c) => c.sub.direct && !c.client.busy());

test('keeping-up subscribers get one frame per flush, built once and written to each socket, the same ids in order', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], policy: { batchTimeout: 10, maxBatchSize: 100 } });
  const cs = [];
  try {
    for (let i = 0; i < 3; i++) cs.push(await join(gw, 't'));
    for (const c of cs) assert.equal(c.sub.shareable, true);
    const sent = [];
    for (let round = 0; round < 4; round++) {
      await until(() => directAndFree(cs), 'all direct and free');
      const before = { ...gw.stats };
      const ids = range(round * 10 + 1, round * 10 + 10);
      gw.publish('t', msgs(ids.slice(0, 5)));
      gw.publish('t', msgs(ids.slice(5))); // same flush: queued together
      sent.push(ids);
      await until(() => gw.stats.framesDirect - before.framesDirect === 3, 'flushed');
      assert.equal(gw.stats.framesSent - before.framesSent, 3);
      assert.equal(gw.stats.framesShared - before.framesShared, 2, 'built once, reused twice');
      assert.equal(gw.stats.messagesSent - before.messagesSent, 30);
      await until(() => cs.every((c) => c.of('data').length === round + 1), 'frames arrive');
    }
    for (const c of cs) {
      assert.deepEqual(c.of('data').map((f) => f.messages.map((m) => m.id)), sent);
      // Every frame carries the seq of its last message.
      assert.equal(c.of('data').at(-1).seq, gw.metrics().topics.t.lastSeq);
    }
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('a subscriber that joins while messages are pending gets only those published after it subscribed', async () => {
  // maxBatchSize 6 and a batchTimeout far away: the flush comes from the sixth message, not a timer.
  const gw = await createGateway({ port: 0, topics: ['t'], policy: { batchTimeout: 60000, maxBatchSize: 6 } });
  const cs = [];
  try {
    cs.push(await join(gw, 't'), await join(gw, 't'));
    await until(() => directAndFree(cs), 'direct');
    gw.publish('t', msgs(range(1, 3)));
    assert.equal(gw.topic('t').pending.length, 3);
    const late = await join(gw, 't');
    assert.equal(gw.topic('t').pending.length, 3, 'still pending when it subscribed');
    gw.publish('t', msgs(range(4, 6))); // the sixth message flushes the batch
    await until(() => cs.every((c) => c.ids('t').length === 6) && late.ids('t').length === 3, 'delivered');
    for (const c of cs) assert.deepEqual(c.of('data').map((f) => f.messages.map((m) => m.id)), [range(1, 6)]);
    assert.deepEqual(late.ids('t'), range(4, 6));
    // Later flushes reach it like the others.
    await until(() => directAndFree([...cs, late]), 'direct');
    gw.publish('t', msgs(range(7, 12)));
    await until(() => [...cs, late].every((c) => c.ids('t').at(-1) === 'm12'), 'second flush');
    assert.deepEqual(late.ids('t'), range(4, 12));
    for (const c of cs) assert.deepEqual(c.ids('t'), range(1, 12));
    cs.push(late);
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('a subscriber that joins within the batch timeout (timer flush) gets only what was published after it', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], policy: { batchTimeout: 200, maxBatchSize: 100 } });
  const cs = [];
  try {
    cs.push(await join(gw, 't'), await join(gw, 't'));
    gw.publish('t', msgs(range(1, 3)));
    const late = await join(gw, 't');
    cs.push(late);
    gw.publish('t', msgs(range(4, 6)));
    await until(() => cs.every((c) => c.ids('t').at(-1) === 'm6'), 'delivered');
    assert.deepEqual(cs[0].ids('t'), range(1, 6));
    assert.deepEqual(cs[1].ids('t'), range(1, 6));
    assert.deepEqual(late.ids('t'), range(4, 6));
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('a subscriber that unsubscribes or closes while messages are pending: they are dead-lettered for it, the others still get them', async () => {
  const drops = dropLog();
  const gw = await createGateway({ port: 0, topics: ['t'], onDrop: drops.onDrop, policy: { batchTimeout: 60000, maxBatchSize: 6 } });
  const cs = [];
  try {
    for (let i = 0; i < 4; i++) cs.push(await join(gw, 't'));
    const [a, b, leaver, closer] = cs;
    await until(() => directAndFree(cs), 'direct');
    gw.publish('t', msgs(range(1, 3)));
    leaver.send({ op: 'unsubscribe', topic: 't' });
    await until(() => leaver.of('unsubscribed').length === 1, 'unsubscribed');
    assert.deepEqual(drops.of(leaver.id), range(1, 3).map((id) => [id, 'dead-letter']));
    await closer.close();
    await until(() => !gw.clients.has(closer.client), 'the gateway saw the close');
    assert.deepEqual(drops.of(closer.id), range(1, 3).map((id) => [id, 'dead-letter']));
    gw.publish('t', msgs(range(4, 6)));
    await until(() => a.ids('t').length === 6 && b.ids('t').length === 6, 'delivered');
    assert.deepEqual(a.ids('t'), range(1, 6));
    assert.deepEqual(b.ids('t'), range(1, 6));
    assert.deepEqual(leaver.ids('t'), []);
    // Nothing after they left is reported for them, and nothing for the ones that got everything.
    assert.equal(drops.of(leaver.id).length, 3);
    assert.equal(drops.of(closer.id).length, 3);
    assert.equal(drops.of(a.id).length + drops.of(b.id).length, 0);
    // The last shareable subscriber leaving with messages pending: reported, and the next
    // subscriber starts clean.
    gw.publish('t', msgs(range(7, 8)));
    a.send({ op: 'unsubscribe', topic: 't' });
    b.send({ op: 'unsubscribe', topic: 't' });
    await until(() => a.of('unsubscribed').length === 1 && b.of('unsubscribed').length === 1, 'unsubscribed');
    assert.deepEqual(drops.of(a.id), [['m7', 'dead-letter'], ['m8', 'dead-letter']]);
    assert.deepEqual(drops.of(b.id), [['m7', 'dead-letter'], ['m8', 'dead-letter']]);
    assert.equal(gw.topic('t').pending.length, 0);
    const next = await join(gw, 't');
    cs.push(next);
    gw.publish('t', msgs(range(9, 14)));
    await until(() => next.ids('t').length === 6, 'next');
    assert.deepEqual(next.ids('t'), range(9, 14));
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('gateway close with messages pending: each shareable subscriber gets them dead-lettered', async () => {
  const drops = dropLog();
  const gw = await createGateway({ port: 0, topics: ['t'], onDrop: drops.onDrop, policy: { batchTimeout: 60000, maxBatchSize: 100 } });
  const cs = [];
  try {
    for (let i = 0; i < 2; i++) cs.push(await join(gw, 't'));
    gw.publish('t', msgs(range(1, 4)));
    await gw.close();
    for (const c of cs) assert.deepEqual(drops.of(c.id), range(1, 4).map((id) => [id, 'dead-letter']));
    for (const c of cs) assert.deepEqual(c.ids('t'), []);
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('a subscriber with its own policy never takes the direct path and still gets everything in order', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], policy: { batchTimeout: 5, maxBatchSize: 20 } });
  const cs = [];
  try {
    cs.push(await join(gw, 't'), await join(gw, 't'));
    const own = await join(gw, 't', { bufferSize: 1000 });
    cs.push(own);
    assert.equal(own.sub.shareable, false);
    assert.equal(cs[0].sub.shareable, true);
    let ownShared = 0;
    const sendShared = own.client.sendShared;
    own.client.sendShared = (...a) => {
      ownShared++;
      return sendShared.apply(own.client, a);
    };
    const ids = range(1, 300);
    for (let i = 0; i < ids.length; i += 15) {
      gw.publish('t', msgs(ids.slice(i, i + 15)));
      if (i % 45 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => cs.every((c) => c.ids('t').length === 300), 'delivered');
    for (const c of cs) assert.deepEqual(c.ids('t'), ids);
    assert.equal(ownShared, 0);
    assert.equal(own.sub.direct, false);
    assert.ok(gw.stats.framesDirect > 0, 'the others took the direct path');
    for (const f of own.of('data')) assert.ok(f.messages.length <= 20);
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

test('a direct subscriber switched to pause and back to live misses nothing: delivered or dropped with a reason, once', async () => {
  const drops = dropLog();
  const gw = await createGateway({ port: 0, topics: ['t'], onDrop: drops.onDrop, policy: { batchTimeout: 0, maxBatchSize: 50, bufferSize: 5 } });
  const cs = [];
  try {
    const a = await join(gw, 't');
    const other = await join(gw, 't');
    cs.push(a, other);
    await until(() => directAndFree(cs), 'direct');
    for (const id of range(1, 3)) gw.publish('t', msg(id));
    await until(() => a.ids('t').length === 3, 'live');
    a.send({ op: 'mode', topic: 't', mode: 'pause' });
    await sync(a);
    assert.equal(a.sub.direct, false);
    for (const id of range(4, 30)) gw.publish('t', msg(id)); // held in its engine connection (5), the rest shed
    assert.ok(drops.of(a.id).length > 0, 'the paused buffer shed');
    for (const [, reason] of drops.of(a.id)) assert.notEqual(reason, 'dead-letter');
    a.send({ op: 'mode', topic: 't', mode: 'live' });
    await sync(a);
    await until(() => a.ids('t').length + drops.of(a.id).length === 30, 'drained after live');
    await until(() => directAndFree([a]), 'back to direct');
    const direct0 = gw.stats.framesDirect;
    for (const id of range(31, 35)) gw.publish('t', msg(id));
    await until(() => a.ids('t').length + drops.of(a.id).length === 35, 'after');
    assert.ok(gw.stats.framesDirect > direct0, 'direct again after live');
    const got = a.ids('t');
    const dropped = drops.of(a.id).map(([id]) => id);
    assert.equal(new Set(got).size, got.length, 'no duplicates');
    for (const id of got) assert.ok(!dropped.includes(id), `${id} delivered and dropped`);
    assert.deepEqual([...got, ...dropped].sort(), range(1, 35).sort());
    const order = (ids) => ids.map((id) => Number(id.slice(1)));
    assert.deepEqual(order(got), order(got).slice().sort((x, y) => x - y), 'in publish order');
    // The frames told it how many it lost.
    assert.equal(a.of('data').reduce((n, f) => n + (f.dropped ?? 0), 0), dropped.length);
    // The other subscriber, live throughout (its socket busy now and then, so it may shed too):
    // the same accounting.
    await until(() => other.ids('t').length + drops.of(other.id).length === 35, 'other');
    const otherGot = other.ids('t');
    const otherDropped = drops.of(other.id).map(([id]) => id);
    assert.deepEqual([...otherGot, ...otherDropped].sort(), range(1, 35).sort());
    assert.deepEqual(order(otherGot), order(otherGot).slice().sort((x, y) => x - y));
  } finally {
    for (const c of cs) await c.close();
    await gw.close();
  }
});

for (const batchTimeout of [10, 0]) {
  test(`maxBatchSize splitting (batchTimeout ${batchTimeout}): a publish larger than maxBatchSize arrives in order, in frames of at most maxBatchSize`, async () => {
    const gw = await createGateway({ port: 0, topics: ['t'], policy: { batchTimeout, maxBatchSize: 4 } });
    const cs = [];
    try {
      for (let i = 0; i < 3; i++) cs.push(await join(gw, 't'));
      await until(() => directAndFree(cs), 'direct');
      const direct0 = gw.stats.framesDirect;
      gw.publish('t', msgs(range(1, 11)));
      gw.publish('t', msgs(range(12, 13)));
      await until(() => cs.every((c) => c.ids('t').length === 13), 'delivered');
      assert.ok(gw.stats.framesDirect - direct0 >= 3, 'the first batch went direct to each');
      for (const c of cs) {
        assert.deepEqual(c.ids('t'), range(1, 13));
        for (const f of c.of('data')) assert.ok(f.messages.length >= 1 && f.messages.length <= 4, `frame of ${f.messages.length}`);
        assert.deepEqual(c.of('data')[0].messages.map((m) => m.id), range(1, 4));
      }
    } finally {
      for (const c of cs) await c.close();
      await gw.close();
    }
  });
}
