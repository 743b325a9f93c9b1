// Regression tests for the write path and validation (issue 8 items 4-8 and 14) and for the
// Rust/JS boundary (issue 9): one test per item, named after it. Each failed on the code before
// the fix. Messages are tracked by id, not only by counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  StreamEngine,
  StreamDebugger,
  DefaultBackpressureHandler,
  AdaptiveBackpressureHandler,
  DefaultErrorRecovery,
  GracefulErrorRecovery,
} from '@nodeflow/stream-engine';

const root = fileURLToPath(new URL('../..', import.meta.url));
const m = (d, metadata) => ({ id: String(d), timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: d, ...(metadata ? { metadata } : {}) });
/** Lets queued microtasks and the connection's writable replacement run. */
const tick = () => new Promise((r) => setImmediate(r));
/** Messages the connection's JS-side store still holds. */
const stored = (c) => c._store.filter((x) => x !== undefined).length;

/** A user's own handler object (the old interface), with optional hooks. */
function customHandler(hooks = {}) {
  return {
    maxWaitTime: 0,
    prioritizeMessage: hooks.prioritize ?? ((msg) => (msg.data === 'low' ? 0.1 : 0.5)),
    shouldDropMessage: hooks.shouldDrop ?? (() => false),
  };
}

/** Reads everything delivered until the connection has `n` messages out. */
async function readIds(reader, n) {
  const ids = [];
  while (ids.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const x of value) {
      assert.notEqual(x, undefined, 'a delivered slot was empty');
      ids.push(x.id);
    }
  }
  return ids;
}

test('item 4: a conflating batch with a bad element is refused whole, nothing taken', async () => {
  for (const cfg of [{ conflate: true }, { conflate: true, dropPolicy: 'priority' }]) {
    const e = new StreamEngine({ batchTimeout: 0 });
    const id = e.createConnection('a', 'b', 'out', 'in', cfg);
    const c = e.getConnection(id);
    const bad = [m(1, { key: 'a' }), m(2, { key: 'b' }), m(3, { key: {} })];
    await assert.rejects(c.writer.write(bad), (err) => err instanceof TypeError && /batch\[2\]\.metadata\.key/.test(err.message));
    await tick();
    assert.equal(e.getMetrics(id).messagesIn, 0, 'nothing taken');
    assert.equal(stored(c), 0, 'no message kept in the store');
    // The connection keeps working, and only the later write arrives.
    await c.writer.write([m(4, { key: 'a' }), m(5, { key: 'a' })]);
    const r = c.readable.getReader();
    assert.deepEqual(await readIds(r, 1), ['5']);
    assert.equal(e.getMetrics(id).drops.conflated, 1);
    e.destroy();
  }
});

test('item 5: a custom handler object keeps conflation on and metadata validated', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const dropped = [];
  const id = e.createConnection('a', 'b', 'out', 'in', {
    conflate: true,
    backpressureHandler: customHandler(),
    onDrop: (msg, reason) => dropped.push(`${msg.id}:${reason}`),
  });
  const c = e.getConnection(id);
  // Conflation applies: the second value of key 'k' replaces the first, single and batch writes.
  await c.writer.write(m(1, { key: 'k' }));
  await c.writer.write(m(2, { key: 'k' }));
  await c.writer.write([m(3, { key: 'j' }), m(4, { key: 'j' })]);
  await tick();
  assert.deepEqual(dropped, ['1:conflated', '3:conflated']);
  // Bad metadata is refused like without a handler, single and batch, and nothing is taken.
  const cases = [
    [{ priority: NaN }, RangeError, /metadata\.priority/],
    [{ priority: -1 }, RangeError, /metadata\.priority/],
    [{ priority: 'urgent' }, TypeError, /metadata\.priority/],
    [{ key: {} }, TypeError, /metadata\.key/],
  ];
  for (const [meta, Err, re] of cases) {
    await assert.rejects(c.writer.write(m('bad', meta)), (err) => err instanceof Err && re.test(err.message), JSON.stringify(meta));
    await tick();
    await assert.rejects(c.writer.write([m('ok'), m('bad', meta)]), (err) => err instanceof Err && re.test(err.message));
    await tick();
  }
  assert.equal(e.getMetrics(id).messagesIn, 4);
  assert.equal(stored(c), 2);
  const r = c.readable.getReader();
  assert.deepEqual(await readIds(r, 2), ['2', '4']);
  e.destroy();
});

