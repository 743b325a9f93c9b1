// Type declarations for @nodeflow/stream-engine/redis (Node only; uses the `redis` package).
import type { StreamMessage } from './index.js';

/** A node-redis client (`createClient()` from 'redis'), connected. */
export type RedisClientLike = { sendCommand(args: string[]): Promise<unknown>; duplicate(): unknown; isOpen: boolean };

/** 32-bit FNV-1a of a string. */
export function fnv1a32(str: string): number;
/** FNV-1a of `metadata.key` (or `id`) modulo `partitions`. */
export function partitionOf(message: StreamMessage, partitions: number): number;
/** `${prefix}:{${partition}}` (a Redis Cluster hash tag per partition). */
export function streamKey(prefix: string, partition: number): string;
export function streamKeys(prefix: string, partitions: number): string[];
/** A client with reconnect backoff and an error listener. */
export function connectRedis(url: string, options?: { name?: string; onError?: (e: unknown) => void }): Promise<RedisClientLike & { close(): Promise<void> }>;
export function reconnectBackoff(retries: number): number;

/** A Redis Cluster: some of its nodes (the rest are discovered). */
export interface ClusterOptions { rootNodes: (string | { url: string })[] }
/**
 * Connects to a Redis Cluster (node-redis `createCluster`); the result's `sendCommand(args)` routes
 * each command to the master owning its key's slot.
 */
export function connectRedisCluster(cluster: ClusterOptions, options?: { onError?: (e: unknown) => void }): Promise<RedisClientLike & { isCluster: true; close(): Promise<void> }>;
/** The hash tag of a key (what Redis Cluster hashes): the part in the first non-empty `{...}`, else the key. */
export function hashTag(key: string): string;
/** ms between reads of an idle reader on a cluster (reads there do not BLOCK). */
export const CLUSTER_POLL_MS: number;

/** Where Redis is: `url` (one node), `cluster` (a Redis Cluster) or a connected `client`. */
interface Connect { url?: string; cluster?: ClusterOptions; client?: RedisClientLike; onError?: (e: unknown) => void }

export interface ProducerOptions extends Connect { prefix?: string; partitions?: number; maxLen?: number }
export function createRedisProducer(options: ProducerOptions): Promise<{
  writable: WritableStream<StreamMessage | StreamMessage[]>;
  write(chunk: StreamMessage | StreamMessage[]): Promise<string[]>;
  stats: { written: number; batches: number };
  close(): Promise<void>;
}>;

export interface ConsumerOptions extends Connect {
  group: string;
  consumer?: string;
  streams?: string[];
  count?: number;
  block?: number;
  maxInFlight?: number;
  claimIdle?: number;
  claimInterval?: number;
  maxDeliveries?: number;
  deadLetter?: string;
  onIdle?: () => void;
}
export interface RedisConsumer {
  readable: ReadableStream<StreamMessage[]>;
  readonly streams: string[];
  setStreams(keys: string[], options?: { takeOver?: boolean }): void;
  meta(message: StreamMessage): { stream: string; entryId: string } | undefined;
  ack(messages: StreamMessage | StreamMessage[]): Promise<void>;
  release(messages: StreamMessage | StreamMessage[]): void;
  onDrop(message: StreamMessage, reason: string): void;
  delivered(): TransformStream<StreamMessage[], StreamMessage[]>;
  stats: { read: number; acked: number; claimed: number; deadLettered: number; trimmedWhilePending: number; errors: number; dropped: Record<string, number>; readonly inFlight: number; maxInFlightSeen: number };
  close(): Promise<void>;
  destroy(): void;
}
export function createRedisConsumer(options: ConsumerOptions): Promise<RedisConsumer>;

export interface WorkerOptions {
  /** One Redis node; or `cluster` (then `output` must contain `{p}`). */
  url?: string; cluster?: ClusterOptions; group?: string; partitions?: number; prefix?: string; output?: string;
  window?: number | string; slide?: number | string; allowedLateness?: number; name?: string; leaseMs?: number;
  idleFlush?: number; lineage?: boolean; maxInFlight?: number; count?: number; block?: number; bufferSize?: number;
  outMaxLen?: number; dedupTtl?: number; maxDeliveries?: number; claimIdle?: number; delay?: number; log?: (line: string) => void;
}
export function startWorker(options: WorkerOptions): Promise<{
  name: string;
  stats: { results: number; late: number; written: number; duplicates: number; fenced: number; acked: number; batches: number; errors: number; rebalances: number; maxHeld: number };
  consumer: RedisConsumer;
  owned(): number[];
  held(): number;
  buffered(): number;
  stop(options?: { flush?: boolean }): Promise<void>;
}>;
export function parseDuration(v: number | string, name?: string): number;

/** The history interface of the WebSocket gateway. */
export interface GatewayHistory {
  append?(topic: string, messages: StreamMessage | StreamMessage[]): string[] | Promise<string[]>;
  since(topic: string, afterSeq: string | null, limit: number): Promise<{ entries: { seq: string; message: StreamMessage }[]; gap: boolean }>;
}
export function redisGatewaySource(options: Connect & { topics: Record<string, string>; block?: number; count?: number; maxLen?: number }): Promise<{
  history: Required<GatewayHistory>;
  attach(gateway: { publish(topic: string, messages: StreamMessage[], options: { seq: string[] }): unknown }): Promise<void>;
  stats: { published: number; batches: number; errors: number; publishErrors: number };
  close(): Promise<void>;
}>;
export function compareIds(a: string, b: string): number;
