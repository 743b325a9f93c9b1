// Gateway Redis mode: the history a WebSocket gateway replays to resuming clients, and the live
// feed it broadcasts, both read from Redis Streams. Every gateway reads the same streams with
// XREAD (no consumer group: each one broadcasts everything), so a client may resume on any
// gateway: its last seen sequence number is a Redis entry id.
import { CLUSTER_POLL_MS, bySlotTag, reconnectBackoff, redisFrom, safeDestroy } from './bridge.mjs';

const ID = /^\d+-\d+$/;

function parseId(id) {
  const [ms, seq] = id.split('-');
  return [BigInt(ms), BigInt(seq)];
}

/** Compares two Redis entry ids (`ms-seq`): negative, 0 or positive. */
export function compareIds(a, b) {
  const [am, as] = parseId(a);
  const [bm, bs] = parseId(b);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

function pairs(flat) {
  const o = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[String(flat[i])] = flat[i + 1];
  return o;
}

function decode(fields) {
  const f = pairs(fields);
  try {
    return JSON.parse(f.m);
  } catch {
    return { id: String(f.id ?? ''), data: f, unreadable: true }; // a foreign entry, passed as is
  }
}

/**
 * `redisGatewaySource({ url | cluster | client, topics: { topic: streamKey }, block?, count?, maxLen? })`
 * (`cluster: { rootNodes }`: a Redis Cluster, see `connectRedisCluster`)
 * returns `{ history, attach(gateway), close(), stats }`:
 * - `history.since(topic, afterSeq, limit)`: entries after `afterSeq` (exclusive; `null` = from
 *   the oldest retained), at most `limit`, as `{ entries: [{ seq, message }], gap }`; `gap` is
 *   true when an entry after `afterSeq` is no longer in Redis (trimmed by retention, deleted, or
 *   the stream is gone), i.e. the client missed something that cannot be replayed (reported
 *   conservatively when the client's own last entry has been trimmed).
 * - `history.append(topic, messages)`: XADDs and returns the entry ids (the `seq` to publish).
 * - `attach(gateway)`: XREADs every topic's stream from its current end and calls
 *   `gateway.publish(topic, messages, { seq: ids })` per batch; reconnects with backoff.
 */
export async function redisGatewaySource(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const topics = options.topics;
  if (topics === null || typeof topics !== 'object' || Object.keys(topics).length === 0) {
    throw new TypeError('topics must be an object mapping topic names to stream keys');
  }
  for (const [t, k] of Object.entries(topics)) {
    if (typeof k !== 'string' || k.length === 0) throw new TypeError(`topics.${t} must be a stream key (string)`);
  }
  const block = options.block ?? 1000;
  const count = options.count ?? 500;
  const maxLen = options.maxLen ?? 0;
  const { client, owned } = await redisFrom(options, 'redisGatewaySource');
  const stats = { published: 0, batches: 0, errors: 0, publishErrors: 0 };
  const keyOf = (topic) => {
    const k = topics[topic];
    if (k === undefined) throw new RangeError(`unknown topic '${topic}'`);
    return k;
  };

  const history = {
    async append(topic, messages) {
      const key = keyOf(topic);
      const list = Array.isArray(messages) ? messages : [messages];
      const trim = maxLen > 0 ? ['MAXLEN', '~', String(maxLen)] : [];
      return Promise.all(list.map((m) => client.sendCommand(['XADD', key, ...trim, '*', 'id', String(m?.id ?? ''), 'm', JSON.stringify(m)])));
    },
    async since(topic, afterSeq, limit) {
      const key = keyOf(topic);
      if (afterSeq !== null && afterSeq !== undefined && (typeof afterSeq !== 'string' || !ID.test(afterSeq))) {
        throw new TypeError(`afterSeq must be a Redis entry id like '1700000000000-0' or null, got ${JSON.stringify(afterSeq)}`);
      }
      if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
      const from = afterSeq ? `(${afterSeq}` : '-';
      const [rows, info] = await Promise.all([
        client.sendCommand(['XRANGE', key, from, '+', 'COUNT', String(limit)]),
        afterSeq ? client.sendCommand(['XINFO', 'STREAM', key]).catch((e) => (String(e?.message).includes('no such key') ? null : Promise.reject(e))) : null,
      ]);
      let gap = false;
      if (afterSeq) {
        if (info === null) gap = true; // the stream is gone: history lost
        else {
          const o = pairs(info);
          // XDEL after the client's position (Redis 7 records the largest deleted id) ...
          const deleted = String(o['max-deleted-entry-id'] ?? '0-0');
          // ... or trimming past it: the oldest retained entry is newer than the client's last
          // one (trimming removes from the head, and Redis 7.0 does not record trimmed ids).
          // Conservative: if exactly the client's last entry was the last one trimmed, this
          // still reports a gap.
          const first = o['first-entry'] ? String(o['first-entry'][0]) : null;
          const lastGenerated = String(o['last-generated-id'] ?? '0-0');
          gap = compareIds(deleted, afterSeq) > 0 || (first !== null ? compareIds(afterSeq, first) < 0 : compareIds(lastGenerated, afterSeq) > 0);
        }
      }
      return { entries: rows.map(([seq, fields]) => ({ seq: String(seq), message: decode(fields) })), gap };
    },
  };

  let running = false;
  let reader = null;
  const attach = (gateway) => {
    if (!gateway || typeof gateway.publish !== 'function') throw new TypeError('gateway must have a publish(topic, messages, { seq }) method');
    if (running) throw new Error('already attached');
    running = true;
    const names = Object.keys(topics);
    const keys = names.map((t) => topics[t]);
    const topicOf = new Map(names.map((t) => [topics[t], t]));
    const loop = (async () => {
      // Blocking reads get their own connection (on a cluster, reads poll: none needed).
      reader = client.isCluster ? client : client.duplicate();
      if (!client.isCluster) {
        reader.on('error', () => {});
        await reader.connect();
      }
      // Start from each stream's current end (`$` would miss entries added between reads).
      const last = new Map();
      let retries = 0;
      while (running && last.size < keys.length) {
        try {
          for (const k of keys) {
            const r = await client.sendCommand(['XREVRANGE', k, '+', '-', 'COUNT', '1']);
            last.set(k, r.length ? String(r[0][0]) : '0-0');
          }
        } catch {
          last.clear();
          stats.errors++;
          await new Promise((r) => setTimeout(r, reconnectBackoff(retries++)));
        }
      }
      while (running) {
        let res;
        try {
          if (client.isCluster) {
            // One read per slot (keys of several slots cannot share a command), without BLOCK.
            const parts = await Promise.all(bySlotTag(keys).map((ks) => client.sendCommand(['XREAD', 'COUNT', String(count), 'STREAMS', ...ks, ...ks.map((k) => last.get(k))])));
            res = parts.flatMap((r) => r ?? []);
            if (res.length === 0) await new Promise((r) => setTimeout(r, Math.min(block, CLUSTER_POLL_MS)));
          } else {
            res = await reader.sendCommand(['XREAD', 'COUNT', String(count), 'BLOCK', String(block), 'STREAMS', ...keys, ...keys.map((k) => last.get(k))]);
          }
          retries = 0;
        } catch {
          if (!running) break;
          stats.errors++;
          await new Promise((r) => setTimeout(r, reconnectBackoff(retries++)));
          continue;
        }
        for (const [k, rows] of res ?? []) {
          const key = String(k);
          if (!rows.length) continue;
          last.set(key, String(rows[rows.length - 1][0]));
          const messages = rows.map(([, f]) => decode(f));
          const seq = rows.map(([id]) => String(id));
          try {
            await gateway.publish(topicOf.get(key), messages, { seq });
            stats.published += messages.length;
            stats.batches++;
          } catch {
            stats.publishErrors++;
          }
        }
      }
    })();
    loop.catch(() => (stats.errors++));
    return loop;
  };

  return {
    history,
    attach,
    stats,
    async close() {
      running = false;
      if (reader && reader !== client) safeDestroy(reader);
      reader = null;
      if (owned && client.isOpen) await client.close().catch(() => client.destroy());
    },
  };
}
