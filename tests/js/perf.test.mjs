// The performance suite through the built package: the standard scenarios, a short real run
// (rate held, counts exact, latency end to end), bursts, drops, abort, validation and the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine, PerformanceTestSuite, STANDARD_PERFORMANCE_TESTS, DefaultBackpressureHandler } from '@nodeflow/stream-engine';

const short = (over = {}) => ({ name: 'Short', duration: 500, messageRate: 100, messageSize: 10, concurrentConnections: 1, dataPattern: 'sequential', ...over });

test('STANDARD_PERFORMANCE_TESTS: the five scenarios of the old suite with the same parameters', () => {
  assert.deepEqual(STANDARD_PERFORMANCE_TESTS, [
    { name: 'Low Volume Baseline', duration: 30000, messageRate: 10, messageSize: 100, concurrentConnections: 1, dataPattern: 'sequential' },
    { name: 'Medium Volume Test', duration: 60000, messageRate: 100, messageSize: 500, concurrentConnections: 5, dataPattern: 'random' },
    { name: 'High Volume Stress Test', duration: 120000, messageRate: 1000, messageSize: 1000, concurrentConnections: 10, dataPattern: 'sine-wave' },
    {
      name: 'Burst Traffic Test',
      duration: 90000,
      messageRate: 50,
      messageSize: 200,
      concurrentConnections: 3,
      burstMode: { enabled: true, burstSize: 100, burstInterval: 5000 },
      dataPattern: 'step',
    },
    { name: 'Extreme Load Test', duration: 60000, messageRate: 2000, messageSize: 2000, concurrentConnections: 20, dataPattern: 'random' },
  ]);
});

test('a 2 s run at 500 msg/s × 2 connections: the rate is held, every message arrives, latency is measured per message', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  const config = { name: 'Two second check', duration: 2000, messageRate: 500, messageSize: 256, concurrentConnections: 2, dataPattern: 'sine-wave' };
  const expected = 2000;
  const progress = [];
  const midway = []; // messages accepted by the engine when progress says f
  let sources = new Set();
  const result = await suite.runTest(config, {
    onProgress(f) {
      progress.push(f);
      const ids = engine.listConnections();
      if (f > 0.2 && f < 0.8 && ids.length === 2) {
        midway.push({ f, accepted: ids.reduce((n, id) => n + engine.getMetrics(id).messagesIn, 0) });
      }
      if (ids.length === 2 && sources.size === 0) sources = new Set(ids.map((id) => engine.getConnection(id).sourceNodeId));
    },
  });
  assert.deepEqual(result.config, config);
  assert.ok(Math.abs(result.totalMessages - expected) <= expected * 0.02, `totalMessages ${result.totalMessages}`);
  assert.equal(result.totalMessages, expected, 'lossless by default: exactly rate × duration × connections');
  assert.equal(result.droppedMessages, 0);
  assert.equal(result.errorRate, 0);
  assert.ok(result.duration >= 2000, 'the run lasted its duration');
  assert.ok(result.endTime >= result.startTime + 2000);
  assert.ok(result.avgMessagesPerSecond > 0 && result.avgMessagesPerSecond <= (expected * 1000) / 2000, `${result.avgMessagesPerSecond}`);
  assert.ok(result.minLatency >= 0);
  assert.ok(result.minLatency <= result.avgLatency && result.avgLatency <= result.maxLatency);
  assert.ok(result.minLatency <= result.p95Latency && result.p95Latency <= result.p99Latency && result.p99Latency <= result.maxLatency);
  assert.ok(result.memoryUsage > 0);
  assert.equal(typeof result.backpressureEvents, 'number');
  // Paced against the clock, not written up front: midway, the engine had accepted about f of them.
  assert.ok(midway.length >= 3, `progress samples: ${midway.length}`);
  for (const { f, accepted } of midway) {
    assert.ok(Math.abs(accepted / expected - f) <= 0.05, `at ${f.toFixed(2)} of the run ${accepted} of ${expected} were written`);
  }
  assert.deepEqual(progress.slice(0, 1), [0]);
  assert.equal(progress.at(-1), 1);
  assert.ok(progress.every((f, i) => i === 0 || f >= progress[i - 1]), 'progress only grows');
  assert.equal(sources.size, 2, 'one source node per connection');
  assert.deepEqual(engine.listConnections(), [], 'the test closed its connections');
  assert.deepEqual(suite.getResults(), [result]);
  engine.destroy();
});

