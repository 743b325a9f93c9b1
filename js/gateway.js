// The WebSocket gateway (Node only): serves topics to clients over `ws`. Each client subscription
// is a connection of the gateway's own StreamEngine with the client's flow policy, so a slow client
// is shed by that policy (in the Rust core), never by unbounded server memory and never by slowing
// the others. The pump reads one batch only when the client's socket is not busy and sends it as
// one frame.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { StreamEngine } from './engine.js';
import { AdaptiveBackpressureHandler } from './handlers.js';
import { Feeder } from './feeder.js';
import { MemoryHistory, compareSeqs } from './gateway-history.js';
import { CLOSE_CODES, ERROR_CODES, MODES, PROTOCOL_VERSION, topicError } from './gateway-protocol.js';
import { checkMessage, describe, priorityOf } from './priority.js';

export { MemoryHistory } from './gateway-history.js';
export { CLOSE_CODES, ERROR_CODES, PROTOCOL_VERSION } from './gateway-protocol.js';

/** The flow options a client may ask for, per subscription. */
const POLICY_OPTIONS = new Set(['bufferSize', 'maxBatchSize', 'batchTimeout', 'dropPolicy', 'conflate', 'targetLatency']);
const DEFAULT_POLICY = Object.freeze({ bufferSize: 1000, maxBatchSize: 100, batchTimeout: 10, dropPolicy: 'priority' });

const GATEWAY_OPTIONS = new Set([
  'port', 'host', 'server', 'path', 'history', 'authorize', 'topics', 'policy', 'maxBufferSize', 'maxPayload',
  'heartbeatInterval', 'idleTimeout', 'hardLimit', 'maxClients', 'hiddenInterval', 'engine', 'onDrop', 'ackWindow', 'maxSubscriptions',
]);

