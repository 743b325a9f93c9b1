// What a connection may use of its engine, in one explicit object instead of the engine's private
// fields: the core (a field, swapped for GONE_CORE when the engine is destroyed), the scratch
// buffers and the view of the core's exchange area shared by the engine's connections, and the
// callbacks through which a connection reports deliveries, drops, events, errors and its end.
import { wasmMemory } from '#wasm';

export class ConnectionContext {
  /**
   * `core`: the engine's EngineCore. `hooks`: `{ notify(c, s), onDrop(c, msg, reason),
   * delivered(c, batch), finished(c), event(c, action), recoveryFor(c), consumerError(c, error,
   * attempt, willRetry), internalError(c, error) }`.
   */
  constructor(core, hooks) {
    this.core = core;
    /** Uint32Array view of the core's exchange area, or null (check its length before use). */
    this.io = null;
    this._ioPtr = 0;
    this._ioCap = 0;
    this._prios = [0.5];
    this._slots = [0];
    this.notify = hooks.notify;
    this.onDrop = hooks.onDrop;
    this.delivered = hooks.delivered;
    this.finished = hooks.finished;
    this.event = hooks.event;
    this.recoveryFor = hooks.recoveryFor;
    this.consumerError = hooks.consumerError;
    this.internalError = hooks.internalError;
  }

  /** The engine's core is freed: every connection sees `gone` (GONE_CORE) from now on. */
  release(gone) {
    this.core = gone;
    this.io = null;
    this._ioCap = 0;
  }

  /**
   * Reused scratch arrays for a batch write's priorities and slots, exactly `n` long. Plain
   * arrays, not typed ones: wasm-bindgen copies either into wasm memory, and a typed-array view
   * of the right length (subarray) costs more to create than the copy.
   */
  prioBuffer(n) {
    const a = this._prios;
    if (a.length !== n) a.length = n;
    return a;
  }

  /** See `prioBuffer`. */
  slotBuffer(n) {
    const a = this._slots;
    if (a.length !== n) a.length = n;
    return a;
  }

  /**
   * A live view of the core's exchange area with room for `n` slots. The view dies (length 0)
   * when wasm memory grows, and the area moves when it grows: both are checked here.
   */
  ioView(n) {
    if (this._ioCap < n) {
      this._ioPtr = this.core.ioReserve(n);
      this._ioCap = this.core.ioLength();
      this.io = null;
    }
    if (this.io === null || this.io.length === 0) this.io = new Uint32Array(wasmMemory().buffer, this._ioPtr, this._ioCap);
    return this.io;
  }

  /** After a delivery that grew the exchange area: the core may give the memory back. */
  ioTrim() {
    if (this.core.ioTrim()) {
      this._ioCap = 0;
      this.io = null;
    }
  }
}
