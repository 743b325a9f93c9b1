// Randomised end-to-end accounting through the real streams: under every policy, every message
// written is delivered, reported to onDrop, or dead-lettered — exactly once — and the JS-side
// message store is empty once the connection has drained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamEngine, DefaultBackpressureHandler, AdaptiveBackpressureHandler } from '@nodeflow/stream-engine';

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

const PRIORITIES = ['critical', 'high', 'normal', 'low', 0, 0.1, 0.9, undefined];
const POLICIES = [
  { name: 'block', cfg: {} },
  { name: 'priority', cfg: { dropPolicy: 'priority', maxWaitTime: 1 } },
  { name: 'oldest', cfg: { dropPolicy: 'oldest', maxWaitTime: 1 } },
  { name: 'newest', cfg: { dropPolicy: 'newest', maxWaitTime: 1 } },
  { name: 'conflate', cfg: { dropPolicy: 'priority', conflate: true, maxWaitTime: 1 } },
  { name: 'default handler', cfg: { backpressureHandler: new DefaultBackpressureHandler({ maxWaitTime: 1 }) } },
  { name: 'adaptive handler', cfg: { backpressureHandler: new AdaptiveBackpressureHandler({ targetLatency: 20, maxWaitTime: 1 }) } },
];

for (const policy of POLICIES) {
  test(`accounting under random traffic: ${policy.name}`, async () => {
    for (const seed of [1, 2, 3]) {
      const rand = rng(seed * 7919 + policy.name.length);
      const e = new StreamEngine();
      const fates = new Map(); // message -> 'delivered' | 'dropped:<reason>' | 'dead'
      const mark = (m, fate) => {
        assert.ok(!fates.has(m), `${m.id} accounted twice (${fates.get(m)} and ${fate})`);
        fates.set(m, fate);
      };
      const id = e.createConnection('a', 'b', 'out', 'in', {
        bufferSize: 8 + Math.floor(rand() * 24),
        maxBatchSize: 1 + Math.floor(rand() * 10),
        batchTimeout: rand() < 0.5 ? 0 : 2,
        backpressureThreshold: 0.5 + rand() * 0.5,
        onDrop: (m, reason) => mark(m, `dropped:${reason}`),
        ...policy.cfg,
      });
      const c = e.getConnection(id);
      const reader = c.readable.getReader();
      const written = [];
      const pending = [];
      let readP = null;
      let n = 0;
      const mk = () => {
        const p = PRIORITIES[Math.floor(rand() * PRIORITIES.length)];
        const metadata = {};
        if (p !== undefined) metadata.priority = p;
        if (rand() < 0.5) metadata.key = `k${Math.floor(rand() * 4)}`;
        const m = { id: `s${seed}-${n++}`, timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: n, metadata };
        written.push(m);
        return m;
      };
      // A write refused for good (rejected at close) may leave its messages with the producer.
      const refused = new Set();
      const write = (chunk) => {
        pending.push(
          c.writer.write(chunk).catch(() => {
            for (const m of Array.isArray(chunk) ? chunk : [chunk]) refused.add(m);
          }),
        );
      };
      for (let step = 0; step < 300; step++) {
        const r = rand();
        if (r < 0.35) write(mk());
        else if (r < 0.5) write(Array.from({ length: 1 + Math.floor(rand() * 12) }, mk));
        else if (r < 0.55) {
          const m = mk();
          if (e.route(m) === 0) {
            written.pop(); // not taken: nobody owns it
          }
        } else if (r < 0.75) {
          // One outstanding read at a time; give it a few ms, then go on writing.
          if (readP === null) {
            readP = reader.read().then((g) => {
              readP = null;
              if (!g.done) for (const m of g.value) mark(m, 'delivered');
            });
          }
          await Promise.race([readP, new Promise((res) => setTimeout(res, 3))]);
        } else if (r < 0.8) c.pause();
        else if (r < 0.85) c.resume();
        else await new Promise((res) => setTimeout(res, 0));
      }
      c.resume();
      // Let every write settle while draining, then close and drain the rest.
      const draining = (async () => {
        if (readP !== null) await readP;
        for (;;) {
          const got = await reader.read();
          if (got.done) break;
          for (const m of got.value) mark(m, 'delivered');
        }
      })();
      await Promise.allSettled(pending);
      await e.closeConnection(id);
      await draining;
      await new Promise((res) => setTimeout(res, 0));
      for (const m of c.deadLetters()) mark(m, 'dead');
      // Every message written is accounted for exactly once.
      const missing = written.filter((m) => !fates.has(m) && !refused.has(m));
      assert.deepEqual(missing.map((m) => m.id), [], `${policy.name} seed ${seed}: unaccounted messages`);
      // Critical messages are never dropped by a policy (conflation replaces them by key).
      for (const [m, fate] of fates) {
        if (m.metadata.priority === 'critical' && fate.startsWith('dropped:')) {
          assert.equal(fate, 'dropped:conflated', `${m.id}: a critical message was dropped (${fate})`);
        }
      }
      // Nothing is left in the JS-side store.
      assert.equal(c._store.filter((x) => x !== undefined).length, 0, 'message store empty after drain');
      e.destroy();
    }
  });
}
