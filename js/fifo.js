// A FIFO queue with O(1) push and shift (Array#shift is O(n) on long arrays).
export class Fifo {
  constructor() {
    this.items = [];
    this.head = 0;
  }
  get length() {
    return this.items.length - this.head;
  }
  push(v) {
    this.items.push(v);
  }
  peek() {
    return this.items[this.head];
  }
  shift() {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    // Compact once the dead prefix dominates, keeping memory proportional to the live length.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  clear() {
    this.items = [];
    this.head = 0;
  }
  toArray() {
    return this.items.slice(this.head);
  }
}
