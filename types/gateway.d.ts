// Type declarations for @nodeflow/stream-engine/gateway (Node only; needs the `ws` package).
/** The HTTP upgrade request (Node's UpgradeRequest; only what is typically read is typed). */
export interface UpgradeRequest {
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  [field: string]: unknown;
}
import type { GatewayPolicy, StreamEngine, StreamMessage } from './index.js';

export { connectGateway, GatewayClient, GatewayClientOptions, GatewayPolicy, GatewayMode, GatewayUrls } from './index.js';

/** Which topics a client may subscribe to / publish to: all, a list, or a predicate. */
export type TopicAccess = boolean | string[] | ((topic: string) => boolean);

/** A history the gateway replays from (the in-memory one, or your own, e.g. Redis-backed). */
export interface GatewayHistory {
  /** Assigns seqs to a published batch (skipped when `publish` is given `seq`). */
  append?(topic: string, messages: StreamMessage[]): string[] | Promise<string[]>;
  /** Entries after afterSeq (exclusive), oldest first, at most limit; gap when the history no longer reaches afterSeq. */
  since(topic: string, afterSeq: string, limit: number): Promise<{ entries: { seq: string; message: StreamMessage }[]; gap: boolean }>;
}

export interface GatewayOptions {
  /** Port (0: a free one; default 0) and host (default 127.0.0.1) of the gateway's own HTTP server. */
  port?: number;
  host?: string;
  /** Attach to this HTTP server instead (its upgrade requests on `path`). */
  server?: unknown;
  /** Path of the WebSocket endpoint (default '/'). */
  path?: string;
  /** `{ size }` for the in-memory history (default 1000 per topic) or your own. */
  history?: { size?: number } | GatewayHistory;
  /** Sees the upgrade request; false refuses it (HTTP 403). `true`: subscribe to all, publish to none. */
  authorize?: (req: UpgradeRequest) => boolean | { subscribe?: TopicAccess; publish?: TopicAccess } | Promise<boolean | { subscribe?: TopicAccess; publish?: TopicAccess }>;
  /** Known topics (also any created with topic() or publish()), or a predicate. */
  topics?: string[] | ((topic: string) => boolean);
  /** Default subscription policy (default `{ bufferSize: 1000, maxBatchSize: 100, batchTimeout: 10, dropPolicy: 'priority' }`). */
  policy?: GatewayPolicy;
  /** Cap on a client's `bufferSize` (default 10000). */
  maxBufferSize?: number;
  /** Largest client frame in bytes (default 1 MiB): bigger ones get an `oversized` error; over 4x the socket closes with 1009. */
  maxPayload?: number;
  /** ms between heartbeats (ping + `hb` frame; default 15000). */
  heartbeatInterval?: number;
  /** ms without pong or frame before a client is terminated (default 2 heartbeats). */
  idleTimeout?: number;
  /** Close code 4008 when a socket stays busy over stallMs (default 60000) or pendingMessages (default 10000) undeliverable, undroppable messages pile up; false: never. */
  hardLimit?: false | { stallMs?: number; pendingMessages?: number };
  /** Subscriptions per socket at most (default 100); more get a `bad-request` error frame. */
  maxSubscriptions?: number;
  /** More clients are closed with 1013 (default 10000). */
  maxClients?: number;
  /** ms between frames of a topic in 'conflate' mode (hidden tab; default 1000). */
  hiddenInterval?: number;
  /** The engine subscriptions live in (default: its own). */
  engine?: StreamEngine;
  /** Unacknowledged bytes after which a client that acks (connectGateway does) counts as busy (default 128 KiB). */
  ackWindow?: number;
  /** Called with each message shed for a client. */
  onDrop?: (message: StreamMessage, reason: string, info: { client: number; topic: string }) => void;
}

export interface GatewayTopic {
  readonly name: string;
  /** Messages or arrays of messages written here are published to the topic. */
  readonly writable: WritableStream<StreamMessage | StreamMessage[]>;
  readonly subscribers: number;
  publish(messages: StreamMessage | StreamMessage[], options?: { seq?: string | string[] }): string[] | undefined | Promise<string[]>;
}

export interface Gateway {
  readonly port: number;
  readonly url: string;
  readonly engine: StreamEngine;
  topic(name: string): GatewayTopic;
  /** Publishes; with `seq` (one per message) the history's append is skipped. Returns the seqs. */
  publish(topic: string, messages: StreamMessage | StreamMessage[], options?: { seq?: string | string[] }): string[] | undefined | Promise<string[]>;
  metrics(): {
    clients: number;
    topics: Record<string, { subscribers: number; published: number; lastSeq?: string }>;
    buffered: number;
    bufferedAmount: number;
    connections: number;
    rejected: number;
    closedSlow: number;
    closedIdle: number;
    errorsSent: number;
    framesSent: number;
    messagesSent: number;
    /** Data frames whose bytes were reused from another subscriber of the same topic (same batch). */
    framesShared: number;
    /** Data frames written straight from a topic's shared batch to a subscriber that keeps up (no engine connection involved). */
    framesDirect: number;
    memory: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
  };
  close(): Promise<void>;
}

export function createGateway(options?: GatewayOptions): Promise<Gateway>;

export class MemoryHistory implements GatewayHistory {
  constructor(options?: { size?: number });
  append(topic: string, messages: StreamMessage[]): string[];
  since(topic: string, afterSeq: string, limit: number): Promise<{ entries: { seq: string; message: StreamMessage }[]; gap: boolean }>;
}

export const CLOSE_CODES: { GOING_AWAY: 1001; TOO_BIG: 1009; INTERNAL_ERROR: 1011; TRY_AGAIN_LATER: 1013; IDLE: 4000; TOO_SLOW: 4008 };
export const ERROR_CODES: { MALFORMED: 'malformed'; OVERSIZED: 'oversized'; UNKNOWN_TOPIC: 'unknown-topic'; UNKNOWN_OP: 'unknown-op'; UNAUTHORIZED: 'unauthorized'; BAD_REQUEST: 'bad-request' };
export const PROTOCOL_VERSION: number;
