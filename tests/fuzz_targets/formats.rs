//! Formats: scalar and slice encode/decode under every option, casts, and user-declared layouts.

use super::{f32_any, f64_any, options, overflow, run, same_f32, vec_of};
use arbitrary::{Result, Unstructured};
use lowbit::format::{cast, cast_one, Code, FloatFormat, Layout, NanRule, Options, Overflow, Rounding, Specials};

macro_rules! custom_formats {
    ($($name:ident: $code:ty = ($e:expr, $m:expr, $bias:expr, $spec:ident, $nan:expr);)*) => {$(
        /// A user-declared format at an edge of what `Layout::try_new` accepts.
        #[derive(Clone, Copy, Debug, Default)]
        pub(crate) struct $name;
        impl FloatFormat for $name {
            type Code = $code;
            const LAYOUT: Layout = Layout::new($e, $m, $bias, Specials::$spec, $nan);
            const NAME: &'static str = stringify!($name);
        }
    )*};
}

custom_formats! {
    // Widest fields, the extreme biases: values far below f32, and far above f64 (F2).
    W8M23Bias1000: u32 = (8, 23, 1000, Ieee, NanRule::Payload { quiet: false });
    // (F1 fixed: a top binade past 2^1023 is refused, so the widest now accepted.)
    W8M23BiasNeg1000: u32 = (8, 23, -768, Finite, NanRule::Canonical);
    // The narrowest: two bits, and a one-bit-exponent FNUZ.
    W1M0: u8 = (1, 0, 0, Finite, NanRule::Canonical);
    W1M1Fnuz: u8 = (1, 1, -1000, FiniteNanUnsignedZero, NanRule::Canonical);
    // A power of two with a negative bias, and one with a one-bit exponent.
    W8M0Pow2Neg: u8 = (8, 0, -768, PowerOfTwo, NanRule::Canonical);
    W1M0Pow2: u8 = (1, 0, 1, PowerOfTwo, NanRule::Canonical);
    // Mantissa-heavy FN and IEEE layouts with payload NaNs.
    // (F17 fixed: payload rules need IEEE specials.)
    W2M23Fn: u32 = (2, 23, 0, FiniteNan, NanRule::Canonical);
    W5M22Ieee: u32 = (5, 22, 15, Ieee, NanRule::Payload { quiet: false });
    W3M1Ieee: u8 = (3, 1, 3, Ieee, NanRule::Canonical);
}

/// Call `$body` with `$F` bound to the format numbered `$i` (`0..FORMATS`: the built-in
/// formats and the custom ones).
macro_rules! with_format {
    ($i:expr, $F:ident => $body:expr) => {
        match $i {
            0 => {
                type $F = lowbit::Fp32;
                $body
            }
            1 => {
                type $F = lowbit::Tf32;
                $body
            }
            2 => {
                type $F = lowbit::Bf16;
                $body
            }
            3 => {
                type $F = lowbit::Fp16;
                $body
            }
            4 => {
                type $F = lowbit::E4M3;
                $body
            }
            5 => {
                type $F = lowbit::E5M2;
                $body
            }
            6 => {
                type $F = lowbit::E4M3Fnuz;
                $body
            }
            7 => {
                type $F = lowbit::E5M2Fnuz;
                $body
            }
            8 => {
                type $F = lowbit::E3M4;
                $body
            }
            9 => {
                type $F = lowbit::E8M0;
                $body
            }
            10 => {
                type $F = lowbit::E3M2;
                $body
            }
            11 => {
                type $F = lowbit::E2M3;
                $body
            }
            12 => {
                type $F = lowbit::E2M1;
                $body
            }
            13 => {
                type $F = super::formats::W8M23Bias1000;
                $body
            }
            14 => {
                type $F = super::formats::W8M23BiasNeg1000;
                $body
            }
            15 => {
                type $F = super::formats::W1M0;
                $body
            }
            16 => {
                type $F = super::formats::W1M1Fnuz;
                $body
            }
            17 => {
                type $F = super::formats::W8M0Pow2Neg;
                $body
            }
            18 => {
                type $F = super::formats::W1M0Pow2;
                $body
            }
            19 => {
                type $F = super::formats::W2M23Fn;
                $body
            }
            20 => {
                type $F = super::formats::W5M22Ieee;
                $body
            }
            21 => {
                type $F = lowbit::Fp64;
                $body
            }
            _ => {
                type $F = super::formats::W3M1Ieee;
                $body
            }
        }
    };
}
pub(crate) use with_format;

/// Number of formats [`with_format`] dispatches over.
pub(crate) const FORMATS: u8 = 23;

/// A format index for [`with_format`].
pub(crate) fn format_index(u: &mut Unstructured<'_>) -> Result<u8> {
    u.int_in_range(0..=FORMATS - 1)
}

