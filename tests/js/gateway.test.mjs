// The gateway with real ws clients on loopback: delivery, resume across a restart, gaps,
// duplicates, slow clients, bad frames, authorisation, heartbeats and limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { StreamEngine, connectGateway } from '@nodeflow/stream-engine';
import { createGateway, MemoryHistory, CLOSE_CODES } from '@nodeflow/stream-engine/gateway';
import { WebSocket, msg, until, rawClient, collect } from './gateway-helpers.mjs';

const range = (from, to, prefix = 'm') => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

test('a published batch reaches every subscriber once, in order, as the very messages (by id)', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'] });
  const a = connectGateway(gw.url, { topics: ['t'], WebSocket });
  const b = connectGateway(gw.url, { topics: ['t'], WebSocket });
  await Promise.all([a.ready(), b.ready()]);
  const ia = [];
  const ib = [];
  const sa = collect(a.readable('t'), ia);
  const sb = collect(b.readable('t'), ib);
  const ids = range(1, 500);
  for (let i = 0; i < ids.length; i += 50) gw.publish('t', ids.slice(i, i + 50).map((id) => msg(id)));
  await until(() => ia.length === 500 && ib.length === 500, 'delivery');
  assert.deepEqual(ia, ids);
  assert.deepEqual(ib, ids);
  const m = a.metrics().topics.t;
  assert.equal(m.received, 500);
  assert.equal(m.duplicates, 0);
  assert.equal(m.gaps, 0);
  assert.match(m.lastSeq, /^\d+$/);
  sa();
  sb();
  a.close();
  b.close();
  await gw.close();
});

test('killed and restarted mid-stream: the client resumes from its seq, no duplicates, no gap', async () => {
  const history = new MemoryHistory({ size: 1000 });
  let gw = await createGateway({ port: 0, topics: ['t'], history });
  const port = gw.port;
  const engine = new StreamEngine();
  const gaps = [];
  const feed = engine.events({ types: ['gap'] }).getReader();
  (async () => {
    for (;;) {
      const { value, done } = await feed.read();
      if (done) break;
      gaps.push(value);
    }
  })();
  const c = connectGateway(gw.url, { topics: ['t'], WebSocket, engine, reconnect: { retryDelay: 20, maxRetryDelay: 50 } });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  gw.publish('t', range(1, 100).map((id) => msg(id)));
  await until(() => got.length === 100, 'first 100');
  await gw.close(); // killed: the client loses its socket
  await until(() => c.state !== 'open', 'client notices');
  gw = await createGateway({ port, topics: ['t'], history });
  // Published while the client was away: only the history has them.
  gw.publish('t', range(101, 150).map((id) => msg(id)));
  await until(() => c.state === 'open', 'reconnect');
  await c.ready();
  gw.publish('t', range(151, 200).map((id) => msg(id)));
  await until(() => got.length >= 200, 'all 200');
  await new Promise((r) => setTimeout(r, 50)); // room for a wrong extra delivery to show
  assert.deepEqual(got, range(1, 200));
  const m = c.metrics().topics.t;
  assert.equal(m.reconnects, 1);
  assert.equal(m.gaps, 0);
  assert.equal(gaps.length, 0);
  stop();
  c.close();
  engine.destroy();
  await gw.close();
});

test('a gap beyond the history is signalled on the event feed; what the history still has is replayed', async () => {
  const history = new MemoryHistory({ size: 20 });
  let gw = await createGateway({ port: 0, topics: ['t'], history });
  const port = gw.port;
  const engine = new StreamEngine();
  const feed = engine.events({ types: ['gap'] }).getReader();
  const c = connectGateway(gw.url, { topics: ['t'], WebSocket, engine, reconnect: { retryDelay: 20, maxRetryDelay: 50 } });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  gw.publish('t', range(1, 10).map((id) => msg(id)));
  await until(() => got.length === 10, 'first 10');
  await gw.close();
  gw = await createGateway({ port, topics: ['t'], history });
  gw.publish('t', range(11, 60).map((id) => msg(id))); // 50 missed, 20 kept
  const { value: gap } = await feed.read();
  assert.equal(gap.type, 'gap');
  assert.equal(gap.topic, 't');
  assert.equal(gap.connectionId, c.connection('t').id);
  await until(() => got.length === 30, 'replay of what the history holds');
  assert.deepEqual(got, [...range(1, 10), ...range(41, 60)]);
  assert.equal(c.metrics().topics.t.gaps, 1);
  stop();
  c.close();
  engine.destroy();
  await gw.close();
});

