//! Decoders of stored bytes: `Quantized::from_bytes` and the calibrators' `from_bytes`, fed
//! random bytes, crafted headers, and valid buffers truncated or with bits flipped; then every
//! method on whatever they accept.

use super::{damage, f32_any, f32s_mostly_finite, granularity, non_finite, run, size, vec_of};
use arbitrary::{Result, Unstructured};
use lowbit::calib::{
    Calibrator, HistogramCalibrator, Method, MinMaxCalibrator, MovingAverageMinMaxCalibrator,
    PerChannelMinMaxCalibrator,
};
use lowbit::quant::mx::{MxElement, MxQuantizer, Nvfp4Quantizer, ScaleRule, TensorScale};
use lowbit::quant::{AbsmaxQuantizer, AffineQuantizer, Codebook, CodebookQuantizer, Quantized, Quantizer};

/// A valid `Quantized` made by one of the quantizers from a short input.
fn valid_quantized(u: &mut Unstructured<'_>) -> Result<Option<Quantized>> {
    let x = f32s_mostly_finite(u, 70)?;
    let g = granularity(u)?;
    let b = u.int_in_range(1u32..=8)?;
    let nf = non_finite(u)?;
    Ok(match u.int_in_range(0u8..=5)? {
        0 => AbsmaxQuantizer::new(b, g)
            .ok()
            .and_then(|q| q.with_non_finite(nf).quantize(&x).ok()),
        1 => AbsmaxQuantizer::<lowbit::E8M0>::with_scale_format(b, g)
            .ok()
            .and_then(|q| q.quantize(&x).ok()),
        2 => AffineQuantizer::<lowbit::Bf16>::with_scale_format(b, g)
            .ok()
            .and_then(|q| q.with_non_finite(nf).quantize(&x).ok()),
        3 => CodebookQuantizer::new(Codebook::nf4(), g).ok().and_then(|q| {
            let b2 = u.int_in_range(0usize..=300).ok()?;
            q.with_double_quant((b2 > 0).then_some(b2)).ok()?.quantize(&x).ok()
        }),
        4 => {
            let el = *u.choose(&[MxElement::E4M3, MxElement::E2M1, MxElement::E3M2, MxElement::Int8])?;
            MxQuantizer::new(el, ScaleRule::Floor).ok().and_then(|q| {
                let q = q.with_block_size(8).unwrap_or(q);
                q.quantize(&x).ok()
            })
        }
        _ => Nvfp4Quantizer::new(TensorScale::FromAmax)
            .ok()
            .and_then(|q| q.quantize(&x).ok()),
    })
}

/// A header with the right magic and version and fuzzed fields, then fuzzed payload.
fn crafted_header(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut b = b"LBQT\x01".to_vec();
    b.push(u.int_in_range(0u8..=9)?); // bits
    b.push(if u.arbitrary()? {
        u.arbitrary()?
    } else {
        u.int_in_range(0u8..=9)?
    }); // scheme
    b.push(u.int_in_range(0u8..=4)?); // granularity
    let len = if u.arbitrary()? {
        size(u)? as u64
    } else {
        u.arbitrary()?
    };
    b.extend_from_slice(&len.to_le_bytes());
    let gp = if u.arbitrary()? {
        size(u)? as u64
    } else {
        u.arbitrary()?
    };
    b.extend_from_slice(&gp.to_le_bytes());
    let (e, m, bias, spec, nan, w) = *u.choose(&[
        (8u8, 23u8, 127i16, 0u8, 1u8, 4u8), // f32
        (8, 7, 127, 0, 0, 2),               // bf16
        (5, 10, 15, 0, 1, 2),               // f16
        (4, 3, 7, 1, 0, 1),                 // e4m3
        (8, 0, 127, 4, 0, 1),               // e8m0
        (11, 52, 1023, 0, 1, 8),            // f64: refused
    ])?;
    b.extend_from_slice(&[e, m]);
    b.extend_from_slice(&bias.to_le_bytes());
    b.extend_from_slice(&[spec, nan, w]);
    b.push(u.int_in_range(0u8..=4)?); // flags
    let payload = vec_of(u, 200, |u| u.arbitrary::<u8>())?;
    b.extend_from_slice(&payload);
    Ok(b)
}