test('item 6: a throwing shouldDropMessage or prioritizeMessage rejects the write and keeps nothing', async () => {
  const boom = (msg) => {
    if (msg.data === 'boom') throw new Error('handler failed');
    return false;
  };
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in', {
    bufferSize: 10,
    backpressureThreshold: 0.1,
    backpressureHandler: customHandler({ shouldDrop: boom, prioritize: (msg) => (msg.data === 'pboom' ? boom({ data: 'boom' }) : 0.5) }),
  });
  const c = e.getConnection(id);
  for (let i = 0; i < 3; i++) await c.writer.write(m(`g${i}`));
  assert.equal(e.getMetrics(id).backpressure, true, 'backpressure on: the handler is consulted');
  const N = 300;
  for (let i = 0; i < N; i++) {
    const bad = { ...m(`b${i}`), data: i % 3 === 2 ? 'pboom' : 'boom' };
    const chunk = i % 2 === 0 ? bad : [m(`ok${i}`), bad];
    await assert.rejects(c.writer.write(chunk), /handler failed/);
    await tick();
  }
  // Also through route().
  assert.throws(() => e.route({ ...m('r'), data: 'boom' }), /handler failed/);
  assert.equal(stored(c), 3, 'only the three accepted messages are stored');
  assert.equal(e.getMetrics(id).messagesIn, 3);
  const r = c.readable.getReader();
  assert.deepEqual(await readIds(r, 3), ['g0', 'g1', 'g2']);
  assert.equal(stored(c), 0);
  e.destroy();
});

test('item 7: one large array write costs linear work (slots offered and allocated per message bounded)', async () => {
  for (const cfg of [{}, { dropPolicy: 'priority', maxWaitTime: 0 }, { conflate: true }, { backpressureHandler: customHandler({ prioritize: () => 1 }) }]) {
    const e = new StreamEngine({ batchTimeout: 0 });
    const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 1000, ...cfg });
    const c = e.getConnection(id);
    let offered = 0;
    let calls = 0;
    for (const name of ['push', 'pushKeyed', 'pushMany', 'dropIncoming']) {
      const orig = e._core[name];
      e._core[name] = function (...args) {
        calls++;
        offered += name === 'pushMany' ? args[1].length : 1;
        return orig.apply(this, args);
      };
    }
    let allocs = 0;
    const alloc = c._alloc;
    c._alloc = function (msg) {
      allocs++;
      return alloc.call(this, msg);
    };
    // Critical messages: nothing may be dropped, so the write must wait for the reader.
    const N = 20000;
    const arr = Array.from({ length: N }, (_, i) => m(i, { priority: 'critical' }));
    const r = c.readable.getReader();
    const reading = readIds(r, N);
    await c.writer.write(arr);
    const ids = await reading;
    assert.equal(ids.length, N);
    assert.ok(
      ids.every((x, i) => x === String(i)),
      'every message delivered once, in order',
    );
    // Before the fix, every retry re-offered (and re-stored) the whole rest of the array:
    // about N * N / (2 * 50) = 4M slots here. Now each message is offered a bounded number of times.
    assert.ok(offered <= 3 * N, `${JSON.stringify(cfg)}: ${offered} slots offered for ${N} messages`);
    assert.ok(allocs <= 3 * N, `${JSON.stringify(cfg)}: ${allocs} store allocations for ${N} messages`);
    assert.ok(calls <= N + 1000, `${calls} core calls`);
    assert.equal(stored(c), 0);
    e.destroy();
  }
});

test('item 8: maxBatchSize is bounded and the exchange area is not reserved per engine', async () => {
  const bytes = (e) => e.getMetrics().system.wasmMemoryBytes;
  assert.throws(() => new StreamEngine({ maxBatchSize: 1e7 }), (err) => err instanceof RangeError && /maxBatchSize/.test(err.message));
  const e0 = new StreamEngine();
  assert.throws(() => e0.createConnection('a', 'b', 'out', 'in', { maxBatchSize: 1e7 }), (err) => err instanceof RangeError && /maxBatchSize/.test(err.message));
  // The largest allowed batch size: many engines each with such a connection stay small.
  const max = 100000;
  const before = bytes(e0);
  const engines = [];
  for (let i = 0; i < 40; i++) {
    const e = new StreamEngine({ maxBatchSize: max, bufferSize: max });
    e.createConnection('a', 'b', 'out', 'in');
    engines.push(e);
  }
  const grown = bytes(e0) - before;
  assert.ok(grown < 4 * 1024 * 1024, `40 engines grew wasm memory by ${grown} bytes`);
  for (const e of engines) e.destroy();
  // A batch larger than the exchange area keeps is still delivered whole, and the area shrinks.
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in', { maxBatchSize: 20000, bufferSize: 20000 });
  const c = e.getConnection(id);
  c.pause();
  await c.writer.write(Array.from({ length: 20000 }, (_, i) => m(i)));
  c.resume();
  const { value } = await c.readable.getReader().read();
  assert.equal(value.length, 20000);
  assert.ok(value.every((x, i) => x.id === String(i)));
  assert.ok(e._core.ioLength() <= 4097, `exchange area kept ${e._core.ioLength()} slots`);
  e.destroy();
  e0.destroy();
});