test('a restarted gateway with a fresh history signals a gap to a resuming client', async () => {
  let gw = await createGateway({ port: 0, topics: ['t'] });
  const port = gw.port;
  const c = connectGateway(gw.url, { topics: ['t'], WebSocket, reconnect: { retryDelay: 20, maxRetryDelay: 50 } });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  gw.publish('t', msg('a'));
  await until(() => got.length === 1, 'a');
  await gw.close();
  await new Promise((r) => setTimeout(r, 2)); // the new history's seqs start at a later µs
  gw = await createGateway({ port, topics: ['t'] });
  await until(() => c.metrics().topics.t.gaps === 1, 'gap');
  gw.publish('t', msg('b'));
  await until(() => got.length === 2, 'b');
  assert.deepEqual(got, ['a', 'b']);
  stop();
  c.close();
  await gw.close();
});

test('duplicates (same message id) are dropped by the client and counted', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'] });
  const c = connectGateway(gw.url, { topics: ['t'], WebSocket, dedupeWindow: 3 });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  gw.publish('t', [msg('x'), msg('y')]);
  gw.publish('t', [msg('x'), msg('z')]); // x again: a producer's retry
  await until(() => c.metrics().topics.t.received === 4, 'frames');
  await until(() => got.length === 3, 'delivery');
  assert.deepEqual(got, ['x', 'y', 'z']);
  assert.equal(c.metrics().topics.t.duplicates, 1);
  // Bounded memory: with a window of 3, x is forgotten after three newer ids.
  gw.publish('t', [msg('w'), msg('x')]);
  await until(() => got.length === 5, 'x accepted again');
  assert.deepEqual(got, ['x', 'y', 'z', 'w', 'x']);
  stop();
  c.close();
  await gw.close();
});

test('a client that stops reading stays within its buffer bound, is shed by its policy, and does not hold up the others', async () => {
  const dropped = new Set();
  const gw = await createGateway({ port: 0, topics: ['t'], onDrop: (m, reason, info) => info.client === slowId && dropped.add(m.id) });
  const BUFFER = 50;
  const BATCH = 25;
  const slow = await rawClient(gw.url);
  const slowId = [...gw.clients].at(-1).id;
  slow.send({ op: 'subscribe', topic: 't', policy: { bufferSize: BUFFER, maxBatchSize: BATCH, dropPolicy: 'oldest' } });
  const fast = connectGateway(gw.url, { topics: [{ topic: 't', policy: { bufferSize: 10000 } }], WebSocket, connection: { bufferSize: 100000 } });
  await fast.ready();
  await until(() => slow.of('subscribed').length === 1, 'slow subscribed');
  const fastIds = [];
  const stop = collect(fast.readable('t'), fastIds);
  slow.ws._socket.pause(); // stops reading: the kernel buffers fill, then the gateway's socket stays busy
  const pad = 'x'.repeat(4000);
  const N = 8000;
  const all = range(1, N);
  const slowClient = [...gw.clients].find((c) => c.id === slowId);
  const slowSub = slowClient.subs.get('t');
  let maxBuffered = 0;
  let maxBytes = 0;
  for (let i = 0; i < N; i += 100) {
    gw.publish('t', all.slice(i, i + 100).map((id) => msg(id, { data: pad })));
    await new Promise((r) => setImmediate(r));
    maxBuffered = Math.max(maxBuffered, slowSub.buffered());
    maxBytes = Math.max(maxBytes, slowClient.ws.bufferedAmount);
  }
  await until(() => fastIds.length === N, 'fast client gets everything', 30000);
  assert.deepEqual(fastIds, all);
  assert.ok(dropped.size > 0, 'the stalled client was shed');
  assert.ok(maxBuffered <= BUFFER, `held for the slow client: ${maxBuffered} <= ${BUFFER}`);
  // At most one frame in flight on a busy socket: one batch plus small control frames.
  const frameBytes = BATCH * (pad.length + 200) + 1000;
  assert.ok(maxBytes <= frameBytes, `bufferedAmount ${maxBytes} <= one frame (${frameBytes})`);
  const metrics = gw.engine.getMetrics(slowSub.id);
  assert.equal(metrics.messagesIn, metrics.messagesOut + metrics.dropped + metrics.bufferSize);
  // Reading again: every message was delivered to it or dropped with a reason, never both.
  slow.ws._socket.resume();
  await until(() => slow.ids('t').length + dropped.size === N, 'slow client drained', 30000);
  const slowIds = slow.ids('t');
  assert.equal(new Set(slowIds).size, slowIds.length);
  for (const id of slowIds) assert.ok(!dropped.has(id), `${id} delivered and dropped`);
  assert.deepEqual(new Set([...slowIds, ...dropped]), new Set(all));
  // The client was told how many went, in its data frames.
  assert.equal(slow.of('data').reduce((n, f) => n + (f.dropped ?? 0), 0), dropped.size);
  stop();
  fast.close();
  await slow.close();
  await gw.close();
});

