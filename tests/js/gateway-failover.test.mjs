// Gateway failover: a client given several gateways moves on to the next one when its gateway
// dies and resumes there from its last seq, per message id. In process (two gateways sharing one
// history), then end to end with real processes: two gateway processes in Redis mode on one
// redis-server, one of them SIGKILLed mid-stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StreamEngine, connectGateway } from '@nodeflow/stream-engine';
import { createGateway, MemoryHistory } from '@nodeflow/stream-engine/gateway';
import { connectRedis } from '@nodeflow/stream-engine/redis';
import { WebSocket, msg, until, collect } from './gateway-helpers.mjs';
import { startRedis, freePort } from './redis-helpers.mjs';

const range = (from, to, prefix = 'm') => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
const fast = { retryDelay: 20, maxRetryDelay: 100, jitter: 0.5 };

/** Every gap event of `engine`, collected in the background. */
function gapEvents(engine) {
  const gaps = [];
  const feed = engine.events({ types: ['gap'] }).getReader();
  (async () => {
    for (;;) {
      const { value, done } = await feed.read().catch(() => ({ done: true }));
      if (done) break;
      gaps.push(value);
    }
  })();
  return gaps;
}

/** Ids that occur more than once, and expected ids that are missing. */
function exactlyOnce(got, expected) {
  const count = new Map();
  for (const id of got) count.set(id, (count.get(id) ?? 0) + 1);
  return {
    duplicated: [...count].filter(([, n]) => n > 1).map(([id]) => id),
    missing: expected.filter((id) => !count.has(id)),
    unexpected: [...count.keys()].filter((id) => !expected.includes(id)),
  };
}

test('in process: a client given two gateways resumes on the second when the first closes, each id once, no gap', async () => {
  // One history shared by both gateways (what Redis is across processes): append once, fan out to both.
  const history = new MemoryHistory({ size: 10_000 });
  const a = await createGateway({ port: 0, topics: ['t'], history });
  const b = await createGateway({ port: 0, topics: ['t'], history });
  const publish = (ids) => {
    const messages = ids.map((id) => msg(id));
    const seq = history.append('t', messages);
    for (const g of [a, b]) if (!g.closed) g.publish('t', messages, { seq });
  };
  const engine = new StreamEngine();
  const gaps = gapEvents(engine);
  const c = connectGateway([a.url, b.url], { topics: ['t'], WebSocket, engine, reconnect: fast });
  try {
    await c.ready();
    assert.equal(c.metrics().url, a.url);
    const got = [];
    const stop = collect(c.readable('t'), got);
    publish(range(1, 100));
    await until(() => got.length === 100, 'first 100 from a');
    await a.close();
    publish(range(101, 150)); // while the client is away: only the history (and b) have them
    await until(() => c.state === 'open' && c.metrics().url === b.url, 'failover to b');
    await c.ready();
    publish(range(151, 200));
    await until(() => got.length >= 200, 'all 200');
    await new Promise((r) => setTimeout(r, 50)); // room for a wrong extra delivery to show
    assert.deepEqual(got, range(1, 200));
    const m = c.metrics().topics.t;
    assert.equal(m.reconnects, 1);
    assert.equal(m.duplicates, 0);
    assert.equal(m.gaps, 0);
    assert.equal(gaps.length, 0);
    stop();
  } finally {
    c.close();
    engine.destroy();
    await a.close();
    await b.close();
  }
});

test('the URL list is walked in turn (dead ones skipped) and a function picks the URL per attempt', async () => {
  const dead = `ws://127.0.0.1:${await freePort()}/`; // nothing listens there
  const gw = await createGateway({ port: 0, topics: ['t'] });
  const tried = [];
  const c1 = connectGateway([dead, new URL(gw.url)], { topics: ['t'], WebSocket, reconnect: fast });
  const c2 = connectGateway((attempt) => {
    tried.push(attempt);
    return attempt < 3 ? dead : gw.url;
  }, { topics: ['t'], WebSocket, reconnect: fast });
  try {
    await Promise.all([c1.ready(), c2.ready()]);
    assert.equal(c1.url, gw.url);
    assert.equal(c2.url, gw.url);
    assert.deepEqual(tried, [0, 1, 2, 3]);
    gw.publish('t', [msg('x')]);
    const [r1, r2] = await Promise.all([c1.readable('t').getReader().read(), c2.readable('t').getReader().read()]);
    assert.deepEqual([r1.value.map((m) => m.id), r2.value.map((m) => m.id)], [['x'], ['x']]);
  } finally {
    c1.close();
    c2.close();
    await gw.close();
  }
  // Bad lists are clear errors, naming the entry.
  assert.throws(() => connectGateway([], { WebSocket }), { name: 'RangeError', message: /^url must list at least one/ });
  assert.throws(() => connectGateway([gw.url, 42], { WebSocket }), { name: 'TypeError', message: /^url\[1\] must be a string or URL, got 42/ });
  assert.throws(() => connectGateway(7, { WebSocket }), { name: 'TypeError', message: /^url must be a string or URL/ });
  assert.throws(() => connectGateway(() => null, { WebSocket }), { name: 'TypeError', message: /^url\(attempt\) must be a string or URL/ });
  // A function that throws on a later attempt: an `error` event, and the client keeps trying.
  const engine = new StreamEngine();
  const events = [];
  const feed = engine.events({ types: ['gateway'] }).getReader();
  (async () => {
    for (;;) {
      const { value, done } = await feed.read().catch(() => ({ done: true }));
      if (done) break;
      events.push(value);
    }
  })();
  let calls = 0;
  const c3 = connectGateway(() => {
    calls++;
    if (calls > 1) throw new Error('no gateway known');
    return dead;
  }, { WebSocket, engine, reconnect: fast });
  await until(() => calls >= 3, 'retries after a throwing url function');
  c3.close();
  engine.destroy();
  assert.ok(events.some((e) => e.action === 'error' && /no gateway known/.test(e.message)));
});

