// The foundation API through the built package, exactly as a user imports it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine } from '@nodeflow/stream-engine';

const msg = (i, extra = {}) => ({ id: `m${i}`, timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: { i }, ...extra });

async function readN(reader, n) {
  const out = [];
  const batches = [];
  while (out.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    batches.push(value.length);
    out.push(...value);
  }
  return { out, batches };
}

function identity(m) {
  assert.equal(m.messagesIn, m.messagesOut + m.dropped + m.bufferSize, `accounting: ${JSON.stringify(m)}`);
}

test('connection ids, lookup and duplicates', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('src', 'dst', 'out', 'in');
  assert.equal(id, 'src:out->dst:in');
  assert.deepEqual(e.listConnections(), [id]);
  const c = e.getConnection(id);
  assert.equal(c.id, id);
  assert.equal(c.sourceNodeId, 'src');
  assert.equal(c.targetNodeId, 'dst');
  assert.equal(c.sourcePort, 'out');
  assert.equal(c.targetPort, 'in');
  assert.ok(c.writable instanceof WritableStream);
  assert.ok(c.readable instanceof ReadableStream);
  assert.equal(c.writer, c.writer, 'writer is taken once');
  assert.throws(() => e.createConnection('src', 'dst', 'out', 'in'), /already exists/);
  assert.equal(e.getConnection('nope'), undefined);
  assert.throws(() => e.getMetrics('nope'), /unknown connection/);
  await assert.rejects(e.closeConnection('nope'), /unknown connection/);
  e.destroy();
});

test('defaults apply per connection and can be overridden', () => {
  const e = new StreamEngine({ bufferSize: 200 });
  assert.deepEqual(
    { ...e.config },
    { bufferSize: 200, batchTimeout: 16, maxBatchSize: 50, backpressureThreshold: 0.8, retryAttempts: 3, retryDelay: 100, metricsInterval: 1000, metricsWindow: 5000 },
  );
  const id = e.createConnection('a', 'b', 'o', 'i', { maxBatchSize: 7 });
  const c = e.getConnection(id);
  assert.equal(c.config.bufferSize, 200);
  assert.equal(c.config.maxBatchSize, 7);
  assert.equal(e.getMetrics(id).bufferCapacity, 200);
  e.destroy();
});

test('the reader gets the very objects written, in order, in batches of at most maxBatchSize', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { maxBatchSize: 8, batchTimeout: 5 });
  const c = e.getConnection(id);
  const sent = Array.from({ length: 50 }, (_, i) => msg(i));
  const reader = c.readable.getReader();
  const reading = readN(reader, 50);
  for (const m of sent) await c.writer.write(m);
  const { out, batches } = await reading;
  assert.equal(out.length, 50);
  out.forEach((m, i) => assert.equal(m, sent[i], 'same object, same order'));
  assert.ok(batches.every((n) => n >= 1 && n <= 8), `batch sizes ${batches}`);
  const m = e.getMetrics(id);
  assert.equal(m.messagesIn, 50);
  assert.equal(m.messagesOut, 50);
  assert.equal(m.bufferSize, 0);
  identity(m);
  e.destroy();
});

test('a batch write is accepted whole and delivered in write order', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 1000 });
  const c = e.getConnection(id);
  const sent = Array.from({ length: 300 }, (_, i) => msg(i));
  await c.writer.write(sent.slice(0, 150));
  await c.writer.write(sent.slice(150));
  const reader = c.readable.getReader();
  const { out } = await readN(reader, 300);
  assert.deepEqual(out, sent);
  out.forEach((m, i) => assert.equal(m, sent[i]));
  e.destroy();
});

test('a full batch is delivered before the timeout; a partial one waits for it', async () => {
  const e = new StreamEngine();
  // A long timeout: the partial batch must not arrive until the timer (or more messages) says so.
  const id = e.createConnection('a', 'b', 'out', 'in', { maxBatchSize: 4, batchTimeout: 60_000 });
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  await c.writer.write([msg(1), msg(2), msg(3)]);
  let got = null;
  const pending = reader.read().then((r) => (got = r));
  await new Promise((r) => setImmediate(r));
  assert.equal(got, null, 'three of four: not yet');
  await c.writer.write(msg(4));
  await pending;
  assert.equal(got.value.length, 4);
  e.destroy();
});

test('batchTimeout 0: a waiting reader gets whatever is buffered at once; no empty batches', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 });
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  const p = reader.read();
  await c.writer.write(msg(1));
  const { value } = await p;
  assert.equal(value.length, 1);
  e.destroy();
});