test('malformed, oversized, unknown-topic, unknown-op and bad-policy frames get error frames; the connection survives', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], maxPayload: 1000 });
  const c = await rawClient(gw.url);
  c.send('not json');
  c.send('[1,2]');
  c.send({ op: 'subscribe', topic: 'x'.repeat(10), pad: 'y'.repeat(1200) });
  c.send({ op: 'subscribe', topic: 'nope' });
  c.send({ op: 'frobnicate', ref: 7 });
  c.send({ op: 'subscribe', topic: 't', policy: { dropPolicy: 'block' } });
  c.send({ op: 'subscribe', topic: 't', policy: { bufferSize: -1 } });
  c.send({ op: 'subscribe', topic: 't', policy: { maxBatchSize: 'ten' } });
  c.send({ op: 'subscribe', topic: 't', policy: { evil: 1 } });
  c.send({ op: 'subscribe', topic: 42 });
  c.ws.send(Buffer.from([1, 2, 3]));
  await until(() => c.of('error').length === 11, 'eleven error frames');
  const errors = c.of('error');
  assert.deepEqual(errors.map((e) => e.code), ['malformed', 'malformed', 'oversized', 'unknown-topic', 'unknown-op', 'bad-request', 'bad-request', 'bad-request', 'bad-request', 'bad-request', 'malformed']);
  assert.equal(errors[4].ref, 7);
  assert.match(errors[5].message, /block/);
  assert.match(errors[6].message, /bufferSize/);
  assert.match(errors[7].message, /maxBatchSize/);
  assert.match(errors[8].message, /evil/);
  // Still working: a good subscription on the same socket.
  c.send({ op: 'subscribe', topic: 't' });
  await until(() => c.of('subscribed').length === 1, 'subscribed');
  gw.publish('t', msg('ok'));
  await until(() => c.ids('t').length === 1, 'data');
  // A frame over the hard cap (4 x maxPayload) closes that socket with 1009; the gateway lives on.
  c.send('z'.repeat(5000));
  assert.equal(await c.closed, CLOSE_CODES.TOO_BIG);
  const d = await rawClient(gw.url);
  d.send({ op: 'ping', t: 1 });
  await until(() => d.of('pong').length === 1, 'pong');
  await d.close();
  await gw.close();
});

test('authorisation: refused connections get 403, refused topics an error frame, authorised producers publish over the socket', async () => {
  const gw = await createGateway({
    port: 0,
    topics: ['public', 'secret', 'in'],
    authorize: (req) => {
      const token = new URL(req.url, 'http://x').searchParams.get('token');
      if (token === 'reader') return { subscribe: ['public', 'in'] };
      if (token === 'writer') return { subscribe: ['public', 'in'], publish: (t) => t === 'in' };
      return false;
    },
  });
  await assert.rejects(rawClient(`${gw.url}?token=bad`), /403/);
  const r = await rawClient(`${gw.url}?token=reader`);
  r.send({ op: 'subscribe', topic: 'secret' });
  r.send({ op: 'subscribe', topic: 'does-not-exist' }); // unauthorised too: existence does not leak
  r.send({ op: 'publish', topic: 'in', messages: [msg('r1')] });
  r.send({ op: 'subscribe', topic: 'in' });
  await until(() => r.of('error').length === 3 && r.of('subscribed').length === 1, 'answers');
  assert.deepEqual(r.of('error').map((e) => [e.code, e.topic]), [['unauthorized', 'secret'], ['unauthorized', 'does-not-exist'], ['unauthorized', 'in']]);
  const w = await rawClient(`${gw.url}?token=writer`);
  w.send({ op: 'publish', topic: 'in', messages: [msg('w1'), msg('w2')], ref: 'p1' });
  w.send({ op: 'publish', topic: 'in', messages: [{ nope: true }], ref: 'p2' });
  w.send({ op: 'publish', topic: 'public', messages: [msg('w3')], ref: 'p3' });
  await until(() => w.of('published').length === 1 && w.of('error').length === 2, 'publish answers');
  assert.equal(w.of('published')[0].ref, 'p1');
  assert.equal(w.of('published')[0].seqs.length, 2);
  assert.deepEqual(w.of('error').map((e) => [e.code, e.ref]), [['bad-request', 'p2'], ['unauthorized', 'p3']]);
  await until(() => r.ids('in').length === 2, 'reader gets the published messages');
  assert.deepEqual(r.ids('in'), ['w1', 'w2']);
  await r.close();
  await w.close();
  await gw.close();
});

