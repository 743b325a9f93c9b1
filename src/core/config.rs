//! Validated configuration and the errors bad configuration produces.
//!
//! Validation lives here, not in the bindings, so the rules ("sizes are positive integers, times
//! are finite and >= 0, thresholds are in (0, 1]") are tested natively and stated once.

use std::fmt;

use super::adaptive::AdaptiveConfig;
use super::connection::{DropRule, FlowPolicy};
use super::recovery::RetryPolicy;

/// What kind of JavaScript error a [`ConfigError`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wrong type (a string where a number belongs, a non-object message). Becomes `TypeError`.
    Type,
    /// Right type, value out of range (`-1`, `NaN`, `1.5` for a threshold). Becomes `RangeError`.
    Range,
    /// A valid request the current state refuses (duplicate id, write after close). Becomes `Error`.
    State,
}

/// An error that names the offending field, e.g. `bufferSize must be a positive integer, got -1`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Which JavaScript error class to raise.
    pub kind: ErrorKind,
    /// The full message, starting with the field name.
    pub message: String,
}

impl ConfigError {
    /// A `TypeError`-kind error.
    pub fn type_error(message: impl Into<String>) -> Self {
        ConfigError {
            kind: ErrorKind::Type,
            message: message.into(),
        }
    }
    /// A `RangeError`-kind error.
    pub fn range(message: impl Into<String>) -> Self {
        ConfigError {
            kind: ErrorKind::Range,
            message: message.into(),
        }
    }
    /// A plain `Error` for state conflicts.
    pub fn state(message: impl Into<String>) -> Self {
        ConfigError {
            kind: ErrorKind::State,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Formats a number the way JavaScript would print it in an error message (by hand: see
/// [`super::num`]).
fn show(v: f64) -> String {
    super::num::js(v)
}

/// Checks a size option: a positive integer no larger than `max`.
#[inline(never)] // one copy: each inlined one carries its error message (issue 12)
pub fn positive_int(field: &str, v: f64, max: f64) -> Result<usize, ConfigError> {
    if !v.is_finite() || v < 1.0 || v.fract() != 0.0 {
        return Err(ConfigError::range(
            [field, " must be a positive integer, got ", &show(v)].concat(),
        ));
    }
    if v > max {
        return Err(ConfigError::range(
            [field, " must be at most ", &show(max), ", got ", &show(v)].concat(),
        ));
    }
    Ok(v as usize)
}

/// Checks a count option that may be zero (retry attempts).
#[inline(never)] // one copy: each inlined one carries its error message (issue 12)
pub fn non_negative_int(field: &str, v: f64, max: f64) -> Result<u32, ConfigError> {
    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > max {
        return Err(ConfigError::range(
            [
                field,
                " must be an integer from 0 to ",
                &show(max),
                ", got ",
                &show(v),
            ]
            .concat(),
        ));
    }
    Ok(v as u32)
}

/// Checks a time option in milliseconds: finite and >= 0.
#[inline(never)] // one copy: each inlined one carries its error message (issue 12)
pub fn time_ms(field: &str, v: f64) -> Result<f64, ConfigError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::range(
            [field, " must be a finite number >= 0 (ms), got ", &show(v)].concat(),
        ));
    }
    Ok(v)
}

/// Checks a fraction option in (0, 1].
#[inline(never)] // one copy: each inlined one carries its error message (issue 12)
pub fn fraction(field: &str, v: f64) -> Result<f64, ConfigError> {
    if !(v > 0.0 && v <= 1.0) {
        return Err(ConfigError::range(
            [field, " must be in (0, 1], got ", &show(v)].concat(),
        ));
    }
    Ok(v)
}

/// Largest buffer a connection may ask for; beyond it memory, not flow control, is the problem.
pub const MAX_BUFFER_SIZE: f64 = 10_000_000.0;

/// Largest `maxBatchSize`. A delivered batch crosses into JS through an exchange area in wasm
/// memory sized by the batch, so an unbounded batch size (`1e7`) would let one option reserve
/// tens of megabytes; no UI needs batches this large in one delivery anyway.
pub const MAX_BATCH_SIZE: f64 = 100_000.0;

/// The per-connection settings of the old `StreamConfig`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamConfig {
    /// Maximum messages held (including an in-flight batch being consumed).
    pub buffer_size: usize,
    /// A batch is delivered at most this many ms after its first message was accepted.
    pub batch_timeout: f64,
    /// Maximum messages per batch.
    pub max_batch_size: usize,
    /// Buffer utilisation at which backpressure starts.
    pub backpressure_threshold: f64,
    /// Retries of a failing consumer.
    pub retry_attempts: u32,
    /// Base retry delay in ms.
    pub retry_delay: f64,
}

