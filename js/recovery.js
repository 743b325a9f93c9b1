// Error recovery policies: which failures to retry, how long to wait, when to open the circuit.
import { validateOption } from '#wasm';
import { checkKeys, describe } from './priority.js';

const NOT_RETRYABLE = new Set(['TypeError', 'SyntaxError', 'AbortError']);

/** Retries with exponential backoff and jitter, behind a circuit breaker. */
export class DefaultErrorRecovery {
  constructor(options) {
    const o = options ?? {};
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`ErrorRecovery options must be an object, got ${describe(o)}`);
    checkKeys(o, ['retryAttempts', 'retryDelay', 'maxRetryDelay', 'jitter', 'circuitBreaker'], 'ErrorRecovery options');
    const cb = o.circuitBreaker ?? {};
    if (typeof cb !== 'object' || Array.isArray(cb)) throw new TypeError(`circuitBreaker must be an object, got ${describe(cb)}`);
    checkKeys(cb, ['failureThreshold', 'resetTimeout'], 'circuitBreaker');
    const get = (obj, name, kind, dflt, label = name) => (obj[name] === undefined ? dflt : validateOption(kind, label, obj[name]));
    this.options = Object.freeze({
      retryAttempts: get(o, 'retryAttempts', 'count', 3),
      retryDelay: get(o, 'retryDelay', 'time', 100),
      maxRetryDelay: get(o, 'maxRetryDelay', 'time', 30000),
      jitter: get(o, 'jitter', 'number01', 0.1),
      circuitBreaker: Object.freeze({
        failureThreshold: get(cb, 'failureThreshold', 'positiveInt', 5, 'circuitBreaker.failureThreshold'),
        resetTimeout: get(cb, 'resetTimeout', 'time', 30000, 'circuitBreaker.resetTimeout'),
      }),
    });
  }
  /** False for errors retrying cannot fix; true for others while attempts remain. */
  shouldRetry(error, attempt) {
    if (error && (error.retryable === false || NOT_RETRYABLE.has(error.name))) return false;
    return attempt < this.options.retryAttempts;
  }
  /** `min(maxRetryDelay, retryDelay * 2^attempt * (1 + jitter * random))`. */
  getRetryDelay(attempt) {
    const { retryDelay, maxRetryDelay, jitter } = this.options;
    const a = Math.max(0, Math.min(1000, Number(attempt) || 0));
    return Math.min(maxRetryDelay, retryDelay * 2 ** a * (1 + jitter * Math.random()));
  }
}

/** The old name, kept working. */
export class GracefulErrorRecovery extends DefaultErrorRecovery {}