test('in-process producers: topic(name).writable publishes; an asynchronous history with given seqs skips append', async () => {
  const appended = [];
  const history = {
    async append(topic, messages) {
      appended.push(...messages.map((m) => m.id));
      return messages.map((m) => `s-${m.id}`);
    },
    async since() {
      return { entries: [], gap: false };
    },
  };
  const gw = await createGateway({ port: 0, topics: ['t'], history });
  const c = await rawClient(gw.url);
  c.send({ op: 'subscribe', topic: 't' });
  await until(() => c.of('subscribed').length === 1, 'subscribed');
  const writer = gw.topic('t').writable.getWriter();
  await writer.write([msg('a'), msg('b')]);
  await writer.write(msg('c'));
  gw.publish('t', msg('d'), { seq: 'redis-9' });
  await until(() => c.ids('t').length === 4, 'data');
  assert.deepEqual(c.ids('t'), ['a', 'b', 'c', 'd']);
  assert.deepEqual(appended, ['a', 'b', 'c']);
  const seqs = c.of('data').map((f) => f.seq);
  assert.equal(seqs.at(-1), 'redis-9');
  assert.ok(seqs.slice(0, -1).every((s) => /^s-[abc]$/.test(s)));
  assert.throws(() => gw.publish('t', { id: 1 }), TypeError);
  assert.throws(() => gw.publish('t', msg('e', { metadata: { priority: 7 } })), RangeError);
  assert.throws(() => gw.publish('t', [msg('f')], { seq: [1] }), TypeError);
  // What JSON cannot carry is refused when published, naming the message; nothing of the array
  // is sent, and the topic keeps working.
  assert.throws(() => gw.publish('t', [msg('g'), msg('h', { data: { n: 1n } })]), { name: 'TypeError', message: /messages\[1\] cannot be sent as JSON/ });
  gw.publish('t', msg('i'));
  await until(() => c.ids('t').length === 5, 'data after the refused publish');
  assert.deepEqual(c.ids('t'), ['a', 'b', 'c', 'd', 'i']);
  await c.close();
  await gw.close();
});

test('a hidden tab in pause mode gets the current state (latest per key) at once on return, memory bounded meanwhile', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'] });
  const c = connectGateway(gw.url, { topics: [{ topic: 't', hidden: 'pause', policy: { conflate: true, bufferSize: 100 } }], WebSocket, document: null });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  c.setHidden(true);
  const sub = [...gw.clients][0].subs.get('t');
  await until(() => sub.mode === 'pause', 'paused at the gateway');
  let maxHeld = 0;
  for (let i = 0; i < 500; i++) {
    gw.publish('t', msg(`u${i}`, { data: i, metadata: { key: `k${i % 5}` } }));
    maxHeld = Math.max(maxHeld, sub.buffered());
  }
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(got.length, 0, 'nothing sent while hidden');
  assert.ok(maxHeld <= 5, `held ${maxHeld} <= 5 keys`);
  c.setHidden(false);
  await until(() => got.length === 5, 'current state');
  assert.deepEqual(got.sort(), ['u495', 'u496', 'u497', 'u498', 'u499']);
  stop();
  c.close();
  await gw.close();
});

test('missed heartbeats raise a stale alert on the event feed; it resolves when the client is back', async () => {
  // A fake gateway: welcomes with a 40 ms heartbeat, then falls silent on the first socket.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  let n = 0;
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ op: 'welcome', v: 1, heartbeat: 40 }));
    if (++n > 1) {
      const t = setInterval(() => ws.readyState === 1 && ws.send(JSON.stringify({ op: 'hb', t: Date.now() })), 20);
      ws.on('close', () => clearInterval(t));
    }
  });
  const engine = new StreamEngine();
  const feed = engine.events({ types: ['alert', 'alert-resolved'] }).getReader();
  const delays = [];
  const recovery = { getRetryDelay: (a) => (delays.push(a), 10) };
  const c = connectGateway(`ws://127.0.0.1:${wss.address().port}/`, { WebSocket, engine, recovery });
  const first = (await feed.read()).value;
  assert.equal(first.type, 'alert');
  assert.equal(first.alert.type, 'stale');
  assert.equal(first.alert.threshold, 100);
  assert.ok(first.alert.value > 100);
  const second = (await feed.read()).value;
  assert.equal(second.type, 'alert-resolved');
  assert.equal(second.alert.type, 'stale');
  assert.equal(c.state, 'open');
  assert.deepEqual(delays, [0]);
  c.close();
  engine.destroy();
  for (const ws of wss.clients) ws.terminate();
  await new Promise((r) => wss.close(r));
});

