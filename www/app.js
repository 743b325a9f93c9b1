// The demo page: four generated sources flow through the engine into live widgets, with a metrics
// panel, alerts and an event log. Loaded as a native ES module, no bundler.
import init, {
  StreamEngine,
  DefaultBackpressureHandler,
  AdaptiveBackpressureHandler,
  StreamDebugger,
  createDataSource,
  subscribeWidget,
  version,
} from '/dist/web.mjs';
import { TimeChart, newSince, formatNumber } from '/www/chart.js';
import { loadRustProducer } from '/www/rust-producer.js';
import { gatewaySource, setupGateway } from '/www/gateway.js';
import { WORKER_MODE, settingsFromUrl, reloadWith, startWorkerEngine } from '/www/worker-mode.js';

// ---- settings ---------------------------------------------------------------------------------

const METRICS_INTERVAL = 500; // ms between metrics snapshots (and alert evaluations)
const BUFFER_SIZE = 2000; // messages a connection holds
const MAX_BATCH = 100; // messages per delivered batch
const SLOW_DELAY_MS = 40; // what the "slow widget" adds per batch
const SLOW_STREAM = 'sequential';
const LOG_LIMIT = 200;
const ALERT_LIMIT = 60;

const STREAMS = [
  { key: 'sequential', pattern: 'sequential', title: 'Sequential', source: 'seq-source', target: 'seq-chart', color: '#5aa2ff', caption: 'seq no.', period: 1000 },
  { key: 'random', pattern: 'random', title: 'Random', source: 'random-source', target: 'random-chart', color: '#b48cff', caption: 'value', period: 1000 },
  { key: 'sine-wave', pattern: 'sine-wave', title: 'Sine wave', source: 'sine-source', target: 'sine-chart', color: '#2fd4a7', caption: 'value', period: 4000 },
  { key: 'step', pattern: 'step', title: 'Step', source: 'step-source', target: 'step-chart', color: '#f7b84b', caption: 'value', period: 1500 },
];

/** Cumulative priority distributions: [upper bound of the random draw, class]. */
const MIXES = {
  normal: [[1, 'normal']],
  balanced: [[0.05, 'critical'], [0.25, 'high'], [0.75, 'normal'], [1, 'low']],
  'low-heavy': [[0.02, 'critical'], [0.1, 'high'], [0.4, 'normal'], [1, 'low']],
  'critical-heavy': [[0.4, 'critical'], [0.7, 'high'], [0.9, 'normal'], [1, 'low']],
};

const MIX_HINTS = {
  normal: 'every message normal (0.5)',
  balanced: 'critical 5% · high 20% · normal 50% · low 25%',
  'low-heavy': 'critical 2% · high 8% · normal 30% · low 60%',
  'critical-heavy': 'critical 40% · high 30% · normal 20% · low 10%',
};
const HANDLER_HINTS = {
  none: 'lossless: a full buffer blocks the sources',
  default: 'drops lowest priority at 90% buffer',
  adaptive: 'sheds low priorities to keep p95 ≤ 100 ms',
};

const settings = { rate: 1000, mix: 'balanced', handler: 'default', dropPolicy: '', slow: false, producer: 'js' };
settingsFromUrl(settings); // worker mode restarts the worker through a reload carrying them
// The Rust wasm producer's module, once the Producer control first selects it.
let rustProducer = null;
const PRODUCER_HINTS = { js: 'createDataSource in JS', rust: 'examples/rust-producer: Rust API → ReadableStream' };

const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clock = (ts) => new Date(ts).toLocaleTimeString('en-GB', { hour12: false });
const pct = (x) => `${Math.round(x * 100)}%`;
const ms = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '—');

let mix = MIXES[settings.mix] ?? MIXES.balanced;
function pickPriority() {
  const r = Math.random();
  for (let i = 0; i < mix.length; i++) if (r < mix[i][0]) return mix[i][1];
  return 'normal';
}

// ---- engine -----------------------------------------------------------------------------------

let engine;
let debuggerRec;
let workerEngine = null; // worker mode: see www/worker-mode.js
const byKey = new Map(); // stream key -> runtime state
const byConnection = new Map(); // connection id -> runtime state
const closedWaiters = new Map(); // connection id -> [resolve]