/// A code of `F` (any bits: out-of-range codes are masked by `try_code`'s check).
fn code<F: FloatFormat>(u: &mut Unstructured<'_>) -> Result<F::Code> {
    let raw: u64 = u.arbitrary()?;
    let bits = F::BITS;
    let masked = if bits >= 64 { raw } else { raw & ((1u64 << bits) - 1) };
    Ok(F::Code::from_u64(masked))
}

/// decode(encode(code)) == code for every non-NaN code, under every rounding and overflow
/// policy (an exact value rounds to itself), and NaN codes stay NaN.
fn check_code_round_trip<F: FloatFormat>(c: F::Code, opts: Options) {
    let v = F::decode_f64(c);
    let w = F::decode_f32(c);
    assert_eq!(v.is_nan(), F::is_nan(c), "{}: decode_f64({c:#x}) = {v}", F::NAME);
    if F::is_nan(c) {
        assert!(w.is_nan(), "{}: decode_f32 of NaN code {c:#x} = {w}", F::NAME);
        assert!(
            F::is_nan(F::encode_f64_with(v, opts)),
            "{}: NaN {c:#x} re-encoded",
            F::NAME
        );
        assert!(F::is_nan(F::encode_f64(v)), "{}: NaN {c:#x} re-encoded", F::NAME);
        return;
    }
    // decode_f32 is decode_f64 rounded (exact where the value fits f32).
    assert!(
        same_f32(w, v as f32),
        "{}: decode_f32({c:#x}) = {w}, decode_f64 = {v}",
        F::NAME
    );
    assert_eq!(F::encode_f64(v), c, "{}: encode(decode({c:#x} = {v}))", F::NAME);
    if v.is_infinite() && opts.overflow == Overflow::Saturate {
        // Saturation clamps infinities too.
        assert_eq!(
            F::decode_f64(F::encode_f64_with(v, opts)).abs(),
            F::MAX,
            "{}: {v} saturated",
            F::NAME
        );
    } else {
        assert_eq!(
            F::encode_f64_with(v, opts),
            c,
            "{}: encode_with({v}, {opts:?})",
            F::NAME
        );
    }
    let fields = F::decompose(c);
    assert!(
        fields.value == v || (fields.value.is_nan() && v.is_nan()),
        "{}: decompose({c:#x}).value = {} != {v}",
        F::NAME,
        fields.value
    );
    let _ = fields.unbiased_exponent();
    let _ = fields.to_string();
    assert_eq!(F::try_code(c.to_u64()), Ok(c));
}

/// Properties of one encode of `x` with `opts`: a neighbour of `x` (or the clamp), truncation
/// never grows, saturation stays finite, only overflow becomes NaN.
fn check_encode<F: FloatFormat>(x: f64, opts: Options) {
    let c = F::encode_f64_with(x, opts);
    assert!(
        F::BITS >= 64 || c.to_u64() >> F::BITS == 0,
        "{}: code {c:#x} too wide",
        F::NAME
    );
    let y = F::decode_f64(c);
    // E8M0 and the like: no sign and no zero, so negatives and zero are NaN.
    let unsigned_negative =
        !F::LAYOUT.is_signed() && x < 0.0 || F::LAYOUT.specials() == Specials::PowerOfTwo && x == 0.0;
    if x.is_nan() {
        assert!(
            F::is_nan(c) || !F::LAYOUT.has_nan(),
            "{}: NaN encoded as {c:#x}",
            F::NAME
        );
        return;
    }
    if F::is_nan(c) {
        // Only overflow (and infinities) may become NaN, under the native policy.
        assert!(
            unsigned_negative || (opts.overflow == Overflow::Native && x.abs() > F::MAX),
            "{}: {x:e} with {opts:?} became NaN",
            F::NAME
        );
        return;
    }
    if opts.overflow == Overflow::Saturate {
        assert!(y.is_finite(), "{}: {x:e} with {opts:?} gave {y}", F::NAME);
    }
    if y.is_finite() && x.is_finite() && !unsigned_negative {
        if x.abs() > F::MAX {
            assert_eq!(y.abs(), F::MAX, "{}: {x:e} with {opts:?} gave {y:e}", F::NAME);
        } else {
            // One of the two neighbours of x: no farther than the gap at x.
            let gap = (x.abs() * F::EPSILON).max(F::MIN_POSITIVE);
            assert!(
                (x - y).abs() <= gap,
                "{}: {x:e} with {opts:?} encoded as {c:#x} = {y:e}",
                F::NAME
            );
        }
        if opts.rounding == Rounding::TowardZero && x.abs() >= F::MIN_POSITIVE {
            assert!(y.abs() <= x.abs(), "{}: toward zero took {x:e} to {y:e}", F::NAME);
        }
    }
}

