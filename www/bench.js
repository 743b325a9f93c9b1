// Browser benchmark: N connections at R msg/s each into N chart widgets for D seconds, measuring
// the frame rate (requestAnimationFrame), long tasks (PerformanceObserver 'longtask') and what the
// engine delivered. Query parameters (all optional):
//   duration=10      seconds measured (after a 1 s warm-up)
//   connections=10   connections and widgets
//   rate=10000       messages per second per connection
//   mode=stream      stream: createDataSource → batcher → connection.writable (what the demo does)
//                    pipe:   createDataSource().pipeTo(connection.writable), single messages
//                    batch:  arrays of messages written to connection.writable on a 4 ms timer
//                    sourcebatch: createDataSource({ batch: true }).pipeTo(connection.writable)
//                    worker: the engine and per-message producers (engine.route per message) in a
//                            Web Worker; widgets read remote.readable(id, { frames: true })
//                    worker-post: the same, forcing one postMessage per batch (Safari's path)
//   producer=route   worker modes: route | write | batch (see www/engine-worker.js)
//   workerBuffer=250 worker modes: bufferSize of each connection (bounds the page's work per frame)
//   handler=default  default | adaptive | none
// The result is shown on the page and stored in `window.benchResult`.
import init, { StreamEngine, DefaultBackpressureHandler, AdaptiveBackpressureHandler, createDataSource, subscribeWidget, connectEngine, version } from '/dist/web.mjs';
import { TimeChart, newSince, formatNumber } from '/www/chart.js';
import { pipeSource } from '/www/pipeline.js';

const q = new URLSearchParams(location.search);
const num = (name, dflt) => {
  const v = q.get(name);
  const n = v === null ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return n;
};
const config = {
  duration: num('duration', 10),
  warmup: Number(q.get('warmup') ?? 1),
  connections: Math.round(num('connections', 10)),
  rate: num('rate', 10000),
  mode: q.get('mode') ?? 'stream',
  handler: q.get('handler') ?? 'default',
  producer: q.get('producer') ?? 'route',
  // Worker modes: a frame-aligned chunk is at most what the connection holds, so the buffer
  // size bounds the page's work per frame (structured-clone reads of the messages).
  workerBuffer: num('workerBuffer', 250),
};
if (!['stream', 'pipe', 'batch', 'sourcebatch', 'worker', 'worker-post'].includes(config.mode)) throw new TypeError(`mode must be stream, pipe, batch, sourcebatch, worker or worker-post, got ${config.mode}`);
const inWorker = config.mode.startsWith('worker');

const COLORS = ['#5aa2ff', '#b48cff', '#2fd4a7', '#f7b84b', '#ff7a90', '#7dd3fc', '#c4b5fd', '#86efac', '#fcd34d', '#fda4af'];
const PATTERNS = ['sequential', 'random', 'sine-wave', 'step'];
const $ = (s) => document.querySelector(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function handler() {
  if (config.handler === 'default') return new DefaultBackpressureHandler();
  if (config.handler === 'adaptive') return new AdaptiveBackpressureHandler();
  return undefined;
}

/** Arrays of messages on a timer, paced against the clock: no per-message stream work. */
function batchWriter(conn, pattern, rate, sourceNodeId) {
  let stopped = false;
  let seq = 0;
  const t0 = performance.now();
  const writer = conn.writable.getWriter();
  (async () => {
    while (!stopped) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) - seq;
      if (due > 0) {
        const n = Math.min(due, rate); // at most one second behind
        seq += due - n;
        const batch = new Array(n);
        for (let i = 0; i < n; i++, seq++) {
          const t = (seq * 1000) / rate;
          const value = pattern === 'sequential' ? seq : pattern === 'random' ? Math.random() * 100 : pattern === 'sine-wave' ? 100 * Math.sin((2 * Math.PI * t) / 2000) : 25 * (Math.floor(t / 1000) % 4);
          batch[i] = { id: `${sourceNodeId}-${seq}`, timestamp: Date.now(), sourceNodeId, targetNodeId: 'chart', port: 'out', data: { value, seq } };
        }
        try {
          await writer.write(batch);
        } catch {
          return;
        }
      }
      await sleep(4);
    }
  })();
  return () => {
    stopped = true;
  };
}

