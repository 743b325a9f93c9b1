// Flow control through the real streams: handlers, drop policies, conflation, accounting,
// consumers with retries, dead letters and the circuit breaker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  StreamEngine,
  DefaultBackpressureHandler,
  AdaptiveBackpressureHandler,
  GracefulErrorRecovery,
  DefaultErrorRecovery,
} from '@nodeflow/stream-engine';

let seq = 0;
const msg = (priority, extra = {}) => ({
  id: `m${seq++}`,
  timestamp: Date.now(),
  sourceNodeId: 'a',
  targetNodeId: 'b',
  port: 'out',
  data: { seq },
  ...(priority === undefined ? {} : { metadata: { priority } }),
  ...extra,
});
const tick = () => new Promise((r) => setImmediate(r));

function identity(m) {
  assert.equal(m.messagesIn, m.messagesOut + m.dropped + m.bufferSize, `accounting: ${JSON.stringify(m)}`);
  const byReason = Object.values(m.drops).reduce((a, b) => a + b, 0);
  const byClass = Object.values(m.dropsByPriority).reduce((a, b) => a + b, 0);
  assert.equal(byReason, m.dropped);
  assert.equal(byClass, m.dropped);
}

test('DefaultBackpressureHandler: ready pends at the threshold until the reader drains below the low watermark', async () => {
  const e = new StreamEngine();
  // A wait budget far beyond the test, so only the reader can release the held write.
  e.setBackpressureHandler(new DefaultBackpressureHandler({ dropThreshold: 0.9, maxWaitTime: 600_000 }));
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, backpressureThreshold: 0.5, batchTimeout: 0, maxBatchSize: 4 });
  const c = e.getConnection(id);
  const w = c.writer;
  for (let i = 0; i < 4; i++) await w.write(msg('normal'));
  assert.equal(e.getMetrics(id).backpressure, false);
  // The write that reaches the threshold is accepted but held: ready pends.
  let heldDone = false;
  const held = w.write(msg('normal')).then(() => (heldDone = true));
  await tick();
  const m = e.getMetrics(id);
  assert.equal(m.backpressure, true);
  assert.equal(m.bufferSize, 5, 'accepted');
  assert.equal(m.backpressureEvents, 1);
  assert.ok(w.desiredSize <= 0, `desiredSize ${w.desiredSize}`);
  let readyNow = false;
  w.ready.then(() => (readyNow = true));
  await tick();
  assert.equal(readyNow, false, 'ready pending under backpressure');
  assert.equal(heldDone, false);
  // Draining one batch of 4 leaves 1 (< 0.75 * 5): backpressure ends and the write completes.
  const reader = c.readable.getReader();
  assert.equal((await reader.read()).value.length, 4);
  await held;
  assert.equal(e.getMetrics(id).backpressure, false);
  e.destroy();
});

test('DefaultBackpressureHandler: a producer past the drop threshold loses the lowest priorities, never critical ones', async () => {
  const e = new StreamEngine();
  e.setBackpressureHandler(new DefaultBackpressureHandler({ dropThreshold: 0.9, maxWaitTime: 0 }));
  const dropped = [];
  const id = e.createConnection('a', 'b', 'out', 'in', {
    bufferSize: 10,
    backpressureThreshold: 0.5,
    batchTimeout: 0,
    onDrop: (m, reason) => dropped.push([m, reason]),
  });
  const c = e.getConnection(id);
  const w = c.writer;
  const writes = [];
  const critical = [];
  for (let i = 0; i < 30; i++) {
    const p = i % 3 === 0 ? 'critical' : i % 3 === 1 ? 'low' : 'high';
    const m = msg(p);
    if (p === 'critical') critical.push(m);
    writes.push(w.write(m));
  }
  await Promise.all(writes);
  await tick();
  const m = e.getMetrics(id);
  identity(m);
  assert.ok(m.dropped > 0, 'something was dropped');
  assert.equal(m.dropsByPriority.critical, 0, 'no critical drops');
  assert.ok(m.drops.priority > 0);
  assert.ok(m.dropsByPriority.low >= m.dropsByPriority.high, `low first: ${JSON.stringify(m.dropsByPriority)}`);
  assert.ok(m.bufferSize <= 10);
  assert.equal(dropped.length, m.dropped, 'onDrop saw every drop');
  assert.ok(dropped.every(([, r]) => r === 'priority'));
  // Everything critical is still there to read.
  const reader = c.readable.getReader();
  const got = [];
  while (got.length < m.bufferSize) got.push(...(await reader.read()).value);
  for (const cm of critical) assert.ok(got.includes(cm), `critical ${cm.id} delivered`);
  e.destroy();
});

