//! The TensorFlow Lite converter's post-training quantization modes, as [`Recipe`]s.
//!
//! | preset | TFLite converter setting | weights | activations |
//! |---|---|---|---|
//! | [`dynamic_range`] | `optimizations = [DEFAULT]` | int8 symmetric per channel, codes `[-127, 127]` | float |
//! | [`float16`] | `+ target_spec.supported_types = [tf.float16]` | fp16 | float |
//! | [`full_integer`] | `+ representative_dataset`, `TFLITE_BUILTINS_INT8` | int8 symmetric per channel | int8 affine, min/max over the data set |
//! | [`int16x8`] | `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8` | int8 symmetric per channel | int16 symmetric, zero point 0 |
//!
//! These follow TFLite's quantization specification: weights are int8 two's complement in
//! `[-127, 127]` with zero point 0, one scale per output channel (dimension 0); int8
//! activations are asymmetric with a zero point, their range from the minimum and maximum seen
//! on the representative data set (widened to contain 0); int16 activations are symmetric with
//! zero point 0. Our int8 activations use unsigned codes `0..=255` with the zero point, the
//! same grid as TFLite's `int8` codes with the zero point shifted by 128.
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::tflite;
//!
//! let recipe = tflite::int16x8();
//! let mut cal = recipe.calibration();
//! cal.observe("dense_1", &[-3.0, 0.5, 6.0])?;
//! let acts = cal.finish()?;
//! let p = acts["dense_1"].params();
//! assert_eq!((p.qmin(), p.qmax(), p.zero_point()), (-32767, 32767, 0));
//! assert_eq!(p.scale(), 6.0 / 32767.0);
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::ptq::{ActivationScheme, CalibratorKind, Recipe, WeightGranularity, WeightScheme};
use crate::format::Format;

fn int8_per_channel() -> WeightScheme {
    WeightScheme::Int {
        bits: 8,
        symmetric: true,
        granularity: WeightGranularity::PerChannel,
    }
}

/// Dynamic range quantization: int8 per-channel weights, activations left in float (the
/// runtime quantizes them on the fly).
pub fn dynamic_range() -> Recipe {
    Recipe::new().weights("*", int8_per_channel())
}

/// Float16 quantization: weights cast to fp16 (no scale), activations in float.
pub fn float16() -> Recipe {
    Recipe::new().weights(
        "*",
        WeightScheme::Float {
            format: Format::Fp16,
            scaled: false,
        },
    )
}

/// Full integer quantization: int8 per-channel weights and int8 affine activations calibrated
/// by min/max over a representative data set.
pub fn full_integer() -> Recipe {
    Recipe::new().weights("*", int8_per_channel()).activations(
        "*",
        ActivationScheme::new(CalibratorKind::MinMax, 8, false).expect("8 bits is valid"),
    )
}

/// 16×8 quantization: int8 per-channel weights and int16 symmetric activations (zero point 0,
/// codes `[-32767, 32767]`), calibrated by min/max.
pub fn int16x8() -> Recipe {
    Recipe::new().weights("*", int8_per_channel()).activations(
        "*",
        ActivationScheme::new(CalibratorKind::MinMax, 16, true).expect("16 bits is valid"),
    )
}
