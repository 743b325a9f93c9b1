// @nodeflow/stream-engine/redis: scale-out on Redis Streams (Node only; needs the `redis` package).
export {
  fnv1a32, partitionOf, streamKey, streamKeys, connectRedis, reconnectBackoff,
  createRedisProducer, createRedisConsumer, connectRedisCluster, hashTag, CLUSTER_POLL_MS,
} from './bridge.mjs';
export { startWorker, parseDuration } from './worker.mjs';
export { redisGatewaySource, compareIds } from './gateway.mjs';
