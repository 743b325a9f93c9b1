// Feeds arrays of already-validated messages into a connection without the WritableStream
// machinery (no promise per write): the gateway fans one published batch out to many
// subscriptions, and the gateway client writes every received frame. The engine decides what is
// accepted, held or dropped; this only keeps the one case the engine refuses (a buffer full of
// messages it may not drop: critical ones, or a lossless connection) in a bounded local queue.
const now = () => performance.now();

export class Feeder {
  /**
   * `limit`: messages that may wait here at most; beyond it `onOverflow(count)` is called once
   * and further messages are refused (counted in `refused`) until the queue drains.
   */
  constructor(connection, limit, onOverflow) {
    this.conn = connection;
    this.limit = limit;
    this.onOverflow = onOverflow;
    this.queue = [];
    this.queued = 0;
    this.waiting = false;
    this.refused = 0;
    this.closed = false;
  }

  /** Offers `batch` (an array of checked messages). Returns false if it was refused. */
  write(batch) {
    if (this.closed || batch.length === 0) return !this.closed;
    if (this.waiting) {
      if (this.queued + batch.length > this.limit) {
        this.refused += batch.length;
        this.onOverflow?.(this.queued + batch.length);
        return false;
      }
      this.queue.push(batch);
      this.queued += batch.length;
      return true;
    }
    this._push(batch);
    return true;
  }

  _push(batch) {
    let r;
    try {
      r = this.conn._write0(batch, now());
    } catch {
      // Closed underneath us: the subscription is going away.
      this.closed = true;
      return;
    }
    if (r !== undefined) {
      // A pending or held write: wait for it before the next one (the engine keeps one pending
      // write per connection).
      this.waiting = true;
      r.then(
        () => this._next(),
        () => {
          this.closed = true;
          this.queue = [];
          this.queued = 0;
        },
      );
    }
  }

  _next() {
    this.waiting = false;
    while (!this.waiting && !this.closed && this.queue.length > 0) {
      const b = this.queue.shift();
      this.queued -= b.length;
      this._push(b);
    }
  }

  close() {
    this.closed = true;
    this.queue = [];
    this.queued = 0;
  }
}
