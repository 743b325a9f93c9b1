// StreamEngine: connections, routing, the metrics timer and the event feed around the Rust core.
import { EngineCore, wasmMemoryBytes } from '#wasm';
import { Connection, DROP_SUMMARY, EVENTS, GONE_CORE, describeError } from './connection.js';
import { ConnectionContext } from './connection/context.js';
import { EventHub } from './events.js';
import { checkHandler, handlerSpec } from './handlers.js';
import { Observable, Subject } from './observable.js';
import { checkKeys, checkMessage, describe, keyOf, priorityOf } from './priority.js';
import { DefaultErrorRecovery } from './recovery.js';
import { platform, runtime } from './runtime.js';

const now = () => performance.now();
/** Drop summaries are batched: at most one `drop` event per connection per this many ms. */
const DROP_FLUSH_MS = 100;

function checkId(v, name) {
  if (typeof v !== 'string') throw new TypeError(`${name} must be a string, got ${describe(v)}`);
  if (v.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  // ':' and '->' separate the parts of a connection id: allowing them would let two different
  // connections share one id ('n:x' + 'out' and 'n' + 'x:out').
  if (v.includes(':') || v.includes('->')) {
    throw new TypeError(`${name} must not contain ':' or '->' (they separate the parts of a connection id), got ${describe(v)}`);
  }
}

const CONNECTION_OPTIONS = new Set([
  'bufferSize', 'batchTimeout', 'maxBatchSize', 'backpressureThreshold', 'retryAttempts', 'retryDelay',
  'dropPolicy', 'conflate', 'maxWaitTime', 'backpressureHandler', 'onDrop', 'signal',
]);

export class StreamEngine {
  constructor(config) {
    if (!runtime.ready) throw new Error('the WebAssembly module is not loaded yet: call `await init()` first');
    this._core = new EngineCore(config);
    this.config = Object.freeze(this._core.config());
    this._conns = new Map(); // id -> Connection, until closeConnection, destroy or a new one with the id (finished ones too)
    this._routes = new Map(); // `${source}\0${port}` -> Connection[] (open ones)
    this._all = new Set(); // every connection whose state the core holds (also forgotten ones still draining)
    this._handler = null;
    this._recovery = null;
    this._destroyed = false;
    this._finalThresholds = null; // set by destroy(): thresholds stay readable afterwards
    this._dirty = new Set(); // connections with core events to drain
    this._drainScheduled = false;
    this._dropTimer = null;
    this._dropsPending = new Set();
    this._metricsTimer = null;
    this._lastTick = 0;
    this._lag = 0;
    this._lastMetrics = null;
    this._hub = new EventHub(() => this._updateTimer());
    this._metricsSubject = new Subject(() => this._updateTimer(), () => this._updateTimer());
    this._debugSubject = new Subject(() => this._updateTimer(), () => this._updateTimer());
    this.metrics$ = this._metricsSubject.observable;
    this.debug$ = this._debugSubject.observable;
    this._listeners = new Set(); // internal listeners (StreamDebugger)
    this._ctx = this._connectionContext();
  }

  get destroyed() {
    return this._destroyed;
  }

  _checkAlive() {
    if (this._destroyed) throw new Error('StreamEngine has been destroyed');
  }

  /**
   * What a connection may use of its engine, in one explicit object (js/connection/context.js)
   * instead of the engine's private fields.
   */
  _connectionContext() {
    return new ConnectionContext(this._core, {
      notify: (c, s) => this._notify(c, s),
      onDrop: (c, msg, reason) => this._callOnDrop(c, msg, reason),
      delivered: (c, batch) => this._delivered(c, batch),
      finished: (c) => this._finished(c),
      event: (c, action) => this._connectionEvent(c, action),
      recoveryFor: (c) => this._recoveryFor(c),
      consumerError: (c, error, attempt, willRetry) => this._consumerError(c, error, attempt, willRetry),
      internalError: (c, error) => this._internalError(c, error),
    });
  }

  createConnection(sourceNodeId, targetNodeId, outputPort, inputPort, config) {
    this._checkAlive();
    checkId(sourceNodeId, 'sourceNodeId');
    checkId(targetNodeId, 'targetNodeId');
    checkId(outputPort, 'outputPort');
    checkId(inputPort, 'inputPort');
    const cfg = config ?? {};
    if (typeof cfg !== 'object' || Array.isArray(cfg)) throw new TypeError(`config must be an object, got ${describe(cfg)}`);
    for (const k of Object.keys(cfg)) {
      if (!CONNECTION_OPTIONS.has(k)) throw new TypeError(`config has an unknown option ${JSON.stringify(k)}`);
    }
    const id = `${sourceNodeId}:${outputPort}->${targetNodeId}:${inputPort}`;
    // A finished connection keeps its id (and final figures) only until a new one takes it.
    const previous = this._conns.get(id);
    if (previous !== undefined && !previous._finished) throw new Error(`connection ${id} already exists`);
    if (cfg.onDrop !== undefined && typeof cfg.onDrop !== 'function') throw new TypeError(`onDrop must be a function, got ${describe(cfg.onDrop)}`);
    if (cfg.signal !== undefined && (typeof cfg.signal !== 'object' || cfg.signal === null || typeof cfg.signal.addEventListener !== 'function')) {
      throw new TypeError(`signal must be an AbortSignal, got ${describe(cfg.signal)}`);
    }
    if (cfg.backpressureHandler !== undefined) checkHandler(cfg.backpressureHandler);
    const handler = cfg.backpressureHandler ?? this._handler;
    // The core validates the config and resolves the flow policy (dropPolicy, maxWaitTime,
    // conflate, the handler's options) with its own defaults.
    const { spec, custom } = handlerSpec(handler);
    const resolved = this._core.resolveConfig(cfg);
    const h = this._core.create(id, cfg, spec);
    if (previous !== undefined) this._release(previous);
    const full = Object.freeze({
      ...resolved,
      ...(cfg.dropPolicy !== undefined ? { dropPolicy: cfg.dropPolicy } : {}),
      ...(cfg.conflate !== undefined ? { conflate: cfg.conflate } : {}),
      ...(cfg.maxWaitTime !== undefined ? { maxWaitTime: cfg.maxWaitTime } : {}),
      ...(cfg.backpressureHandler !== undefined ? { backpressureHandler: cfg.backpressureHandler } : {}),
      ...(cfg.onDrop !== undefined ? { onDrop: cfg.onDrop } : {}),
      ...(cfg.signal !== undefined ? { signal: cfg.signal } : {}),
    });
    const conn = new Connection(
      this._ctx,
      h,
      { id, sourceNodeId, targetNodeId, sourcePort: outputPort, targetPort: inputPort },
      full,
      { custom, onDrop: cfg.onDrop ?? null, conflate: cfg.conflate === true },
    );
    this._conns.set(id, conn);
    this._all.add(conn);
    const key = `${sourceNodeId}\u0000${outputPort}`;
    const list = this._routes.get(key);
    if (list) list.push(conn);
    else this._routes.set(key, [conn]);
    if (cfg.signal) {
      const onAbort = () => {
        if (this._conns.get(id) === conn) this.closeConnection(id);
      };
      if (cfg.signal.aborted) queueMicrotask(onAbort);
      else cfg.signal.addEventListener('abort', onAbort, { once: true });
    }
    this._connectionEvent(conn, 'created');
    return id;
  }

  getConnection(id) {
    return this._conns.get(id);
  }

  listConnections() {
    return [...this._conns.keys()];
  }

  _lookup(id) {
    this._checkAlive();
    if (typeof id !== 'string') throw new TypeError(`connection id must be a string, got ${describe(id)}`);
    const c = this._conns.get(id);
    if (!c) throw new Error(`unknown connection ${id}`);
    return c;
  }

  /**
   * Forgets the connection, refuses writes, releases a pause, and ends its readable after what is
   * buffered. A finished connection's final figures are dropped. Like every API that returns a
   * promise, it reports errors (an unknown id) by rejecting it.
   */
  closeConnection(id) {
    let c;
    try {
      c = this._lookup(id);
    } catch (e) {
      return Promise.reject(e);
    }
    this._forget(c);
    if (c._finished) this._release(c);
    else c._beginClose(true);
    return Promise.resolve();
  }

  _forget(c) {
    // A new connection may already have taken this id (after closeConnection): keep it.
    if (this._conns.get(c.id) === c) this._conns.delete(c.id);
    this._unroute(c);
  }

  _unroute(c) {
    const key = `${c.sourceNodeId}\u0000${c.sourcePort}`;
    const list = this._routes.get(key);
    if (list) {
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this._routes.delete(key);
    }
  }

  /**
   * Called by a connection once its readable has ended (and no consumer batch is in flight). It
   * stays under its id, with its final figures, until closeConnection, destroy or a new
   * connection with the id; one already forgotten is freed now.
   */
  _finished(c) {
    if (!this._all.has(c)) return;
    this._unroute(c);
    this._flushConnection(c);
    const resolved = this._core.finish(c._h, now());
    for (const ev of resolved) this._emitAlert(ev.type, ev.alert);
    c._reportedClosed = true;
    this._connectionEvent(c, 'closed');
    if (this._conns.get(c.id) !== c) this._release(c);
  }

  /** Frees a connection's core state; its handle is dead from now on (the core checks). */
  _release(c) {
    if (!this._all.has(c)) return;
    this._flushConnection(c);
    this._all.delete(c);
    this._dirty.delete(c);
    this._dropsPending.delete(c);
    const resolved = this._core.remove(c._h, now());
    for (const ev of resolved) this._emitAlert(ev.type, ev.alert);
    // Released before the engine heard of its end (a consumer's batch was still in flight).
    if (!c._reportedClosed) {
      c._reportedClosed = true;
      this._connectionEvent(c, 'closed');
    }
  }

  /**
   * Delivers to every connection whose source node and output port match. An array is
   * validated whole before any message is delivered.
   */
  route(message) {
    this._checkAlive();
    if (!Array.isArray(message)) {
      const r = this._routeCheck(message, undefined);
      return r === null ? 0 : this._routeDeliver(message, r);
    }
    const checked = new Array(message.length);
    for (let i = 0; i < message.length; i++) checked[i] = this._routeCheck(message[i], `messages[${i}]`);
    let n = 0;
    for (let i = 0; i < message.length; i++) if (checked[i] !== null) n += this._routeDeliver(message[i], checked[i]);
    return n;
  }

  /** Validates a routed message; returns `{ list, p, k }` (null when no connection matches). */
  _routeCheck(msg, what) {
    checkMessage(msg, what ?? 'message');
    const w = what ?? 'message';
    if (typeof msg.sourceNodeId !== 'string') throw new TypeError(`${w}.sourceNodeId must be a string, got ${describe(msg.sourceNodeId)}`);
    if (typeof msg.port !== 'string') throw new TypeError(`${w}.port must be a string, got ${describe(msg.port)}`);
    const p = priorityOf(msg, what);
    const list = this._routes.get(`${msg.sourceNodeId}\u0000${msg.port}`);
    if (!list) return null;
    // The key is validated as the connections that use it would (only conflating ones do).
    let k;
    if (list.some((c) => c._keyed)) k = keyOf(msg, what);
    return { list, p, k };
  }

  _routeDeliver(msg, { list, p, k }) {
    let n = 0;
    for (let i = 0; i < list.length; i++) if (list[i]._offer(msg, p, k)) n++;
    return n;
  }

  setBackpressureHandler(handler) {
    checkHandler(handler, 'handler');
    this._handler = handler ?? null;
  }

  setErrorRecovery(recovery) {
    if (recovery !== null && recovery !== undefined) {
      if (typeof recovery !== 'object' || typeof recovery.shouldRetry !== 'function' || typeof recovery.getRetryDelay !== 'function') {
        throw new TypeError(`recovery must implement shouldRetry(error, attempt) and getRetryDelay(attempt), got ${describe(recovery)}`);
      }
    }
    this._recovery = recovery ?? null;
  }

  _recoveryFor(c) {
    return this._recovery ?? new DefaultErrorRecovery({ retryAttempts: c.config.retryAttempts, retryDelay: c.config.retryDelay });
  }

  setThresholds(thresholds) {
    this._checkAlive();
    this._core.setThresholds(thresholds);
  }

  getThresholds() {
    // Configuration stays readable after destroy() (like `config`), e.g. for a debugger's export.
    if (this._destroyed) return structuredClone(this._finalThresholds);
    return this._core.thresholds();
  }

  getMetrics(id) {
    this._checkAlive();
    // Without an id: a snapshot only. Alerts are evaluated on the metrics timer, so that each
    // transition is seen (and emitted) exactly once.
    if (id === undefined) return this._engineMetrics(now(), false).metrics;
    if (typeof id !== 'string') throw new TypeError(`connection id must be a string, got ${describe(id)}`);
    // The newest connection the core holds under the id: exactly what getMetrics().connections shows.
    const m = this._core.metricsById(id, now());
    if (m === undefined) throw new Error(`unknown connection ${id}`);
    m.lastUpdated = Date.now();
    return m;
  }

  resetMetrics(id) {
    const c = this._lookup(id);
    this._core.resetMetrics(c._h);
  }

  // ---- events --------------------------------------------------------------------------------

  events(options) {
    this._checkAlive();
    return this._hub.stream(options);
  }

  /** @internal listeners that see every event (the debugger). Returns an unsubscribe. */
  _listen(fn) {
    this._listeners.add(fn);
    this._updateTimer();
    return () => {
      this._listeners.delete(fn);
      this._updateTimer();
    };
  }

  _emit(ev) {
    this._hub.emit(ev);
    for (const l of this._listeners) {
      try {
        l(ev);
      } catch (e) {
        console.error(e);
      }
    }
  }

  _debug(type, connectionId, data, timestamp) {
    if (!this._debugSubject.observed && this._listeners.size === 0) return;
    const ev = { type, connectionId, timestamp: timestamp ?? Date.now(), data };
    this._debugSubject.emit(ev);
    for (const l of this._listeners) {
      try {
        l({ type: 'debug', debug: ev });
      } catch (e) {
        console.error(e);
      }
    }
  }

  _connectionEvent(c, action) {
    this._emit({ type: 'connection', timestamp: Date.now(), connectionId: c.id, action });
    if (action === 'created') this._debug('connection_created', c.id, { config: plainConfig(c.config) });
    else if (action === 'closed') this._debug('connection_closed', c.id, {});
    else if (action === 'circuit-opened' || action === 'circuit-closed') this._debug('circuit', c.id, { state: action === 'circuit-opened' ? 'open' : 'closed' });
    else this._debug(action === 'paused' ? 'connection_paused' : 'connection_resumed', c.id, {});
  }

  _delivered(c, batch) {
    if (this._debugSubject.observed || this._listeners.size > 0) {
      this._debug('batch_delivered', c.id, { size: batch.length, firstId: batch[0]?.id, lastId: batch[batch.length - 1]?.id });
    }
  }

  /** A bug in the consume loop itself: reported, never an unhandled rejection. */
  _internalError(c, error) {
    console.error(error);
    this._consumerError(c, error, 0, false);
  }

  _consumerError(c, error, attempt, willRetry) {
    const err = describeError(error);
    this._emit({ type: 'error', timestamp: Date.now(), connectionId: c.id, error: err, attempt, willRetry });
    this._debug(willRetry ? 'retry' : 'error', c.id, { error: err, attempt, willRetry });
  }

  _callOnDrop(c, msg, reason) {
    try {
      c._onDrop(msg, reason);
    } catch (e) {
      console.error(e);
    }
  }

  /** The core reported events, drops or drop summaries on `c`: drain them after this call. */
  _notify(c, s) {
    if (this._destroyed) return;
    if (s & EVENTS) {
      this._dirty.add(c);
      if (!this._drainScheduled) {
        this._drainScheduled = true;
        queueMicrotask(() => this._drain());
      }
    }
    if (s & DROP_SUMMARY) {
      this._dropsPending.add(c);
      if (this._dropTimer === null) this._dropTimer = setTimeout(() => this._flushDrops(), DROP_FLUSH_MS);
    }
  }

  _drain() {
    this._drainScheduled = false;
    const dirty = [...this._dirty];
    this._dirty.clear();
    for (const c of dirty) this._drainConnection(c);
  }

  _drainConnection(c) {
    if (!this._all.has(c)) return;
    const evs = this._core.takeEvents(c._h);
    for (const e of evs) {
      if (e.type === 'backpressure') {
        this._emit({ type: 'backpressure', timestamp: Date.now(), connectionId: c.id, state: e.state, bufferUtilization: e.bufferUtilization });
        this._debug('backpressure', c.id, { state: e.state, bufferUtilization: e.bufferUtilization });
      } else if (e.type === 'circuit') {
        this._connectionEvent(c, e.open ? 'circuit-opened' : 'circuit-closed');
      }
    }
  }

  _flushDrops() {
    this._dropTimer = null;
    const list = [...this._dropsPending];
    this._dropsPending.clear();
    for (const c of list) this._flushConnection(c);
  }

  _flushConnection(c) {
    if (!this._all.has(c)) return;
    this._drainConnection(c);
    const s = this._core.takeDropSummary(c._h);
    if (s) {
      this._emit({ type: 'drop', timestamp: Date.now(), connectionId: c.id, count: s.count, reasons: s.reasons, byPriority: s.byPriority });
      this._debug('message_dropped', c.id, s);
    }
  }

  // ---- metrics -------------------------------------------------------------------------------

  _wantsTicks() {
    return this._hub.size > 0 || this._metricsSubject.observed || this._debugSubject.observed || this._listeners.size > 0;
  }

  _updateTimer() {
    const want = !this._destroyed && this._wantsTicks();
    if (want && this._metricsTimer === null) {
      const interval = this.config.metricsInterval;
      this._lastTick = now();
      this._metricsTimer = setInterval(() => this._tick(), interval);
      // Runs only while someone listens (an events() stream, metrics$, debug$, a debugger);
      // cancel those or destroy() the engine to stop it.
    } else if (!want && this._metricsTimer !== null) {
      clearInterval(this._metricsTimer);
      this._metricsTimer = null;
    }
  }

  _system() {
    const sys = { eventLoopLag: this._lag, wasmMemoryBytes: wasmMemoryBytes() };
    const heap = platform.heap();
    if (heap) {
      sys.jsHeapUsed = heap.used;
      sys.jsHeapTotal = heap.total;
      if (heap.limit) sys.jsHeapLimit = heap.limit;
    }
    return sys;
  }

  _engineMetrics(t, evaluateAlerts = true) {
    const system = this._system();
    const memFraction = system.jsHeapLimit ? system.jsHeapUsed / system.jsHeapLimit : NaN;
    const tick = evaluateAlerts ? this._core.tick(t, memFraction) : this._core.snapshot(t);
    const wall = Date.now();
    for (const id in tick.connections) tick.connections[id].lastUpdated = wall;
    for (const a of tick.alerts) a.alert.timestamp = wall;
    return {
      metrics: { totals: tick.totals, connections: tick.connections, system, lastUpdated: Date.now() },
      alerts: tick.alerts,
    };
  }

  /** Forces a metrics tick now (also what the timer calls). Returns the snapshot. */
  _tick() {
    const t = now();
    const expected = this._lastTick + this.config.metricsInterval;
    this._lag = Math.max(0, t - expected);
    this._lastTick = t;
    for (const c of this._dropsPending) this._flushConnection(c);
    this._dropsPending.clear();
    const { metrics, alerts } = this._engineMetrics(t);
    this._lastMetrics = metrics;
    this._emit({ type: 'metrics', timestamp: Date.now(), metrics });
    if (this._metricsSubject.observed) this._metricsSubject.emit(new Map(Object.entries(metrics.connections)));
    for (const a of alerts) this._emitAlert(a.type, a.alert);
    return metrics;
  }

  _emitAlert(kind, alert) {
    alert.timestamp = Date.now();
    this._emit({ type: kind, timestamp: Date.now(), alert });
    this._debug('alert', alert.connectionId, { kind, ...alert });
  }

  /** An observable of `{ messages, totalSize, timestamp }` built on the connection's readable. */
  createBatchedStream(id, config) {
    const c = this._lookup(id);
    const cfg = config ?? {};
    if (typeof cfg !== 'object' || Array.isArray(cfg)) throw new TypeError(`config must be an object, got ${describe(cfg)}`);
    checkKeys(cfg, ['maxBatchSize', 'batchTimeout'], 'createBatchedStream config');
    let max = Infinity;
    if (cfg.maxBatchSize !== undefined) {
      if (!Number.isInteger(cfg.maxBatchSize) || cfg.maxBatchSize < 1) throw new RangeError(`maxBatchSize must be a positive integer, got ${describe(cfg.maxBatchSize)}`);
      max = cfg.maxBatchSize;
    }
    return new Observable((sink) => {
      let reader;
      try {
        reader = c.readable.getReader();
      } catch (e) {
        sink.error(e);
        return undefined;
      }
      let stopped = false;
      (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done || stopped) break;
            for (let i = 0; i < value.length; i += max === Infinity ? value.length : max) {
              const messages = max === Infinity ? value : value.slice(i, i + max);
              sink.next({ messages, totalSize: messages.length, timestamp: Date.now() });
            }
          }
          if (!stopped) sink.complete();
        } catch (e) {
          if (!stopped) sink.error(e);
        }
      })();
      return () => {
        stopped = true;
        reader.releaseLock?.();
      };
    });
  }

  /**
   * Ends every connection at once (buffered messages become dead letters, readers end, pending
   * writes reject), stops every timer and frees the WebAssembly core. Every later call is safe:
   * the engine's methods throw "StreamEngine has been destroyed", connections stay inert.
   */
  destroy() {
    if (this._destroyed) return;
    for (const c of [...this._all]) c._fail(undefined, 'destroy');
    if (this._metricsTimer !== null) clearInterval(this._metricsTimer);
    this._metricsTimer = null;
    if (this._dropTimer !== null) clearTimeout(this._dropTimer);
    this._dropTimer = null;
    this._flushDrops();
    this._all.clear();
    this._conns.clear();
    this._routes.clear();
    this._dirty.clear();
    this._dropsPending.clear();
    this._destroyed = true;
    this._finalThresholds = this._core.thresholds();
    const core = this._core;
    this._core = GONE_CORE;
    this._ctx.release(GONE_CORE);
    core.free();
    this._hub.closeAll();
    this._metricsSubject.complete();
    this._debugSubject.complete();
  }
}

function plainConfig(cfg) {
  const out = {};
  for (const [k, v] of Object.entries(cfg)) if (typeof v !== 'function' && typeof v !== 'object') out[k] = v;
  return out;
}
