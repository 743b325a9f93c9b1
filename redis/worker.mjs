// A consumer-group worker: owns a share of the partitions (leases in Redis), reads them through
// an engine connection, aggregates by event-time windows, and XADDs the results to an output
// stream idempotently (by result id), acknowledging inputs only once their effect is written.
//
// Exactly-once effects from at-least-once delivery:
// - an input is acked only after every window result it is in (or its `late` record) is in the
//   output stream;
// - output records are written by a Lua script that first checks the partition's lease (a
//   worker that lost its partition cannot write: fencing) and skips ids already written (SET NX
//   of a dedup key with a TTL);
// - a partition's new owner claims all of its pending entries before reading new ones and
//   recomputes the same windows from them, so a result written by a dead owner before it could
//   ack is recomputed identically and skipped.
import { createHash } from 'node:crypto';
import { StreamEngine, WindowAggregator } from '../dist/node.mjs';
import { createRedisConsumer, redisFrom, streamKey } from './bridge.mjs';

// One atomic step per emission: fencing by lease, idempotent XADDs (dedup keys with a TTL), the
// XACK of every input whose effect this writes, and the partition's emitted-up-to time (so a new
// owner knows which windows are already out).
// KEYS: output stream, lease, input stream, emitted-up-to key.
// ARGV: owner, dedup prefix, dedup ttl, output maxlen ('0' = none), group, emitted-up-to ('' =
// unchanged), record count n, then n (id, json) pairs, then the input entry ids to ack.
const OUTPUT_SCRIPT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[7])
local added = 0
for i = 0, n - 1 do
  local id = ARGV[8 + 2 * i]
  local m = ARGV[9 + 2 * i]
  if redis.call('SET', ARGV[2] .. id, '1', 'NX', 'PX', ARGV[3]) then
    if ARGV[4] ~= '0' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'id', id, 'm', m)
    else
      redis.call('XADD', KEYS[1], '*', 'id', id, 'm', m)
    end
    added = added + 1
  end
