// subscribeWidget through the built package: coalesced updates, the ring of last messages,
// connection state, metrics, animation frames and unsubscribing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine, subscribeWidget } from '@nodeflow/stream-engine';

const msg = (i, extra = {}) => ({ id: `m${i}`, timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: i, ...extra });

/** A readable the test drives by hand. */
function manual() {
  let controller;
  const state = { cancelled: false };
  const readable = new ReadableStream({
    start(c) {
      controller = c;
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { readable, controller, state };
}

/** Resolves with the first update that satisfies `pred`. */
function recorder() {
  const updates = [];
  const waiters = [];
  const onUpdate = (u) => {
    updates.push(u);
    for (const w of [...waiters]) {
      if (w.pred(u)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(u);
      }
    }
  };
  const until = (pred) => {
    const hit = updates.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  return { updates, onUpdate, until };
}

test('10,000 messages in many batches: updates are coalesced, data is the last bufferSize, oldest first', async () => {
  const e = new StreamEngine({ bufferSize: 20000, maxBatchSize: 50 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  const c = e.getConnection(id);
  let batches = 0;
  const counted = c.readable.pipeThrough(
    new TransformStream({
      transform(batch, ctl) {
        batches++;
        ctl.enqueue(batch);
      },
    }),
  );
  const rec = recorder();
  const times = [];
  const unsubscribe = subscribeWidget(counted, { bufferSize: 500, updateInterval: 16 }, (u) => {
    times.push(performance.now());
    rec.onUpdate(u);
  });
  for (let b = 0; b < 100; b++) {
    await c.writer.write(Array.from({ length: 100 }, (_, i) => msg(b * 100 + i)));
    await new Promise((resolve) => setTimeout(resolve, 1)); // spread the batches over time
  }
  await e.closeConnection(id);
  const last = await rec.until((u) => !u.isConnected);
  assert.equal(last.metrics.messageCount, 10000);
  assert.equal(last.data.length, 500);
  assert.deepEqual(last.data.map((m) => m.data), Array.from({ length: 500 }, (_, i) => 9500 + i));
  assert.ok(batches >= 200, `${batches} batches read`);
  assert.ok(rec.updates.length * 2 < batches, `${rec.updates.length} updates for ${batches} batches`);
  // At most one update per updateInterval (16 ms) over the time the updates spanned.
  const span = times.at(-1) - times[0];
  assert.ok(times.length <= span / 16 + 2, `${times.length} updates in ${span.toFixed(0)} ms`);
  assert.ok(rec.updates.every((u) => u.data.length <= 500), 'never more than bufferSize');
  assert.ok(rec.updates.every((u, i) => i === 0 || u.metrics.messageCount > rec.updates[i - 1].metrics.messageCount || !u.isConnected), 'an update only when something changed');
  assert.equal(rec.updates.filter((u) => !u.isConnected).length, 1, 'one final disconnected update');
  unsubscribe();
  e.destroy();
});

test('fewer messages than bufferSize: all of them; each update has its own array', async () => {
  const { readable, controller } = manual();
  const rec = recorder();
  const unsubscribe = subscribeWidget(readable, { bufferSize: 100, updateInterval: 0 }, rec.onUpdate);
  controller.enqueue([msg(0), msg(1)]);
  const first = await rec.until((u) => u.metrics.messageCount === 2);
  controller.enqueue([msg(2)]);
  const second = await rec.until((u) => u.metrics.messageCount === 3);
  assert.deepEqual(first.data.map((m) => m.id), ['m0', 'm1']);
  assert.deepEqual(second.data.map((m) => m.id), ['m0', 'm1', 'm2']);
  assert.notEqual(first.data, second.data);
  assert.equal(second.isConnected, true);
  controller.close();
  const end = await rec.until((u) => !u.isConnected);
  assert.equal(end.data.length, 3);
  unsubscribe();
});

test('isConnected turns false when the readable errors', async () => {
  const { readable, controller } = manual();
  const rec = recorder();
  subscribeWidget(readable, {}, rec.onUpdate);
  controller.enqueue([msg(0)]);
  await rec.until((u) => u.metrics.messageCount === 1);
  controller.error(new Error('boom'));
  const end = await rec.until((u) => !u.isConnected);
  assert.equal(end.metrics.messageCount, 1);
  assert.equal(end.data.length, 1);
});

test('unsubscribe cancels the reader and stops updates', async () => {
  const { readable, controller, state } = manual();
  const rec = recorder();
  const unsubscribe = subscribeWidget(readable, { updateInterval: 5 }, rec.onUpdate);
  controller.enqueue([msg(0)]);
  await rec.until((u) => u.metrics.messageCount === 1);
  controller.enqueue([msg(1)]); // pending: would be reported after the interval
  unsubscribe();
  assert.equal(state.cancelled, true);
  const n = rec.updates.length;
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(rec.updates.length, n, 'no update after unsubscribe');
  unsubscribe(); // idempotent
});

test('with engine and connectionId: the engine metrics; after the connection is gone: local figures', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  const c = e.getConnection(id);
  const rec = recorder();
  const unsubscribe = subscribeWidget(c.readable, { bufferSize: 10, updateInterval: 0, engine: e, connectionId: id }, rec.onUpdate);
  await c.writer.write(Array.from({ length: 25 }, (_, i) => msg(i)));
  const u = await rec.until((x) => x.metrics.messageCount === 25);
  assert.equal(u.metrics.connectionId, id);
  assert.equal(u.metrics.messagesIn, 25);
  assert.equal(typeof u.metrics.p95Latency, 'number');
  assert.equal(typeof u.metrics.averageLatency, 'number');
  assert.equal(typeof u.metrics.messagesPerSecond, 'number');
  assert.deepEqual(u.data.map((m) => m.data), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
  await e.closeConnection(id);
  const end = await rec.until((x) => !x.isConnected);
  assert.equal(end.metrics.messageCount, 25);
  assert.equal(end.metrics.connectionId, undefined, 'the connection is gone: local metrics');
  assert.equal(typeof end.metrics.messagesPerSecond, 'number');
  unsubscribe();
  e.destroy();
});

test('local metrics: latency from message timestamps, rate over the last second', async () => {
  const { readable, controller } = manual();
  const rec = recorder();
  const unsubscribe = subscribeWidget(readable, { updateInterval: 0 }, rec.onUpdate);
  const old = Date.now() - 200;
  controller.enqueue(Array.from({ length: 40 }, (_, i) => msg(i, { timestamp: old })));
  const u = await rec.until((x) => x.metrics.messageCount === 40);
  assert.ok(u.metrics.averageLatency >= 200, `${u.metrics.averageLatency}`);
  assert.ok(u.metrics.messagesPerSecond > 0);
  assert.deepEqual(Object.keys(u.metrics).sort(), ['averageLatency', 'messageCount', 'messagesPerSecond']);
  unsubscribe();
});

test('in a browser-like environment updates wait for an animation frame, one per frame', async () => {
  const frames = [];
  globalThis.requestAnimationFrame = (cb) => frames.push(cb);
  globalThis.cancelAnimationFrame = () => {};
  try {
    const { readable, controller } = manual();
    const rec = recorder();
    const unsubscribe = subscribeWidget(readable, { updateInterval: 0 }, rec.onUpdate);
    for (let i = 0; i < 50; i++) controller.enqueue([msg(i)]);
    // Let the reader take everything.
    while (frames.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(rec.updates.length, 0, 'nothing before the frame');
    assert.equal(frames.length, 1, 'one frame requested for many batches');
    frames.shift()(performance.now());
    assert.equal(rec.updates.length, 1);
    assert.equal(rec.updates[0].metrics.messageCount, 50);
    controller.enqueue([msg(50)]);
    while (frames.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    frames.shift()(performance.now());
    assert.equal(rec.updates.length, 2);
    assert.equal(rec.updates[1].data.length, 51);
    unsubscribe();
  } finally {
    delete globalThis.requestAnimationFrame;
    delete globalThis.cancelAnimationFrame;
  }
});

test('bad arguments are TypeError or RangeError naming the field', () => {
  const rs = () => new ReadableStream();
  assert.throws(() => subscribeWidget({}, {}, () => {}), (e) => e instanceof TypeError && /readable/.test(e.message));
  assert.throws(() => subscribeWidget(rs(), { bufferSize: 0 }, () => {}), (e) => e instanceof RangeError && /bufferSize/.test(e.message));
  assert.throws(() => subscribeWidget(rs(), { updateInterval: -1 }, () => {}), (e) => e instanceof RangeError && /updateInterval/.test(e.message));
  assert.throws(() => subscribeWidget(rs(), { engine: {} }, () => {}), (e) => e instanceof TypeError && /engine/.test(e.message));
  assert.throws(() => subscribeWidget(rs(), { connectionId: 3 }, () => {}), (e) => e instanceof TypeError && /connectionId/.test(e.message));
  assert.throws(() => subscribeWidget(rs(), {}), (e) => e instanceof TypeError && /onUpdate/.test(e.message));
});

test('added holds exactly the messages received since the previous update', async () => {
  const { StreamEngine: Engine, subscribeWidget: subscribe } = await import('@nodeflow/stream-engine');
  const e = new Engine({ batchTimeout: 0 });
  const id = e.createConnection('w', 'x', 'out', 'in');
  const c = e.getConnection(id);
  const seen = [];
  const updates = [];
  const stop = subscribe(c.readable, { bufferSize: 5, updateInterval: 0 }, (u) => {
    updates.push(u);
    seen.push(...u.added.map((m) => m.data));
  });
  for (let i = 0; i < 3; i++) {
    await c.writer.write(Array.from({ length: 4 }, (_, k) => ({ id: `a${i}${k}`, timestamp: Date.now(), sourceNodeId: 'w', targetNodeId: 'x', port: 'out', data: i * 4 + k })));
    const before = updates.length;
    while (updates.length === before) await new Promise((r) => setTimeout(r, 1));
  }
  stop();
  // Every message shows up in `added` exactly once, in order (each update saw at most 5).
  assert.deepEqual(seen, Array.from({ length: 12 }, (_, i) => i));
  assert.ok(updates.every((u) => u.data.length <= 5 && u.added.length <= u.data.length));
  e.destroy();
});
