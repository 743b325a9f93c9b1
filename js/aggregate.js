// Windowed aggregation and downsampling stages around the Rust core (src/core/aggregate.rs,
// src/core/downsample.rs). JS only keeps the messages (tokens are slots in a Map), interns keys,
// reads time/value/key with the caller's accessors, and builds result messages; every decision
// (windows, lateness, closing, quantiles, buckets) is made in Rust.
//
// The Rust side is a WebAssembly module of its own ('#wasm-stages', pkg/stages/, built from
// crates/stages), so that apps which never aggregate do not download it. Node instantiates it
// synchronously on first use (its entry hands over the glue and the bytes in platform.stages);
// browsers import the glue and fetch the .wasm with initStages(), which the stage constructors
// start by themselves. The import is dynamic so that bundlers put the glue and its .wasm in a
// chunk of their own, fetched only when a stage is used.
import { describe } from './priority.js';
import { platform } from './runtime.js';

/** The stages glue's exports once the module is instantiated (null before). */
let S = null;
let stagesLoading = null;

/**
 * Loads the WebAssembly module of the window and downsample stages (a second `.wasm`, exported
 * as `@nodeflow/stream-engine/wasm-stages`). In Node it loads synchronously on first use and this
 * is never needed. In browsers `createWindowStage` / `createDownsampleStage` call it themselves
 * (their streams wait for it); `new WindowAggregator()` and `downsampleLTTB()` are synchronous and
 * need `await initStages()` first. Later calls return the same promise (after a failed load, the
 * next call tries again). `input` is passed to
 * wasm-bindgen's init (a URL, Response, bytes or module); by default the `.wasm` next to the glue
 * (pkg/stages/) is fetched, which bundlers rewrite to their asset URL.
 */
export function initStages(input) {
  if (stagesLoading === null) {
    if (platform.stages && input === undefined) {
      try {
        loadStagesSync();
        stagesLoading = Promise.resolve();
      } catch (e) {
        stagesLoading = Promise.reject(e);
      }
    } else {
      stagesLoading = import('#wasm-stages')
        .then(async (glue) => {
          await glue.default(input === undefined ? undefined : { module_or_path: input });
          S = glue;
        })
        .catch((e) => {
          stagesLoading = null; // a failed fetch can be retried by the next call
          throw e;
        });
    }
  }
  return stagesLoading;
}

function loadStagesSync() {
  const { glue, bytes } = platform.stages;
  glue.initSync({ module: bytes() });
  S = glue;
}

/** True once the stages module can be used synchronously (loading it now if Node can). */
function stagesAvailable() {
  if (S === null && platform.stages && stagesLoading === null) {
    loadStagesSync();
    stagesLoading = Promise.resolve();
  }
  return S !== null;
}

function requireStages(what) {
  if (!stagesAvailable()) {
    throw new Error(`${what} needs the stages WebAssembly module: call \`await initStages()\` first (browsers load it on first use)`);
  }
}

const RESULT_STRIDE = 10;
const BUCKET_STRIDE = 9;

function fnOption(options, name, fallback) {
  const f = options[name];
  if (f === undefined) return fallback;
  if (typeof f !== 'function') throw new TypeError(`${name} must be a function, got ${describe(f)}`);
  return f;
}

function stringOption(options, name, fallback) {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new TypeError(`${name} must be a string, got ${describe(v)}`);
  return v;
}

/** Default accessors: the group key, the event time and the numeric value of a message. */
export const defaultKey = (m) => {
  const k = m?.metadata?.key;
  return k === undefined || k === null ? String(m?.sourceNodeId ?? '') : String(k);
};
export const defaultTime = (m) => m?.timestamp;
export const defaultValue = (m) => {
  const d = m?.data;
  return typeof d === 'number' ? d : d?.value;
};

function toNumber(v) {
  return typeof v === 'number' ? v : NaN; // non-numbers are invalid events in the core
}

function toBatch(chunk) {
  return Array.isArray(chunk) ? chunk : [chunk];
}

class KeyTable {
  constructor() {
    this.ids = new Map();
    this.names = [];
  }
  id(name) {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }
}

function commonOptions(options, what) {
  if (options === null || typeof options !== 'object') throw new TypeError(`${what} options must be an object, got ${describe(options)}`);
  return {
    key: fnOption(options, 'key', defaultKey),
    time: fnOption(options, 'time', defaultTime),
    value: fnOption(options, 'value', defaultValue),
    onDrop: fnOption(options, 'onDrop', null),
    sourceNodeId: stringOption(options, 'sourceNodeId', what),
    targetNodeId: stringOption(options, 'targetNodeId', '*'),
    port: stringOption(options, 'port', 'out'),
  };
}

/**
 * Event-time windows over messages, grouped by key. `add(messages)` and `flush()` return
 * `{ results, released, late, invalid }`: result messages (ids `win:<key>:<start>:<end>`, stable
 * across replays, so a consumer can deduplicate), the input messages whose every window has been
 * emitted, and the inputs refused as late or invalid (also passed to `onDrop(message, reason)`).
 * Every added message comes back exactly once, in `released`, `late` or `invalid`.
 * With `lineage: true`, each result's `data.inputs` lists the ids (`idOf(message)`, default
 * `message.id`) of the messages it covers, for auditing exactly-once effects.
 */
