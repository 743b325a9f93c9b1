// The writable side of a connection: a write's validation, its offer to the core, and what the
// core's admission decision asks for (src/core/admission.rs): complete now, hold the write's
// promise until the time the core gives, wait for room (pending), or refuse. The decisions are
// the core's; this file arms timers and settles promises.
import { retryChunk } from '#wasm';
import { Fifo } from '../fifo.js';
import { checkHandlerPriority, checkMessage, keyOf, priorityOf } from '../priority.js';
import { BATCH_READY, CLOSED, DROPPED, FIRST, HOLD, NOTIFY, PENDING, closedError, now, reasonName } from './shared.js';

export class WritableSide {
  _makeWritable() {
    const strategy = { highWaterMark: 1 };
    // A fresh queue per writable: writes queued in an errored writable never reach the sink.
    this._callTimes = this._holds ? new Fifo() : null;
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
    const prios = this._ctx.prioBuffer(n);
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

  /** Offers a prepared write and does the follow-up work. */
  _offerWrite(w, t, retry = false) {
    const s = this._pushWrite(w, t, retry);
    if (s === 0) return undefined;
    return this._afterPush(s, s & PENDING ? w : null, t);
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
   * Offers one validated message with priority `p` on a connection without per-message work
   * (no user handler, no conflation). Returns the core's status bits; a refused message
   * (PENDING, CLOSED) keeps no slot.
   */
  _pushPlain(msg, p, t) {
    this._empty = false;
    const slot = this._slots.alloc(msg);
    const s = this._core.push(this._h, slot, p, t);
    if (s === 0) return 0;
    if (s & (PENDING | CLOSED)) this._slots.release(slot);
    if (s & DROPPED) this._collectDropped();
    return s;
  }

  /**
   * Offers one message whose per-message decisions are made: priority `p`, conflation key `k`
   * (or undefined), and `cand`: whether the user's handler said it may be dropped (the core
   * drops it on arrival while backpressure is on: pushDroppable).
   */
  _pushOne(msg, p, k, cand, t) {
    const core = this._core;
    this._empty = false;
    const slot = this._slots.alloc(msg);
    let s;
    if (cand) s = core.pushDroppable(this._h, slot, p, k, t);
    else if (k !== undefined) s = core.pushKeyed(this._h, slot, p, k, t);
    else s = core.push(this._h, slot, p, t);
    if (s & (PENDING | CLOSED)) this._slots.release(slot);
    if (s & DROPPED) this._collectDropped();
    return s;
  }

  /**
   * Offers a plain batch through `pushMany`. The first attempt offers all of it in one call
   * (the fast path). A retry after a refusal offers chunks sized by the core (`retryChunk`,
   * core::connection::admission::retry_chunk: doubling while the core takes all), so that a
   * large array into a small buffer costs linear, not quadratic, work in its length.
   */
  _pushChunks(w, t, retry) {
    const { arr, prios } = w;
    const n = arr.length;
    const core = this._core;
    const slots0 = this._slots;
    let m = 0;
    let st = 0;
    while (w.off < n) {
      this._empty = false;
      const off = w.off;
      m = retry ? retryChunk(m, n - off) : n - off;
      const slots = this._ctx.slotBuffer(m);
      for (let i = 0; i < m; i++) slots[i] = slots0.alloc(arr[off + i]);
      const s = core.pushMany(this._h, slots, off === 0 && m === prios.length ? prios : prios.subarray(off, off + m), t);
      const taken = s & PENDING ? core.lastAccepted() : s & CLOSED ? 0 : m;
      for (let i = taken; i < m; i++) slots0.release(slots[i]);
      w.off = off + taken;
      st |= s;
      if (s & DROPPED) this._collectDropped();
      if (s & (PENDING | CLOSED)) return st;
    }
    return st;
  }


  /** Frees the slots the core dropped and hands the messages to `onDrop`. */
  _collectDropped() {
    const flat = this._core.takeDropped(this._h);
    for (let i = 0; i < flat.length; i += 2) {
      const msg = this._slots.release(flat[i]);
      if (this._onDrop !== null) this._ctx.onDrop(this, msg, reasonName(flat[i + 1]));
    }
  }

  /**
   * Follow-up work for a non-zero status: delivery, events, refusal, holds. `w` is the write's
   * record when it was refused for now (PENDING): it is retried from `w.off` after a delivery.
   */
  _afterPush(s, w, t) {
    if (s & CLOSED) throw closedError(this.id);
    if (s & NOTIFY) this._ctx.notify(this, s);
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

  /**
   * A write accepted under backpressure (HOLD): the core says until when its promise is held
   * (its wait budget counted from the write() call at `t`), or NaN to complete it now.
   */
  _hold(t) {
    const until = this._core.holdUntil(this._h, t, now());
    if (Number.isNaN(until)) return undefined;
    return new Promise((resolve) => {
      this._held = resolve;
      this._heldTimer = setTimeout(() => this._releaseHold(), until - now());
    });
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
    if (s & NOTIFY) this._ctx.notify(this, s);
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
      if (s & NOTIFY) this._ctx.notify(this, s);
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
}
