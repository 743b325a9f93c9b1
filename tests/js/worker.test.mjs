// Worker mode in Node: the engine and its producer run in a worker_threads Worker; the main
// thread reads through connectEngine(). Both transports (transferred ReadableStreams and one
// postMessage per batch) are forced in turn; accounting is checked per message id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { connectEngine, canTransferStreams } from '@nodeflow/stream-engine';

const FIXTURE = new URL('./fixtures/engine-worker.mjs', import.meta.url);

/** Starts the fixture worker; resolves to { worker, id, ask(msg, answer) }. */
async function startWorker(workerData) {
  const worker = new Worker(FIXTURE, { workerData });
  const wait = (kind) =>
    new Promise((resolve, reject) => {
      const on = (m) => {
        if (m?.fixture === kind) {
          worker.off('message', on);
          resolve(m);
        }
      };
      worker.on('message', on);
      worker.once('error', reject);
    });
  const { id } = await wait('ready');
  return {
    worker,
    id,
    ask: (fixture, answer) => {
      const p = wait(answer);
      worker.postMessage({ fixture });
      return p;
    },
    send: (fixture) => worker.postMessage({ fixture }),
  };
}

async function readIds(readable, n) {
  const reader = readable.getReader();
  const ids = [];
  let chunks = 0;
  while (ids.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    assert.ok(Array.isArray(value) && value.length > 0, 'each chunk is a non-empty batch');
    chunks++;
    for (const m of value) ids.push(m.id);
  }
  return { ids, chunks, reader };
}

test('Node can transfer ReadableStreams, so transfer "auto" picks "stream"', async () => {
  assert.equal(canTransferStreams(), true);
  const w = await startWorker({ count: 1 });
  try {
    const remote = await connectEngine(w.worker);
    assert.equal(remote.transferMode, 'stream');
    assert.deepEqual(await remote.listConnections(), [w.id]);
    remote.close();
  } finally {
    await w.worker.terminate();
  }
});

for (const mode of ['stream', 'post']) {
  test(`worker mode (${mode}): every message written in the worker arrives once, in order, with its payload; metrics agree`, async () => {
    const count = 2000;
    const w = await startWorker({ count });
    try {
      const remote = await connectEngine(w.worker, { transfer: mode });
      assert.equal(remote.transferMode, mode);
      const readable = await remote.readable(w.id);
      w.send('produce');
      const { ids } = await readIds(readable, count);
      assert.deepEqual(ids, Array.from({ length: count }, (_, i) => `w${i}`));
      const m = await remote.getMetrics(w.id);
      assert.equal(m.messagesIn, count);
      assert.equal(m.messagesOut, count);
      assert.equal(m.dropped, 0);
      assert.equal(m.bufferSize, 0);
      const all = await remote.getMetrics();
      assert.equal(all.totals.messagesOut, count);
      remote.close();
    } finally {
      await w.worker.terminate();
    }
  });

  test(`worker mode (${mode}): unread messages stay in the worker's connection, where the drop policy applies; delivered and dropped ids partition what was written`, async () => {
    const count = 500;
    const w = await startWorker({ count, bufferSize: 50, dropPolicy: 'oldest' });
    try {
      const remote = await connectEngine(w.worker, { transfer: mode });
      const readable = await remote.readable(w.id);
      await w.ask('produce', 'produced');
      // Nothing read yet: the worker holds at most bufferSize messages (plus what a transfer
      // may have read ahead: at most one batch).
      const before = await remote.getMetrics(w.id);
      assert.ok(before.bufferSize <= 50, `bufferSize ${before.bufferSize}`);
      assert.ok(before.messagesOut <= 64, `read ahead ${before.messagesOut}`);
      w.send('close');
      const reader = readable.getReader();
      const delivered = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const m of value) delivered.push(m.id);
      }
      const { dropped } = await w.ask('dropped', 'dropped');
      for (const [, reason] of dropped) assert.equal(reason, 'oldest');
      const droppedIds = dropped.map(([id]) => id);
      assert.equal(new Set([...delivered, ...droppedIds]).size, count, 'no id twice');
      assert.equal(delivered.length + droppedIds.length, count, 'every id delivered or dropped');
      assert.ok(delivered.length >= 50 && delivered.length < count, `delivered ${delivered.length}`);
      remote.close();
    } finally {
      await w.worker.terminate();
    }
  });

  test(`worker mode (${mode}): frame-aligned readable delivers everything in order, in chunks paced by this thread's frames`, async () => {
    const count = 3000;
    const w = await startWorker({ count });
    try {
      const remote = await connectEngine(w.worker, { transfer: mode });
      const readable = await remote.readable(w.id, { frames: true });
      w.send('produce');
      const { ids } = await readIds(readable, count);
      assert.deepEqual(ids, Array.from({ length: count }, (_, i) => `w${i}`));
      remote.close();
    } finally {
      await w.worker.terminate();
    }
  });

  test(`worker mode (${mode}): the worker's event feed reaches this thread`, async () => {
    const w = await startWorker({ count: 10 });
    try {
      const remote = await connectEngine(w.worker, { transfer: mode });
      const events = (await remote.events({ types: ['metrics'] })).getReader();
      const { value } = await events.read();
      assert.equal(value.type, 'metrics');
      assert.ok(w.id in value.metrics.connections);
      await events.cancel();
      remote.close();
    } finally {
      await w.worker.terminate();
    }
  });
}

