// One connection as Web Streams: the glue between the platform's streams, timers and promises
// and the Rust core, which owns the buffer, every policy decision and the accounting.
//
// A connection is split by concern (each part a file under js/connection/):
// - slots.js: the slot store (messages stay in JS; the core sees slot numbers);
// - writable.js: the writable side (validation, offers, the core's admission decision: holds,
//   pending writes, refusals);
// - readable.js: the readable side (serving readers, the batch timer, frames());
// - consumer.js: the consume loop (the core decides retries, dead letters, circuit waits).
// This file holds the state they share, the lifecycle (close, cancel, abort, finish) and the
// public API. The engine is reached only through the context object `ctx` it passes in.
import { consume } from './connection/consumer.js';
import { ReadableSide } from './connection/readable.js';
import { SlotStore, mixin } from './connection/slots.js';
import { CLOSED, DROP_SUMMARY, closedError, now } from './connection/shared.js';
import { WritableSide } from './connection/writable.js';

export { PENDING, HOLD, BATCH_READY, EVENTS, DROPPED, FIRST, DROP_SUMMARY, CLOSED } from './connection/shared.js';

/**
 * What the core answers for a connection it no longer holds (src/wasm/mod.rs: an unknown or stale
 * handle reads as closed everywhere). Connections switch to it when the engine frees its core
 * (`destroy()`), so that a writer, reader or consumer that outlives the engine stays inert instead
 * of calling into freed WebAssembly memory.
 */
export const GONE_CORE = Object.freeze({
  push: () => CLOSED,
  pushKeyed: () => CLOSED,
  pushMany: () => CLOSED,
  lastAccepted: () => 0,
  pushDroppable: () => CLOSED,
  status: () => CLOSED,
  deadline: () => NaN,
  holdUntil: () => NaN,
  takeIo: () => -1,
  ioTrim: () => false,
  consumeTake: () => undefined,
  consumeSuccess: () => CLOSED,
  consumeDeadLetter: () => 0,
  consumeFailed: () => NaN,
  consumeAttempt: () => 0,
  setRetryPolicy() {},
  setCircuit() {},
  circuitWait: () => Infinity,
  pause() {},
  resume() {},
  close() {},
  shut() {},
  finish: () => [],
  cancel: () => new Uint32Array(0),
  remove: () => [],
  held: () => 0,
  maxWait: () => NaN,
  takeEvents: () => [],
  takeDropSummary: () => undefined,
  takeDropped: () => new Uint32Array(0),
  resetMetrics() {},
});

/**
 * `{ name, message }` of anything a handler threw, as strings, without trusting it: a thrown
 * `Object.create(null)`, a Proxy or an object whose `toString` throws must not break the loop.
 */
export function describeError(error) {
  const str = (read, fallback) => {
    try {
      const v = read();
      if (v === undefined || v === null) return fallback;
      return typeof v === 'string' ? v : String(v);
    } catch {
      return fallback;
    }
  };
  const isObject = error !== null && (typeof error === 'object' || typeof error === 'function');
  const name = isObject ? str(() => error.name, 'Error') : 'Error';
  let message = isObject ? str(() => error.message, undefined) : undefined;
  if (message === undefined) message = str(() => String(error), undefined);
  if (message === undefined) message = str(() => Object.prototype.toString.call(error), 'unprintable value');
  return { name, message };
}

