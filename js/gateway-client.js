// The gateway client (browsers and Node): one WebSocket to a gateway, one engine connection per
// topic. It reconnects with the engine's retry delays, resumes each topic from the last seq it
// received, drops duplicates by message id, raises a `stale` alert when heartbeats stop, and asks
// the gateway to conflate or pause topics while the page is hidden.
import { StreamEngine } from './engine.js';
import { Feeder } from './feeder.js';
import { MODES, topicError } from './gateway-protocol.js';
import { describe, priorityOf } from './priority.js';
import { DefaultErrorRecovery } from './recovery.js';

/**
 * How long a processed data frame may wait for its acknowledgement (ms). The quarter-window rule
 * acknowledges a busy stream by volume, so this delay only bounds how long a trickle waits and
 * never holds a client up. Longer than a frame interval, so that a steady stream is acknowledged
 * every few frames rather than after each one: every ack is a frame the gateway must read, and at
 * 1,000 clients 20 ms gave one ack per data frame, 15% of the gateway's time.
 */
const ACK_DELAY = 100;

const CLIENT_OPTIONS = new Set([
  'topics', 'engine', 'WebSocket', 'sourceNodeId', 'targetNodeId', 'connection', 'reconnect', 'recovery', 'staleTimeout',
  'dedupeWindow', 'hidden', 'document', 'protocols',
]);
const DEFAULT_LOCAL = Object.freeze({ bufferSize: 1000, dropPolicy: 'priority' });

/** Message ids seen recently, at most `capacity` of them (the oldest are forgotten first). */
export class RecentIds {
  constructor(capacity) {
    this.capacity = capacity;
    this.set = new Set();
    this.ring = new Array(capacity);
    this.head = 0;
  }
  /** Adds `id`; returns false if it was already there (a duplicate). */
  add(id) {
    if (this.set.has(id)) return false;
    if (this.set.size >= this.capacity) this.set.delete(this.ring[this.head]);
    this.ring[this.head] = id;
    this.head = (this.head + 1) % this.capacity;
    this.set.add(id);
    return true;
  }
  get size() {
    return this.set.size;
  }
}