impl Default for StreamConfig {
    /// The documented defaults of the engine we replace.
    fn default() -> Self {
        StreamConfig {
            buffer_size: 1000,
            batch_timeout: 16.0,
            max_batch_size: 50,
            backpressure_threshold: 0.8,
            retry_attempts: 3,
            retry_delay: 100.0,
        }
    }
}

/// A partial `StreamConfig` as given by the user: every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamConfigPatch {
    /// See [`StreamConfig::buffer_size`].
    pub buffer_size: Option<f64>,
    /// See [`StreamConfig::batch_timeout`].
    pub batch_timeout: Option<f64>,
    /// See [`StreamConfig::max_batch_size`].
    pub max_batch_size: Option<f64>,
    /// See [`StreamConfig::backpressure_threshold`].
    pub backpressure_threshold: Option<f64>,
    /// See [`StreamConfig::retry_attempts`].
    pub retry_attempts: Option<f64>,
    /// See [`StreamConfig::retry_delay`].
    pub retry_delay: Option<f64>,
}

impl StreamConfig {
    /// Messages a delivered batch holds at most: `maxBatchSize`, but never more than the buffer
    /// can hold (so the exchange area for a delivery is bounded by both).
    ///
    /// ```
    /// use stream_engine::core::config::StreamConfig;
    /// let c = StreamConfig { buffer_size: 2, ..StreamConfig::default() };
    /// assert_eq!(c.batch_limit(), 2);
    /// ```
    pub fn batch_limit(&self) -> usize {
        self.max_batch_size.min(self.buffer_size).max(1)
    }

    /// Returns `self` with the patch applied, or the first invalid field's error.
    pub fn apply(&self, p: &StreamConfigPatch) -> Result<StreamConfig, ConfigError> {
        let mut c = *self;
        if let Some(v) = p.buffer_size {
            c.buffer_size = positive_int("bufferSize", v, MAX_BUFFER_SIZE)?;
        }
        if let Some(v) = p.batch_timeout {
            c.batch_timeout = time_ms("batchTimeout", v)?;
        }
        if let Some(v) = p.max_batch_size {
            c.max_batch_size = positive_int("maxBatchSize", v, MAX_BATCH_SIZE)?;
        }
        if let Some(v) = p.backpressure_threshold {
            c.backpressure_threshold = fraction("backpressureThreshold", v)?;
        }
        if let Some(v) = p.retry_attempts {
            c.retry_attempts = non_negative_int("retryAttempts", v, 1000.0)?;
        }
        if let Some(v) = p.retry_delay {
            c.retry_delay = time_ms("retryDelay", v)?;
        }
        Ok(c)
    }
}

/// The option names of the engine constructor's config object: the [`StreamConfig`] fields plus
/// the engine-only `metricsInterval` and `metricsWindow`. Any other key is refused.
pub const ENGINE_OPTIONS: &[&str] = &[
    "bufferSize",
    "batchTimeout",
    "maxBatchSize",
    "backpressureThreshold",
    "retryAttempts",
    "retryDelay",
    "metricsInterval",
    "metricsWindow",
];

/// The error for an options object with a key it does not know, e.g.
/// `config has an unknown option "bufferSzie"`. Every options object of the API (engine config,
/// connection config, thresholds, handler and recovery options, `events()`, `StreamDebugger`)
/// refuses unknown keys with this message, so a typo never silently becomes a default.
pub fn unknown_option(what: &str, key: &str) -> ConfigError {
    ConfigError::type_error([what, " has an unknown option \"", key, "\""].concat())
}

