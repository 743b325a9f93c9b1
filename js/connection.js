// One connection as Web Streams: the glue between the platform's streams, timers and promises
// and the Rust core, which owns the buffer, the policy decisions and the accounting.
import { Status, dropReasonNames, resolveRecoveryOptions } from '#wasm';
import { Fifo } from './fifo.js';
import { frameOptions } from './frames.js';
import { checkHandlerPriority, checkMessage, keyOf, priorityOf } from './priority.js';

// Status bits returned by the core: defined once, in Rust (core::connection::Status), and
// exported by wasm-bindgen as a plain object, so there are no numbers to keep in step here.
export const PENDING = Status.Pending;
export const HOLD = Status.Hold;
export const BATCH_READY = Status.BatchReady;
export const EVENTS = Status.Events;
export const DROPPED = Status.Dropped;
export const FIRST = Status.First;
export const DROP_SUMMARY = Status.DropSummary;
export const CLOSED = Status.Closed;
/** In takeIo's status only: nothing is left buffered. */
const EMPTY = Status.Empty;
const NOTIFY = EVENTS | DROP_SUMMARY;
/** Names of the core's drop-reason codes, from Rust, fetched on the first drop. */
let reasonNames = null;
function reasonName(code) {
  if (reasonNames === null) reasonNames = dropReasonNames();
  return reasonNames[code];
}
/** A retried batch write is offered in chunks starting at this size, doubling while all fit. */
const RETRY_CHUNK = 64;

const now = () => performance.now();