test('lossless backpressure: a full buffer keeps the next write pending and ready pending until the reader drains', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, maxBatchSize: 4, batchTimeout: 0 });
  const c = e.getConnection(id);
  const w = c.writer;
  for (let i = 0; i < 10; i++) await w.write(msg(i));
  assert.equal(e.getMetrics(id).bufferSize, 10);
  let eleventhDone = false;
  const eleventh = w.write(msg(10)).then(() => (eleventhDone = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(eleventhDone, false, 'the 11th write stays pending');
  assert.ok(w.desiredSize <= 0, `desiredSize ${w.desiredSize}`);
  let readyResolved = false;
  w.ready.then(() => (readyResolved = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(readyResolved, false, 'ready is pending');
  const m = e.getMetrics(id);
  assert.equal(m.bufferSize, 10);
  assert.equal(m.bufferUtilization, 1);
  assert.ok(m.backpressureEvents >= 1);
  identity(m);
  const reader = c.readable.getReader();
  const { out } = await readN(reader, 11);
  await eleventh;
  assert.equal(out.length, 11);
  assert.deepEqual(out.map((x) => x.id), Array.from({ length: 11 }, (_, i) => `m${i}`));
  const after = e.getMetrics(id);
  assert.equal(after.dropped, 0);
  identity(after);
  e.destroy();
});

test('pipeTo pauses at a full buffer and loses nothing', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 20, batchTimeout: 0 });
  const c = e.getConnection(id);
  let pulled = 0;
  const total = 500;
  const source = new ReadableStream({
    pull(ctrl) {
      if (pulled === total) return ctrl.close();
      ctrl.enqueue(msg(pulled++));
    },
  }, { highWaterMark: 0 });
  const piping = source.pipeTo(c.writable);
  // Nobody reads yet: the pipe must stall near the buffer size instead of pulling everything.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.ok(pulled <= 22, `pipe pulled ${pulled} with a buffer of 20`);
  assert.equal(e.getMetrics(id).bufferSize, 20);
  const reader = c.readable.getReader();
  const { out } = await readN(reader, total);
  await piping;
  assert.equal(out.length, total);
  assert.deepEqual(out.map((m) => m.data.i), Array.from({ length: total }, (_, i) => i));
  const { done } = await reader.read();
  assert.equal(done, true, 'writer close (end of pipe) ends the readable');
  e.destroy();
});

test('closeConnection forgets at once, refuses writes, and keeps buffered messages readable', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 60_000 });
  const c = e.getConnection(id);
  await c.writer.write([msg(1), msg(2), msg(3)]);
  const closing = e.closeConnection(id);
  assert.equal(e.getConnection(id), undefined);
  assert.deepEqual(e.listConnections(), []);
  await closing; // resolves without a reader
  await assert.rejects(c.writer.write(msg(4)), TypeError);
  const reader = c.readable.getReader();
  const { value } = await reader.read();
  assert.deepEqual(value.map((m) => m.id), ['m1', 'm2', 'm3'], 'no batch timeout wait after close');
  assert.equal((await reader.read()).done, true);
  // The id can be used again.
  const again = e.createConnection('a', 'b', 'out', 'in');
  assert.equal(again, id);
  e.destroy();
});

test('writer.close ends the readable after the last batch; abort errors it; cancel rejects writes', async () => {
  const e = new StreamEngine();
  const c1 = e.getConnection(e.createConnection('a', 'b', 'o1', 'i'));
  await c1.writer.write(msg(1));
  await c1.writer.close();
  const r1 = c1.readable.getReader();
  assert.equal((await r1.read()).value[0].id, 'm1');
  assert.equal((await r1.read()).done, true);

  const c2 = e.getConnection(e.createConnection('a', 'b', 'o2', 'i'));
  await c2.writer.write(msg(2));
  const boom = new Error('boom');
  await c2.writer.abort(boom);
  await assert.rejects(c2.readable.getReader().read(), /boom/);
  assert.equal(c2.deadLetters().length, 1, 'buffered messages are dead-lettered, not lost');

  const id3 = e.createConnection('a', 'b', 'o3', 'i');
  const c3 = e.getConnection(id3);
  await c3.writer.write(msg(3));
  await c3.readable.cancel('gone');
  await assert.rejects(c3.writer.write(msg(4)));
  e.destroy();
});

test('an AbortSignal in the config closes the connection', async () => {
  const e = new StreamEngine();
  const ac = new AbortController();
  const id = e.createConnection('a', 'b', 'out', 'in', { signal: ac.signal });
  ac.abort();
  assert.equal(e.getConnection(id), undefined);
  e.destroy();
});

