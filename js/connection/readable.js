// The readable side of a connection: serving a waiting reader (or the consumer loop) the
// batches the core says are due, the batch timer, and frame-aligned delivery.
import { frameOptions } from '../frames.js';
import { EMPTY, now } from './shared.js';

export class ReadableSide {
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
        let io = this._ctx.io;
        const grew = io === null || io.length < k + 1;
        if (grew) io = this._ctx.ioView(k + 1);
        const batch = this._slots.take(io, k);
        const st = io[k];
        // A batch larger than the area keeps: let the core give the memory back.
        if (grew) this._ctx.ioTrim();
        const w = this._waiter;
        this._waiter = null;
        this._clearTimer();
        w(batch);
        this._ctx.delivered(this, batch);
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
        w(this._slots.take(slots));
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
      let io = this._ctx.io;
      if (io === null || io.length < k + 1) io = this._ctx.ioView(k + 1);
      for (let i = 0; i < k; i++) out.push(this._slots.release(io[i]));
      const st = io[k];
      this._empty = (st & EMPTY) !== 0;
      this._afterDeliver(st & ~EMPTY);
      if (this._empty) break;
    }
    if (out.length > 0) this._ctx.delivered(this, out);
    return out;
  }

  _wakeFrames() {
    const w = this._frameWake;
    this._frameWake = null;
    if (w !== null) w();
  }

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
}
