// Synthetic data sources: ReadableStreams of StreamMessages produced at a fixed rate, paced
// against the clock, following a value pattern. Used by the demo, the performance suite and tests.
import { describe, priorityFromName } from './priority.js';

export const DATA_PATTERNS = ['sequential', 'random', 'sine-wave', 'step'];

/** Number of levels the 'step' pattern climbs through (0, A/3, 2A/3, A, then 0 again). */
export const STEP_LEVELS = 4;

/** Messages the stream queues ahead of its reader before pausing (pull-based backpressure). */
const HIGH_WATER_MARK = 256;
/** Shortest timer wait while messages are due soon: bounds the timer rate at high `rate`. */
const MIN_TICK_MS = 4;
/** Longest timer wait (so a cancelled stream's timer never lingers). */
const MAX_TICK_MS = 250;
/** Longest run of production without giving the event loop a turn (a source behind schedule
 * would otherwise produce in one unbroken chain of microtasks and starve timers and rendering). */
const YIELD_MS = 8;
/** Most messages in one array with `batch: true`. */
const MAX_BATCH = 4096;

const now = () => performance.now();

/**
 * The value of `pattern` at time `t` (ms since the start) for message number `seq`.
 * sequential: seq; random: uniform in [0, amplitude); sine-wave: amplitude * sin(2π t / period);
 * step: a staircase of STEP_LEVELS levels from 0 to amplitude, one level per period.
 */
export function patternValue(pattern, seq, t, amplitude, period) {
  switch (pattern) {
    case 'sequential':
      return seq;
    case 'random':
      return Math.random() * amplitude;
    case 'sine-wave':
      return amplitude * Math.sin((2 * Math.PI * t) / period);
    case 'step':
      return (amplitude * (Math.floor(t / period) % STEP_LEVELS)) / (STEP_LEVELS - 1);
    default:
      throw new TypeError(`pattern must be one of ${DATA_PATTERNS.map((p) => `'${p}'`).join(', ')}, got ${describe(pattern)}`);
  }
}

/** Throws unless `pattern` is a known data pattern. `what` names the field in the message. */
export function checkPattern(pattern, what = 'pattern') {
  if (!DATA_PATTERNS.includes(pattern)) {
    throw new TypeError(`${what} must be one of ${DATA_PATTERNS.map((p) => `'${p}'`).join(', ')}, got ${describe(pattern)}`);
  }
}

/** A payload string of exactly `size` bytes (ASCII), or undefined for 0. */
export function makePayload(size) {
  if (size === 0) return undefined;
  const unit = 'nodeflow-stream-engine-payload-';
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

function checkNumber(v, name) {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be finite, got ${describe(v)}`);
}

function checkString(v, name) {
  if (typeof v !== 'string') throw new TypeError(`${name} must be a string, got ${describe(v)}`);
  if (v.length === 0) throw new TypeError(`${name} must be a non-empty string`);
}

function checkPriorityValue(p, name) {
  if (typeof p === 'number') {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${describe(p)}`);
    return;
  }
  if (priorityFromName(p) === undefined) {
    throw new TypeError(`${name} must be a number in [0, 1] or 'critical' | 'high' | 'normal' | 'low', got ${describe(p)}`);
  }
}

const OPTIONS = new Set(['rate', 'sourceNodeId', 'targetNodeId', 'port', 'messageSize', 'count', 'priority', 'amplitude', 'period', 'batch']);

