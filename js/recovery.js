// Error recovery policies: which failures to retry, how long to wait, when to open the circuit.
// The options' defaults and validation and the back-off formula live in Rust
// (core::config::RecoveryPatch, core::recovery::RetryPolicy); this class carries the options.
import { resolveRecoveryOptions, retryDelay } from '#wasm';
import { runtime } from './runtime.js';

const NOT_RETRYABLE = new Set(['TypeError', 'SyntaxError', 'AbortError']);

/**
 * Whether retrying may fix `error`: not for `retryable: false` nor a TypeError, SyntaxError or
 * AbortError. Reading the error's fields is JavaScript's part; the engine's consume loop passes
 * the answer to the core, which decides retry or dead-letter (core::connection::consume).
 */
export function isRetryable(error) {
  let retryable;
  let name;
  try {
    retryable = error?.retryable;
    name = error?.name;
  } catch {
    // A thrown value that cannot be read (a Proxy, ...): retryable, judged by the attempts alone.
  }
  return !(retryable === false || NOT_RETRYABLE.has(name));
}

/** Retries with exponential backoff and jitter, behind a circuit breaker. */
export class DefaultErrorRecovery {
  constructor(options) {
    if (!runtime.ready) throw new Error('the WebAssembly module is not loaded yet: call `await init()` first');
    const o = resolveRecoveryOptions(options);
    Object.freeze(o.circuitBreaker);
    this.options = Object.freeze(o);
  }
  /** False for errors retrying cannot fix; true for others while attempts remain. */
  shouldRetry(error, attempt) {
    return isRetryable(error) && attempt < this.options.retryAttempts;
  }
  /** `min(maxRetryDelay, retryDelay * 2^attempt * (1 + jitter * random))`. */
  getRetryDelay(attempt) {
    const { retryDelay: base, maxRetryDelay, jitter } = this.options;
    return retryDelay(base, maxRetryDelay, jitter, Number(attempt) || 0, Math.random());
  }
}

/** The old name, kept working. */
export class GracefulErrorRecovery extends DefaultErrorRecovery {}
