// Redis Streams bridge: a producer WritableStream that XADDs messages to partitioned streams, and a
// consumer-group ReadableStream of batches that acknowledges an entry only once the engine
// connection it feeds has taken it (delivered, or dropped with a reason).
//
// Entry layout: fields `id` (the message id) and `m` (the message as JSON). Stream keys are
// `${prefix}:{${partition}}`: the braces are a Redis Cluster hash tag, so each partition is one
// slot and the partitions spread over the cluster.
import { createClient, createCluster } from 'redis';

/** 32-bit FNV-1a of a string's UTF-16 code units (stable across processes and languages that do the same). */
export function fnv1a32(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    // Hash both bytes of the code unit (low byte first), so non-ASCII keys spread too.
    h ^= c & 0xff;
    h = Math.imul(h, 0x01000193);
    if (c > 0xff) {
      h ^= c >>> 8;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/** The partition of a message: FNV-1a of `metadata.key` (or `id`) modulo `partitions`. */
export function partitionOf(message, partitions) {
  const k = message?.metadata?.key ?? message?.id;
  return fnv1a32(String(k)) % partitions;
}

/** The stream key of a partition: `${prefix}:{${partition}}`. */
export function streamKey(prefix, partition) {
  return `${prefix}:{${partition}}`;
}

/** All stream keys of `partitions` partitions. */
export function streamKeys(prefix, partitions) {
  return Array.from({ length: partitions }, (_, p) => streamKey(prefix, p));
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'string' ? `'${v}'` : typeof v === 'number' ? String(v) : typeof v;
}

function positiveInt(o, name, def, { min = 1 } = {}) {
  const v = o[name] ?? def;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

function str(o, name, def) {
  const v = o[name] ?? def;
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${name} must be a non-empty string, got ${describe(v)}`);
  return v;
}

/** Reconnect backoff: 50 ms doubling to 2 s, with jitter (node-redis calls it per retry). */
export function reconnectBackoff(retries) {
  const base = Math.min(2000, 50 * 2 ** Math.min(retries, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * A node-redis client with reconnect backoff and an error listener (an unhandled 'error' event
 * would crash the host process; errors surface as rejected commands instead).
 */
export async function connectRedis(url, { name, onError } = {}) {
  const client = createClient({ url, name, socket: { reconnectStrategy: reconnectBackoff, connectTimeout: 5000 } });
  client.on('error', (e) => onError?.(e));
  await client.connect();
  return client;
}

/**
 * The key that routes a command on Redis Cluster: the first stream after `STREAMS` (XREAD,
 * XREADGROUP), the first key of a script (EVAL, EVALSHA), the key after the subcommand (XINFO,
 * XGROUP), else the first argument. Undefined for a keyless command (any node answers).
 */
export function commandKey(args) {
  const cmd = String(args[0]).toUpperCase();
  if (cmd === 'XREAD' || cmd === 'XREADGROUP') {
    const i = args.findIndex((a) => String(a).toUpperCase() === 'STREAMS');
    return i >= 0 ? args[i + 1] : undefined;
  }
  if (cmd === 'EVAL' || cmd === 'EVALSHA') return Number(args[2]) > 0 ? args[3] : undefined;
  if (cmd === 'XINFO' || cmd === 'XGROUP') return args[2];
  return args[1];
}

/**
 * The hash tag of a key (what Redis Cluster hashes: the part between the first `{` and the next
 * `}` when not empty, else the whole key). Keys with the same tag are in the same slot.
 */
export function hashTag(key) {
  const k = String(key);
  const open = k.indexOf('{');
  if (open >= 0) {
    const close = k.indexOf('}', open + 1);
    if (close > open + 1) return k.slice(open + 1, close);
  }
  return k;
}

/**
 * Groups stream keys by hash tag: one multi-key command may only name keys of one slot on a
 * cluster, so a read of many partitions becomes one read per group.
 */
export function bySlotTag(keys) {
  const groups = new Map();
  for (const k of keys) {
    const t = hashTag(k);
    if (!groups.has(t)) groups.set(t, []);
    groups.get(t).push(k);
  }
  return [...groups.values()];
}

/**
 * A node-redis cluster (`createCluster`) behind the single-node client's interface used here:
 * `sendCommand(args)` routes each command to the master owning its key's slot (following MOVED
 * and ASK), `duplicate()`, `connect()`, `close()`, `destroy()`, `isOpen`, `on()`. `isCluster` tells
 * the readers to split multi-stream reads by slot.
 */
function clusterFacade(cluster) {
  const f = {
    isCluster: true,
    cluster,
    sendCommand: (args) => cluster.sendCommand(commandKey(args), false, args),
    duplicate: () => clusterFacade(cluster.duplicate()),
    connect: async () => {
      await cluster.connect();
      return f;
    },
    close: () => cluster.close(),
    destroy: () => cluster.destroy(),
    get isOpen() {
      return cluster.isOpen;
    },
    on: (event, fn) => {
      cluster.on(event, fn);
      return f;
    },
  };
  return f;
}

/**
 * Connects to a Redis Cluster: `cluster.rootNodes` lists some of its nodes (`'redis://host:port'`
 * strings or node-redis `{ url }` objects); the rest are discovered. Returns a client with the
 * same `sendCommand(args)` as `connectRedis`'s, routed by slot. Node sockets reconnect with
 * `reconnectBackoff`.
 */
export async function connectRedisCluster(cluster, { onError } = {}) {
  const roots = cluster?.rootNodes;
  if (!Array.isArray(roots) || roots.length === 0) throw new TypeError(`cluster.rootNodes must be a non-empty array of redis:// URLs, got ${describe(roots)}`);
  const rootNodes = roots.map((n, i) => {
    if (typeof n === 'string') return { url: n };
    if (n !== null && typeof n === 'object' && typeof n.url === 'string') return n;
    throw new TypeError(`cluster.rootNodes[${i}] must be a redis:// URL or { url }, got ${describe(n)}`);
  });
  const c = createCluster({ rootNodes, defaults: { socket: { reconnectStrategy: reconnectBackoff, connectTimeout: 5000 } } });
  c.on('error', (e) => onError?.(e));
  await c.connect();
  return clusterFacade(c);
}

/** `options.client`, else a client for `options.cluster` (a Redis Cluster), else for `options.url`. */
export async function redisFrom(options, what) {
  if (options.client) return { client: options.client, owned: false };
  if (options.cluster !== undefined) return { client: await connectRedisCluster(options.cluster, { onError: options.onError }), owned: true };
  if (typeof options.url !== 'string') throw new TypeError(`${what}: url must be a string (or pass cluster or client), got ${describe(options.url)}`);
  return { client: await connectRedis(options.url, { onError: options.onError }), owned: true };
}

/** Destroys a client now, whatever its state (closing twice is not an error here). */
export function safeDestroy(client) {
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

const clientFrom = redisFrom;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** On a cluster, readers poll (no BLOCK) this often when nothing is new. */
export const CLUSTER_POLL_MS = 50;

// ---- producer ---------------------------------------------------------------------------------

/**
 * A WritableStream of messages (or arrays of messages) that XADDs each to
 * `${prefix}:{FNV-1a(key) % partitions}`, one pipelined round trip per written chunk, with
 * approximate MAXLEN trimming (`maxLen`, 0 = no trimming). Each write resolves once Redis has
 * stored the entries, so `pipeTo` gets Redis's pace as backpressure.
 * Returns `{ writable, stats, close() }`; `stats.written` counts stored entries.
 */
export async function createRedisProducer(options) {
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);
  const prefix = str(options, 'prefix', 'nodeflow:in');
  const partitions = positiveInt(options, 'partitions', 8);
  const maxLen = positiveInt(options, 'maxLen', 0, { min: 0 });
  const { client, owned } = await clientFrom(options, 'createRedisProducer');
  const stats = { written: 0, batches: 0 };
  const trim = maxLen > 0 ? ['MAXLEN', '~', String(maxLen)] : [];
  const write = async (chunk) => {
    const batch = Array.isArray(chunk) ? chunk : [chunk];
    for (const m of batch) {
      if (m === null || typeof m !== 'object' || typeof m.id !== 'string') throw new TypeError(`message must be an object with a string id, got ${describe(m)}`);
    }
    // Issued in one tick: node-redis pipelines them into one round trip.
    const ids = await Promise.all(
      batch.map((m) => client.sendCommand(['XADD', streamKey(prefix, partitionOf(m, partitions)), ...trim, '*', 'id', m.id, 'm', JSON.stringify(m)])),
    );
    stats.written += batch.length;
    stats.batches += 1;
    return ids;
  };
  const writable = new WritableStream({
    write,
    async close() {
      if (owned && client.isOpen) await client.close().catch(() => {});
    },
  });
  return {
    writable,
    stats,
    /** XADDs a chunk directly (without the stream) and returns the entry ids. */
    write,
    async close() {
      if (owned && client.isOpen) await client.close().catch(() => {});
    },
  };
}

// ---- consumer ---------------------------------------------------------------------------------

/** The value of field `name` in an entry's flat field list (no object per entry). */
function field(fields, name) {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name || String(fields[i]) === name) return fields[i + 1];
  return undefined;
}

/**
 * A consumer-group member reading `streams` as a ReadableStream of message batches.
 *
 * - Reads with `XREADGROUP COUNT count BLOCK block` only when the stream is pulled, and never
 *   holds more than `maxInFlight` entries read but not yet acknowledged: a slow downstream stops
 *   the reading and the backlog stays in Redis.
 * - `ack(messages)` XACKs entries; `onDrop(message, reason)` (pass it as a connection's `onDrop`)
 *   acknowledges a message its connection dropped by policy and counts the reason;
 *   `delivered()` is a TransformStream for `connection.readable.pipeThrough(...)` that acks each
 *   batch as the connection delivers it. Anything else stays pending and is claimed again.
 * - Every `claimInterval` ms, `XAUTOCLAIM` takes entries pending longer than `claimIdle` ms (a
 *   dead consumer's); an entry delivered more than `maxDeliveries` times goes to the dead-letter
 *   stream `deadLetter` (with its stream, id, delivery count and raw fields) and is acked.
 * - Redis errors (a restart) are retried with backoff; nothing already read is dropped.
 *
 * `meta(message)` returns `{ stream, entryId }` of a message read here.
 */
export async function createRedisConsumer(options) {
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);
  const group = str(options, 'group');
  const consumer = str(options, 'consumer', `c-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const count = positiveInt(options, 'count', 100);
  const block = positiveInt(options, 'block', 1000);
  const maxInFlight = positiveInt(options, 'maxInFlight', 1000);
  const claimIdle = positiveInt(options, 'claimIdle', 30_000);
  const claimInterval = positiveInt(options, 'claimInterval', Math.max(100, Math.floor(claimIdle / 2)));
  const maxDeliveries = positiveInt(options, 'maxDeliveries', 5);
  const deadLetter = options.deadLetter === undefined ? `${group}:dead` : str(options, 'deadLetter');
  const onIdle = options.onIdle;
  if (onIdle !== undefined && typeof onIdle !== 'function') throw new TypeError(`onIdle must be a function, got ${describe(onIdle)}`);
  const initial = options.streams ?? [];
  if (!Array.isArray(initial) || initial.some((s) => typeof s !== 'string')) throw new TypeError('streams must be an array of strings');

  const { client, owned } = await clientFrom(options, 'createRedisConsumer');
  // Blocking reads get their own connection, so acks and claims never wait behind a BLOCK.
  // (On a cluster, reads do not block: no second connection.)
  const reader = client.isCluster ? null : client.duplicate();
  reader?.on('error', (e) => options.onError?.(e));
  await reader?.connect();

  const meta = new WeakMap(); // message -> { stream, entryId }
  // Entries read here and not yet acked or released: stream -> Set of entry ids (no per-entry
  // key strings), and their count.
  const inFlight = new Map();
  let inFlightCount = 0;
  const flightHas = (stream, entryId) => inFlight.get(stream)?.has(entryId) === true;
  const flightAdd = (stream, entryId) => {
    let set = inFlight.get(stream);
    if (set === undefined) inFlight.set(stream, (set = new Set()));
    set.add(entryId);
    inFlightCount++;
  };
  const flightDelete = (stream, entryId) => {
    if (inFlight.get(stream)?.delete(entryId)) inFlightCount--;
  };
  const stats = {
    read: 0, acked: 0, claimed: 0, deadLettered: 0, trimmedWhilePending: 0, errors: 0, reconnects: 0,
    dropped: {}, get inFlight() { return inFlightCount; }, maxInFlightSeen: 0,
  };
  let streams = [];
  const needsHistory = new Set(); // streams whose own pending entries must be re-read first
  let lastClaim = 0;
  let closed = false;
  let wake = null; // resolves when acks free room
  const ready = new Set(); // streams with a group

  const ensureGroup = async (key) => {
    if (ready.has(key)) return;
    try {
      await client.sendCommand(['XGROUP', 'CREATE', key, group, '0', 'MKSTREAM']);
    } catch (e) {
      if (!String(e?.message).includes('BUSYGROUP')) throw e;
    }
    ready.add(key);
  };

  // Streams just taken over (`setStreams(keys, { takeOver: true })`): all their pending entries
  // are claimed at once (min idle 0) before any new entry of theirs is read, so replayed entries
  // come before newer ones.
  const fresh = new Set();
  const setStreams = (keys, { takeOver = false } = {}) => {
    const next = [...new Set(keys)];
    for (const k of next) if (!streams.includes(k)) {
      needsHistory.add(k);
      if (takeOver) fresh.add(k);
      lastClaim = 0; // claim at once on a new stream (a previous owner's pending entries)
    }
    for (const k of streams) if (!next.includes(k)) {
      fresh.delete(k);
      needsHistory.delete(k);
    }
    streams = next;
  };
  setStreams(initial);

  const toMessages = (stream, entries, out) => {
    for (const [entryId, fields] of entries) {
      if (fields === null) continue; // deleted while pending: counted by the caller
      if (flightHas(stream, entryId)) continue; // already downstream (a re-read of our own pending entry)
      let m;
      try {
        m = JSON.parse(field(fields, 'm'));
        if (m === null || typeof m !== 'object') throw new Error('not an object');
      } catch {
        out.bad.push({ stream, entryId, fields });
        continue;
      }
      meta.set(m, { stream, entryId, done: false });
      flightAdd(stream, entryId);
      out.messages.push(m);
    }
  };

  const deadLetterEntries = async (list, reason) => {
    for (const { stream, entryId, fields, deliveries } of list) {
      await client.sendCommand(['XADD', deadLetter, '*', 'stream', stream, 'entry', entryId, 'reason', reason, 'deliveries', String(deliveries ?? 0), ...(fields ?? []).map(String)]);
      await client.sendCommand(['XACK', stream, group, entryId]);
      stats.deadLettered++;
    }
  };

  const cursors = new Map(); // fresh stream -> XAUTOCLAIM cursor
  const claim = async (out, list, minIdle) => {
    for (const stream of list) {
      await ensureGroup(stream);
      let cursor = cursors.get(stream) ?? '0-0';
      do {
        const room = maxInFlight - inFlightCount - out.messages.length;
        if (room <= 0) {
          if (minIdle === 0) cursors.set(stream, cursor);
          return;
        }
        const [next, entries, deleted] = await client.sendCommand(['XAUTOCLAIM', stream, group, consumer, String(minIdle), cursor, 'COUNT', String(Math.min(count, room))]);
        cursor = String(next);
        if (minIdle === 0 && cursor === '0-0') {
          fresh.delete(stream);
          cursors.delete(stream);
        }
        stats.trimmedWhilePending += deleted?.length ?? 0;
        if (!entries || entries.length === 0) continue;
        // Our own entries still downstream (e.g. held in an open window) are not redeliveries.
        const live = entries.filter((e) => e !== null && !flightHas(stream, e[0]));
        stats.claimed += live.length;
        // Delivery counts of what we just claimed (XAUTOCLAIM incremented them).
        const ids = live.map((e) => String(e[0]));
        const pend = ids.length ? await client.sendCommand(['XPENDING', stream, group, ids[0], ids[ids.length - 1], String(ids.length + inFlightCount), consumer]) : [];
        const deliveries = new Map(pend.map((p) => [String(p[0]), Number(p[3])]));
        const keep = [];
        const dead = [];
        for (const e of live) {
          const n = deliveries.get(String(e[0])) ?? 0;
          if (n > maxDeliveries) dead.push({ stream, entryId: String(e[0]), fields: e[1], deliveries: n });
          else keep.push(e);
        }
        if (dead.length) await deadLetterEntries(dead, 'max-deliveries');
        toMessages(stream, keep, out);
      } while (cursor !== '0-0');
    }
  };

  const readHistory = async (out) => {
    // Our own pending entries (after a restart under the same consumer name).
    for (const stream of [...needsHistory]) {
      await ensureGroup(stream);
      const room = maxInFlight - inFlightCount - out.messages.length;
      if (room <= 0) return;
      const res = await client.sendCommand(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(Math.min(count, room)), 'STREAMS', stream, '0']);
      const entries = res?.[0]?.[1] ?? [];
      const before = out.messages.length;
      toMessages(stream, entries, out);
      // Done with this stream's history once a read brings nothing new.
      if (entries.length < Math.min(count, room) || out.messages.length === before) needsHistory.delete(stream);
    }
  };

  let rotate = 0;
  const emptySince = new Map(); // stream -> when a read first found nothing new in it
  const readNew = async (out) => {
    const room = Math.min(count, maxInFlight - inFlightCount);
    let keys = streams.filter((k) => !fresh.has(k));
    if (room <= 0 || keys.length === 0) return;
    // COUNT applies per stream: split the room so one read never exceeds it.
    if (room < keys.length) {
      rotate = (rotate + 1) % keys.length;
      keys = [...keys.slice(rotate), ...keys.slice(0, rotate)].slice(0, room);
    }
    const per = Math.floor(room / keys.length);
    for (const s of keys) await ensureGroup(s);
    let res;
    if (client.isCluster) {
      // A cluster: one read per slot (a multi-key command cannot span slots), all at once and
      // without BLOCK (several blocking reads would queue on one node's connection); when all
      // come back empty, wait a short poll interval instead.
      const parts = await Promise.all(
        bySlotTag(keys).map((ks) => client.sendCommand(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(per), 'STREAMS', ...ks, ...ks.map(() => '>')])),
      );
      res = parts.flatMap((r) => r ?? []);
      if (res.length === 0) await sleep(Math.min(block, CLUSTER_POLL_MS));
    } else {
      res = await reader.sendCommand(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(per), 'BLOCK', String(block), 'STREAMS', ...keys, ...keys.map(() => '>')]);
    }
    const now = Date.now();
    const got = new Set();
    for (const [stream, entries] of res ?? []) {
      got.add(String(stream));
      toMessages(String(stream), entries, out);
    }
    for (const k of keys) {
      if (got.has(k)) emptySince.delete(k);
      else if (!emptySince.has(k)) emptySince.set(k, now);
    }
  };

  let backoff = 0;
  const fill = async () => {
    const out = { messages: [], bad: [] };
    if (fresh.size) await claim(out, [...fresh], 0);
    if (out.messages.length === 0 && Date.now() - lastClaim >= claimInterval) {
      lastClaim = Date.now();
      await claim(out, streams, claimIdle);
    }
    if (out.messages.length === 0 && needsHistory.size) await readHistory(out);
    if (out.messages.length === 0) await readNew(out);
    if (out.bad.length) await deadLetterEntries(out.bad, 'unreadable');
    return out.messages;
  };

  const readable = new ReadableStream(
    {
      async pull(controller) {
        while (!closed) {
          if (inFlightCount >= maxInFlight || streams.length === 0) {
            // Backpressure: wait for acks (or a stream to read), checking claims now and then.
            await new Promise((r) => {
              wake = r;
              setTimeout(r, Math.min(block, 250));
            });
            wake = null;
            if (streams.length === 0) continue;
            if (inFlightCount >= maxInFlight) continue;
          }
          let batch;
          try {
            batch = await fill();
            backoff = 0;
          } catch (e) {
            if (closed) break;
            stats.errors++;
            options.onError?.(e);
            if (String(e?.message).includes('NOGROUP')) ready.clear();
            backoff = Math.min(2000, backoff ? backoff * 2 : 50);
            await sleep(backoff);
            continue;
          }
          if (batch.length > 0) {
            stats.read += batch.length;
            if (inFlightCount > stats.maxInFlightSeen) stats.maxInFlightSeen = inFlightCount;
            controller.enqueue(batch);
            return;
          }
          onIdle?.();
        }
        if (closed) controller.close();
      },
      cancel() {
        closed = true;
      },
    },
    { highWaterMark: 0 },
  );

  const pendingAcks = []; // acks that failed (Redis down): retried on the next ack
  const ackEntries = async (list) => {
    const by = new Map();
    for (const x of [...pendingAcks.splice(0), ...list]) {
      if (!by.has(x.stream)) by.set(x.stream, []);
      by.get(x.stream).push(x.entryId);
    }
    const jobs = [...by].map(([stream, ids]) =>
      client.sendCommand(['XACK', stream, group, ...ids]).then(
        () => (stats.acked += ids.length),
        () => {
          stats.errors++;
          for (const entryId of ids) pendingAcks.push({ stream, entryId });
        },
      ),
    );
    await Promise.all(jobs);
  };

  const take = (messages) => {
    const list = [];
    for (const m of Array.isArray(messages) ? messages : [messages]) {
      const x = meta.get(m);
      if (x === undefined || x.done) continue; // not read here (or already acked)
      x.done = true; // (cheaper than a WeakMap delete; the entry goes with the message)
      flightDelete(x.stream, x.entryId);
      list.push(x);
    }
    wake?.();
    return list;
  };

  const api = {
    readable,
    stats,
    group,
    consumer,
    get streams() {
      return [...streams];
    },
    setStreams,
    meta: (m) => {
      const x = meta.get(m);
      return x === undefined || x.done ? undefined : x;
    },
    /**
     * Since when (ms timestamp) reads have found nothing new in `stream`, or null if the last
     * read brought entries: "the partition is idle", as opposed to "this process was busy".
     */
    emptySince: (stream) => emptySince.get(stream) ?? null,
    /** Acknowledges messages read here (their effect is done). Resolves when Redis confirmed. */
    ack: (messages) => ackEntries(take(messages)),
    /**
     * Forgets messages without acknowledging them (e.g. their partition moved to another
     * consumer): they stay pending in Redis and are claimed again.
     */
    release: (messages) => void take(messages),
    /** For a connection's `onDrop`: acknowledges a message dropped by policy, counting the reason. */
    onDrop: (message, reason) => {
      stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1;
      void ackEntries(take([message]));
    },
    /** A TransformStream that acks each batch a connection delivers and passes it on. */
    delivered: () =>
      new TransformStream({
        async transform(batch, controller) {
          controller.enqueue(batch);
          await ackEntries(take(batch));
        },
      }),
    async close() {
      closed = true;
      wake?.();
      await ackEntries([]).catch(() => {});
      safeDestroy(reader); // a blocked XREADGROUP would hold close() for up to `block` ms
      if (owned && client.isOpen) await client.close().catch(() => client.destroy());
    },
    /** Closes without acking anything pending or flushing (a crash, for tests). */
    destroy() {
      closed = true;
      safeDestroy(reader);
      if (owned) safeDestroy(client);
    },
  };
  return api;
}