/// Checks every key of an options object against the names it accepts.
///
/// ```
/// use stream_engine::core::config::check_keys;
/// assert!(check_keys("config", ["bufferSize"], &["bufferSize"]).is_ok());
/// let e = check_keys("config", ["bufferSzie"], &["bufferSize"]).unwrap_err();
/// assert_eq!(e.message, "config has an unknown option \"bufferSzie\"");
/// ```
pub fn check_keys<'a>(
    what: &str,
    keys: impl IntoIterator<Item = &'a str>,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    for k in keys {
        if !allowed.contains(&k) {
            return Err(unknown_option(what, k));
        }
    }
    Ok(())
}

/// A backpressure handler's options as given by the user (every field optional), before
/// defaults and validation. [`HandlerSpec::resolve`] turns it into the connection's
/// [`FlowPolicy`]: the one place where handler defaults live and where "adaptive implies the
/// priority rule" is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HandlerSpec {
    /// `DefaultBackpressureHandler`.
    Default {
        /// Utilisation at which room is made (default 0.9).
        drop_threshold: Option<f64>,
        /// Drop the lowest priority (default) or, when `false`, the oldest.
        priority_drop: Option<bool>,
        /// Longest hold of a write under backpressure, ms (default 100).
        max_wait: Option<f64>,
    },
    /// `AdaptiveBackpressureHandler`.
    Adaptive {
        /// p95 latency goal, ms, > 0 (default 100).
        target_latency: Option<f64>,
        /// Highest effective drop threshold (default 0.9).
        max_threshold: Option<f64>,
        /// Lowest effective drop threshold (default 0.05), <= `max_threshold`.
        min_threshold: Option<f64>,
        /// Longest hold of a write, ms (default `min(10, targetLatency / 10)`: every ms held adds
        /// to the latency this handler bounds).
        max_wait: Option<f64>,
    },
    /// A user's own object with `prioritizeMessage` / `shouldDropMessage`; its optional numeric
    /// `dropThreshold` and `maxWaitTime` properties are honoured.
    Custom {
        /// Default 0.9.
        drop_threshold: Option<f64>,
        /// Default 100.
        max_wait: Option<f64>,
    },
}

/// Option names of [`HandlerSpec::Default`] in JS.
pub const DEFAULT_HANDLER_OPTIONS: &[&str] = &["dropThreshold", "priorityDrop", "maxWaitTime"];
/// Option names of [`HandlerSpec::Adaptive`] in JS.
pub const ADAPTIVE_HANDLER_OPTIONS: &[&str] = &[
    "targetLatency",
    "maxThreshold",
    "minThreshold",
    "maxWaitTime",
];

/// Default hold of a write under a fixed drop policy or the default handler, ms.
pub const DEFAULT_MAX_WAIT: f64 = 100.0;
/// Default drop threshold of the default handler and of custom handlers.
pub const DEFAULT_DROP_THRESHOLD: f64 = 0.9;

