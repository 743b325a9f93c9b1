// Backpressure handlers. The built-in ones are descriptions of a policy that the Rust core
// carries out; a user's own object implementing the old interface (`prioritizeMessage`,
// `shouldDropMessage`) is called from JS for each message instead.
import { validateOption } from '#wasm';
import { priorityOf, describe } from './priority.js';

function opt(options, name, kind, dflt) {
  const v = options[name];
  return v === undefined ? dflt : validateOption(kind, name, v);
}

function checkOptions(options, what) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${what} options must be an object, got ${describe(options)}`);
  }
  return options;
}

/** The old handler interface, shared by the built-in handlers. */
class PriorityHandler {
  /** Higher is more important: `metadata.priority` as a number (0.5 when absent). */
  prioritizeMessage(message) {
    return priorityOf(message);
  }
  /** Whether the message is a candidate for dropping under pressure: non-critical and low. */
  shouldDropMessage(message) {
    return priorityOf(message) < 0.5;
  }
}

/**
 * Slows producers at the connection's backpressureThreshold, holds each write at most
 * `maxWaitTime` ms from its `write()` call, and at `dropThreshold` makes room by dropping the
 * lowest-priority message (or the oldest, with `priorityDrop: false`). Critical messages are
 * never dropped.
 */
export class DefaultBackpressureHandler extends PriorityHandler {
  constructor(options) {
    super();
    const o = checkOptions(options, 'DefaultBackpressureHandler');
    if (o.priorityDrop !== undefined && typeof o.priorityDrop !== 'boolean') {
      throw new TypeError(`priorityDrop must be a boolean, got ${describe(o.priorityDrop)}`);
    }
    this.options = Object.freeze({
      dropThreshold: opt(o, 'dropThreshold', 'fraction', 0.9),
      priorityDrop: o.priorityDrop ?? true,
      maxWaitTime: opt(o, 'maxWaitTime', 'time', 100),
    });
  }
  /** @internal the policy the core applies. */
  _policy() {
    const o = this.options;
    return { rule: o.priorityDrop ? 'priority' : 'oldest', dropThreshold: o.dropThreshold, maxWait: o.maxWaitTime };
  }
}

/**
 * Adjusts the drop level (and the batch size, within maxBatchSize) from measured arrival,
 * drain and p95 latency so that delivered messages stay under `targetLatency`, shedding the
 * lowest priorities first, and relaxes as pressure subsides.
 */
export class AdaptiveBackpressureHandler extends PriorityHandler {
  constructor(options) {
    super();
    const o = checkOptions(options, 'AdaptiveBackpressureHandler');
    const targetLatency = opt(o, 'targetLatency', 'time', 100);
    if (targetLatency <= 0) throw new RangeError(`targetLatency must be > 0 (ms), got ${targetLatency}`);
    const maxThreshold = opt(o, 'maxThreshold', 'fraction', 0.9);
    const minThreshold = opt(o, 'minThreshold', 'fraction', 0.05);
    if (minThreshold > maxThreshold) {
      throw new RangeError(`minThreshold must be <= maxThreshold, got ${minThreshold} > ${maxThreshold}`);
    }
    this.options = Object.freeze({
      targetLatency,
      maxThreshold,
      minThreshold,
      // A short hold: it still slows producers that await `ready`, but every ms a write is held
      // adds to its latency, which this handler is trying to bound.
      maxWaitTime: opt(o, 'maxWaitTime', 'time', Math.min(10, targetLatency / 10)),
    });
  }
  /** @internal */
  _policy() {
    const o = this.options;
    return { rule: 'priority', maxWait: o.maxWaitTime, adaptive: { ...o } };
  }
}

/** Resolves a handler (built-in, user object, or none) and connection options into a core policy. */
export function resolvePolicy(handler, cfg) {
  let policy;
  let custom = null;
  if (cfg.dropPolicy !== undefined) {
    const rule = cfg.dropPolicy;
    if (rule !== 'priority' && rule !== 'oldest' && rule !== 'newest' && rule !== 'block') {
      throw new TypeError(`dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got ${describe(rule)}`);
    }
    policy = rule === 'block'
      ? { rule }
      : { rule, dropThreshold: 1, maxWait: cfg.maxWaitTime === undefined ? 100 : validateOption('time', 'maxWaitTime', cfg.maxWaitTime) };
  } else if (handler && typeof handler._policy === 'function') {
    policy = handler._policy();
  } else if (handler) {
    custom = handler;
    const dt = typeof handler.dropThreshold === 'number' ? handler.dropThreshold : 0.9;
    const mw = typeof handler.maxWaitTime === 'number' ? handler.maxWaitTime : 100;
    policy = { rule: 'priority', dropThreshold: validateOption('fraction', 'dropThreshold', dt), maxWait: validateOption('time', 'maxWaitTime', mw) };
  } else {
    policy = { rule: 'block' };
  }
  if (cfg.conflate !== undefined) {
    if (typeof cfg.conflate !== 'boolean') throw new TypeError(`conflate must be a boolean, got ${describe(cfg.conflate)}`);
    policy.conflate = cfg.conflate;
  }
  return { policy, custom };
}

/** Checks that a value passed as a handler has the old interface. */
export function checkHandler(h, what = 'backpressureHandler') {
  if (h === null || h === undefined) return;
  if (typeof h !== 'object' || typeof h.prioritizeMessage !== 'function' || typeof h.shouldDropMessage !== 'function') {
    throw new TypeError(`${what} must implement prioritizeMessage(message) and shouldDropMessage(message), got ${describe(h)}`);
  }
}
