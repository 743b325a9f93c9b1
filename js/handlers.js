// Backpressure handlers. The built-in ones are descriptions of a policy that the Rust core
// carries out: their options are validated and completed with defaults in Rust
// (`resolveHandlerOptions`, core::config::HandlerSpec), so these classes only carry them. A
// user's own object implementing the old interface (`prioritizeMessage`, `shouldDropMessage`)
// is called from JS for each message instead.
import { resolveHandlerOptions } from '#wasm';
import { priorityOf, describe } from './priority.js';
import { runtime } from './runtime.js';

function resolved(kind, options) {
  if (!runtime.ready) throw new Error('the WebAssembly module is not loaded yet: call `await init()` first');
  return Object.freeze(resolveHandlerOptions(kind, options));
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
    this.options = resolved('default', options);
  }
  /** @internal the handler as the core reads it. */
  _policy() {
    return { kind: 'default', ...this.options };
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
    this.options = resolved('adaptive', options);
  }
  /** @internal */
  _policy() {
    return { kind: 'adaptive', ...this.options };
  }
}

/**
 * The handler in force as the core reads it (`{ kind, ...options }`), and the user's own
 * handler object when it is one (its methods are called per message from JS).
 */
export function handlerSpec(handler) {
  if (!handler) return { spec: undefined, custom: null };
  if (typeof handler._policy === 'function') return { spec: handler._policy(), custom: null };
  // A user's object: its optional numeric dropThreshold / maxWaitTime are honoured (the core
  // validates them and supplies the defaults).
  const spec = { kind: 'custom' };
  if (typeof handler.dropThreshold === 'number') spec.dropThreshold = handler.dropThreshold;
  if (typeof handler.maxWaitTime === 'number') spec.maxWaitTime = handler.maxWaitTime;
  return { spec, custom: handler };
}

/** Checks that a value passed as a handler has the old interface. */
export function checkHandler(h, what = 'backpressureHandler') {
  if (h === null || h === undefined) return;
  if (typeof h !== 'object' || typeof h.prioritizeMessage !== 'function' || typeof h.shouldDropMessage !== 'function') {
    throw new TypeError(`${what} must implement prioritizeMessage(message) and shouldDropMessage(message), got ${describe(h)}`);
  }
}