function connectionConfig() {
  const cfg = { bufferSize: BUFFER_SIZE, maxBatchSize: MAX_BATCH, batchTimeout: 16, backpressureThreshold: 0.8 };
  if (settings.handler === 'default') cfg.backpressureHandler = new DefaultBackpressureHandler();
  else if (settings.handler === 'adaptive') cfg.backpressureHandler = new AdaptiveBackpressureHandler({ targetLatency: 100 });
  if (settings.dropPolicy) cfg.dropPolicy = settings.dropPolicy;
  return cfg;
}

function waitForClosed(id) {
  return new Promise((resolve) => {
    const list = closedWaiters.get(id) ?? [];
    list.push(resolve);
    closedWaiters.set(id, list);
  });
}

/** The connection's readable, read through a wrapper that counts and (optionally) dawdles. */
function consumerStream(s) {
  const reader = s.conn.readable.getReader();
  return new ReadableStream(
    {
      async pull(controller) {
        if (settings.slow && s.key === SLOW_STREAM) await sleep(SLOW_DELAY_MS);
        const { value, done } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        s.received += value.length;
        controller.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Creates the connection, its source pipe and its widget. */
async function openStream(s) {
  if (workerEngine) return openWorkerStream(s);
  for (let attempt = 0; ; attempt++) {
    try {
      s.id = engine.createConnection(s.source, s.target, 'out', 'in', connectionConfig());
      break;
    } catch (e) {
      // The previous connection with this id may still be finishing: give it a moment.
      if (attempt >= 30 || !/already exists/.test(String(e?.message))) throw e;
      await sleep(100);
    }
  }
  s.conn = engine.getConnection(s.id);
  byConnection.set(s.id, s);
  s.gen++;
  s.seen = { prev: null };
  s.bp = false;
  if (s.paused) s.conn.pause();
  s.el.route.textContent = s.id;
  s.el.route.title = s.id;
  s.row.id.textContent = s.id;
  startPipe(s);
  const gen = s.gen;
  s.unsubscribe = subscribeWidget(
    consumerStream(s),
    { bufferSize: BUFFER_SIZE, updateInterval: 0, engine, connectionId: s.id },
    (update) => {
      if (gen === s.gen) render(s, update);
    },
  );
}

/** Worker mode: the worker's engine runs the source; this page reads the connection per frame. */
async function openWorkerStream(s) {
  s.id = `${s.source}:out->${s.target}:in`;
  s.conn = await workerEngine.connection(s.id);
  byConnection.set(s.id, s);
  s.gen++;
  if (s.paused) s.conn.pause();
  s.el.route.textContent = s.id;
  s.el.route.title = s.id;
  s.row.id.textContent = s.id;
  const gen = s.gen;
  s.unsubscribe = subscribeWidget(consumerStream(s), { bufferSize: BUFFER_SIZE, updateInterval: 0 }, (update) => {
    if (gen === s.gen) render(s, update);
  });
}

function startPipe(s) {
  const conn = s.conn;
  // Gateway mode (www/gateway.js): the batches come from the local gateway instead. The Rust
  // producer (examples/rust-producer) takes the same options and yields the same arrays.
  const make = settings.producer === 'rust' && rustProducer !== null ? rustProducer.createRustSource : createDataSource;
  const source = gatewaySource(s.key) ?? make(s.pattern, {
    rate: settings.rate,
    sourceNodeId: s.source,
    targetNodeId: s.target,
    port: 'out',
    priority: pickPriority,
    amplitude: 100,
    period: s.period,
    // One array per tick: the engine's batch-write fast path (and the source yields to
    // rendering on its own when it falls behind).
    batch: true,
  });
  const pipe = new AbortController();
  s.pipeAbort = pipe;
  s.pipeDone = source.pipeTo(conn.writable, { signal: pipe.signal, preventClose: true, preventAbort: true }).catch((e) => {
    if (pipe.signal.aborted || conn !== s.conn || s.closing) return;
    logLocal('error', s, `source pipe stopped: ${e?.message ?? e}`);
  });
}

/** A new rate needs a new source: stop the pipe, then start another once the old one let go. */
function restartPipe(s) {
  if (workerEngine) return workerEngine.setRate(settings.rate);
  const conn = s.conn;
  const prev = s.pipeDone;
  const gen = ++s.restartGen;
  s.pipeAbort?.abort();
  prev.then(() => {
    if (gen === s.restartGen && s.conn === conn && !s.closing) startPipe(s);
  });
}

/** Handler and drop policy are per connection: close and create it again. */
async function recreate(s) {
  if (workerEngine) return reloadWith(settings, true); // a new worker with the new settings
  const oldId = s.id;
  s.closing = true;
  s.restartGen++;
  s.pipeAbort?.abort();
  const closed = waitForClosed(oldId);
  try {
    await engine.closeConnection(oldId); // refuses writes; the readable ends after what is buffered
  } catch {
    // already gone
  }
  // Cancelling the reader ends it now (what was still buffered is dead-lettered) and frees the id.
  s.unsubscribe?.();
  s.unsubscribe = null;
  await Promise.race([closed, sleep(3000)]);
  await Promise.race([s.pipeDone, sleep(1000)]);
  byConnection.delete(oldId);
  s.closing = false;
  await openStream(s);
}

let queue = Promise.resolve();
function enqueue(task) {
  queue = queue.then(task).catch((e) => {
    console.error(e);
    setStatus('error', String(e?.message ?? e));
  });
  return queue;
}

// ---- rendering --------------------------------------------------------------------------------

function render(s, update) {
  const now = performance.now();
  const d = newSince(s.seen, update.data);
  // Which producer made what the widget shows (the Rust one marks its messages).
  const lastMsg = update.data[update.data.length - 1];
  if (lastMsg !== undefined) s.el.card.dataset.producer = lastMsg.data?.producer ?? 'js';
  if (d) {
    s.chart.push(now, d.min, d.max, d.last);
    s.last = d.last;
  }
  s.chart.draw(now);
  s.lastDraw = now;
  const perFrame = s.received - s.receivedAtRender;
  s.receivedAtRender = s.received;
  const el = s.el;
  el.value.textContent = formatValue(s.last);
  const range = s.chart.yMax - s.chart.yMin;
  const g = range > 0 ? Math.min(1, Math.max(0, (s.last - s.chart.yMin) / range)) : 0;
  el.gauge.style.transform = `scaleX(${g.toFixed(3)})`;
  el.gaugeBox.setAttribute('aria-valuenow', String(Math.round(g * 100)));
  el.count.textContent = formatNumber(s.received);
  el.count.dataset.count = String(s.received);
  el.perFrame.textContent = formatNumber(perFrame);
  // The widget passes the engine's figures for its connection along (engine + connectionId).
  el.rate.textContent = formatNumber(update.metrics?.messagesPerSecond);
  el.canvas.dataset.frames = String(s.chart.frames);
  el.canvas.dataset.last = String(s.last);
  el.card.dataset.connected = String(update.isConnected !== false);
  renderFlow(s, now);
}

function formatValue(v) {
  if (!Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 1000 || Number.isInteger(v)) return formatNumber(v);
  return v.toFixed(1);
}

function flowState(s, now) {
  if (s.paused) return 'paused';
  return s.bp || now < s.bpHoldUntil ? 'on' : 'off';
}

function renderFlow(s, now = performance.now()) {
  const state = flowState(s, now);
  if (state === s.flowShown) return;
  s.flowShown = state;
  const text = state === 'paused' ? 'paused' : state === 'on' ? 'backpressure' : 'flowing';
  for (const el of [s.el.bp, s.row.bp]) {
    el.dataset.state = state;
    el.textContent = text;
  }
}

// Badges also change without widget updates (paused, or a blocked consumer): one check per frame.
// A chart whose widget has had nothing new for a while keeps scrolling, a few times a second, so
// that a pause or a stall shows as a growing gap.
function flowLoop() {
  const now = performance.now();
  for (const s of byKey.values()) {
    renderFlow(s, now);
    if (now - s.lastDraw > 250) {
      s.chart.draw(now);
      s.lastDraw = now;
    }
  }
  requestAnimationFrame(flowLoop);
}

function renderMetrics(ev) {
  const m = ev.metrics;
  const t = m.totals;
  $('#total-rate').textContent = formatNumber(t.messagesPerSecond);
  $('#total-out').textContent = formatNumber(t.messagesOut);
  $('#total-dropped').textContent = formatNumber(t.dropped);
  $('#total-buffered').textContent = formatNumber(t.bufferSize);
  $('#total-memory').textContent = (m.system.wasmMemoryBytes / 1048576).toFixed(1);
  $('#total-lag').textContent = m.system.eventLoopLag.toFixed(0);
  $('#metrics-updated').textContent = `updated ${clock(m.lastUpdated)}`;
  if (debuggerRec) $('#debug-count').textContent = formatNumber(debuggerRec.getEventHistory().length);
  const now = performance.now();
  for (const s of byKey.values()) {
    const c = m.connections[s.id];
    if (!c) continue;
    const r = s.row;
    r.rate.textContent = formatNumber(c.messagesPerSecond);
    if (s.paused) s.el.rate.textContent = formatNumber(c.messagesPerSecond); // no widget updates then
    r.rate.dataset.value = String(c.messagesPerSecond);
    r.delivered.dataset.value = String(c.messagesOut);
    r.delivered.textContent = `${formatNumber(c.messagesOut)} delivered`;
    r.p50.textContent = ms(c.p50Latency);
    r.p95.textContent = ms(c.p95Latency);
    r.p99.textContent = ms(c.p99Latency);
    const u = c.bufferUtilization;
    r.bufferFill.style.transform = `scaleX(${Math.min(1, u).toFixed(3)})`;
    r.bufferBar.dataset.level = u >= 0.9 ? 'critical' : u >= 0.7 ? 'warning' : 'ok';
    r.bufferBar.dataset.value = String(u);
    r.bufferText.textContent = `${formatNumber(c.bufferSize)} / ${formatNumber(c.bufferCapacity)} · ${pct(u)}`;
    const dp = c.dropsByPriority;
    for (const p of ['critical', 'high', 'normal', 'low']) {
      r.drops[p].textContent = formatNumber(dp[p]);
      r.drops[p].classList.toggle('nonzero', dp[p] > 0);
    }
    r.dropsCell.dataset.total = String(c.dropped);
    r.dropsCell.title = `Dropped ${c.dropped} in total: priority ${c.drops.priority}, oldest ${c.drops.oldest}, newest ${c.drops.newest}, conflated ${c.drops.conflated}, dead-letter ${c.drops['dead-letter']}`;
    if (c.backpressure) s.bpHoldUntil = Math.max(s.bpHoldUntil, now + 600);
    s.bp = c.backpressure;
    renderFlow(s, now);
  }
}

// ---- alerts -----------------------------------------------------------------------------------

const alertEntries = new Map(); // `${type}|${connectionId}` -> { li, active }

function streamName(connectionId) {
  if (!connectionId) return 'engine';
  return byConnection.get(connectionId)?.title ?? connectionId;
}

function onAlert(ev) {
  // Engine bug workaround: the alert-resolved events sent when a connection is removed carry the
  // core's `{ type, alert }` wrapper instead of the alert itself.
  const a = typeof ev.alert?.alert === 'object' && ev.alert.alert !== null ? ev.alert.alert : ev.alert;
  const key = `${a.type}|${a.connectionId}`;
  const list = $('#alerts');
  let entry = alertEntries.get(key);
  if (ev.type === 'alert') {
    if (!entry || !entry.active) {
      const li = document.createElement('li');
      li.innerHTML = '<span class="sev"></span><span class="msg"></span><time></time>';
      list.prepend(li);
      entry = { li, active: true };
      alertEntries.set(key, entry);
    }
    const li = entry.li;
    li.dataset.type = a.type;
    li.dataset.severity = a.severity;
    li.dataset.state = 'active';
    li.dataset.connection = a.connectionId;
    li.querySelector('.sev').textContent = a.severity;
    const text = a.connectionId ? a.message.replace(` on ${a.connectionId}`, '') : a.message;
    li.querySelector('.msg').textContent = `${streamName(a.connectionId)} · ${text}`;
    li.querySelector('.msg').title = a.message;
    const time = li.querySelector('time');
    time.dateTime = new Date(ev.timestamp).toISOString();
    time.textContent = clock(ev.timestamp);
  } else if (entry && entry.active) {
    entry.active = false;
    const li = entry.li;
    li.dataset.state = 'resolved';
    const r = document.createElement('span');
    r.className = 'resolved';
    r.textContent = `✓ resolved at ${clock(ev.timestamp)} (now ${formatAlertValue(a)})`;
    li.append(r);
    alertEntries.delete(key);
  }
  while (list.children.length > ALERT_LIMIT) list.lastElementChild.remove();
  const active = [...alertEntries.values()].filter((e) => e.active).length;
  const pill = $('#alert-count');
  pill.dataset.active = String(active);
  pill.textContent = `${active} active`;
  $('#alerts-empty').hidden = list.children.length > 0;
}

function formatAlertValue(a) {
  if (a.type === 'high_latency') return `${ms(a.value)} ms`;
  if (a.type === 'circuit_open') return a.value ? 'open' : 'closed';
  return pct(a.value);
}

// ---- event log --------------------------------------------------------------------------------

const pendingLog = [];
let logScheduled = false;
let logTotal = 0;
const openEntries = new Map(); // coalescing: `${type}|${connectionId}` -> entry

function logEvent(ev) {
  pendingLog.push(ev);
  if (!logScheduled) {
    logScheduled = true;
    requestAnimationFrame(flushLog);
  }
}

function logLocal(kind, s, text) {
  logEvent({ type: 'local', kind, connectionId: s?.id ?? '', text, timestamp: Date.now() });
}

function sumInto(target, source) {
  for (const k of Object.keys(source)) target[k] = (target[k] ?? 0) + source[k];
}

function describeDrop(e) {
  const reasons = Object.entries(e.reasons).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${formatNumber(n)}`);
  const prios = Object.entries(e.byPriority).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${formatNumber(n)}`);
  return `dropped ${formatNumber(e.count)} msgs (${reasons.join(', ') || '—'}; ${prios.join(', ') || '—'})`;
}

function flushLog() {
  logScheduled = false;
  const list = $('#event-log');
  const now = Date.now();
  for (const ev of pendingLog.splice(0)) {
    logTotal++;
    const key = `${ev.type}|${ev.connectionId}`;
    let entry = null;
    if (ev.type === 'backpressure' || ev.type === 'drop') {
      const open = openEntries.get(key);
      if (open && open.li.isConnected && now - open.last < 3000) entry = open;
    }
    if (!entry) {
      const li = document.createElement('li');
      li.dataset.type = ev.type === 'local' ? ev.kind : ev.type;
      li.innerHTML = '<time></time><span class="kind"></span><span class="text"></span>';
      li.querySelector('time').textContent = clock(ev.timestamp);
      li.querySelector('.kind').textContent = ev.type === 'local' ? ev.kind : ev.type;
      list.prepend(li);
      entry = { li, first: ev.timestamp, last: now, n: 0, count: 0, reasons: {}, byPriority: {} };
      if (ev.type === 'backpressure' || ev.type === 'drop') openEntries.set(key, entry);
    }
    entry.n++;
    entry.last = now;
    const who = streamName(ev.connectionId);
    let text;
    switch (ev.type) {
      case 'backpressure':
        text = entry.n === 1
          ? `${who}: backpressure ${ev.state === 'start' ? 'on' : 'off'} at ${pct(ev.bufferUtilization)} buffer`
          : `${who}: backpressure ${entry.n} changes, now ${ev.state === 'start' ? 'on' : 'off'} (${pct(ev.bufferUtilization)} buffer)`;
        break;
      case 'drop':
        entry.count += ev.count;
        sumInto(entry.reasons, ev.reasons);
        sumInto(entry.byPriority, ev.byPriority);
        text = `${who}: ${describeDrop({ count: entry.count, reasons: entry.reasons, byPriority: entry.byPriority })}`;
        break;
      case 'connection':
        text = `${who}: ${ev.action} ${ev.connectionId}`;
        break;
      case 'error':
        text = `${who}: ${ev.error.name}: ${ev.error.message} (attempt ${ev.attempt + 1}${ev.willRetry ? ', retrying' : ''})`;
        break;
      default:
        text = `${who}: ${ev.text}`;
    }
    if (entry.n > 1) text += ` · since ${clock(entry.first)}`;
    if (ev.missed) text += ` · ${ev.missed} earlier events skipped`;
    entry.li.querySelector('.text').textContent = text;
    entry.li.querySelector('time').textContent = clock(ev.timestamp);
  }
  while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  $('#log-count').textContent = formatNumber(logTotal);
}

// ---- event feeds ------------------------------------------------------------------------------

async function readFeed(types, onEvent) {
  const reader = (await engine.events({ types, queueSize: 5000 })).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    try {
      onEvent(value);
    } catch (e) {
      console.error(e);
    }
  }
}

// ---- controls ---------------------------------------------------------------------------------

function sliderToRate(v) {
  const r = 10 ** Number(v);
  const p = 10 ** (Math.floor(Math.log10(r)) - 1);
  return Math.min(100000, Math.max(10, Math.round(r / p) * p));
}

function setupControls() {
  const rate = $('#rate');
  const out = $('#rate-value');
  // Settings may come from the URL (worker mode restarts through a reload): show them.
  rate.value = String(Math.log10(settings.rate));
  out.textContent = `${formatNumber(settings.rate)} msg/s`;
  $('#handler').value = settings.handler;
  $('#handler-hint').textContent = HANDLER_HINTS[settings.handler] ?? '';
  $('#drop-policy').value = settings.dropPolicy;
  $('#priority-mix').value = settings.mix;
  $('#mix-hint').textContent = MIX_HINTS[settings.mix] ?? '';
  let timer = null;
  const apply = () => {
    clearTimeout(timer);
    timer = null;
    const r = sliderToRate(rate.value);
    out.textContent = `${formatNumber(r)} msg/s`;
    if (r === settings.rate) return;
    settings.rate = r;
    for (const s of byKey.values()) if (!s.closing) restartPipe(s);
    logLocal('control', null, `rate set to ${formatNumber(r)} msg/s per source`);
  };
  rate.addEventListener('input', () => {
    out.textContent = `${formatNumber(sliderToRate(rate.value))} msg/s`;
    clearTimeout(timer);
    timer = setTimeout(apply, 250);
  });
  rate.addEventListener('change', apply);

  $('#priority-mix').addEventListener('change', (e) => {
    settings.mix = e.target.value;
    mix = MIXES[settings.mix] ?? MIXES.balanced;
    workerEngine?.setMix(mix);
    $('#mix-hint').textContent = MIX_HINTS[settings.mix];
    logLocal('control', null, `priority mix: ${e.target.selectedOptions[0].textContent}`);
  });

  const reconfigure = (what) => {
    logLocal('control', null, `${what}: re-creating the connections`);
    enqueue(async () => {
      for (const s of byKey.values()) await recreate(s);
    });
  };
  $('#handler').addEventListener('change', (e) => {
    settings.handler = e.target.value;
    $('#handler-hint').textContent = HANDLER_HINTS[settings.handler];
    reconfigure(`backpressure handler ${settings.handler}`);
  });
  $('#producer').addEventListener('change', (e) =>
    enqueue(async () => {
      const want = e.target.value === 'rust' ? 'rust' : 'js';
      if (want === 'rust' && rustProducer === null) {
        try {
          rustProducer = await loadRustProducer();
        } catch (err) {
          e.target.value = settings.producer;
          $('#producer-hint').textContent = 'not built: run bash scripts/build-rust-producer.sh';
          logLocal('error', null, `Rust producer unavailable: ${err?.message ?? err}`);
          return;
        }
      }
      settings.producer = want;
      document.documentElement.dataset.producer = want;
      $('#producer-hint').textContent = PRODUCER_HINTS[want];
      for (const s of byKey.values()) if (!s.closing) restartPipe(s);
      logLocal('control', null, `producer set to ${want === 'rust' ? 'Rust (wasm)' : 'JS sources'}`);
    }),
  );
  $('#drop-policy').addEventListener('change', (e) => {
    settings.dropPolicy = e.target.value;
    reconfigure(`drop policy ${settings.dropPolicy || "handler's rule"}`);
  });

  $('#slow-widget').addEventListener('change', (e) => {
    settings.slow = e.target.checked;
    $('#slow-state').textContent = settings.slow ? 'On' : 'Off';
    document.body.dataset.slow = String(settings.slow);
    logLocal('control', byKey.get(SLOW_STREAM), `slow widget ${settings.slow ? `on (+${SLOW_DELAY_MS} ms per batch)` : 'off'}`);
  });

  $('#engine-worker').checked = WORKER_MODE;
  $('#engine-worker').addEventListener('change', (e) => reloadWith(settings, e.target.checked));

  $('#export').addEventListener('click', () => {
    if (!debuggerRec) return;
    const data = debuggerRec.exportDebugData();
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `stream-engine-debug-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    logLocal('control', null, `exported ${formatNumber(data.events.length)} debug events, ${data.alerts.length} alerts, ${data.snapshots.length} snapshots`);
  });
}

function togglePause(s) {
  s.paused = !s.paused;
  if (s.conn) {
    if (s.paused) s.conn.pause();
    else s.conn.resume();
  }
  s.el.pause.textContent = s.paused ? 'Resume' : 'Pause';
  s.el.pause.setAttribute('aria-pressed', String(s.paused));
  s.el.card.dataset.paused = String(s.paused);
  renderFlow(s);
}

// ---- page -------------------------------------------------------------------------------------

function buildStreams() {
  const tpl = $('#stream-template');
  const container = $('#streams');
  const body = $('#metrics-body');
  for (const def of STREAMS) {
    const card = tpl.content.firstElementChild.cloneNode(true);
    card.id = `stream-${def.key}`;
    card.dataset.stream = def.key;
    card.style.setProperty('--c', def.color);
    $('.stream-title', card).textContent = def.title;
    const canvas = $('canvas', card);
    canvas.id = `chart-${def.key}`;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${def.title}: last 10 seconds, min–max band per frame and latest value`);
    const bp = $('.bp', card);
    bp.id = `backpressure-${def.key}`;
    const pause = $('.pause', card);
    pause.dataset.pause = def.key;
    const value = $('.value', card);
    value.id = `value-${def.key}`;
    $('.unit', card).textContent = def.caption;
    const count = $('.count', card);
    count.id = `count-${def.key}`;
    $('.card-rate', card).id = `rate-${def.key}`;
    const gaugeBox = $('.gauge', card);
    gaugeBox.setAttribute('aria-label', `${def.title} latest value within the chart range`);
    container.append(card);

    const tr = document.createElement('tr');
    tr.dataset.stream = def.key;
    tr.innerHTML = `
      <td class="conn"><span class="swatch" style="--c:${def.color}"></span><span><span class="name">${def.title}</span><br><span class="muted id"></span></span></td>
      <td class="num"><span id="metric-${def.key}-rate">—</span><br><span class="muted" id="metric-${def.key}-delivered"></span></td>
      <td class="num" id="metric-${def.key}-p50">—</td>
      <td class="num" id="metric-${def.key}-p95">—</td>
      <td class="num" id="metric-${def.key}-p99">—</td>
      <td><div class="bar" id="metric-${def.key}-buffer" data-level="ok"><div class="fill"></div><span class="text">—</span></div></td>
      <td><span class="drops" id="metric-${def.key}-drops"><span>crit <b data-p="critical">0</b></span><span>high <b data-p="high">0</b></span><span>norm <b data-p="normal">0</b></span><span>low <b data-p="low">0</b></span></span></td>
      <td><span class="badge bp" id="metric-${def.key}-bp" data-state="off">flowing</span></td>`;
    body.append(tr);

    const s = {
      ...def,
      id: '',
      conn: null,
      gen: 0,
      restartGen: 0,
      received: 0,
      receivedAtRender: 0,
      last: NaN,
      seen: { prev: null },
      paused: false,
      closing: false,
      bp: false,
      bpHoldUntil: 0,
      flowShown: '',
      lastDraw: 0,
      pipeAbort: null,
      pipeDone: Promise.resolve(),
      unsubscribe: null,
      chart: new TimeChart(canvas, { color: def.color, windowMs: 10000 }),
      el: { card, canvas, bp, pause, value, count, gaugeBox, gauge: $('.fill', gaugeBox), perFrame: $('.per-frame', card), rate: $('.card-rate', card), route: $('.route', card) },
      row: {
        id: $('.id', tr),
        rate: $(`#metric-${def.key}-rate`, tr),
        delivered: $(`#metric-${def.key}-delivered`, tr),
        p50: $(`#metric-${def.key}-p50`, tr),
        p95: $(`#metric-${def.key}-p95`, tr),
        p99: $(`#metric-${def.key}-p99`, tr),
        bufferBar: $(`#metric-${def.key}-buffer`, tr),
        bufferFill: $(`#metric-${def.key}-buffer .fill`, tr),
        bufferText: $(`#metric-${def.key}-buffer .text`, tr),
        dropsCell: $(`#metric-${def.key}-drops`, tr),
        drops: Object.fromEntries(['critical', 'high', 'normal', 'low'].map((p) => [p, $(`b[data-p="${p}"]`, tr)])),
        bp: $(`#metric-${def.key}-bp`, tr),
      },
    };
    pause.addEventListener('click', () => togglePause(s));
    byKey.set(def.key, s);
    s.chart.draw();
  }
}

function setStatus(state, text) {
  const el = $('#status');
  el.dataset.state = state;
  el.textContent = text;
  el.title = text;
}

async function main() {
  buildStreams();
  setupControls();
  await init();
  // Alert levels: buffer use 70% / 90% (backpressure), p95 latency 250 / 1000 ms, any drops at 1%.
  const thresholds = { backpressure: { warning: 0.7, critical: 0.9 }, latency: { warning: 250, critical: 1000 }, dropRate: { warning: 0.01 } };
  if (WORKER_MODE) {
    workerEngine = await startWorkerEngine({ streams: [...byKey.values()], settings, mixes: MIXES, bufferSize: BUFFER_SIZE, maxBatch: MAX_BATCH, metricsInterval: METRICS_INTERVAL, thresholds });
    engine = workerEngine;
    $('#export').disabled = true;
    $('#export-hint').textContent = 'the debugger records on the engine’s thread: off in worker mode';
  } else {
    engine = new StreamEngine({ metricsInterval: METRICS_INTERVAL });
    engine.setThresholds(thresholds);
    debuggerRec = new StreamDebugger(engine);
    debuggerRec.startRecording();
  }
  $('#engine-version').textContent = `engine v${version}`;
  $('#metrics-interval').textContent = String(engine.config.metricsInterval);
  readFeed(['metrics'], renderMetrics);
  readFeed(['alert', 'alert-resolved'], onAlert);
  readFeed(['backpressure', 'drop', 'connection', 'error'], (ev) => {
    if (ev.type === 'backpressure') {
      const s = byConnection.get(ev.connectionId);
      if (s) {
        s.bp = ev.state === 'start';
        if (s.bp) s.bpHoldUntil = performance.now() + 600;
      }
    } else if (ev.type === 'connection' && ev.action === 'closed') {
      for (const resolve of closedWaiters.get(ev.connectionId) ?? []) resolve();
      closedWaiters.delete(ev.connectionId);
    }
    logEvent(ev);
  });
  for (const s of byKey.values()) await openStream(s);
  setupGateway({
    container: $('.controls'),
    keys: [...byKey.keys()],
    log: (text) => logLocal('control', null, text),
    onChange: () => {
      for (const s of byKey.values()) if (!s.closing) restartPipe(s);
    },
  });
  requestAnimationFrame(flowLoop);
  if (!workerEngine) addEventListener('pagehide', () => engine.destroy());
  setStatus('running', 'Running');
  // For tests and the console.
  globalThis.demo = { engine, debugger: debuggerRec, settings, streams: byKey, workerMode: WORKER_MODE, ready: true };
  document.documentElement.dataset.ready = 'true';
}

main().catch((e) => {
  console.error(e);
  setStatus('error', `Failed: ${e?.message ?? e}`);
});
