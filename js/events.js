// The engine's event feed: each `events()` call is a new ReadableStream with its own bounded
// queue, so a slow or abandoned subscriber never slows the engine or grows memory.
import { Fifo } from './fifo.js';
import { checkKeys, describe } from './priority.js';

export const EVENT_TYPES = ['metrics', 'alert', 'alert-resolved', 'backpressure', 'drop', 'connection', 'error', 'gap', 'gateway'];

export class EventHub {
  constructor(onChange) {
    this.subs = new Set();
    this.onChange = onChange;
  }
  get size() {
    return this.subs.size;
  }
  /** Whether any subscriber wants events of this type. */
  wants(type) {
    for (const s of this.subs) if (!s.types || s.types.has(type)) return true;
    return false;
  }
  stream(options) {
    const o = options ?? {};
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`events options must be an object, got ${describe(o)}`);
    checkKeys(o, ['types', 'queueSize'], 'events options');
    let types = null;
    if (o.types !== undefined) {
      if (!Array.isArray(o.types)) throw new TypeError(`types must be an array of event types, got ${describe(o.types)}`);
      for (const t of o.types) {
        if (!EVENT_TYPES.includes(t)) throw new TypeError(`types has an unknown event type ${describe(t)}; known: ${EVENT_TYPES.join(', ')}`);
      }
      types = new Set(o.types);
    }
    let max = 1000;
    if (o.queueSize !== undefined) {
      if (!Number.isInteger(o.queueSize) || o.queueSize < 1) throw new RangeError(`queueSize must be a positive integer, got ${describe(o.queueSize)}`);
      max = o.queueSize;
    }
    const sub = { types, max, queue: new Fifo(), missed: 0, waiting: null, controller: null, closed: false };
    const hub = this;
    const rs = new ReadableStream(
      {
        start(c) {
          sub.controller = c;
          hub.subs.add(sub);
          hub.onChange?.();
        },
        pull() {
          if (sub.queue.length > 0) {
            sub.controller.enqueue(sub.queue.shift());
            return;
          }
          return new Promise((resolve) => {
            sub.waiting = resolve;
          });
        },
        cancel() {
          hub._remove(sub);
        },
      },
      { highWaterMark: 0 },
    );
    return rs;
  }
  _remove(sub) {
    if (sub.closed) return;
    sub.closed = true;
    sub.queue.clear();
    this.subs.delete(sub);
    if (sub.waiting) {
      const w = sub.waiting;
      sub.waiting = null;
      w();
    }
    this.onChange?.();
  }
  emit(ev) {
    for (const sub of this.subs) {
      if (sub.types && !sub.types.has(ev.type)) continue;
      let out = ev;
      if (sub.missed > 0) {
        out = { ...ev, missed: sub.missed };
        sub.missed = 0;
      }
      if (sub.waiting) {
        const w = sub.waiting;
        sub.waiting = null;
        sub.controller.enqueue(out);
        w();
      } else {
        sub.queue.push(out);
        if (sub.queue.length > sub.max) {
          sub.queue.shift();
          // The next event delivered says how many went.
          sub.missed++;
          const head = sub.queue.peek();
          if (head) {
            sub.queue.items[sub.queue.head] = { ...head, missed: (head.missed ?? 0) + sub.missed };
            sub.missed = 0;
          }
        }
      }
    }
  }
  closeAll() {
    for (const sub of [...this.subs]) {
      try {
        // Deliver what is queued, then end.
        while (sub.queue.length > 0) sub.controller.enqueue(sub.queue.shift());
        sub.controller.close();
      } catch {
        // already closed or errored
      }
      this._remove(sub);
    }
  }
}
