// One connection as Web Streams: the glue between the platform's streams, timers and promises
// and the Rust core, which owns the buffer, the policy decisions and the accounting.
import { Fifo } from './fifo.js';
import { checkMessage, keyOf, priorityOf } from './priority.js';

// Status bits returned by the core (see src/core/connection.rs `status`).
export const PENDING = 1;
export const HOLD = 2;
export const BATCH_READY = 4;
export const EVENTS = 8;
export const DROPPED = 16;
export const FIRST = 32;
export const DROP_SUMMARY = 64;
export const CLOSED = 128;
/** In takeWithStatus's status only: nothing is left buffered. */
const EMPTY = 1 << 16;
const NOTIFY = EVENTS | DROP_SUMMARY;
/** Reason codes of the core's dropped-slot reports. */
const DROP_REASONS = ['priority', 'oldest', 'newest', 'conflated', 'dead-letter'];

function clampPriority(p) {
  const q = Number(p);
  return q >= 0 && q <= 1 ? q : q > 1 ? 1 : 0;
}

const now = () => performance.now();

function closedError(id) {
  return new TypeError(`connection ${id} is closed: write refused`);
}

export class Connection {
  constructor(engine, handle, ids, config, extras) {
    this._engine = engine;
    this._core = engine._core;
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
    this._finished = false; // readable closed, errored or cancelled
    this._consumer = null;
    this._deadLetters = [];
    this._store = []; // slot -> message; the core holds only slot numbers
    this._free = []; // free slots
    this._writer = null;
    this._readController = null;
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
        write: (chunk) => this._write(chunk),
        close: () => this._writerClose(),
        abort: (reason) => this._writerAbort(reason),
      },
      strategy,
    );
  }

  /** The default writer of `writable`, taken on first access. */
  get writer() {
    if (this._writer === null) this._writer = this.writable.getWriter();
    return this._writer;
  }

  get paused() {
    return this._paused;
  }

  _write(chunk) {
    const t = this._callTimes === null ? now() : (this._callTimes.shift() ?? now());
    try {
      if (Array.isArray(chunk)) return this._writeMany(chunk, t, true);
      checkMessage(chunk);
      const s = this._pushOne(chunk, this._custom === null ? priorityOf(chunk) : NaN, t);
      if (s === 0) return undefined; // the common case: accepted, nothing to do
      return this._afterPush(s, chunk, t);
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
      if (this._onDrop !== null) this._engine._callOnDrop(this, msg, DROP_REASONS[flat[i + 1]]);
    }
  }

  /**
   * Offers one validated message; `p` is its priority (NaN: ask the user's handler). Returns the
   * core's status bits; a refused message (PENDING, CLOSED) keeps no slot.
   */
  _pushOne(msg, p, t) {
    const core = this._core;
    let s;
    if (this._custom !== null) {
      const q = Number.isNaN(p) ? clampPriority(this._custom.prioritizeMessage(msg)) : p;
      const slot = this._alloc(msg);
      s = this._pressure && this._custom.shouldDropMessage(msg) ? core.dropIncoming(this._h, slot, q, t) : core.push(this._h, slot, q, t);
      if (s & (PENDING | CLOSED)) this._release(slot);
    } else if (this._keyed) {
      const k = keyOf(msg);
      const slot = this._alloc(msg);
      s = k === undefined ? core.push(this._h, slot, p, t) : core.pushKeyed(this._h, slot, p, k, t);
      if (s & (PENDING | CLOSED)) this._release(slot);
    } else {
      const slot = this._alloc(msg);
      s = core.push(this._h, slot, p, t);
      if (s === 0) return 0;
      if (s & (PENDING | CLOSED)) this._release(slot);
    }
    if (s & DROPPED) this._collectDropped();
    return s;
  }

  _writeMany(arr, t, validate) {
    const n = arr.length;
    if (n === 0) return undefined;
    const prios = this._engine._prioBuffer(n);
    if (validate) {
      // Validate the whole batch first, so that a bad element leaves nothing half-written.
      for (let i = 0; i < n; i++) {
        const m = arr[i];
        checkMessage(m, `batch[${i}]`);
        prios[i] = this._custom !== null ? clampPriority(this._custom.prioritizeMessage(m)) : priorityOf(m);
      }
    } else {
      for (let i = 0; i < n; i++) prios[i] = this._custom !== null ? clampPriority(this._custom.prioritizeMessage(arr[i])) : priorityOf(arr[i]);
    }
    if (this._keyed || this._custom !== null) {
      // Per message: conflation keys and user handlers are per-message decisions anyway.
      let st = 0;
      for (let i = 0; i < n; i++) {
        const s = this._pushOne(arr[i], prios[i], t);
        if (s & (PENDING | CLOSED)) return this._afterPush(s | st, arr.slice(i), t);
        st |= s;
      }
      return st === 0 ? undefined : this._afterPush(st, null, t);
    }
    const slots = this._engine._slotBuffer(n);
    for (let i = 0; i < n; i++) slots[i] = this._alloc(arr[i]);
    const r = this._core.pushMany(this._h, slots, prios, t);
    const accepted = Math.floor(r / 256);
    const s = r - accepted * 256;
    for (let i = accepted; i < n; i++) this._release(slots[i]);
    if (s === 0) return undefined;
    if (s & DROPPED) this._collectDropped();
    return this._afterPush(s, s & PENDING ? arr.slice(accepted) : null, t);
  }

  /** Follow-up work for a non-zero status: delivery, events, refusal, holds. */
  _afterPush(s, rest, t) {
    if (s & CLOSED) throw closedError(this.id);
    if (s & NOTIFY) this._engine._notify(this, s);
    this._pressure = (s & HOLD) !== 0;
    // Register a refused write before serving the reader: a delivery made now must find it and
    // retry it, or the write would wait for a delivery that never comes.
    let refused;
    if (s & PENDING) {
      refused = new Promise((resolve, reject) => {
        this._pending = { chunk: rest, resolve, reject, t };
      });
    }
    if (this._waiter !== null && s & (BATCH_READY | FIRST | PENDING)) this._serve(false);
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
      result = this._write0(p.chunk, p.t);
    } catch (e) {
      p.reject(e);
      return;
    }
    if (result === undefined) p.resolve();
    else result.then(p.resolve, p.reject);
  }

  /** A write retried from inside the engine (already validated, no call-time bookkeeping). */
  _write0(chunk, t) {
    if (Array.isArray(chunk)) return this._writeMany(chunk, t, false);
    const s = this._pushOne(chunk, this._custom === null ? priorityOf(chunk) : NaN, t);
    return s === 0 ? undefined : this._afterPush(s, chunk, t);
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

  /** Offers one message without a stream (route()). Returns true if the connection took it. */
  _offer(msg, p) {
    if (this._closing) return false;
    const t = now();
    const s = this._pushOne(msg, this._custom === null ? p : NaN, t);
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
    if (this._waiter === null) return;
    const t = now();
    if (this._consumer === null) {
      const k = this._core.takeIo(this._h, t, force || this._closing);
      if (k >= 0) {
        // The batch's slots and then the status are in the core's exchange area.
        let io = this._engine._io;
        if (io === null || io.length < k + 1) io = this._engine._ioView(k + 1);
        const batch = this._fromSlots(io, k);
        const st = io[k];
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
    this._fail(reason, true);
  }

  /** The reader went away or the writer aborted: dead-letter what is held, refuse writes. */
  _fail(reason, cancelled = false) {
    if (this._finished) return;
    this._closing = true;
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
    this._clearTimer();
    if (!cancelled) {
      try {
        this._readController.error(reason);
      } catch {
        // already errored
      }
    }
    const w = this._waiter;
    this._waiter = null;
    if (w && this._consumer !== null) w(null);
    // Further writes reject: the core answers CLOSED from now on.
    this._engine._finished(this);
  }

  /** Refuses writes; the readable ends after what is buffered. */
  _beginClose() {
    if (this._closing) return;
    this._closing = true;
    this._core.close(this._h);
    if (this._pending !== null) {
      const p = this._pending;
      this._pending = null;
      p.reject(closedError(this.id));
    }
    this._releaseHold();
    // A waiting reader gets the rest now (no batch timeout after a close).
    this._serve(true);
    if (this._core.held(this._h) === 0 && this._waiter === null && !this._finished && this._consumer === null) {
      // Nothing buffered and nobody waiting: the next read finds the stream closed.
      this._finish();
    }
  }

  // ---- control -------------------------------------------------------------------------------

  pause() {
    if (this._paused) return;
    this._paused = true;
    this._core.pause(this._h);
    this._clearTimer();
    this._engine._connectionEvent(this, 'paused');
  }

  resume() {
    if (!this._paused) return;
    this._paused = false;
    this._core.resume(this._h);
    this._engine._connectionEvent(this, 'resumed');
    this._serve(false);
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
   * is open.
   */
  consume(handler) {
    if (typeof handler !== 'function') throw new TypeError(`consume handler must be a function, got ${typeof handler}`);
    if (this._consumer !== null) throw new Error(`connection ${this.id} already has a consumer`);
    if (this.readable.locked) throw new TypeError(`connection ${this.id}: readable is locked by a reader; consume() needs it free`);
    // Lock the readable so nobody else reads while the engine consumes.
    const lock = this.readable.getReader();
    const recovery = this._engine._recoveryFor(this);
    const cb = recovery.options?.circuitBreaker ?? { failureThreshold: 5, resetTimeout: 30000 };
    this._core.setCircuit(this._h, cb.failureThreshold, cb.resetTimeout);
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
    const consumer = { stop: null };
    this._consumer = consumer;
    const next = () =>
      new Promise((resolve) => {
        this._waiter = resolve;
        this._serve(false);
      });
    const run = async () => {
      while (!stopped) {
        const batch = await next();
        if (batch === null) break;
        if (stopped) {
          // stop() came after the batch was taken: give it up, counted and retrievable, rather
          // than leave it in flight for ever.
          deadLetter(batch);
          break;
        }
        let attempt = 0;
        for (;;) {
          if (!this._core.circuitAllow(this._h, now())) {
            const at = this._core.circuitNextAttempt(this._h);
            await sleep(Number.isNaN(at) ? 10 : at - now());
            if (this._finished && !this._core.held(this._h)) break;
            continue;
          }
          try {
            await handler(batch);
            const s = this._core.consumeSuccess(this._h, now());
            if (s & NOTIFY) this._engine._notify(this, s);
            this._afterDeliver();
            break;
          } catch (error) {
            let willRetry = false;
            try {
              willRetry = !!recovery.shouldRetry(error, attempt);
            } catch {
              willRetry = false;
            }
            const s = this._core.consumeFailure(this._h, now(), willRetry);
            if (s & NOTIFY) this._engine._notify(this, s);
            this._engine._consumerError(this, error, attempt, willRetry);
            if (!willRetry) {
              deadLetter(batch);
              break;
            }
            let delay = 0;
            try {
              delay = Number(recovery.getRetryDelay(attempt)) || 0;
            } catch {
              delay = 0;
            }
            attempt++;
            await sleep(delay);
            if (stopped) {
              // Stopping mid-retry gives the batch up, counted and retrievable, not lost.
              deadLetter(batch);
              break;
            }
          }
        }
        if (this._closing && this._core.held(this._h) === 0) {
          this._finish();
          break;
        }
      }
      this._consumer = null;
      lock.releaseLock();
    };
    const done = run();
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
