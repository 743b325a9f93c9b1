// Metrics, the event feed, alerts, the old observables (with RxJS interop) and the debugger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { from, take, toArray, firstValueFrom } from 'rxjs';
import { StreamEngine, StreamDebugger } from '@nodeflow/stream-engine';

let seq = 0;
const msg = (extra = {}) => ({ id: `m${seq++}`, timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: seq, ...extra });
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function nextOf(reader, pred) {
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended');
    if (pred(value)) return value;
  }
}

test('events(): metrics snapshots every metricsInterval, filtered by type', async () => {
  const e = new StreamEngine({ metricsInterval: 20 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  const r = e.events({ types: ['metrics'] }).getReader();
  const ev = await r.read();
  assert.equal(ev.value.type, 'metrics');
  const m = ev.value.metrics;
  assert.ok(m.connections[id]);
  assert.equal(m.totals.connections, 1);
  assert.equal(typeof m.system.eventLoopLag, 'number');
  assert.ok(m.system.wasmMemoryBytes > 0);
  assert.ok(m.system.jsHeapUsed > 0, 'Node exposes the JS heap');
  const ev2 = await r.read();
  assert.equal(ev2.value.type, 'metrics');
  assert.ok(ev2.value.timestamp >= ev.value.timestamp);
  assert.throws(() => e.events({ types: ['bogus'] }), { name: 'TypeError', message: /unknown event type/ });
  await r.cancel();
  e.destroy();
});

test('getMetrics() without an id: totals, every connection and system figures', async () => {
  const e = new StreamEngine();
  const a = e.createConnection('a', 'b', 'o1', 'i', { batchTimeout: 0 });
  const b = e.createConnection('a', 'b', 'o2', 'i');
  await e.getConnection(a).writer.write([msg(), msg()]);
  await e.getConnection(b).writer.write(msg());
  const m = e.getMetrics();
  assert.equal(m.totals.connections, 2);
  assert.equal(m.totals.messagesIn, 3);
  assert.equal(m.totals.bufferSize, 3);
  assert.deepEqual(Object.keys(m.connections).sort(), [a, b].sort());
  assert.ok('eventLoopLag' in m.system && 'wasmMemoryBytes' in m.system);
  e.destroy();
});

test('a stalled subscriber is bounded, reports what it missed, and does not slow the engine', async () => {
  const e = new StreamEngine({ metricsInterval: 5 });
  const stalled = e.events({ queueSize: 5 }); // never read until the end
  const live = e.events({ types: ['metrics'] }).getReader();
  for (let i = 0; i < 15; i++) await live.read();
  const r = stalled.getReader();
  const first = await r.read();
  assert.ok(first.value.missed > 0, `missed ${first.value.missed}`);
  let queued = 1;
  while (queued < 5) {
    await r.read();
    queued++;
  }
  await r.cancel();
  await live.cancel();
  e.destroy();
});

test('alerts fire once when a condition starts and resolve when it clears', async () => {
  const e = new StreamEngine({ metricsInterval: 10 });
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, batchTimeout: 60_000, maxBatchSize: 10 });
  const c = e.getConnection(id);
  const r = e.events({ types: ['alert', 'alert-resolved'] }).getReader();
  await c.writer.write(Array.from({ length: 8 }, () => msg()));
  const fired = await nextOf(r, (ev) => ev.alert.type === 'backpressure');
  assert.equal(fired.type, 'alert');
  assert.equal(fired.alert.severity, 'warning');
  assert.equal(fired.alert.connectionId, id);
  assert.equal(fired.alert.threshold, 0.7);
  assert.equal(fired.alert.value, 0.8);
  for (const k of ['type', 'severity', 'connectionId', 'message', 'value', 'threshold', 'timestamp']) assert.ok(k in fired.alert, k);
  // Stays over the threshold for several ticks: no second alert. Then drain.
  await wait(60);
  const reader = c.readable.getReader();
  c.pause();
  c.resume();
  await e.closeConnection(id);
  await reader.read();
  const next = await nextOf(r, () => true);
  assert.equal(next.type, 'alert-resolved', `got ${JSON.stringify(next)}`);
  assert.equal(next.alert.type, 'backpressure');
  await r.cancel();
  e.destroy();
});

test('setThresholds in the old shape; a stalled reader shows as high latency (age of the oldest message)', async () => {
  const e = new StreamEngine({ metricsInterval: 10 });
  e.setThresholds({ latency: { warning: 20, critical: 40 } });
  assert.deepEqual(e.getThresholds().latency, { warning: 20, critical: 40 });
  assert.equal(e.getThresholds().errorRate.warning, 0.05);
  assert.throws(() => e.setThresholds({ latency: { warning: -1 } }), { name: 'RangeError', message: /latency.warning/ });
  assert.throws(() => e.setThresholds({ memory: { critical: 2 } }), { name: 'RangeError', message: /memory.critical/ });
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 60_000 });
  await e.getConnection(id).writer.write(msg());
  const r = e.events({ types: ['alert'] }).getReader();
  const a = await nextOf(r, (ev) => ev.alert.type === 'high_latency' && ev.alert.severity === 'critical');
  assert.ok(a.alert.value >= 40);
  await r.cancel();
  e.destroy();
});