test('reconnect delays come from the recovery formula, with a growing attempt while the gateway is down', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'] });
  const url = gw.url;
  await gw.close();
  const delays = [];
  const recovery = { getRetryDelay: (a) => (delays.push(a), 5) };
  const c = connectGateway(url, { topics: ['t'], WebSocket, recovery });
  await until(() => delays.length >= 4, 'attempts');
  assert.deepEqual(delays.slice(0, 4), [0, 1, 2, 3]);
  c.close();
});

test('server side: a client that answers no pings is terminated after idleTimeout; a stalled socket is closed by the hard limit', async () => {
  const idle = await createGateway({ port: 0, heartbeatInterval: 30, idleTimeout: 120 });
  const mute = await rawClient(idle.url, { autoPong: false });
  await mute.closed;
  assert.equal(idle.stats.closedIdle, 1);
  await idle.close();
  const gw = await createGateway({ port: 0, topics: ['t'], hardLimit: { stallMs: 150, pendingMessages: 1000 } });
  const slow = await rawClient(gw.url);
  slow.send({ op: 'subscribe', topic: 't' });
  await until(() => slow.of('subscribed').length === 1, 'subscribed');
  slow.ws._socket.pause();
  const pad = 'x'.repeat(20000);
  for (let i = 0; i < 3000 && gw.stats.closedSlow === 0; i++) {
    gw.publish('t', msg(`m${i}`, { data: pad }));
    await new Promise((r) => setTimeout(r, 2));
  }
  await until(() => gw.stats.closedSlow === 1, 'closed by the hard limit');
  assert.equal(gw.clients.size, 0);
  slow.ws._socket.resume();
  await slow.closed;
  await gw.close();
});

test('one socket cannot hold more than maxSubscriptions engine connections', async () => {
  const gw = await createGateway({ port: 0, topics: ['a', 'b', 'c'], maxSubscriptions: 2 });
  const c = await rawClient(gw.url);
  for (const topic of ['a', 'b', 'c']) c.send({ op: 'subscribe', topic });
  await until(() => c.of('subscribed').length === 2 && c.of('error').length === 1, 'answers');
  assert.equal(c.of('error')[0].topic, 'c');
  assert.match(c.of('error')[0].message, /maxSubscriptions/);
  assert.equal(gw.engine.listConnections().length, 2);
  c.send({ op: 'unsubscribe', topic: 'a' });
  c.send({ op: 'subscribe', topic: 'c' });
  await until(() => c.of('subscribed').length === 3, 'room again');
  await until(() => gw.engine.listConnections().length === 2, 'a closed');
  await c.close();
  await gw.close();
});

test('bad options are TypeErrors or RangeErrors naming the field', async () => {
  await assert.rejects(createGateway({ port: -1 }), /port/);
  await assert.rejects(createGateway({ bogus: 1 }), /bogus/);
  await assert.rejects(createGateway({ history: { size: 0 } }), RangeError);
  await assert.rejects(createGateway({ policy: { dropPolicy: 'block' } }), /block/);
  assert.throws(() => connectGateway(42), TypeError);
  assert.throws(() => connectGateway('ws://127.0.0.1:1/', { WebSocket, topics: 'x' }), /topics/);
  assert.throws(() => connectGateway('ws://127.0.0.1:1/', { WebSocket, hidden: 'sleep' }), /hidden/);
  assert.throws(() => connectGateway('ws://127.0.0.1:1/', { WebSocket, staleTimeout: -5 }), /staleTimeout/);
  assert.throws(() => connectGateway('ws://127.0.0.1:1/', { WebSocket, wat: 1 }), /wat/);
  assert.throws(() => connectGateway('ws://127.0.0.1:1/', { WebSocket, dedupeWindow: 0 }), /dedupeWindow/);
});

