// The gateway's default per-topic history: a bounded ring of the last `size` published messages
// per topic, so that a client that reconnects can be sent what it missed.
//
// Sequence ids are decimal strings of integers. They start at the creation time in µs
// (`Date.now() * 1000`) rather than at 1, so that the seqs of a restarted gateway are larger than
// those of the one before it: a client that resumes from an older run's seq is then *behind* the
// history, and gets a `gap` (it may have missed messages) instead of a silent skip.
import { describe } from './priority.js';

/** Default number of messages kept per topic. */
export const DEFAULT_HISTORY_SIZE = 1000;

/** The in-memory history (the default `history` of `createGateway`). */
export class MemoryHistory {
  /** `size`: messages kept per topic (positive integer, default 1000). */
  constructor({ size = DEFAULT_HISTORY_SIZE } = {}) {
    if (!Number.isInteger(size) || size < 1 || size > 10_000_000) throw new RangeError(`history.size must be an integer in 1..10000000, got ${describe(size)}`);
    this.size = size;
    this.base = Date.now() * 1000;
    this.topics = new Map(); // topic -> { ring: [{seq:number, message}], head, next:number }
  }

  _topic(topic) {
    let t = this.topics.get(topic);
    if (t === undefined) {
      t = { ring: [], head: 0, next: this.base + 1 };
      this.topics.set(topic, t);
    }
    return t;
  }

  /** Assigns consecutive seqs to `messages` and keeps them; returns the seqs as strings. */
  append(topic, messages) {
    const t = this._topic(topic);
    const out = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const seq = t.next++;
      const entry = { seq, message: messages[i] };
      if (t.ring.length < this.size) t.ring.push(entry);
      else {
        t.ring[t.head] = entry;
        t.head = (t.head + 1) % this.size;
      }
      out[i] = String(seq);
    }
    return out;
  }

  /**
   * Entries after `afterSeq` (exclusive), oldest first, at most `limit`. `gap` is true when the
   * history no longer reaches back to `afterSeq` (or `afterSeq` is not one of its seqs at all:
   * from another run, or malformed), so the client may have missed messages.
   */
  async since(topic, afterSeq, limit) {
    return this.sinceSync(topic, afterSeq, limit);
  }

  /** `since` without the promise. */
  sinceSync(topic, afterSeq, limit) {
    const a = /^\d{1,16}$/.test(afterSeq) ? Number(afterSeq) : NaN;
    const t = this.topics.get(topic);
    const first = t === undefined || t.ring.length === 0 ? this.base + 1 : t.ring[t.head].seq;
    const next = t === undefined ? this.base + 1 : t.next;
    // Not ours (malformed, or ahead of everything we ever assigned: another run).
    if (Number.isNaN(a) || a >= next) return { entries: this._from(t, first, limit), gap: true };
    // The client's last seq is older than the oldest we keep: something in between is gone.
    const gap = a < first - 1;
    return { entries: this._from(t, gap ? first : a + 1, limit), gap };
  }

  _from(t, fromSeq, limit) {
    if (t === undefined || t.ring.length === 0) return [];
    const n = t.ring.length;
    const first = t.ring[t.head].seq;
    const skip = Math.max(0, fromSeq - first);
    const out = [];
    for (let i = skip; i < n && out.length < limit; i++) {
      const e = t.ring[(t.head + i) % n];
      out.push({ seq: String(e.seq), message: e.message });
    }
    return out;
  }

  /** The seq of the newest message of `topic`, or undefined. */
  lastSeq(topic) {
    const t = this.topics.get(topic);
    return t === undefined || t.ring.length === 0 ? undefined : String(t.next - 1);
  }
}

/**
 * Orders two seqs: negative, 0 or positive; NaN when either is not made of decimal groups joined
 * by '-' (the in-memory history's `123` or a Redis entry id `1700000000000-0`). Groups compare as
 * numbers (by length, then digits: no precision limit), left to right.
 */
export function compareSeqs(a, b) {
  if (typeof a !== 'string' || typeof b !== 'string' || !SEQ.test(a) || !SEQ.test(b)) return NaN;
  const pa = a.split('-');
  const pb = b.split('-');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = (pa[i] ?? '0').replace(/^0+(?=\d)/, '');
    const y = (pb[i] ?? '0').replace(/^0+(?=\d)/, '');
    if (x.length !== y.length) return x.length - y.length;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
const SEQ = /^\d{1,20}(-\d{1,20})?$/;
