//! Errors of writes, each handing back what could not be written (as tokio's mpsc errors do).

use std::fmt;

/// A write refused because the connection is closed (closed by [`super::Connection::close`],
/// [`super::StreamEngine::close`], a sink's `close()`, or the reader went away). The message (or
/// the unwritten rest of a batch) is handed back, not dropped or counted.
///
/// ```
/// use futures::executor::block_on;
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// let engine = StreamEngine::<u32>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
/// let mut tx = conn.sender();
/// conn.close();
/// let err = block_on(tx.send(7)).unwrap_err();
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that was not written.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`super::Sender::try_send`] did not take a message; the message is handed back.
///
/// ```
/// use stream_engine::api::{ConnectionOptions, StreamEngine, TrySendError};
///
/// let engine = StreamEngine::<u32>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new().buffer_size(1)).unwrap();
/// let mut tx = conn.sender();
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2))); // lossless: nothing dropped
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// No room now under the lossless rule (or only critical messages buffered).
    Full(T),
    /// The connection is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not written.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("connection full"),
            TrySendError::Closed(_) => f.write_str("connection closed"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// The error of the [`futures_sink::Sink`] implementation of [`super::Sender`]: the connection
/// is closed. Holds the message when one was handed to the sink and not taken (`start_send`, or
/// a message the sink was still waiting to place); `None` when the sink found the connection
/// closed before being given a message (`poll_ready`, `poll_flush`).
///
/// ```
/// use futures::{executor::block_on, SinkExt};
/// use stream_engine::api::{ConnectionOptions, StreamEngine};
///
/// let engine = StreamEngine::<u32>::new();
/// let conn = engine.connect("a->b", ConnectionOptions::new()).unwrap();
/// let mut tx = conn.sender();
/// conn.close();
/// let err = block_on(tx.feed(1)).unwrap_err(); // poll_ready sees the close
/// assert_eq!(err.into_inner(), None);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SinkError<T>(pub Option<T>);

impl<T> SinkError<T> {
    /// The message that was not written, if the sink held one.
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<T> fmt::Debug for SinkError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SinkError({})",
            if self.0.is_some() { "Some(..)" } else { "None" }
        )
    }
}

impl<T> fmt::Display for SinkError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed")
    }
}

impl<T> std::error::Error for SinkError<T> {}
