#!/usr/bin/env node
// A/B throughput of two builds in one Node process: another checkout's build (A, e.g. the main
// branch built into a temporary directory) against this package's build (B), interleaved in
// rounds with alternating order on the same messages, so that both see the same machine load.
//
//   node --expose-gc bench/ab.mjs <path of the other checkout> [rounds]
//
// Both checkouts must be built (`bash scripts/build.sh`). Prints median msg/s and new/base.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (!process.argv[2]) {
  console.error('usage: node --expose-gc bench/ab.mjs <path of the other checkout> [rounds]');
  process.exit(2);
}
const A = await import(pathToFileURL(resolve(process.argv[2], 'dist/node.mjs')).href);
const B = await import(new URL('../dist/node.mjs', import.meta.url).href);
const now = () => performance.now();
const N = 200_000;
const msgs = Array.from({ length: N }, (_, i) => ({ id: `m${i}`, timestamp: 0, sourceNodeId: 'src', targetNodeId: 'dst', port: 'out', data: i, metadata: { priority: i % 10 === 0 ? 'critical' : 'normal' } }));
const batches = [];
for (let i = 0; i < N; i += 50) batches.push(msgs.slice(i, i + 50));
async function produce(writer, input) {
  for (let i = 0; i < input.length; i++) {
    if (writer.desiredSize <= 0) await writer.ready;
    writer.write(input[i]);
  }
  await writer.ready;
}
async function run(lib, input, cfg) {
  const e = new lib.StreamEngine();
  const id = e.createConnection('src', 'dst', 'out', 'in', cfg);
  const c = e.getConnection(id);
  const reader = c.readable.getReader();
  const t0 = now();
  const drain = (async () => { let n = 0; for (;;) { const { value, done } = await reader.read(); if (done) break; n += value.length; } return n; })();
  await produce(c.writer, input);
  await c.writer.close();
  const got = await drain;
  const ms = now() - t0;
  e.destroy();
  if (got !== N) throw new Error(`lost ${N - got}`);
  return N / ms * 1000;
}
const cases = [
  ['per-message, batchTimeout 16', msgs, {}],
  ['per-message, batchTimeout 0', msgs, { batchTimeout: 0 }],
  ['batch of 50, batchTimeout 16', batches, {}],
  ['batch of 50, batchTimeout 0', batches, { batchTimeout: 0 }],
  ['batch of 50, conflate', batches, { conflate: true }],
];
const res = {};
const rounds = Number(process.argv[3] ?? 7);
for (let r = 0; r < rounds + 1; r++) {
  for (const [name, input, cfg] of cases) {
    const order = r % 2 ? [['base', A], ['new', B]] : [['new', B], ['base', A]];
    for (const [k, lib] of order) {
      globalThis.gc?.();
      const v = await run(lib, input, cfg);
      if (r > 0) ((res[name] ??= { base: [], new: [] })[k]).push(v);
    }
  }
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
for (const [name, r] of Object.entries(res)) {
  const b = med(r.base), n = med(r.new);
  console.log(`${name.padEnd(32)} base ${Math.round(b).toLocaleString().padStart(10)}  new ${Math.round(n).toLocaleString().padStart(10)}  new/base ${(n / b).toFixed(2)}`);
}
