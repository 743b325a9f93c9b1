// createDataSource through the built package: values per pattern, message shape, count, the
// rate held against the clock, backpressure-friendly pulling, cancellation and validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StreamEngine, createDataSource } from '@nodeflow/stream-engine';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function collect(stream) {
  const out = [];
  for await (const m of stream) out.push(m);
  return out;
}

const close = (a, b) => Math.abs(a - b) < 1e-9;

test('sequential: a counter, with the message shape and defaults', async () => {
  const before = Date.now();
  const msgs = await collect(createDataSource('sequential', { rate: 10000, count: 20 }));
  assert.equal(msgs.length, 20);
  msgs.forEach((m, i) => {
    assert.equal(m.id, `source-${i}`);
    assert.equal(m.sourceNodeId, 'source');
    assert.equal(m.targetNodeId, 'target');
    assert.equal(m.port, 'out');
    assert.deepEqual(m.data, { value: i, seq: i });
    assert.equal(m.metadata, undefined);
    assert.ok(m.timestamp >= before && m.timestamp <= Date.now());
  });
  const named = await collect(createDataSource('sequential', { rate: 10000, count: 3, sourceNodeId: 'sensor', targetNodeId: 'chart', port: 'p' }));
  assert.deepEqual(named.map((m) => [m.id, m.sourceNodeId, m.targetNodeId, m.port]), [
    ['sensor-0', 'sensor', 'chart', 'p'],
    ['sensor-1', 'sensor', 'chart', 'p'],
    ['sensor-2', 'sensor', 'chart', 'p'],
  ]);
});

test('random: uniform in [0, amplitude)', async () => {
  const msgs = await collect(createDataSource('random', { rate: 20000, count: 500, amplitude: 5 }));
  const v = msgs.map((m) => m.data.value);
  assert.ok(v.every((x) => x >= 0 && x < 5), 'in range');
  assert.ok(new Set(v).size > 400, 'varied');
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  assert.ok(mean > 2 && mean < 3, `mean ${mean} near 2.5`);
  assert.deepEqual(msgs.map((m) => m.data.seq), [...Array(500).keys()]);
});

test('sine-wave: amplitude * sin(2π t / period) at each message time t = seq / rate', async () => {
  // rate 1000 msg/s: message k is at t = k ms; period 8 ms.
  const msgs = await collect(createDataSource('sine-wave', { rate: 1000, count: 17, amplitude: 10, period: 8 }));
  msgs.forEach((m, k) => assert.ok(close(m.data.value, 10 * Math.sin((2 * Math.PI * k) / 8)), `k=${k}: ${m.data.value}`));
  assert.ok(close(msgs[2].data.value, 10));
  assert.ok(close(msgs[6].data.value, -10));
});

test('step: a staircase of four levels (0, A/3, 2A/3, A), one level per period', async () => {
  const msgs = await collect(createDataSource('step', { rate: 1000, count: 10, amplitude: 30, period: 2 }));
  assert.deepEqual(msgs.map((m) => Math.round(m.data.value * 1e9) / 1e9), [0, 0, 10, 10, 20, 20, 30, 30, 0, 0]);
});

test('messageSize gives a payload of exactly that many bytes; priority goes to metadata', async () => {
  const [m] = await collect(createDataSource('random', { rate: 1000, count: 1, messageSize: 1000 }));
  assert.equal(typeof m.data.payload, 'string');
  assert.equal(new TextEncoder().encode(m.data.payload).length, 1000);
  const [fixed] = await collect(createDataSource('step', { rate: 1000, count: 1, priority: 'high' }));
  assert.deepEqual(fixed.metadata, { priority: 'high' });
  let i = 0;
  const fn = await collect(createDataSource('step', { rate: 1000, count: 4, priority: () => [1, 0.25, 'low', 'critical'][i++] }));
  assert.deepEqual(fn.map((x) => x.metadata.priority), [1, 0.25, 'low', 'critical']);
  // A bad priority from the function errors the stream.
  await assert.rejects(collect(createDataSource('step', { rate: 1000, count: 2, priority: () => 7 })), RangeError);
});

