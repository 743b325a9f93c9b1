// Worker mode: the engine and its sources run in a Web Worker (or a Node worker_threads Worker);
// the page's main thread reads connections, metrics and events over postMessage.
//
// Worker side:  serveEngine(engine)           answers the main thread's requests
// Main side:    const remote = await connectEngine(worker)
//               const readable = await remote.readable(id)   moves a connection's consuming side
//
// Streams cross as transferable ReadableStreams where the platform can transfer them (Chromium,
// Firefox, Node), and otherwise (Safari: DataCloneError) as one postMessage per batch, pulled by
// the main thread one batch at a time, so unread messages stay in the worker's connection, under
// its bufferSize, backpressure and drop policy, instead of queueing up in a message channel.
import { frameClock } from './frames.js';
import { describe } from './priority.js';
import { platform } from './runtime.js';

const TAG = '__nodeflow_engine';
const immediate = () => Promise.resolve();

/** Whether this platform can transfer a ReadableStream through postMessage. */
export function canTransferStreams() {
  if (typeof MessageChannel !== 'function' || typeof ReadableStream !== 'function') return false;
  const { port1, port2 } = new MessageChannel();
  try {
    const rs = new ReadableStream();
    port1.postMessage(rs, [rs]);
    return true;
  } catch {
    return false;
  } finally {
    port1.close();
    port2.close();
  }
}

/** postMessage/onmessage over a Worker, a worker global scope, a MessagePort or Node's parentPort. */
function portOf(target, what) {
  if (target === null || typeof target !== 'object' || typeof target.postMessage !== 'function') {
    throw new TypeError(`${what} must be a Worker, MessagePort or worker scope (with postMessage), got ${describe(target)}`);
  }
  const listen = (fn) => {
    if (typeof target.on === 'function' && typeof target.off === 'function') {
      // Node: Worker and parentPort hand the data itself to 'message' listeners.
      target.on('message', fn);
      return () => target.off('message', fn);
    }
    const h = (e) => fn(e.data);
    target.addEventListener('message', h);
    target.start?.();
    return () => target.removeEventListener('message', h);
  };
  return { post: (msg, transfer) => target.postMessage(msg, transfer ?? []), listen };
}

const errorOf = (e) => ({ name: String(e?.name ?? 'Error'), message: String(e?.message ?? e) });
function reviveError(e) {
  const Ctor = { TypeError, RangeError }[e?.name] ?? Error;
  const err = new Ctor(e?.message ?? 'worker error');
  if (!(err instanceof TypeError || err instanceof RangeError) && e?.name) err.name = e.name;
  return err;
}

/**
 * Serves `engine` to the main thread: call it in the worker after creating the engine. `port`
 * defaults to the worker's own scope (browsers) or `parentPort` (Node). Returns a function that
 * stops serving. The engine API in the worker is unchanged.
 */