fn scalar<F: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let opts = options(u)?;
    check_code_round_trip::<F>(code::<F>(u)?, opts);
    let x = f32_any(u)?;
    // The f32 entry points agree with the f64 ones (the fast path is the generic codec).
    let a = F::encode_f32(x);
    let b = F::encode_f64(f64::from(x));
    if x.is_nan() {
        assert!(
            F::is_nan(a) == F::is_nan(b),
            "{}: NaN {:#x}: {a:#x} vs {b:#x}",
            F::NAME,
            x.to_bits()
        );
    } else {
        assert_eq!(a, b, "{}: encode_f32({x:e}) vs encode_f64", F::NAME);
    }
    let c = F::encode_f32_with(x, opts);
    let d = F::encode_f64_with(f64::from(x), opts);
    assert!(
        c == d || (x.is_nan() && F::is_nan(c) && F::is_nan(d)),
        "{}: {x:e} {opts:?}",
        F::NAME
    );
    check_encode::<F>(f64::from(x), opts);
    check_encode::<F>(f64_any(u)?, opts);
    let raw: u64 = u.arbitrary()?;
    let _ = F::try_code(raw);
    let _ = (
        F::nan(),
        F::infinity(),
        F::max_code(),
        F::MAX,
        F::MIN_POSITIVE,
        F::EPSILON,
    );
    Ok(())
}

fn slices<F: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let x = vec_of(u, 70, f32_any)?;
    let opts = options(u)?;
    let extra = u.int_in_range(0usize..=2)?.saturating_sub(1); // mostly equal lengths
    let n = x.len() + extra;
    let mut codes = vec![F::Code::default(); n];
    let r = F::encode_slice(&x, &mut codes);
    assert_eq!(r.is_ok(), extra == 0);
    if extra == 0 {
        for (&v, &c) in x.iter().zip(&codes) {
            let s = F::encode_f32(v);
            assert!(
                c == s || (F::is_nan(c) && F::is_nan(s)),
                "{}: slice vs scalar at {v:e}",
                F::NAME
            );
        }
    }
    let r = F::encode_slice_with(&x, &mut codes, opts);
    assert_eq!(r.is_ok(), extra == 0);
    if extra == 0 {
        for (&v, &c) in x.iter().zip(&codes) {
            let s = F::encode_f32_with(v, opts);
            assert!(
                c == s || (F::is_nan(c) && F::is_nan(s)),
                "{}: slice_with vs scalar at {v:e}",
                F::NAME
            );
        }
    }
    let random = vec_of(u, x.len() + 1, |u| u.arbitrary::<u32>())?;
    let r = F::encode_slice_stochastic(&x, &random, &mut codes, overflow(u)?);
    assert_eq!(r.is_ok(), extra == 0 && random.len() == x.len());
    let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let r = F::encode_slice_f64(&wide, &mut codes, opts);
    assert_eq!(r.is_ok(), extra == 0);
    // Decode: slice equals scalar.
    let src: Vec<F::Code> = vec_of(u, 70, code::<F>)?;
    let mut out = vec![0f32; src.len() + extra];
    let r = F::decode_slice(&src, &mut out);
    assert_eq!(r.is_ok(), extra == 0);
    if extra == 0 {
        for (&c, &y) in src.iter().zip(&out) {
            assert!(same_f32(y, F::decode_f32(c)), "{}: decode_slice({c:#x})", F::NAME);
        }
    }
    let mut out64 = vec![0f64; src.len() + extra];
    assert_eq!(F::decode_slice_f64(&src, &mut out64).is_ok(), extra == 0);
    Ok(())
}

/// Scalar encode and decode of every format, every option.
pub fn format_scalar(data: &[u8]) {
    run(data, |u| {
        let i = format_index(u)?;
        with_format!(i, F => scalar::<F>(u))
    });
}

/// Slice encode and decode (default, with options, stochastic, from f64) against the scalars.
pub fn format_slice(data: &[u8]) {
    run(data, |u| {
        let i = format_index(u)?;
        with_format!(i, F => slices::<F>(u))
    });
}

fn cast_pair<A: FloatFormat, B: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let opts = options(u)?;
    let src: Vec<A::Code> = vec_of(u, 24, code::<A>)?;
    let mut dst = vec![B::Code::default(); src.len()];
    cast::<A, B>(&src, &mut dst, opts).unwrap();
    for (&a, &b) in src.iter().zip(&dst) {
        assert_eq!(b, cast_one::<A, B>(a, opts));
        let v = A::decode_f64(a);
        if !v.is_nan()
            && B::decode_f64(b) == v
            && !(v == 0.0 && A::decode_f64(a).is_sign_negative() != B::decode_f64(b).is_sign_negative())
        {
            // Exact in B, so casting back is the identity.
            let back = cast_one::<B, A>(b, Options::default());
            assert!(
                back == a || (v == 0.0 && A::decode_f64(back) == 0.0),
                "{} -> {} -> {}: {a:#x} -> {b:#x} -> {back:#x}",
                A::NAME,
                B::NAME,
                A::NAME
            );
        }
    }
    let mut short = vec![B::Code::default(); src.len() + 1];
    assert!(cast::<A, B>(&src, &mut short, opts).is_err());
    Ok(())
}