/// Every method of a `Quantized` that a decoder accepted, and every quantizer's dequantize.
fn use_quantized(q: &Quantized, input_len: usize) {
    // Allocation: nothing beyond what the input holds (codes, scales, zero points, each
    // scale widened to two 4-byte words).
    let held = q.codes().len() + q.zero_points().len() + 8 * q.scales().len();
    assert!(held <= 8 * input_len, "from_bytes of {input_len} bytes holds {held}");
    assert!(q.groups() <= input_len);
    let bytes = q.to_bytes();
    assert_eq!(bytes.len(), q.byte_len());
    let back = Quantized::from_bytes(&bytes).expect("from_bytes(to_bytes(q))");
    assert!(back == *q, "from_bytes(to_bytes(q)) != q");
    let codes = q.unpacked_codes();
    assert_eq!(codes.len(), q.len());
    let _ = (
        q.bits_per_element(),
        q.scheme(),
        q.bit_order(),
        q.tensor_scale(),
        q.scale_layout(),
    );
    let _ = (q.scales(), q.scale_codes(), q.zero_points(), q.is_empty());
    let mut out = vec![0f32; q.len()];
    let (b, g) = (q.bits(), q.granularity());
    if let Ok(z) = AbsmaxQuantizer::new(b, g) {
        let _ = z.dequantize_into(q, &mut out);
    }
    if let Ok(z) = AbsmaxQuantizer::<lowbit::E8M0>::with_scale_format(b, g) {
        let _ = z.dequantize_into(q, &mut out);
    }
    if let Ok(z) = AffineQuantizer::new(b, g) {
        let _ = z.dequantize_into(q, &mut out);
    }
    if let Ok(z) = AffineQuantizer::<lowbit::Bf16>::with_scale_format(b, g) {
        let _ = z.dequantize_into(q, &mut out);
    }
    for cb in [Codebook::nf4(), lowbit::quant::double::dynamic_codebook()] {
        if let Ok(z) = CodebookQuantizer::new(cb, g) {
            let _ = z.dequantize_into(q, &mut out);
        }
    }
    if let lowbit::quant::Granularity::PerBlock(block) = g {
        for el in [
            MxElement::E4M3,
            MxElement::E5M2,
            MxElement::E2M3,
            MxElement::E3M2,
            MxElement::E2M1,
            MxElement::Int8,
        ] {
            if let Ok(z) = MxQuantizer::new(el, ScaleRule::Floor).and_then(|z| z.with_block_size(block)) {
                let _ = z.dequantize_into(q, &mut out);
            }
        }
    }
    if let Ok(z) = Nvfp4Quantizer::new(TensorScale::None) {
        let _ = z.dequantize_into(q, &mut out);
    }
    let _ = lowbit::quant::mx::dequantize_into(q, &mut out);
    let _ = q.clone().with_tensor_scale(Some(2.0)).map(|t| t.to_bytes());
    let _ = q
        .clone()
        .with_bit_order(lowbit::quant::pack::BitOrder::LsbFirst)
        .unpacked_codes();
}

/// `Quantized::from_bytes` on random bytes, crafted headers and damaged valid buffers.
pub fn quantized_bytes(data: &[u8]) {
    run(data, |u| {
        let bytes = match u.int_in_range(0u8..=3)? {
            0 => vec_of(u, 300, |u| u.arbitrary::<u8>())?,
            1 => crafted_header(u)?,
            _ => match valid_quantized(u)? {
                Some(q) => {
                    let b = q.to_bytes();
                    assert!(Quantized::from_bytes(&b).expect("valid bytes") == q);
                    damage(u, b)?
                }
                None => return Ok(()),
            },
        };
        if let Ok(q) = Quantized::from_bytes(&bytes) {
            // The bytes it accepted are the ones it writes, but for the group-size field of a
            // per-tensor value, which is ignored (and written as 0).
            let mut canonical = bytes.clone();
            if canonical[7] == 0 {
                canonical[16..24].fill(0);
            }
            assert_eq!(q.to_bytes(), canonical, "to_bytes(from_bytes(b)) != b");
            use_quantized(&q, bytes.len());
        }
        Ok(())
    });
}