test('a history ahead of the live feed (another process wrote it): what the replay sent is not sent again live', async () => {
  // As with Redis: the replay reads XRANGE, and this gateway's own XREAD may still be behind it.
  const seqOf = (i) => `1000-${i}`;
  const history = {
    async since(topic, afterSeq) {
      assert.equal(afterSeq, seqOf(0));
      return { entries: [1, 2, 3, 4, 5].map((i) => ({ seq: seqOf(i), message: msg(`m${i}`) })), gap: false };
    },
  };
  const gw = await createGateway({ port: 0, topics: ['t'], history });
  const c = connectGateway(gw.url, { topics: [{ topic: 't', afterSeq: seqOf(0) }], WebSocket });
  try {
    await c.ready();
    const got = [];
    const stop = collect(c.readable('t'), got);
    await until(() => got.length === 5, 'the replay');
    // The live feed catches up: m3..m5 again (already replayed), then new ones.
    gw.publish('t', [3, 4, 5, 6].map((i) => msg(`m${i}`)), { seq: [3, 4, 5, 6].map(seqOf) });
    gw.publish('t', [msg('m7')], { seq: [seqOf(7)] });
    await until(() => got.length >= 7, 'm6 and m7');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got, range(1, 7));
    assert.equal(c.metrics().topics.t.duplicates, 0, 'the gateway did not send m3..m5 twice');
    // Once the feed has passed the replay, nothing is filtered any more (even a seq going back).
    gw.publish('t', [msg('m8')], { seq: [seqOf(2)] });
    await until(() => got.length === 8, 'm8');
    stop();
  } finally {
    c.close();
    await gw.close();
  }
});

test('seqs are ordered as numbers per group (the in-memory history\'s and Redis entry ids), never by string', async () => {
  const { compareSeqs } = await import('../../js/gateway-history.js');
  const sign = (a, b) => Math.sign(compareSeqs(a, b));
  assert.equal(sign('9', '10'), -1);
  assert.equal(sign('1700000000000-10', '1700000000000-9'), 1);
  assert.equal(sign('999-7', '1000-0'), -1);
  assert.equal(sign('1000-0', '1000'), 0);
  assert.equal(sign('007', '7'), 0);
  assert.equal(sign('12345678901234567890-1', '12345678901234567890-0'), 1, 'beyond 2^53');
  for (const [a, b] of [['x', '1'], ['1', undefined], ['1-2-3', '1'], ['', '0']]) assert.ok(Number.isNaN(compareSeqs(a, b)), `${a} vs ${b}`);
});

// ---- real processes: two gateway processes in Redis mode ------------------------------------------

let redis;
let admin;
const children = new Set();
before(async () => {
  redis = await startRedis();
  admin = await connectRedis(redis.url, { onError: () => {} });
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await admin?.close().catch(() => {});
  await redis?.destroy();
});

const FIXTURE = fileURLToPath(new URL('./fixtures/redis-gateway-proc.mjs', import.meta.url));

/** Forks a gateway process reading `stream`; resolves with `{ child, url }` once it listens. */
function gatewayProcess(stream) {
  const child = fork(FIXTURE, [redis.url, stream], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway process did not start')), 15_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve({ child, url: m.url });
    });
    child.once('exit', (code, signal) => reject(new Error(`gateway process exited (${code ?? signal})`)));
  });
}

function kill(child) {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  return exited;
}

const entry = (id) => ['id', id, 'm', JSON.stringify(msg(id))];
async function xadd(stream, ids) {
  return Promise.all(ids.map((id) => admin.sendCommand(['XADD', stream, '*', ...entry(id)])));
}