function positive(o, name, dflt) {
  const v = o[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive number, got ${describe(v)}`);
  return v;
}

/**
 * Connects to a gateway and subscribes to `options.topics`. Returns the client at once; it
 * connects (and reconnects) in the background. `url` may be a list of gateways (each reconnect
 * tries the next one) or a function `(attempt) => url`. See the README's "Network edge" section.
 */
export function connectGateway(url, options) {
  return new GatewayClient(url, options);
}

/**
 * The gateways a client may connect to: one URL, a non-empty list (tried in turn: every reconnect
 * moves on to the next one, so a client of a dead gateway resumes on another), or a function
 * `(attempt) => url` called before each connection attempt. Returns `{ first, next(attempt) }`:
 * the first URL (null for a function: it is called then) and the URL of a later attempt.
 */
function urlSource(url) {
  const one = (u, name) => {
    if (typeof u !== 'string' && !(u instanceof URL)) throw new TypeError(`${name} must be a string or URL, got ${describe(u)}`);
    return String(u);
  };
  if (typeof url === 'function') {
    return { first: null, next: (attempt) => one(url(attempt), 'url(attempt)') };
  }
  if (Array.isArray(url)) {
    if (url.length === 0) throw new RangeError('url must list at least one gateway URL, got an empty array');
    const list = url.map((u, i) => one(u, `url[${i}]`));
    return { first: list[0], next: (attempt) => list[attempt % list.length] };
  }
  const u = one(url, 'url');
  return { first: u, next: () => u };
}

export class GatewayClient {
  constructor(url, options) {
    const src = urlSource(url);
    const o = options ?? {};
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`connectGateway options must be an object, got ${describe(o)}`);
    for (const k of Object.keys(o)) if (!CLIENT_OPTIONS.has(k)) throw new TypeError(`connectGateway has an unknown option ${JSON.stringify(k)}`);
    this.nextUrl = src.next;
    // Connection attempts so far (all URLs): a list is walked in this order, a function gets it.
    this.tries = 0;
    this.url = src.first ?? this.nextUrl(0);
    this.WebSocket = o.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') throw new TypeError('no WebSocket constructor: pass options.WebSocket (e.g. `WebSocket` from the ws package) on Node < 22');
    this.protocols = o.protocols;
    if (o.engine !== undefined && !(o.engine instanceof StreamEngine) && typeof o.engine?.createConnection !== 'function') {
      throw new TypeError(`engine must be a StreamEngine, got ${describe(o.engine)}`);
    }
    this.engine = o.engine ?? new StreamEngine();
    this.ownEngine = o.engine === undefined;
    this.sourceNodeId = o.sourceNodeId ?? 'gateway';
    this.targetNodeId = o.targetNodeId ?? 'client';
    if (typeof this.sourceNodeId !== 'string' || this.sourceNodeId === '') throw new TypeError(`sourceNodeId must be a non-empty string, got ${describe(o.sourceNodeId)}`);
    if (typeof this.targetNodeId !== 'string' || this.targetNodeId === '') throw new TypeError(`targetNodeId must be a non-empty string, got ${describe(o.targetNodeId)}`);
    if (o.connection !== undefined && (typeof o.connection !== 'object' || o.connection === null || Array.isArray(o.connection))) throw new TypeError(`connection must be an object, got ${describe(o.connection)}`);
    this.localConfig = { ...DEFAULT_LOCAL, ...(o.connection ?? {}) };
    if (o.recovery !== undefined) {
      if (typeof o.recovery?.getRetryDelay !== 'function') throw new TypeError(`recovery must have getRetryDelay(attempt), got ${describe(o.recovery)}`);
      this.recovery = o.recovery;
    } else {
      const r = o.reconnect ?? {};
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new TypeError(`reconnect must be an object, got ${describe(r)}`);
      // The engine's error-recovery formula: min(maxRetryDelay, retryDelay * 2^attempt * (1 + jitter * random)).
      this.recovery = new DefaultErrorRecovery({ retryDelay: 250, maxRetryDelay: 10000, jitter: 0.5, ...r });
    }
    this.staleOption = o.staleTimeout === undefined ? undefined : positive(o, 'staleTimeout');
    this.staleTimeout = this.staleOption ?? 10000;
    const dw = o.dedupeWindow ?? 10000;
    if (!Number.isInteger(dw) || dw < 1 || dw > 10_000_000) throw new RangeError(`dedupeWindow must be an integer in 1..10000000, got ${describe(dw)}`);
    this.dedupeWindow = dw;
    this.hiddenMode = o.hidden ?? 'conflate';
    if (!MODES.includes(this.hiddenMode)) throw new RangeError(`hidden must be one of ${MODES.join(', ')}, got ${describe(o.hidden)}`);
    this.id = `gateway-client:${this.url}`;
    this.topics = new Map();
    this.state = 'connecting';
    this.ws = null;
    this.attempt = 0;
    this.connects = 0;
    this.reconnectTimer = null;
    this.closed = false;
    this.stale = false;
    this.lastFrame = Date.now();
    this.hidden = false;
    this.attemptStarted = Date.now();
    this.ackWindow = 128 * 1024;
    this.unackedFrames = 0;
    this.unackedBytes = 0;
    this.ackTimer = null;
    this._openWaiters = [];
    const topics = o.topics ?? [];
    if (!Array.isArray(topics)) throw new TypeError(`topics must be an array, got ${describe(topics)}`);
    for (const t of topics) typeof t === 'string' ? this.subscribe(t) : this.subscribe(t?.topic, t);
    // Hidden tabs.
    this.doc = o.document === undefined ? globalThis.document : o.document;
    if (this.doc && typeof this.doc.addEventListener === 'function') {
      this._onVisibility = () => this.setHidden(this.doc.visibilityState === 'hidden');
      this._onFreeze = () => this.setHidden(true);
      this.doc.addEventListener('visibilitychange', this._onVisibility);
      this.doc.addEventListener('freeze', this._onFreeze);
      this.doc.addEventListener('resume', this._onVisibility);
      this.hidden = this.doc.visibilityState === 'hidden';
    }
    this.checker = setInterval(() => this._check(), Math.max(50, Math.min(1000, this.staleTimeout / 4)));
    this._open();
  }

  /** Resolves once the client is connected and the gateway has answered every subscription. */
  ready() {
    if (this._isReady()) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('the gateway client is closed'));
    return new Promise((resolve, reject) => this._openWaiters.push({ resolve, reject }));
  }

  /**
   * Subscribes to `topic`: `spec.policy` is the gateway-side flow policy (`bufferSize`,
   * `maxBatchSize`, `batchTimeout`, `dropPolicy`, `conflate`, `targetLatency`), `spec.hidden` what to do
   * while the page is hidden, `spec.connection` the local connection's config. Returns the id of
   * the engine connection the topic's messages are written into.
   */
  subscribe(topic, spec) {
    const err = topicError(topic);
    if (err) throw new TypeError(err);
    if (this.topics.has(topic)) throw new Error(`already subscribed to ${topic}`);
    const s = spec ?? {};
    if (typeof s !== 'object' || Array.isArray(s)) throw new TypeError(`topic spec must be an object, got ${describe(s)}`);
    const hidden = s.hidden ?? this.hiddenMode;
    if (!MODES.includes(hidden)) throw new RangeError(`hidden must be one of ${MODES.join(', ')}, got ${describe(s.hidden)}`);
    if (s.policy !== undefined && (typeof s.policy !== 'object' || s.policy === null || Array.isArray(s.policy))) throw new TypeError(`policy must be an object, got ${describe(s.policy)}`);
    const cfg = { ...this.localConfig, ...(s.connection ?? {}) };
    // Topic names are any string; connection ids may not hold ':' or '->' (percent-encoded here).
    const id = this.engine.createConnection(this.sourceNodeId, this.targetNodeId, encodeURIComponent(topic), 'in', cfg);
    const conn = this.engine.getConnection(id);
    const st = {
      topic,
      id,
      conn,
      policy: s.policy,
      hidden,
      lastSeq: s.afterSeq,
      recent: new RecentIds(this.dedupeWindow),
      feeder: null,
      answered: false,
      m: { received: 0, delivered: 0, duplicates: 0, gaps: 0, reconnects: 0, lag: 0, droppedUpstream: 0, refused: 0, invalid: 0, lastSeq: s.afterSeq },
    };
    st.feeder = new Feeder(conn, 10 * (conn.config.bufferSize ?? 1000), () => {});
    this.topics.set(topic, st);
    if (this.state === 'open') this._sendSubscribe(st);
    return id;
  }

  /** Stops a topic: tells the gateway and closes its engine connection. */
  unsubscribe(topic) {
    const st = this.topics.get(topic);
    if (st === undefined) return;
    this.topics.delete(topic);
    this._send({ op: 'unsubscribe', topic });
    st.feeder.close();
    if (this.engine.getConnection(st.id) === st.conn) this.engine.closeConnection(st.id);
  }

  /** The engine connection of `topic` (its `readable` delivers the topic's batches). */
  connection(topic) {
    return this.topics.get(topic)?.conn;
  }

  /** The readable of `topic`'s engine connection. */
  readable(topic) {
    return this.connection(topic)?.readable;
  }

  /** Publishes messages to `topic` through the gateway (if its authorisation allows). Returns whether it was sent. */
  publish(topic, messages, ref) {
    return this._send({ op: 'publish', topic, messages, ...(ref !== undefined ? { ref } : {}) });
  }

  /** Per-topic figures, the connection state and the URL in use (or last tried). */
  metrics() {
    const topics = {};
    for (const [name, st] of this.topics) topics[name] = { ...st.m, refused: st.feeder.refused };
    return { state: this.state, url: this.url, connects: this.connects, stale: this.stale, hidden: this.hidden, topics };
  }

  /** Hidden (true) or visible (false): asks the gateway to conflate or pause, or to go live again. */
  setHidden(hidden) {
    const h = hidden === true;
    if (h === this.hidden) return;
    this.hidden = h;
    for (const st of this.topics.values()) if (st.hidden !== 'live') this._send({ op: 'mode', topic: st.topic, mode: h ? st.hidden : 'live' });
    this._event('visibility', { hidden: h });
  }

  /** Closes the socket, stops reconnecting, closes the topics' connections (and the engine, if the client made it). */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.checker);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    if (this.doc && this._onVisibility) {
      this.doc.removeEventListener('visibilitychange', this._onVisibility);
      this.doc.removeEventListener('freeze', this._onFreeze);
      this.doc.removeEventListener('resume', this._onVisibility);
    }
    this._detach(1000, 'client closed');
    this.state = 'closed';
    for (const w of this._openWaiters) w.reject(new Error('the gateway client is closed'));
    this._openWaiters = [];
    for (const st of this.topics.values()) {
      st.feeder.close();
      if (!this.engine.destroyed && this.engine.getConnection(st.id) === st.conn) this.engine.closeConnection(st.id);
    }
    if (this.ownEngine) this.engine.destroy();
  }

  // ---- internals -----------------------------------------------------------------------------

  _isReady() {
    if (this.state !== 'open') return false;
    for (const st of this.topics.values()) if (!st.answered) return false;
    return true;
  }

  _maybeReady() {
    if (this._openWaiters.length === 0 || !this._isReady()) return;
    for (const w of this._openWaiters) w.resolve();
    this._openWaiters = [];
  }

  _answered(topic) {
    const st = this.topics.get(topic);
    if (st !== undefined) st.answered = true;
    this._maybeReady();
  }

  _event(action, extra) {
    if (this.engine.destroyed) return;
    this.engine._emit({ type: 'gateway', timestamp: Date.now(), connectionId: this.id, action, url: this.url, ...extra });
  }

  _send(obj) {
    const ws = this.ws;
    if (ws === null || ws.readyState !== 1 || this.state !== 'open') return false;
    try {
      ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  _sendSubscribe(st) {
    st.answered = false;
    const f = { op: 'subscribe', topic: st.topic };
    if (st.lastSeq !== undefined) f.afterSeq = st.lastSeq;
    if (st.policy !== undefined) f.policy = st.policy;
    if (this.hidden && st.hidden !== 'live') f.mode = st.hidden;
    this._send(f);
  }

  _open() {
    if (this.closed) return;
    this.state = this.connects === 0 ? 'connecting' : 'reconnecting';
    this.attemptStarted = Date.now();
    let ws;
    try {
      // The first attempt uses the URL chosen in the constructor; each later one the next URL.
      if (this.tries > 0) this.url = this.nextUrl(this.tries);
      this.tries++;
      ws = this.protocols === undefined ? new this.WebSocket(this.url) : new this.WebSocket(this.url, this.protocols);
    } catch (e) {
      this._event('error', { message: String(e?.message ?? e) });
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this._onFrame(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this._event('close', { code: ev.code, reason: ev.reason });
      this._detach();
      this._scheduleReconnect();
    };
    ws.onerror = () => {};
  }

  /** Forgets the current socket (closing it if still open). */
  _detach(code, reason) {
    const ws = this.ws;
    this.ws = null;
    if (ws === null) return;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    ws.onopen = null;
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code ?? 1000, reason);
    } catch {
      // ignore
    }
  }

  _scheduleReconnect() {
    if (this.closed || this.reconnectTimer !== null) return;
    this.state = 'reconnecting';
    const delay = this.recovery.getRetryDelay(this.attempt);
    this.attempt++;
    this._event('reconnecting', { attempt: this.attempt, delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this._open();
    }, delay);
  }

  _check() {
    const since = Date.now() - this.lastFrame;
    if (since > this.staleTimeout) {
      if (!this.stale) {
        this.stale = true;
        this.engine._emit({
          type: 'alert',
          timestamp: Date.now(),
          alert: { type: 'stale', severity: 'critical', connectionId: this.id, message: `no frame from ${this.url} for ${Math.round(since)} ms`, value: since, threshold: this.staleTimeout, timestamp: Date.now() },
        });
      }
      // A dead connection: drop it and reconnect (an attempt that is already under way keeps going).
      const hung = this.state !== 'open' && Date.now() - this.attemptStarted > this.staleTimeout;
      if (this.ws !== null && (this.state === 'open' || hung)) {
        this._event('close', { code: 4000, reason: 'stale' });
        this._detach(4000, 'stale');
        this._scheduleReconnect();
      }
    }
  }

  _onFrame(data) {
    this.lastFrame = Date.now();
    if (typeof data !== 'string') return; // the protocol is JSON text
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    switch (f?.op) {
      case 'welcome':
        return this._welcome(f);
      case 'data':
        this._data(f);
        this._processed(data.length);
        return undefined;
      case 'gap': {
        const st = this.topics.get(f.topic);
        if (st === undefined) return;
        st.m.gaps++;
        if (!this.engine.destroyed) this.engine._emit({ type: 'gap', timestamp: Date.now(), connectionId: st.id, topic: st.topic, afterSeq: f.afterSeq });
        return;
      }
      case 'subscribed':
        return this._answered(f.topic);
      case 'error':
        if (typeof f.topic === 'string') this._answered(f.topic);
        return this._event('error', { code: f.code, message: f.message, ...(f.topic !== undefined ? { topic: f.topic } : {}) });
      default:
        return undefined; // hb, pong, subscribed, unsubscribed, published: only liveness
    }
  }

  /**
   * A data frame was processed: acknowledge it, so that the gateway sends more. A page too busy to
   * get here is shed at the gateway by its policy. Acks are batched: once a quarter of the
   * gateway's window is processed, or ACK_DELAY after the first unacknowledged frame.
   */
  _processed(bytes) {
    this.unackedFrames++;
    this.unackedBytes += bytes;
    if (this.unackedBytes >= this.ackWindow / 4) this._flushAck();
    else if (this.ackTimer === null) this.ackTimer = setTimeout(() => this._flushAck(), ACK_DELAY);
  }

  _flushAck() {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.unackedFrames > 0) this._send({ op: 'ack', frames: this.unackedFrames });
    this.unackedFrames = 0;
    this.unackedBytes = 0;
  }

  _welcome(f) {
    const reconnect = this.connects > 0;
    this.connects++;
    this.attempt = 0;
    this.state = 'open';
    if (this.staleOption === undefined && typeof f.heartbeat === 'number' && f.heartbeat > 0) {
      // Missing two and a half heartbeats in a row means the connection is dead.
      this.staleTimeout = 2.5 * f.heartbeat;
      clearInterval(this.checker);
      this.checker = setInterval(() => this._check(), Math.max(50, Math.min(1000, this.staleTimeout / 4)));
    }
    if (this.stale) {
      this.stale = false;
      this.engine._emit({
        type: 'alert-resolved',
        timestamp: Date.now(),
        alert: { type: 'stale', severity: 'critical', connectionId: this.id, message: `connected to ${this.url} again`, value: 0, threshold: this.staleTimeout, timestamp: Date.now() },
      });
    }
    this._event('open', { reconnect });
    // This client acknowledges data frames: flow control by the gateway's ack window.
    this.ackWindow = typeof f.ackWindow === 'number' && f.ackWindow > 0 ? f.ackWindow : 128 * 1024;
    this.unackedFrames = 0;
    this.unackedBytes = 0;
    this._send({ op: 'ack', frames: 0 });
    for (const st of this.topics.values()) {
      if (reconnect) st.m.reconnects++;
      this._sendSubscribe(st);
    }
    this._maybeReady();
  }

  _data(f) {
    const st = this.topics.get(f.topic);
    if (st === undefined || !Array.isArray(f.messages)) return;
    const msgs = f.messages;
    const fresh = [];
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (typeof m !== 'object' || m === null || typeof m.id !== 'string') {
        st.m.invalid++;
        continue;
      }
      try {
        priorityOf(m);
      } catch {
        st.m.invalid++;
        continue;
      }
      if (st.recent.add(m.id)) fresh.push(m);
      else st.m.duplicates++;
    }
    st.m.received += msgs.length;
    if (typeof f.dropped === 'number') st.m.droppedUpstream += f.dropped;
    if (typeof f.seq === 'string') st.lastSeq = st.m.lastSeq = f.seq;
    const last = msgs[msgs.length - 1];
    if (typeof last?.timestamp === 'number') st.m.lag = Math.max(0, Date.now() - last.timestamp);
    if (fresh.length > 0) {
      st.m.delivered += fresh.length;
      st.feeder.write(fresh);
    }
  }
}
