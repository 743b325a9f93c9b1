// Type declarations for @nodeflow/stream-engine.
// The engine core is Rust compiled to WebAssembly; these types describe the JavaScript API.

/** A named priority class; the number it stands for is given next to it. */
export type PriorityName = 'critical' | 'high' | 'normal' | 'low'; // 1, 0.75, 0.5, 0.25

/** Optional message metadata the engine reads. Everything else is left alone. */
export interface MessageMetadata {
  /** A number in [0, 1] (higher is more important) or a class name. Missing means 0.5. Priority 1 is never dropped. */
  priority?: number | PriorityName;
  /** With `conflate: true`, a new message replaces a buffered one with the same key. */
  key?: string | number;
  [field: string]: unknown;
}

/** One message. `data` is opaque: the engine never copies, serializes or inspects it. */
export interface StreamMessage<T = unknown> {
  id: string;
  timestamp: number;
  sourceNodeId: string;
  targetNodeId: string;
  port: string;
  data: T;
  metadata?: MessageMetadata;
}

/** Per-connection settings (all times in milliseconds). */
export interface StreamConfig {
  /** Maximum messages held by the connection (positive integer, default 1000). */
  bufferSize: number;
  /** A batch is delivered at most this long after its first message was accepted (>= 0, default 16; 0 = no waiting). */
  batchTimeout: number;
  /** Maximum messages per batch (positive integer, default 50). */
  maxBatchSize: number;
  /** Buffer utilisation in (0, 1] at which backpressure starts (default 0.8). */
  backpressureThreshold: number;
  /** Retries of a failing `consume` handler (integer >= 0, default 3). */
  retryAttempts: number;
  /** Base retry delay (>= 0, default 100). */
  retryDelay: number;
}

export type DropPolicy = 'priority' | 'oldest' | 'newest' | 'block';
export type DropReason = 'priority' | 'oldest' | 'newest' | 'conflated' | 'dead-letter';

export interface ConnectionConfig extends Partial<StreamConfig> {
  /** Fixed drop rule; overrides any handler. Default: the handler's behaviour, or 'block' (lossless) without one. */
  dropPolicy?: DropPolicy;
  /** Latest value wins per `metadata.key`. */
  conflate?: boolean;
  /** Longest time a write is held under backpressure by the fixed drop policies (default 100 ms). */
  maxWaitTime?: number;
  /** A handler for this connection only. */
  backpressureHandler?: BackpressureHandlerLike;
  /** Called for every dropped message, with the reason. */
  onDrop?: (message: StreamMessage, reason: DropReason) => void;
  /** Closes the connection when aborted. */
  signal?: AbortSignal;
}