test('a client that acknowledges frames is paced by its acks: unacknowledged bytes stay within ackWindow, the rest is shed by its policy', async () => {
  const WINDOW = 20000;
  const gw = await createGateway({ port: 0, topics: ['t'], ackWindow: WINDOW });
  const c = await rawClient(gw.url);
  c.send({ op: 'ack', frames: 0 });
  c.send({ op: 'subscribe', topic: 't', policy: { bufferSize: 40, maxBatchSize: 10, dropPolicy: 'oldest' } });
  await until(() => c.of('subscribed').length === 1, 'subscribed');
  const sub = [...gw.clients][0].subs.get('t');
  const pad = 'p'.repeat(500);
  const all = range(1, 400);
  let maxHeld = 0;
  for (let i = 0; i < all.length; i += 20) {
    gw.publish('t', all.slice(i, i + 20).map((id) => msg(id, { data: pad })));
    await new Promise((r) => setTimeout(r, 1));
    maxHeld = Math.max(maxHeld, sub.buffered());
  }
  await new Promise((r) => setTimeout(r, 50));
  const bytes = (frames) => frames.reduce((n, f) => n + JSON.stringify(f).length, 0);
  const sent = c.of('data');
  // Without acks, no more than the window (plus the frame that crossed it) went out.
  assert.ok(bytes(sent) <= WINDOW + 10 * 700, `${bytes(sent)} bytes unacknowledged`);
  assert.ok(maxHeld <= 40, `held ${maxHeld} <= 40`);
  assert.ok(gw.engine.getMetrics(sub.id).dropped > 0);
  // Acknowledging lets the rest through: everything is delivered or was dropped, once.
  let acked = 0;
  await until(() => {
    const n = c.of('data').length;
    if (n > acked) {
      c.send({ op: 'ack', frames: n - acked });
      acked = n;
    }
    const m = gw.engine.getMetrics(sub.id);
    return m.bufferSize === 0 && c.ids('t').length === m.messagesOut;
  }, 'drained after acks');
  const m = gw.engine.getMetrics(sub.id);
  assert.equal(c.ids('t').length + m.dropped, all.length);
  assert.equal(new Set(c.ids('t')).size, c.ids('t').length);
  c.send({ op: 'ack', frames: -1 });
  await until(() => c.of('error').length === 1, 'bad ack');
  assert.match(c.of('error')[0].message, /frames/);
  await c.close();
  await gw.close();
});

test("hidden 'conflate' mode: one frame per hiddenInterval with the latest value per key; live again at once", async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], hiddenInterval: 60000 });
  const c = connectGateway(gw.url, { topics: [{ topic: 't', policy: { conflate: true } }], WebSocket, document: null });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  c.setHidden(true); // the client's default hidden mode is 'conflate'
  const sub = [...gw.clients][0].subs.get('t');
  await until(() => sub.mode === 'conflate', 'conflate mode');
  gw.publish('t', msg('first', { metadata: { key: 'a' } }));
  await until(() => got.length === 1, 'one frame at once');
  for (let i = 0; i < 300; i++) gw.publish('t', msg(`v${i}`, { metadata: { key: `k${i % 3}` } }));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, ['first'], 'nothing more within the interval');
  assert.ok(sub.buffered() <= 3);
  c.setHidden(false);
  await until(() => got.length === 4, 'latest per key');
  assert.deepEqual(got.slice(1).sort(), ['v297', 'v298', 'v299']);
  stop();
  c.close();
  await gw.close();
});

test('MemoryHistory: replay after a seq, gap when it no longer reaches back or the seq is not its own, limit', async () => {
  const h = new MemoryHistory({ size: 3 });
  const seqs = h.append('t', [msg('a'), msg('b'), msg('c'), msg('d')]);
  assert.equal(seqs.length, 4);
  assert.ok(seqs.every((s, i) => i === 0 || Number(s) === Number(seqs[i - 1]) + 1));
  const ids = (r) => r.entries.map((e) => e.message.id);
  let r = await h.since('t', seqs[1], 10);
  assert.deepEqual([ids(r), r.gap], [['c', 'd'], false]);
  r = await h.since('t', seqs[0], 10); // 'a' fell out, but everything after it is kept
  assert.deepEqual([ids(r), r.gap], [['b', 'c', 'd'], false]);
  r = await h.since('t', String(Number(seqs[0]) - 1), 10); // 'a' itself is gone
  assert.deepEqual([ids(r), r.gap], [['b', 'c', 'd'], true]);
  r = await h.since('t', seqs[3], 10);
  assert.deepEqual([ids(r), r.gap], [[], false]);
  r = await h.since('t', String(Number(seqs[3]) + 5), 10); // ahead of us: another run's seq
  assert.equal(r.gap, true);
  r = await h.since('t', 'not-a-seq', 10);
  assert.deepEqual([ids(r), r.gap], [['b', 'c', 'd'], true]);
  r = await h.since('t', seqs[0], 2);
  assert.deepEqual(ids(r), ['b', 'c']);
  r = await h.since('other', '0', 10); // a topic never published to, from before this history existed
  assert.deepEqual([ids(r), r.gap], [[], true]);
  assert.equal(h.lastSeq('t'), seqs[3]);
  assert.throws(() => new MemoryHistory({ size: 1.5 }), RangeError);
});