function resolveOptions(options) {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`options must be an object with at least a rate, got ${describe(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (!OPTIONS.has(k)) throw new TypeError(`options has an unknown field ${JSON.stringify(k)}`);
  }
  const o = options;
  if (o.rate === undefined) throw new TypeError('rate is required (messages per second)');
  checkNumber(o.rate, 'rate');
  if (!(o.rate > 0)) throw new RangeError(`rate must be > 0 (messages per second), got ${o.rate}`);
  const sourceNodeId = o.sourceNodeId ?? 'source';
  const targetNodeId = o.targetNodeId ?? 'target';
  const port = o.port ?? 'out';
  checkString(sourceNodeId, 'sourceNodeId');
  checkString(targetNodeId, 'targetNodeId');
  checkString(port, 'port');
  const messageSize = o.messageSize ?? 0;
  checkNumber(messageSize, 'messageSize');
  if (!Number.isInteger(messageSize) || messageSize < 0) throw new RangeError(`messageSize must be an integer >= 0 (bytes), got ${messageSize}`);
  let count = Infinity;
  if (o.count !== undefined) {
    checkNumber(o.count, 'count');
    if (!Number.isInteger(o.count) || o.count < 0) throw new RangeError(`count must be an integer >= 0, got ${o.count}`);
    count = o.count;
  }
  const priority = o.priority;
  if (priority !== undefined && typeof priority !== 'function') checkPriorityValue(priority, 'priority');
  const amplitude = o.amplitude ?? 100;
  checkNumber(amplitude, 'amplitude');
  const period = o.period ?? 1000;
  checkNumber(period, 'period');
  if (!(period > 0)) throw new RangeError(`period must be > 0 (ms), got ${period}`);
  const batch = o.batch ?? false;
  if (typeof batch !== 'boolean') throw new TypeError(`batch must be a boolean, got ${describe(batch)}`);
  return { rate: o.rate, sourceNodeId, targetNodeId, port, messageSize, count, priority, amplitude, period, batch };
}

/**
 * A ReadableStream of StreamMessages produced at `options.rate` messages per second following
 * `pattern`. Production is paced against the clock in small timer ticks (every message due by
 * now is produced at once), and is pull-based: at most HIGH_WATER_MARK messages wait for a slow
 * reader. Like a live sensor, a reader that falls more than one second (or HIGH_WATER_MARK
 * messages) behind does not get the missed slots later: the source skips them and stays in step
 * with the clock (`seq` stays contiguous; time-based values follow the clock). With `count` the
 * stream closes after that many messages. Cancelling the stream stops its timer.
 *
 * Message `seq` starts at 0; `id` is `${sourceNodeId}-${seq}`; `data` is `{ value, seq, payload? }`
 * where time-based values use the message's scheduled time `slot * 1000 / rate` ms after the start.
 */
export function createDataSource(pattern, options) {
  checkPattern(pattern);
  const o = resolveOptions(options);
  const interval = 1000 / o.rate; // ms between messages
  const maxLag = Math.max(HIGH_WATER_MARK, Math.ceil(o.rate));
  const payload = makePayload(o.messageSize);
  const fixedPriority = typeof o.priority === 'function' ? undefined : o.priority;
  const priorityFn = typeof o.priority === 'function' ? o.priority : null;
  let t0 = 0;
  let slot = 0; // next schedule slot (advances past skipped slots)
  let seq = 0; // messages produced
  let timer = null;
  let wake = null; // resolves the pull waiting on the timer
  let cancelled = false;
  let sliceStart = 0; // when production last resumed from a timer

  const make = () => {
    const t = slot * interval;
    const data = { value: patternValue(pattern, seq, t, o.amplitude, o.period), seq };
    if (payload !== undefined) data.payload = payload;
    const msg = {
      id: `${o.sourceNodeId}-${seq}`,
      timestamp: Date.now(),
      sourceNodeId: o.sourceNodeId,
      targetNodeId: o.targetNodeId,
      port: o.port,
      data,
    };
    let p = fixedPriority;
    if (priorityFn !== null) {
      p = priorityFn();
      checkPriorityValue(p, 'priority()');
    }
    if (p !== undefined) msg.metadata = { priority: p };
    seq++;
    slot++;
    return msg;
  };

  /** Enqueues what is due (up to the free queue space); returns how many. */
  const produce = (controller) => {
    const due = Math.floor((now() - t0) / interval) + 1; // slots due by now (slot 0 at t0)
    if (due - slot > maxLag) slot = due - maxLag; // too far behind: skip, like a live source
    if (o.batch) {
      // One array per tick: the engine's batch-write fast path.
      const n = Math.min(due - slot, MAX_BATCH, o.count - seq);
      if (n > 0) {
        const arr = new Array(n);
        for (let i = 0; i < n; i++) arr[i] = make();
        controller.enqueue(arr);
      }
      if (seq >= o.count) controller.close();
      return n;
    }
    const room = Math.max(1, controller.desiredSize ?? 1);
    const n = Math.min(due - slot, room, o.count - seq);
    for (let i = 0; i < n; i++) controller.enqueue(make());
    if (seq >= o.count) controller.close();
    return n;
  };

  return new ReadableStream(
    {
      start(controller) {
        t0 = now();
        sliceStart = t0;
        if (o.count === 0) controller.close();
      },
      pull(controller) {
        if (cancelled || seq >= o.count) return undefined;
        const mustYield = now() - sliceStart > YIELD_MS;
        if (!mustYield && produce(controller) > 0) return undefined;
        // Nothing due yet: wait for the next slot (at least MIN_TICK_MS so that high rates are
        // produced in small batches per tick, not one timer per message). The pull stays pending
        // until something was produced: a pull that ends without an enqueue is not called again.
        return new Promise((resolve, reject) => {
          wake = resolve;
          const arm = (wait) => {
            const nextAt = t0 + slot * interval;
            timer = setTimeout(tick, wait ?? Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, nextAt - now())));
          };
          const tick = () => {
            timer = null;
            sliceStart = now();
            if (cancelled) return;
            try {
              if (produce(controller) === 0 && seq < o.count) return arm();
            } catch (e) {
              wake = null;
              return reject(e);
            }
            wake = null;
            resolve();
          };
          arm(mustYield ? 0 : undefined);
        });
      },
      cancel() {
        cancelled = true;
        if (timer !== null) clearTimeout(timer);
        timer = null;
        const w = wake;
        wake = null;
        if (w) w();
      },
    },
    { highWaterMark: HIGH_WATER_MARK },
  );
}
