// The demo's local gateway: attached to the demo's HTTP server on /gateway (same origin as the
// page), with one topic per demo stream fed by the engine's data sources. One message in a hundred
// is published twice, as an at-least-once producer retrying would, so that the page's duplicate
// counter has something to count.
import { createGateway } from '../dist/gateway.mjs';
import { createDataSource } from '../dist/node.mjs';

export const DEMO_TOPICS = [
  { key: 'sequential', pattern: 'sequential', source: 'seq-source', target: 'seq-chart', period: 1000 },
  { key: 'random', pattern: 'random', source: 'random-source', target: 'random-chart', period: 1000 },
  { key: 'sine-wave', pattern: 'sine-wave', source: 'sine-source', target: 'sine-chart', period: 4000 },
  { key: 'step', pattern: 'step', source: 'step-source', target: 'step-chart', period: 1500 },
];

const MIX = [[0.05, 'critical'], [0.25, 'high'], [0.75, 'normal'], [1, 'low']];
const pick = () => {
  const r = Math.random();
  for (const [p, name] of MIX) if (r < p) return name;
  return 'normal';
};

/**
 * Starts the gateway on `server` (path /gateway) and the producers. `rate`: msg/s per topic.
 * Resolves to `{ gateway, close() }`.
 */
export async function startDemoGateway({ server, rate = 200, historySize = 1000, heartbeatInterval = 2000 } = {}) {
  const gateway = await createGateway({ server, path: '/gateway', topics: DEMO_TOPICS.map((t) => t.key), history: { size: historySize }, heartbeatInterval, hardLimit: { stallMs: 30000 } });
  const stops = [];
  for (const t of DEMO_TOPICS) {
    const source = createDataSource(t.pattern, { rate, sourceNodeId: t.source, targetNodeId: t.target, port: 'out', amplitude: 100, period: t.period, priority: pick, batch: true });
    const ac = new AbortController();
    const topic = gateway.topic(t.key);
    const dup = new TransformStream({
      transform(batch, c) {
        c.enqueue(batch);
        if (Math.random() < 0.01 * batch.length && batch.length > 0) c.enqueue([batch[batch.length - 1]]);
      },
    });
    source.pipeThrough(dup).pipeTo(topic.writable, { signal: ac.signal }).catch(() => {});
    stops.push(() => ac.abort());
  }
  return {
    gateway,
    async close() {
      for (const s of stops) s();
      await gateway.close();
    },
  };
}
