// The consumer of a connection (`connection.consume(handler)`): the loop that reads batches and
// calls the handler. Every decision is the core's (src/core/consume.rs): whether the circuit lets
// a call through and until when to wait, retry or dead-letter, and the retry time. This loop
// reads the error's fields (forced JS work: is it retryable?), supplies the random number and the
// clock, sleeps until the times the core gives, and settles the batch.
import { FailureKind, resolveRecoveryOptions } from '#wasm';
import { DefaultErrorRecovery, isRetryable } from '../recovery.js';
import { DROP_SUMMARY, NOTIFY, now } from './shared.js';

/**
 * Whether `recovery` is the package's own `DefaultErrorRecovery` with its own methods: then the
 * core decides with the recovery's (Rust-resolved) options and the object is not called back.
 * Anything else (a user's object, a subclass overriding a method) is asked, as the legacy API
 * promises, and its answers are passed to the core.
 */
function isBuiltIn(recovery) {
  return (
    recovery instanceof DefaultErrorRecovery &&
    recovery.shouldRetry === DefaultErrorRecovery.prototype.shouldRetry &&
    recovery.getRetryDelay === DefaultErrorRecovery.prototype.getRetryDelay
  );
}

/** Starts the consume loop of `conn`; see `Connection.consume`. */
export function consume(conn, handler) {
  if (typeof handler !== 'function') throw new TypeError(`consume handler must be a function, got ${typeof handler}`);
  if (conn._consumer !== null) throw new Error(`connection ${conn.id} already has a consumer`);
  if (conn.readable.locked) throw new TypeError(`connection ${conn.id}: readable is locked by a reader; consume() needs it free`);
  const ctx = conn._ctx;
  const h = conn._h;
  // Lock the readable so nobody else reads while the engine consumes.
  const lock = conn.readable.getReader();
  const recovery = ctx.recoveryFor(conn);
  const builtIn = isBuiltIn(recovery);
  if (builtIn) {
    const o = recovery.options;
    conn._core.setRetryPolicy(h, o.retryAttempts, o.retryDelay, o.maxRetryDelay, o.jitter);
  }
  // The core's breaker starts with the core's defaults; a recovery object's own settings are
  // validated and completed by the core too (a custom object may give only part of them).
  const own = recovery.options?.circuitBreaker;
  if (own !== undefined) {
    const cb = builtIn ? own : resolveRecoveryOptions({ circuitBreaker: own }).circuitBreaker;
    conn._core.setCircuit(h, cb.failureThreshold, cb.resetTimeout);
  }
  let stopped = false;
  let wake = null;
  /** Sleeps until `at` (the core's time, ms); `consumer.stop()` wakes it. */
  const sleepUntil = (at) =>
    new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          wake = null;
          resolve();
        },
        Math.max(0, at - now()),
      );
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve();
      };
    });
  const deadLetter = (batch) => {
    conn._core.consumeDeadLetter(h, now());
    for (const m of batch) conn._deadLetters.push(m);
    if (conn._onDrop) for (const m of batch) ctx.onDrop(conn, m, 'dead-letter');
    ctx.notify(conn, DROP_SUMMARY);
    conn._afterDeliver();
  };
  /**
   * The kind of a failure and its number for the core (`consumeFailed`): read from the error
   * for the built-in recovery, asked from a user's recovery object otherwise.
   */
  const judge = (error, attempt) => {
    if (conn._finished || stopped) return [FailureKind.Fatal, 0];
    if (builtIn) return isRetryable(error) ? [FailureKind.Retryable, Math.random()] : [FailureKind.Fatal, 0];
    let retry = false;
    try {
      retry = !!recovery.shouldRetry(error, attempt);
    } catch {
      retry = false;
    }
    if (!retry) return [FailureKind.Fatal, 0];
    let delay = 0;
    try {
      delay = Number(recovery.getRetryDelay(attempt));
    } catch {
      delay = 0;
    }
    return [FailureKind.RetryAfter, delay];
  };
  const consumer = { stop: null, busy: false };
  conn._consumer = consumer;
  const next = () =>
    conn._finished
      ? Promise.resolve(null)
      : new Promise((resolve) => {
          conn._waiter = resolve;
          conn._serve(false);
        });
  /** Calls the handler on `batch` until it succeeds or is given up. */
  const handle = async (batch) => {
    for (;;) {
      if (stopped) return deadLetter(batch); // stopping gives the batch up, counted and retrievable
      const wait = conn._core.circuitWait(h, now());
      if (!Number.isNaN(wait)) {
        // An ended connection does not wait for its circuit: nothing else will come.
        if (conn._finished) return deadLetter(batch);
        await sleepUntil(wait);
        continue;
      }
      let error;
      let failed = false;
      try {
        await handler(batch);
      } catch (e) {
        failed = true;
        error = e;
      }
      const core = conn._core;
      if (!failed) {
        const s = core.consumeSuccess(h, now());
        if (s & NOTIFY) ctx.notify(conn, s);
        conn._afterDeliver();
        return undefined;
      }
      const attempt = core.consumeAttempt(h);
      const [kind, x] = judge(error, attempt);
      const at = core.consumeFailed(h, now(), kind, x);
      const willRetry = !Number.isNaN(at);
      const s = core.status(h);
      if (s & NOTIFY) ctx.notify(conn, s);
      ctx.consumerError(conn, error, attempt, willRetry);
      if (!willRetry) return deadLetter(batch);
      await sleepUntil(at);
      if (conn._finished) return deadLetter(batch);
    }
  };
  const run = async () => {
    try {
      while (!stopped) {
        const batch = await next();
        if (batch === null) break;
        consumer.busy = true;
        try {
          await handle(batch);
        } finally {
          consumer.busy = false;
        }
        if (conn._finishDeferred) {
          conn._finishDeferred = false;
          ctx.finished(conn);
        }
        if (conn._closing && !conn._finished && conn._core.held(h) === 0) {
          conn._finish();
          break;
        }
      }
    } finally {
      if (conn._consumer === consumer) conn._consumer = null;
      if (conn._finishDeferred) {
        conn._finishDeferred = false;
        ctx.finished(conn);
      }
      lock.releaseLock();
    }
  };
  // Every user callback above is guarded; an internal error still must not become an
  // unhandled rejection of `done`.
  const done = run().catch((e) => ctx.internalError(conn, e));
  consumer.stop = () => {
    stopped = true;
    if (wake) wake();
    const w = conn._waiter;
    conn._waiter = null;
    if (w) w(null);
  };
  return {
    stop: consumer.stop,
    done,
  };
}
