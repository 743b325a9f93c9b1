//! Reading option objects from JavaScript, with errors that name the field.
//!
//! Options are read once per `createConnection` or `setThresholds` call, so plain
//! `Reflect::get` is fine here; the per-message path never comes through this file.

use js_sys::{Object, RangeError, Reflect, TypeError};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::core::alerts::{Level, Thresholds};
use crate::core::config::{self, HandlerSpec, PolicyRequest, StreamConfigPatch};
use crate::core::connection::{DropRule, FlowPolicy};
use crate::core::num::js;

use crate::jsval::{get, read_number, read_number_as, to_js_error, type_name};

use js_sys::Array;

/// Refuses keys of `obj` outside `allowed` (see [`config::check_keys`]).
pub fn check_keys(obj: &JsValue, allowed: &[&str], what: &str) -> Result<(), JsValue> {
    let Some(o) = obj.dyn_ref::<Object>() else {
        return Ok(());
    };
    let keys: Vec<String> = Object::keys(o)
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    config::check_keys(what, keys.iter().map(String::as_str), allowed).map_err(|e| to_js_error(&e))
}

/// Reads `obj[field]` as an optional boolean.
fn read_bool(obj: &JsValue, field: &str) -> Result<Option<bool>, JsValue> {
    let v = get(obj, field)?;
    if v.is_undefined() {
        return Ok(None);
    }
    v.as_bool().map(Some).ok_or_else(|| {
        TypeError::new(&[field, " must be a boolean, got ", &type_name(&v)].concat()).into()
    })
}

fn check_object(obj: &JsValue, what: &str) -> Result<bool, JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(false);
    }
    if !obj.is_object() || Array::is_array(obj) {
        return Err(
            TypeError::new(&[what, " must be an object, got ", &type_name(obj)].concat()).into(),
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

/// Reads a handler description as the JS glue passes it: `{ kind: 'default' | 'adaptive' |
/// 'custom', ...options }` (a built-in handler's options, or a custom object's optional
/// `dropThreshold` / `maxWaitTime`). Only built-in handlers' options are checked for unknown keys:
/// a custom handler is the user's own object with methods of its own.
pub fn read_handler_spec(obj: &JsValue) -> Result<Option<HandlerSpec>, JsValue> {
    if !check_object(obj, "handler")? {
        return Ok(None);
    }
    let kind = get(obj, "kind")?.as_string().unwrap_or_default();
    read_handler_options(&kind, obj).map(Some)
}

/// Reads the user's options of a handler of `kind` (`default`, `adaptive` or `custom`).
pub fn read_handler_options(kind: &str, obj: &JsValue) -> Result<HandlerSpec, JsValue> {
    let what = match kind {
        "default" => "DefaultBackpressureHandler options",
        "adaptive" => "AdaptiveBackpressureHandler options",
        _ => "backpressureHandler",
    };
    let present = check_object(obj, what)?;
    let num = |f: &str| {
        if present {
            read_number(obj, f)
        } else {
            Ok(None)
        }
    };
    match kind {
        "default" => {
            if present {
                let mut allowed = config::DEFAULT_HANDLER_OPTIONS.to_vec();
                allowed.push("kind");
                check_keys(obj, &allowed, what)?;
            }
            Ok(HandlerSpec::Default {
                drop_threshold: num("dropThreshold")?,
                priority_drop: if present {
                    read_bool(obj, "priorityDrop")?
                } else {
                    None
                },
                max_wait: num("maxWaitTime")?,
            })
        }
        "adaptive" => {
            if present {
                let mut allowed = config::ADAPTIVE_HANDLER_OPTIONS.to_vec();
                allowed.push("kind");
                check_keys(obj, &allowed, what)?;
            }
            Ok(HandlerSpec::Adaptive {
                target_latency: num("targetLatency")?,
                max_threshold: num("maxThreshold")?,
                min_threshold: num("minThreshold")?,
                max_wait: num("maxWaitTime")?,
            })
        }
        "custom" => Ok(HandlerSpec::Custom {
            drop_threshold: num("dropThreshold")?,
            max_wait: num("maxWaitTime")?,
        }),
        _ => Err(TypeError::new(&["unknown handler kind '", kind, "'"].concat()).into()),
    }
}

/// The options of a resolved handler policy, in the JS shape of `handler.options`.
pub fn handler_options_to_js(kind: &str, p: &FlowPolicy) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&o, &JsValue::from_str(k), &v);
    };
    let wait = p.max_wait.unwrap_or(0.0);
    match (kind, p.adaptive) {
        (_, Some(a)) => {
            set("targetLatency", a.target_latency.into());
            set("maxThreshold", a.max_threshold.into());
            set("minThreshold", a.min_threshold.into());
            set("maxWaitTime", a.max_wait.into());
        }
        ("default", None) => {
            set("dropThreshold", p.drop_threshold.into());
            set("priorityDrop", (p.rule == DropRule::Priority).into());
            set("maxWaitTime", wait.into());
        }
        _ => {
            set("dropThreshold", p.drop_threshold.into());
            set("maxWaitTime", wait.into());
        }
    }
    o.into()
}

