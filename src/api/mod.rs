//! The Rust API (feature `futures`): a [`StreamEngine<T>`] whose connections are a
//! `futures::Sink<T>` for writes and a `futures::Stream<Item = Vec<T>>` of batches, with the
//! semantics of the JS `StreamEngine` (batching, lossless backpressure, drop policies and
//! handlers, conflation, accounting, metrics, the event feed). With the `web` feature on wasm32
//! a connection also converts into a `web_sys::WritableStream` / `ReadableStream` pair
//! (module `web`), so a Rust app can hand it to JavaScript.
//!
//! Every decision is the core's ([`crate::core`]); this module adds only what an async Rust
//! API needs: wakers, a timer ([`Timer`]), and handles.
//!
//! One concept per file:
//! - [`StreamEngine`] (`engine.rs`): connections, metrics, the feed.
//! - [`Connection`] (`connection.rs`), [`Sender`] (`sender.rs`), [`Batches`] (`batches.rs`).
//! - [`Connection::consume`], [`Consumer`], [`ConsumerHandle`], [`Batch`] (`consume.rs`): the
//!   engine calls an async handler, with retries, circuit breaker and dead letters.
//! - [`Event`], [`EventStream`] (`events.rs`).
//! - [`EngineConfig`], [`ConnectionOptions`], [`Handler`], [`DropPolicy`], [`DropHandler`]
//!   (`options.rs`).
//! - [`SendError`], [`TrySendError`], [`SinkError`] (`error.rs`).
//! - [`Timer`], `NativeTimer`, [`ManualTimer`], `WebTimer` (`timer.rs`).
//!
//! ```
//! use futures::{executor::block_on, SinkExt, StreamExt};
//! use stream_engine::api::{ConnectionOptions, DropPolicy, StreamEngine};
//! use stream_engine::core::connection::DropReason;
//! use std::sync::{Arc, Mutex};
//!
//! let engine = StreamEngine::<(u32, f64)>::new();
//! let dropped = Arc::new(Mutex::new(Vec::new()));
//! let log = dropped.clone();
//! let conn = engine
//!     .connect("feed->widget", ConnectionOptions::new()
//!         .buffer_size(3)
//!         .drop_policy(DropPolicy::Priority)
//!         .priority(|m: &(u32, f64)| m.1)
//!         .on_drop(move |m: (u32, f64), why| log.lock().unwrap().push((m.0, why))))
//!     .unwrap();
//! let (mut tx, mut rx) = conn.split();
//! block_on(async {
//!     for m in [(1, 0.75), (2, 0.25), (3, 1.0), (4, 0.5)] {
//!         tx.feed(m).await.unwrap(); // feed: don't wait for held writes
//!     }
//!     tx.close().await.unwrap();
//!     let mut got = Vec::new();
//!     while let Some(batch) = rx.next().await { got.extend(batch.into_iter().map(|m| m.0)); }
//!     assert_eq!(got, vec![1, 3, 4]);
//! });
//! assert_eq!(*dropped.lock().unwrap(), vec![(2, DropReason::Priority)]);
//! ```

mod batches;
mod connection;
mod consume;
mod engine;
mod error;
mod events;
mod options;
mod sender;
mod shared;
mod timer;
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub mod web;

pub use batches::Batches;
pub use connection::Connection;
pub use consume::{Batch, ConsumeOptions, Consumer, ConsumerHandle, Done};
pub use engine::StreamEngine;
pub use error::{SendError, SinkError, TrySendError};
pub use events::{ConnectionEventKind, Event, EventStream};
pub use options::{
    ConnectionOptions, DropFn, DropHandler, DropHandlerRef, DropPolicy, EngineConfig, Handler,
    KeyFn, MaybeSend, MaybeSendSync, PriorityFn,
};
pub use sender::Sender;
pub use timer::{DefaultTimer, ManualSleep, ManualTimer, Timer};
#[cfg(not(target_arch = "wasm32"))]
pub use timer::{NativeSleep, NativeTimer};
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub use timer::{WebSleep, WebTimer};
