//! The per-message rule of a user's own backpressure handler (the JS handler object with
//! `prioritizeMessage` / `shouldDropMessage`, the Rust API's `DropHandler`): its priorities go
//! through the connection's drop rule like any other, and a message it marks as a drop
//! candidate is dropped on arrival while the connection holds writes (backpressure under a
//! rule that holds), with reason `priority`. Its options resolve through
//! [`super::config::HandlerSpec::Custom`].

use super::connection::{Connection, DropReason};

/// The reason a candidate dropped on arrival is counted under.
pub const CANDIDATE_REASON: DropReason = DropReason::Priority;

/// Whether a message the handler marked as a candidate (`should_drop`) is dropped on arrival
/// now, instead of being offered: only while backpressure is on and the connection's rule
/// holds writes (as `js/connection.js` `_pushOne` decides from the core's `HOLD` status).
///
/// ```
/// use stream_engine::core::config::{HandlerSpec, StreamConfig};
/// use stream_engine::core::connection::{Connection, Push};
/// use stream_engine::core::custom::drops_on_arrival;
///
/// let policy = HandlerSpec::Custom { drop_threshold: None, max_wait: None }.resolve().unwrap();
/// let cfg = StreamConfig { buffer_size: 4, backpressure_threshold: 0.5, ..StreamConfig::default() };
/// let mut c: Connection<u32> = Connection::new("a", cfg, policy, 5000.0, false);
/// assert!(!drops_on_arrival(true, &c)); // no backpressure yet
/// for m in 0..2 {
///     assert!(matches!(c.push(m, 0.5, None, 0.0), Ok(Push::Done(_))));
/// }
/// assert!(drops_on_arrival(true, &c)); // 2 of 4: writes are held now
/// assert!(!drops_on_arrival(false, &c)); // not a candidate
/// ```
pub fn drops_on_arrival<T>(candidate: bool, c: &Connection<T>) -> bool {
    candidate && c.backpressure() && c.policy().max_wait.is_some()
}