test('backpressure, drop and connection events', async () => {
  const e = new StreamEngine();
  const r = e.events({ types: ['backpressure', 'drop', 'connection'] }).getReader();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, dropPolicy: 'oldest', maxWaitTime: 0, batchTimeout: 60_000 });
  const created = await r.read();
  assert.deepEqual([created.value.type, created.value.action, created.value.connectionId], ['connection', 'created', id]);
  const c = e.getConnection(id);
  for (let i = 0; i < 30; i++) await c.writer.write(msg());
  const bp = await nextOf(r, (ev) => ev.type === 'backpressure');
  assert.equal(bp.state, 'start');
  const drop = await nextOf(r, (ev) => ev.type === 'drop');
  assert.equal(drop.connectionId, id);
  assert.equal(drop.count, 20, 'one summary for the whole burst, not one event per message');
  assert.equal(drop.reasons.oldest, 20);
  assert.equal(drop.byPriority.normal, 20);
  c.pause();
  assert.equal((await nextOf(r, (ev) => ev.type === 'connection')).action, 'paused');
  await r.cancel();
  e.destroy();
});

test('resetMetrics keeps the accounting identity', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 2 });
  const c = e.getConnection(id);
  await c.writer.write([msg(), msg(), msg(), msg(), msg()]);
  await c.readable.getReader().read();
  e.resetMetrics(id);
  const m = e.getMetrics(id);
  assert.equal(m.messagesOut, 0);
  assert.equal(m.bufferSize, 3);
  assert.equal(m.messagesIn, 3);
  assert.equal(m.p95Latency >= 0, true);
  e.destroy();
});

test('metrics$ and debug$ interoperate with RxJS from()', async () => {
  const e = new StreamEngine({ metricsInterval: 10 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  assert.equal(typeof e.metrics$['@@observable'], 'function');
  const maps = await firstValueFrom(from(e.metrics$).pipe(take(2), toArray()));
  assert.ok(maps[0] instanceof Map);
  assert.ok(maps[0].get(id));
  const debugP = firstValueFrom(from(e.debug$).pipe(take(1)));
  e.createConnection('x', 'y', 'out', 'in');
  const d = await debugP;
  assert.equal(d.type, 'connection_created');
  assert.equal(d.connectionId, 'x:out->y:in');
  e.destroy();
});

test('RxJS from(connection.readable) reads batches', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 });
  const c = e.getConnection(id);
  await c.writer.write([msg(), msg()]);
  await c.writer.close();
  const batches = await firstValueFrom(from(c.readable).pipe(toArray()));
  assert.equal(batches.flat().length, 2);
  e.destroy();
});

test('createBatchedStream keeps delivering for the life of the connection', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 });
  const c = e.getConnection(id);
  const got = [];
  let completed = false;
  const sub = e.createBatchedStream(id).subscribe({ next: (b) => got.push(b), complete: () => (completed = true) });
  for (let round = 0; round < 5; round++) {
    await c.writer.write([msg(), msg(), msg()]);
    while (got.reduce((n, b) => n + b.messages.length, 0) < (round + 1) * 3) await wait(1);
  }
  assert.ok(got.length >= 5, 'more than one batch');
  assert.equal(got[0].totalSize, got[0].messages.length);
  assert.equal(typeof got[0].timestamp, 'number');
  await e.closeConnection(id);
  while (!completed) await wait(1);
  sub.unsubscribe();
  e.destroy();
});

test('StreamDebugger records events, alerts and snapshots, bounded, and exports JSON', async () => {
  const e = new StreamEngine({ metricsInterval: 10 });
  const dbg = new StreamDebugger(e, { maxHistorySize: 50 });
  const seen = [];
  dbg.debug$.subscribe((ev) => seen.push(ev));
  dbg.startRecording();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, dropPolicy: 'newest', maxWaitTime: 0, batchTimeout: 0 });
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  for (let i = 0; i < 100; i++) {
    await c.writer.write(msg());
    if (i % 3 === 0) await reader.read();
  }
  await wait(150);
  const snaps = [];
  dbg.snapshots$.subscribe((s) => snaps.push(s));
  await wait(30);
  assert.ok(snaps.length > 0 && snaps[0].systemMetrics && snaps[0].connections[id]);
  const hist = dbg.getEventHistory();
  assert.ok(hist.length <= 50, 'bounded history');
  assert.ok(hist.some((ev) => ev.type === 'batch_delivered'));
  assert.ok(dbg.getEventsForConnection(id).every((ev) => ev.connectionId === id));
  assert.ok(seen.length > 0);
  const data = dbg.exportDebugData();
  const round = JSON.parse(JSON.stringify(data));
  assert.deepEqual(round.events, data.events);
  assert.equal(round.metadata.engineVersion, data.metadata.engineVersion);
  assert.ok(round.metadata.exportTimestamp > 0);
  assert.equal(round.metadata.config.bufferSize, 1000);
  assert.ok(Array.isArray(round.snapshots) && round.snapshots.length > 0);
  dbg.setThresholds({ backpressure: { warning: 0.5 } });
  assert.equal(e.getThresholds().backpressure.warning, 0.5);
  dbg.stopRecording();
  const n = dbg.getEventHistory().length;
  e.createConnection('q', 'r', 'out', 'in');
  assert.equal(dbg.getEventHistory().length, n, 'not recording');
  e.destroy();
});