export interface EngineConfig extends Partial<StreamConfig> {
  /** Milliseconds between metrics snapshots on the event feed (default 1000). */
  metricsInterval?: number;
  /** Sliding window for rates, latencies and error rate (default 5000). */
  metricsWindow?: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface DropCounts {
  priority: number;
  oldest: number;
  newest: number;
  conflated: number;
  'dead-letter': number;
}

export interface PriorityCounts {
  critical: number;
  high: number;
  normal: number;
  low: number;
}

export interface AdaptiveState {
  /** Current effective drop threshold (fraction of bufferSize). */
  effectiveThreshold: number;
  /** Fraction of arrivals dropped over the metrics window. */
  dropRate: number;
  /** Current batch size used by the handler (<= maxBatchSize). */
  batchSize: number;
}

export interface ConnectionMetrics {
  connectionId: string;
  /** Total messages accepted. */
  messagesIn: number;
  /** Total messages delivered to the reader (or successfully consumed). */
  messagesOut: number;
  /** Delivered per second, over the last second. */
  messagesPerSecond: number;
  /** Latency from acceptance to delivery (ms), over the metrics window. */
  averageLatency: number;
  p50Latency: number;
  p95Latency: number;
  p99Latency: number;
  maxLatency: number;
  /** Messages held now (including a batch being consumed). */
  bufferSize: number;
  bufferCapacity: number;
  bufferUtilization: number;
  backpressureEvents: number;
  /** Whether backpressure is on now. */
  backpressure: boolean;
  /** Total dropped, all reasons. `messagesIn == messagesOut + dropped + bufferSize` always holds. */
  dropped: number;
  drops: DropCounts;
  dropsByPriority: PriorityCounts;
  /** Delivered messages by priority class. */
  deliveredByPriority: PriorityCounts;
  /** Dropped over accepted within the metrics window (0..1; drives the `drops` alert). */
  dropRate: number;
  /** Failed deliveries over attempted, over the metrics window. */
  errorRate: number;
  errors: number;
  retries: number;
  circuitState: CircuitState;
  paused: boolean;
  /** Where the connection is in its life; `'finished'` figures are final. */
  state: ConnectionState;
  adaptive?: AdaptiveState;
  lastUpdated: number;
}

/**
 * `'open'`: accepting writes. `'closing'`: writes refused, still delivering what it holds.
 * `'finished'`: the readable has ended (drained after a close, cancelled, aborted); the connection
 * and its final metrics stay under its id until `closeConnection(id)`, `destroy()` or a new
 * connection with the id.
 */
export type ConnectionState = 'open' | 'closing' | 'finished';

export interface SystemMetrics {
  /** Timer drift of the metrics timer (ms). */
  eventLoopLag: number;
  /** Size of the WebAssembly memory in bytes. */
  wasmMemoryBytes: number;
  /** JS heap used, where the platform exposes it. */
  jsHeapUsed?: number;
  jsHeapTotal?: number;
  jsHeapLimit?: number;
}

export interface EngineMetrics {
  totals: {
    connections: number;
    messagesIn: number;
    messagesOut: number;
    messagesPerSecond: number;
    dropped: number;
    bufferSize: number;
    backpressureEvents: number;
    errors: number;
    retries: number;
  };
  connections: Record<string, ConnectionMetrics>;
  system: SystemMetrics;
  lastUpdated: number;
}

export type AlertType = 'high_latency' | 'high_error_rate' | 'backpressure' | 'memory' | 'drops' | 'circuit_open' | 'stale';
export type Severity = 'warning' | 'critical';

export interface Alert {
  type: AlertType;
  severity: Severity;
  /** Connection id, or '' for engine-wide alerts (memory). */
  connectionId: string;
  message: string;
  value: number;
  threshold: number;
  timestamp: number;
}

export interface Thresholds {
  latency: { warning: number; critical: number };
  errorRate: { warning: number; critical: number };
  backpressure: { warning: number; critical: number };
  memory: { warning: number; critical: number };
  /** Drop rate (dropped / in over the window) that raises a `drops` warning; any critical drop is critical. */
  dropRate: { warning: number };
}
export type PartialThresholds = { [K in keyof Thresholds]?: Partial<Thresholds[K]> };

interface EventBase {
  timestamp: number;
  /** Events this subscriber missed (its queue overflowed) just before this one. */
  missed?: number;
}
export interface MetricsEvent extends EventBase { type: 'metrics'; metrics: EngineMetrics }
export interface AlertEvent extends EventBase { type: 'alert'; alert: Alert }
export interface AlertResolvedEvent extends EventBase { type: 'alert-resolved'; alert: Alert }
export interface BackpressureEvent extends EventBase {
  type: 'backpressure';
  connectionId: string;
  state: 'start' | 'end';
  bufferUtilization: number;
}
export interface DropEvent extends EventBase {
  type: 'drop';
  connectionId: string;
  /** Messages dropped since the previous drop event of this connection. */
  count: number;
  reasons: DropCounts;
  byPriority: PriorityCounts;
}
export interface ConnectionEvent extends EventBase {
  type: 'connection';
  connectionId: string;
  action: 'created' | 'closed' | 'paused' | 'resumed' | 'circuit-opened' | 'circuit-closed';
}
export interface ErrorEvent extends EventBase {
  type: 'error';
  connectionId: string;
  error: { name: string; message: string };
  attempt: number;
  willRetry: boolean;
}
/** A gateway client's topic lost messages: the gateway's history no longer reached back to `afterSeq`. */
export interface GapEvent extends EventBase {
  type: 'gap';
  connectionId: string;
  topic: string;
  afterSeq?: string;
}
/** A gateway client's socket: open (again), closed, reconnecting, an error frame, a visibility change. */
export interface GatewayEvent extends EventBase {
  type: 'gateway';
  connectionId: string;
  url: string;
  action: 'open' | 'close' | 'reconnecting' | 'error' | 'visibility';
  reconnect?: boolean;
  code?: number | string;
  reason?: string;
  message?: string;
  topic?: string;
  attempt?: number;
  delay?: number;
  hidden?: boolean;
}
export type EngineEvent =
  | MetricsEvent | AlertEvent | AlertResolvedEvent | BackpressureEvent | DropEvent | ConnectionEvent | ErrorEvent
  | GapEvent | GatewayEvent;
export type EngineEventType = EngineEvent['type'];

export interface EventsOptions {
  types?: EngineEventType[];
  /** Queue bound for this subscriber (default 1000). Oldest events go first on overflow. */
  queueSize?: number;
}

/** Debug events, as the old `debug$`. */
export interface DebugEvent {
  type: 'connection_created' | 'connection_closed' | 'batch_delivered' | 'message_dropped' | 'backpressure' | 'error' | 'retry' | 'alert' | 'circuit';
  connectionId: string;
  timestamp: number;
  data: unknown;
}

export interface Subscription { unsubscribe(): void; readonly closed: boolean }
export interface Observer<T> { next?(value: T): void; error?(err: unknown): void; complete?(): void }
/** A minimal interop observable: works with RxJS `from()` (via '@@observable' / Symbol.observable). */
export interface InteropObservable<T> {
  subscribe(observerOrNext?: Observer<T> | ((value: T) => void)): Subscription;
  '@@observable'(): InteropObservable<T>;
}

export interface BatchedStreamValue<T = unknown> { messages: StreamMessage<T>[]; totalSize: number; timestamp: number }

export interface ConsumeHandle {
  /** Stops consuming; messages stay buffered. */
  stop(): void;
  /** Resolves when the connection's readable ends (or `stop()` is called). */
  readonly done: Promise<void>;
}

export interface StreamConnection<T = unknown> {
  readonly id: string;
  readonly sourceNodeId: string;
  readonly targetNodeId: string;
  readonly sourcePort: string;
  readonly targetPort: string;
  readonly config: Readonly<StreamConfig & Omit<ConnectionConfig, keyof StreamConfig>>;
  /** Accepts a message or an array of messages (a batch write: the fast path). */
  readonly writable: WritableStream<StreamMessage<T> | StreamMessage<T>[]>;
  /** Delivers batches (arrays) of messages in write order. */
  readonly readable: ReadableStream<StreamMessage<T>[]>;
  /** The default writer of `writable`, taken on first access. */
  readonly writer: WritableStreamDefaultWriter<StreamMessage<T> | StreamMessage<T>[]>;
  readonly paused: boolean;
  /** `'open'`, `'closing'` or `'finished'` (see ConnectionState). */
  readonly state: ConnectionState;
  pause(): void;
  resume(): void;
  /** Reads batches and calls `handler(batch)` with retries, dead letters and a circuit breaker. */
  consume(handler: (batch: StreamMessage<T>[]) => void | Promise<void>): ConsumeHandle;
  /** Returns the dead-lettered messages and clears the list. */
  deadLetters(): StreamMessage<T>[];
  /**
   * Frame-aligned delivery: a stream giving at most one batch per animation frame (everything
   * buffered at that frame); messages wait in the connection between frames. Locks `readable`.
   */
  frames(options?: FrameOptions): ReadableStream<StreamMessage<T>[]>;
}

export interface FrameOptions {
  /** In a hidden tab (no animation frames), at most one batch per this many ms (default 1000). */
  hiddenInterval?: number;
  /** Custom scheduler: resolves at each delivery moment (default: animation frames). */
  nextFrame?: () => Promise<void>;
}

export interface BackpressureHandlerLike {
  prioritizeMessage(message: StreamMessage): number;
  shouldDropMessage(message: StreamMessage): boolean;
}

export interface DefaultBackpressureOptions { dropThreshold?: number; priorityDrop?: boolean; maxWaitTime?: number }
export class DefaultBackpressureHandler implements BackpressureHandlerLike {
  constructor(options?: DefaultBackpressureOptions);
  readonly options: Required<DefaultBackpressureOptions>;
  prioritizeMessage(message: StreamMessage): number;
  shouldDropMessage(message: StreamMessage): boolean;
}

export interface AdaptiveBackpressureOptions {
  /** p95 latency goal for delivered messages (ms, default 100). */
  targetLatency?: number;
  /** Upper bound of the effective drop threshold (default 0.9). */
  maxThreshold?: number;
  /** Lower bound of the effective drop threshold (default 0.05). */
  minThreshold?: number;
  /** Longest hold of a write under backpressure (default min(10, targetLatency / 10) ms). */
  maxWaitTime?: number;
}
export class AdaptiveBackpressureHandler implements BackpressureHandlerLike {
  constructor(options?: AdaptiveBackpressureOptions);
  readonly options: Required<AdaptiveBackpressureOptions>;
  prioritizeMessage(message: StreamMessage): number;
  shouldDropMessage(message: StreamMessage): boolean;
}

export interface ErrorRecoveryOptions {
  retryAttempts?: number;
  retryDelay?: number;
  maxRetryDelay?: number;
  jitter?: number;
  circuitBreaker?: { failureThreshold?: number; resetTimeout?: number };
}
export class DefaultErrorRecovery {
  constructor(options?: ErrorRecoveryOptions);
  readonly options: Required<Omit<ErrorRecoveryOptions, 'circuitBreaker'>> & { circuitBreaker: { failureThreshold: number; resetTimeout: number } };
  shouldRetry(error: unknown, attempt: number): boolean;
  getRetryDelay(attempt: number): number;
}
export class GracefulErrorRecovery extends DefaultErrorRecovery {}

export class StreamEngine {
  constructor(config?: EngineConfig);
  /** The engine's defaults (a full StreamConfig plus metricsInterval and metricsWindow). */
  readonly config: Readonly<StreamConfig & { metricsInterval: number; metricsWindow: number }>;
  /** Returns `${sourceNodeId}:${outputPort}->${targetNodeId}:${inputPort}`. Throws if it exists. */
  createConnection(sourceNodeId: string, targetNodeId: string, outputPort: string, inputPort: string, config?: ConnectionConfig): string;
  getConnection<T = unknown>(id: string): StreamConnection<T> | undefined;
  /** Forgets the connection at once, refuses writes, releases a pause, closes the readable after buffered messages. */
  closeConnection(id: string): Promise<void>;
  listConnections(): string[];
  /** Delivers to every connection whose source node and output port match; returns how many took it. */
  route(message: StreamMessage | StreamMessage[]): number;
  getMetrics(id: string): ConnectionMetrics;
  getMetrics(): EngineMetrics;
  resetMetrics(id: string): void;
  setBackpressureHandler(handler: BackpressureHandlerLike | null): void;
  setErrorRecovery(recovery: DefaultErrorRecovery | null): void;
  setThresholds(thresholds: PartialThresholds): void;
  getThresholds(): Thresholds;
  /** A new ReadableStream of events on each call. Cancel it to unsubscribe. */
  events(options?: EventsOptions): ReadableStream<EngineEvent>;
  /** Emits a Map of connection id to metrics every metricsInterval. */
  readonly metrics$: InteropObservable<Map<string, ConnectionMetrics>>;
  readonly debug$: InteropObservable<DebugEvent>;
  createBatchedStream<T = unknown>(id: string, config?: { maxBatchSize?: number; batchTimeout?: number }): InteropObservable<BatchedStreamValue<T>>;
  /** Ends every connection at once (buffered messages become dead letters), stops every timer and frees the WebAssembly core; `config` and `getThresholds()` still read; other methods throw; connections stay inert. */
  destroy(): void;
  readonly destroyed: boolean;
}

export interface DebuggerOptions { maxHistorySize?: number; snapshotInterval?: number }
export interface DebugSnapshot { timestamp: number; systemMetrics: SystemMetrics; connections: Record<string, ConnectionMetrics> }
export interface DebugExport {
  metadata: { exportTimestamp: number; engineVersion: string; config: unknown; recording: boolean; eventCount: number; thresholds: Thresholds };
  events: DebugEvent[];
  alerts: Alert[];
  snapshots: DebugSnapshot[];
}
export class StreamDebugger {
  constructor(engine: StreamEngine, options?: DebuggerOptions);
  startRecording(): void;
  stopRecording(): void;
  readonly recording: boolean;
  readonly debug$: InteropObservable<DebugEvent>;
  readonly snapshots$: InteropObservable<DebugSnapshot>;
  readonly alerts$: InteropObservable<Alert>;
  getEventHistory(): DebugEvent[];
  getEventsForConnection(id: string): DebugEvent[];
  setThresholds(thresholds: PartialThresholds): void;
  exportDebugData(): DebugExport;
}

export type DataPattern = 'sequential' | 'random' | 'sine-wave' | 'step';
export interface PerformanceTestConfig {
  name: string;
  duration: number;
  messageRate: number;
  messageSize: number;
  concurrentConnections: number;
  burstMode?: { enabled: boolean; burstSize: number; burstInterval: number };
  dataPattern: DataPattern;
}
export interface PerformanceTestResult {
  config: PerformanceTestConfig;
  startTime: number;
  endTime: number;
  duration: number;
  totalMessages: number;
  avgMessagesPerSecond: number;
  avgLatency: number;
  minLatency: number;
  maxLatency: number;
  p95Latency: number;
  p99Latency: number;
  errorRate: number;
  backpressureEvents: number;
  droppedMessages: number;
  memoryUsage: number;
}
export const STANDARD_PERFORMANCE_TESTS: PerformanceTestConfig[];
export class PerformanceTestSuite {
  constructor(engine: StreamEngine);
  runTest(config: PerformanceTestConfig, options?: { onProgress?: (fraction: number) => void; signal?: AbortSignal }): Promise<PerformanceTestResult>;
  runTestSuite(configs: PerformanceTestConfig[], options?: { onProgress?: (test: string, fraction: number) => void }): Promise<PerformanceTestResult[]>;
  getResults(): PerformanceTestResult[];
  generateReport(): string;
}

export interface DataSourceOptions {
  rate: number;
  sourceNodeId?: string;
  targetNodeId?: string;
  port?: string;
  messageSize?: number;
  /** Stop after this many messages. */
  count?: number;
  priority?: number | PriorityName | (() => number | PriorityName);
  amplitude?: number;
  period?: number;
  /** Enqueue one array of the messages due per timer tick (the engine's batch-write fast path). */
  batch?: boolean;
}
export type SourceMessage = StreamMessage<{ value: number; seq: number; payload?: string }>;
/** A ReadableStream of messages produced at `rate` msg/s following the pattern. */
export function createDataSource(pattern: DataPattern, options: DataSourceOptions & { batch: true }): ReadableStream<SourceMessage[]>;
export function createDataSource(pattern: DataPattern, options: DataSourceOptions): ReadableStream<SourceMessage>;

export interface WidgetOptions { bufferSize?: number; updateInterval?: number; engine?: StreamEngine; connectionId?: string }
export interface WidgetUpdate<T = unknown> {
  /** The last `bufferSize` messages, oldest first. */
  data: StreamMessage<T>[];
  /** The messages received since the previous update (at most `bufferSize`). */
  added: StreamMessage<T>[];
  isConnected: boolean;
  metrics: { messageCount: number; averageLatency: number; messagesPerSecond: number } & Partial<ConnectionMetrics>;
}
/** Framework-neutral widget helper: keeps the last `bufferSize` messages, calls `onUpdate` at most once per `updateInterval` ms (or per animation frame). Returns an unsubscribe function. */
export function subscribeWidget<T = unknown>(readable: ReadableStream<StreamMessage<T>[]>, options: WidgetOptions, onUpdate: (update: WidgetUpdate<T>) => void): () => void;

/** Windowed aggregation options (times in ms of event time). */
export interface WindowOptions<T = unknown> {
  /** Window length (> 0). */
  size: number;
  /** Distance between window starts (0 < slide <= size, at most size / 1000); default `size` (tumbling). */
  slide?: number;
  /** How long after its end a window stays open for late events (>= 0, default 0). */
  allowedLateness?: number;
  /** The group key (default `metadata.key`, else `sourceNodeId`). */
  key?: (message: StreamMessage<T>) => unknown;
  /** The event time (default `timestamp`). */
  time?: (message: StreamMessage<T>) => number;
  /** The value (default `data` if a number, else `data.value`); non-numbers are invalid events. */
  value?: (message: StreamMessage<T>) => number;
  /** Called for each message refused as `'late'` (all its windows closed) or `'invalid'`. */
  onDrop?: (message: StreamMessage<T>, reason: 'late' | 'invalid') => void;
  /** Results list the ids of the messages they cover in `data.inputs`. */
  lineage?: boolean;
  idOf?: (message: StreamMessage<T>) => string;
  sourceNodeId?: string;
  targetNodeId?: string;
  port?: string;
}
/** One window's statistics for one key. */
export interface WindowStats {
  key: string; start: number; end: number; count: number; sum: number; min: number; max: number; mean: number; p50: number; p95: number;
  inputs?: string[];
}
export type WindowResult = StreamMessage<WindowStats>;
export interface WindowOutput<T = unknown> {
  results: WindowResult[];
  /** Inputs whose every window has been emitted. */
  released: StreamMessage<T>[];
  late: StreamMessage<T>[];
  invalid: StreamMessage<T>[];
}
/**
 * Loads the WebAssembly module of the window and downsample stages (a second `.wasm`, also
 * exported as `@nodeflow/stream-engine/wasm-stages`). Node loads it synchronously on first use;
 * in browsers the stage constructors start it themselves (their streams wait for it), while
 * `new WindowAggregator()` and `downsampleLTTB()` need `await initStages()` first. `input`: a URL,
 * Response, bytes or module of the `.wasm` (default: the file next to the glue). Same promise on
 * every call.
 */
export function initStages(input?: string | URL | Request | Response | BufferSource | WebAssembly.Module): Promise<void>;
/**
 * Event-time windows grouped by key; every added message comes back once (released, late or
 * invalid). In browsers, `await initStages()` before constructing one.
 */
export class WindowAggregator<T = unknown> {
  constructor(options: WindowOptions<T>);
  add(messages: StreamMessage<T> | StreamMessage<T>[]): WindowOutput<T>;
  advance(time: number): WindowOutput<T>;
  flush(): WindowOutput<T>;
  readonly stats: { taken: number; late: number; invalid: number; lateWindowMisses: number; results: number; released: number; held: number; openWindows: number; watermark: number };
  /** The messages held in open windows (added, not yet released). */
  heldMessages(): StreamMessage<T>[];
  free(): void;
}
/** A stage for `readable.pipeThrough(stage)`: messages (or arrays) in, arrays of window results out. */
export function createWindowStage<T = unknown>(options: WindowOptions<T> & { idleTimeout?: number }): {
  readable: ReadableStream<WindowResult[]>;
  writable: WritableStream<StreamMessage<T> | StreamMessage<T>[]>;
  /** `null` in a browser until the stages module has loaded (never in Node, nor after `await initStages()`). */
  readonly aggregator: WindowAggregator<T> | null;
  /** Zeros until the stages module has loaded. */
  readonly stats: WindowAggregator<T>['stats'];
};
export interface BucketStats { key: string; start: number; end: number; count: number; min: number; minTime: number; max: number; maxTime: number; last: number }
/** Min/max per time bucket and key, for charts. */
export function createDownsampleStage<T = unknown>(options: Omit<WindowOptions<T>, 'size' | 'slide' | 'allowedLateness' | 'lineage' | 'idOf'> & { bucketMs: number }): {
  readable: ReadableStream<StreamMessage<BucketStats>[]>;
  writable: WritableStream<StreamMessage<T> | StreamMessage<T>[]>;
  readonly stats: { taken: number; late: number; invalid: number };
};
/** Largest-Triangle-Three-Buckets: at most `threshold` of `items`, in order, keeping the shape. In browsers, `await initStages()` first. */
export function downsampleLTTB<I>(items: I[], threshold: number, options?: { x?: (item: I) => number; y?: (item: I) => number }): I[];
// ---- the gateway client (see also '@nodeflow/stream-engine/gateway') ------------------------

/** What the gateway does for a topic while the page is hidden. */
export type GatewayMode = 'live' | 'conflate' | 'pause';

/** A subscription's flow policy at the gateway (the engine connection serving this client). */
export interface GatewayPolicy {
  /** Messages held for this client at most (default 1000, capped by the gateway's maxBufferSize). */
  bufferSize?: number;
  /** Messages per data frame at most (default 100). */
  maxBatchSize?: number;
  /** ms a frame waits to fill up (default 10). */
  batchTimeout?: number;
  /** How this client is shed when it falls behind (default 'priority'; 'block' is refused). */
  dropPolicy?: 'priority' | 'oldest' | 'newest';
  /** Keep only the latest message per `metadata.key` while it waits. */
  conflate?: boolean;
  /** Use the adaptive handler with this latency target (ms) instead of a drop policy. */
  targetLatency?: number;
}

export interface GatewayTopicSpec {
  topic: string;
  policy?: GatewayPolicy;
  /** While the page is hidden (default: the client's `hidden`). */
  hidden?: GatewayMode;
  /** Config of the local engine connection the topic is written into. */
  connection?: ConnectionConfig;
  /** Resume from this seq on the first connect. */
  afterSeq?: string;
}

export interface GatewayClientOptions {
  topics?: (string | GatewayTopicSpec)[];
  /** The engine to write into (default: a new one, destroyed by `close()`). */
  engine?: StreamEngine;
  /** The WebSocket constructor (default globalThis.WebSocket; pass `ws`'s on Node < 22). */
  WebSocket?: unknown;
  protocols?: string | string[];
  /** Connection ids are `${sourceNodeId}:${topic}->${targetNodeId}:in` (defaults 'gateway', 'client'). */
  sourceNodeId?: string;
  targetNodeId?: string;
  /** Default config of the local connections (default `{ bufferSize: 1000, dropPolicy: 'priority' }`). */
  connection?: ConnectionConfig;
  /** Reconnect delays: the engine's retry formula (defaults retryDelay 250, maxRetryDelay 10000, jitter 0.5). */
  reconnect?: { retryDelay?: number; maxRetryDelay?: number; jitter?: number };
  /** Or any object with `getRetryDelay(attempt)`. */
  recovery?: { getRetryDelay(attempt: number): number };
  /** ms without any frame before the `stale` alert (default 2.5 heartbeats of the gateway). */
  staleTimeout?: number;
  /** Message ids remembered per topic for duplicate detection (default 10000). */
  dedupeWindow?: number;
  /** While the page is hidden (default 'conflate'). */
  hidden?: GatewayMode;
  /** The document whose visibility is watched (default globalThis.document; null: none). */
  document?: unknown;
}

export interface GatewayTopicMetrics {
  received: number;
  delivered: number;
  duplicates: number;
  gaps: number;
  reconnects: number;
  /** ms between the last message's timestamp and its arrival. */
  lag: number;
  /** Messages the gateway shed for this client (reported in its data frames). */
  droppedUpstream: number;
  refused: number;
  invalid: number;
  lastSeq?: string;
}

export class GatewayClient {
  readonly engine: StreamEngine;
  /** The gateway URL in use (or last tried). */
  readonly url: string;
  readonly state: 'connecting' | 'open' | 'reconnecting' | 'closed';
  /** Resolves once connected and every subscription is answered. */
  ready(): Promise<void>;
  subscribe(topic: string, spec?: Omit<GatewayTopicSpec, 'topic'>): string;
  unsubscribe(topic: string): void;
  connection<T = unknown>(topic: string): StreamConnection<T> | undefined;
  readable<T = unknown>(topic: string): ReadableStream<StreamMessage<T>[]> | undefined;
  publish(topic: string, messages: StreamMessage | StreamMessage[], ref?: string | number): boolean;
  metrics(): { state: string; url: string; connects: number; stale: boolean; hidden: boolean; topics: Record<string, GatewayTopicMetrics> };
  setHidden(hidden: boolean): void;
  close(): void;
}

/**
 * Where a gateway client connects: one URL; a non-empty list of gateways (each reconnect tries the
 * next one, so a client of a dead gateway resumes on another from its last seq); or a function
 * called with the attempt number (0, 1, ...) before each connection attempt.
 */
export type GatewayUrls = string | URL | readonly (string | URL)[] | ((attempt: number) => string | URL);
/** Connects to a gateway (browsers and Node) and writes each topic into an engine connection. */
export function connectGateway(url: GatewayUrls, options?: GatewayClientOptions): GatewayClient;
/** Whether this platform can transfer a ReadableStream through postMessage (not Safari). */
export function canTransferStreams(): boolean;
/** Any endpoint with postMessage: a Web Worker, its global scope, a MessagePort, a Node Worker or parentPort. */
export interface MessageEndpoint { postMessage(message: unknown, transfer?: unknown[]): void }
/** In the worker: answers the main thread's requests for `engine`. Returns a function that stops serving. */
export function serveEngine(engine: StreamEngine, options?: { port?: MessageEndpoint }): () => void;
export interface RemoteReadableOptions {
  /** At most one batch per animation frame of the reading thread. */
  frames?: boolean;
  /** With `frames`, in a hidden tab at most one batch per this many ms (default 1000). */
  hiddenInterval?: number;
}
/** The main thread's view of an engine running in a worker. */
export class RemoteEngine {
  private constructor();
  /** 'stream': transferred ReadableStreams; 'post': one postMessage per batch (Safari). */
  readonly transferMode: 'stream' | 'post';
  /** Moves the consuming side of connection `id` to this thread. */
  readable<T = unknown>(id: string, options?: RemoteReadableOptions): Promise<ReadableStream<StreamMessage<T>[]>>;
  events(options?: EventsOptions): Promise<ReadableStream<EngineEvent>>;
  getMetrics(id: string): Promise<ConnectionMetrics>;
  getMetrics(): Promise<EngineMetrics>;
  listConnections(): Promise<string[]>;
  /** Stops listening to the worker (terminate the worker yourself). */
  close(): void;
}
/** On the main thread: connects to an engine served with `serveEngine` in `worker`. */
export function connectEngine(worker: MessageEndpoint, options?: { transfer?: 'auto' | 'stream' | 'post' }): Promise<RemoteEngine>;

/** The engine's version. */
export const version: string;

/** Loads the WebAssembly module (browsers). A no-op in Node, where loading is synchronous. */
export default function init(input?: unknown): Promise<void>;
