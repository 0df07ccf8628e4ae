//! JSON text as Python's `json.dumps` writes it (default separators, keys in insertion order,
//! floats as `repr(float)`), for the packed bitsandbytes quant state whose bytes are stored in
//! the file.

/// `repr(x)` of a Python float: the shortest digits that round-trip, in fixed notation when
/// the decimal exponent is in `-4..16` (always with a fractional part), otherwise in
/// scientific notation with a signed exponent of at least two digits (`1e-05`, `1.5e+16`).
/// `NaN`, `Infinity` and `-Infinity` as `json.dumps` writes them.
pub(crate) fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde-N" or "de7".
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            format!("{a}.{b}")
        }
    } else {
        let (a, b) = digits.split_at(1);
        let m = if b.is_empty() {
            a.to_string()
        } else {
            format!("{a}.{b}")
        };
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    format!("{sign}{body}")
}

/// `json.dumps(s)` for a string of printable ASCII without quotes or backslashes (the only
/// strings the quant state holds: dtype and type names).
pub(crate) fn py_str(s: &str) -> String {
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn python_float_repr() {
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (-0.03125, "-0.03125"),
            (123.456, "123.456"),
            (f64::from(0.1f32), "0.10000000149011612"),
            (f64::from(0.0123f32), "0.012299999594688416"),
            (1e300, "1e+300"),
        ];
        for (x, s) in cases {
            assert_eq!(py_float(x), s, "{x}");
        }
    }
}
