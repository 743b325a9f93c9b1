// The engine and its producers in a dedicated Web Worker, for the browser benchmark's and the
// demo page's worker modes. The page sends { setup }, gets { ready, ids }, then reads the
// connections, metrics and events through connectEngine() (see js/worker.js).
//
// setup: {
//   connections: [{ source, target, pattern, period }],   one producer per connection
//   rate,                 messages per second per producer
//   producer: 'route' | 'write' | 'batch'
//       route: engine.route(message) per message (a per-message producer: what a WebSocket
//              handler does with each frame it receives)
//       write: writer.write(message) per message, not awaited
//       batch: one array of the messages due per tick
//   handler: 'default' | 'adaptive' | 'none', dropPolicy, bufferSize, maxBatchSize, batchTimeout,
//   metricsInterval, thresholds, mix (priority mix: [[upper bound, class], ...])
// }
// Controls afterwards: { control: 'start' } (starts the producers), { control: 'rate', rate },
// { control: 'mix', mix } | { control: 'pause' | 'resume', id } |
// { control: 'stats' } (answers { stats: { offered, refused } }) | { control: 'stop' }.
import init, { StreamEngine, DefaultBackpressureHandler, AdaptiveBackpressureHandler, serveEngine } from '/dist/web.mjs';

const TICK_MS = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let engine = null;
let rate = 0;
let running = true;
let startProducers = null;
let currentSetup = null;
/** Messages produced, those engine.route() could not place (a full lossless buffer), and those a
 * saturated worker never got to produce. */
const stats = { offered: 0, refused: 0, skipped: 0 };

function valueOf(pattern, seq, t, period) {
  if (pattern === 'sequential') return seq;
  if (pattern === 'random') return Math.random() * 100;
  if (pattern === 'sine-wave') return 100 * Math.sin((2 * Math.PI * t) / period);
  return (100 * (Math.floor(t / period) % 4)) / 3;
}

function pick(mix) {
  if (!mix) return undefined;
  const r = Math.random();
  for (const [upper, cls] of mix) if (r < upper) return cls;
  return mix[mix.length - 1][1];
}

/** A producer paced against the clock: each tick produces the messages due since the last. */
async function produce(conn, def, setup) {
  const writer = setup.producer === 'route' ? null : conn.writable.getWriter();
  let seq = 0;
  let t0 = performance.now();
  let r = rate;
  while (running) {
    if (r !== rate) {
      // A new rate counts from now.
      r = rate;
      t0 = performance.now() - (seq * 1000) / r;
    }
    const t = performance.now() - t0;
    let due = Math.floor((t / 1000) * r) - seq;
    if (due > r) {
      // More than a second behind (a saturated worker): those messages are never produced.
      stats.skipped += due - r;
      seq += due - r;
      due = r;
    }
    // At most two ticks' worth per run: messages arrive spread out (like a socket's), and the
    // worker answers the page's reads between runs instead of after a long burst.
    due = Math.min(due, Math.ceil((r * TICK_MS * 2) / 1000));
    if (due > 0 && !conn.paused) {
      const batch = setup.producer === 'batch' ? new Array(due) : null;
      for (let i = 0; i < due; i++, seq++) {
        const ts = (seq * 1000) / r;
        const p = pick(setup.mix);
        const m = { id: `${def.source}-${seq}`, timestamp: Date.now(), sourceNodeId: def.source, targetNodeId: def.target, port: 'out', data: { value: valueOf(def.pattern, seq, ts, def.period ?? 2000), seq } };
        if (p !== undefined) m.metadata = { priority: p };
        stats.offered++;
        if (batch !== null) batch[i] = m;
        else if (writer === null) stats.refused += engine.route(m) === 0 ? 1 : 0;
        else writer.write(m).catch(() => {});
      }
      if (batch !== null) await writer.write(batch).catch(() => {});
    } else if (due > 0) {
      seq += due; // paused: the producer's messages are not produced (as with a paused source)
    }
    await sleep(TICK_MS);
  }
}

function handlerFor(name) {
  if (name === 'default') return new DefaultBackpressureHandler();
  if (name === 'adaptive') return new AdaptiveBackpressureHandler();
  return undefined;
}

addEventListener('message', async (e) => {
  const msg = e.data;
  if (msg?.setup) {
    const setup = msg.setup;
    currentSetup = setup;
    await init();
    engine = new StreamEngine({ metricsInterval: setup.metricsInterval ?? 1000 });
    if (setup.thresholds) engine.setThresholds(setup.thresholds);
    rate = setup.rate;
    const ids = [];
    for (const def of setup.connections) {
      const cfg = { bufferSize: setup.bufferSize ?? 2000, maxBatchSize: setup.maxBatchSize ?? 100, batchTimeout: setup.batchTimeout ?? 16 };
      const h = handlerFor(setup.handler);
      if (h) cfg.backpressureHandler = h;
      if (setup.dropPolicy) cfg.dropPolicy = setup.dropPolicy;
      const id = engine.createConnection(def.source, def.target, 'out', 'in', cfg);
      ids.push(id);
    }
    serveEngine(engine);
    // Producers start on { control: 'start' }: a saturated worker answers requests slowly, so
    // the page sets up its readers first.
    startProducers = () => setup.connections.forEach((def, i) => produce(engine.getConnection(ids[i]), def, setup));
    postMessage({ ready: true, ids });
  } else if (msg?.control === 'start') {
    startProducers?.();
    startProducers = null;
  } else if (msg?.control === 'mix') {
    if (currentSetup) currentSetup.mix = msg.mix;
  } else if (msg?.control === 'rate') {
    rate = msg.rate;
  } else if (msg?.control === 'pause') {
    engine?.getConnection(msg.id)?.pause();
  } else if (msg?.control === 'resume') {
    engine?.getConnection(msg.id)?.resume();
  } else if (msg?.control === 'stats') {
    postMessage({ stats: { ...stats } });
  } else if (msg?.control === 'stop') {
    running = false;
    engine?.destroy();
  }
});