test('item 14: unknown option keys are rejected everywhere, naming the key', () => {
  const e = new StreamEngine();
  const unknown = (fn, key) => assert.throws(fn, (err) => err instanceof TypeError && err.message.includes(`"${key}"`), key);
  unknown(() => new StreamEngine({ bufferSzie: 10 }), 'bufferSzie');
  unknown(() => e.createConnection('a', 'b', 'out', 'in', { bufferSzie: 10 }), 'bufferSzie');
  unknown(() => e.setThresholds({ latncy: { warning: 1 } }), 'latncy');
  unknown(() => e.setThresholds({ latency: { warnign: 1 } }), 'warnign');
  unknown(() => e.setThresholds({ dropRate: { critical: 1 } }), 'critical');
  unknown(() => e.events({ typse: ['drop'] }), 'typse');
  unknown(() => new StreamDebugger(e, { maxHistory: 5 }), 'maxHistory');
  unknown(() => new DefaultBackpressureHandler({ dropThreshhold: 0.5 }), 'dropThreshhold');
  unknown(() => new AdaptiveBackpressureHandler({ target: 5 }), 'target');
  unknown(() => new DefaultErrorRecovery({ retries: 3 }), 'retries');
  unknown(() => new GracefulErrorRecovery({ circuitBreaker: { threshold: 1 } }), 'threshold');
  const id = e.createConnection('a', 'b', 'out', 'in');
  unknown(() => e.createBatchedStream(id, { maxBatch: 5 }), 'maxBatch');
  e.closeConnection(id);
  // Known keys still work, and nothing was half-applied.
  e.setThresholds({ latency: { warning: 1, critical: 2 } });
  assert.equal(e.getThresholds().latency.warning, 1);
  e.destroy();
});

test('item 14: a getter that throws inside a config object propagates', () => {
  const boom = () => {
    throw new Error('getter boom');
  };
  const e = new StreamEngine();
  const objs = {
    engine: () => new StreamEngine(Object.defineProperty({}, 'bufferSize', { get: boom, enumerable: true })),
    connection: () => e.createConnection('a', 'b', 'out', 'in', Object.defineProperty({}, 'batchTimeout', { get: boom, enumerable: true })),
    thresholds: () => e.setThresholds({ latency: Object.defineProperty({}, 'warning', { get: boom, enumerable: true }) }),
    handler: () => new DefaultBackpressureHandler(Object.defineProperty({}, 'dropThreshold', { get: boom, enumerable: true })),
    adaptive: () => new AdaptiveBackpressureHandler(Object.defineProperty({}, 'targetLatency', { get: boom, enumerable: true })),
    recovery: () => new DefaultErrorRecovery(Object.defineProperty({}, 'retryDelay', { get: boom, enumerable: true })),
  };
  for (const [name, fn] of Object.entries(objs)) assert.throws(fn, /getter boom/, name);
  assert.deepEqual(e.listConnections(), []);
  e.destroy();
});

test('item 14: route() validates the whole array before delivering any', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in');
  assert.throws(() => e.route([m(1), 5, m(2)]), (err) => err instanceof TypeError && /messages\[1\]/.test(err.message));
  assert.throws(() => e.route([m(1), m(2, { priority: 7 })]), (err) => err instanceof RangeError && /messages\[1\]\.metadata\.priority/.test(err.message));
  assert.equal(e.getMetrics(id).messagesIn, 0);
  assert.equal(e.route([m(3), m(4)]), 2);
  assert.deepEqual(await readIds(e.getConnection(id).readable.getReader(), 2), ['3', '4']);
  e.destroy();
});

