//! Web Streams for JavaScript (feature `web`, wasm32 only): a connection of `JsValue` messages
//! converts into a `web_sys::WritableStream` and a `web_sys::ReadableStream` through the
//! `wasm-streams` crate, so a Rust app (Leptos, Yew, Dioxus, ...) can hand a connection to JS
//! widgets, or take writes from JS.
//!
//! - The `WritableStream` takes one message per chunk (any JS value, kept opaque: the reader
//!   gets the very same object). `writer.ready` / `write()` wait exactly as [`Sender`] does
//!   (lossless: until there is room; dropping rules: while a write is held). `close()` closes
//!   the connection; a write after the connection closed rejects with an `Error` and errors
//!   the stream. `abort()` only releases the writer (the connection stays open).
//! - The `ReadableStream`'s chunks are `Array`s of messages (one per batch, in write order);
//!   it closes after the last batch once the connection is closed. `cancel()` is the reader
//!   going away: buffered messages become dead letters.
//!
//! ```no_run
//! use stream_engine::api::{ConnectionOptions, StreamEngine};
//! use wasm_bindgen::JsValue;
//!
//! let engine = StreamEngine::<JsValue>::new();
//! let conn = engine.connect("rust->widget", ConnectionOptions::new()).unwrap();
//! let (writable, readable) = conn.into_web_streams();
//! // Hand `readable` to a JS widget (`for await (const batch of readable)`), keep `writable`
//! // or give it to a JS producer.
//! # let _ = (writable, readable);
//! ```

use futures_util::{SinkExt, StreamExt};
use js_sys::Array;
use wasm_bindgen::JsValue;

use super::{Batches, Connection, Sender, SinkError, Timer};

fn closed_error(_: SinkError<JsValue>) -> JsValue {
    js_sys::Error::new("connection closed").into()
}

impl<C: Timer> Sender<JsValue, C> {
    /// This sender as a `WritableStream` (see the [module docs](self)).
    pub fn into_writable_stream(self) -> web_sys::WritableStream {
        wasm_streams::WritableStream::from_sink(self.sink_map_err(closed_error)).into_raw()
    }
}

impl<C: Timer> Batches<JsValue, C> {
    /// The batches as a `ReadableStream` of `Array`s (see the [module docs](self)).
    pub fn into_readable_stream(self) -> web_sys::ReadableStream {
        let batches = self.map(|b| Ok(JsValue::from(b.into_iter().collect::<Array>())));
        wasm_streams::ReadableStream::from_stream(batches).into_raw()
    }
}

impl<C: Timer> Connection<JsValue, C> {
    /// The connection as a `(WritableStream, ReadableStream)` pair (see the
    /// [module docs](self)). For more writers, take [`Connection::sender`]s before converting.
    pub fn into_web_streams(self) -> (web_sys::WritableStream, web_sys::ReadableStream) {
        let (tx, rx) = self.split();
        (tx.into_writable_stream(), rx.into_readable_stream())
    }
}
