//! Reading JavaScript values with errors that name the field, and core validation errors as the
//! JS errors they stand for: shared by the engine's wasm bindings (`src/wasm`) and the stages
//! module (`crates/stages`), which links the core without those bindings. No exports: only what
//! a module calls is linked into it.

use js_sys::{Array, Error, RangeError, Reflect, TypeError};
use wasm_bindgen::JsValue;

use crate::core::config::{ConfigError, ErrorKind};

/// A core validation error as the JS error it stands for (`TypeError`, `RangeError`, `Error`).
pub fn to_js_error(e: &ConfigError) -> JsValue {
    match e.kind {
        ErrorKind::Type => TypeError::new(&e.message).into(),
        ErrorKind::Range => RangeError::new(&e.message).into(),
        ErrorKind::State => Error::new(&e.message).into(),
    }
}

/// `typeof v`, with `null` and arrays named as such (for error messages).
pub fn type_name(v: &JsValue) -> String {
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

/// `obj[field]`; a getter that throws propagates its error (it is never mistaken for "absent").
pub fn get(obj: &JsValue, field: &str) -> Result<JsValue, JsValue> {
    Reflect::get(obj, &JsValue::from_str(field))
}

/// Reads `obj[field]` as an optional number: `undefined` is `None`, anything but a number is a
/// `TypeError` naming the field.
pub fn read_number(obj: &JsValue, field: &str) -> Result<Option<f64>, JsValue> {
    read_number_as(obj, field, field)
}

/// [`read_number`] with the field named `label` in errors (for nested options).
pub fn read_number_as(obj: &JsValue, field: &str, label: &str) -> Result<Option<f64>, JsValue> {
    let v = get(obj, field)?;
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) => Ok(Some(n)),
        None => {
            Err(TypeError::new(&[label, " must be a number, got ", &type_name(&v)].concat()).into())
        }
    }
}