function closedError(id) {
  return new TypeError(`connection ${id} is closed: write refused`);
}

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
  dropIncoming: () => CLOSED,
  status: () => CLOSED,
  deadline: () => NaN,
  takeIo: () => -1,
  ioTrim: () => false,
  consumeTake: () => undefined,
  consumeSuccess: () => CLOSED,
  consumeFailure: () => CLOSED,
  consumeDeadLetter: () => 0,
  setCircuit() {},
  circuitAllow: () => false,
  circuitNextAttempt: () => NaN,
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
  metrics: () => undefined,
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
  constructor(engine, handle, ids, config, extras) {
    this._engine = engine;
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
    const mw = this._core.maxWait(handle);
    this._maxWait = Number.isNaN(mw) ? null : mw; // null: writes are not held
    this._callTimes = null; // write() call times, per writable (see _makeWritable)
    this._pressure = false; // backpressure on, as last reported by the core
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
    this._store = []; // slot -> message; the core holds only slot numbers
    this._free = []; // free slots
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

  // ---- writable side -------------------------------------------------------------------------

  _makeWritable() {
    const strategy = { highWaterMark: 1 };
    // A fresh queue per writable: writes queued in an errored writable never reach the sink.
    this._callTimes = this._maxWait === null ? null : new Fifo();
    if (this._callTimes) {
      // size() runs synchronously inside writer.write(): the moment the wait budget counts from.
      const times = this._callTimes;
      strategy.size = () => {
        times.push(now());
        return 1;
      };
    }
    this._writer = null;
    this.writable = new WritableStream(
      {
        start: (controller) => {
          // writer.abort() waits for the write in progress, which may wait for room that never
          // comes (a full lossless buffer with no reader): end the connection at the abort call.
          const signal = controller.signal;
          if (signal) signal.addEventListener('abort', () => this._fail(signal.reason ?? new Error('writer aborted')), { once: true });
        },
        write: (chunk) => this._write(chunk),
        close: () => this._writerClose(),
        abort: (reason) => this._writerAbort(reason),
      },
      strategy,
    );
  }

  /**
   * The engine's core, read through the engine on every use: when `destroy()` frees it, the
   * engine swaps in GONE_CORE, and every connection object the engine ever made (finished,
   * released or not) sees the stand-in instead of freed WebAssembly memory.
   */
  get _core() {
    return this._engine._core;
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

  _write(chunk) {
    const t = this._callTimes === null ? now() : (this._callTimes.shift() ?? now());
    try {
      // A writer that outlives its connection is inert: nothing reaches the core.
      if (this._closing) throw closedError(this.id);
      if (Array.isArray(chunk)) return this._writeMany(chunk, t);
      checkMessage(chunk);
      if (this._custom === null && !this._keyed) {
        // The common case: one call into the core, nothing else when it answers 0.
        const p = priorityOf(chunk);
        const s = this._pushPlain(chunk, p, t);
        if (s === 0) return undefined;
        return this._afterPush(s, s & PENDING ? { arr: [chunk], off: 0, prios: [p], keys: null, cands: null } : null, t);
      }
      return this._offerWrite(this._prepareEach([chunk], false), t);
    } catch (e) {
      this._rejectedWrite();
      throw e;
    }
  }

  // ---- the message store: messages stay in JS; the core sees slot numbers -------------------

  _alloc(msg) {
    this._empty = false;
    const free = this._free;
    const slot = free.length > 0 ? free.pop() : this._store.length;
    this._store[slot] = msg;
    return slot;
  }

  _release(slot) {
    const msg = this._store[slot];
    this._store[slot] = undefined;
    this._free.push(slot);
    return msg;
  }

  /** The messages in the first `n` of `slots` (a Uint32Array from the core), freeing them. */
  _fromSlots(slots, n = slots.length) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this._release(slots[i]);
    return out;
  }

  /** Frees the slots the core dropped and hands the messages to `onDrop`. */
  _collectDropped() {
    const flat = this._core.takeDropped(this._h);
    for (let i = 0; i < flat.length; i += 2) {
      const msg = this._release(flat[i]);
      if (this._onDrop !== null) this._engine._callOnDrop(this, msg, reasonName(flat[i + 1]));
    }
  }

  /**
   * Offers one validated message with priority `p` on a connection without per-message work
   * (no user handler, no conflation). Returns the core's status bits; a refused message
   * (PENDING, CLOSED) keeps no slot.
   */
  _pushPlain(msg, p, t) {
    const slot = this._alloc(msg);
    const s = this._core.push(this._h, slot, p, t);
    if (s === 0) return 0;
    if (s & (PENDING | CLOSED)) this._release(slot);
    if (s & DROPPED) this._collectDropped();
    return s;
  }

  /**
   * Offers one message whose per-message decisions are made: priority `p`, conflation key `k`
   * (or undefined), and `cand`: whether the user's handler said to drop it under pressure.
   */
  _pushOne(msg, p, k, cand, t) {
    const core = this._core;
    const slot = this._alloc(msg);
    let s;
    if (cand && this._pressure) s = core.dropIncoming(this._h, slot, p, t);
    else if (k !== undefined) s = core.pushKeyed(this._h, slot, p, k, t);
    else s = core.push(this._h, slot, p, t);
    if (s & (PENDING | CLOSED)) this._release(slot);
    if (s & DROPPED) this._collectDropped();
    if (s & HOLD) this._pressure = true;
    return s;
  }

  /**
   * Everything a write needs per message on a connection with a user handler or conflation,
   * computed before anything is taken: validation (message, `metadata.priority`, and
   * `metadata.key` when conflating), the handler's priority and its drop verdict. Anything that
   * throws here (bad input, a throwing handler) refuses the whole write and leaves no trace.
   */
  _prepareEach(arr, batch) {
    const n = arr.length;
    const custom = this._custom;
    const prios = new Float64Array(n);
    const keys = this._keyed ? new Array(n) : null;
    const cands = custom !== null ? new Uint8Array(n) : null;
    let i = 0;
    try {
      for (; i < n; i++) {
        const m = arr[i];
        checkMessage(m);
        let p = priorityOf(m);
        if (keys !== null) keys[i] = keyOf(m);
        if (custom !== null) {
          p = checkHandlerPriority(custom.prioritizeMessage(m));
          cands[i] = custom.shouldDropMessage(m) ? 1 : 0;
        }
        prios[i] = p;
      }
    } catch (e) {
      // Name the element (batch[i]) in a validation error; the name is only built here.
      if (batch) {
        const what = `batch[${i}]`;
        checkMessage(arr[i], what);
        priorityOf(arr[i], what);
        if (keys !== null) keyOf(arr[i], what);
      }
      throw e;
    }
    return { arr, off: 0, prios, keys, cands };
  }

  /**
   * Offers a prepared write (`w`: `{ arr, off, prios, keys, cands }`) from `w.off` on. Returns
   * the status bits; `w.off` is then the first message not taken.
   */
  _pushWrite(w, t, retry) {
    if (w.keys === null && w.cands === null) return this._pushChunks(w, t, retry);
    const { arr, prios, keys, cands } = w;
    const n = arr.length;
    let st = 0;
    for (let i = w.off; i < n; i++) {
      const s = this._pushOne(arr[i], prios[i], keys === null ? undefined : keys[i], cands !== null && cands[i] === 1, t);
      if (s & (PENDING | CLOSED)) {
        w.off = i;
        return st | s;
      }
      st |= s;
    }
    w.off = n;
    return st;
  }

  /**
   * Offers a plain batch through `pushMany`. The first attempt offers all of it in one call
   * (the fast path). A retry after a refusal offers chunks of RETRY_CHUNK, doubling while the
   * core takes all: a retry that is let in for `a` messages costs O(a + RETRY_CHUNK) slots,
   * so a large array into a small buffer is linear, not quadratic, in its length.
   */
  _pushChunks(w, t, retry) {
    const { arr, prios } = w;
    const n = arr.length;
    const core = this._core;
    let k = retry ? RETRY_CHUNK : n - w.off;
    let st = 0;
    while (w.off < n) {
      const off = w.off;
      const m = Math.min(k, n - off);
      const slots = this._engine._slotBuffer(m);
      for (let i = 0; i < m; i++) slots[i] = this._alloc(arr[off + i]);
      const s = core.pushMany(this._h, slots, off === 0 && m === prios.length ? prios : prios.subarray(off, off + m), t);
      const taken = s & PENDING ? core.lastAccepted() : s & CLOSED ? 0 : m;
      for (let i = taken; i < m; i++) this._release(slots[i]);
      w.off = off + taken;
      st |= s;
      if (s & DROPPED) this._collectDropped();
      if (s & (PENDING | CLOSED)) return st;
      k *= 2;
    }
    return st;
  }

  /** Offers a prepared write and does the follow-up work. */
  _offerWrite(w, t, retry = false) {
    const s = this._pushWrite(w, t, retry);
    if (s === 0) return undefined;
    return this._afterPush(s, s & PENDING ? w : null, t);
  }

  /**
   * An array written from inside the package without a stream (the gateway's Feeder): the same
   * admission as a `writable` write, refused once the connection is closing. Returns undefined when
   * taken at once, else a promise for a pending or held write.
   */
  _write0(arr, t) {
    if (this._closing) throw closedError(this.id);
    return this._writeMany(arr, t);
  }

  _writeMany(arr, t) {
    const n = arr.length;
    if (n === 0) return undefined;
    if (this._custom !== null || this._keyed) return this._offerWrite(this._prepareEach(arr, true), t);
    // Validate the whole batch first, so that a bad element leaves nothing half-written. The
    // element's name (batch[i]) is only built for the error.
    const prios = this._engine._prioBuffer(n);
    let i = 0;
    try {
      for (; i < n; i++) {
        const m = arr[i];
        checkMessage(m);
        prios[i] = priorityOf(m);
      }
    } catch (e) {
      const what = `batch[${i}]`;
      checkMessage(arr[i], what);
      priorityOf(arr[i], what);
      throw e;
    }
    return this._offerWrite({ arr, off: 0, prios, keys: null, cands: null }, t);
  }

  /**
   * Follow-up work for a non-zero status: delivery, events, refusal, holds. `w` is the write's
   * record when it was refused for now (PENDING): it is retried from `w.off` after a delivery.
   */
  _afterPush(s, w, t) {
    if (s & CLOSED) throw closedError(this.id);
    if (s & NOTIFY) this._engine._notify(this, s);
    this._pressure = (s & HOLD) !== 0;
    // Register a refused write before serving the reader: a delivery made now must find it and
    // retry it, or the write would wait for a delivery that never comes.
    let refused;
    if (s & PENDING) {
      // The engine's scratch priorities are reused by the next write: keep a copy.
      if (!(w.prios instanceof Float64Array)) w.prios = Float64Array.from(w.prios);
      refused = new Promise((resolve, reject) => {
        this._pending = { w, resolve, reject, t };
      });
    }
    if (this._waiter !== null && s & (BATCH_READY | FIRST | PENDING)) this._serve(false);
    if (this._frameWake !== null && s & (BATCH_READY | FIRST | PENDING)) this._wakeFrames();
    if (refused !== undefined) return refused;
    if (s & HOLD) return this._hold(t);
    return undefined;
  }

  _hold(t) {
    if (this._heldCheck()) return undefined;
    const wait = t + this._maxWait - now();
    if (!(wait > 0)) return undefined; // past the budget: complete at once
    return new Promise((resolve) => {
      this._held = resolve;
      this._heldTimer = setTimeout(() => this._releaseHold(), wait);
    });
  }

  /** True if backpressure is already off again (e.g. a waiting reader took a batch). */
  _heldCheck() {
    return (this._core.status(this._h) & HOLD) === 0;
  }

  _releaseHold() {
    if (this._heldTimer !== null) {
      clearTimeout(this._heldTimer);
      this._heldTimer = null;
    }
    const r = this._held;
    this._held = null;
    if (r) r();
  }

  /** After a delivery (`s`: the core's status then): wake a refused write, release a held one. */
  _afterDeliver(s = this._core.status(this._h)) {
    this._pressure = (s & HOLD) !== 0;
    if (s & NOTIFY) this._engine._notify(this, s);
    if (s & DROPPED) this._collectDropped();
    if (this._held !== null && !(s & HOLD)) this._releaseHold();
    if (this._pending !== null) this._retryPending();
  }

  _retryPending() {
    const p = this._pending;
    this._pending = null;
    let result;
    try {
      result = this._offerWrite(p.w, p.t, true);
    } catch (e) {
      p.reject(e);
      return;
    }
    if (result === undefined) p.resolve();
    else result.then(p.resolve, p.reject);
  }

  /**
   * A write was rejected (bad input, or after close): per Web Streams the writable errors. The
   * connection keeps working: unless it is closing, it gets a fresh `writable` (and `writer`).
   */
  _rejectedWrite() {
    if (this._closing || this._finished) return;
    queueMicrotask(() => {
      if (!this._closing && !this._finished) this._makeWritable();
    });
  }

  /**
   * Offers one message without a stream (route()): `p` is its validated priority, `k` its
   * validated key (when this connection conflates). Returns true if the connection took it.
   */
  _offer(msg, p, k) {
    if (this._closing) return false;
    const t = now();
    let s;
    if (this._custom === null && !this._keyed) s = this._pushPlain(msg, p, t);
    else {
      const c = this._custom;
      const q = c === null ? p : checkHandlerPriority(c.prioritizeMessage(msg));
      const cand = c !== null && !!c.shouldDropMessage(msg);
      s = this._pushOne(msg, q, this._keyed ? k : undefined, cand, t);
    }
    if (s === 0) return true;
    if (s & (PENDING | CLOSED)) {
      if (s & NOTIFY) this._engine._notify(this, s);
      return false;
    }
    this._afterPush(s & ~HOLD, null, t);
    return true;
  }

  _writerClose() {
    // close() runs after every queued write has settled, refused ones included.
    this._beginClose();
  }

  _writerAbort(reason) {
    this._fail(reason ?? new Error('writer aborted'));
  }

  // ---- readable side -------------------------------------------------------------------------

  _pull() {
    if (this._finished) return undefined;
    if (this._consumer !== null) {
      // Consumption owns delivery; an explicit read waits until the connection ends.
      return new Promise(() => {});
    }
    this._waiter = this._toReader;
    // Known empty and not closing: nothing to take and no batch timer to arm until a write.
    if (!this._empty || this._closing) this._serve(false);
    // No promise even when nothing was delivered: the read stays pending in the stream, and the
    // later enqueue() fulfils it directly (the stream pulls again only for the next read).
    return undefined;
  }

  /** Delivers to the waiter if a batch is due; otherwise arms the batch timer. */
  _serve(force) {
    if (this._waiter === null || this._finished) return;
    const t = now();
    if (this._consumer === null) {
      const k = this._core.takeIo(this._h, t, force || this._closing);
      if (k >= 0) {
        // The batch's slots and then the status are in the core's exchange area.
        let io = this._engine._io;
        const grew = io === null || io.length < k + 1;
        if (grew) io = this._engine._ioView(k + 1);
        const batch = this._fromSlots(io, k);
        const st = io[k];
        // A batch larger than the area keeps: let the core give the memory back.
        if (grew) this._engine._ioTrim();
        const w = this._waiter;
        this._waiter = null;
        this._clearTimer();
        w(batch);
        this._engine._delivered(this, batch);
        this._empty = (st & EMPTY) !== 0;
        this._afterDeliver(st & ~EMPTY);
        return;
      }
    } else {
      const slots = this._core.consumeTake(this._h, t, force || this._closing);
      if (slots !== undefined) {
        const w = this._waiter;
        this._waiter = null;
        this._clearTimer();
        w(this._fromSlots(slots));
        this._afterDeliver(this._core.status(this._h));
        return;
      }
    }
    if (this._closing && this._core.held(this._h) === 0) {
      this._finish();
      return;
    }
    this._armTimer();
  }

  _armTimer() {
    if (this._timer !== null || this._paused) return;
    const d = this._core.deadline(this._h);
    if (Number.isNaN(d)) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._serve(true);
    }, Math.max(0, d - now()));
  }

  _clearTimer() {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

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
    this._engine._finished(this);
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
    const dead = this._fromSlots(this._core.cancel(this._h, now()));
    for (const m of dead) this._deadLetters.push(m);
    if (this._onDrop) for (const m of dead) this._engine._callOnDrop(this, m, 'dead-letter');
    this._engine._notify(this, DROP_SUMMARY);
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
    else this._engine._finished(this);
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
    if (resumed) this._engine._connectionEvent(this, 'resumed');
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
    this._engine._connectionEvent(this, 'paused');
  }

  resume() {
    if (!this._paused || this._finished) return;
    this._paused = false;
    this._core.resume(this._h);
    this._engine._connectionEvent(this, 'resumed');
    this._serve(false);
    this._wakeFrames();
  }

  // ---- frame-aligned delivery ----------------------------------------------------------------

  /**
   * A `ReadableStream` delivering at most one batch per animation frame: each chunk is
   * everything buffered at that frame (any number of the connection's batches, joined). Between
   * chunks the messages stay in the connection, where its `bufferSize`, backpressure and drop
   * policy apply, so a slow or hidden page never piles messages up anywhere else. In a hidden
   * tab (no animation frames) a chunk comes at most every `hiddenInterval` ms (default 1000);
   * where requestAnimationFrame does not exist (Node) at most every 1/60 s. Takes the place of
   * `readable` (which it locks); cancelling it cancels the connection like `readable.cancel()`.
   */
  frames(options) {
    const { nextFrame } = frameOptions(options);
    if (this._consumer !== null) throw new Error(`connection ${this.id} already has a consumer`);
    if (this.readable.locked) throw new TypeError(`connection ${this.id}: readable is locked by a reader; frames() needs it free`);
    this.readable.getReader(); // nobody else reads; never released
    const waitForData = () =>
      new Promise((resolve) => {
        this._frameWake = resolve;
      });
    return new ReadableStream(
      {
        pull: async (controller) => {
          for (;;) {
            if (this._finished) {
              if (this._failure !== undefined) controller.error(this._failure);
              else controller.close();
              return;
            }
            if (this._empty && !this._closing) {
              await waitForData();
              continue;
            }
            await nextFrame();
            if (this._finished) continue;
            const batch = this._takeAll();
            if (batch.length > 0) {
              controller.enqueue(batch);
              return;
            }
            if (this._closing && this._core.held(this._h) === 0) this._finish();
          }
        },
        cancel: (reason) => this._fail(reason, true),
      },
      { highWaterMark: 0 },
    );
  }

  _wakeFrames() {
    const w = this._frameWake;
    this._frameWake = null;
    if (w !== null) w();
  }

  /** Everything buffered now, as one array (the core's batches joined); [] when paused or empty. */
  _takeAll() {
    const out = [];
    const limit = this.config.bufferSize;
    while (out.length < limit) {
      const k = this._core.takeIo(this._h, now(), true);
      if (k < 0) {
        this._empty = this._core.held(this._h) === 0;
        break;
      }
      let io = this._engine._io;
      if (io === null || io.length < k + 1) io = this._engine._ioView(k + 1);
      for (let i = 0; i < k; i++) out.push(this._release(io[i]));
      const st = io[k];
      this._empty = (st & EMPTY) !== 0;
      this._afterDeliver(st & ~EMPTY);
      if (this._empty) break;
    }
    if (out.length > 0) this._engine._delivered(this, out);
    return out;
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
    if (typeof handler !== 'function') throw new TypeError(`consume handler must be a function, got ${typeof handler}`);
    if (this._consumer !== null) throw new Error(`connection ${this.id} already has a consumer`);
    if (this.readable.locked) throw new TypeError(`connection ${this.id}: readable is locked by a reader; consume() needs it free`);
    // Lock the readable so nobody else reads while the engine consumes.
    const lock = this.readable.getReader();
    const recovery = this._engine._recoveryFor(this);
    // The core's breaker starts with the core's defaults; a recovery object's own settings are
    // validated and completed by the core too (a custom object may give only part of them).
    const own = recovery.options?.circuitBreaker;
    if (own !== undefined) {
      const cb = resolveRecoveryOptions({ circuitBreaker: own }).circuitBreaker;
      this._core.setCircuit(this._h, cb.failureThreshold, cb.resetTimeout);
    }
    let stopped = false;
    let wake = null;
    const sleep = (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          wake = null;
          resolve();
        }, Math.max(0, ms));
        wake = () => {
          clearTimeout(timer);
          wake = null;
          resolve();
        };
      });
    const deadLetter = (batch) => {
      this._core.consumeDeadLetter(this._h, now());
      for (const m of batch) this._deadLetters.push(m);
      if (this._onDrop) for (const m of batch) this._engine._callOnDrop(this, m, 'dead-letter');
      this._engine._notify(this, DROP_SUMMARY);
      this._afterDeliver();
    };
    const consumer = { stop: null, busy: false };
    this._consumer = consumer;
    const next = () =>
      this._finished
        ? Promise.resolve(null)
        : new Promise((resolve) => {
            this._waiter = resolve;
            this._serve(false);
          });
    /** Calls the handler on `batch` until it succeeds or is given up. */
    const handle = async (batch) => {
      let attempt = 0;
      for (;;) {
        if (stopped) return deadLetter(batch); // stopping gives the batch up, counted and retrievable
        if (!this._core.circuitAllow(this._h, now())) {
          // An ended connection does not wait for its circuit: nothing else will come.
          if (this._finished) return deadLetter(batch);
          const at = this._core.circuitNextAttempt(this._h);
          await sleep(Number.isNaN(at) ? 10 : at - now());
          continue;
        }
        let error;
        let failed = false;
        try {
          await handler(batch);
        } catch (e) {
          failed = true;
          error = e;
        }
        if (!failed) {
          const s = this._core.consumeSuccess(this._h, now());
          if (s & NOTIFY) this._engine._notify(this, s);
          this._afterDeliver();
          return undefined;
        }
        let willRetry = false;
        if (!this._finished && !stopped) {
          try {
            willRetry = !!recovery.shouldRetry(error, attempt);
          } catch {
            willRetry = false;
          }
        }
        const s = this._core.consumeFailure(this._h, now(), willRetry);
        if (s & NOTIFY) this._engine._notify(this, s);
        this._engine._consumerError(this, error, attempt, willRetry);
        if (!willRetry) return deadLetter(batch);
        let delay = 0;
        try {
          delay = Number(recovery.getRetryDelay(attempt)) || 0;
        } catch {
          delay = 0;
        }
        attempt++;
        await sleep(delay);
        if (this._finished) return deadLetter(batch);
      }
    };
    const run = async () => {
      try {
        while (!stopped) {
          const batch = await next();
          if (batch === null) break;
          consumer.busy = true;
          try {
            await handle(batch);
          } finally {
            consumer.busy = false;
          }
          if (this._finishDeferred) {
            this._finishDeferred = false;
            this._engine._finished(this);
          }
          if (this._closing && !this._finished && this._core.held(this._h) === 0) {
            this._finish();
            break;
          }
        }
      } finally {
        if (this._consumer === consumer) this._consumer = null;
        if (this._finishDeferred) {
          this._finishDeferred = false;
          this._engine._finished(this);
        }
        lock.releaseLock();
      }
    };
    // Every user callback above is guarded; an internal error still must not become an
    // unhandled rejection of `done`.
    const done = run().catch((e) => this._engine._internalError(this, e));
    consumer.stop = () => {
      stopped = true;
      if (wake) wake();
      const w = this._waiter;
      this._waiter = null;
      if (w) w(null);
    };
    return {
      stop: consumer.stop,
      done,
    };
  }
}
