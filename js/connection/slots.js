// The slot store of one connection: the messages stay in JavaScript, opaque; the core holds
// only slot numbers (indices into this store) and hands them back on delivery or drop.

export class SlotStore {
  constructor() {
    /** slot -> message (undefined when free) */
    this.store = [];
    /** free slots, reused last-freed first */
    this.free = [];
  }

  /** Stores `msg` and returns its slot. */
  alloc(msg) {
    const free = this.free;
    const slot = free.length > 0 ? free.pop() : this.store.length;
    this.store[slot] = msg;
    return slot;
  }

  /** Frees `slot` and returns the message it held. */
  release(slot) {
    const msg = this.store[slot];
    this.store[slot] = undefined;
    this.free.push(slot);
    return msg;
  }

  /** The messages in the first `n` of `slots` (slot numbers from the core), freeing them. */
  take(slots, n = slots.length) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.release(slots[i]);
    return out;
  }
}

/**
 * Copies the methods of `part`'s prototype onto `target`'s: each concern of a connection (the
 * writable side, the readable side) is written as its own class over the same connection state.
 */
export function mixin(target, part) {
  for (const name of Object.getOwnPropertyNames(part.prototype)) {
    if (name !== 'constructor') Object.defineProperty(target.prototype, name, Object.getOwnPropertyDescriptor(part.prototype, name));
  }
}
