// Wasm memory per engine connection, with traffic: `node bench/conn-memory.mjs [count] [adaptive]`.
// Creates `count` connections (default 1,000; with `adaptive`, under the adaptive handler), sends
// twelve rounds of one message to each with waits of 1 to 133 ms between write and read (so the
// latencies fall in several octaves and every slot of the 1 s metrics window records some), takes
// every connection's metrics, and prints the growth of the WebAssembly memory per connection.
// The memory only grows (wasm pages are never given back), so the figure is an upper bound.
import { StreamEngine, AdaptiveBackpressureHandler } from '@nodeflow/stream-engine';

const N = Number(process.argv[2] ?? 1000);
const adaptive = process.argv[3] === 'adaptive';
const engine = new StreamEngine({ batchTimeout: 0, metricsWindow: 1000 });
if (adaptive) engine.setBackpressureHandler(new AdaptiveBackpressureHandler({ targetLatency: 100 }));
const mem = () => engine.getMetrics().system.wasmMemoryBytes;
const m0 = mem();
const conns = [];
for (let i = 0; i < N; i++) {
  const id = engine.createConnection(`s${i}`, 't', 'out', 'in');
  const c = engine.getConnection(id);
  conns.push({ id, w: c.writable.getWriter(), r: c.readable.getReader() });
}
const m1 = mem();
let k = 0;
for (let round = 0; round < 12; round++) {
  for (const { w } of conns) w.write({ id: `m${k++}`, timestamp: Date.now(), sourceNodeId: 's', targetNodeId: 't', port: 'out', data: null });
  await new Promise((res) => setTimeout(res, 1 + round * 12));
  for (const { r } of conns) await r.read();
}
for (const { id } of conns) engine.getMetrics(id);
const m2 = mem();
console.log(`${N} connections${adaptive ? ' (adaptive handler)' : ''}: wasm memory per connection ${((m1 - m0) / N / 1000).toFixed(1)} KB when created, ${((m2 - m0) / N / 1000).toFixed(1)} KB after traffic`);
engine.destroy();
