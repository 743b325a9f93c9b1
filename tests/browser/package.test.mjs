// The built package in Chromium, loaded natively as ES modules (no bundler): a minimal page
// imports /dist/web.mjs, calls `await init()`, and the README-level API is exercised in the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { captureProblems, openBrowser, skipReason } from './helpers.mjs';

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>package smoke test</title><link rel="icon" href="data:,"></head>
<body>
<script type="module">
  import init, * as api from '/dist/web.mjs';
  let beforeInit;
  try {
    new api.StreamEngine();
    beforeInit = 'no error';
  } catch (e) {
    beforeInit = e.message;
  }
  const p1 = init();
  const p2 = init();
  await p1;
  window.api = api;
  window.loaded = { beforeInit, samePromise: p1 === p2, exports: Object.keys(api).sort() };
</script>
</body></html>`;

// Without Chromium every test is reported as skipped, with the reason.
const skip = skipReason();

describe('package in Chromium (native ES modules)', () => {
  let env;
  let page;
  let problems;
  const wasmResponses = [];

  before(async () => {
    if (skip) return;
    env = await openBrowser();
    page = await env.browser.newPage();
    problems = captureProblems(page);
    page.on('response', (r) => {
      if (r.url().endsWith('.wasm')) wasmResponses.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] });
    });
    // The page lives on the server's origin, so its absolute imports go to the static server.
    await page.route('**/www/__package-test.html', (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: PAGE }));
    await page.goto(`${env.url}www/__package-test.html`);
    await page.waitForFunction(() => window.loaded !== undefined, null, { timeout: 10000 });
  });

  after(async () => {
    await env?.close();
  });

  test('init() fetches the wasm (application/wasm) once; the engine refuses to start before it', { skip }, async () => {
    const loaded = await page.evaluate(() => window.loaded);
    assert.match(loaded.beforeInit, /await init\(\)/);
    assert.equal(loaded.samePromise, true);
    for (const name of ['StreamEngine', 'DefaultBackpressureHandler', 'AdaptiveBackpressureHandler', 'DefaultErrorRecovery', 'GracefulErrorRecovery', 'StreamDebugger', 'PerformanceTestSuite', 'STANDARD_PERFORMANCE_TESTS', 'createDataSource', 'subscribeWidget', 'version', 'default']) {
      assert.ok(loaded.exports.includes(name), `exports ${name}`);
    }
    assert.deepEqual(wasmResponses.map((r) => [r.status, r.type]), [[200, 'application/wasm']]);
    assert.match(await page.evaluate(() => window.api.version), /^\d+\.\d+\.\d+/);
    assert.deepEqual(problems, []);
  });

  test('writes and reads messages through a connection, in order, without copying', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine } = window.api;
      const engine = new StreamEngine({ batchTimeout: 5 });
      const id = engine.createConnection('source', 'chart', 'out', 'in', { bufferSize: 100, maxBatchSize: 10 });
      const conn = engine.getConnection(id);
      const payload = { nested: { values: new Float64Array([1, 2, 3]) } };
      const sent = [];
      for (let i = 0; i < 25; i++) sent.push({ id: `m${i}`, timestamp: Date.now(), sourceNodeId: 'source', targetNodeId: 'chart', port: 'out', data: i === 0 ? payload : { i } });
      const writer = conn.writer;
      await writer.write(sent[0]);
      await writer.write(sent.slice(1)); // a batch write: the fast path
      const reader = conn.readable.getReader();
      const got = [];
      let batches = 0;
      while (got.length < 25) {
        const { value } = await reader.read();
        batches++;
        got.push(...value);
      }
      const m = engine.getMetrics(id);
      const out = {
        id,
        identity: got.every((msg, i) => msg === sent[i]),
        dataIdentity: got[0].data === payload && got[0].data.nested.values === payload.nested.values,
        order: got.map((x) => x.id).join(',') === sent.map((x) => x.id).join(','),
        maxBatch: batches >= 3,
        metrics: { in: m.messagesIn, out: m.messagesOut, dropped: m.dropped, held: m.bufferSize },
        list: engine.listConnections(),
      };
      await engine.closeConnection(id);
      const end = await reader.read();
      out.endsAfterClose = end.done;
      out.afterClose = engine.listConnections().length;
      engine.destroy();
      out.destroyed = engine.destroyed;
      return out;
    });
    assert.equal(r.id, 'source:out->chart:in');
    assert.ok(r.identity, 'the very same message objects come out');
    assert.ok(r.dataIdentity, 'data is never copied');
    assert.ok(r.order, 'write order is kept');
    assert.ok(r.maxBatch, 'batches respect maxBatchSize');
    assert.deepEqual(r.metrics, { in: 25, out: 25, dropped: 0, held: 0 });
    assert.deepEqual(r.list, ['source:out->chart:in']);
    assert.equal(r.endsAfterClose, true);
    assert.equal(r.afterClose, 0);
    assert.equal(r.destroyed, true);
    assert.deepEqual(problems, []);
  });

  test('route() fans out by source node and port; errors are clear', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine } = window.api;
      const engine = new StreamEngine();
      const a = engine.createConnection('sensor', 'chart', 'out', 'in');
      const b = engine.createConnection('sensor', 'table', 'out', 'in');
      engine.createConnection('sensor', 'log', 'debug', 'in');
      const msg = { id: 'x', timestamp: Date.now(), sourceNodeId: 'sensor', targetNodeId: '*', port: 'out', data: 42 };
      const taken = engine.route(msg);
      const errors = {};
      for (const [name, fn] of Object.entries({
        duplicate: () => engine.createConnection('sensor', 'chart', 'out', 'in'),
        unknownOption: () => engine.createConnection('s', 't', 'o', 'i', { bufferSzie: 10 }),
        badBuffer: () => engine.createConnection('s', 't', 'o', 'i', { bufferSize: 0 }),
        badMessage: () => engine.route({ nope: true }),
        unknownConnection: () => engine.getMetrics('nope'),
      })) {
        try {
          fn();
          errors[name] = null;
        } catch (e) {
          errors[name] = `${e.name}: ${e.message}`;
        }
      }
      const readA = (await engine.getConnection(a).readable.getReader().read()).value[0] === msg;
      const readB = (await engine.getConnection(b).readable.getReader().read()).value[0] === msg;
      engine.destroy();
      return { taken, errors, readA, readB };
    });
    assert.equal(r.taken, 2);
    assert.ok(r.readA && r.readB, 'both connections deliver the same object');
    assert.match(r.errors.duplicate, /already exists/);
    assert.match(r.errors.unknownOption, /TypeError: .*bufferSzie/);
    assert.match(r.errors.badBuffer, /bufferSize/);
    assert.match(r.errors.badMessage, /TypeError/);
    assert.match(r.errors.unknownConnection, /unknown connection nope/);
    assert.deepEqual(problems, []);
  });

  test('DefaultBackpressureHandler drops the lowest priorities under overload, never critical', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, DefaultBackpressureHandler } = window.api;
      const engine = new StreamEngine({ batchTimeout: 0 });
      const drops = [];
      const events = [];
      const feed = engine.events({ types: ['backpressure', 'drop'] }).getReader();
      (async () => {
        for (;;) {
          const { value, done } = await feed.read();
          if (done) break;
          events.push(value.type);
        }
      })();
      const id = engine.createConnection('burst', 'ui', 'out', 'in', {
        bufferSize: 20,
        maxBatchSize: 5,
        backpressureHandler: new DefaultBackpressureHandler({ dropThreshold: 0.9 }),
        onDrop: (m, reason) => drops.push([m.metadata.priority, reason]),
      });
      const conn = engine.getConnection(id);
      const names = ['critical', 'high', 'normal', 'low'];
      const N = 400;
      const msgs = Array.from({ length: N }, (_, i) => ({ id: `b${i}`, timestamp: Date.now(), sourceNodeId: 'burst', targetNodeId: 'ui', port: 'out', data: i, metadata: { priority: names[i % 4] } }));
      // A slow reader: 5 messages per 10 ms while 400 arrive at once.
      const reader = conn.readable.getReader();
      const got = [];
      const reading = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          got.push(...value);
          await new Promise((res) => setTimeout(res, 10));
        }
      })();
      const writer = conn.writer;
      await Promise.all(msgs.map((m) => writer.write(m)));
      const mid = engine.getMetrics(id);
      await engine.closeConnection(id);
      await reading;
      await new Promise((res) => setTimeout(res, 150)); // the drop summary is batched (100 ms)
      const m = mid;
      const byPrio = (list) => Object.fromEntries(names.map((n) => [n, list.filter((x) => x === n).length]));
      const result = {
        delivered: got.length,
        dropped: drops.length,
        deliveredBy: byPrio(got.map((x) => x.metadata.priority)),
        droppedBy: byPrio(drops.map((d) => d[0])),
        reasons: [...new Set(drops.map((d) => d[1]))],
        metricsDropsByPriority: m.dropsByPriority,
        backpressureEvents: m.backpressureEvents,
        events: [...new Set(events)].sort(),
      };
      engine.destroy();
      return result;
    });
    assert.equal(r.delivered + r.dropped, 400, 'every message is delivered or dropped');
    assert.ok(r.dropped > 0, 'overload drops messages');
    assert.equal(r.deliveredBy.critical, 100, 'every critical message is delivered');
    assert.equal(r.droppedBy.critical, 0);
    assert.ok(r.droppedBy.low >= r.droppedBy.normal && r.droppedBy.normal >= r.droppedBy.high, `lowest first: ${JSON.stringify(r.droppedBy)}`);
    assert.ok(r.droppedBy.low > 0);
    assert.deepEqual(r.reasons, ['priority']);
    assert.equal(r.metricsDropsByPriority.critical, 0);
    assert.ok(r.backpressureEvents >= 1);
    assert.deepEqual(r.events, ['backpressure', 'drop']);
    assert.deepEqual(problems, []);
  });

  test('priority dropping takes the lowest priority in the buffer first', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, DefaultBackpressureHandler } = window.api;
      const engine = new StreamEngine({ batchTimeout: 0 });
      const dropped = [];
      const id = engine.createConnection('s', 't', 'out', 'in', {
        bufferSize: 10,
        backpressureHandler: new DefaultBackpressureHandler({ dropThreshold: 0.9, maxWaitTime: 0 }),
        onDrop: (m) => dropped.push(m.metadata.priority),
      });
      const conn = engine.getConnection(id);
      const prios = [...Array(9).fill('low'), ...Array(9).fill('high'), ...Array(9).fill('normal'), ...Array(3).fill('critical')];
      await Promise.all(prios.map((p, i) => conn.writer.write({ id: `m${i}`, timestamp: Date.now(), sourceNodeId: 's', targetNodeId: 't', port: 'out', data: i, metadata: { priority: p } })));
      await engine.closeConnection(id);
      const reader = conn.readable.getReader();
      const delivered = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        delivered.push(...value.map((m) => m.metadata.priority));
      }
      engine.destroy();
      return { delivered, dropped };
    });
    // 9 lows fill the buffer to its drop level; each high displaces a low; each normal is the
    // lowest on arrival; each critical displaces a high.
    assert.deepEqual(r.delivered, [...Array(6).fill('high'), ...Array(3).fill('critical')]);
    assert.deepEqual(r.dropped, [...Array(9).fill('low'), ...Array(9).fill('normal'), ...Array(3).fill('high')]);
    assert.deepEqual(problems, []);
  });

  test('consume() retries a failing handler and recovers; retries that run out dead-letter', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, DefaultErrorRecovery } = window.api;
      const engine = new StreamEngine({ batchTimeout: 0 });
      engine.setErrorRecovery(new DefaultErrorRecovery({ retryAttempts: 3, retryDelay: 5, jitter: 0 }));
      const errors = [];
      const feed = engine.events({ types: ['error'] }).getReader();
      (async () => {
        for (;;) {
          const { value, done } = await feed.read();
          if (done) break;
          errors.push({ attempt: value.attempt, willRetry: value.willRetry, message: value.error.message });
        }
      })();
      const mk = (src, i) => ({ id: `${src}${i}`, timestamp: Date.now(), sourceNodeId: src, targetNodeId: 'db', port: 'out', data: i });

      // Flaky: the first two calls fail, then everything succeeds.
      const id = engine.createConnection('flaky', 'db', 'out', 'in', { maxBatchSize: 100 });
      const conn = engine.getConnection(id);
      let calls = 0;
      const seen = [];
      const handle = conn.consume(async (batch) => {
        calls++;
        if (calls <= 2) throw new Error(`flaky ${calls}`);
        seen.push(...batch.map((m) => m.id));
      });
      await conn.writer.write(Array.from({ length: 10 }, (_, i) => mk('f', i)));
      const t0 = performance.now();
      while (seen.length < 10 && performance.now() - t0 < 3000) await new Promise((res) => setTimeout(res, 10));
      const m = engine.getMetrics(id);
      handle.stop();
      await handle.done;

      // Broken: always fails; after retryAttempts the batch is dead-lettered and consuming goes on.
      engine.setErrorRecovery(new DefaultErrorRecovery({ retryAttempts: 1, retryDelay: 1, jitter: 0 }));
      const id2 = engine.createConnection('broken', 'db', 'out', 'in');
      const conn2 = engine.getConnection(id2);
      const h2 = conn2.consume(() => {
        throw new Error('always');
      });
      await conn2.writer.write([mk('b', 0), mk('b', 1)]);
      const t1 = performance.now();
      let dead = [];
      while (dead.length < 2 && performance.now() - t1 < 3000) {
        await new Promise((res) => setTimeout(res, 10));
        dead = dead.concat(conn2.deadLetters());
      }
      const m2 = engine.getMetrics(id2);
      h2.stop();
      engine.destroy();
      return {
        seen,
        calls,
        errors: m.errors,
        retries: m.retries,
        out: m.messagesOut,
        circuit: m.circuitState,
        deadFlaky: conn.deadLetters().length,
        errorEvents: errors.filter((e) => e.message.startsWith('flaky')),
        dead: dead.map((x) => x.id),
        deadDrops: m2.drops['dead-letter'],
      };
    });
    assert.deepEqual(r.seen, Array.from({ length: 10 }, (_, i) => `f${i}`), 'delivered once each, in order, after recovering');
    assert.equal(r.calls, 3);
    assert.equal(r.errors, 2);
    assert.ok(r.retries >= 2);
    assert.equal(r.out, 10);
    assert.equal(r.circuit, 'closed');
    assert.equal(r.deadFlaky, 0);
    assert.deepEqual(r.errorEvents.map((e) => [e.attempt, e.willRetry]), [[0, true], [1, true]]);
    assert.deepEqual(r.dead, ['b0', 'b1'], 'a batch that keeps failing is dead-lettered, not lost');
    assert.equal(r.deadDrops, 2);
    assert.deepEqual(problems, []);
  });

  test('flow control in Chromium: pipeTo slowed under block, circuit opens and closes, adaptive sheds low priority', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, DefaultErrorRecovery, AdaptiveBackpressureHandler } = window.api;
      const wait = (ms) => new Promise((res) => setTimeout(res, ms));
      const mk = (i, priority) => ({ id: `m${i}`, timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: i, metadata: priority ? { priority } : undefined });
      const engine = new StreamEngine({ batchTimeout: 0 });

      // 1. A pipeTo producer into a lossless connection with no reader stalls at the buffer size.
      const id1 = engine.createConnection('a', 'b', 'p1', 'in', { bufferSize: 20 });
      const c1 = engine.getConnection(id1);
      let pulled = 0;
      const total = 300;
      const src = new ReadableStream({ pull(ctrl) { if (pulled === total) ctrl.close(); else ctrl.enqueue(mk(pulled++)); } }, { highWaterMark: 0 });
      const piping = src.pipeTo(c1.writable);
      await wait(50);
      const pulledWhileStalled = pulled;
      const got = [];
      for await (const batch of c1.readable) got.push(...batch.map((m) => m.data));
      await piping;

      // 2. The circuit opens after consecutive failures and closes after a good trial.
      engine.setErrorRecovery(new DefaultErrorRecovery({ retryAttempts: 0, retryDelay: 0, jitter: 0, circuitBreaker: { failureThreshold: 2, resetTimeout: 50 } }));
      const id2 = engine.createConnection('a', 'b', 'p2', 'in', { maxBatchSize: 1 });
      const c2 = engine.getConnection(id2);
      let failing = true;
      const actions = [];
      const feed = engine.events({ types: ['connection'] }).getReader();
      (async () => { for (;;) { const { value, done } = await feed.read(); if (done) break; actions.push(value.action); } })();
      c2.consume(() => { if (failing) throw new Error('down'); });
      await c2.writer.write(mk(1));
      await c2.writer.write(mk(2));
      let t0 = performance.now();
      while (engine.getMetrics(id2).circuitState !== 'open' && performance.now() - t0 < 3000) await wait(2);
      const opened = engine.getMetrics(id2).circuitState;
      failing = false;
      await c2.writer.write(mk(3));
      t0 = performance.now();
      while (engine.getMetrics(id2).circuitState !== 'closed' && performance.now() - t0 < 3000) await wait(5);
      await wait(10);
      const closed = engine.getMetrics(id2);

      // 3. Adaptive: a producer ignoring backpressure, 10x the reader; critical is never dropped.
      const id3 = engine.createConnection('a', 'b', 'p3', 'in', { bufferSize: 2000, maxBatchSize: 20, backpressureHandler: new AdaptiveBackpressureHandler({ targetLatency: 50 }) });
      const c3 = engine.getConnection(id3);
      const reader = c3.readable.getReader();
      let n = 0;
      t0 = performance.now();
      while (performance.now() - t0 < 1000) {
        for (let i = 0; i < 200; i++, n++) c3.writer.write(mk(n, i % 10 === 0 ? 'critical' : i % 10 < 4 ? 'high' : 'low')).catch(() => {});
        await reader.read();
        await wait(5);
      }
      const m3 = engine.getMetrics(id3);
      engine.destroy();
      return {
        pulledWhileStalled, got: got.length, inOrder: got.every((v, i) => v === i),
        opened, closedState: closed.circuitState, dead: closed.drops['dead-letter'], out2: closed.messagesOut, actions,
        m3: { dropped: m3.dropped, critical: m3.dropsByPriority.critical, low: m3.dropsByPriority.low, high: m3.dropsByPriority.high, identity: m3.messagesIn === m3.messagesOut + m3.dropped + m3.bufferSize, threshold: m3.adaptive.effectiveThreshold },
      };
    });
    assert.ok(r.pulledWhileStalled <= 22, `pipe pulled ${r.pulledWhileStalled} with a buffer of 20 and no reader`);
    assert.equal(r.got, 300);
    assert.equal(r.inOrder, true);
    assert.equal(r.opened, 'open');
    assert.equal(r.closedState, 'closed');
    assert.equal(r.dead, 2, 'the two failed messages are dead letters');
    assert.equal(r.out2, 1);
    assert.ok(r.actions.includes('circuit-opened') && r.actions.includes('circuit-closed'), r.actions.join());
    assert.ok(r.m3.dropped > 0);
    assert.equal(r.m3.critical, 0);
    assert.ok(r.m3.low > r.m3.high, JSON.stringify(r.m3));
    assert.equal(r.m3.identity, true);
    assert.ok(r.m3.threshold < 0.9);
  });

  test('events(), metrics$ and StreamDebugger work in the browser', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, StreamDebugger } = window.api;
      const engine = new StreamEngine({ metricsInterval: 50 });
      const dbg = new StreamDebugger(engine);
      dbg.startRecording();
      const id = engine.createConnection('a', 'b', 'out', 'in');
      const maps = [];
      const sub = engine.metrics$.subscribe((m) => maps.push(m));
      const reader = engine.events({ types: ['metrics'] }).getReader();
      const { value } = await reader.read();
      await engine.getConnection(id).writer.write({ id: '1', timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: 1 });
      await engine.getConnection(id).readable.getReader().read();
      await new Promise((res) => setTimeout(res, 120));
      sub.unsubscribe();
      await reader.cancel();
      const exp = dbg.exportDebugData();
      engine.destroy();
      return {
        type: value.type,
        hasConnection: id in value.metrics.connections,
        wasm: value.metrics.system.wasmMemoryBytes,
        mapOk: maps.length > 0 && maps[0] instanceof Map && maps[0].has(id),
        exportTypes: [...new Set(exp.events.map((e) => e.type))].sort(),
        json: JSON.parse(JSON.stringify(exp)).metadata.eventCount === exp.events.length,
        snapshots: exp.snapshots.length,
        subClosed: sub.closed,
      };
    });
    assert.equal(r.type, 'metrics');
    assert.ok(r.hasConnection);
    assert.ok(r.wasm > 0);
    assert.ok(r.mapOk);
    assert.ok(r.exportTypes.includes('connection_created') && r.exportTypes.includes('batch_delivered'), r.exportTypes.join());
    assert.ok(r.json);
    assert.ok(r.snapshots > 0);
    assert.equal(r.subClosed, true);
    assert.deepEqual(problems, []);
  });

  test('createDataSource → connection → subscribeWidget updates at most once per animation frame', { skip }, async () => {
    const r = await page.evaluate(async () => {
      const { StreamEngine, createDataSource, subscribeWidget } = window.api;
      const engine = new StreamEngine({ batchTimeout: 4 });
      const id = engine.createConnection('sine', 'chart', 'out', 'in', { maxBatchSize: 10 });
      const conn = engine.getConnection(id);
      let frames = 0;
      let counting = true;
      const tick = () => {
        frames++;
        if (counting) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      let batches = 0;
      const counted = conn.readable.pipeThrough(new TransformStream({ transform(b, c) { batches++; c.enqueue(b); } }));
      const updates = [];
      const done = new Promise((resolve) => {
        subscribeWidget(counted, { bufferSize: 100, engine, connectionId: id }, (u) => {
          updates.push({ n: u.data.length, last: u.data.at(-1)?.data.seq, count: u.metrics.messageCount, connected: u.isConnected });
          if (!u.isConnected) resolve();
        });
      });
      // 600 messages at 3,000 msg/s; the source closes the writable when it is done.
      await createDataSource('sine-wave', { rate: 3000, count: 600, sourceNodeId: 'sine', targetNodeId: 'chart' }).pipeTo(conn.writable);
      await done;
      counting = false;
      engine.destroy();
      return { updates, frames, batches };
    });
    const last = r.updates.at(-1);
    assert.equal(last.connected, false, 'the last update says the stream ended');
    assert.equal(last.count, 600);
    assert.equal(last.last, 599);
    assert.ok(r.updates.every((u) => u.n <= 100), 'keeps the last bufferSize messages');
    assert.ok(r.updates.length <= r.frames + 1, `${r.updates.length} updates in ${r.frames} frames`);
    assert.ok(r.updates.length < r.batches, `updates (${r.updates.length}) are coalesced over batches (${r.batches})`);
    assert.deepEqual(problems, []);
  });
});