test('the hard limit closes a client with 4008 when undroppable (critical) messages pile up for it', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], hardLimit: { stallMs: 60000, pendingMessages: 5 } });
  const c = await rawClient(gw.url);
  c.send({ op: 'subscribe', topic: 't', mode: 'pause', policy: { bufferSize: 2 } });
  await until(() => c.of('subscribed').length === 1, 'subscribed');
  const crit = (id) => msg(id, { metadata: { priority: 'critical' } });
  gw.publish('t', [crit('c1'), crit('c2')]); // the buffer is full of messages it may not drop
  // c3 waits as the engine's pending write, c4..c8 in the bounded queue (5); c9 is one too many.
  for (let i = 3; i <= 9; i++) gw.publish('t', crit(`c${i}`));
  assert.equal(await c.closed, CLOSE_CODES.TOO_SLOW);
  assert.equal(gw.stats.closedSlow, 1);
  assert.equal(gw.clients.size, 0);
  await gw.close();
});

test('connectGateway: publish through the gateway when authorised; visibility from a document drives the mode', async () => {
  const gw = await createGateway({ port: 0, topics: ['t'], authorize: () => ({ subscribe: true, publish: ['t'] }) });
  const doc = new EventTarget();
  doc.visibilityState = 'visible';
  const c = connectGateway(gw.url, { topics: [{ topic: 't', hidden: 'pause' }], WebSocket, document: doc });
  await c.ready();
  const got = [];
  const stop = collect(c.readable('t'), got);
  assert.equal(c.publish('t', [msg('s1'), msg('s2')]), true);
  await until(() => got.length === 2, 'own messages back through the gateway');
  assert.deepEqual(got, ['s1', 's2']);
  const sub = [...gw.clients][0].subs.get('t');
  doc.visibilityState = 'hidden';
  doc.dispatchEvent(new Event('visibilitychange'));
  await until(() => sub.mode === 'pause', 'paused when hidden');
  doc.visibilityState = 'visible';
  doc.dispatchEvent(new Event('visibilitychange'));
  await until(() => sub.mode === 'live', 'live when visible');
  doc.dispatchEvent(new Event('freeze'));
  await until(() => sub.mode === 'pause', 'paused when frozen');
  doc.dispatchEvent(new Event('resume'));
  await until(() => sub.mode === 'live', 'live on resume');
  stop();
  c.close();
  assert.equal(c.state, 'closed');
  assert.equal(c.publish('t', msg('late')), false);
  await gw.close();
});

test('subscriptions are cheap in wasm memory: 200 with traffic grow it by less than one dense latency histogram each', async () => {
  // The core's latency histograms once kept a dense array of 2,177 u64 buckets per sliding-window
  // slot (5 slots per connection: about 87 KB per subscription). They are sparse now (16-bucket
  // chunks on first use), so a subscription costs well under the size of one dense histogram.
  const DENSE_HISTOGRAM_BYTES = 2177 * 8;
  const N = 200;
  const topics = Array.from({ length: N }, (_, i) => `s${i}`);
  const gw = await createGateway({ port: 0, topics, maxSubscriptions: N });
  let c = null;
  try {
    const wasmBytes = () => gw.engine.getMetrics().system.wasmMemoryBytes;
    const before = wasmBytes();
    c = await rawClient(gw.url);
    // Batch timeouts from 0 to 49 ms: the subscriptions' latencies fall in different octaves.
    topics.forEach((topic, i) => c.send({ op: 'subscribe', topic, policy: { batchTimeout: i % 50 } }));
    await until(() => c.of('subscribed').length === N, 'every subscription answered');
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      for (const t of topics) gw.publish(t, [msg(`${t}-${r}a`), msg(`${t}-${r}b`)]);
      await new Promise((res) => setTimeout(res, 20));
    }
    await until(() => c.ids().length === N * rounds * 2, 'every message delivered');
    for (const t of topics) assert.deepEqual(c.ids(t), Array.from({ length: rounds }, (_, r) => [`${t}-${r}a`, `${t}-${r}b`]).flat(), t);
    const grown = wasmBytes() - before;
    if (process.env.GATEWAY_MEMORY_REPORT) console.log(`wasm memory grew by ${grown} bytes for ${N} subscriptions`);
    assert.ok(grown < N * DENSE_HISTOGRAM_BYTES, `wasm memory grew by ${grown} bytes for ${N} subscriptions (bound ${N * DENSE_HISTOGRAM_BYTES})`);
  } finally {
    await c?.close();
    await gw.close();
  }
});

