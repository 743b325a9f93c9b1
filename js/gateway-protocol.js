// The wire protocol shared by the gateway and its client: JSON text frames, one object each, with
// an `op` field. Kept in one place so that both sides agree.
//
// client -> gateway
//   { op: 'subscribe', topic, afterSeq?, policy?, mode? }   policy: the subscription's flow options
//   { op: 'unsubscribe', topic }
//   { op: 'mode', topic?, mode: 'live' | 'conflate' | 'pause' }   (hidden tabs; no topic = all)
//   { op: 'publish', topic, messages: StreamMessage[] | StreamMessage, ref? }
//   { op: 'ping', t? }
//   { op: 'ack', frames }   data frames processed since the last ack; the first ack (frames: 0 is
//                           fine) switches on the gateway's ack window for this socket. Clients
//                           ack once a quarter of the window is processed, or 20 ms after a frame.
// gateway -> client
//   { op: 'welcome', v, heartbeat, maxPayload, ackWindow }
//   { op: 'subscribed', topic, seq? }          seq: the topic's newest seq at subscription time
//   { op: 'unsubscribed', topic }
//   { op: 'data', topic, seq?, dropped?, messages }   one frame per engine batch; seq of its last message
//   { op: 'gap', topic, afterSeq }             the history no longer reaches back to afterSeq
//   { op: 'published', topic, ref, seqs? }     only when the publish carried a ref
//   { op: 'hb', t }                            heartbeat, every `heartbeat` ms
//   { op: 'pong', t? }
//   { op: 'error', code, message, topic?, ref? }

/** Protocol version sent in `welcome`. */
export const PROTOCOL_VERSION = 1;

/** Error codes of `error` frames. */
export const ERROR_CODES = Object.freeze({
  MALFORMED: 'malformed',
  OVERSIZED: 'oversized',
  UNKNOWN_TOPIC: 'unknown-topic',
  UNKNOWN_OP: 'unknown-op',
  UNAUTHORIZED: 'unauthorized',
  BAD_REQUEST: 'bad-request',
});

/**
 * Close codes the gateway uses (4000-4999 is the range RFC 6455 leaves to applications).
 * - 1001 going away: the gateway is closing.
 * - 1009 message too big: a frame over the hard frame cap (4 x maxPayload); smaller oversized
 *   frames only get an `oversized` error frame.
 * - 1013 try again later: `maxClients` reached.
 * - 4008 too slow: the hard limit: the socket stayed busy (or a data frame unacknowledged)
 *   longer than `hardLimit.stallMs`, or
 *   more than `hardLimit.pendingMessages` messages were waiting for a subscription that could
 *   neither deliver nor drop them (critical messages are never dropped).
 * - 4000 idle: no pong or frame for `idleTimeout` ms (the socket is terminated, so a client
 *   usually sees 1006).
 */
export const CLOSE_CODES = Object.freeze({
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  IDLE: 4000,
  TOO_SLOW: 4008,
});

export const MODES = ['live', 'conflate', 'pause'];

/** Valid topic names: 1..200 characters, no control characters. */
export function topicError(topic) {
  if (typeof topic !== 'string') return `topic must be a string, got ${topic === null ? 'null' : Array.isArray(topic) ? 'array' : typeof topic}`;
  if (topic.length === 0 || topic.length > 200) return `topic must be 1..200 characters, got ${topic.length}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(topic)) return 'topic must not contain control characters';
  return null;
}