function positiveInt(o, name, dflt, max = 2 ** 31) {
  const v = o[name];
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in 1..${max}, got ${describe(v)}`);
  return v;
}

/** `true` | string[] | (topic) => boolean -> predicate. */
function accessPredicate(a, what) {
  if (a === undefined || a === false || a === null) return () => false;
  if (a === true || a === '*') return () => true;
  if (Array.isArray(a)) {
    const s = new Set(a);
    return (t) => s.has(t);
  }
  if (typeof a === 'function') {
    return (t) => {
      try {
        return a(t) === true;
      } catch {
        return false;
      }
    };
  }
  throw new TypeError(`authorize() result ${what} must be true, a topic array or a function, got ${describe(a)}`);
}

/**
 * Starts a gateway. Resolves once it listens. See the README's "Network edge" section.
 * @param {object} [options]
 */
export async function createGateway(options) {
  const g = new Gateway(options ?? {});
  await g._listen();
  return g;
}

class Topic {
  constructor(gateway, name) {
    this.gateway = gateway;
    this.name = name;
    this.subs = new Set();
    this.published = 0;
    this.lastSeq = undefined;
    this.seqOf = new WeakMap(); // message -> seq (messages stay opaque: no field is added)
    this.frameHead = `{"op":"data","topic":${JSON.stringify(name)}`; // made once, not per frame
    // The last data frame built for this topic and its batch: the subscribers of a topic mostly
    // get the same batch at the same moment (same publish, same batch timeout), so the frame is
    // serialised and encoded once and the same bytes are written to each of their sockets.
    this.lastBatch = null;
    this.lastFrame = null;
    this.chain = null; // pending async history appends, to keep publish order
    this._writable = null;
    // The shared batch of the subscribers on the gateway's own policy (see Subscription.shareable):
    // messages published and not yet flushed to them, the flush timer, how many messages were
    // ever flushed (a new subscriber starts after what is pending: `from`), and how many such
    // subscribers there are.
    this.pending = [];
    this.pendingJson = []; // their JSON (null where not made yet)
    this.flushed = 0;
    this.flushTimer = null;
    this.shareable = 0;
    this.onFlush = () => {
      this.flushTimer = null;
      gateway._exclusive(this.flushNow);
    };
    this.flushNow = () => this.flush();
  }

  /** Queues messages for the shared batch: flushed when full, or batchTimeout after the first. */
  _queueShared(messages, jsons) {
    const { batchTimeout, maxBatchSize } = this.gateway.policy;
    for (let i = 0; i < messages.length; i++) {
      this.pending.push(messages[i]);
      this.pendingJson.push(jsons == null ? null : jsons[i]);
    }
    if (batchTimeout === 0 || this.pending.length >= maxBatchSize) this.flush();
    else if (this.flushTimer === null) this.flushTimer = setTimeout(this.onFlush, batchTimeout);
  }

  /**
   * Hands the pending messages, in batches of at most maxBatchSize, to each shareable subscriber:
   * one frame built once and written to every subscriber whose socket is free and whose engine
   * connection holds nothing; the others get the batch through their engine connection, where
   * their policy applies as for any subscriber.
   */
  flush() {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    const max = this.gateway.policy.maxBatchSize;
    while (this.pending.length > 0) {
      const all = this.pending;
      const allJson = this.pendingJson;
      const whole = all.length <= max;
      const batch = whole ? all : all.slice(0, max);
      const jsons = whole ? allJson : allJson.slice(0, max);
      this.pending = whole ? [] : all.slice(max);
      this.pendingJson = whole ? [] : allJson.slice(max);
      const from = this.flushed;
      this.flushed += batch.length;
      const shared = { batch, jsons, frame: null };
      for (const sub of this.subs) if (sub.shareable) sub._takeShared(batch, from, shared);
    }
  }

  /** A WritableStream of messages or arrays of messages published to this topic. */
  get writable() {
    if (this._writable === null) {
      this._writable = new WritableStream({ write: (chunk) => this.gateway.publish(this.name, chunk) });
    }
    return this._writable;
  }

  publish(messages, options) {
    return this.gateway.publish(this.name, messages, options);
  }

  get subscribers() {
    return this.subs.size;
  }
}

class Gateway {
  constructor(o) {
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`createGateway options must be an object, got ${describe(o)}`);
    for (const k of Object.keys(o)) if (!GATEWAY_OPTIONS.has(k)) throw new TypeError(`createGateway has an unknown option ${JSON.stringify(k)}`);
    this.host = o.host ?? '127.0.0.1';
    this.requestedPort = o.port ?? 0;
    if (!Number.isInteger(this.requestedPort) || this.requestedPort < 0 || this.requestedPort > 65535) throw new RangeError(`port must be an integer in 0..65535, got ${describe(o.port)}`);
    this.path = o.path ?? '/';
    if (typeof this.path !== 'string' || !this.path.startsWith('/')) throw new TypeError(`path must be a string starting with '/', got ${describe(o.path)}`);
    this.maxPayload = positiveInt(o, 'maxPayload', 1 << 20);
    this.heartbeatInterval = positiveInt(o, 'heartbeatInterval', 15000);
    this.idleTimeout = positiveInt(o, 'idleTimeout', Math.max(2 * this.heartbeatInterval, 1000));
    this.maxClients = positiveInt(o, 'maxClients', 10000);
    this.maxBufferSize = positiveInt(o, 'maxBufferSize', 10000);
    this.hiddenInterval = positiveInt(o, 'hiddenInterval', 1000);
    this.ackWindow = positiveInt(o, 'ackWindow', 128 * 1024);
    this.maxSubscriptions = positiveInt(o, 'maxSubscriptions', 100);
    if (o.hardLimit === false) this.hardLimit = null;
    else {
      const h = o.hardLimit ?? {};
      if (typeof h !== 'object' || Array.isArray(h)) throw new TypeError(`hardLimit must be an object or false, got ${describe(h)}`);
      this.hardLimit = { stallMs: positiveInt(h, 'stallMs', 60000), pendingMessages: positiveInt(h, 'pendingMessages', 10000) };
    }
    if (o.authorize !== undefined && typeof o.authorize !== 'function') throw new TypeError(`authorize must be a function, got ${describe(o.authorize)}`);
    this.authorize = o.authorize ?? null;
    if (o.onDrop !== undefined && typeof o.onDrop !== 'function') throw new TypeError(`onDrop must be a function, got ${describe(o.onDrop)}`);
    this.onDrop = o.onDrop ?? null;
    this.policy = this._checkPolicy({ ...DEFAULT_POLICY, ...(o.policy ?? {}) }, 'policy', RangeError);
    // History: an object with since() is used as is; { size } (or nothing) is the in-memory one.
    if (o.history !== undefined && (typeof o.history !== 'object' || o.history === null)) throw new TypeError(`history must be an object, got ${describe(o.history)}`);
    if (o.history && typeof o.history.since === 'function') this.history = o.history;
    else this.history = new MemoryHistory(o.history ?? {});
    // Known topics: the list given, plus any created by topic() or publish().
    this.topicFilter = null;
    this.topics = new Map();
    if (typeof o.topics === 'function') this.topicFilter = o.topics;
    else if (o.topics !== undefined) {
      if (!Array.isArray(o.topics)) throw new TypeError(`topics must be an array of names or a function, got ${describe(o.topics)}`);
      for (const t of o.topics) this.topic(t);
    }
    this.engine = o.engine ?? new StreamEngine();
    this.ownEngine = o.engine === undefined;
    this.server = o.server ?? null;
    this.ownServer = this.server === null;
    this.clients = new Set();
    this.nextClientId = 1;
    this.closed = false;
    this.stats = { connections: 0, rejected: 0, closedSlow: 0, closedIdle: 0, errorsSent: 0, errorsSuppressed: 0, framesSent: 0, messagesSent: 0, framesShared: 0, framesDirect: 0 };
    // ws enforces a hard cap (closes with 1009); below it, oversized frames get an error frame.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxPayload * 4, perMessageDeflate: false });
    this.timer = null;
    this.fanning = false; // a fan-out or flush is running (see _exclusive)
    this.deferred = [];
  }

  _checkPolicy(p, what, Err = RangeError) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new TypeError(`${what} must be an object, got ${describe(p)}`);
    for (const k of Object.keys(p)) if (!POLICY_OPTIONS.has(k)) throw new TypeError(`${what} has an unknown option ${JSON.stringify(k)}; known: ${[...POLICY_OPTIONS].join(', ')}`);
    if (p.dropPolicy === 'block') throw new Err(`${what}.dropPolicy 'block' is not allowed at the gateway: one client must not hold up a topic`);
    if (p.bufferSize !== undefined && (!Number.isInteger(p.bufferSize) || p.bufferSize < 1 || p.bufferSize > (this.maxBufferSize ?? 10000))) {
      throw new Err(`${what}.bufferSize must be an integer in 1..${this.maxBufferSize ?? 10000}, got ${describe(p.bufferSize)}`);
    }
    if (p.targetLatency !== undefined && (typeof p.targetLatency !== 'number' || !(p.targetLatency > 0) || p.targetLatency > 600000)) {
      throw new Err(`${what}.targetLatency must be a number of ms in (0, 600000], got ${describe(p.targetLatency)}`);
    }
    return p;
  }

  /** The engine connection config of a subscription (validated by the engine itself). */
  _connectionConfig(policy, onDrop) {
    const { targetLatency, ...rest } = { ...this.policy, ...policy };
    const cfg = { ...rest, onDrop };
    if (targetLatency !== undefined) {
      delete cfg.dropPolicy;
      cfg.backpressureHandler = new AdaptiveBackpressureHandler({ targetLatency, maxWaitTime: 0 });
    } else cfg.maxWaitTime = 0; // the publisher is never held by one subscriber
    return cfg;
  }

  _listen() {
    if (this.ownServer) this.server = createServer((req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' });
      res.end('websocket only\n');
    });
    this._onUpgrade = (req, socket, head) => this._upgrade(req, socket, head);
    this.server.on('upgrade', this._onUpgrade);
    this.timer = setInterval(() => this._heartbeat(), Math.min(this.heartbeatInterval, 1000));
    this.timer.unref?.();
    if (!this.ownServer) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.requestedPort, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** The port the gateway listens on. */
  get port() {
    return this.server.address()?.port;
  }

  /** `ws://host:port/path`. */
  get url() {
    return `ws://${this.host}:${this.port}${this.path}`;
  }

  /** The topic `name` (created on first use). */
  topic(name) {
    const err = topicError(name);
    if (err) throw new TypeError(err);
    let t = this.topics.get(name);
    if (t === undefined) {
      t = new Topic(this, name);
      this.topics.set(name, t);
    }
    return t;
  }

  _known(name) {
    if (this.topics.has(name)) return this.topics.get(name);
    if (this.topicFilter !== null) {
      let ok = false;
      try {
        ok = this.topicFilter(name) === true;
      } catch {
        ok = false;
      }
      if (ok) return this.topic(name);
    }
    return undefined;
  }

  /**
   * Publishes a message or an array of messages to `topic`. With `{ seq }` (one per message) the
   * history's append is skipped (the messages were stored elsewhere, e.g. Redis entry ids).
   * Returns the seqs (a promise if the history's append is asynchronous).
   */
  publish(topic, messageOrMessages, options) {
    if (this.closed) throw new Error('the gateway is closed');
    const t = this.topic(topic);
    const messages = Array.isArray(messageOrMessages) ? messageOrMessages : [messageOrMessages];
    // The JSON made by the check below is kept for the topic's shared batch (a few ms, until its
    // flush), not per message: see messageJson.
    const jsons = t.shareable > 0 ? new Array(messages.length) : null;
    for (let i = 0; i < messages.length; i++) {
      const what = Array.isArray(messageOrMessages) ? `messages[${i}]` : 'message';
      checkMessage(messages[i], what);
      priorityOf(messages[i]); // throws on a malformed priority before anything is fanned out
      // Serialised here to check it: a message JSON cannot carry (a BigInt, a cycle) is refused
      // now, not when a frame for it is being sent.
      try {
        const j = messageJson(messages[i]);
        if (jsons !== null) jsons[i] = j;
      } catch (e) {
        throw new TypeError(`${what} cannot be sent as JSON: ${e?.message ?? e}`);
      }
    }
    if (messages.length === 0) return [];
    let seqs;
    const given = options?.seq;
    if (given !== undefined) {
      seqs = Array.isArray(given) ? given : [given];
      if (seqs.length !== messages.length || seqs.some((s) => typeof s !== 'string')) {
        throw new TypeError(`seq must be a string per message (${messages.length}), got ${describe(given)}`);
      }
    } else if (typeof this.history.append === 'function') {
      const r = t.chain === null ? this.history.append(topic, messages) : null;
      if (r !== null && typeof r?.then !== 'function') seqs = r;
      else {
        // Asynchronous history: fan out in publish order once the seqs are known.
        const prev = t.chain ?? Promise.resolve();
        const p = prev.then(() => (r !== null ? r : this.history.append(topic, messages))).then((s) => {
          this._fanOut(t, messages, s, jsons);
          return s;
        });
        const tail = p.catch(() => {});
        t.chain = tail;
        tail.then(() => {
          if (t.chain === tail) t.chain = null;
        });
        return p;
      }
    }
    this._fanOut(t, messages, seqs, jsons);
    return seqs;
  }

  /**
   * Runs `fn` (a fan-out or a flush) unless one is running already; then it runs right after it.
   * An onDrop handler may publish while a batch is being handed out (to the same topic, say):
   * handed out at once, its messages would reach the subscribers not yet served before the batch
   * published earlier (and nested flushes hand out the newest first).
   */
  _exclusive(fn) {
    if (this.fanning) {
      this.deferred.push(fn);
      return;
    }
    this.fanning = true;
    try {
      fn();
      while (this.deferred.length > 0) this.deferred.shift()();
    } finally {
      this.fanning = false;
    }
  }

  /** Hands published messages to the subscribers; `jsons`: their JSON, when already made. */
  _fanOut(t, messages, seqs, jsons) {
    if (this.fanning) {
      this.deferred.push(() => this._fanOut0(t, messages, seqs, jsons));
      return;
    }
    // _exclusive, without a closure per publish.
    this.fanning = true;
    try {
      this._fanOut0(t, messages, seqs, jsons);
      while (this.deferred.length > 0) this.deferred.shift()();
    } finally {
      this.fanning = false;
    }
  }

  _fanOut0(t, messages, seqs, jsons) {
    if (seqs !== undefined) {
      for (let i = 0; i < messages.length; i++) t.seqOf.set(messages[i], seqs[i]);
      t.lastSeq = seqs[seqs.length - 1];
    }
    t.published += messages.length;
    for (const sub of t.subs) if (!sub.shareable) sub.offer(messages);
    if (t.shareable > 0) t._queueShared(messages, jsons);
  }

  _upgrade(req, socket, head) {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.path || this.closed) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.on('error', () => {});
    let decision;
    try {
      decision = this.authorize === null ? true : this.authorize(req);
    } catch {
      decision = false;
    }
    Promise.resolve(decision).then(
      (d) => this._accept(req, socket, head, d),
      () => this._accept(req, socket, head, false),
    );
  }

  _accept(req, socket, head, d) {
    if (d === false || d === null || d === undefined || this.closed) {
      this.stats.rejected++;
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    let access;
    try {
      access =
        d === true
          ? { subscribe: () => true, publish: () => false }
          : { subscribe: accessPredicate(d.subscribe ?? true, 'subscribe'), publish: accessPredicate(d.publish, 'publish') };
    } catch (e) {
      console.error(e);
      socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.clients.size >= this.maxClients) {
        this.stats.rejected++;
        ws.close(CLOSE_CODES.TRY_AGAIN_LATER, 'too many clients');
        return;
      }
      const c = new Client(this, ws, access, this.nextClientId++);
      this.clients.add(c);
      this.stats.connections++;
    });
  }

  _heartbeat() {
    const t = Date.now();
    for (const c of this.clients) c.tick(t);
  }

  /** Gateway-wide figures: clients, topics, the process's memory and the send counters. */
  metrics() {
    const topics = {};
    for (const [name, t] of this.topics) topics[name] = { subscribers: t.subs.size, published: t.published, lastSeq: t.lastSeq };
    let buffered = 0;
    let bufferedAmount = 0;
    for (const c of this.clients) {
      bufferedAmount += c.ws.bufferedAmount;
      for (const s of c.subs.values()) buffered += s.buffered();
    }
    return { clients: this.clients.size, topics, buffered, bufferedAmount, ...this.stats, memory: process.memoryUsage() };
  }

  /** Closes every client (1001), the engine (if the gateway made it) and the server it made. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const c of [...this.clients]) c.close(CLOSE_CODES.GOING_AWAY, 'gateway closing');
    for (const t of this.topics.values()) if (t.flushTimer !== null) clearTimeout(t.flushTimer);
    this.server.off('upgrade', this._onUpgrade);
    if (this.ownEngine) this.engine.destroy();
    await new Promise((r) => this.wss.close(() => r()));
    if (this.ownServer) {
      await new Promise((r) => {
        this.server.closeAllConnections?.();
        this.server.close(() => r());
      });
    }
  }
}

class Subscription {
  constructor(client, topic, policy, mode) {
    this.client = client;
    this.topic = topic;
    this.mode = mode;
    this.dropped = 0;
    this.replaying = false;
    this.replayedTo = null;
    this.pendingLive = [];
    this.pendingCount = 0;
    this.reader = null;
    this.closed = false;
    // The pump's state (see _arm): asked the connection for a batch; a batch that found the
    // socket busy (held until it is free: one per subscription at most); waiting for the socket;
    // the hidden-tab interval's timer and when the last hidden batch went.
    this.armed = false;
    this.held = null;
    this.waitingFree = false;
    this.hiddenTimer = null;
    this.lastHidden = 0;
    // Shareable: on the gateway's own policy (the client asked for none) without conflation.
    // Such a subscriber takes the topic's shared batch (Topic.flush): while it keeps up (its
    // socket free, nothing waiting in its engine connection: `direct`), the batch goes straight to
    // its socket in a frame built once for all of them, with no per-subscriber engine write,
    // batch timer or read. Once it falls behind, its batches go through its engine connection
    // like any other's, until that connection is empty again. `from`: the topic's flush count when
    // it subscribed (what was pending then is not its).
    this.shareable = Object.keys(policy).length === 0 && !client.gateway.policy.conflate;
    this.direct = false;
    this.from = topic.flushed + topic.pending.length;
    this.onBatch = (batch) => this._onBatch(batch);
    this.onFree = () => {
      this.waitingFree = false;
      this._arm();
    };
    const onDrop = client.gateway.onDrop;
    const info = { client: client.id, topic: topic.name };
    const cfg = client.gateway._connectionConfig(policy, (message, reason) => {
      this.dropped++;
      if (onDrop !== null) onDrop(message, reason, info);
    });
    const engine = client.gateway.engine;
    // Topic names are any string; connection ids may not hold ':' or '->', so the name is
    // percent-encoded where it becomes part of one.
    const port = encodeURIComponent(topic.name);
    this.id = engine.createConnection(`topic.${port}`, `client-${client.id}`, 'out', port, cfg);
    this.conn = engine.getConnection(this.id);
    const limit = client.gateway.hardLimit?.pendingMessages ?? Infinity;
    this.feeder = new Feeder(this.conn, limit, () => {
      if (client.gateway.hardLimit) client.close(CLOSE_CODES.TOO_SLOW, 'too slow: undeliverable messages piled up');
    });
  }

  /** Messages held for this subscriber: the engine buffer plus any refused-and-waiting ones. */
  buffered() {
    if (this.closed) return 0;
    const t = this.topic;
    // Its part of the topic's shared batch: what was published after it subscribed.
    const shared = this.shareable ? t.flushed + t.pending.length - Math.max(this.from, t.flushed) : 0;
    return this.client.gateway.engine.getMetrics(this.id).bufferSize + this.feeder.queued + this.pendingCount + shared;
  }

  /**
   * A batch of the topic's shared feed (Topic.flush); `from` is the topic's flush count at its
   * first message, `shared` holds the frame once built. Written straight to the socket while this
   * subscriber is direct and its socket is free; otherwise offered to its engine connection.
   */
  _takeShared(batch, from, shared) {
    if (this.closed) return;
    if (from < this.from) {
      // Published before this subscriber came: only the rest is its.
      if (from + batch.length <= this.from) return;
      batch = batch.slice(this.from - from);
      shared = null;
    }
    const c = this.client;
    if (this.direct && shared !== null && !c.closed && !c.busy()) {
      this._send(batch, shared);
      return;
    }
    this.direct = false;
    this.offer(batch);
    this._arm();
    // Already batched by the topic: due now, not a second batchTimeout later (see _arm).
    if (this.armed && this.conn._waiter === this.onBatch) {
      try {
        this.conn._serve(true);
      } catch {
        // The engine went away under us (destroyed): as in _arm.
      }
    }
  }

  /** Whether nothing waits for this subscriber anywhere but in the topic's shared batch. */
  _caughtUp() {
    const conn = this.conn;
    return this.shareable && this.mode === 'live' && !this.replaying && this.replayedTo === null && this.dropped === 0 && this.held === null &&
      conn._empty && conn._pending === null && !this.feeder.waiting && this.feeder.queued === 0;
  }

  offer(messages) {
    if (this.closed) return;
    if (this.replaying) {
      this.pendingLive.push(messages);
      this.pendingCount += messages.length;
      return;
    }
    if (this.replayedTo !== null) messages = this._afterReplay(messages);
    if (messages.length > 0) this.feeder.write(messages);
  }

  /**
   * A history read by another process (Redis) can be ahead of this gateway's live feed: drops live
   * messages the replay already sent (seq not after its last), until the feed passes it.
   */
  _afterReplay(messages) {
    const to = this.replayedTo;
    const seqOf = this.topic.seqOf;
    // Not comparable (NaN) counts as after: never drop what cannot be shown to be a repeat.
    const rest = messages.filter((m) => !(compareSeqs(seqOf.get(m), to) <= 0));
    if (rest.length > 0) this.replayedTo = null; // the live feed has caught up
    return rest;
  }

  /** Replays what the client missed from the history, then lets live messages through. */
  async replay(afterSeq) {
    const g = this.client.gateway;
    this.replaying = true;
    this.replayedTo = null;
    const seen = new Set();
    try {
      let after = afterSeq;
      let first = true;
      for (let page = 0; page < 1000 && !this.closed; page++) {
        const limit = 1000;
        const { entries, gap } = await g.history.since(this.topic.name, after, limit);
        if (this.closed) return;
        if (first && gap) this.client.send({ op: 'gap', topic: this.topic.name, afterSeq });
        first = false;
        if (entries.length === 0) break;
        const msgs = new Array(entries.length);
        for (let i = 0; i < entries.length; i++) {
          const { seq, message } = entries[i];
          msgs[i] = message;
          seen.add(message.id);
          this.topic.seqOf.set(message, seq);
        }
        this.feeder.write(msgs);
        after = this.replayedTo = entries[entries.length - 1].seq;
        if (entries.length < limit) break;
      }
    } catch (e) {
      this.client.error(ERROR_CODES.BAD_REQUEST, `history unavailable: ${e?.message ?? e}`, { topic: this.topic.name });
      this.client.send({ op: 'gap', topic: this.topic.name, afterSeq });
    }
    this.replaying = false;
    const live = this.pendingLive;
    this.pendingLive = [];
    this.pendingCount = 0;
    for (const batch of live) {
      const rest = seen.size === 0 ? batch : batch.filter((m) => !seen.has(m.id));
      if (rest.length > 0) this.offer(rest);
    }
  }

  setMode(mode) {
    this.mode = mode;
    if (mode !== 'live') this.direct = false;
    // Paused in the engine: a batch already asked for is not served either; the buffer keeps the
    // latest value per key (with conflate) and sheds by the policy, so it stays bounded.
    if (mode === 'pause') this.conn.pause();
    else this.conn.resume();
    if (mode !== 'conflate' && this.hiddenTimer !== null) {
      clearTimeout(this.hiddenTimer);
      this.hiddenTimer = null;
      this._arm();
    }
  }

  /**
   * The pump, as callbacks rather than a loop of promises (it runs once per frame per
   * subscriber): asks the engine connection for its next batch only while the client's socket is
   * free. The engine hands the batch over when it is due (full, or batchTimeout after its first
   * message; at once with batchTimeout 0), synchronously inside the publish that completes it.
   * While the socket is busy, messages wait in the engine (bounded and shed by the policy), and
   * the next read takes them together: fewer, larger frames for a busy client, one frame per
   * batch, never a frame queued behind a busy socket.
   */
  start() {
    this.reader = this.conn.readable.getReader(); // nobody else reads; cancelled on close
    this._arm();
  }

  _arm() {
    if (this.closed || this.armed || this.waitingFree || this.hiddenTimer !== null) return;
    const c = this.client;
    if (c.closed) return;
    if (c.busy()) {
      this.waitingFree = true;
      c.onFree(this.onFree);
      return;
    }
    if (this.held !== null) {
      const batch = this.held;
      this.held = null;
      this._send(batch);
      return;
    }
    if (this.mode === 'conflate') {
      // Hidden tab: one batch per hiddenInterval; meanwhile the engine keeps the latest value per
      // key (and sheds by policy), so memory stays bounded however long the tab is hidden.
      const wait = this.lastHidden + c.gateway.hiddenInterval - Date.now();
      if (wait > 0) {
        this.hiddenTimer = setTimeout(() => {
          this.hiddenTimer = null;
          this._arm();
        }, wait);
        return;
      }
    }
    const conn = this.conn;
    if (conn._finished) return;
    if (this._caughtUp()) {
      // Nothing to read: the next shared batch goes straight to the socket (see _takeShared).
      this.direct = true;
      return;
    }
    this.direct = false;
    this.armed = true;
    conn._waiter = this.onBatch;
    try {
      // A shareable subscriber's connection holds only batches the topic has already held for
      // batchTimeout (Topic.flush): what it holds is due at once (forced), not batchTimeout later.
      conn._serve(this.shareable);
    } catch {
      // The engine went away under us (destroyed): this subscription ends with it.
      this.armed = false;
      if (conn._waiter === this.onBatch) conn._waiter = null;
    }
  }

  _onBatch(batch) {
    // Called by the connection inside its own bookkeeping: never ask it again from here.
    this.armed = false;
    if (batch === null || this.closed) return;
    if (this.mode === 'conflate') this.lastHidden = Date.now();
    const c = this.client;
    if (c.closed) return;
    // Another subscription of this client may have sent since this one asked: hold the batch
    // until the socket is free rather than queue it.
    if (c.busy()) {
      this.held = batch;
      this.waitingFree = true;
      c.onFree(this.onFree);
      return;
    }
    this._send(batch);
  }

  /** Sends `batch` as one frame: the topic's `shared` frame when given (see _takeShared). */
  _send(batch, shared = null) {
    const c = this.client;
    try {
      if (shared !== null) c.sendShared(this, shared);
      else c.sendData(this, batch);
    } catch {
      // Runs inside the engine's delivery (a publish, a batch timer): nothing may throw out of
      // here. Messages are serialised when published, so this is not expected; the client is
      // closed (1011) and resumes by seq from the history.
      c.close(CLOSE_CODES.INTERNAL_ERROR, 'internal error');
      return;
    }
    // The socket is busy until the frame's send callback: the next read waits for it.
    this.waitingFree = true;
    c.onFree(this.onFree);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.direct = false;
    const t = this.topic;
    if (this.shareable) {
      // What is pending in the topic's shared batch was this subscriber's too: dead-lettered with
      // its connection's buffer below, as a per-subscriber buffer would have been.
      const onDrop = this.client.gateway.onDrop;
      if (onDrop !== null) {
        const info = { client: this.client.id, topic: t.name };
        const pending = t.pending;
        for (let i = Math.max(0, this.from - t.flushed); i < pending.length; i++) reportDrop(onDrop, pending[i], 'dead-letter', info);
      }
      if (--t.shareable === 0) {
        t.pending = [];
        t.pendingJson = [];
        if (t.flushTimer !== null) clearTimeout(t.flushTimer);
        t.flushTimer = null;
      }
    }
    // What waits for this subscriber outside its engine buffer is dead-lettered as well, never
    // lost silently: a batch held for a busy socket, a write its connection has not admitted yet
    // (a buffer full of critical messages) and the Feeder's queue behind it. (Live messages held
    // during a replay are not: the replay may have sent them already.)
    const onDrop = this.client.gateway.onDrop;
    if (onDrop !== null) {
      const info = { client: this.client.id, topic: t.name };
      const waiting = [];
      if (this.held !== null) waiting.push(this.held);
      const p = this.conn._pending;
      if (p !== null && p.w !== undefined) waiting.push(p.w.arr.slice(p.w.off));
      for (const b of this.feeder.queue) waiting.push(b);
      for (const b of waiting) for (const m of b) reportDrop(onDrop, m, 'dead-letter', info);
    }
    this.held = null;
    if (this.hiddenTimer !== null) clearTimeout(this.hiddenTimer);
    this.hiddenTimer = null;
    // A batch asked for and not yet due stays in the engine (dead-lettered by the cancel below).
    if (this.armed && this.conn._waiter === this.onBatch) this.conn._waiter = null;
    this.armed = false;
    this.feeder.close();
    this.pendingLive = [];
    this.pendingCount = 0;
    this.topic.subs.delete(this);
    if (this.topic.subs.size === 0) this.topic.lastBatch = this.topic.lastFrame = null;
    const engine = this.client.gateway.engine;
    if (!engine.destroyed && engine.getConnection(this.id) === this.conn) {
      // Whatever was buffered for this client goes (it resumes by seq from the history).
      engine.closeConnection(this.id).catch(() => {});
      this.reader?.cancel('unsubscribed').catch(() => {});
    }
  }
}

