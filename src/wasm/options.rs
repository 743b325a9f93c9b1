//! Reading option objects from JavaScript, with errors that name the field.
//!
//! Options are read once per `createConnection` or `setThresholds` call, so plain
//! `Reflect::get` is fine here; the per-message path never comes through this file.

use js_sys::{Object, RangeError, Reflect, TypeError};
use wasm_bindgen::prelude::*;

use crate::core::adaptive::AdaptiveConfig;
use crate::core::alerts::{Level, Thresholds};
use crate::core::config::{self, StreamConfigPatch};
use crate::core::connection::{DropRule, FlowPolicy};
use crate::core::num::js;

use super::to_js_error;

fn type_name(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if Array::is_array(v) {
        "array".into()
    } else {
        v.js_typeof()
            .as_string()
            .unwrap_or_else(|| "unknown".into())
    }
}

use js_sys::Array;

/// Reads `obj[field]` as an optional number: `undefined` is `None`, anything but a number is a
/// `TypeError` naming the field.
pub fn read_number(obj: &JsValue, field: &str) -> Result<Option<f64>, JsValue> {
    read_number_as(obj, field, field)
}

/// [`read_number`] with the field named `label` in errors (for nested options).
fn read_number_as(obj: &JsValue, field: &str, label: &str) -> Result<Option<f64>, JsValue> {
    let v = Reflect::get(obj, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) => Ok(Some(n)),
        None => {
            Err(TypeError::new(&format!("{label} must be a number, got {}", type_name(&v))).into())
        }
    }
}

fn check_object(obj: &JsValue, what: &str) -> Result<bool, JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(false);
    }
    if !obj.is_object() || Array::is_array(obj) {
        return Err(
            TypeError::new(&format!("{what} must be an object, got {}", type_name(obj))).into(),
        );
    }
    Ok(true)
}

/// Reads the `StreamConfig` fields of an options object (missing object: empty patch).
pub fn read_stream_patch(obj: &JsValue, what: &str) -> Result<StreamConfigPatch, JsValue> {
    if !check_object(obj, what)? {
        return Ok(StreamConfigPatch::default());
    }
    Ok(StreamConfigPatch {
        buffer_size: read_number(obj, "bufferSize")?,
        batch_timeout: read_number(obj, "batchTimeout")?,
        max_batch_size: read_number(obj, "maxBatchSize")?,
        backpressure_threshold: read_number(obj, "backpressureThreshold")?,
        retry_attempts: read_number(obj, "retryAttempts")?,
        retry_delay: read_number(obj, "retryDelay")?,
    })
}

/// Reads a time option (ms, finite, >= 0) with a default.
pub fn read_time(obj: &JsValue, field: &str, default: f64) -> Result<f64, JsValue> {
    if !check_object(obj, "config")? {
        return Ok(default);
    }
    match read_number(obj, field)? {
        Some(v) => config::time_ms(field, v).map_err(|e| to_js_error(&e)),
        None => Ok(default),
    }
}

/// Reads the flow policy the JS glue resolved: `{ rule, dropThreshold, maxWait, adaptive,
/// conflate }`.
pub fn read_flow_policy(obj: &JsValue) -> Result<FlowPolicy, JsValue> {
    let mut p = FlowPolicy::block();
    if !check_object(obj, "policy")? {
        return Ok(p);
    }
    let rule = Reflect::get(obj, &"rule".into()).unwrap_or(JsValue::UNDEFINED);
    if !rule.is_undefined() {
        p.rule = match rule.as_string().as_deref() {
            Some("block") => DropRule::Block,
            Some("priority") => DropRule::Priority,
            Some("oldest") => DropRule::Oldest,
            Some("newest") => DropRule::Newest,
            _ => {
                return Err(TypeError::new(&format!(
                    "dropPolicy must be one of 'priority', 'oldest', 'newest', 'block', got {}",
                    rule.as_string()
                        .map_or_else(|| type_name(&rule), |s| format!("'{s}'"))
                ))
                .into())
            }
        };
    }
    if let Some(v) = read_number(obj, "dropThreshold")? {
        p.drop_threshold = config::fraction("dropThreshold", v).map_err(|e| to_js_error(&e))?;
    }
    if let Some(v) = read_number(obj, "maxWait")? {
        p.max_wait = Some(config::time_ms("maxWaitTime", v).map_err(|e| to_js_error(&e))?);
    }
    let conflate = Reflect::get(obj, &"conflate".into()).unwrap_or(JsValue::UNDEFINED);
    if !conflate.is_undefined() {
        p.conflate = conflate.as_bool().ok_or_else(|| {
            JsValue::from(TypeError::new(&format!(
                "conflate must be a boolean, got {}",
                type_name(&conflate)
            )))
        })?;
    }
    let adaptive = Reflect::get(obj, &"adaptive".into()).unwrap_or(JsValue::UNDEFINED);
    if check_object(&adaptive, "adaptive")? {
        let mut a = AdaptiveConfig::default();
        if let Some(v) = read_number(&adaptive, "targetLatency")? {
            a.target_latency = config::time_ms("targetLatency", v).map_err(|e| to_js_error(&e))?;
            if a.target_latency <= 0.0 {
                return Err(RangeError::new("targetLatency must be > 0 (ms), got 0").into());
            }
        }
        if let Some(v) = read_number(&adaptive, "maxThreshold")? {
            a.max_threshold = config::fraction("maxThreshold", v).map_err(|e| to_js_error(&e))?;
        }
        if let Some(v) = read_number(&adaptive, "minThreshold")? {
            a.min_threshold = config::fraction("minThreshold", v).map_err(|e| to_js_error(&e))?;
        }
        if a.min_threshold > a.max_threshold {
            return Err(RangeError::new(&format!(
                "minThreshold must be <= maxThreshold, got {} > {}",
                js(a.min_threshold),
                js(a.max_threshold)
            ))
            .into());
        }
        if let Some(v) = read_number(&adaptive, "maxWaitTime")? {
            a.max_wait = config::time_ms("maxWaitTime", v).map_err(|e| to_js_error(&e))?;
        }
        p.rule = DropRule::Priority;
        p.max_wait = Some(a.max_wait);
        p.adaptive = Some(a);
    }
    Ok(p)
}