test('item 14: connection ids cannot collide', () => {
  const e = new StreamEngine();
  for (const args of [
    ['n:x', 'b', 'out', 'in'],
    ['n', 'b', 'x:out', 'in'],
    ['n', 'b->c', 'out', 'in'],
    ['n', 'b', 'out->z', 'in'],
    ['n', 'b', 'out', 'i:n'],
  ]) {
    assert.throws(() => e.createConnection(...args), (err) => err instanceof TypeError && /':'|'->'/.test(err.message), args.join(' '));
  }
  // Ordinary names keep the documented id format.
  assert.equal(e.createConnection('sensor-1', 'chart_2', 'out.a', 'in'), 'sensor-1:out.a->chart_2:in');
  e.destroy();
});

test('item 14: closeConnection reports errors by rejecting its promise', async () => {
  const e = new StreamEngine();
  let p;
  assert.doesNotThrow(() => {
    p = e.closeConnection('nope');
  });
  await assert.rejects(p, /unknown connection nope/);
  await assert.rejects(e.closeConnection(5), TypeError);
  e.destroy();
});

test('issue 9: status bits and drop-reason codes are defined once, in Rust', () => {
  const names = ['PENDING', 'HOLD', 'BATCH_READY', 'EVENTS', 'DROPPED', 'FIRST', 'DROP_SUMMARY', 'CLOSED', 'EMPTY', 'R_PRIORITY', 'R_OLDEST', 'R_NEWEST', 'R_CONFLATED', 'R_DEAD_LETTER'];
  const numeric = new RegExp(`\\b(${names.join('|')})\\b\\s*(:\\s*u32\\s*)?=\\s*(\\d|1\\s*<<)`);
  const reasonTable = /\[\s*'priority',\s*'oldest',\s*'newest'/;
  const files = [];
  for (const dir of ['js', 'src/wasm', 'tests/wasm', 'src/core']) {
    for (const f of readdirSync(join(root, dir))) if (/\.(js|rs)$/.test(f)) files.push(join(dir, f));
  }
  const found = [];
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    text.split('\n').forEach((line, i) => {
      if (numeric.test(line) || reasonTable.test(line)) found.push(`${f}:${i + 1}: ${line.trim()}`);
    });
  }
  // The one definition: the `Status` and `DropReason` enums in src/core/connection.rs, whose
  // discriminants are written as enum values, not as `NAME = number` constants.
  assert.deepEqual(found, []);
});

test('issue 9: a NaN priority from a handler means the same as in Rust (the default 0.5)', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('a', 'b', 'out', 'in', { backpressureHandler: customHandler({ prioritize: () => NaN }) });
  const c = e.getConnection(id);
  await c.writer.write(m(1));
  await c.writer.write([m(2), m(3)]);
  await readIds(c.readable.getReader(), 3);
  const d = e.getMetrics(id).deliveredByPriority;
  assert.deepEqual([d.low, d.normal], [0, 3]);
  e.destroy();
});

test('issue 9: handler options are resolved once, in Rust (adaptive maxWaitTime default, validation)', () => {
  assert.equal(new AdaptiveBackpressureHandler({ targetLatency: 50 }).options.maxWaitTime, 5);
  assert.equal(new AdaptiveBackpressureHandler({ targetLatency: 500 }).options.maxWaitTime, 10);
  assert.equal(new DefaultBackpressureHandler().options.maxWaitTime, 100);
  assert.throws(() => new AdaptiveBackpressureHandler({ minThreshold: 0.5, maxThreshold: 0.4 }), RangeError);
  assert.throws(() => new AdaptiveBackpressureHandler({ targetLatency: 0 }), (err) => err instanceof RangeError && /targetLatency/.test(err.message));
  assert.throws(() => new DefaultBackpressureHandler({ priorityDrop: 'yes' }), (err) => err instanceof TypeError && /priorityDrop/.test(err.message));
  // Error recovery: defaults and the back-off formula are the core's.
  const r = new DefaultErrorRecovery({ retryDelay: 10, jitter: 0, maxRetryDelay: 50 });
  assert.deepEqual(r.options, { retryAttempts: 3, retryDelay: 10, maxRetryDelay: 50, jitter: 0, circuitBreaker: { failureThreshold: 5, resetTimeout: 30000 } });
  assert.deepEqual([0, 1, 2, 3].map((a) => r.getRetryDelay(a)), [10, 20, 40, 50]);
  assert.throws(() => new DefaultErrorRecovery({ jitter: 2 }), (err) => err instanceof RangeError && /jitter/.test(err.message));
  const e = new StreamEngine();
  assert.throws(() => e.createConnection('a', 'b', 'out', 'in', { dropPolicy: 'random' }), (err) => err instanceof TypeError && /dropPolicy/.test(err.message));
  e.destroy();
});