end
local first = 8 + 2 * n
while first <= #ARGV do
  local last = math.min(first + 999, #ARGV)
  redis.call('XACK', KEYS[3], ARGV[5], unpack(ARGV, first, last))
  first = last + 1
end
if ARGV[6] ~= '' then
  local cur = redis.call('GET', KEYS[4])
  if (not cur) or tonumber(cur) < tonumber(ARGV[6]) then redis.call('SET', KEYS[4], ARGV[6]) end
end
return added`;

const OUTPUT_SHA = createHash('sha1').update(OUTPUT_SCRIPT).digest('hex');

const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Parses a duration: a number of ms, or a string like `250ms`, `1s`, `1.5s`, `2m`. */
export function parseDuration(v, name = 'duration') {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim()) : null;
  if (!m) throw new RangeError(`${name} must be a duration like 500ms, 1s or 2m, got ${JSON.stringify(v)}`);
  const n = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] ?? 'ms']);
  if (!(n > 0)) throw new RangeError(`${name} must be > 0, got ${JSON.stringify(v)}`);
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a worker. Options: `url` (or `cluster: { rootNodes }`, a Redis Cluster), `group`, `partitions`, `prefix` (input streams
 * `${prefix}:{p}`), `output` (stream key; `{p}` in it makes one output stream per partition,
 * as Redis Cluster needs), `window` (ms or '1s'), `slide`, `allowedLateness`, `name`
 * (consumer name), `leaseMs`, `idleFlush` (ms without input after which a partition's open
 * windows are emitted), `lineage` (results list their inputs' ids), `maxInFlight`, `count`,
 * `block`, `outMaxLen`, `dedupTtl`, `maxDeliveries`, `delay` (ms of extra work per batch, to
 * simulate a slow downstream), `log`.
 * Returns `{ stats, owned(), stop(), done }`.
 */
export async function startWorker(options) {
  const o = options ?? {};
  if (o.cluster === undefined && typeof o.url !== 'string') throw new TypeError('url must be a string like redis://127.0.0.1:6379 (or pass cluster: { rootNodes })');
  const group = o.group ?? 'nodeflow';
  const partitions = o.partitions ?? 8;
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 16384) throw new RangeError(`partitions must be an integer in 1..16384, got ${partitions}`);
  const prefix = o.prefix ?? 'nodeflow:in';
  const output = o.output ?? 'nodeflow:out';
  const size = parseDuration(o.window ?? 1000, 'window');
  const slide = o.slide === undefined ? size : parseDuration(o.slide, 'slide');
  const allowedLateness = o.allowedLateness === undefined ? 0 : Number(o.allowedLateness);
  const name = o.name ?? `w-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const leaseMs = o.leaseMs ?? 5000;
  const idleFlush = o.idleFlush ?? Math.max(100, size);
  const outMaxLen = o.outMaxLen ?? 1_000_000;
  const dedupTtl = o.dedupTtl ?? 24 * 3600 * 1000;
  const delay = o.delay ?? 0;
  const log = o.log ?? (() => {});
  const leaseKey = (p) => `${prefix}:lease:{${p}}`;
  const outKey = (p) => output.replaceAll('{p}', `{${p}}`);
  const workersKey = `${prefix}:workers:${group}`;

  // On a cluster, one emission script touches the partition's input, lease, emitted-up-to and
  // output keys: they must share the partition's slot, so the output needs the `{p}` tag too.
  if (o.cluster !== undefined && !output.includes('{p}')) {
    throw new RangeError(`output must contain {p} on a Redis Cluster (one output stream per partition, e.g. 'nodeflow:out:{p}'), got '${output}'`);
  }
  const { client } = await redisFrom({ url: o.url, cluster: o.cluster, onError: () => {} }, 'startWorker');
  const stats = { results: 0, late: 0, written: 0, duplicates: 0, fenced: 0, acked: 0, batches: 0, errors: 0, rebalances: 0, maxHeld: 0, forcedFlushes: 0 };
  // Entries read but not yet in the output: must exceed rate x (window + lateness) per worker, or
  // windows get flushed early (forcedFlushes) and their stragglers become late records.
  const maxInFlight = o.maxInFlight ?? 100_000;
  const owned = new Set();
  const aggs = new Map(); // partition -> { agg, last }
  const newAgg = () =>
    new WindowAggregator({ size, slide, allowedLateness, lineage: o.lineage === true, sourceNodeId: 'worker', port: 'out' });

  const consumer = await createRedisConsumer({
    client,
    group,
    consumer: name,
    streams: [],
    count: o.count ?? 2000,
    block: o.block ?? 200,
    maxInFlight,
    // Entries sit in open windows until emitted: only others' entries idle this long are claimed.
    claimIdle: o.claimIdle ?? Math.max(30_000, 4 * (size + allowedLateness + idleFlush)),
    maxDeliveries: o.maxDeliveries ?? 10,
    deadLetter: `${prefix}:dead:${group}`,
    onError: () => {},
  });
  const partitionOfStream = new Map(Array.from({ length: partitions }, (_, p) => [streamKey(prefix, p), p]));

  // One lossless engine connection between Redis and the aggregation: its bounded buffer is the
  // backpressure that stops reading from Redis when the worker falls behind.
  const engine = new StreamEngine({ batchTimeout: 0 });
  const connId = engine.createConnection('redis', 'worker', 'out', 'in', { bufferSize: o.bufferSize ?? 10_000, maxBatchSize: 2000 });
  const conn = engine.getConnection(connId);
  const piping = consumer.readable.pipeTo(conn.writable).catch(() => {});

  // Serialise batch processing, idle flushes and rebalancing.
  let chain = Promise.resolve();
  const serial = (fn) => (chain = chain.then(fn, fn));

  const emittedKey = (p) => `${prefix}:emitted:{${p}}`;
  // EVALSHA: the script's 1.2 kB body is not sent (and hashed by Redis) per emission; a node
  // that does not know it yet (restarted, or another cluster master) answers NOSCRIPT: EVAL once.
  const evalScript = async (script, sha, keys, argv) => {
    try {
      return await client.sendCommand(['EVALSHA', sha, String(keys.length), ...keys, ...argv]);
    } catch (e) {
      if (!String(e?.message).startsWith('NOSCRIPT')) throw e;
      return client.sendCommand(['EVAL', script, String(keys.length), ...keys, ...argv]);
    }
  };
  const writeOutput = async (p, records, entryIds, emittedUpTo) => {
    if (records.length === 0 && entryIds.length === 0) return true;
    const argv = [name, `${outKey(p)}:seen:`, String(dedupTtl), String(outMaxLen), group, emittedUpTo, String(records.length)];
    for (const r of records) argv.push(r.id, JSON.stringify(r));
    argv.push(...entryIds);
    const keys = [outKey(p), leaseKey(p), streamKey(prefix, p), emittedKey(p)];
    for (let attempt = 0; ; attempt++) {
      try {
        const n = Number(await evalScript(OUTPUT_SCRIPT, OUTPUT_SHA, keys, argv));
        if (n < 0) {
          stats.fenced++;
          return false;
        }
        stats.written += n;
        stats.duplicates += records.length - n;
        return true;
      } catch (e) {
        stats.errors++;
        log(`output to partition ${p} failed (attempt ${attempt + 1}): ${e?.message}`);
        if (!owned.has(p)) return false;
        await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)));
      }
    }
  };

  // Late and invalid inputs get a record of their own, so every input has exactly one effect.
  const refused = (m, why) => ({
    id: `${why}:${m.id}`, timestamp: m.timestamp, sourceNodeId: 'worker', targetNodeId: '*', port: why,
    data: { [why]: true, input: m.id, key: m?.metadata?.key ?? null }, metadata: { key: m?.metadata?.key },
  });
  const emit = async (p, out) => {
    const records = [...out.results, ...out.late.map((m) => refused(m, 'late')), ...out.invalid.map((m) => refused(m, 'invalid'))];
    const done = [...out.released, ...out.late, ...out.invalid];
    if (records.length === 0 && done.length === 0) return;
    let upTo = -Infinity;
    for (const r of out.results) if (r.data.end > upTo) upTo = r.data.end;
    const emittedUpTo = upTo === -Infinity ? '' : String(upTo + allowedLateness);
    const ids = done.map((m) => consumer.meta(m)?.entryId).filter((x) => x !== undefined);
    if (!(await writeOutput(p, records, ids, emittedUpTo))) {
      dropPartition(p); // fenced: another worker owns it now and will recompute
      return;
    }
    stats.results += out.results.length;
    stats.late += out.late.length;
    consumer.release(done); // acked by the script
    stats.acked += ids.length;
  };

  const dropPartition = (p) => {
    const a = aggs.get(p);
    if (a) {
      // Not acked: the entries stay pending in Redis for the next owner.
      consumer.release(a.agg.heldMessages());
      a.agg.free();
      aggs.delete(p);
    }
    owned.delete(p);
    consumer.setStreams([...owned].map((q) => streamKey(prefix, q)));
  };

  const processBatch = async (batch) => {
    stats.batches++;
    const byPartition = new Map();
    for (const m of batch) {
      const p = partitionOfStream.get(consumer.meta(m)?.stream);
      if (p === undefined || !owned.has(p)) {
        consumer.release([m]); // its partition moved: the new owner claims it
        continue;
      }
      if (!byPartition.has(p)) byPartition.set(p, []);
      byPartition.get(p).push(m);
    }
    // Partitions are independent: their output scripts go out together (one round trip).
    const writes = [];
    for (const [p, msgs] of byPartition) {
      let a = aggs.get(p);
      if (!a) aggs.set(p, (a = { agg: newAgg(), last: 0 }));
      a.last = Date.now();
      writes.push(emit(p, a.agg.add(msgs)));
      const held = a.agg.stats.held;
      if (held > stats.maxHeld) stats.maxHeld = held;
    }
    await Promise.all(writes);
    if (delay > 0) await sleep(delay);
    lastBatch = Date.now();
  };

  // A partition's open windows are emitted once reads have found nothing new in its stream for
  // idleFlush ms (a quiet partition), not merely because this process was busy. If the worker
  // holds as many entries as it may read (maxInFlight) and nothing moved for idleFlush ms, it
  // flushes anyway, so it can never stall on its own windows (counted in forcedFlushes).
  let lastBatch = Date.now();
  const idleCheck = async () => {
    const now = Date.now();
    const stuck = consumer.stats.inFlight >= maxInFlight && now - lastBatch >= idleFlush;
    if (stuck) stats.forcedFlushes++;
    for (const [p, a] of aggs) {
      if (a.agg.stats.held === 0) continue;
      const empty = consumer.emptySince(streamKey(prefix, p));
      if (stuck || (empty !== null && now - empty >= idleFlush && now - a.last >= idleFlush)) await emit(p, a.agg.flush());
    }
  };

  // ---- leases: each live worker owns about partitions / workers partitions ----
  // Renewal runs outside the processing chain, so a long batch cannot make a lease lapse.
  const lost = new Set();
  const renew = async () => {
    const now = Date.now();
    await client.sendCommand(['ZADD', workersKey, String(now), name]);
    await Promise.all([...owned].map(async (p) => {
      const ok = Number(await client.sendCommand(['EVAL', RENEW_SCRIPT, '1', leaseKey(p), name, String(leaseMs)]));
      if (!ok) lost.add(p);
    }));
  };
  const rebalance = async () => {
    const now = Date.now();
    await client.sendCommand(['ZREMRANGEBYSCORE', workersKey, '-inf', String(now - leaseMs)]);
    const live = Math.max(1, Number(await client.sendCommand(['ZCARD', workersKey])));
    const share = Math.ceil(partitions / live);
    // What we could not renew is gone.
    for (const p of lost) {
      if (owned.has(p)) {
        log(`lost partition ${p}`);
        dropPartition(p);
      }
    }
    lost.clear();
    // Give back extras (not acked: the next owner recomputes their open windows).
    const extra = [...owned].sort((a, b) => b - a).slice(0, Math.max(0, owned.size - share));
    for (const p of extra) {
      dropPartition(p);
      await client.sendCommand(['EVAL', RELEASE_SCRIPT, '1', leaseKey(p), name]);
      stats.rebalances++;
      log(`released partition ${p}`);
    }
    // Take free partitions up to our share, starting at a name-dependent offset to spread.
    const taken = [];
    const start = Number.parseInt(name.replace(/\D/g, '').slice(-4) || '0', 10) % partitions;
    for (let i = 0; i < partitions && owned.size + taken.length < share; i++) {
      const p = (start + i) % partitions;
      if (owned.has(p)) continue;
      const ok = await client.sendCommand(['SET', leaseKey(p), name, 'NX', 'PX', String(leaseMs)]);
      if (ok === 'OK') taken.push(p);
    }
    if (taken.length) {
      for (const p of taken) {
        // Windows the previous owner emitted are closed here too: their stragglers are late.
        const upTo = await client.sendCommand(['GET', emittedKey(p)]);
        const agg = newAgg();
        if (upTo !== null) agg.advance(Number(upTo));
        aggs.set(p, { agg, last: Date.now() });
        owned.add(p);
      }
      stats.rebalances++;
      log(`took partitions ${taken.join(',')}`);
      consumer.setStreams([...owned].map((q) => streamKey(prefix, q)), { takeOver: true });
    }
  };

  let stopped = false;
  const leaseLoop = (async () => {
    while (!stopped) {
      try {
        await serial(rebalance);
      } catch {
        stats.errors++;
      }
      await sleep(Math.max(50, Math.floor(leaseMs / 3)));
    }
  })();
  // Its own loop: never waits behind batch processing or rebalancing.
  const renewLoop = (async () => {
    while (!stopped) {
      try {
        await renew();
      } catch {
        stats.errors++;
      }
      await sleep(Math.max(50, Math.floor(leaseMs / 3)));
    }
  })();
  const idleLoop = (async () => {
    while (!stopped) {
      await sleep(Math.max(20, Math.floor(idleFlush / 4)));
      try {
        await serial(idleCheck);
      } catch {
        stats.errors++;
      }
    }
  })();
  const reader = conn.readable.getReader();
  const mainLoop = (async () => {
    while (!stopped) {
      const { value, done } = await reader.read();
      if (done) break;
      try {
        await serial(() => processBatch(value));
      } catch (e) {
        stats.errors++;
        log(`batch failed: ${e?.message}`);
      }
    }
  })();

  const stop = async ({ flush = false } = {}) => {
    if (stopped) return;
    stopped = true;
    if (flush) {
      await serial(async () => {
        for (const [p, a] of aggs) await emit(p, a.agg.flush());
      }).catch(() => {});
    }
    for (const p of [...owned]) {
      await client.sendCommand(['EVAL', RELEASE_SCRIPT, '1', leaseKey(p), name]).catch(() => {});
    }
    await client.sendCommand(['ZREM', workersKey, name]).catch(() => {});
    await consumer.close().catch(() => {});
    engine.destroy();
    await reader.cancel().catch(() => {});
    await Promise.allSettled([leaseLoop, renewLoop, idleLoop, mainLoop, piping]);
    if (client.isOpen) await client.close().catch(() => client.destroy());
  };

  return {
    name,
    stats,
    consumer,
    owned: () => [...owned].sort((a, b) => a - b),
    held: () => [...aggs.values()].reduce((s, a) => s + a.agg.stats.held, 0),
    buffered: () => engine.getMetrics(connId)?.bufferSize ?? 0,
    stop,
  };
}