test('route() fans out to every connection of the source node and port', async () => {
  const e = new StreamEngine();
  const x = e.createConnection('a', 'x', 'out', 'in', { batchTimeout: 0 });
  const y = e.createConnection('a', 'y', 'out', 'in', { batchTimeout: 0 });
  e.createConnection('a', 'z', 'other', 'in');
  const m = msg(1);
  assert.equal(e.route(m), 2);
  assert.equal(e.route({ ...msg(2), port: 'nowhere' }), 0);
  assert.equal(e.route([msg(3), msg(4)]), 4);
  const rx = await e.getConnection(x).readable.getReader().read();
  const ry = await e.getConnection(y).readable.getReader().read();
  assert.equal(rx.value[0], m);
  assert.equal(ry.value[0], m);
  assert.throws(() => e.route({ id: 'q', port: 'out' }), { name: 'TypeError', message: /sourceNodeId/ });
  assert.throws(() => e.route({ id: 'q', sourceNodeId: 'a' }), { name: 'TypeError', message: /port/ });
  e.destroy();
});

test('bad input: clear TypeError/RangeError naming the field, and the engine keeps working', async () => {
  assert.throws(() => new StreamEngine({ bufferSize: -1 }), { name: 'RangeError', message: 'bufferSize must be a positive integer, got -1' });
  assert.throws(() => new StreamEngine({ bufferSize: '10' }), { name: 'TypeError', message: /bufferSize must be a number, got string/ });
  assert.throws(() => new StreamEngine({ batchTimeout: NaN }), { name: 'RangeError', message: /batchTimeout.*NaN/ });
  assert.throws(() => new StreamEngine({ backpressureThreshold: 1.5 }), { name: 'RangeError', message: /backpressureThreshold must be in \(0, 1\]/ });
  assert.throws(() => new StreamEngine({ maxBatchSize: 2.5 }), { name: 'RangeError', message: /maxBatchSize/ });
  assert.throws(() => new StreamEngine('fast'), { name: 'TypeError', message: /config must be an object/ });
  const e = new StreamEngine();
  assert.throws(() => e.createConnection(1, 'b', 'o', 'i'), { name: 'TypeError', message: /sourceNodeId must be a string/ });
  assert.throws(() => e.createConnection('a', 'b', null, 'i'), { name: 'TypeError', message: /outputPort/ });
  assert.throws(() => e.createConnection('a', 'b', 'o', 'i', { retryDelay: -5 }), { name: 'RangeError', message: /retryDelay/ });
  assert.throws(() => e.createConnection('a', 'b', 'o', 'i', { buffersize: 5 }), { name: 'TypeError', message: /unknown option "buffersize"/ });
  assert.throws(() => e.createConnection('a', 'b', 'o', 'i', { dropPolicy: 'random' }), { name: 'TypeError', message: /dropPolicy/ });
  assert.equal(e.listConnections().length, 0, 'failed creations leave nothing behind');

  const id = e.createConnection('a', 'b', 'o', 'i', { batchTimeout: 0 });
  const c = e.getConnection(id);
  const w1 = c.writer;
  await assert.rejects(w1.write(42), { name: 'TypeError', message: /message must be a StreamMessage object, got 42/ });
  // Web Streams semantics: that writable is errored; the connection gives out a fresh one.
  await new Promise((r) => setImmediate(r));
  const w2 = c.writer;
  assert.notEqual(w2, w1);
  await assert.rejects(w2.write({ id: 7 }), { name: 'TypeError', message: /message.id must be a string/ });
  await new Promise((r) => setImmediate(r));
  await assert.rejects(c.writer.write([msg(1), 'x']), { name: 'TypeError', message: /batch\[1\]/ });
  await new Promise((r) => setImmediate(r));
  await assert.rejects(c.writer.write(msg(1, { metadata: { priority: 7 } })), { name: 'RangeError', message: /metadata.priority must be in \[0, 1\]/ });
  await new Promise((r) => setImmediate(r));
  await assert.rejects(c.writer.write(msg(1, { metadata: { priority: 'urgent' } })), { name: 'TypeError', message: /metadata.priority/ });
  await new Promise((r) => setImmediate(r));
  // Still fully usable, and nothing half-written by the bad batch.
  await c.writer.write(msg(99));
  const { value } = await c.readable.getReader().read();
  assert.deepEqual(value.map((m) => m.id), ['m99']);
  const m = e.getMetrics(id);
  assert.equal(m.messagesIn, 1);
  identity(m);
  e.destroy();
});

