// Compiled with `tsc --noEmit` by tests/js/types.test.mjs: the declarations cover the public API.
import init, {
  StreamEngine,
  DefaultBackpressureHandler,
  AdaptiveBackpressureHandler,
  GracefulErrorRecovery,
  StreamDebugger,
  PerformanceTestSuite,
  STANDARD_PERFORMANCE_TESTS,
  createDataSource,
  subscribeWidget,
  version,
  type StreamMessage,
  type ConnectionMetrics,
  type EngineEvent,
  type Alert,
} from '@nodeflow/stream-engine';

async function main(): Promise<void> {
  await init();
  const engine = new StreamEngine({ bufferSize: 100, metricsInterval: 500 });
  engine.setBackpressureHandler(new DefaultBackpressureHandler({ dropThreshold: 0.9 }));
  engine.setErrorRecovery(new GracefulErrorRecovery({ circuitBreaker: { failureThreshold: 3 } }));
  const id: string = engine.createConnection('a', 'b', 'out', 'in', {
    dropPolicy: 'priority',
    conflate: true,
    backpressureHandler: new AdaptiveBackpressureHandler({ targetLatency: 50 }),
    onDrop: (m: StreamMessage, reason) => console.log(m.id, reason),
  });
  const c = engine.getConnection<{ value: number }>(id);
  if (!c) return;
  await c.writer.write({ id: '1', timestamp: Date.now(), sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: { value: 1 }, metadata: { priority: 'high' } });
  const { value } = await c.readable.getReader().read();
  const first: number | undefined = value?.[0].data.value;
  const m: ConnectionMetrics = engine.getMetrics(id);
  const finished: boolean = m.state === 'finished' || c.state === 'finished';
  if (finished) console.log('final figures', m.messagesOut);
  const total: number = engine.getMetrics().totals.messagesIn + m.p95Latency + (first ?? 0);
  const n: number = engine.route([{ id: '2', timestamp: 0, sourceNodeId: 'a', targetNodeId: 'b', port: 'out', data: null }]);
  const reader = engine.events({ types: ['alert'] }).getReader();
  const ev: EngineEvent | undefined = (await reader.read()).value;
  if (ev?.type === 'alert') {
    const a: Alert = ev.alert;
    console.log(a.severity, total, n);
  }
  engine.metrics$.subscribe((map) => map.get(id)?.messagesOut);
  const dbg = new StreamDebugger(engine);
  dbg.startRecording();
  const data = dbg.exportDebugData();
  console.log(data.metadata.engineVersion, version);
  const suite = new PerformanceTestSuite(engine);
  await suite.runTest({ ...STANDARD_PERFORMANCE_TESTS[0], duration: 100 });
  const report: string = suite.generateReport();
  const src = createDataSource('sine-wave', { rate: 10, count: 5 });
  const stop = subscribeWidget(c.readable, { bufferSize: 10, updateInterval: 16 }, (u) => u.data.length);
  stop();
  await src.cancel();
  c.consume(async (batch) => void batch).stop();
  await engine.closeConnection(id);
  engine.destroy();
  console.log(report.length);
}
void main();

// Frame-aligned delivery and worker mode.
import { connectEngine, serveEngine, canTransferStreams, type RemoteEngine } from '@nodeflow/stream-engine';
async function workerMode(worker: Worker, engine: StreamEngine): Promise<void> {
  const stop: () => void = serveEngine(engine);
  stop();
  const remote: RemoteEngine = await connectEngine(worker, { transfer: canTransferStreams() ? 'auto' : 'post' });
  const mode: 'stream' | 'post' = remote.transferMode;
  const readable = await remote.readable<{ v: number }>('a:out->b:in', { frames: true, hiddenInterval: 500 });
  const { value } = await readable.getReader().read();
  const n: number | undefined = value?.[0]?.data.v;
  const m = await remote.getMetrics('a:out->b:in');
  const p95: number = m.p95Latency;
  const feed = await remote.events({ types: ['alert'] });
  feed.cancel();
  const conn = engine.getConnection('a:out->b:in');
  const frames: ReadableStream<unknown[]> | undefined = conn?.frames({ hiddenInterval: 1000 });
  console.log(mode, n, p95, frames, await remote.listConnections());
  remote.close();
}
void workerMode;
