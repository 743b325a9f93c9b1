// Windowed aggregation and downsampling stages, against the built package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  StreamEngine,
  WindowAggregator,
  createWindowStage,
  createDownsampleStage,
  downsampleLTTB,
} from '@nodeflow/stream-engine';

const m = (id, t, v, key = 'cpu') => ({ id, timestamp: t, sourceNodeId: 's', targetNodeId: 't', port: 'o', data: v, metadata: { key } });

test('a connection piped through a window stage yields per-key window results with stable ids', async () => {
  const engine = new StreamEngine({ batchTimeout: 0 });
  const id = engine.createConnection('s', 't', 'o', 'i');
  const c = engine.getConnection(id);
  const stage = createWindowStage({ size: 1000 });
  const input = [];
  for (let i = 0; i < 40; i++) input.push(m(`m${i}`, i * 100, i, i % 2 ? 'odd' : 'even'));
  const writing = (async () => {
    await c.writer.write(input);
    await c.writer.close();
  })();
  const results = [];
  for await (const batch of c.readable.pipeThrough(stage)) results.push(...batch);
  await writing;
  assert.deepEqual(results.map((r) => r.id), [
    'win:even:0:1000', 'win:odd:0:1000', 'win:even:1000:2000', 'win:odd:1000:2000',
    'win:even:2000:3000', 'win:odd:2000:3000', 'win:even:3000:4000', 'win:odd:3000:4000',
  ]);
  const w = results[0].data; // even values 0, 2, 4, 6, 8
  assert.deepEqual([w.count, w.sum, w.min, w.max, w.mean, w.p50, w.p95], [5, 20, 0, 8, 4, 4, 8]);
  assert.equal(results.reduce((s, r) => s + r.data.count, 0), 40);
  engine.destroy();
});

test('every added message comes back exactly once: released after its windows, or late, or invalid', () => {
  const drops = [];
  const a = new WindowAggregator({ size: 100, slide: 50, allowedLateness: 20, onDrop: (msg, reason) => drops.push(`${msg.id}:${reason}`) });
  const back = new Map();
  const note = (out) => {
    for (const x of out.released) back.set(x.id, (back.get(x.id) ?? '') + 'R');
    for (const x of out.late) back.set(x.id, (back.get(x.id) ?? '') + 'L');
    for (const x of out.invalid) back.set(x.id, (back.get(x.id) ?? '') + 'I');
  };
  const sent = [];
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    const t = i * 3 - Math.floor(rnd() * 200);
    const msg = i % 97 === 0 ? m(`m${i}`, t, 'not a number') : m(`m${i}`, t, rnd() * 10, `k${i % 5}`);
    sent.push(msg.id);
    note(i % 10 === 0 ? a.add(msg) : a.add([msg]));
  }
  note(a.flush());
  assert.equal(back.size, sent.length);
  for (const id of sent) assert.match(back.get(id), /^[RLI]$/, id);
  const s = a.stats;
  const late = [...back.values()].filter((v) => v === 'L').length;
  assert.ok(late > 0, 'the random stream has late events');
  assert.equal(s.late, late);
  assert.equal(drops.filter((d) => d.endsWith(':late')).length, late);
  assert.equal(s.invalid, Math.ceil(2000 / 97));
  assert.equal(s.held, 0);
});

test('window options are validated with errors naming the field', () => {
  assert.throws(() => new WindowAggregator({ size: '1s' }), { name: 'TypeError', message: /^size/ });
  assert.throws(() => new WindowAggregator({}), { name: 'TypeError', message: /^size/ });
  assert.throws(() => new WindowAggregator({ size: -1 }), { name: 'RangeError', message: /^size/ });
  assert.throws(() => new WindowAggregator({ size: 10, slide: 0 }), { name: 'RangeError', message: /^slide/ });
  assert.throws(() => new WindowAggregator({ size: 10, allowedLateness: NaN }), { name: 'RangeError', message: /^allowedLateness/ });
  assert.throws(() => new WindowAggregator({ size: 10, key: 'k' }), { name: 'TypeError', message: /^key/ });
  assert.throws(() => new WindowAggregator(null), { name: 'TypeError' });
  assert.throws(() => createWindowStage({ size: 10, idleTimeout: 0 }), { name: 'RangeError', message: /^idleTimeout/ });
  assert.throws(() => createDownsampleStage({}), { name: 'TypeError', message: /^bucketMs/ });
  assert.throws(() => createDownsampleStage({ bucketMs: 0 }), { name: 'RangeError', message: /^bucketMs/ });
  // still usable afterwards
  assert.equal(new WindowAggregator({ size: 10 }).add(m('a', 1, 1)).late.length, 0);
});

test('the downsample stage keeps min and max per bucket and counts every point once', async () => {
  const stage = createDownsampleStage({ bucketMs: 100 });
  const w = stage.writable.getWriter();
  const pts = [];
  for (let i = 0; i < 1000; i++) pts.push(m(`p${i}`, i, i === 437 ? 1000 : i % 10));
  w.write(pts.slice(0, 500));
  w.write(pts.slice(500));
  w.close();
  const buckets = [];
  for await (const b of stage.readable) buckets.push(...b);
  assert.equal(buckets.length, 10);
  assert.equal(buckets.reduce((s, b) => s + b.data.count, 0), 1000);
  const spike = buckets.find((b) => b.data.start === 400).data;
  assert.deepEqual([spike.max, spike.maxTime, spike.min, spike.minTime], [1000, 437, 0, 400]);
  assert.deepEqual(stage.stats, { taken: 1000, late: 0, invalid: 0 });
});

test('LTTB returns the requested number of items, keeping the ends and a spike', () => {
  const items = [];
  for (let i = 0; i < 5000; i++) items.push(m(`p${i}`, i, i === 3001 ? -50 : Math.sin(i / 100)));
  const out = downsampleLTTB(items, 200);
  assert.equal(out.length, 200);
  assert.equal(out[0], items[0]);
  assert.equal(out[199], items[4999]);
  assert.ok(out.includes(items[3001]));
  assert.throws(() => downsampleLTTB(items, -1), { name: 'RangeError', message: /^threshold/ });
  assert.throws(() => downsampleLTTB('x', 5), { name: 'TypeError', message: /^items/ });
});

test('junk input is refused as invalid, never a crash; lineage lists the inputs of each result', () => {
  const a = new WindowAggregator({ size: 100, lineage: true });
  const out = a.add([null, 5, 'x', {}, { timestamp: 'soon', data: 1 }, { timestamp: 1, data: { value: 'NaN' } }]);
  assert.equal(out.invalid.length, 6);
  assert.equal(a.stats.invalid, 6);
  a.add([m('a', 10, 1), m('b', 20, 2, 'other'), m('c', 30, 3)]);
  assert.deepEqual(a.heldMessages().map((x) => x.id), ['a', 'b', 'c']);
  const { results, released } = a.flush();
  assert.deepEqual(a.heldMessages(), []);
  assert.deepEqual(results.map((r) => [r.id, r.data.inputs]), [['win:cpu:0:100', ['a', 'c']], ['win:other:0:100', ['b']]]);
  assert.deepEqual(released.map((x) => x.id).sort(), ['a', 'b', 'c']);
  assert.throws(() => a.advance('later'), { name: 'TypeError', message: /^time/ });
});
