// Reading the fields of a message the engine needs, in JS: cheaper than reading them from Rust.

/** Number for a priority class name. */
export function priorityFromName(name) {
  switch (name) {
    case 'critical': return 1;
    case 'high': return 0.75;
    case 'normal': return 0.5;
    case 'low': return 0.25;
    default: return undefined;
  }
}

export function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'undefined') return String(v);
  return typeof v;
}

/** The priority of a message in [0, 1]; 0.5 when absent. Throws on a malformed priority. */
export function priorityOf(msg) {
  const m = msg.metadata;
  if (m === undefined || m === null) return 0.5;
  const p = m.priority;
  if (typeof p === 'number') {
    if (p >= 0 && p <= 1) return p;
    throw new RangeError(`metadata.priority must be in [0, 1], got ${describe(p)}`);
  }
  if (p === undefined) return 0.5;
  const n = priorityFromName(p);
  if (n !== undefined) return n;
  throw new TypeError(`metadata.priority must be a number in [0, 1] or 'critical' | 'high' | 'normal' | 'low', got ${describe(p)}`);
}

/** Throws a TypeError unless `msg` looks like a StreamMessage (an object with a string id). */
export function checkMessage(msg, what = 'message') {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    throw new TypeError(`${what} must be a StreamMessage object, got ${describe(msg)}`);
  }
  if (typeof msg.id !== 'string') {
    throw new TypeError(`${what}.id must be a string, got ${describe(msg.id)}`);
  }
}

/** The conflation key of a message as a string, or undefined. */
export function keyOf(msg) {
  const m = msg.metadata;
  if (m === undefined || m === null) return undefined;
  const k = m.key;
  if (k === undefined || k === null) return undefined;
  if (typeof k === 'string') return k;
  if (typeof k === 'number') return String(k);
  throw new TypeError(`metadata.key must be a string or number, got ${describe(k)}`);
}