test('a refused write is retried when a waiting reader empties the buffer in the same call', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 50, maxBatchSize: 50, batchTimeout: 0 });
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  const first = reader.read();
  await c.writer.write([msg(), msg()]);
  assert.equal((await first).value.length, 2);
  const r2 = reader.read();
  const big = Array.from({ length: 300 }, () => msg());
  const done = c.writer.write(big);
  let n = (await r2).value.length;
  while (n < 300) n += (await reader.read()).value.length;
  await done;
  assert.equal(n, 300);
  e.destroy();
});

test('a critical write into a buffer of only critical messages waits instead of dropping', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 4, dropPolicy: 'priority', maxWaitTime: 0, batchTimeout: 0 });
  const c = e.getConnection(id);
  for (let i = 0; i < 4; i++) await c.writer.write(msg('critical'));
  let done = false;
  const fifth = c.writer.write(msg('critical')).then(() => (done = true));
  await tick();
  assert.equal(done, false);
  assert.equal(e.getMetrics(id).dropped, 0);
  const reader = c.readable.getReader();
  let n = 0;
  while (n < 5) n += (await reader.read()).value.length;
  await fifth;
  const m = e.getMetrics(id);
  assert.equal(m.dropped, 0);
  assert.equal(m.messagesOut, 5);
  e.destroy();
});

test('dropPolicy oldest / newest / priority pick the documented victim', async () => {
  const e = new StreamEngine();
  const run = async (policy) => {
    const ids = [];
    const id = e.createConnection('a', 'b', policy, 'in', { bufferSize: 3, dropPolicy: policy, maxWaitTime: 0, onDrop: (m) => ids.push(m.id) });
    const c = e.getConnection(id);
    const ms = [msg(0.5), msg(0.2), msg(0.5), msg(0.9)];
    for (const m of ms) await c.writer.write(m);
    return { ids, ms, m: e.getMetrics(id) };
  };
  const oldest = await run('oldest');
  assert.deepEqual(oldest.ids, [oldest.ms[0].id]);
  assert.equal(oldest.m.drops.oldest, 1);
  const newest = await run('newest');
  assert.deepEqual(newest.ids, [newest.ms[3].id]);
  assert.equal(newest.m.drops.newest, 1);
  const prio = await run('priority');
  assert.deepEqual(prio.ids, [prio.ms[1].id], 'lowest priority goes');
  assert.equal(prio.m.drops.priority, 1);
  for (const r of [oldest, newest, prio]) identity(r.m);
  e.destroy();
});

test('conflate: the latest value per metadata.key wins and the replaced one is counted', async () => {
  const e = new StreamEngine();
  const seen = [];
  const id = e.createConnection('a', 'b', 'out', 'in', { conflate: true, batchTimeout: 60_000, onDrop: (m, r) => seen.push(r) });
  const c = e.getConnection(id);
  const k = (key, v) => ({ ...msg(0.5), metadata: { key }, data: v });
  await c.writer.write([k('cpu', 1), k('mem', 10), k('cpu', 2), k('cpu', 3)]);
  const m = e.getMetrics(id);
  assert.equal(m.bufferSize, 2);
  assert.equal(m.drops.conflated, 2);
  identity(m);
  await e.closeConnection(id);
  const { value } = await c.readable.getReader().read();
  assert.deepEqual(value.map((x) => x.data), [3, 10]);
  await tick();
  assert.deepEqual(seen, ['conflated', 'conflated']);
  e.destroy();
});

test('a producer ignoring backpressure at 10x overload: memory stays bounded and everything is accounted for', async () => {
  const e = new StreamEngine();
  e.setBackpressureHandler(new DefaultBackpressureHandler({ maxWaitTime: 5 }));
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 100, maxBatchSize: 10, batchTimeout: 0 });
  const c = e.getConnection(id);
  const w = c.writer;
  const reader = c.readable.getReader();
  let delivered = 0;
  let critical = 0;
  let maxPending = 0;
  const pending = new Set();
  // 20 rounds: the producer fires 100 writes without awaiting; the reader takes one batch (10).
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 100; i++) {
      const p = i % 10 === 0 ? 'critical' : i % 10 < 4 ? 'high' : 'low';
      if (p === 'critical') critical++;
      const pr = w.write(msg(p));
      pending.add(pr);
      pr.finally(() => pending.delete(pr));
    }
    maxPending = Math.max(maxPending, pending.size);
    delivered += (await reader.read()).value.length;
    await new Promise((r) => setTimeout(r, 6));
  }
  await Promise.all([...pending]);
  const m = e.getMetrics(id);
  identity(m);
  assert.equal(m.messagesIn, 2000, 'every write was taken or dropped, none left pending');
  assert.ok(m.bufferSize <= 100);
  assert.equal(m.dropsByPriority.critical, 0);
  assert.ok(m.dropped > 1000);
  assert.ok(m.deliveredByPriority.critical + m.bufferSize >= 0);
  // Drain the rest: every critical message is delivered.
  await e.closeConnection(id);
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    delivered += r.value.length;
  }
  const fin = e.getMetrics.bind(e);
  void fin;
  assert.equal(delivered + m.dropped, 2000);
  void critical;
  e.destroy();
});