impl HandlerSpec {
    /// Validates the options, fills in the defaults and returns the flow policy they mean.
    ///
    /// ```
    /// use stream_engine::core::config::HandlerSpec;
    /// use stream_engine::core::connection::DropRule;
    /// let p = HandlerSpec::Adaptive { target_latency: Some(50.0), max_threshold: None, min_threshold: None, max_wait: None }
    ///     .resolve()
    ///     .unwrap();
    /// assert_eq!(p.rule, DropRule::Priority);
    /// assert_eq!(p.max_wait, Some(5.0));
    /// ```
    pub fn resolve(&self) -> Result<FlowPolicy, ConfigError> {
        let opt_time = |field: &str, v: Option<f64>, d: f64| v.map_or(Ok(d), |v| time_ms(field, v));
        let opt_frac =
            |field: &str, v: Option<f64>, d: f64| v.map_or(Ok(d), |v| fraction(field, v));
        match *self {
            HandlerSpec::Default {
                drop_threshold,
                priority_drop,
                max_wait,
            } => Ok(FlowPolicy {
                rule: if priority_drop.unwrap_or(true) {
                    DropRule::Priority
                } else {
                    DropRule::Oldest
                },
                drop_threshold: opt_frac("dropThreshold", drop_threshold, DEFAULT_DROP_THRESHOLD)?,
                max_wait: Some(opt_time("maxWaitTime", max_wait, DEFAULT_MAX_WAIT)?),
                adaptive: None,
                conflate: false,
            }),
            HandlerSpec::Custom {
                drop_threshold,
                max_wait,
            } => Ok(FlowPolicy {
                rule: DropRule::Priority,
                drop_threshold: opt_frac("dropThreshold", drop_threshold, DEFAULT_DROP_THRESHOLD)?,
                max_wait: Some(opt_time("maxWaitTime", max_wait, DEFAULT_MAX_WAIT)?),
                adaptive: None,
                conflate: false,
            }),
            HandlerSpec::Adaptive {
                target_latency,
                max_threshold,
                min_threshold,
                max_wait,
            } => {
                let d = AdaptiveConfig::default();
                let target = opt_time("targetLatency", target_latency, d.target_latency)?;
                if target <= 0.0 {
                    return Err(ConfigError::range(
                        ["targetLatency must be > 0 (ms), got ", &show(target)].concat(),
                    ));
                }
                let max_threshold = opt_frac("maxThreshold", max_threshold, d.max_threshold)?;
                let min_threshold = opt_frac("minThreshold", min_threshold, d.min_threshold)?;
                if min_threshold > max_threshold {
                    return Err(ConfigError::range(
                        [
                            "minThreshold must be <= maxThreshold, got ",
                            &show(min_threshold),
                            " > ",
                            &show(max_threshold),
                        ]
                        .concat(),
                    ));
                }
                let max_wait = opt_time(
                    "maxWaitTime",
                    max_wait,
                    AdaptiveConfig::default_max_wait(target),
                )?;
                Ok(FlowPolicy {
                    // The adaptive controller sheds the lowest priorities first.
                    rule: DropRule::Priority,
                    drop_threshold: max_threshold,
                    max_wait: Some(max_wait),
                    adaptive: Some(AdaptiveConfig {
                        target_latency: target,
                        max_threshold,
                        min_threshold,
                        max_wait,
                    }),
                    conflate: false,
                })
            }
        }
    }
}

/// The flow-control part of a connection's config, as given: `dropPolicy`, `maxWaitTime`,
/// `conflate`, and the handler in force (the connection's own or the engine's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PolicyRequest<'a> {
    /// `'block' | 'priority' | 'oldest' | 'newest'`; overrides any handler.
    pub drop_policy: Option<&'a str>,
    /// Hold of a write under a fixed drop policy (default 100 ms); ignored otherwise.
    pub max_wait_time: Option<f64>,
    /// Conflation by `metadata.key`, with any rule or handler.
    pub conflate: Option<bool>,
    /// The handler in force, if any.
    pub handler: Option<HandlerSpec>,
}

/// The message for a `dropPolicy` that is not one of the four names; `got` describes the value.
pub fn bad_drop_policy(got: &str) -> ConfigError {
    ConfigError::type_error(
        [
            "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got ",
            got,
        ]
        .concat(),
    )
}

