// The core decides retries, dead letters and holds; JavaScript reads the error, supplies the clock
// and the random number, and settles promises. A user's own recovery object (the legacy API) is
// still asked, and its answers reach the core, which keeps the counting and the circuit breaker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine, DefaultErrorRecovery } from '@nodeflow/stream-engine';

let seq = 0;
const msg = () => ({ id: `d${seq++}`, timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: seq });
const settle = async (cond) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 1));
};
const identity = (m) => assert.equal(m.messagesIn, m.messagesOut + m.dropped + m.bufferSize);

test('a user recovery object is asked with the attempt number, its delays are used, and its "no" dead-letters', async () => {
  const e = new StreamEngine();
  const asked = [];
  const delays = [];
  const custom = {
    options: { circuitBreaker: { failureThreshold: 100 } },
    shouldRetry(error, attempt) {
      asked.push([error.message, attempt]);
      return attempt < 2;
    },
    getRetryDelay(attempt) {
      delays.push(attempt);
      return attempt === 0 ? 'not a number' : 1; // NaN counts as no wait
    },
  };
  e.setErrorRecovery(custom);
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 10 });
  const c = e.getConnection(id);
  const errors = [];
  const evs = e.events({ types: ['error'] }).getReader();
  const calls = [];
  const h = c.consume((batch) => {
    calls.push(batch.map((m) => m.id));
    throw new Error(`fail ${calls.length}`);
  });
  const sent = [msg(), msg()];
  await c.writer.write(sent);
  await settle(() => e.getMetrics(id).drops['dead-letter'] === 2);
  assert.deepEqual(asked, [['fail 1', 0], ['fail 2', 1], ['fail 3', 2]]);
  assert.deepEqual(delays, [0, 1]);
  assert.deepEqual(calls, [sent.map((m) => m.id), sent.map((m) => m.id), sent.map((m) => m.id)]);
  for (let i = 0; i < 3; i++) errors.push((await evs.read()).value);
  assert.deepEqual(errors.map((x) => [x.attempt, x.willRetry]), [[0, true], [1, true], [2, false]]);
  const m = e.getMetrics(id);
  assert.equal(m.errors, 3);
  assert.equal(m.retries, 2);
  identity(m);
  assert.deepEqual(c.deadLetters().map((x) => x.id), sent.map((x) => x.id));
  h.stop();
  await h.done;
  e.destroy();
});

test('a throwing user recovery object gives the batch up instead of breaking the loop', async () => {
  const e = new StreamEngine();
  e.setErrorRecovery({
    shouldRetry() {
      throw new Error('recovery bug');
    },
    getRetryDelay: () => 0,
  });
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 });
  const c = e.getConnection(id);
  let fail = true;
  const got = [];
  const h = c.consume((batch) => {
    if (fail) {
      fail = false;
      throw new Error('once');
    }
    got.push(...batch.map((m) => m.id));
  });
  const a = msg();
  const b = msg();
  await c.writer.write(a);
  await settle(() => e.getMetrics(id).drops['dead-letter'] === 1);
  await c.writer.write(b);
  await settle(() => got.length === 1);
  assert.deepEqual(c.deadLetters().map((x) => x.id), [a.id]);
  assert.deepEqual(got, [b.id]);
  identity(e.getMetrics(id));
  h.stop();
  await h.done;
  e.destroy();
});

test('the built-in recovery is decided by the core: its methods are not called back', async () => {
  const proto = DefaultErrorRecovery.prototype;
  const { shouldRetry, getRetryDelay } = proto;
  let jsCalls = 0;
  // Wrapped in place: an engine using DefaultErrorRecovery as shipped must not reach these.
  proto.shouldRetry = function (...a) {
    jsCalls++;
    return shouldRetry.apply(this, a);
  };
  proto.getRetryDelay = function (...a) {
    jsCalls++;
    return getRetryDelay.apply(this, a);
  };
  try {
    const e = new StreamEngine();
    e.setErrorRecovery(new DefaultErrorRecovery({ retryAttempts: 3, retryDelay: 1, maxRetryDelay: 2, jitter: 0 }));
    const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0, maxBatchSize: 1 });
    const c = e.getConnection(id);
    const calls = [];
    const h = c.consume((batch) => {
      const m = batch[0];
      calls.push(m.id);
      throw m.data === 'type' ? new TypeError('not retryable') : Object.assign(new Error('flaky'), { retryable: true });
    });
    const flaky = msg();
    const bad = { ...msg(), data: 'type' };
    await c.writer.write(flaky);
    await settle(() => e.getMetrics(id).drops['dead-letter'] === 1);
    await c.writer.write(bad);
    await settle(() => e.getMetrics(id).drops['dead-letter'] === 2);
    // 1 call + 3 retries for the retryable error; 1 call for the TypeError.
    assert.deepEqual(calls, [flaky.id, flaky.id, flaky.id, flaky.id, bad.id]);
    const m = e.getMetrics(id);
    assert.equal(m.retries, 3);
    assert.equal(m.errors, 5);
    assert.equal(jsCalls, 0);
    assert.deepEqual(c.deadLetters().map((x) => x.id), [flaky.id, bad.id]);
    identity(m);
    h.stop();
    await h.done;
    e.destroy();
  } finally {
    proto.shouldRetry = shouldRetry;
    proto.getRetryDelay = getRetryDelay;
  }
});

test('a subclass overriding shouldRetry is asked like a user object', async () => {
  class Never extends DefaultErrorRecovery {
    shouldRetry(error, attempt) {
      this.seen = (this.seen ?? 0) + 1;
      return attempt < 0;
    }
  }
  const r = new Never({ retryAttempts: 5, retryDelay: 1 });
  const e = new StreamEngine();
  e.setErrorRecovery(r);
  const id = e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 });
  const c = e.getConnection(id);
  const h = c.consume(() => {
    throw new Error('x');
  });
  const a = msg();
  await c.writer.write(a);
  await settle(() => e.getMetrics(id).drops['dead-letter'] === 1);
  assert.equal(r.seen, 1);
  assert.equal(e.getMetrics(id).retries, 0);
  assert.deepEqual(c.deadLetters().map((x) => x.id), [a.id]);
  h.stop();
  await h.done;
  e.destroy();
});

test('a write under backpressure is held until the core says, and released when the reader drains', async () => {
  const e = new StreamEngine();
  // maxWaitTime far away: only a delivery can release the hold.
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 4, backpressureThreshold: 0.5, dropPolicy: 'oldest', maxWaitTime: 600_000, batchTimeout: 60_000, maxBatchSize: 2 });
  const c = e.getConnection(id);
  const w = c.writer;
  await w.write(msg());
  let released = false;
  const second = msg();
  const p = w.write(second).then(() => {
    released = true;
  });
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(released, false, 'held under backpressure');
  assert.equal(e.getMetrics(id).backpressure, true);
  const reader = c.readable.getReader();
  const { value } = await reader.read();
  await p;
  assert.equal(released, true);
  assert.equal(value.at(-1).id, second.id, 'the held write was accepted before its promise resolved');
  reader.releaseLock();
  e.destroy();
});