test('AdaptiveBackpressureHandler: sheds low priority under overload, shows its state, drops nothing under light load', async () => {
  const e = new StreamEngine();
  const handler = new AdaptiveBackpressureHandler({ targetLatency: 50 });
  assert.equal(handler.options.targetLatency, 50);
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 2000, maxBatchSize: 20, batchTimeout: 0, backpressureHandler: handler });
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  // Light load first: the reader keeps up.
  for (let i = 0; i < 200; i++) {
    const r = reader.read();
    await c.writer.write(msg('low'));
    await r;
  }
  let m = e.getMetrics(id);
  assert.equal(m.dropped, 0, 'nothing dropped under light load');
  assert.ok(m.adaptive, 'adaptive state in metrics');
  // Overload: 200 writes per 5 ms round, reader takes one batch of at most 20 per round.
  const started = performance.now();
  while (performance.now() - started < 1500) {
    const ws = [];
    // Writes still queued when the engine is destroyed reject; that is expected here.
    for (let i = 0; i < 200; i++) ws.push(c.writer.write(msg(i % 10 === 0 ? 'critical' : i % 10 < 4 ? 'high' : 'low')).catch(() => {}));
    await reader.read();
    await new Promise((r) => setTimeout(r, 5));
  }
  m = e.getMetrics(id);
  identity(m);
  assert.ok(m.dropped > 0);
  assert.equal(m.dropsByPriority.critical, 0);
  assert.ok(m.dropsByPriority.low > m.dropsByPriority.high, JSON.stringify(m.dropsByPriority));
  assert.ok(m.adaptive.effectiveThreshold < handler.options.maxThreshold, `threshold ${m.adaptive.effectiveThreshold}`);
  assert.ok(m.adaptive.dropRate > 0);
  e.destroy();
});

test('old handler interface: prioritizeMessage / shouldDropMessage, and a user object as handler', async () => {
  const h = new DefaultBackpressureHandler();
  assert.equal(h.prioritizeMessage(msg('high')), 0.75);
  assert.equal(h.prioritizeMessage(msg()), 0.5);
  assert.equal(h.prioritizeMessage(msg(0.3)), 0.3);
  assert.equal(h.shouldDropMessage(msg('low')), true);
  assert.equal(h.shouldDropMessage(msg('critical')), false);
  assert.throws(() => new DefaultBackpressureHandler({ dropThreshold: 2 }), { name: 'RangeError', message: /dropThreshold/ });
  assert.throws(() => new DefaultBackpressureHandler({ maxWaitTime: 'x' }), { name: 'TypeError', message: /maxWaitTime/ });

  const e = new StreamEngine();
  const calls = { prio: 0, drop: 0 };
  const mine = {
    prioritizeMessage(m) {
      calls.prio++;
      return m.data.important ? 1 : 0.1;
    },
    shouldDropMessage(m) {
      calls.drop++;
      return !m.data.important;
    },
  };
  e.setBackpressureHandler(mine);
  assert.throws(() => e.setBackpressureHandler({}), { name: 'TypeError', message: /prioritizeMessage/ });
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, backpressureThreshold: 0.5, batchTimeout: 0 });
  const c = e.getConnection(id);
  const ws = [];
  for (let i = 0; i < 40; i++) ws.push(c.writer.write({ ...msg(), data: { important: i % 4 === 0 } }));
  await Promise.all(ws);
  const m = e.getMetrics(id);
  identity(m);
  assert.ok(calls.prio >= 40);
  assert.ok(calls.drop > 0, 'shouldDropMessage consulted under pressure');
  assert.ok(m.dropped > 0);
  assert.equal(m.dropsByPriority.critical, 0, 'the handler said these matter');
  e.destroy();
});