/// Use an accepted calibrator: observe, merge with itself, range, and the bytes round trip.
fn use_calibrator<C: Calibrator + Clone>(c: &C, u: &mut Unstructured<'_>) -> Result<()> {
    let bytes = c.to_bytes();
    let d = C::from_bytes(&bytes).expect("from_bytes(to_bytes(c))");
    assert_eq!(d.to_bytes(), bytes, "from_bytes(to_bytes(c)) differs");
    let _ = c.range();
    let mut m = c.clone();
    let _ = m.merge(c);
    let _ = m.range();
    let batch = f32s_mostly_finite(u, 16)?;
    let mut o = c.clone();
    let _ = o.observe(&batch);
    let _ = o.range();
    let _ = o.to_bytes();
    Ok(())
}

/// Valid state bytes of one of the calibrators (`which`), from a few observed batches.
fn valid_calibrator_bytes(u: &mut Unstructured<'_>, which: u8) -> Result<Vec<u8>> {
    let batch = f32s_mostly_finite(u, 40)?;
    Ok(match which {
        0 => {
            let mut c = MinMaxCalibrator::new();
            let _ = c.observe(&batch);
            c.to_bytes()
        }
        1 => {
            let mut c = MovingAverageMinMaxCalibrator::new(0.5).expect("0.5");
            let _ = c.observe(&batch);
            c.to_bytes()
        }
        2 => {
            let mut c = PerChannelMinMaxCalibrator::new(u.int_in_range(1usize..=4)?).expect("channels");
            let _ = c.observe(&batch);
            c.to_bytes()
        }
        _ => {
            let m = *u.choose(&[
                Method::Percentile(99.9),
                Method::Entropy { bits: 8 },
                Method::Mse { bits: 4 },
            ])?;
            let fresh = || HistogramCalibrator::new(m).expect("a valid method");
            let mut c = fresh().with_symmetric(u.arbitrary()?);
            if u.arbitrary()? {
                c = c.with_bins(u.int_in_range(1usize..=4096)?).unwrap_or_else(|_| fresh());
            }
            let _ = c.observe(&batch);
            let _ = c.observe(&[f32_any(u)?]);
            c.to_bytes()
        }
    })
}

/// The calibrators' `from_bytes` on random bytes and damaged valid states.
pub fn calib_bytes(data: &[u8]) {
    run(data, |u| {
        let which = u.int_in_range(0u8..=3)?;
        let bytes = if u.ratio(1u8, 4)? {
            let mut b = match which {
                0 => b"LBMM\x01".to_vec(),
                1 => b"LBMA\x01".to_vec(),
                2 => b"LBMC\x01".to_vec(),
                _ => b"LBHC\x01".to_vec(),
            };
            b.extend(vec_of(u, 120, |u| u.arbitrary::<u8>())?);
            b
        } else {
            let b = valid_calibrator_bytes(u, which)?;
            damage(u, b)?
        };
        match which {
            0 => {
                if let Ok(c) = MinMaxCalibrator::from_bytes(&bytes) {
                    let _ = c.count();
                    use_calibrator(&c, u)?;
                }
            }
            1 => {
                if let Ok(c) = MovingAverageMinMaxCalibrator::from_bytes(&bytes) {
                    use_calibrator(&c, u)?;
                }
            }
            2 => {
                if let Ok(c) = PerChannelMinMaxCalibrator::from_bytes(&bytes) {
                    // A state with no row observed names its channel count without storing
                    // extremes (layout version 2): nothing is allocated for them until a row
                    // arrives, so the count is not bounded by the bytes.
                    let _ = c.ranges();
                    let _ = lowbit::scheme::smooth::absmax_from_calibrator(&c);
                    use_calibrator(&c, u)?;
                }
            }
            _ => {
                if let Ok(c) = HistogramCalibrator::from_bytes(&bytes) {
                    // Allocation: the fine histogram in proportion to the state's bytes.
                    let base = HistogramCalibrator::new(Method::Percentile(99.0))
                        .expect("a valid method")
                        .memory();
                    // (F2: pages stay sparse.)
                    assert!(
                        c.memory() <= base + 64 * bytes.len(),
                        "histogram state of {} bytes holds {} bytes",
                        bytes.len(),
                        c.memory()
                    );
                    let _ = (c.bins(), c.count(), c.skipped(), c.amax());
                    use_calibrator(&c, u)?;
                }
            }
        }
        Ok(())
    });
}
