//! Number formatting for messages, without `core::fmt`'s float machinery.
//!
//! `format!("{x}")` and `format!("{x:.1}")` on an `f64` pull Grisu/Dragon float printing into the
//! `.wasm` (about 18 KB raw, issue 12). Error and alert messages only need short, JavaScript-like
//! numbers, so they are printed here with integer arithmetic.

/// Largest magnitude printed digit by digit; beyond it an integer count of the digits would
/// overflow `u64`.
const MAX_EXACT: f64 = 9.0e18;

/// Formats `v` the way JavaScript's `String(v)` prints it for the values messages carry:
/// `NaN`, `Infinity`, integers without a fraction, and other numbers with the fewest decimals
/// (at most 17) that give back the same `f64` by this function's float arithmetic (for a value
/// with more than about 15 significant digits the last digit may differ from JavaScript's).
///
/// ```
/// use stream_engine::core::num::js;
/// assert_eq!(js(-1.0), "-1");
/// assert_eq!(js(0.95), "0.95");
/// assert_eq!(js(1.5), "1.5");
/// assert_eq!(js(f64::NAN), "NaN");
/// ```
pub fn js(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v.fract() == 0.0 {
        return fixed(v, 0);
    }
    let a = v.abs();
    let mut scale = 1.0;
    let mut best = 0;
    for d in 1..=17 {
        scale *= 10.0;
        if a * scale >= MAX_EXACT {
            break;
        }
        best = d;
        if (a * scale).round() / scale == a {
            return fixed(v, d);
        }
    }
    let s = fixed(v, best);
    trim_zeros(&s).to_string()
}

/// Formats `v` with exactly `decimals` digits after the point (rounded half away from zero),
/// like `format!("{v:.decimals$}")` for the values messages carry. Non-finite values and
/// magnitudes too large to print exactly fall back to [`js`]-style text.
///
/// ```
/// use stream_engine::core::num::fixed;
/// assert_eq!(fixed(12.345, 1), "12.3");
/// assert_eq!(fixed(0.05, 1), "0.1");
/// assert_eq!(fixed(7.0, 2), "7.00");
/// ```
pub fn fixed(v: f64, decimals: u32) -> String {
    if !v.is_finite() {
        return js(v);
    }
    let scale = 10u64.pow(decimals.min(18)) as f64;
    let scaled = (v.abs() * scale).round();
    if scaled >= MAX_EXACT {
        // Far beyond what a message needs: the leading digits and a power of ten (no `%` on
        // floats, which would link libm's fmod).
        let mut x = v.abs();
        let mut exp = 0;
        while x >= 1e15 {
            x /= 10.0;
            exp += 1;
        }
        let sign = if v < 0.0 { "-" } else { "" };
        return [sign, &uint(x.round() as u64), "e+", &uint(exp)].concat();
    }
    let n = scaled as u64;
    let m = 10u64.pow(decimals.min(18));
    let (int, frac) = (n / m, n % m);
    let mut s = String::new();
    if v < 0.0 && n != 0 {
        s.push('-');
    }
    s.push_str(&uint(int));
    if decimals > 0 {
        s.push('.');
        let f = uint(frac);
        for _ in f.len()..decimals as usize {
            s.push('0');
        }
        s.push_str(&f);
    }
    s
}

/// `n` in decimal digits, without `core::fmt` (whose integer `Display`, padding and `write`
/// machinery is a few kB of `.wasm`; messages are built with `[..].concat()` and this instead).
///
/// ```
/// use stream_engine::core::num::uint;
/// assert_eq!(uint(0), "0");
/// assert_eq!(uint(1000), "1000");
/// assert_eq!(uint(u64::MAX), "18446744073709551615");
/// ```
pub fn uint(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[i..].iter().map(|&d| char::from(d)).collect()
}

/// `x` limited to `[lo, hi]`, like `f64::clamp` but without its `min <= max` assertion, whose
/// panic message formats floats (`{min:?}`) and so links the float printer into the `.wasm`.
/// NaN stays NaN; if `lo > hi` the result is `lo` for values below `lo`, else at most `hi`.
///
/// ```
/// use stream_engine::core::num::clamp;
/// assert_eq!(clamp(1.5, 0.0, 1.0), 1.0);
/// assert_eq!(clamp(-1.0, 0.0, 1.0), 0.0);
/// assert!(clamp(f64::NAN, 0.0, 1.0).is_nan());
/// ```
#[inline]
pub fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// Drops trailing zeros after a decimal point, and the point if nothing follows it.
pub fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_matches_javascript_for_message_values() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1000.0, "1000"),
            (1e15, "1000000000000000"),
            (0.5, "0.5"),
            (0.95, "0.95"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(js(v), want, "js({v:?})");
        }
    }

    #[test]
    fn fixed_rounds_half_away_from_zero_and_pads() {
        assert_eq!(fixed(12.345, 1), "12.3");
        assert_eq!(fixed(12.35, 1), "12.4");
        assert_eq!(fixed(-12.35, 1), "-12.4");
        assert_eq!(fixed(0.04, 1), "0.0");
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(7.0, 2), "7.00");
        assert_eq!(fixed(0.005, 2), "0.01");
        assert_eq!(fixed(99.96, 1), "100.0");
        assert_eq!(fixed(1e20, 1), "100000000000000e+6");
        assert_eq!(fixed(-2.5e19, 0), "-250000000000000e+5");
        assert_eq!(fixed(f64::NAN, 1), "NaN");
    }

    #[test]
    fn agrees_with_core_fmt_on_many_values() {
        // The hand-written path must print what `format!` printed before (the messages are
        // part of the API), for the ranges that reach messages.
        // One deliberate difference: a negative value that rounds to zero prints without the
        // sign ("0.0", not "-0.0").
        let unsigned_zero = |s: String| {
            if s.trim_start_matches('-')
                .bytes()
                .all(|b| b == b'0' || b == b'.')
            {
                s.trim_start_matches('-').to_string()
            } else {
                s
            }
        };
        let mut x = 0.001_f64;
        while x < 1e6 {
            for v in [x, -x, x * 1.37, x + 0.05, -x * 3.3] {
                assert_eq!(
                    fixed(v, 1),
                    unsigned_zero(format!("{v:.1}")),
                    "fixed({v}, 1)"
                );
                assert_eq!(
                    fixed(v, 2),
                    unsigned_zero(format!("{v:.2}")),
                    "fixed({v}, 2)"
                );
                // Shortest round-trip digits need big-number arithmetic; messages accept the
                // nearest short decimal instead: exact for short values, within 1e-15 otherwise.
                let want = format!("{v}");
                if want.len() <= 12 {
                    assert_eq!(js(v), want, "js({v})");
                } else {
                    let got: f64 = js(v).parse().unwrap();
                    assert!(((got - v) / v).abs() < 1e-15, "js({v}) = {}", js(v));
                }
            }
            x *= 1.731;
        }
    }
}