export class Connection {
  /**
   * `ctx` is the engine's side of the contract (js/connection/context.js): its core
   * (read on every use), scratch buffers and exchange area, and the callbacks through which a
   * connection reports deliveries, drops, events, errors and its end.
   */
  constructor(ctx, handle, ids, config, extras) {
    this._ctx = ctx;
    this._h = handle;
    this.id = ids.id;
    this.sourceNodeId = ids.sourceNodeId;
    this.targetNodeId = ids.targetNodeId;
    this.sourcePort = ids.sourcePort;
    this.targetPort = ids.targetPort;
    this.config = config;
    this._custom = extras.custom; // a user's own handler object, or null
    this._onDrop = extras.onDrop;
    this._keyed = extras.conflate;
    // Whether this connection's policy may hold writes (the core's hold_until decides each one):
    // only then are write() call times recorded.
    this._holds = !Number.isNaN(this._core.maxWait(handle));
    this._callTimes = null; // write() call times, per writable (see _makeWritable)
    this._waiter = null; // (batch) => void: a reader (or consumer) waiting for a batch
    this._empty = true; // known to hold nothing (saves a take and a deadline call per read)
    // Made once, not per read: the reader's waiter.
    this._toReader = (batch) => this._readController.enqueue(batch);
    this._timer = null;
    this._pending = null; // a write the core refused for now: { chunk, resolve, reject, t }
    this._held = null; // a write whose completion is held under backpressure
    this._heldTimer = null;
    this._paused = false;
    this._closing = false; // no more writes; readable ends once drained
    this._shut = false; // closed by closeConnection/destroy: pauses are released and ignored
    this._finished = false; // readable closed, errored or cancelled
    this._finishDeferred = false; // finished while a consumer's batch was in flight: tell the engine once it settles
    this._reportedClosed = false; // the engine emitted this connection's 'closed' event
    this._consumer = null;
    this._deadLetters = [];
    this._slots = new SlotStore(); // slot -> message; the core holds only slot numbers
    this._writer = null;
    this._readController = null;
    this._frameWake = null; // frames(): resolves a pull waiting for the first message
    this._failure = undefined; // why the readable errored (frames() errors with it too)
    this._makeWritable();
    this.readable = new ReadableStream(
      {
        start: (c) => {
          this._readController = c;
        },
        pull: () => this._pull(),
        cancel: (reason) => this._cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * The engine's core, read through the engine's context on every use: when `destroy()` frees it, the
   * engine swaps in GONE_CORE, and every connection object the engine ever made (finished,
   * released or not) sees the stand-in instead of freed WebAssembly memory.
   */
  get _core() {
    return this._ctx.core;
  }

  /** The slot store's array (slot -> message), for tests that check nothing is left behind. */
  get _store() {
    return this._slots.store;
  }

  /** The default writer of `writable`, taken on first access. */
  get writer() {
    if (this._writer === null) this._writer = this.writable.getWriter();
    return this._writer;
  }

  get paused() {
    return this._paused;
  }

  /** `'open'`, `'closing'` (writes refused, still delivering what it holds) or `'finished'`. */
  get state() {
    return this._finished ? 'finished' : this._closing ? 'closing' : 'open';
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** The readable has delivered everything after a close: end it and let the engine forget. */
  _finish() {
    if (this._finished) return;
    this._finished = true;
    this._clearTimer();
    const w = this._waiter;
    this._waiter = null;
    // A consumer's waiter learns that nothing more comes (a reader's pending read ends below).
    if (this._consumer !== null && w) w(null);
    // Closed in both cases: after a consumer ends, a new reader must see the stream done.
    try {
      this._readController.close();
    } catch {
      // already closed
    }
    this._ctx.finished(this);
  }

  _cancel(reason) {
    this._fail(reason, 'cancel');
  }

  /**
   * The reader went away (`how` = 'cancel'), the writer aborted ('abort') or the engine is
   * destroyed ('destroy'): dead-letter what is buffered, refuse writes, end the readable (errored
   * on abort, closed on destroy). A consumer's batch in flight is settled by its handler.
   */
  _fail(reason, how = 'abort') {
    if (this._finished) return;
    this._closing = true;
    this._shut = this._shut || how === 'destroy';
    const dead = this._slots.take(this._core.cancel(this._h, now()));
    for (const m of dead) this._deadLetters.push(m);
    if (this._onDrop) for (const m of dead) this._ctx.onDrop(this, m, 'dead-letter');
    this._ctx.notify(this, DROP_SUMMARY);
    if (this._pending !== null) {
      const p = this._pending;
      this._pending = null;
      p.reject(closedError(this.id));
    }
    this._releaseHold();
    this._finished = true;
    this._paused = false;
    this._clearTimer();
    if (how === 'abort') this._failure = reason ?? new Error('connection failed');
    this._wakeFrames();
    if (how === 'abort') {
      try {
        this._readController.error(reason);
      } catch {
        // already errored
      }
    } else if (how === 'destroy') {
      try {
        this._readController.close();
      } catch {
        // already closed
      }
    }
    const w = this._waiter;
    this._waiter = null;
    if (w && this._consumer !== null) w(null);
    // Further writes reject (_closing). The engine hears of the end once nothing is in flight.
    if (this._consumer !== null && this._consumer.busy) this._finishDeferred = true;
    else this._ctx.finished(this);
  }

  /**
   * Refuses writes; the readable ends after what is buffered. `shut` (closeConnection) also
   * releases a pause for good, so that the rest drains and the readable ends.
   */
  _beginClose(shut = false) {
    if (this._finished) return;
    let resumed = false;
    if (shut && !this._shut) {
      this._shut = true;
      this._core.shut(this._h);
      resumed = this._paused;
      this._paused = false;
    } else if (this._closing) {
      return;
    }
    if (!this._closing) {
      this._closing = true;
      this._core.close(this._h);
      if (this._pending !== null) {
        const p = this._pending;
        this._pending = null;
        p.reject(closedError(this.id));
      }
      this._releaseHold();
    }
    if (resumed) this._ctx.event(this, 'resumed');
    this._wakeFrames();
    // A waiting reader gets the rest now (no batch timeout after a close).
    this._serve(true);
    if (this._core.held(this._h) === 0 && this._waiter === null && !this._finished && this._consumer === null) {
      // Nothing buffered and nobody waiting: the next read finds the stream closed.
      this._finish();
    }
  }

  // ---- control -------------------------------------------------------------------------------

  pause() {
    // A connection closed by closeConnection (or finished) only drains: pausing it would keep its
    // reader waiting for a resume nobody may send.
    if (this._paused || this._shut || this._finished) return;
    this._paused = true;
    this._core.pause(this._h);
    this._clearTimer();
    this._ctx.event(this, 'paused');
  }

  resume() {
    if (!this._paused || this._finished) return;
    this._paused = false;
    this._core.resume(this._h);
    this._ctx.event(this, 'resumed');
    this._serve(false);
    this._wakeFrames();
  }

  /** Returns the dead-lettered messages and clears the list. */
  deadLetters() {
    const d = this._deadLetters;
    this._deadLetters = [];
    return d;
  }

  /**
   * Reads batches and calls `handler(batch)`, retrying failures with the engine's error
   * recovery, dead-lettering a batch when retries run out, and pausing calls while the circuit
   * is open. The loop belongs to this connection instance: once it has ended, its batch in flight
   * is still settled (delivered if the handler succeeds, dead-lettered if it fails, no retries),
   * and nothing it does reaches another connection. `done` always resolves; the readable is
   * unlocked when the loop ends.
   */
  consume(handler) {
    return consume(this, handler);
  }
}

// The writable side (write(), admission, holds, pending writes) and the readable side (reads,
// the batch timer, frames()) work on the state above; see js/connection/*.js.
mixin(Connection, WritableSide);
mixin(Connection, ReadableSide);
