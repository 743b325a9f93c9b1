// Node entry of `@nodeflow/stream-engine/gateway`: the WebSocket gateway (needs the `ws` package).
// It shares the main entry's chunk (scripts/bundle.mjs), so its engines are the package's.
import { initNode } from './node-platform.js';

initNode();

export { createGateway, MemoryHistory, CLOSE_CODES, ERROR_CODES, PROTOCOL_VERSION } from './gateway.js';
export { connectGateway, GatewayClient } from './gateway-client.js';