test('bursts add burstSize messages per connection every burstInterval; messages carry messageSize-byte payloads', async () => {
  const engine = new StreamEngine();
  // A user handler sees every message written: a spy on what the suite sends.
  const seen = [];
  engine.setBackpressureHandler({
    prioritizeMessage(m) {
      seen.push(m);
      return 0.5;
    },
    shouldDropMessage: () => false,
  });
  const suite = new PerformanceTestSuite(engine);
  const r = await suite.runTest(short({ duration: 1000, messageRate: 100, messageSize: 300, concurrentConnections: 2, burstMode: { enabled: true, burstSize: 50, burstInterval: 250 }, dataPattern: 'step' }));
  // 100 regular + bursts at 250, 500 and 750 ms, per connection.
  const expected = 2 * (100 + 3 * 50);
  assert.equal(r.totalMessages, expected);
  assert.equal(r.droppedMessages, 0);
  assert.equal(r.errorRate, 0);
  assert.equal(seen.length, expected);
  assert.ok(seen.every((m) => typeof m.data.payload === 'string' && new TextEncoder().encode(m.data.payload).length === 300), 'payload bytes');
  assert.equal(new Set(seen.map((m) => m.id)).size, expected, 'unique ids');
  assert.equal(new Set(seen.map((m) => m.sourceNodeId)).size, 2);
  assert.ok(seen.every((m) => typeof m.timestamp === 'number' && typeof m.data.value === 'number'));
  engine.destroy();
});

test('drops under a dropping policy are counted, and are not errors', async () => {
  const engine = new StreamEngine({ bufferSize: 100, maxBatchSize: 10 });
  engine.setBackpressureHandler(new DefaultBackpressureHandler());
  const suite = new PerformanceTestSuite(engine);
  // One burst of 500 lands at once in a 100-message buffer.
  const r = await suite.runTest(short({ duration: 600, messageRate: 10, burstMode: { enabled: true, burstSize: 500, burstInterval: 300 } }));
  const expected = 6 + 500;
  assert.ok(r.droppedMessages > 0, 'some of the burst was dropped');
  assert.equal(r.totalMessages + r.droppedMessages, expected, 'every message is delivered or counted as dropped');
  assert.equal(r.errorRate, 0);
  assert.ok(r.backpressureEvents > 0);
  engine.destroy();
});

test('errorRate counts messages never delivered: a connection closed from outside mid-run', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  let closed = false;
  const r = await suite.runTest(short({ duration: 1000, messageRate: 200 }), {
    onProgress(f) {
      if (!closed && f >= 0.3) {
        closed = true;
        for (const id of engine.listConnections()) engine.closeConnection(id);
      }
    },
  });
  assert.ok(closed);
  assert.ok(r.totalMessages < 200, `${r.totalMessages}`);
  assert.ok(r.errorRate > 0.3 && r.errorRate <= 1, `${r.errorRate}`);
  assert.equal(r.errorRate, (200 - r.totalMessages - r.droppedMessages) / 200);
  engine.destroy();
});

test('runTest can be aborted with a signal: it rejects and closes its connections', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  const ac = new AbortController();
  await assert.rejects(
    suite.runTest(short({ duration: 20000 }), {
      signal: ac.signal,
      onProgress(f) {
        if (f > 0) ac.abort();
      },
    }),
    (e) => e.name === 'AbortError',
  );
  assert.deepEqual(engine.listConnections(), []);
  assert.deepEqual(suite.getResults(), []);
  await assert.rejects(suite.runTest(short(), { signal: AbortSignal.abort() }), (e) => e.name === 'AbortError');
  engine.destroy();
});

test('runTestSuite runs the tests in order with per-test progress', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  const seen = new Map();
  const results = await suite.runTestSuite([short({ name: 'First' }), short({ name: 'Second', concurrentConnections: 3, dataPattern: 'random' })], {
    onProgress(name, f) {
      if (!seen.has(name)) seen.set(name, []);
      seen.get(name).push(f);
    },
  });
  assert.deepEqual(results.map((r) => r.config.name), ['First', 'Second']);
  assert.deepEqual(results.map((r) => r.totalMessages), [50, 150]);
  assert.deepEqual([...seen.keys()], ['First', 'Second']);
  for (const fs of seen.values()) assert.equal(fs.at(-1), 1);
  assert.deepEqual(suite.getResults(), results);
  engine.destroy();
});