test('worker mode: bad arguments are a TypeError or RangeError naming the field; an unknown id rejects; the remote keeps working', async () => {
  await assert.rejects(connectEngine({}), (e) => e instanceof TypeError && /worker/.test(e.message));
  const w = await startWorker({ count: 5 });
  try {
    await assert.rejects(connectEngine(w.worker, { transfer: 'pigeon' }), (e) => e instanceof TypeError && /transfer/.test(e.message));
    const remote = await connectEngine(w.worker);
    await assert.rejects(remote.readable('nope'), (e) => /unknown connection nope/.test(e.message));
    await assert.rejects(remote.readable(5), (e) => e instanceof TypeError && /connection id/.test(e.message));
    await assert.rejects(remote.readable(w.id, { frames: 'yes' }), (e) => e instanceof TypeError && /frames/.test(e.message));
    await assert.rejects(remote.readable(w.id, { hiddenInterval: 0 }), (e) => e instanceof RangeError && /hiddenInterval/.test(e.message));
    await assert.rejects(remote.getMetrics('nope'), /unknown connection/);
    const readable = await remote.readable(w.id);
    w.send('produce');
    const { ids } = await readIds(readable, 5);
    assert.equal(ids.length, 5);
    remote.close();
  } finally {
    await w.worker.terminate();
  }
});

test('worker mode (post): close() errors this side\'s streams and cancels the worker\'s readable: unread messages become dead letters there, at most one batch was in flight', async () => {
  const w = await startWorker({ count: 300 });
  try {
    const remote = await connectEngine(w.worker, { transfer: 'post' });
    const reader = (await remote.readable(w.id)).getReader();
    await w.ask('produce', 'produced');
    const first = await reader.read();
    const read = first.value.map((m) => m.id);
    const pending = reader.read();
    remote.close();
    await assert.rejects(pending, /RemoteEngine closed/);
    const { dropped } = await w.ask('dropped', 'dropped');
    for (const [, reason] of dropped) assert.equal(reason, 'dead-letter');
    const dead = dropped.map(([id]) => id);
    const seen = new Set([...read, ...dead]);
    assert.equal(seen.size, read.length + dead.length, 'no id both read and dead-lettered');
    const inFlight = 300 - seen.size;
    assert.ok(inFlight >= 0 && inFlight <= 64, `${inFlight} messages were in flight (at most one batch)`);
  } finally {
    await w.worker.terminate();
  }
});