impl PolicyRequest<'_> {
    /// Resolves the request into the connection's [`FlowPolicy`]: an explicit `dropPolicy`
    /// wins over a handler; without either the connection is lossless (`block`).
    ///
    /// ```
    /// use stream_engine::core::config::PolicyRequest;
    /// use stream_engine::core::connection::DropRule;
    /// let p = PolicyRequest { drop_policy: Some("oldest"), ..Default::default() }.resolve().unwrap();
    /// assert_eq!((p.rule, p.drop_threshold, p.max_wait), (DropRule::Oldest, 1.0, Some(100.0)));
    /// assert!(PolicyRequest { drop_policy: Some("random"), ..Default::default() }.resolve().is_err());
    /// ```
    pub fn resolve(&self) -> Result<FlowPolicy, ConfigError> {
        let mut p = match (self.drop_policy, self.handler) {
            (Some(name), _) => {
                let rule = match name {
                    "block" => DropRule::Block,
                    "priority" => DropRule::Priority,
                    "oldest" => DropRule::Oldest,
                    "newest" => DropRule::Newest,
                    other => return Err(bad_drop_policy(&["'", other, "'"].concat())),
                };
                if rule == DropRule::Block {
                    FlowPolicy::block()
                } else {
                    FlowPolicy {
                        rule,
                        drop_threshold: 1.0,
                        max_wait: Some(
                            self.max_wait_time
                                .map_or(Ok(DEFAULT_MAX_WAIT), |v| time_ms("maxWaitTime", v))?,
                        ),
                        adaptive: None,
                        conflate: false,
                    }
                }
            }
            (None, Some(h)) => h.resolve()?,
            (None, None) => FlowPolicy::block(),
        };
        if let Some(c) = self.conflate {
            p.conflate = c;
        }
        Ok(p)
    }
}

/// Consecutive consumer failures that open the circuit, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// How long an open circuit waits before a trial call, by default (ms).
pub const DEFAULT_RESET_TIMEOUT: f64 = 30_000.0;

/// Error recovery options as given (`DefaultErrorRecovery` in JS), every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecoveryPatch {
    /// Retries after the first attempt (integer 0..=1e6; default 3).
    pub retry_attempts: Option<f64>,
    /// Base retry delay, ms (default 100).
    pub retry_delay: Option<f64>,
    /// Cap of any delay, ms (default 30000).
    pub max_retry_delay: Option<f64>,
    /// Random extra fraction in [0, 1] (default 0.1).
    pub jitter: Option<f64>,
    /// `circuitBreaker.failureThreshold` (positive integer; default 5).
    pub failure_threshold: Option<f64>,
    /// `circuitBreaker.resetTimeout`, ms (default 30000).
    pub reset_timeout: Option<f64>,
}

/// Validated error recovery options: the retry policy and the circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryOptions {
    /// Retry count and back-off.
    pub retry: RetryPolicy,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// Open time before a trial call, ms.
    pub reset_timeout: f64,
}

impl RecoveryPatch {
    /// Validates and fills in the defaults ([`RetryPolicy::default`], [`DEFAULT_FAILURE_THRESHOLD`],
    /// [`DEFAULT_RESET_TIMEOUT`]).
    ///
    /// ```
    /// use stream_engine::core::config::RecoveryPatch;
    /// let r = RecoveryPatch { retry_delay: Some(5.0), ..Default::default() }.resolve().unwrap();
    /// assert_eq!((r.retry.retry_attempts, r.retry.retry_delay, r.failure_threshold), (3, 5.0, 5));
    /// ```
    pub fn resolve(&self) -> Result<RecoveryOptions, ConfigError> {
        let d = RetryPolicy::default();
        let time = |f: &str, v: Option<f64>, dflt: f64| v.map_or(Ok(dflt), |v| time_ms(f, v));
        let jitter = match self.jitter {
            None => d.jitter,
            Some(v) if (0.0..=1.0).contains(&v) => v,
            Some(v) => {
                return Err(ConfigError::range(
                    ["jitter must be in [0, 1], got ", &show(v)].concat(),
                ))
            }
        };
        Ok(RecoveryOptions {
            retry: RetryPolicy {
                retry_attempts: self.retry_attempts.map_or(Ok(d.retry_attempts), |v| {
                    non_negative_int("retryAttempts", v, 1e6)
                })?,
                retry_delay: time("retryDelay", self.retry_delay, d.retry_delay)?,
                max_retry_delay: time("maxRetryDelay", self.max_retry_delay, d.max_retry_delay)?,
                jitter,
            },
            failure_threshold: self
                .failure_threshold
                .map_or(Ok(DEFAULT_FAILURE_THRESHOLD), |v| {
                    positive_int("circuitBreaker.failureThreshold", v, 1e9).map(|x| x as u32)
                })?,
            reset_timeout: time(
                "circuitBreaker.resetTimeout",
                self.reset_timeout,
                DEFAULT_RESET_TIMEOUT,
            )?,
        })
    }
}