export function serveEngine(engine, options) {
  if (engine === null || typeof engine !== 'object' || typeof engine.getConnection !== 'function') {
    throw new TypeError(`engine must be a StreamEngine, got ${describe(engine)}`);
  }
  const o = options ?? {};
  if (typeof o !== 'object') throw new TypeError(`options must be an object, got ${describe(o)}`);
  const target = o.port ?? platform.parentPort ?? globalThis;
  const port = portOf(target, 'port');
  const canTransfer = canTransferStreams();
  const posted = new Map(); // sid -> reader (fallback path)
  let nextSid = 1;

  const reply = (rid, body, transfer) => port.post({ [TAG]: 'reply', rid, ...body }, transfer);
  const offer = (rid, stream, mode) => {
    if (mode !== 'post' && canTransfer) {
      try {
        reply(rid, { stream, mode: 'stream' }, [stream]);
        return;
      } catch {
        // Not transferable after all: fall back to posting batches.
      }
    }
    const sid = nextSid++;
    posted.set(sid, stream.getReader());
    reply(rid, { sid, mode: 'post' });
  };
  const pump = async (sid) => {
    const reader = posted.get(sid);
    if (!reader) return;
    try {
      const { value, done } = await reader.read();
      if (done) {
        posted.delete(sid);
        port.post({ [TAG]: 'done', sid });
      } else {
        port.post({ [TAG]: 'chunk', sid, value });
      }
    } catch (e) {
      posted.delete(sid);
      port.post({ [TAG]: 'error', sid, error: errorOf(e) });
    }
  };

  const handle = (msg) => {
    if (msg === null || typeof msg !== 'object' || !(TAG in msg)) return; // someone else's message
    const { rid } = msg;
    try {
      switch (msg[TAG]) {
        case 'hello':
          reply(rid, { value: { connections: engine.listConnections(), transfer: canTransfer } });
          break;
        case 'list':
          reply(rid, { value: engine.listConnections() });
          break;
        case 'metrics':
          reply(rid, { value: engine.getMetrics(msg.id) });
          break;
        case 'thresholds':
          reply(rid, { value: engine.getThresholds() });
          break;
        case 'readable': {
          if (typeof msg.id !== 'string') throw new TypeError(`connection id must be a string, got ${describe(msg.id)}`);
          const c = engine.getConnection(msg.id);
          if (!c) throw new Error(`unknown connection ${msg.id}`);
          // Frame-aligned: the main thread's frames pace the reads; each read takes everything
          // the connection holds at that moment.
          offer(rid, msg.frames ? c.frames({ nextFrame: immediate }) : c.readable, msg.mode);
          break;
        }
        case 'events':
          offer(rid, engine.events(msg.options), msg.mode);
          break;
        case 'pull':
          pump(msg.sid);
          break;
        case 'cancel': {
          const reader = posted.get(msg.sid);
          posted.delete(msg.sid);
          reader?.cancel(msg.reason).catch(() => {});
          break;
        }
        default:
          throw new Error(`unknown request ${String(msg[TAG])}`);
      }
    } catch (e) {
      if (rid !== undefined) reply(rid, { error: errorOf(e) });
    }
  };
  const unlisten = port.listen(handle);
  return function stopServing() {
    unlisten();
    // Batches not yet pulled stay in their connections; the readers let go.
    for (const reader of posted.values()) reader.cancel('serveEngine stopped').catch(() => {});
    posted.clear();
  };
}

/**
 * Connects to an engine served by `serveEngine` in `worker` (a Web Worker, a Node Worker or a
 * MessagePort). `transfer`: 'auto' (default: transferable streams where supported, else one
 * message per batch), 'stream' or 'post' (force one path). Resolves to a RemoteEngine.
 */
export async function connectEngine(worker, options) {
  const o = options ?? {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`options must be an object, got ${describe(o)}`);
  const transfer = o.transfer ?? 'auto';
  if (!['auto', 'stream', 'post'].includes(transfer)) throw new TypeError(`transfer must be 'auto', 'stream' or 'post', got ${describe(transfer)}`);
  const remote = new RemoteEngine(portOf(worker, 'worker'), transfer);
  const hello = await remote._request({ [TAG]: 'hello' });
  remote.transferMode = transfer === 'post' || (transfer === 'auto' && !(hello.transfer && canTransferStreams())) ? 'post' : 'stream';
  return remote;
}

/** The main thread's view of an engine running in a worker. */
export class RemoteEngine {
  constructor(port, transfer) {
    this._port = port;
    this._transfer = transfer;
    /** 'stream' (transferred ReadableStreams) or 'post' (one message per batch). */
    this.transferMode = 'post';
    this._nextRid = 1;
    this._requests = new Map();
    this._streams = new Map(); // sid -> ReadableStreamDefaultController (fallback path)
    this._pulls = new Map(); // sid -> resolve of the pull waiting for that stream's next chunk
    this._unlisten = port.listen((msg) => this._receive(msg));
  }

  _receive(msg) {
    if (msg === null || typeof msg !== 'object' || !(TAG in msg)) return;
    const kind = msg[TAG];
    if (kind === 'reply') {
      const r = this._requests.get(msg.rid);
      if (!r) return;
      this._requests.delete(msg.rid);
      if (msg.error) r.reject(reviveError(msg.error));
      else r.resolve(msg);
      return;
    }
    const c = this._streams.get(msg.sid);
    if (!c) return;
    const wake = this._pulls.get(msg.sid);
    this._pulls.delete(msg.sid);
    if (kind === 'chunk') c.enqueue(msg.value);
    else {
      this._streams.delete(msg.sid);
      if (kind === 'done') c.close();
      else c.error(reviveError(msg.error));
    }
    wake?.();
  }