test('metrics: a new connection reports zeros; counters and latency after traffic', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'o', 'i', { batchTimeout: 0 });
  const m0 = e.getMetrics(id);
  for (const k of ['messagesIn', 'messagesOut', 'bufferSize', 'bufferUtilization', 'messagesPerSecond', 'averageLatency', 'p95Latency', 'p99Latency', 'backpressureEvents', 'errorRate', 'dropped']) {
    assert.equal(m0[k], 0, k);
  }
  assert.equal(typeof m0.lastUpdated, 'number');
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  const reading = readN(reader, 100);
  for (let i = 0; i < 100; i++) await c.writer.write(msg(i));
  await reading;
  const m = e.getMetrics(id);
  assert.equal(m.messagesOut, 100);
  assert.equal(m.messagesPerSecond, 100, 'all delivered within the last second');
  assert.ok(m.p99Latency >= m.p95Latency && m.p95Latency >= m.p50Latency);
  assert.ok(m.maxLatency >= m.p99Latency);
  identity(m);
  e.destroy();
});

test('pause() holds delivery without loss and resume() releases it', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'o', 'i', { batchTimeout: 0 });
  const c = e.getConnection(id);
  c.pause();
  assert.equal(c.paused, true);
  const reader = c.readable.getReader();
  let got = null;
  const p = reader.read().then((r) => (got = r));
  await c.writer.write([msg(1), msg(2)]);
  await new Promise((r) => setImmediate(r));
  assert.equal(got, null);
  assert.equal(e.getMetrics(id).paused, true);
  c.resume();
  await p;
  assert.deepEqual(got.value.map((m) => m.id), ['m1', 'm2']);
  e.destroy();
});

test('destroy() closes everything and stops every timer so Node can exit', async () => {
  const { spawnSync } = await import('node:child_process');
  const code = `
    import { StreamEngine } from '@nodeflow/stream-engine';
    const e = new StreamEngine({ batchTimeout: 10_000 });
    const id = e.createConnection('a', 'b', 'o', 'i');
    const c = e.getConnection(id);
    e.events().getReader().read();
    e.metrics$.subscribe(() => {});
    await c.writer.write({ id: 'x', timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'o', data: 1 });
    c.readable.getReader().read().then((r) => console.log('read', r.done, c.deadLetters().map((m) => m.id)));
    e.destroy();
    console.log('destroyed', e.listConnections().length);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: process.cwd(), timeout: 20_000, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /destroyed 0/);
  assert.match(r.stdout, /read true \[ 'x' \]/, 'destroy ends the reader; the buffered message is a dead letter');
});

test('CommonJS require works too', async () => {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const { StreamEngine: CjsEngine } = require('@nodeflow/stream-engine');
  const e = new CjsEngine();
  assert.equal(e.createConnection('a', 'b', 'c', 'd'), 'a:c->b:d');
  e.destroy();
});

test('closeConnection frees the id at once, even while the old readable still drains', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  const old = e.getConnection(id);
  await old.writer.write([msg(1), msg(2)]);
  await e.closeConnection(id);
  const again = e.createConnection('a', 'b', 'out', 'in');
  assert.equal(again, id);
  const fresh = e.getConnection(id);
  assert.notEqual(fresh, old);
  await fresh.writer.write(msg(3));
  // The old readable still delivers its buffered messages and then ends, without disturbing the new one.
  const r = old.readable.getReader();
  assert.deepEqual((await r.read()).value.map((m) => m.id), ['m1', 'm2']);
  assert.equal((await r.read()).done, true);
  assert.equal(e.getConnection(id), fresh);
  assert.deepEqual((await fresh.readable.getReader().read()).value.map((m) => m.id), ['m3']);
  assert.equal(e.getMetrics(id).messagesIn, 1);
  e.destroy();
});

test('closing a connection with an active alert emits a well-formed alert-resolved', async () => {
  const e = new StreamEngine({ metricsInterval: 10 });
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, batchTimeout: 60_000 });
  const c = e.getConnection(id);
  const r = e.events({ types: ['alert', 'alert-resolved'] }).getReader();
  await c.writer.write(Array.from({ length: 9 }, (_, i) => msg(i)));
  let ev;
  do ev = (await r.read()).value; while (ev.type !== 'alert');
  await e.closeConnection(id);
  const reader = c.readable.getReader();
  while (!(await reader.read()).done);
  do ev = (await r.read()).value; while (ev.type !== 'alert-resolved');
  assert.equal(ev.alert.connectionId, id);
  assert.ok(['backpressure', 'high_latency'].includes(ev.alert.type), ev.alert.type);
  assert.ok(Math.abs(ev.alert.timestamp - Date.now()) < 60_000, 'wall-clock timestamp');
  await r.cancel();
  e.destroy();
});