export class WindowAggregator {
  constructor(options) {
    const o = commonOptions(options, 'window');
    requireStages('new WindowAggregator()');
    this._core = new S.WindowAggregatorCore(options);
    Object.assign(this, { _key: o.key, _time: o.time, _value: o.value, _onDrop: o.onDrop });
    this._meta = { sourceNodeId: o.sourceNodeId, targetNodeId: o.targetNodeId, port: o.port };
    this._keys = new KeyTable();
    this._held = new Map(); // token -> message
    this._next = 0;
    this._lineage = options.lineage === true;
    this._idOf = fnOption(options, 'idOf', (m) => m?.id);
  }

  /** Adds messages (one or an array); see the class docs for what comes back. */
  add(messages) {
    const batch = toBatch(messages);
    const n = batch.length;
    const tokens = new Uint32Array(n);
    const keys = new Uint32Array(n);
    const times = new Float64Array(n);
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const m = batch[i];
      const tok = this._next;
      this._next = (this._next + 1) >>> 0;
      tokens[i] = tok;
      keys[i] = this._keys.id(String(this._key(m)));
      times[i] = toNumber(this._time(m));
      values[i] = toNumber(this._value(m));
    }
    const codes = this._core.addMany(tokens, keys, times, values);
    const late = [];
    const invalid = [];
    for (let i = 0; i < n; i++) {
      if (codes[i] === 0) this._held.set(tokens[i], batch[i]);
      else (codes[i] === 1 ? late : invalid).push(batch[i]);
    }
    if (this._onDrop) {
      for (const m of late) this._onDrop(m, 'late');
      for (const m of invalid) this._onDrop(m, 'invalid');
    }
    return { ...this._collect(), late, invalid };
  }

  /** Advances event time to `time` (ms) without a message, closing the windows it passes. */
  advance(time) {
    if (typeof time !== 'number') throw new TypeError(`time must be a number, got ${describe(time)}`);
    this._core.advance(time);
    return { ...this._collect(), late: [], invalid: [] };
  }

  /** Closes every open window and returns what that emits. */
  flush() {
    this._core.flush();
    return { ...this._collect(), late: [], invalid: [] };
  }

  /** `{ taken, late, invalid, lateWindowMisses, results, released, held, openWindows, watermark }`. */
  get stats() {
    const s = this._core.stats();
    return {
      taken: s[0], late: s[1], invalid: s[2], lateWindowMisses: s[3], results: s[4], released: s[5],
      held: s[6], openWindows: s[7], watermark: this._core.watermark(),
    };
  }

  _collect() {
    const flat = this._core.takeResults();
    const lineage = this._lineage ? this._core.takeLineage() : null;
    let li = 0;
    const results = [];
    for (let i = 0; i < flat.length; i += RESULT_STRIDE) {
      const key = this._keys.names[flat[i]];
      const [start, end] = [flat[i + 1], flat[i + 2]];
      results.push({
        id: `win:${key}:${start}:${end}`,
        timestamp: end,
        ...this._meta,
        data: {
          key, start, end, count: flat[i + 3], sum: flat[i + 4], min: flat[i + 5], max: flat[i + 6],
          mean: flat[i + 7], p50: flat[i + 8], p95: flat[i + 9],
        },
        metadata: { key },
      });
      if (lineage) {
        const n = flat[i + 3];
        const inputs = new Array(n);
        for (let j = 0; j < n; j++) inputs[j] = this._idOf(this._held.get(lineage[li + j]));
        li += n;
        results[results.length - 1].data.inputs = inputs;
      }
    }
    const released = [];
    for (const tok of this._core.takeReleased()) {
      released.push(this._held.get(tok));
      this._held.delete(tok);
    }
    return { results, released };
  }

  /** The messages held in open windows (added, not yet released). */
  heldMessages() {
    return [...this._held.values()];
  }

  /** Frees the core (the object is unusable afterwards). */
  free() {
    this._core.free();
  }
}

/**
 * A TransformStream-like stage: write messages (or arrays), read arrays of window results.
 * `idleTimeout` (ms, optional) flushes the open windows after that long without input, so a
 * quiet stream still emits. Closing the writable flushes everything.
 */