test('error recovery: shouldRetry and getRetryDelay', () => {
  const r = new GracefulErrorRecovery({ retryAttempts: 2, retryDelay: 100, maxRetryDelay: 1000, jitter: 0.5 });
  assert.ok(r instanceof DefaultErrorRecovery);
  assert.equal(r.shouldRetry(new Error('net'), 0), true);
  assert.equal(r.shouldRetry(new Error('net'), 1), true);
  assert.equal(r.shouldRetry(new Error('net'), 2), false);
  assert.equal(r.shouldRetry(new TypeError('bad'), 0), false);
  assert.equal(r.shouldRetry(new SyntaxError('bad'), 0), false);
  assert.equal(r.shouldRetry(Object.assign(new Error('x'), { name: 'AbortError' }), 0), false);
  assert.equal(r.shouldRetry(Object.assign(new Error('x'), { retryable: false }), 0), false);
  for (let a = 0; a < 8; a++) {
    const d = r.getRetryDelay(a);
    const base = 100 * 2 ** a;
    assert.ok(d >= Math.min(1000, base) && d <= Math.min(1000, base * 1.5), `attempt ${a}: ${d}`);
  }
  assert.throws(() => new GracefulErrorRecovery({ jitter: 2 }), { name: 'RangeError', message: /jitter/ });
  assert.throws(() => new GracefulErrorRecovery({ circuitBreaker: { failureThreshold: 0 } }), { name: 'RangeError', message: /circuitBreaker.failureThreshold/ });
});

test('consume(): a failing handler is retried, then recovers; exhausted retries dead-letter the batch', async () => {
  const e = new StreamEngine();
  e.setErrorRecovery(new GracefulErrorRecovery({ retryAttempts: 2, retryDelay: 1, jitter: 0, circuitBreaker: { failureThreshold: 100, resetTimeout: 10 } }));
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 100 });
  const c = e.getConnection(id);
  const errors = [];
  const evs = e.events({ types: ['error'] }).getReader();
  let failNext = 1;
  let permanent = false;
  const handled = [];
  const handle = c.consume(async (batch) => {
    if (permanent) throw new Error('permanent');
    if (failNext-- > 0) throw new Error('flaky');
    handled.push(...batch);
  });
  await c.writer.write([msg(), msg()]);
  while (handled.length < 2) await tick();
  errors.push((await evs.read()).value);
  assert.equal(errors[0].type, 'error');
  assert.equal(errors[0].willRetry, true);
  let m = e.getMetrics(id);
  assert.equal(m.messagesOut, 2);
  assert.equal(m.retries, 1);
  assert.equal(m.errors, 1);
  assert.ok(m.errorRate > 0 && m.errorRate < 1);
  permanent = true;
  await c.writer.write([msg(), msg(), msg()]);
  while (e.getMetrics(id).drops['dead-letter'] < 3) await new Promise((r) => setTimeout(r, 2));
  m = e.getMetrics(id);
  identity(m);
  assert.equal(m.drops['dead-letter'], 3);
  assert.equal(c.deadLetters().length, 3);
  assert.equal(c.deadLetters().length, 0, 'deadLetters() clears the list');
  handle.stop();
  await handle.done;
  e.destroy();
});

test('consume(): the circuit opens after consecutive failures, holds calls, and closes after a good trial', async () => {
  const e = new StreamEngine();
  e.setErrorRecovery(new DefaultErrorRecovery({ retryAttempts: 0, retryDelay: 0, jitter: 0, circuitBreaker: { failureThreshold: 3, resetTimeout: 50 } }));
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 1 });
  const c = e.getConnection(id);
  const events = [];
  const r = e.events({ types: ['connection'] }).getReader();
  (async () => {
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      events.push(value.action);
    }
  })();
  let failing = true;
  let calls = 0;
  c.consume(() => {
    calls++;
    if (failing) throw new Error('down');
  });
  for (let i = 0; i < 3; i++) await c.writer.write(msg());
  while (e.getMetrics(id).circuitState !== 'open') await tick();
  const callsAtOpen = calls;
  await c.writer.write(msg());
  await c.writer.write(msg());
  await tick();
  assert.equal(calls, callsAtOpen, 'no calls while open');
  assert.equal(e.getMetrics(id).bufferSize >= 1, true, 'messages keep buffering');
  failing = false;
  while (e.getMetrics(id).circuitState !== 'closed') await new Promise((res) => setTimeout(res, 5));
  while (e.getMetrics(id).bufferSize > 0) await new Promise((res) => setTimeout(res, 2));
  await tick();
  assert.ok(events.includes('circuit-opened'), events.join());
  assert.ok(events.includes('circuit-closed'), events.join());
  const m = e.getMetrics(id);
  identity(m);
  assert.equal(m.drops['dead-letter'], 3);
  assert.equal(m.messagesOut, 2);
  e.destroy();
});
