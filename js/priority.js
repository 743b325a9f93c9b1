// Reading the fields of a message the engine needs, in JS: cheaper than reading them from Rust.
// The numbers themselves (priority names, the default priority) come from the core.
import { priorityNames } from '#wasm';

/** name -> number, and the default priority, read from the core on first use. */
let names = null;
let DEFAULT = NaN;
function loadNames() {
  const o = priorityNames();
  DEFAULT = o.default;
  names = new Map();
  for (const k of Object.keys(o)) if (k !== 'default') names.set(k, o[k]);
}

/** Number for a priority class name, or undefined. */
export function priorityFromName(name) {
  if (names === null) loadNames();
  return names.get(name);
}

export function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'undefined') return String(v);
  return typeof v;
}

/** The priority of a message without one (the core's DEFAULT_PRIORITY). */
function defaultPriority() {
  if (names === null) loadNames();
  return DEFAULT;
}

function field(what, name) {
  return what === undefined ? name : `${what}.${name}`;
}

/**
 * The priority of a message in [0, 1]; 0.5 when absent. Throws on a malformed priority, naming
 * the field (`what`: the message's place, e.g. `batch[3]`, when it is part of an array).
 */
export function priorityOf(msg, what) {
  const m = msg.metadata;
  if (m === undefined || m === null) return defaultPriority();
  const p = m.priority;
  if (typeof p === 'number') {
    if (p >= 0 && p <= 1) return p;
    throw new RangeError(`${field(what, 'metadata.priority')} must be in [0, 1], got ${describe(p)}`);
  }
  if (p === undefined) return defaultPriority();
  const n = priorityFromName(p);
  if (n !== undefined) return n;
  throw new TypeError(`${field(what, 'metadata.priority')} must be a number in [0, 1] or 'critical' | 'high' | 'normal' | 'low', got ${describe(p)}`);
}

/**
 * Throws unless the value a user's `prioritizeMessage` returned is a number. NaN passes: like
 * an absent priority it means the default (the core decides what NaN means, in
 * core::priority::sanitize), and out-of-range numbers are clamped there too.
 */
export function checkHandlerPriority(p, what) {
  if (typeof p !== 'number') {
    throw new TypeError(`backpressureHandler.prioritizeMessage must return a number, got ${describe(p)}${what === undefined ? '' : ` for ${what}`}`);
  }
  return p;
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

/** The conflation key of a message as a string, or undefined. Throws on a malformed key. */
export function keyOf(msg, what) {
  const m = msg.metadata;
  if (m === undefined || m === null) return undefined;
  const k = m.key;
  if (k === undefined || k === null) return undefined;
  if (typeof k === 'string') return k;
  if (typeof k === 'number') return String(k);
  throw new TypeError(`${field(what, 'metadata.key')} must be a string or number, got ${describe(k)}`);
}

/**
 * Refuses keys of an options object read only in JS (events(), StreamDebugger, error
 * recovery) outside `allowed`, with the message the core uses for the objects it reads
 * (core::config::unknown_option): every options object of the API refuses unknown keys.
 */
export function checkKeys(obj, allowed, what) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new TypeError(`${what} has an unknown option ${JSON.stringify(k)}`);
  }
}