/**
 * Calls the gateway's onDrop from the gateway's own bookkeeping (a subscription closing): a
 * handler that throws is logged, as the engine does for the drops it reports, so that it cannot
 * stop the close half-way or escape into a socket's event handler and take the process down.
 */
function reportDrop(onDrop, message, reason, info) {
  try {
    onDrop(message, reason, info);
  } catch (e) {
    console.error(e);
  }
}

/** Whether batch `b` holds the same messages, in order, as `a` (the topic's last frame's batch). */
function sameBatch(a, b) {
  if (a === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A message's JSON for a frame. Not cached per message: the subscribers of a topic mostly share
 * one frame (see Topic.lastFrame), so a message is serialised about once for them anyway, and a
 * cache (a WeakMap until 2026-11) kept every message's JSON for as long as the history keeps the
 * message (1,000 per topic): at full bench load those strings, each copied by the young-generation
 * collector and then promoted, nearly tripled its pauses (median 9.4 ms against 3.4 ms without).
 */
function messageJson(m) {
  return JSON.stringify(m);
}

/**
 * A data frame, as the bytes of a whole WebSocket text frame (`bytes`: header and payload) and
 * the payload's size (what acknowledgements count): the topic, the seq of the batch's last
 * message (when known), how many messages this subscriber lost since its last frame (when any),
 * and the messages, whose JSON is taken from `jsons` where given. Made once, so that every
 * subscriber that gets this batch is written the same bytes (see Client._write).
 */
function dataFrame(t, batch, dropped, jsons) {
  const seq = t.seqOf.get(batch[batch.length - 1]);
  let head = t.frameHead;
  if (seq !== undefined) head += `,"seq":${JSON.stringify(seq)}`;
  if (dropped > 0) head += `,"dropped":${dropped}`;
  let body = '';
  for (let i = 0; i < batch.length; i++) body += (i === 0 ? '' : ',') + ((jsons != null ? jsons[i] : null) ?? messageJson(batch[i]));
  return wsTextFrame(`${head},"messages":[${body}]}`);
}

/**
 * `text` as one unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2: a server's
 * frames are not masked): a 2, 4 or 10 byte header, then the UTF-8 payload, in one buffer.
 */
function wsTextFrame(text) {
  const size = Buffer.byteLength(text);
  const h = size < 126 ? 2 : size < 65536 ? 4 : 10;
  const bytes = Buffer.allocUnsafe(h + size);
  bytes[0] = 0x81; // FIN, opcode 1 (text)
  if (h === 2) bytes[1] = size;
  else if (h === 4) {
    bytes[1] = 126;
    bytes.writeUInt16BE(size, 2);
  } else {
    bytes[1] = 127;
    bytes.writeUInt32BE(Math.floor(size / 2 ** 32), 2);
    bytes.writeUInt32BE(size >>> 0, 6);
  }
  bytes.write(text, h);
  return { bytes, size };
}

class Client {
  constructor(gateway, ws, access, id) {
    this.gateway = gateway;
    this.ws = ws;
    this.access = access;
    this.id = id;
    this.subs = new Map();
    this.inflight = 0;
    this.busySince = 0;
    // Application-level flow control, for clients that acknowledge data frames (the gateway
    // client does): the kernel's socket buffers hide a slow page for megabytes, and a browser's
    // WebSocket reads whatever arrives. Unacknowledged bytes over ackWindow make the socket busy.
    this.acking = false;
    this.unacked = []; // bytes, sentAt, bytes, sentAt, ...: two numbers per data frame not yet acknowledged
    this.unackedHead = 0;
    this.unackedBytes = 0;
    this.waiters = []; // callbacks of subscriptions waiting for the socket to be free
    this.closed = false;
    this.lastSeen = Date.now();
    this.lastHeartbeat = Date.now();
    this.onSent = (err) => {
      this.inflight--;
      if (err) return this.close();
      if (this.inflight === 0) this._release();
    };
    ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
    ws.on('pong', () => {
      this.lastSeen = Date.now();
    });
    ws.on('close', () => this._closed());
    ws.on('error', () => this._closed());
    this.send({ op: 'welcome', v: PROTOCOL_VERSION, heartbeat: gateway.heartbeatInterval, maxPayload: gateway.maxPayload, ackWindow: gateway.ackWindow });
  }

  /** Busy: a frame is still being written (its send callback has not fired), or too much is unacknowledged. */
  busy() {
    return this.inflight > 0 || (this.acking && this.unackedBytes >= this.gateway.ackWindow);
  }

  _ack(f) {
    const n = f.frames;
    if (!Number.isInteger(n) || n < 0) return this.error(ERROR_CODES.BAD_REQUEST, `frames must be a non-negative integer, got ${describe(n)}`);
    this.acking = true;
    for (let i = 0; i < n && this.unackedHead < this.unacked.length; i++, this.unackedHead += 2) this.unackedBytes -= this.unacked[this.unackedHead];
    if (this.unackedHead > 2048 && this.unackedHead * 2 > this.unacked.length) {
      this.unacked = this.unacked.slice(this.unackedHead);
      this.unackedHead = 0;
    }
    if (!this.busy()) this._release();
  }

  /** Calls `fn` once the socket is free (each subscription registers once; see Subscription._arm). */
  onFree(fn) {
    this.waiters.push(fn);
  }

  _release() {
    if (this.waiters.length === 0) return;
    const w = this.waiters;
    this.waiters = [];
    // In order: the first to send makes the socket busy again, and the others wait once more.
    for (const fn of w) fn();
  }

  /**
   * A control frame (small, rare): sent even when the socket is busy, unless over 1 MiB is queued
   * already (a client flooding us with requests while not reading cannot grow our memory).
   */
  send(obj) {
    if (this.closed || this.ws.readyState !== 1) return;
    if (this.ws.bufferedAmount > 1 << 20) {
      this.gateway.stats.errorsSuppressed++;
      return;
    }
    this.inflight++;
    if (this.inflight === 1) this.busySince = Date.now();
    this.ws.send(JSON.stringify(obj), this.onSent);
  }

  error(code, message, extra) {
    // A client that floods us with bad frames while not reading cannot grow our memory.
    if (this.ws.bufferedAmount > 1 << 20) {
      this.gateway.stats.errorsSuppressed++;
      return;
    }
    this.gateway.stats.errorsSent++;
    this.send({ op: 'error', code, message, ...extra });
  }

  sendData(sub, batch) {
    const t = sub.topic;
    let frame;
    if (sub.dropped === 0 && sameBatch(t.lastBatch, batch)) {
      frame = t.lastFrame;
      this.gateway.stats.framesShared++;
    } else {
      const dropped = sub.dropped;
      sub.dropped = 0;
      frame = dataFrame(t, batch, dropped, null);
      // Kept only where another subscriber may reuse it (one frame per topic at most).
      if (dropped === 0 && t.subs.size > 1) {
        t.lastBatch = batch;
        t.lastFrame = frame;
      }
    }
    this._write(frame, batch.length);
  }

  /** A batch of the topic's shared feed (Topic.flush): the frame is built by the first writer. */
  sendShared(sub, shared) {
    if (shared.frame === null) shared.frame = dataFrame(sub.topic, shared.batch, 0, shared.jsons);
    else this.gateway.stats.framesShared++;
    this.gateway.stats.framesDirect++;
    this._write(shared.frame, shared.batch.length);
  }

  /**
   * Writes a data frame. Its bytes are a whole WebSocket frame, written to the socket as one
   * buffer: ws.send would frame the payload anew for each subscriber and write header and payload
   * as two chunks (cork, writev), the costliest step per frame at a thousand clients. This is safe
   * beside ws's own sends because the gateway's ws server has no permessage-deflate and is never
   * given a Blob, the two cases where ws queues a frame instead of writing it at once; a closing
   * socket gets nothing more (ws would refuse the send the same way).
   */
  _write(frame, messages) {
    this.inflight++;
    if (this.inflight === 1) this.busySince = Date.now();
    const ws = this.ws;
    if (ws.readyState !== 1) {
      queueMicrotask(() => this.onSent(new Error('WebSocket is not open')));
      return;
    }
    this.gateway.stats.framesSent++;
    this.gateway.stats.messagesSent += messages;
    if (this.acking) {
      this.unacked.push(frame.size, Date.now());
      this.unackedBytes += frame.size;
    }
    ws._socket.write(frame.bytes, this.onSent);
  }

  tick(t) {
    const g = this.gateway;
    if (t - this.lastSeen > g.idleTimeout) {
      g.stats.closedIdle++;
      this.ws.terminate();
      this._closed();
      return;
    }
    if (g.hardLimit && this.inflight > 0 && t - this.busySince > g.hardLimit.stallMs) {
      this.close(CLOSE_CODES.TOO_SLOW, 'too slow: socket stalled');
      return;
    }
    if (g.hardLimit && this.unackedHead < this.unacked.length && t - this.unacked[this.unackedHead + 1] > g.hardLimit.stallMs) {
      this.close(CLOSE_CODES.TOO_SLOW, 'too slow: frames not acknowledged');
      return;
    }
    if (t - this.lastHeartbeat >= g.heartbeatInterval) {
      this.lastHeartbeat = t;
      this.ws.ping();
      this.send({ op: 'hb', t });
    }
  }

  _onMessage(data, isBinary) {
    this.lastSeen = Date.now();
    const g = this.gateway;
    if (data.length > g.maxPayload) return this.error(ERROR_CODES.OVERSIZED, `frame of ${data.length} bytes is over maxPayload (${g.maxPayload})`);
    if (isBinary) return this.error(ERROR_CODES.MALFORMED, 'binary frames are not supported: send JSON text');
    let f;
    try {
      f = JSON.parse(data.toString());
    } catch {
      return this.error(ERROR_CODES.MALFORMED, 'frame is not valid JSON');
    }
    if (typeof f !== 'object' || f === null || Array.isArray(f)) return this.error(ERROR_CODES.MALFORMED, 'frame must be a JSON object');
    const ref = typeof f.ref === 'string' || typeof f.ref === 'number' ? { ref: f.ref } : {};
    try {
      switch (f.op) {
        case 'subscribe':
          return this._subscribe(f, ref);
        case 'unsubscribe':
          return this._unsubscribe(f, ref);
        case 'mode':
          return this._mode(f, ref);
        case 'publish':
          return this._publish(f, ref);
        case 'ack':
          return this._ack(f);
        case 'ping':
          return this.send({ op: 'pong', ...(typeof f.t === 'number' ? { t: f.t } : {}) });
        default:
          return this.error(ERROR_CODES.UNKNOWN_OP, `unknown op ${describe(f.op)}`, ref);
      }
    } catch (e) {
      // Validation by the engine (a TypeError or RangeError naming the field).
      return this.error(ERROR_CODES.BAD_REQUEST, String(e?.message ?? e), { ...(typeof f.topic === 'string' ? { topic: f.topic } : {}), ...ref });
    }
  }

  _topicOf(f, ref, allowed) {
    const err = topicError(f.topic);
    if (err) {
      this.error(ERROR_CODES.BAD_REQUEST, err, ref);
      return undefined;
    }
    // Authorisation first, so that a refused client learns nothing about which topics exist.
    if (!allowed(f.topic)) {
      this.error(ERROR_CODES.UNAUTHORIZED, `not allowed: ${f.topic}`, { topic: f.topic, ...ref });
      return undefined;
    }
    const t = this.gateway._known(f.topic);
    if (t === undefined) this.error(ERROR_CODES.UNKNOWN_TOPIC, `unknown topic ${describe(f.topic)}`, { topic: f.topic, ...ref });
    return t;
  }

  _subscribe(f, ref) {
    const t = this._topicOf(f, ref, this.access.subscribe);
    if (t === undefined) return;
    if (this.subs.has(t.name)) return this.error(ERROR_CODES.BAD_REQUEST, `already subscribed to ${t.name}`, { topic: t.name, ...ref });
    // Each subscription is an engine connection: one socket cannot make the gateway hold thousands.
    if (this.subs.size >= this.gateway.maxSubscriptions) return this.error(ERROR_CODES.BAD_REQUEST, `too many subscriptions (maxSubscriptions ${this.gateway.maxSubscriptions})`, { topic: t.name, ...ref });
    if (f.afterSeq !== undefined && typeof f.afterSeq !== 'string') return this.error(ERROR_CODES.BAD_REQUEST, `afterSeq must be a string, got ${describe(f.afterSeq)}`, { topic: t.name, ...ref });
    const mode = f.mode ?? 'live';
    if (!MODES.includes(mode)) return this.error(ERROR_CODES.BAD_REQUEST, `mode must be one of ${MODES.join(', ')}, got ${describe(mode)}`, { topic: t.name, ...ref });
    const policy = this.gateway._checkPolicy(f.policy ?? {}, 'policy');
    const sub = new Subscription(this, t, policy, 'live');
    if (mode !== 'live') sub.setMode(mode);
    this.subs.set(t.name, sub);
    t.subs.add(sub);
    if (sub.shareable) t.shareable++;
    this.send({ op: 'subscribed', topic: t.name, ...(t.lastSeq !== undefined ? { seq: t.lastSeq } : {}), ...ref });
    if (f.afterSeq !== undefined) sub.replay(f.afterSeq);
    sub.start();
  }

  _unsubscribe(f, ref) {
    const sub = typeof f.topic === 'string' ? this.subs.get(f.topic) : undefined;
    if (sub === undefined) return this.error(ERROR_CODES.BAD_REQUEST, `not subscribed to ${describe(f.topic)}`, ref);
    this.subs.delete(f.topic);
    sub.close();
    this.send({ op: 'unsubscribed', topic: f.topic, ...ref });
  }

  _mode(f, ref) {
    if (!MODES.includes(f.mode)) return this.error(ERROR_CODES.BAD_REQUEST, `mode must be one of ${MODES.join(', ')}, got ${describe(f.mode)}`, ref);
    if (f.topic === undefined) {
      for (const s of this.subs.values()) s.setMode(f.mode);
      return;
    }
    const sub = typeof f.topic === 'string' ? this.subs.get(f.topic) : undefined;
    if (sub === undefined) return this.error(ERROR_CODES.BAD_REQUEST, `not subscribed to ${describe(f.topic)}`, ref);
    sub.setMode(f.mode);
  }

  _publish(f, ref) {
    const t = this._topicOf(f, ref, this.access.publish);
    if (t === undefined) return;
    const r = this.gateway.publish(t.name, f.messages);
    if (ref.ref === undefined) {
      if (typeof r?.then === 'function') r.catch((e) => this.error(ERROR_CODES.BAD_REQUEST, String(e?.message ?? e), { topic: t.name }));
      return;
    }
    Promise.resolve(r).then(
      (seqs) => this.send({ op: 'published', topic: t.name, ...(seqs ? { seqs } : {}), ...ref }),
      (e) => this.error(ERROR_CODES.BAD_REQUEST, String(e?.message ?? e), { topic: t.name, ...ref }),
    );
  }

  close(code, reason) {
    if (this.closed) return;
    if (code === CLOSE_CODES.TOO_SLOW) this.gateway.stats.closedSlow++;
    try {
      this.ws.close(code, reason);
      // The close frame may sit behind a stalled socket: do not wait for it for long.
      setTimeout(() => this.ws.terminate(), 1000).unref?.();
    } catch {
      this.ws.terminate();
    }
    this._closed();
  }

  _closed() {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subs.values()) s.close();
    this.subs.clear();
    this.gateway.clients.delete(this);
    this._release();
  }
}