/// Reads a connection config's flow options (`dropPolicy`, `maxWaitTime`, `conflate`) and the
/// handler in force, and resolves them in the core ([`PolicyRequest::resolve`]).
pub fn read_flow_policy(config: &JsValue, handler: &JsValue) -> Result<FlowPolicy, JsValue> {
    let handler = read_handler_spec(handler)?;
    let (mut rule, mut max_wait_time, mut conflate) = (None, None, None);
    if check_object(config, "config")? {
        let v = get(config, "dropPolicy")?;
        if !v.is_undefined() {
            let name = v
                .as_string()
                .ok_or_else(|| to_js_error(&config::bad_drop_policy(&type_name(&v))))?;
            rule = Some(name);
        }
        max_wait_time = read_number(config, "maxWaitTime")?;
        conflate = read_bool(config, "conflate")?;
    }
    PolicyRequest {
        drop_policy: rule.as_deref(),
        max_wait_time,
        conflate,
        handler,
    }
    .resolve()
    .map_err(|e| to_js_error(&e))
}

fn read_level(
    obj: &JsValue,
    name: &str,
    mut level: Level,
    fraction: bool,
) -> Result<Level, JsValue> {
    let v = get(obj, name)?;
    if !check_object(&v, name)? {
        return Ok(level);
    }
    check_keys(&v, &["warning", "critical"], name)?;
    for (field, slot) in [
        ("warning", &mut level.warning),
        ("critical", &mut level.critical),
    ] {
        let full = [name, ".", field].concat();
        if let Some(x) = read_number_as(&v, field, &full)? {
            let ok = x.is_finite() && x >= 0.0 && (!fraction || x <= 1.0);
            if !ok {
                let range = if fraction {
                    "in [0, 1]"
                } else {
                    "a finite number >= 0"
                };
                return Err(RangeError::new(
                    &[&full, " must be ", range, ", got ", &js(x)].concat(),
                )
                .into());
            }
            *slot = x;
        }
    }
    if level.warning > level.critical {
        return Err(RangeError::new(
            &[
                name,
                ".warning must be <= ",
                name,
                ".critical, got ",
                &js(level.warning),
                " > ",
                &js(level.critical),
            ]
            .concat(),
        )
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
    check_keys(
        obj,
        &["latency", "errorRate", "backpressure", "memory", "dropRate"],
        "thresholds",
    )?;
    let mut t = base;
    t.latency = read_level(obj, "latency", t.latency, false)?;
    t.error_rate = read_level(obj, "errorRate", t.error_rate, true)?;
    t.backpressure = read_level(obj, "backpressure", t.backpressure, true)?;
    t.memory = read_level(obj, "memory", t.memory, true)?;
    let d = get(obj, "dropRate")?;
    if check_object(&d, "dropRate")? {
        check_keys(&d, &["warning"], "dropRate")?;
        if let Some(x) = read_number_as(&d, "warning", "dropRate.warning")? {
            if !(0.0..=1.0).contains(&x) {
                return Err(RangeError::new(
                    &["dropRate.warning must be in [0, 1], got ", &js(x)].concat(),
                )
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

/// Reads `DefaultErrorRecovery` options (unknown keys refused, getters propagate) and resolves
/// them in the core ([`config::RecoveryPatch`]); returns the full options object.
pub fn read_recovery(obj: &JsValue) -> Result<JsValue, JsValue> {
    let mut p = config::RecoveryPatch::default();
    if check_object(obj, "ErrorRecovery options")? {
        check_keys(
            obj,
            &[
                "retryAttempts",
                "retryDelay",
                "maxRetryDelay",
                "jitter",
                "circuitBreaker",
            ],
            "ErrorRecovery options",
        )?;
        p.retry_attempts = read_number(obj, "retryAttempts")?;
        p.retry_delay = read_number(obj, "retryDelay")?;
        p.max_retry_delay = read_number(obj, "maxRetryDelay")?;
        p.jitter = read_number(obj, "jitter")?;
        let cb = get(obj, "circuitBreaker")?;
        if check_object(&cb, "circuitBreaker")? {
            check_keys(&cb, &["failureThreshold", "resetTimeout"], "circuitBreaker")?;
            p.failure_threshold =
                read_number_as(&cb, "failureThreshold", "circuitBreaker.failureThreshold")?;
            p.reset_timeout = read_number_as(&cb, "resetTimeout", "circuitBreaker.resetTimeout")?;
        }
    }
    let r = p.resolve().map_err(|e| to_js_error(&e))?;
    let o = Object::new();
    let set = |o: &Object, k: &str, v: f64| {
        let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
    };
    set(&o, "retryAttempts", r.retry.retry_attempts as f64);
    set(&o, "retryDelay", r.retry.retry_delay);
    set(&o, "maxRetryDelay", r.retry.max_retry_delay);
    set(&o, "jitter", r.retry.jitter);
    let cb = Object::new();
    set(&cb, "failureThreshold", r.failure_threshold as f64);
    set(&cb, "resetTimeout", r.reset_timeout);
    let _ = Reflect::set(&o, &"circuitBreaker".into(), &cb);
    Ok(o.into())
}

/// See [`super::validate_option`].
pub fn validate(kind: &str, field: &str, value: &JsValue) -> Result<f64, JsValue> {
    let Some(v) = value.as_f64() else {
        return Err(TypeError::new(
            &[field, " must be a number, got ", &type_name(value)].concat(),
        )
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
                Err(config::ConfigError::range(
                    [field, " must be in [0, 1], got ", &js(v)].concat(),
                ))
            }
        }
        _ => Err(config::ConfigError::type_error(
            ["unknown option kind ", kind].concat(),
        )),
    };
    r.map_err(|e| to_js_error(&e))
}