fn read_level(
    obj: &JsValue,
    name: &str,
    mut level: Level,
    fraction: bool,
) -> Result<Level, JsValue> {
    let v = Reflect::get(obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
    if !check_object(&v, name)? {
        return Ok(level);
    }
    for (field, slot) in [
        ("warning", &mut level.warning),
        ("critical", &mut level.critical),
    ] {
        let full = format!("{name}.{field}");
        if let Some(x) = read_number_as(&v, field, &full)? {
            let ok = x.is_finite() && x >= 0.0 && (!fraction || x <= 1.0);
            if !ok {
                let range = if fraction {
                    "in [0, 1]"
                } else {
                    "a finite number >= 0"
                };
                return Err(
                    RangeError::new(&format!("{full} must be {range}, got {}", js(x))).into(),
                );
            }
            *slot = x;
        }
    }
    if level.warning > level.critical {
        return Err(RangeError::new(&format!(
            "{name}.warning must be <= {name}.critical, got {} > {}",
            js(level.warning),
            js(level.critical)
        ))
        .into());
    }
    Ok(level)
}

/// Applies a partial thresholds object in the old shape
/// (`{ latency: { warning, critical }, errorRate, backpressure, memory, dropRate: { warning } }`).
pub fn read_thresholds(obj: &JsValue, base: Thresholds) -> Result<Thresholds, JsValue> {
    if !check_object(obj, "thresholds")? {
        return Ok(base);
    }
    let mut t = base;
    t.latency = read_level(obj, "latency", t.latency, false)?;
    t.error_rate = read_level(obj, "errorRate", t.error_rate, true)?;
    t.backpressure = read_level(obj, "backpressure", t.backpressure, true)?;
    t.memory = read_level(obj, "memory", t.memory, true)?;
    let d = Reflect::get(obj, &"dropRate".into()).unwrap_or(JsValue::UNDEFINED);
    if check_object(&d, "dropRate")? {
        if let Some(x) = read_number_as(&d, "warning", "dropRate.warning")? {
            if !(0.0..=1.0).contains(&x) {
                return Err(RangeError::new(&format!(
                    "dropRate.warning must be in [0, 1], got {}",
                    js(x)
                ))
                .into());
            }
            t.drop_rate_warning = x;
        }
    }
    Ok(t)
}

fn level_to_js(l: Level) -> Object {
    let o = Object::new();
    let _ = Reflect::set(&o, &"warning".into(), &l.warning.into());
    let _ = Reflect::set(&o, &"critical".into(), &l.critical.into());
    o
}

/// Thresholds in the old shape.
pub fn thresholds_to_js(t: &Thresholds) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"latency".into(), &level_to_js(t.latency));
    let _ = Reflect::set(&o, &"errorRate".into(), &level_to_js(t.error_rate));
    let _ = Reflect::set(&o, &"backpressure".into(), &level_to_js(t.backpressure));
    let _ = Reflect::set(&o, &"memory".into(), &level_to_js(t.memory));
    let d = Object::new();
    let _ = Reflect::set(&d, &"warning".into(), &t.drop_rate_warning.into());
    let _ = Reflect::set(&o, &"dropRate".into(), &d);
    o.into()
}

/// See [`super::validate_option`].
pub fn validate(kind: &str, field: &str, value: &JsValue) -> Result<f64, JsValue> {
    let Some(v) = value.as_f64() else {
        return Err(TypeError::new(&format!(
            "{field} must be a number, got {}",
            type_name(value)
        ))
        .into());
    };
    let r = match kind {
        "fraction" => config::fraction(field, v),
        "time" => config::time_ms(field, v),
        "positiveInt" => config::positive_int(field, v, 1e9).map(|x| x as f64),
        "count" => config::non_negative_int(field, v, 1e6).map(|x| x as f64),
        "number01" => {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(config::ConfigError::range(format!(
                    "{field} must be in [0, 1], got {}",
                    js(v)
                )))
            }
        }
        _ => Err(config::ConfigError::type_error(format!(
            "unknown option kind {kind}"
        ))),
    };
    r.map_err(|e| to_js_error(&e))
}