export function createWindowStage(options) {
  commonOptions(options, 'window');
  const idle = options.idleTimeout;
  if (idle !== undefined && (typeof idle !== 'number' || !(idle > 0) || !Number.isFinite(idle))) {
    throw new RangeError(`idleTimeout must be a finite number > 0 (ms), got ${describe(idle)}`);
  }
  // Node, or a browser after initStages(): the aggregator exists now, and bad window options
  // throw here. Otherwise the streams wait for the module, and bad options error them.
  let agg = stagesAvailable() ? new WindowAggregator(options) : null;
  const ready = agg !== null ? null : initStages().then(() => {
    agg = new WindowAggregator(options);
  });
  let timer = null;
  let controllerRef = null;
  const emit = (controller, out) => {
    if (out.results.length > 0) controller.enqueue(out.results);
  };
  const arm = () => {
    if (idle === undefined) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      try {
        emit(controllerRef, agg.flush());
      } catch {
        // the readable was cancelled: nothing to deliver to
      }
    }, idle);
  };
  const stream = new TransformStream(
    {
      start(controller) {
        controllerRef = controller;
        return ready ?? undefined; // transform() waits for it
      },
      transform(chunk, controller) {
        emit(controller, agg.add(chunk));
        arm();
      },
      flush(controller) {
        if (timer !== null) clearTimeout(timer);
        emit(controller, agg.flush());
      },
    },
    { highWaterMark: 1 },
    { highWaterMark: 1 },
  );
  return {
    readable: stream.readable,
    writable: stream.writable,
    /** The WindowAggregator (null in a browser until the stages module has loaded). */
    get aggregator() {
      return agg;
    },
    get stats() {
      return agg === null ? emptyWindowStats() : agg.stats;
    },
  };
}

function emptyWindowStats() {
  return { taken: 0, late: 0, invalid: 0, lateWindowMisses: 0, results: 0, released: 0, held: 0, openWindows: 0, watermark: -Infinity };
}

/**
 * Min/max per time bucket, per key: write messages (or arrays), read arrays of bucket messages
 * (`data: { key, start, end, count, min, minTime, max, maxTime, last }`), so a chart gets about
 * one or two points per bucket and spikes survive. Points for an already emitted bucket are
 * refused as late (`onDrop(message, 'late')`) and counted.
 */
export function createDownsampleStage(options) {
  const o = commonOptions(options, 'downsample');
  const bucketMs = options.bucketMs;
  if (typeof bucketMs !== 'number') throw new TypeError(`bucketMs must be a number (ms), got ${describe(bucketMs)}`);
  // As in createWindowStage: now if the module is there, else when it has loaded.
  let core = stagesAvailable() ? new S.MinMaxDownsamplerCore(bucketMs) : null;
  const ready = core !== null ? null : initStages().then(() => {
    core = new S.MinMaxDownsamplerCore(bucketMs);
  });
  const keys = new KeyTable();
  const meta = { sourceNodeId: o.sourceNodeId, targetNodeId: o.targetNodeId, port: o.port };
  const take = () => {
    const flat = core.take();
    const out = [];
    for (let i = 0; i < flat.length; i += BUCKET_STRIDE) {
      const key = keys.names[flat[i]];
      const [start, end] = [flat[i + 1], flat[i + 2]];
      out.push({
        id: `bucket:${key}:${start}:${end}`, timestamp: end, ...meta,
        data: { key, start, end, count: flat[i + 3], min: flat[i + 4], minTime: flat[i + 5], max: flat[i + 6], maxTime: flat[i + 7], last: flat[i + 8] },
        metadata: { key },
      });
    }
    return out;
  };
  const stream = new TransformStream({
    start() {
      return ready ?? undefined; // transform() waits for it
    },
    transform(chunk, controller) {
      const batch = toBatch(chunk);
      const n = batch.length;
      const k = new Uint32Array(n);
      const t = new Float64Array(n);
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        k[i] = keys.id(String(o.key(batch[i])));
        t[i] = toNumber(o.time(batch[i]));
        v[i] = toNumber(o.value(batch[i]));
      }
      const codes = core.addMany(k, t, v);
      if (o.onDrop) for (let i = 0; i < n; i++) if (codes[i] !== 0) o.onDrop(batch[i], codes[i] === 1 ? 'late' : 'invalid');
      const out = take();
      if (out.length > 0) controller.enqueue(out);
    },
    flush(controller) {
      core.flush();
      const out = take();
      if (out.length > 0) controller.enqueue(out);
    },
  });
  return {
    readable: stream.readable,
    writable: stream.writable,
    get stats() {
      if (core === null) return { taken: 0, late: 0, invalid: 0 };
      const s = core.stats();
      return { taken: s[0], late: s[1], invalid: s[2] };
    },
  };
}

/**
 * Largest-Triangle-Three-Buckets over an array of items (e.g. a chart's messages): returns at
 * most `threshold` of them, in order, keeping the series' shape. `x` and `y` read the
 * coordinates (defaults: `timestamp` and the message's value).
 */
export function downsampleLTTB(items, threshold, options = {}) {
  if (!Array.isArray(items)) throw new TypeError(`items must be an array, got ${describe(items)}`);
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > 0xffffffff) {
    throw new RangeError(`threshold must be a non-negative integer, got ${describe(threshold)}`);
  }
  const x = fnOption(options, 'x', defaultTime);
  const y = fnOption(options, 'y', defaultValue);
  requireStages('downsampleLTTB()');
  const xs = new Float64Array(items.length);
  const ys = new Float64Array(items.length);
  for (let i = 0; i < items.length; i++) {
    xs[i] = toNumber(x(items[i]));
    ys[i] = toNumber(y(items[i]));
  }
  return Array.from(S.lttb(xs, ys, threshold), (i) => items[i]);
}
