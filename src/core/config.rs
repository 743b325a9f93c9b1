//! Validated configuration and the errors bad configuration produces.
//!
//! Validation lives here, not in the bindings, so the rules ("sizes are positive integers, times
//! are finite and >= 0, thresholds are in (0, 1]") are tested natively and stated once.

use std::fmt;

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
pub fn positive_int(field: &str, v: f64, max: f64) -> Result<usize, ConfigError> {
    if !v.is_finite() || v < 1.0 || v.fract() != 0.0 {
        return Err(ConfigError::range(format!(
            "{field} must be a positive integer, got {}",
            show(v)
        )));
    }
    if v > max {
        return Err(ConfigError::range(format!(
            "{field} must be at most {}, got {}",
            show(max),
            show(v)
        )));
    }
    Ok(v as usize)
}

/// Checks a count option that may be zero (retry attempts).
pub fn non_negative_int(field: &str, v: f64, max: f64) -> Result<u32, ConfigError> {
    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v > max {
        return Err(ConfigError::range(format!(
            "{field} must be an integer from 0 to {}, got {}",
            show(max),
            show(v)
        )));
    }
    Ok(v as u32)
}

/// Checks a time option in milliseconds: finite and >= 0.
pub fn time_ms(field: &str, v: f64) -> Result<f64, ConfigError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::range(format!(
            "{field} must be a finite number >= 0 (ms), got {}",
            show(v)
        )));
    }
    Ok(v)
}

/// Checks a fraction option in (0, 1].
pub fn fraction(field: &str, v: f64) -> Result<f64, ConfigError> {
    if !(v > 0.0 && v <= 1.0) {
        return Err(ConfigError::range(format!(
            "{field} must be in (0, 1], got {}",
            show(v)
        )));
    }
    Ok(v)
}

/// Largest buffer a connection may ask for; beyond it memory, not flow control, is the problem.
pub const MAX_BUFFER_SIZE: f64 = 10_000_000.0;

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
            c.max_batch_size = positive_int("maxBatchSize", v, MAX_BUFFER_SIZE)?;
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
}