test('processes: SIGKILL the client\'s gateway mid-stream; it resumes on the other via XRANGE, each id exactly once, no gap', async () => {
  const stream = 'fo:live';
  // A marker entry: the client resumes after it, so nothing produced after it can be missed
  // however fast the gateways' XREAD loops start.
  const [start] = await xadd(stream, ['start']);
  const [g1, g2] = await Promise.all([gatewayProcess(stream), gatewayProcess(stream)]);
  const engine = new StreamEngine();
  const gaps = gapEvents(engine);
  const c = connectGateway([g1.url, g2.url], { topics: [{ topic: 't', afterSeq: start }], WebSocket, engine, reconnect: fast });
  const got = [];
  let stop = () => {};
  try {
    await c.ready();
    assert.equal(c.url, g1.url);
    stop = collect(c.readable('t'), got);
    const ids = range(1, 1500);
    let killed = null;
    let writtenAtKill = -1;
    // Producers keep XADDing (batches of 10, paced) while gateway 1 is killed under them: once
    // the client has 300 (and at the latest after the first 500 are written), SIGKILL.
    for (let i = 0; i < ids.length; i += 10) {
      if (killed === null && i >= 500) await until(() => got.length >= 300, 'the client got 300 from gateway 1');
      if (killed === null && got.length >= 300) {
        killed = kill(g1.child);
        writtenAtKill = i;
      }
      await xadd(stream, ids.slice(i, i + 10));
      await new Promise((r) => setTimeout(r, 2));
    }
    await killed;
    assert.ok(writtenAtKill > 0 && writtenAtKill <= 500, `gateway 1 died mid-stream (after ${writtenAtKill} of ${ids.length} were written)`);
    await until(() => got.length >= ids.length, `all ${ids.length} (got ${got.length})`, 20_000);
    await new Promise((r) => setTimeout(r, 100)); // room for a wrong extra delivery to show
    assert.deepEqual(exactlyOnce(got, ids), { duplicated: [], missing: [], unexpected: [] });
    assert.deepEqual(got, ids, 'in order');
    const m = c.metrics();
    assert.equal(m.url, g2.url, 'on gateway 2 now');
    assert.equal(m.topics.t.reconnects, 1);
    assert.equal(m.topics.t.duplicates, 0, 'the gateways sent nothing twice (the client did not have to drop any)');
    assert.equal(m.topics.t.gaps, 0);
    assert.equal(m.topics.t.droppedUpstream, 0);
    assert.equal(gaps.length, 0);
  } finally {
    stop();
    c.close();
    engine.destroy();
    for (const g of [g1, g2]) if (g.child.exitCode === null && g.child.signalCode === null) await kill(g.child);
  }
});

test('processes: the stream is trimmed past the client\'s last id while it is away: exactly one gap, then what Redis kept', async () => {
  const stream = 'fo:trim';
  const [start] = await xadd(stream, ['start']);
  const [g1, g2] = await Promise.all([gatewayProcess(stream), gatewayProcess(stream)]);
  const engine = new StreamEngine();
  const gaps = gapEvents(engine);
  // The client tries gateway 1 until it is allowed to go on to gateway 2: "away" for as long as the test needs.
  let away = true;
  const c = connectGateway(() => (away ? g1.url : g2.url), { topics: [{ topic: 't', afterSeq: start }], WebSocket, engine, reconnect: fast });
  const got = [];
  let stop = () => {};
  try {
    await c.ready();
    stop = collect(c.readable('t'), got);
    await xadd(stream, range(1, 100));
    await until(() => got.length === 100, 'first 100 from gateway 1');
    await kill(g1.child);
    await until(() => c.state !== 'open', 'client notices');
    await xadd(stream, range(101, 200));
    // Retention: keep the 50 newest entries; m100 (the client's last) and m101..m150 are gone.
    await admin.sendCommand(['XTRIM', stream, 'MAXLEN', '50']);
    away = false;
    await until(() => c.state === 'open' && c.url === g2.url, 'failover to gateway 2', 15_000);
    await c.ready();
    await xadd(stream, range(201, 210)); // live again
    const expected = [...range(1, 100), ...range(151, 210)];
    await until(() => got.length >= expected.length, `${expected.length} delivered (got ${got.length})`);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got, expected);
    assert.equal(gaps.length, 1, 'exactly one gap event');
    assert.equal(gaps[0].topic, 't');
    assert.equal(gaps[0].connectionId, c.connection('t').id);
    const m = c.metrics().topics.t;
    assert.equal(m.gaps, 1);
    assert.equal(m.duplicates, 0);
  } finally {
    stop();
    c.close();
    engine.destroy();
    for (const g of [g1, g2]) if (g.child.exitCode === null && g.child.signalCode === null) await kill(g.child);
  }
});
