// What every part of a connection shares: the core's status bits (defined once, in Rust, as
// core::connection::Status and exported by wasm-bindgen, so there are no numbers to keep in
// step here), the clock and the error of a refused write.
import { Status, dropReasonNames } from '#wasm';

export const PENDING = Status.Pending;
export const HOLD = Status.Hold;
export const BATCH_READY = Status.BatchReady;
export const EVENTS = Status.Events;
export const DROPPED = Status.Dropped;
export const FIRST = Status.First;
export const DROP_SUMMARY = Status.DropSummary;
export const CLOSED = Status.Closed;
/** In takeIo's status only: nothing is left buffered. */
export const EMPTY = Status.Empty;
/** Bits that ask the engine to drain events or drop summaries. */
export const NOTIFY = EVENTS | DROP_SUMMARY;

/** Names of the core's drop-reason codes, from Rust, fetched on the first drop. */
let reasonNames = null;
export function reasonName(code) {
  if (reasonNames === null) reasonNames = dropReasonNames();
  return reasonNames[code];
}

export const now = () => performance.now();

export function closedError(id) {
  return new TypeError(`connection ${id} is closed: write refused`);
}