  _request(body) {
    const rid = this._nextRid++;
    return new Promise((resolve, reject) => {
      this._requests.set(rid, { resolve, reject });
      try {
        this._port.post({ ...body, rid });
      } catch (e) {
        this._requests.delete(rid);
        reject(e);
      }
    }).then((m) => ('value' in m ? m.value : m));
  }

  /** A ReadableStream from a worker's answer: the transferred stream, or batches pulled one by one. */
  _stream(answer) {
    if (answer.mode === 'stream') return answer.stream;
    const sid = answer.sid;
    return new ReadableStream(
      {
        start: (c) => {
          this._streams.set(sid, c);
        },
        pull: () =>
          new Promise((resolve) => {
            this._pulls.set(sid, resolve);
            this._port.post({ [TAG]: 'pull', sid });
          }),
        cancel: (reason) => {
          this._streams.delete(sid);
          this._pulls.delete(sid);
          this._port.post({ [TAG]: 'cancel', sid, reason: String(reason ?? '') });
        },
      },
      { highWaterMark: 0 },
    );
  }

  _mode() {
    return this.transferMode === 'stream' ? 'stream' : 'post';
  }

  /**
   * Moves the consuming side of connection `id` to this thread: resolves to a ReadableStream of
   * batches (arrays of messages, structured-cloned from the worker). With `{ frames: true }` at
   * most one batch per animation frame of this thread (everything the connection holds at that
   * frame; see `connection.frames()`), and `hiddenInterval` as there. Rejects for an unknown id.
   */
  async readable(id, options) {
    if (typeof id !== 'string') throw new TypeError(`connection id must be a string, got ${describe(id)}`);
    const o = options ?? {};
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`options must be an object, got ${describe(o)}`);
    for (const k of Object.keys(o)) if (k !== 'frames' && k !== 'hiddenInterval') throw new TypeError(`readable options has an unknown option ${JSON.stringify(k)}`);
    if (o.frames !== undefined && typeof o.frames !== 'boolean') throw new TypeError(`frames must be a boolean, got ${describe(o.frames)}`);
    const hidden = o.hiddenInterval ?? 1000;
    if (!Number.isInteger(hidden) || hidden < 1) throw new RangeError(`hiddenInterval must be a positive integer (ms), got ${describe(o.hiddenInterval)}`);
    const answer = await this._request({ [TAG]: 'readable', id, frames: o.frames === true, mode: this._mode() });
    const inner = this._stream(answer);
    if (o.frames !== true) return inner;
    // One read of the worker's stream per frame of this thread: the worker answers each read
    // with everything buffered then.
    const next = frameClock(hidden);
    const reader = inner.getReader();
    return new ReadableStream(
      {
        pull: async (c) => {
          await next();
          const { value, done } = await reader.read();
          if (done) c.close();
          else c.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /** The worker engine's event feed (see `engine.events()`), as a ReadableStream on this thread. */
  async events(options) {
    return this._stream(await this._request({ [TAG]: 'events', options, mode: this._mode() }));
  }

  /** `engine.getMetrics(id?)` in the worker. */
  getMetrics(id) {
    return this._request({ [TAG]: 'metrics', id });
  }

  /** `engine.listConnections()` in the worker. */
  listConnections() {
    return this._request({ [TAG]: 'list' });
  }

  /** Stops listening to the worker (it keeps running: terminate it yourself); pending requests
   * reject and streams of the postMessage path error. */
  close() {
    this._unlisten();
    const closed = new Error('RemoteEngine closed');
    for (const r of this._requests.values()) r.reject(closed);
    this._requests.clear();
    // Streams of the one-message-per-batch path end here (transferred streams belong to the
    // worker's side and end with it).
    for (const [sid, c] of this._streams) {
      try {
        c.error(closed);
      } catch {
        // already closed
      }
      this._port.post({ [TAG]: 'cancel', sid, reason: 'RemoteEngine closed' });
      this._pulls.get(sid)?.();
    }
    this._streams.clear();
    this._pulls.clear();
  }
}