fn cast_from<A: FloatFormat>(u: &mut Unstructured<'_>) -> Result<()> {
    let j = format_index(u)?;
    with_format!(j, B => cast_pair::<A, B>(u))
}

/// Casts between every pair of formats.
pub fn format_cast(data: &[u8]) {
    run(data, |u| {
        let i = format_index(u)?;
        with_format!(i, A => cast_from::<A>(u))
    });
}

/// `Layout::try_new` with any parameters, then every accessor of what it accepts, and the
/// accepted layout as the scale format of a `Quantized` (the one place a layout made at run
/// time reaches the codec).
pub fn layout(data: &[u8]) {
    run(data, |u| {
        let exp_bits = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            _ => u.int_in_range(0u32..=12)?,
        };
        let man_bits = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            1 => 52,
            _ => u.int_in_range(0u32..=24)?,
        };
        let bias = match u.int_in_range(0u8..=4)? {
            0 => u.arbitrary()?,
            1 => [i32::MIN, i32::MAX, 100_000, -100_000, 1000, -1000, 1001, -1001, 1023][u.choose_index(9)?],
            _ => u.int_in_range(-20i32..=260)?,
        };
        let specials = *u.choose(&[
            Specials::Ieee,
            Specials::FiniteNan,
            Specials::FiniteNanUnsignedZero,
            Specials::Finite,
            Specials::PowerOfTwo,
        ])?;
        let nan_rule = *u.choose(&[
            NanRule::Canonical,
            NanRule::Payload { quiet: false },
            NanRule::Payload { quiet: true },
        ])?;
        let Ok(l) = Layout::try_new(exp_bits, man_bits, bias, specials, nan_rule) else {
            return Ok(());
        };
        assert_eq!((l.exp_bits(), l.man_bits(), l.bias()), (exp_bits, man_bits, bias));
        assert_eq!((l.specials(), l.nan_rule()), (specials, nan_rule));
        let max = l.max_finite();
        let minp = l.min_positive();
        let minn = l.min_positive_normal();
        assert!(max > 0.0 && !max.is_nan(), "{l:?}: max {max}");
        // Every value of an accepted layout is an f64 (F1).
        assert!(max.is_finite(), "{l:?}: max {max}");
        // (An IEEE layout with one exponent bit has no normal values: there the smallest
        // normal exponent's value lies above the largest value; FINDINGS.md, observations.)
        assert!(minp > 0.0 && minp <= minn && minp <= max, "{l:?}: {minp} {minn} {max}");
        assert!(l.epsilon() > 0.0);
        let bits = l.bits();
        assert!(bits <= 64 && bits == exp_bits + man_bits + u32::from(l.is_signed()));
        let _ = (
            l.sign_mask(),
            l.magnitude_mask(),
            l.man_mask(),
            l.exp_field_max(),
            l.min_exp(),
        );
        let _ = (l.has_inf(), l.has_nan(), l.has_negative_zero());
        let mc = l.max_magnitude_code();
        assert!(!l.is_nan_code(mc), "{l:?}: max code {mc:#x} is NaN");
        if let Some(n) = l.nan_code() {
            assert!(l.is_nan_code(n));
        }
        if let Some(i) = l.inf_magnitude_code() {
            assert!(!l.is_nan_code(i));
        }
        let _ = l.is_nan_code(u.arbitrary()?);
        // As a scale format of a stored tensor: scales must be values of the layout.
        let scales = vec_of(u, 3, f32_any)?;
        let n = scales.len();
        let q = lowbit::quant::Quantized::from_parts(
            lowbit::quant::Scheme::Symmetric,
            8,
            n,
            lowbit::quant::Granularity::PerBlock(1),
            l,
            vec![0; n],
            scales,
            vec![],
        );
        if let Ok(q) = q {
            let bytes = q.to_bytes();
            assert_eq!(bytes.len(), q.byte_len());
            let back = lowbit::quant::Quantized::from_bytes(&bytes).expect("from_bytes(to_bytes(q))");
            assert!(back == q, "{l:?}: from_bytes(to_bytes(q)) != q");
            let mut out = vec![0f32; n];
            let _ = lowbit::quant::Quantizer::dequantize_into(
                &lowbit::quant::AbsmaxQuantizer::new(8, lowbit::quant::Granularity::PerBlock(1)).unwrap(),
                &q,
                &mut out,
            );
        }
        Ok(())
    });
}
