// The public API, shared by the Node and web entry points.
export { StreamEngine } from './engine.js';
export { DefaultBackpressureHandler, AdaptiveBackpressureHandler } from './handlers.js';
export { DefaultErrorRecovery, GracefulErrorRecovery } from './recovery.js';
export { StreamDebugger } from './debugger.js';
export { PerformanceTestSuite, STANDARD_PERFORMANCE_TESTS } from './perf.js';
export { createDataSource } from './sources.js';
export { subscribeWidget } from './widget.js';
export { serveEngine, connectEngine, canTransferStreams, RemoteEngine } from './worker.js';
export { version } from './version.js';
export { WindowAggregator, createWindowStage, createDownsampleStage, downsampleLTTB, initStages } from './aggregate.js';
export { connectGateway, GatewayClient } from './gateway-client.js';
