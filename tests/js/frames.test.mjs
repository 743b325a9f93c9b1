// Frame-aligned delivery (connection.frames()): at most one batch per frame, everything buffered
// at that frame, messages kept in the connection (and under its policy) between frames, and the
// fallback clock where there are no animation frames. Frames are driven by hand (nextFrame) or
// by mocked timers: no sleeps.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine } from '@nodeflow/stream-engine';

let seq = 0;
const msg = (extra = {}) => ({ id: `f${seq++}`, timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: seq, ...extra });
const turn = () => new Promise((r) => setImmediate(r));

/** A hand-driven frame clock: `nextFrame` waits until `frame()` is called; counts frames. */
function manualClock() {
  const waiting = [];
  const clock = {
    count: 0,
    nextFrame: () => new Promise((r) => waiting.push(r)),
    async frame() {
      clock.count++;
      for (const r of waiting.splice(0)) r();
      await turn();
    },
  };
  return clock;
}

test('frames(): one chunk per frame holding everything buffered (several core batches joined); messages wait in the connection', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { maxBatchSize: 3, batchTimeout: 0 });
  const c = e.getConnection(id);
  const clock = manualClock();
  const reader = c.frames({ nextFrame: clock.nextFrame }).getReader();
  const chunks = [];
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push({ frame: clock.count, ids: value.map((m) => m.id) });
    }
  })();
  const first = [msg(), msg(), msg(), msg(), msg()];
  await c.writer.write(first.slice(0, 2));
  await c.writer.write(first.slice(2));
  await turn();
  // No frame yet: nothing delivered, all five held by the connection.
  assert.equal(chunks.length, 0);
  assert.equal(e.getMetrics(id).bufferSize, 5);
  assert.equal(e.getMetrics(id).messagesOut, 0);
  await clock.frame();
  assert.deepEqual(chunks, [{ frame: 1, ids: first.map((m) => m.id) }]);
  // A frame with nothing buffered delivers nothing; the next message waits for the next frame.
  await clock.frame();
  assert.equal(chunks.length, 1);
  const later = msg();
  await c.writer.write(later);
  await turn();
  assert.equal(chunks.length, 1);
  await clock.frame();
  assert.deepEqual(chunks[1], { frame: 3, ids: [later.id] });
  assert.equal(e.getMetrics(id).messagesOut, 6);
  e.destroy();
});

test('frames(): never two chunks in one frame under a continuous producer; every message delivered once, in order', async () => {
  const e = new StreamEngine();
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 100_000, maxBatchSize: 7, batchTimeout: 0 });
  const c = e.getConnection(id);
  const clock = manualClock();
  const reader = c.frames({ nextFrame: clock.nextFrame }).getReader();
  const framesSeen = [];
  const got = [];
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      framesSeen.push(clock.count);
      for (const m of value) got.push(m.id);
    }
  })();
  const sent = [];
  for (let f = 0; f < 30; f++) {
    const n = (f * 7) % 23; // 0..22 messages between frames
    for (let i = 0; i < n; i++) {
      const m = msg();
      sent.push(m.id);
      await c.writer.write(m);
    }
    await clock.frame();
  }
  await c.writer.close();
  await clock.frame();
  await reading;
  assert.deepEqual(got, sent);
  for (let i = 1; i < framesSeen.length; i++) assert.ok(framesSeen[i] > framesSeen[i - 1], `two chunks in frame ${framesSeen[i]}`);
  e.destroy();
});

test('frames(): between frames the drop policy applies in the connection; each message is delivered or dropped, never both', async () => {
  const e = new StreamEngine();
  const dropped = [];
  const id = e.createConnection('a', 'b', 'out', 'in', { bufferSize: 10, dropPolicy: 'oldest', batchTimeout: 0, onDrop: (m, reason) => dropped.push(`${m.id}:${reason}`) });
  const c = e.getConnection(id);
  const clock = manualClock();
  const reader = c.frames({ nextFrame: clock.nextFrame }).getReader();
  const sent = [];
  for (let i = 0; i < 25; i++) {
    const m = msg();
    sent.push(m.id);
    await c.writer.write(m);
  }
  const pending = reader.read();
  await clock.frame();
  const { value } = await pending;
  const delivered = value.map((m) => m.id);
  assert.deepEqual(delivered, sent.slice(15), 'the newest 10 survive');
  assert.deepEqual(dropped, sent.slice(0, 15).map((x) => `${x}:oldest`));
  const m = e.getMetrics(id);
  assert.equal(m.messagesIn, m.messagesOut + m.dropped + m.bufferSize);
  assert.equal(m.messagesOut, 10);
  e.destroy();
});

