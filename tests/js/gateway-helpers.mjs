// Shared helpers of the gateway tests: real sockets on 127.0.0.1, bounded waits.
import { WebSocket } from 'ws';

export { WebSocket };

export const msg = (id, extra = {}) => ({ id, timestamp: Date.now(), sourceNodeId: 'feed', targetNodeId: '*', port: 'out', data: extra.data ?? null, ...(extra.metadata ? { metadata: extra.metadata } : {}) });

/** Polls `cond` every few ms until it is true; fails after `ms` (a bound, not a measurement). */
export async function until(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A raw ws client that records every frame it gets. */
export async function rawClient(url, opts = {}) {
  const ws = new WebSocket(url, opts);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  await until(() => frames.some((f) => f.op === 'welcome'), 'welcome');
  const closed = new Promise((r) => ws.once('close', (code) => r(code)));
  return {
    ws,
    frames,
    closed,
    send: (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)),
    of: (op) => frames.filter((f) => f.op === op),
    ids: (topic) => frames.filter((f) => f.op === 'data' && (topic === undefined || f.topic === topic)).flatMap((f) => f.messages.map((m) => m.id)),
    close: () => {
      ws.terminate();
      return closed;
    },
  };
}

/** Reads every batch of `readable` into `ids` in the background; returns a stop function. */
export function collect(readable, ids) {
  const reader = readable.getReader();
  let stopped = false;
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        for (const m of value) ids.push(m.id);
      }
    } catch {
      // closed
    }
  })();
  return () => {
    stopped = true;
    reader.cancel().catch(() => {});
  };
}