test('subscribers of a topic that get the same batch get the same frame, built once; one with drops gets its own', async () => {
  // ackWindow 1: after one data frame each socket counts as busy until its client acknowledges it.
  const gw = await createGateway({ port: 0, topics: ['t'], ackWindow: 1 });
  const cs = [];
  try {
    for (let i = 0; i < 3; i++) {
      const c = await rawClient(gw.url);
      cs.push(c);
      c.send({ op: 'ack', frames: 0 });
      // The third keeps only the newest 2 messages while its socket is busy.
      c.send({ op: 'subscribe', topic: 't', policy: { batchTimeout: 0, ...(i === 2 ? { bufferSize: 2, dropPolicy: 'oldest' } : {}) } });
      await until(() => c.of('subscribed').length === 1, 'subscribed');
    }
    const [a, b, c] = cs;
    const shared0 = gw.stats.framesShared;
    const sent0 = gw.stats.framesSent;
    gw.publish('t', msg('m1')); // free sockets: sent inside the publish, one frame for all three
    assert.equal(gw.stats.framesSent - sent0, 3);
    assert.equal(gw.stats.framesShared - shared0, 2);
    for (let i = 2; i <= 5; i++) gw.publish('t', msg(`m${i}`)); // all three busy: they wait in the engine
    await until(() => cs.every((x) => x.of('data').length === 1), 'first frames');
    for (const x of cs) x.send({ op: 'ack', frames: 1 });
    await until(() => cs.every((x) => x.of('data').length === 2), 'second frames');
    assert.equal(gw.stats.framesSent - sent0, 6);
    assert.equal(gw.stats.framesShared - shared0, 3); // a and b share [m2..m5]; c's frame is its own
    for (const x of [a, b]) assert.deepEqual(x.of('data').map((f) => [f.messages.map((m) => m.id), f.dropped]), [[['m1'], undefined], [range(2, 5), undefined]]);
    assert.deepEqual(c.of('data').map((f) => [f.messages.map((m) => m.id), f.dropped]), [[['m1'], undefined], [['m4', 'm5'], 2]]);
    // Every frame carries the seq of its last message, shared or not.
    assert.equal(a.of('data')[1].seq, gw.metrics().topics.t.lastSeq);
    assert.equal(c.of('data')[1].seq, a.of('data')[1].seq);
  } finally {
    for (const x of cs) await x.close();
    await gw.close();
  }
});

test('a busy client gets what waited as one frame once it is free: one frame per batch, none queued on the busy socket', async () => {
  // ackWindow 1: after one data frame the socket counts as busy until the client acknowledges it.
  const gw = await createGateway({ port: 0, topics: ['t'], ackWindow: 1 });
  let c = null;
  try {
    c = await rawClient(gw.url);
    c.send({ op: 'ack', frames: 0 }); // this client acknowledges frames
    c.send({ op: 'subscribe', topic: 't', policy: { batchTimeout: 0, maxBatchSize: 100 } });
    await until(() => c.of('subscribed').length === 1, 'subscribed');
    const sentBefore = gw.stats.framesSent;
    // The pump sends synchronously inside the publish that makes a batch due: the first message
    // goes out at once, the next nine find the socket busy and wait in the engine.
    gw.publish('t', msg('m1'));
    for (let i = 2; i <= 10; i++) gw.publish('t', msg(`m${i}`));
    assert.equal(gw.stats.framesSent - sentBefore, 1);
    await until(() => c.of('data').length === 1, 'first frame');
    c.send({ op: 'ack', frames: 1 });
    await until(() => c.of('data').length === 2, 'second frame');
    assert.deepEqual(c.of('data').map((f) => f.messages.map((m) => m.id)), [['m1'], range(2, 10)]);
    assert.equal(gw.stats.framesSent - sentBefore, 2);
  } finally {
    await c?.close();
    await gw.close();
  }
});