test('count stops the stream after that many messages (0 closes at once)', async () => {
  const r = createDataSource('sequential', { rate: 5000, count: 5 }).getReader();
  const ids = [];
  for (;;) {
    const { value, done } = await r.read();
    if (done) break;
    ids.push(value.id);
  }
  assert.deepEqual(ids, ['source-0', 'source-1', 'source-2', 'source-3', 'source-4']);
  assert.deepEqual(await collect(createDataSource('sequential', { rate: 5000, count: 0 })), []);
});

test('the rate is held against a fake clock: a reader that keeps up gets exactly the slots due (floor(elapsed / interval) + 1), no gaps, never ahead of the clock', async (t) => {
  const rate = 4000; // one slot per 0.25 ms (exact in binary, so the test's arithmetic is the source's)
  let clock = 1000;
  // An own property shadows the prototype's now() (Node 18's is not writable by assignment).
  Object.defineProperty(performance, 'now', { value: () => clock, configurable: true, writable: true });
  try {
    t.mock.timers.enable({ apis: ['setTimeout'] });
  } catch {
    t.mock.timers.enable(['setTimeout']); // Node 18 takes the API list itself
  }
  /** Resolves `p`, firing due zero-delay timers while it waits (the source yields through them). */
  const settle = async (p) => {
    let done = false;
    let out;
    p.then((v) => {
      done = true;
      out = v;
    });
    for (let i = 0; i < 100 && !done; i++) {
      t.mock.timers.tick(0);
      await new Promise((r) => setImmediate(r));
    }
    return { done, value: out };
  };
  try {
    const t0 = clock;
    const r = createDataSource('sine-wave', { rate }).getReader();
    let n = 0;
    let pending = null; // the read left waiting at the end of the previous step
    // Clock and timers advance together; every step is at least the source's 4 ms tick.
    for (const step of [4, 4.25, 10, 25, 7.5, 50, 4]) {
      clock += step;
      t.mock.timers.tick(step);
      const due = Math.floor((clock - t0) / 0.25) + 1;
      while (n < due) {
        const p = pending ?? r.read();
        pending = null;
        const { done, value } = await settle(p);
        assert.ok(done, `read ${n} of ${due} due at ${clock - t0} ms did not resolve`);
        assert.equal(value.value.data.seq, n, 'no gaps for a reader that keeps up');
        n++;
      }
      // Never ahead of the clock: the next slot is not produced before its time.
      pending = r.read();
      assert.equal((await settle(pending)).done, false, `slot ${n} was produced before its time`);
    }
    assert.equal(n, Math.floor((clock - t0) / 0.25) + 1);
    await r.cancel();
  } finally {
    delete performance.now;
  }
});

test('a high rate (100,000 msg/s) is produced in timer ticks, not one timer per message, never ahead of the clock', async () => {
  const rate = 100000;
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = (...args) => {
    timers++;
    return realSetTimeout(...args);
  };
  let n = 0;
  let elapsed = 0;
  try {
    const t0 = performance.now(); // before the source's own start
    const r = createDataSource('sequential', { rate }).getReader();
    while (n < 30000) {
      const { value } = await r.read();
      assert.equal(value.data.seq, n);
      n++;
      elapsed = performance.now() - t0;
      assert.ok(n <= (rate * elapsed) / 1000 + 1, `message ${n} produced before it was due`);
    }
    await r.cancel();
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  // At least 300 ms of production; ticks are >= 4 ms apart, so at most one timer per 4 ms.
  assert.ok(timers <= elapsed / 4 + 10, `${timers} timers for ${n} messages in ${elapsed.toFixed(0)} ms`);
  assert.ok(timers < n / 100, `${timers} timers for ${n} messages`);
});

test('a source piped into a connection arrives complete and in order', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('sensor', 'chart', 'out', 'in');
  const c = e.getConnection(id);
  const piped = createDataSource('sequential', { rate: 20000, count: 300, sourceNodeId: 'sensor', targetNodeId: 'chart' }).pipeTo(c.writable);
  const got = [];
  for await (const batch of c.readable) got.push(...batch);
  await piped;
  assert.deepEqual(got.map((m) => m.data.seq), [...Array(300).keys()]);
  assert.equal(e.getConnection(id).state, 'finished', 'closing the writable finished the connection (listed with its final figures until closeConnection)');
  assert.equal(e.getMetrics(id).messagesOut, 300);
  e.destroy();
});