test('generateReport: Markdown with a section per test, its configuration and results', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  assert.match(suite.generateReport(), /^# Performance Test Report/);
  assert.match(suite.generateReport(), /No tests have been run/);
  const a = await suite.runTest(short({ name: 'Alpha', messageSize: 100 }));
  const b = await suite.runTest(short({ name: 'Beta', burstMode: { enabled: true, burstSize: 20, burstInterval: 200 } }));
  const md = suite.generateReport();
  assert.match(md, /^# Performance Test Report\n/);
  for (const [r, name] of [[a, 'Alpha'], [b, 'Beta']]) {
    const section = md.slice(md.indexOf(`## ${name}\n`));
    assert.ok(md.includes(`## ${name}\n`), `section for ${name}`);
    assert.match(section, /### Configuration/);
    assert.match(section, /### Results/);
    assert.ok(section.includes(`**Total Messages**: ${r.totalMessages}`));
    assert.ok(section.includes(`**Average Throughput**: ${r.avgMessagesPerSecond.toFixed(2)} msg/s`));
    assert.ok(section.includes(`**Average Latency**: ${r.avgLatency.toFixed(2)} ms`));
    assert.ok(section.includes(`**P95 Latency**: ${r.p95Latency.toFixed(2)} ms`));
    assert.ok(section.includes(`**P99 Latency**: ${r.p99Latency.toFixed(2)} ms`));
    assert.ok(section.includes(`**Error Rate**: 0.00%`));
    assert.ok(section.includes(`**Dropped Messages**: 0`));
    assert.ok(section.includes(`**Backpressure Events**: ${r.backpressureEvents}`));
    assert.ok(section.includes(`**Message Size**: ${r.config.messageSize} bytes`));
  }
  assert.ok(md.includes('**Burst Mode**: 20 messages every 200 ms'));
  assert.ok(md.includes('**Burst Mode**: disabled'));
  assert.ok(md.includes('| Alpha | 50 |'), 'summary table');
  engine.destroy();
});

test('bad configs are TypeError or RangeError naming the field', async () => {
  const engine = new StreamEngine();
  const suite = new PerformanceTestSuite(engine);
  const bad = [
    [null, TypeError, /config/],
    [{ ...short(), name: 3 }, TypeError, /name/],
    [{ ...short(), name: ' ' }, TypeError, /name/],
    [{ ...short(), duration: 0 }, RangeError, /duration/],
    [{ ...short(), duration: '5' }, TypeError, /duration/],
    [{ ...short(), messageRate: -1 }, RangeError, /messageRate/],
    [{ ...short(), messageSize: 1.5 }, RangeError, /messageSize/],
    [{ ...short(), concurrentConnections: 0 }, RangeError, /concurrentConnections/],
    [{ ...short(), dataPattern: 'square' }, TypeError, /dataPattern/],
    [{ ...short(), burstMode: true }, TypeError, /burstMode/],
    [{ ...short(), burstMode: { enabled: 'yes' } }, TypeError, /burstMode\.enabled/],
    [{ ...short(), burstMode: { enabled: true, burstSize: 0, burstInterval: 100 } }, RangeError, /burstSize/],
    [{ ...short(), burstMode: { enabled: true, burstSize: 5, burstInterval: 0 } }, RangeError, /burstInterval/],
  ];
  for (const [config, type, re] of bad) {
    await assert.rejects(suite.runTest(config), (e) => e instanceof type && re.test(e.message), JSON.stringify(config));
  }
  // The whole list is checked before anything runs.
  await assert.rejects(suite.runTestSuite([short(), { ...short(), messageRate: 0 }]), (e) => e instanceof RangeError && /configs\[1\]\.messageRate/.test(e.message));
  await assert.rejects(suite.runTestSuite('all'), TypeError);
  assert.deepEqual(suite.getResults(), []);
  assert.deepEqual(engine.listConnections(), []);
  assert.throws(() => new PerformanceTestSuite({}), TypeError);
  engine.destroy();
});