async function main() {
  $('#bench-config').textContent = `${config.connections} connections × ${formatNumber(config.rate)} msg/s → ${config.connections} chart widgets · ${config.duration} s · mode ${config.mode} · handler ${config.handler} · engine v${version}`;
  await init();
  const grid = $('#grid');
  const widgets = [];
  let engine = null;
  let remote = null;
  let worker = null;
  if (inWorker) {
    // The engine and the producers run in the worker; this thread only draws.
    worker = new Worker('/www/engine-worker.js', { type: 'module' });
    const ready = new Promise((resolve, reject) => {
      worker.addEventListener('message', (e) => e.data?.ready && resolve(e.data.ids));
      worker.addEventListener('error', (e) => reject(new Error(`worker: ${e.message}`)));
    });
    const defs = Array.from({ length: config.connections }, (_, i) => ({ source: `src-${i}`, target: `chart-${i}`, pattern: PATTERNS[i % PATTERNS.length], period: 2000 }));
    worker.postMessage({ setup: { connections: defs, rate: config.rate, producer: config.producer, handler: config.handler, bufferSize: config.workerBuffer, maxBatchSize: 100, batchTimeout: 16, metricsInterval: 1000 } });
    await ready;
    remote = await connectEngine(worker, { transfer: config.mode === 'worker-post' ? 'post' : 'auto' });
    config.transferMode = remote.transferMode;
  } else {
    engine = new StreamEngine({ metricsInterval: 1000 });
  }
  const metricsNow = () => (remote ? remote.getMetrics() : engine.getMetrics());
  const workerStats = () =>
    new Promise((resolve) => {
      const on = (e) => {
        if (e.data?.stats) {
          worker.removeEventListener('message', on);
          resolve(e.data.stats);
        }
      };
      worker.addEventListener('message', on);
      worker.postMessage({ control: 'stats' });
    });
  for (let i = 0; i < config.connections; i++) {
    const pattern = PATTERNS[i % PATTERNS.length];
    const color = COLORS[i % COLORS.length];
    const card = document.createElement('article');
    card.className = 'card stream';
    card.style.setProperty('--c', color);
    card.innerHTML = `<header class="card-head"><span class="swatch"></span><h2>#${i + 1} ${pattern}</h2><span class="value">—</span></header><div class="chart-box"><canvas class="chart"></canvas></div>`;
    grid.append(card);
    const source = `src-${i}`;
    const id = inWorker ? `${source}:out->chart-${i}:in` : engine.createConnection(source, `chart-${i}`, 'out', 'in', { bufferSize: 2000, maxBatchSize: 100, batchTimeout: 16, backpressureHandler: handler() });
    const conn = inWorker ? null : engine.getConnection(id);
    const readable = inWorker ? await remote.readable(id, { frames: true }) : conn.readable;
    const w = { id, conn, chart: new TimeChart(card.querySelector('canvas'), { color, windowMs: 5000 }), valueEl: card.querySelector('.value'), seen: { prev: null }, updates: 0, stop: null, unsubscribe: null };
    w.unsubscribe = subscribeWidget(readable, inWorker ? { bufferSize: 1000, updateInterval: 0 } : { bufferSize: 1000, updateInterval: 0, engine, connectionId: id }, (u) => {
      const now = performance.now();
      w.updates++;
      const d = newSince(w.seen, u.data);
      if (d) {
        w.chart.push(now, d.min, d.max, d.last);
        w.valueEl.textContent = Number.isInteger(d.last) ? formatNumber(d.last) : d.last.toFixed(1);
      }
      w.chart.draw(now);
    });
    if (inWorker) {
      // The producers already run in the worker.
    } else if (config.mode === 'batch') {
      w.stop = batchWriter(conn, pattern, config.rate, source);
    } else {
      const src = createDataSource(pattern, { rate: config.rate, sourceNodeId: source, targetNodeId: `chart-${i}`, period: 2000, batch: config.mode === 'sourcebatch' });
      if (config.mode === 'stream') {
        const pipe = pipeSource(src, conn.writable);
        pipe.done.catch(() => {});
        w.stop = pipe.abort;
      } else {
        const ac = new AbortController();
        src.pipeTo(conn.writable, { signal: ac.signal, preventAbort: true, preventClose: true }).catch(() => {});
        w.stop = () => ac.abort();
      }
    }
    widgets.push(w);
  }
  if (inWorker) worker.postMessage({ control: 'start' });
  $('#status').dataset.state = 'running';
  $('#status').textContent = 'Warming up…';
  globalThis.benchReady = true;
  await sleep(config.warmup * 1000);

  // ---- measure --------------------------------------------------------------------------------
  $('#status').textContent = 'Measuring…';
  const longTasks = [];
  const po = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push(e.duration);
  });
  po.observe({ type: 'longtask' });
  const start = await metricsNow();
  const stats0 = inWorker ? await workerStats() : null;
  const updates0 = widgets.map((w) => w.updates);
  const frames = [];
  const t0 = performance.now();
  const end = t0 + config.duration * 1000;
  await new Promise((resolve) => {
    const frame = (t) => {
      frames.push(t);
      if (t >= end) resolve();
      else requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  const t1 = performance.now();
  // Long tasks are reported after they end: give the observer a moment.
  await sleep(100);
  po.disconnect();
  const stop = await metricsNow();
  const stats1 = inWorker ? await workerStats() : null;
  for (const w of widgets) {
    w.stop?.();
    w.unsubscribe();
  }
  const elapsed = (t1 - t0) / 1000;
  const intervals = [];
  for (let i = 1; i < frames.length; i++) intervals.push(frames[i] - frames[i - 1]);
  intervals.sort((a, b) => a - b);
  const pick = (p) => (intervals.length ? intervals[Math.min(intervals.length - 1, Math.floor(p * intervals.length))] : NaN);
  const conns = Object.values(stop.connections);
  const result = {
    config,
    userAgent: navigator.userAgent,
    engineVersion: version,
    elapsedSeconds: elapsed,
    frames: frames.length,
    fps: (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000),
    frameIntervalMs: { p50: pick(0.5), p95: pick(0.95), p99: pick(0.99), max: intervals.at(-1) ?? NaN },
    longTasks: { count: longTasks.length, over50ms: longTasks.filter((d) => d > 50).length, longestMs: longTasks.length ? Math.max(...longTasks) : 0, totalMs: longTasks.reduce((a, b) => a + b, 0) },
    messages: {
      offeredPerSecond: config.connections * config.rate,
      acceptedPerSecond: (stop.totals.messagesIn - start.totals.messagesIn) / elapsed,
      deliveredPerSecond: (stop.totals.messagesOut - start.totals.messagesOut) / elapsed,
      dropped: stop.totals.dropped - start.totals.dropped,
      p95LatencyMs: conns.reduce((a, c) => a + c.p95Latency, 0) / Math.max(1, conns.length),
    },
    widgetUpdatesPerSecond: widgets.reduce((a, w, i) => a + (w.updates - updates0[i]), 0) / widgets.length / elapsed,
  };
  if (inWorker) {
    // What the producers really offered (route() refusals are counted there: a full lossless buffer).
    result.messages.producedPerSecond = (stats1.offered - stats0.offered) / elapsed;
    result.messages.refusedByRoute = stats1.refused - stats0.refused;
    result.messages.skippedByProducers = stats1.skipped - stats0.skipped;
    result.messages.deliveredOrDroppedShare = (stop.totals.messagesOut - start.totals.messagesOut + result.messages.dropped) / Math.max(1, stats1.offered - stats0.offered);
    worker.postMessage({ control: 'stop' });
    remote.close();
    worker.terminate();
  } else engine.destroy();
  globalThis.benchResult = result;
  renderSummary(result);
  $('#status').textContent = 'Done';
}

function renderSummary(r) {
  const rows = [
    ['frame rate', `${r.fps.toFixed(1)} fps (target ≥ 55)`],
    ['frame interval p50 / p95 / max', `${r.frameIntervalMs.p50.toFixed(1)} / ${r.frameIntervalMs.p95.toFixed(1)} / ${r.frameIntervalMs.max.toFixed(1)} ms`],
    ['long tasks (> 50 ms)', `${r.longTasks.over50ms} (target 0), longest ${r.longTasks.longestMs.toFixed(0)} ms, total ${r.longTasks.totalMs.toFixed(0)} ms`],
    ['offered', `${formatNumber(r.messages.offeredPerSecond)} msg/s`],
    ['accepted by the engine', `${formatNumber(Math.round(r.messages.acceptedPerSecond))} msg/s`],
    ['delivered to widgets', `${formatNumber(Math.round(r.messages.deliveredPerSecond))} msg/s`],
    ['dropped', `${formatNumber(r.messages.dropped)} msgs`],
    ['engine p95 latency (mean over connections)', `${r.messages.p95LatencyMs.toFixed(1)} ms`],
    ['widget updates', `${r.widgetUpdatesPerSecond.toFixed(1)} per second per widget`],
  ];
  const body = $('#summary');
  body.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      const b = document.createElement('td');
      a.textContent = k;
      b.textContent = v;
      tr.append(a, b);
      return tr;
    }),
  );
}

main().catch((e) => {
  console.error(e);
  globalThis.benchError = String(e?.stack ?? e);
  $('#status').dataset.state = 'error';
  $('#status').textContent = `Failed: ${e?.message ?? e}`;
});