test('cancelling the stream stops its timer: a Node process exits by itself', () => {
  const code = `
    import { createDataSource } from '@nodeflow/stream-engine';
    const r = createDataSource('random', { rate: 50 }).getReader();
    for (let i = 0; i < 3; i++) await r.read();
    await r.cancel();
    console.log('cancelled');`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 20000 });
  assert.equal(res.signal, null, 'the process exited by itself (not killed by the timeout)');
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'cancelled');
});

test('bad arguments are TypeError or RangeError naming the field', () => {
  const bad = [
    [() => createDataSource('saw', { rate: 1 }), TypeError, /pattern/],
    [() => createDataSource('step'), TypeError, /options/],
    [() => createDataSource('step', {}), TypeError, /rate/],
    [() => createDataSource('step', { rate: '10' }), TypeError, /rate/],
    [() => createDataSource('step', { rate: 0 }), RangeError, /rate/],
    [() => createDataSource('step', { rate: Infinity }), RangeError, /rate/],
    [() => createDataSource('step', { rate: 1, messageSize: -1 }), RangeError, /messageSize/],
    [() => createDataSource('step', { rate: 1, messageSize: 1.5 }), RangeError, /messageSize/],
    [() => createDataSource('step', { rate: 1, count: -1 }), RangeError, /count/],
    [() => createDataSource('step', { rate: 1, count: 'x' }), TypeError, /count/],
    [() => createDataSource('step', { rate: 1, priority: 2 }), RangeError, /priority/],
    [() => createDataSource('step', { rate: 1, priority: 'urgent' }), TypeError, /priority/],
    [() => createDataSource('step', { rate: 1, period: 0 }), RangeError, /period/],
    [() => createDataSource('step', { rate: 1, amplitude: 'big' }), TypeError, /amplitude/],
    [() => createDataSource('step', { rate: 1, sourceNodeId: '' }), TypeError, /sourceNodeId/],
    [() => createDataSource('step', { rate: 1, port: 3 }), TypeError, /port/],
    [() => createDataSource('step', { rate: 1, speed: 3 }), TypeError, /speed/],
  ];
  for (const [fn, type, re] of bad) assert.throws(fn, (e) => e instanceof type && re.test(e.message), String(fn));
});

test('batch: true enqueues arrays of the due messages, which a connection takes as batch writes', async () => {
  const e = new StreamEngine({ batchTimeout: 0 });
  const id = e.createConnection('s', 't', 'out', 'in', { maxBatchSize: 1000 });
  const c = e.getConnection(id);
  const src = createDataSource('sequential', { rate: 50_000, count: 2000, sourceNodeId: 's', batch: true });
  const chunks = [];
  const tee = src.pipeThrough(new TransformStream({ transform(chunk, ctrl) { chunks.push(chunk.length); ctrl.enqueue(chunk); } }));
  const piping = tee.pipeTo(c.writable);
  let n = 0;
  const seqs = [];
  for await (const batch of c.readable) {
    for (const m of batch) seqs.push(m.data.seq);
    n += batch.length;
  }
  await piping;
  assert.equal(n, 2000);
  assert.deepEqual(seqs, Array.from({ length: 2000 }, (_, i) => i));
  assert.ok(chunks.length < 2000 && chunks.every((k) => k >= 1), `chunks ${chunks.length}`);
  e.destroy();
});

test('a source far behind schedule still lets timers run (it yields to the event loop)', { timeout: 20_000 }, async () => {
  const src = createDataSource('sequential', { rate: 1e9 });
  let timersFired = 0;
  let produced = 0;
  const ticker = setInterval(() => timersFired++, 0);
  const ac = new AbortController();
  const done = src.pipeTo(new WritableStream({ write() { produced++; } }), { signal: ac.signal });
  while (timersFired < 5) await new Promise((r) => setTimeout(r, 0));
  clearInterval(ticker);
  assert.ok(produced > 0);
  ac.abort();
  await done.catch(() => {});
});