/// Resolves the error recovery of one connection from its layers, most specific last: the
/// connection config's `retry_attempts` / `retry_delay` (as the JS engine does when no error
/// recovery was set), then the engine's recovery options, then the connection's own. Every
/// field is validated by [`RecoveryPatch::resolve`] (the same rules and messages as JS
/// `new DefaultErrorRecovery(options)`), and the ones nobody gave take its defaults.
///
/// ```
/// use stream_engine::core::config::{RecoveryPatch, StreamConfig};
/// use stream_engine::core::config::resolve_recovery;
///
/// let engine = RecoveryPatch { retry_delay: Some(10.0), ..Default::default() };
/// let conn = RecoveryPatch { failure_threshold: Some(2.0), ..Default::default() };
/// let r = resolve_recovery(&StreamConfig::default(), &engine, &conn).unwrap();
/// assert_eq!((r.retry.retry_attempts, r.retry.retry_delay, r.failure_threshold), (3, 10.0, 2));
///
/// let bad = RecoveryPatch { jitter: Some(2.0), ..Default::default() };
/// let err = resolve_recovery(&StreamConfig::default(), &bad, &RecoveryPatch::default()).unwrap_err();
/// assert_eq!(err.message, "jitter must be in [0, 1], got 2");
/// ```
pub fn resolve_recovery(
    stream: &StreamConfig,
    engine: &RecoveryPatch,
    connection: &RecoveryPatch,
) -> Result<RecoveryOptions, ConfigError> {
    let base = RecoveryPatch {
        retry_attempts: Some(stream.retry_attempts as f64),
        retry_delay: Some(stream.retry_delay),
        ..RecoveryPatch::default()
    };
    overlay(&overlay(&base, engine), connection).resolve()
}

