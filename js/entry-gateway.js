// Node entry of `@nodeflow/stream-engine/gateway`: the WebSocket gateway (needs the `ws` package).
export { createGateway, MemoryHistory, CLOSE_CODES, ERROR_CODES, PROTOCOL_VERSION } from './gateway.js';
export { connectGateway, GatewayClient } from './gateway-client.js';
