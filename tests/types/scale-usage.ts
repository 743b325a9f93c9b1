// Type-checks the windowing stages and the Redis subpath.
import { StreamEngine, WindowAggregator, createWindowStage, createDownsampleStage, downsampleLTTB, type WindowResult } from '@nodeflow/stream-engine';
import { createRedisProducer, createRedisConsumer, startWorker, redisGatewaySource, partitionOf, connectRedisCluster, hashTag } from '@nodeflow/stream-engine/redis';

export async function scale(url: string): Promise<void> {
  const engine = new StreamEngine();
  const id = engine.createConnection('a', 'b', 'o', 'i');
  const c = engine.getConnection(id)!;
  const stage = createWindowStage({ size: 1000, slide: 250, allowedLateness: 100, idleTimeout: 2000, value: (m) => Number(m.data) });
  const { value } = await c.readable.pipeThrough(stage).getReader().read();
  const results: WindowResult[] = value ?? [];
  const p95: number = results[0].data.p95;
  const agg = new WindowAggregator({ size: 10, lineage: true });
  const out = agg.flush();
  console.log(p95, out.released.length, agg.stats.held);
  const ds = createDownsampleStage({ bucketMs: 16 });
  console.log(ds.stats.taken, downsampleLTTB([1, 2, 3], 2, { x: (v) => v, y: (v) => v }).length);
  const prod = await createRedisProducer({ url, partitions: 8, maxLen: 10_000 });
  const cons = await createRedisConsumer({ url, group: 'g', streams: ['in:{0}'], onIdle: () => {} });
  await cons.readable.pipeTo(c.writable);
  const w = await startWorker({ url, window: '1s' });
  const src = await redisGatewaySource({ url, topics: { metrics: 'nodeflow:out' } });
  const h = await src.history.since('metrics', null, 10);
  // Redis Cluster: the same options with `cluster` instead of `url`.
  const cluster = { rootNodes: ['redis://127.0.0.1:7000', { url: 'redis://127.0.0.1:7001' }] };
  const cw = await startWorker({ cluster, output: 'nodeflow:out:{p}' });
  const cc = await connectRedisCluster(cluster);
  console.log(cw.name, cc.isCluster, hashTag('in:{3}'), (await createRedisProducer({ cluster })).stats.written);
  console.log(h.gap, h.entries[0]?.seq, w.owned(), prod.stats.written, partitionOf({ id: 'x', timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'o', data: 1 }, 8));
}