/// `top`'s fields where given, else `base`'s.
fn overlay(base: &RecoveryPatch, top: &RecoveryPatch) -> RecoveryPatch {
    RecoveryPatch {
        retry_attempts: top.retry_attempts.or(base.retry_attempts),
        retry_delay: top.retry_delay.or(base.retry_delay),
        max_retry_delay: top.max_retry_delay.or(base.max_retry_delay),
        jitter: top.jitter.or(base.jitter),
        failure_threshold: top.failure_threshold.or(base.failure_threshold),
        reset_timeout: top.reset_timeout.or(base.reset_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_api() {
        let c = StreamConfig::default();
        assert_eq!(c.buffer_size, 1000);
        assert_eq!(c.batch_timeout, 16.0);
        assert_eq!(c.max_batch_size, 50);
        assert_eq!(c.backpressure_threshold, 0.8);
        assert_eq!(c.retry_attempts, 3);
        assert_eq!(c.retry_delay, 100.0);
    }

    #[test]
    fn patch_overrides_only_given_fields() {
        let p = StreamConfigPatch {
            buffer_size: Some(10.0),
            batch_timeout: Some(0.0),
            ..Default::default()
        };
        let c = StreamConfig::default().apply(&p).unwrap();
        assert_eq!(c.buffer_size, 10);
        assert_eq!(c.batch_timeout, 0.0);
        assert_eq!(c.max_batch_size, 50);
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let bad = |p: StreamConfigPatch| StreamConfig::default().apply(&p).unwrap_err();
        let e = bad(StreamConfigPatch {
            buffer_size: Some(-1.0),
            ..Default::default()
        });
        assert_eq!(e.kind, ErrorKind::Range);
        assert_eq!(e.message, "bufferSize must be a positive integer, got -1");
        let e = bad(StreamConfigPatch {
            buffer_size: Some(2.5),
            ..Default::default()
        });
        assert!(e.message.contains("bufferSize") && e.message.contains("2.5"));
        let e = bad(StreamConfigPatch {
            batch_timeout: Some(f64::NAN),
            ..Default::default()
        });
        assert!(e.message.starts_with("batchTimeout") && e.message.ends_with("NaN"));
        let e = bad(StreamConfigPatch {
            backpressure_threshold: Some(0.0),
            ..Default::default()
        });
        assert!(e
            .message
            .starts_with("backpressureThreshold must be in (0, 1]"));
        let e = bad(StreamConfigPatch {
            backpressure_threshold: Some(1.5),
            ..Default::default()
        });
        assert!(e.message.contains("1.5"));
        let e = bad(StreamConfigPatch {
            retry_attempts: Some(-2.0),
            ..Default::default()
        });
        assert!(e.message.starts_with("retryAttempts"));
        let e = bad(StreamConfigPatch {
            retry_delay: Some(f64::INFINITY),
            ..Default::default()
        });
        assert!(e.message.ends_with("Infinity"));
        let e = bad(StreamConfigPatch {
            max_batch_size: Some(0.0),
            ..Default::default()
        });
        assert!(e.message.starts_with("maxBatchSize"));
    }

    #[test]
    fn threshold_of_one_is_allowed() {
        let p = StreamConfigPatch {
            backpressure_threshold: Some(1.0),
            ..Default::default()
        };
        assert_eq!(
            StreamConfig::default()
                .apply(&p)
                .unwrap()
                .backpressure_threshold,
            1.0
        );
    }

    #[test]
    fn max_batch_size_is_bounded_and_batches_fit_the_buffer() {
        let e = StreamConfig::default()
            .apply(&StreamConfigPatch {
                max_batch_size: Some(1e7),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Range);
        assert_eq!(
            e.message,
            "maxBatchSize must be at most 100000, got 10000000"
        );
        let c = StreamConfig::default()
            .apply(&StreamConfigPatch {
                max_batch_size: Some(MAX_BATCH_SIZE),
                buffer_size: Some(10.0),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c.batch_limit(), 10);
    }

    #[test]
    fn unknown_keys_are_named() {
        assert!(check_keys("config", ENGINE_OPTIONS.iter().copied(), ENGINE_OPTIONS).is_ok());
        let e = check_keys("thresholds", ["latency", "latncy"], &["latency"]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Type);
        assert_eq!(e.message, "thresholds has an unknown option \"latncy\"");
    }

    fn adaptive(target: Option<f64>, wait: Option<f64>) -> HandlerSpec {
        HandlerSpec::Adaptive {
            target_latency: target,
            max_threshold: None,
            min_threshold: None,
            max_wait: wait,
        }
    }

    #[test]
    fn handler_defaults_are_decided_here() {
        let p = HandlerSpec::Default {
            drop_threshold: None,
            priority_drop: None,
            max_wait: None,
        }
        .resolve()
        .unwrap();
        assert_eq!(
            (p.rule, p.drop_threshold, p.max_wait, p.adaptive),
            (DropRule::Priority, 0.9, Some(100.0), None)
        );
        let p = HandlerSpec::Default {
            drop_threshold: Some(0.5),
            priority_drop: Some(false),
            max_wait: Some(3.0),
        }
        .resolve()
        .unwrap();
        assert_eq!(
            (p.rule, p.drop_threshold, p.max_wait),
            (DropRule::Oldest, 0.5, Some(3.0))
        );
        // The adaptive hold defaults to min(10, targetLatency / 10), and adaptive means the
        // priority rule.
        for (target, wait) in [(None, 10.0), (Some(50.0), 5.0), (Some(1000.0), 10.0)] {
            let p = adaptive(target, None).resolve().unwrap();
            assert_eq!(p.max_wait, Some(wait));
            assert_eq!(p.adaptive.unwrap().max_wait, wait);
            assert_eq!(p.rule, DropRule::Priority);
        }
        assert_eq!(
            adaptive(Some(50.0), Some(0.0)).resolve().unwrap().max_wait,
            Some(0.0)
        );
        let p = HandlerSpec::Custom {
            drop_threshold: None,
            max_wait: None,
        }
        .resolve()
        .unwrap();
        assert_eq!(
            (p.rule, p.drop_threshold, p.max_wait),
            (DropRule::Priority, 0.9, Some(100.0))
        );
    }

    #[test]
    fn handler_options_are_validated_here() {
        let e = adaptive(Some(0.0), None).resolve().unwrap_err();
        assert_eq!(e.message, "targetLatency must be > 0 (ms), got 0");
        let e = HandlerSpec::Adaptive {
            target_latency: None,
            max_threshold: Some(0.4),
            min_threshold: Some(0.5),
            max_wait: None,
        }
        .resolve()
        .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::Range,
                "minThreshold must be <= maxThreshold, got 0.5 > 0.4"
            )
        );
        let e = HandlerSpec::Custom {
            drop_threshold: Some(2.0),
            max_wait: None,
        }
        .resolve()
        .unwrap_err();
        assert!(e.message.starts_with("dropThreshold"));
        let e = adaptive(None, Some(-1.0)).resolve().unwrap_err();
        assert!(e.message.starts_with("maxWaitTime"));
    }

    #[test]
    fn drop_policy_wins_over_handler_and_conflation_applies_to_all() {
        let h = Some(adaptive(None, None));
        let p = PolicyRequest {
            drop_policy: Some("newest"),
            max_wait_time: Some(7.0),
            conflate: Some(true),
            handler: h,
        }
        .resolve()
        .unwrap();
        assert_eq!(
            (p.rule, p.max_wait, p.conflate, p.adaptive),
            (DropRule::Newest, Some(7.0), true, None)
        );
        let p = PolicyRequest {
            drop_policy: Some("block"),
            max_wait_time: Some(7.0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(p, FlowPolicy::block());
        let p = PolicyRequest {
            conflate: Some(true),
            handler: Some(HandlerSpec::Custom {
                drop_threshold: None,
                max_wait: None,
            }),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(p.conflate, "a custom handler keeps conflation");
        assert_eq!(
            PolicyRequest::default().resolve().unwrap(),
            FlowPolicy::block()
        );
        let e = PolicyRequest {
            drop_policy: Some("random"),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert_eq!(
            e.message,
            "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got 'random'"
        );
    }

    #[test]
    fn recovery_defaults_and_validation_live_here() {
        let r = RecoveryPatch::default().resolve().unwrap();
        assert_eq!(r.retry, RetryPolicy::default());
        assert_eq!((r.failure_threshold, r.reset_timeout), (5, 30_000.0));
        let bad = |p: RecoveryPatch| p.resolve().unwrap_err().message;
        assert!(bad(RecoveryPatch {
            jitter: Some(2.0),
            ..Default::default()
        })
        .starts_with("jitter must be in [0, 1]"));
        assert!(bad(RecoveryPatch {
            retry_attempts: Some(-1.0),
            ..Default::default()
        })
        .starts_with("retryAttempts"));
        assert!(bad(RecoveryPatch {
            failure_threshold: Some(0.0),
            ..Default::default()
        })
        .starts_with("circuitBreaker.failureThreshold"));
        assert!(bad(RecoveryPatch {
            reset_timeout: Some(f64::NAN),
            ..Default::default()
        })
        .starts_with("circuitBreaker.resetTimeout"));
    }

    #[test]
    fn recovery_layers_connection_over_engine_over_stream_config() {
        let stream = StreamConfig {
            retry_attempts: 7,
            retry_delay: 3.0,
            ..StreamConfig::default()
        };
        let none = RecoveryPatch::default();
        let r = resolve_recovery(&stream, &none, &none).unwrap();
        assert_eq!((r.retry.retry_attempts, r.retry.retry_delay), (7, 3.0));
        let eng = RecoveryPatch {
            retry_attempts: Some(1.0),
            jitter: Some(0.5),
            ..none
        };
        let conn = RecoveryPatch {
            jitter: Some(0.0),
            ..none
        };
        let r = resolve_recovery(&stream, &eng, &conn).unwrap();
        assert_eq!(
            (r.retry.retry_attempts, r.retry.retry_delay, r.retry.jitter),
            (1, 3.0, 0.0)
        );
    }
}