test('frames(): cancel dead-letters what is buffered; writer.abort errors the frames stream; close ends it after the rest', async () => {
  const e = new StreamEngine();
  const a = e.getConnection(e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 }));
  const clock = manualClock();
  const fa = a.frames({ nextFrame: clock.nextFrame });
  const held = [msg(), msg()];
  await a.writer.write(held);
  await fa.cancel(new Error('gone'));
  assert.deepEqual(a.deadLetters().map((m) => m.id), held.map((m) => m.id));

  const b = e.getConnection(e.createConnection('a', 'c', 'out', 'in', { batchTimeout: 0 }));
  const rb = b.frames({ nextFrame: clock.nextFrame }).getReader();
  const readB = rb.read();
  await b.writer.abort(new Error('producer died'));
  await assert.rejects(readB, /producer died/);

  const d = e.getConnection(e.createConnection('a', 'd', 'out', 'in', { batchTimeout: 0 }));
  const rd = d.frames({ nextFrame: clock.nextFrame }).getReader();
  const last = msg();
  await d.writer.write(last);
  const closing = d.writer.close();
  const r1 = rd.read();
  await clock.frame();
  assert.deepEqual((await r1).value.map((m) => m.id), [last.id]);
  await closing;
  const r2 = rd.read();
  await clock.frame();
  assert.equal((await r2).done, true);
  e.destroy();
});

test('frames(): bad options are a TypeError or RangeError naming the field; a locked readable is refused', () => {
  const e = new StreamEngine();
  const c = e.getConnection(e.createConnection('a', 'b', 'out', 'in'));
  assert.throws(() => c.frames({ hiddenInterval: -1 }), (err) => err instanceof RangeError && /hiddenInterval/.test(err.message));
  assert.throws(() => c.frames({ hiddenInterval: 'soon' }), (err) => err instanceof TypeError && /hiddenInterval/.test(err.message));
  assert.throws(() => c.frames({ nextFrame: 5 }), (err) => err instanceof TypeError && /nextFrame/.test(err.message));
  assert.throws(() => c.frames({ fps: 30 }), (err) => err instanceof TypeError && /fps/.test(err.message));
  assert.throws(() => c.frames([]), TypeError);
  c.readable.getReader();
  assert.throws(() => c.frames(), (err) => err instanceof TypeError && /locked/.test(err.message));
  // The engine keeps working.
  const id2 = e.createConnection('a', 'z', 'out', 'in');
  assert.equal(e.getMetrics(id2).messagesIn, 0);
  e.destroy();
});

test('frames() default clock: animation frames when visible; a hiddenInterval timer when hidden, cut short on becoming visible; 60 Hz without rAF', async (t) => {
  // Node 20.4+ takes an options object; Node 18 the list of APIs itself.
  try {
    t.mock.timers.enable({ apis: ['setTimeout'] });
  } catch {
    t.mock.timers.enable(['setTimeout']);
  }
  const g = globalThis;
  const rafCallbacks = new Map();
  let nextId = 1;
  const listeners = new Set();
  const doc = {
    visibilityState: 'visible',
    addEventListener: (type, fn) => type === 'visibilitychange' && listeners.add(fn),
    removeEventListener: (type, fn) => listeners.delete(fn),
  };
  g.requestAnimationFrame = (cb) => {
    rafCallbacks.set(nextId, cb);
    return nextId++;
  };
  g.cancelAnimationFrame = (id) => rafCallbacks.delete(id);
  g.document = doc;
  t.after(() => {
    delete g.requestAnimationFrame;
    delete g.cancelAnimationFrame;
    delete g.document;
  });
  const runFrame = () => {
    const cbs = [...rafCallbacks.values()];
    rafCallbacks.clear();
    for (const cb of cbs) cb(0);
  };
  const e = new StreamEngine();
  const c = e.getConnection(e.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 }));
  const reader = c.frames({ hiddenInterval: 500 }).getReader();
  let settled = 0;
  const read = () => reader.read().then((r) => (settled++, r));

  // Visible: delivered on the animation frame, not before.
  await c.writer.write(msg());
  let p = read();
  await turn();
  assert.equal(settled, 0);
  runFrame();
  assert.equal((await p).value.length, 1);

  // Hidden: no animation frames; the chunk comes after hiddenInterval ms of (mocked) time.
  doc.visibilityState = 'hidden';
  await c.writer.write([msg(), msg()]);
  p = read();
  await turn();
  runFrame(); // nothing was requested from rAF while hidden
  t.mock.timers.tick(499);
  await turn();
  assert.equal(settled, 1);
  t.mock.timers.tick(1);
  assert.equal((await p).value.length, 2);

  // Becoming visible again delivers at once instead of waiting out the interval.
  await c.writer.write(msg());
  p = read();
  await turn();
  t.mock.timers.tick(100);
  await turn();
  assert.equal(settled, 2);
  doc.visibilityState = 'visible';
  for (const fn of [...listeners]) fn();
  assert.equal((await p).value.length, 1);
  e.destroy();

  // No requestAnimationFrame and no document (plain Node): one 60 Hz frame.
  delete g.requestAnimationFrame;
  delete g.document;
  const e2 = new StreamEngine();
  const c2 = e2.getConnection(e2.createConnection('a', 'b', 'out', 'in', { batchTimeout: 0 }));
  const r2 = c2.frames().getReader();
  await c2.writer.write(msg());
  let done2 = false;
  const p2 = r2.read().then((r) => ((done2 = true), r));
  await turn();
  t.mock.timers.tick(16);
  await turn();
  assert.equal(done2, false);
  t.mock.timers.tick(1);
  assert.equal((await p2).value.length, 1);
  e2.destroy();
});
