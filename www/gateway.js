// The demo page's "data from the local gateway" mode: a gateway client (with its own engine) on
// ws://<page origin>/gateway, one topic per stream. Its batches feed the page's connections in
// place of the generated sources. Controls: a slow connection (frames are processed, and so
// acknowledged, at most 10 per second: the gateway sheds this client by its policy), a short
// network drop (resumes from the history: no gap) and a long outage (beyond the history: a gap).
import { StreamEngine, connectGateway } from '/dist/web.mjs';

const SLOW_FRAMES_PER_SECOND = 2;
const state = { on: false, slow: false, offlineUntil: 0, client: null, engine: null, sinks: new Map(), log: () => {}, onChange: () => {} };

/**
 * A WebSocket that can be made slow (message events handed on at a limited rate, as a busy page
 * would) or refuse to connect during a simulated outage.
 */
class DemoSocket extends WebSocket {
  constructor(url, protocols) {
    // During an outage, connect to a port nobody listens on: the attempt fails like a real one.
    super(Date.now() < state.offlineUntil ? url.replace(/\/\/[^/]+/, '//127.0.0.1:9') : url, protocols);
    this._queue = [];
    this._timer = null;
    this._handler = null;
    super.onmessage = (ev) => {
      if (!state.slow && this._queue.length === 0) return this._handler?.(ev);
      this._queue.push(ev);
      this._drain();
    };
  }
  set onmessage(fn) {
    this._handler = fn;
  }
  get onmessage() {
    return this._handler;
  }
  _drain() {
    if (this._timer !== null) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      const ev = this._queue.shift();
      if (ev) this._handler?.(ev);
      if (this._queue.length > 0) this._drain();
    }, state.slow ? 1000 / SLOW_FRAMES_PER_SECOND : 0);
  }
}

/** The source of a stream: a fresh ReadableStream of batches from the gateway, or null (generated data). */
export function gatewaySource(key) {
  if (!state.on) return null;
  let sink;
  return new ReadableStream({
    start(c) {
      sink = c;
      state.sinks.set(key, c);
    },
    cancel() {
      if (state.sinks.get(key) === sink) state.sinks.delete(key);
    },
  }, { highWaterMark: 4 });
}

async function pump(client, key) {
  const reader = client.readable(key).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const sink = state.sinks.get(key);
    // Only a bounded queue towards the page's connection: if its pipe is behind, this batch goes.
    if (sink && sink.desiredSize > 0) sink.enqueue(value);
  }
}

function start(keys) {
  const url = new URL('/gateway', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  state.engine = new StreamEngine();
  state.client = connectGateway(url.href, {
    topics: keys.map((topic) => ({ topic, hidden: 'pause', policy: { bufferSize: 500, maxBatchSize: 100, dropPolicy: 'priority' } })),
    engine: state.engine,
    WebSocket: DemoSocket,
    reconnect: { retryDelay: 250, maxRetryDelay: 4000, jitter: 0.5 },
    connection: { bufferSize: 2000, batchTimeout: 0, dropPolicy: 'priority' },
  });
  for (const k of keys) pump(state.client, k);
  readEvents(state.engine);
}

async function readEvents(engine) {
  const reader = engine.events({ types: ['gap', 'gateway', 'alert', 'alert-resolved'] }).getReader();
  for (;;) {
    const { value: ev, done } = await reader.read();
    if (done) return;
    if (ev.type === 'gap') state.log(`gateway: gap on ${ev.topic} (the history no longer reached back)`);
    else if (ev.type === 'alert') state.log(`gateway: ${ev.alert.message} (stale)`);
    else if (ev.type === 'alert-resolved') state.log('gateway: fresh again');
    else if (ev.action === 'open') state.log(ev.reconnect ? 'gateway: reconnected, resuming each topic from its last seq' : 'gateway: connected');
    else if (ev.action === 'close') state.log(`gateway: socket closed (${ev.code})`);
  }
}

function stop() {
  state.client?.close();
  state.engine?.destroy();
  state.client = null;
  state.engine = null;
}

/** Totals over the topics, for the status line and tests. */
export function gatewayStats() {
  if (!state.client) return null;
  const m = state.client.metrics();
  const t = { state: m.state, connects: m.connects, received: 0, duplicates: 0, gaps: 0, reconnects: 0, droppedUpstream: 0, lag: 0 };
  for (const x of Object.values(m.topics)) {
    t.received += x.received;
    t.duplicates += x.duplicates;
    t.gaps += x.gaps;
    t.reconnects = Math.max(t.reconnects, x.reconnects);
    t.droppedUpstream += x.droppedUpstream;
    t.lag = Math.max(t.lag, x.lag);
  }
  return t;
}

/** Adds the gateway controls to `container`. `onChange` restarts the page's sources. */
export function setupGateway({ container, keys, log, onChange }) {
  state.log = log;
  state.onChange = onChange;
  const box = document.createElement('div');
  box.className = 'control gateway-control';
  box.innerHTML = `
    <span class="label" id="gateway-label">Data from the local gateway</span>
    <label class="switch">
      <input type="checkbox" id="gateway-mode" role="switch" aria-labelledby="gateway-label">
      <span class="track"><span class="thumb"></span></span>
      <span class="state">ws://…/gateway</span>
    </label>
    <label class="switch">
      <input type="checkbox" id="gateway-slow" role="switch" disabled>
      <span class="track"><span class="thumb"></span></span>
      <span class="state">Slow connection (${SLOW_FRAMES_PER_SECOND} frames/s)</span>
    </label>
    <div class="gateway-buttons">
      <button type="button" id="gateway-drop" disabled title="close the socket; back within a second: resumes from the history">Drop connection</button>
      <button type="button" id="gateway-outage" disabled title="offline for 8 s: longer than the history (5 s at 200 msg/s) reaches">Outage 8 s</button>
    </div>
    <div class="hint" id="gateway-stats">off</div>`;
  container.appendChild(box);
  const mode = box.querySelector('#gateway-mode');
  const slow = box.querySelector('#gateway-slow');
  const drop = box.querySelector('#gateway-drop');
  const outage = box.querySelector('#gateway-outage');
  const cut = (ms) => {
    state.offlineUntil = Date.now() + ms;
    state.client?.ws?.close();
  };
  mode.addEventListener('change', () => {
    state.on = mode.checked;
    for (const el of [slow, drop, outage]) el.disabled = !state.on;
    if (state.on) start(keys);
    else stop();
    log(state.on ? 'data from the local gateway' : 'data from the generated sources');
    onChange();
  });
  slow.addEventListener('change', () => {
    state.slow = slow.checked;
    log(`slow connection ${state.slow ? 'on: the gateway sheds this client by its policy' : 'off'}`);
  });
  drop.addEventListener('click', () => cut(500));
  outage.addEventListener('click', () => cut(8000));
  const stats = box.querySelector('#gateway-stats');
  setInterval(() => {
    const t = gatewayStats();
    stats.textContent = t === null
      ? 'off'
      : `${t.state} · ${t.received} received · ${t.reconnects} reconnects · ${t.gaps} gaps · ${t.duplicates} duplicates · ${t.droppedUpstream} shed at the gateway · lag ${t.lag} ms`;
  }, 500);
  globalThis.demoGateway = { state, stats: gatewayStats, cut };
}
