//! MX (OCP Microscaling) and NVFP4 arithmetic against torchao 0.18.0 and microxcaling
//! (7bc4195): every key of `mx_refs.npz`, bit for bit (NaN payloads included).
//!
//! Runs on the subset in `tests/data/mx/mx_refs_small.npz` always, and on the full file in
//! `../shared/refs/mx/` when present. Blocks run along each row of `DATASET/x`: 32 values for
//! MX and microxcaling, 16 for NVFP4.

use std::collections::BTreeMap;
use std::path::Path;

use lowbit::quant::mx_math::{
    block_amax, msx_quantize, msx_scale_code, msx_shared_exp, mx_dequant, mx_elem_code, mx_scale_code, mxint8_code,
    mxint8_dequant, nvfp4_block_scale_code, nvfp4_dequant, nvfp4_elem_code, nvfp4_tensor_scale, Elem, MsxElem,
    MsxRound, MxBlock, Nvfp4Block, ScaleRule, NVFP4_BLOCK,
};

use lowbit::quant::mx::{MxElement, MxQuantizer, Nvfp4Quantizer, TensorScale};
use lowbit::quant::{Quantizer, Rounding};
use lowbit::NonFinite;

use crate::common::{bits, data, shared_ref};

enum Arr {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    Other,
}

struct Refs(BTreeMap<String, (Vec<u64>, Arr)>);

impl Refs {
    fn load(path: &Path) -> Self {
        let mut z = crate::common::Npz::open(path).unwrap();
        let names: Vec<String> = z.array_names().map(str::to_owned).collect();
        let mut m = BTreeMap::new();
        for n in names {
            let f = z.by_name(&n).unwrap().unwrap();
            let shape = f.shape().to_vec();
            let a = match f.dtype().descr().trim_matches('\'') {
                "<f4" => Arr::F32(f.into_vec().unwrap()),
                "|u1" => Arr::U8(f.into_vec().unwrap()),
                "<i2" => Arr::I16(f.into_vec().unwrap()),
                _ => Arr::Other, // meta/versions (a string)
            };
            m.insert(n, (shape, a));
        }
        Refs(m)
    }
    fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
    fn shape(&self, k: &str) -> &[u64] {
        &self.0[k].0
    }
    fn f32(&self, k: &str) -> &[f32] {
        match self.0.get(k) {
            Some((_, Arr::F32(v))) => v,
            _ => panic!("missing f32 key {k}"),
        }
    }
    fn u8(&self, k: &str) -> &[u8] {
        match self.0.get(k) {
            Some((_, Arr::U8(v))) => v,
            _ => panic!("missing u8 key {k}"),
        }
    }
    fn i16(&self, k: &str) -> &[i16] {
        match self.0.get(k) {
            Some((_, Arr::I16(v))) => v,
            _ => panic!("missing i16 key {k}"),
        }
    }
}

/// Tallies of what was compared, and the first mismatches.
#[derive(Default)]
struct Tally {
    keys: usize,
    blocks: usize,
    values: usize,
    bad: Vec<String>,
}

impl Tally {
    fn f32s(&mut self, key: &str, got: &[f32], want: &[f32]) {
        self.cmp(
            key,
            got.iter().map(|v| v.to_bits()),
            want.iter().map(|v| v.to_bits()),
            |b| format!("{:e} ({b:#010x})", f32::from_bits(b)),
        );
    }
    fn ints<T: Copy + PartialEq + std::fmt::Debug>(&mut self, key: &str, got: &[T], want: &[T]) {
        self.cmp(key, got.iter().copied(), want.iter().copied(), |v| format!("{v:?}"));
    }
    fn cmp<T: PartialEq + Copy>(
        &mut self,
        key: &str,
        got: impl ExactSizeIterator<Item = T>,
        want: impl ExactSizeIterator<Item = T>,
        show: impl Fn(T) -> String,
    ) {
        assert_eq!(got.len(), want.len(), "{key}: length");
        self.keys += 1;
        self.values += got.len();
        for (i, (g, w)) in got.zip(want).enumerate() {
            if g != w && self.bad.len() < 20 {
                self.bad.push(format!("{key}[{i}]: got {}, want {}", show(g), show(w)));
            }
        }
    }
}

fn rule(name: &str) -> ScaleRule {
    *ScaleRule::ALL.iter().find(|r| r.name() == name).unwrap()
}

fn check_mx(r: &Refs, ds: &str, x: &[f32], cols: usize, t: &mut Tally) {
    for elem in Elem::ALL {
        for rule in ScaleRule::ALL {
            let p = format!("{ds}/mx/{}/{}", elem.name(), rule.name());
            if !r.has(&format!("{p}/scale")) {
                continue;
            }
            let (mut scales, mut codes, mut deq) = (vec![], vec![], vec![]);
            for row in x.chunks(cols) {
                for blk in row.chunks(32) {
                    let b = MxBlock::new(block_amax(blk), elem, rule);
                    scales.push(b.scale_code);
                    for &v in blk {
                        let c = b.elem_code(v);
                        codes.push(c);
                        deq.push(mx_dequant(c, b.scale_code, elem));
                    }
                    t.blocks += 1;
                }
            }
            t.ints(&format!("{p}/scale"), &scales, r.u8(&format!("{p}/scale")));
            t.ints(&format!("{p}/codes"), &codes, r.u8(&format!("{p}/codes")));
            t.f32s(&format!("{p}/deq"), &deq, r.f32(&format!("{p}/deq")));
            // The code-only entry point agrees wherever the block's NaN (if any) is the default.
            for (i, &v) in x.iter().enumerate() {
                let s = scales[i / 32];
                if !(rule == ScaleRule::RCeil && s == 255) {
                    assert_eq!(mx_elem_code(v, s, elem, rule), codes[i], "{p} mx_elem_code [{i}]");
                }
            }
            if r.has(&format!("{p}/packed")) {
                let packed: Vec<u8> = codes.chunks(2).map(|c| c[0] | c[1] << 4).collect();
                t.ints(&format!("{p}/packed"), &packed, r.u8(&format!("{p}/packed")));
            }
        }
    }
}

fn check_nvfp4(r: &Refs, ds: &str, x: &[f32], cols: usize, t: &mut Tally) {
    for kind in ["single", "two"] {
        let p = format!("{ds}/nvfp4/{kind}");
        if !r.has(&format!("{p}/scale")) {
            continue;
        }
        let ts = (kind == "two").then(|| nvfp4_tensor_scale(block_amax(x)));
        if let Some(ts) = ts {
            t.f32s(&format!("{p}/tensor_scale"), &[ts], r.f32(&format!("{p}/tensor_scale")));
        }
        let (mut scales, mut codes, mut deq) = (vec![], vec![], vec![]);
        for row in x.chunks(cols) {
            for blk in row.chunks(NVFP4_BLOCK) {
                let amax = block_amax(blk);
                let b = Nvfp4Block::new(amax, ts);
                assert_eq!(nvfp4_block_scale_code(amax, ts), b.scale_code);
                scales.push(b.scale_code);
                for &v in blk {
                    let c = b.elem_code(v);
                    assert_eq!(nvfp4_elem_code(v, b.scale_code, ts), c);
                    codes.push(c);
                    let d = b.dequant(c);
                    assert_eq!(nvfp4_dequant(c, b.scale_code, ts).to_bits(), d.to_bits());
                    deq.push(d);
                }
                t.blocks += 1;
            }
        }
        t.ints(&format!("{p}/scale"), &scales, r.u8(&format!("{p}/scale")));
        t.ints(&format!("{p}/codes"), &codes, r.u8(&format!("{p}/codes")));
        t.f32s(&format!("{p}/deq"), &deq, r.f32(&format!("{p}/deq")));
    }
}

fn check_msx(r: &Refs, ds: &str, x: &[f32], cols: usize, t: &mut Tally) {
    for elem in MsxElem::ALL {
        for round in [MsxRound::Nearest, MsxRound::Even] {
            let p = format!("{ds}/msx/{}/{}", elem.name(), round.name());
            if !r.has(&format!("{p}/deq")) {
                continue;
            }
            let (mut exps, mut deq) = (vec![], vec![]);
            for row in x.chunks(cols) {
                for blk in row.chunks(32) {
                    let se = msx_shared_exp(block_amax(blk), elem);
                    exps.push(if se.is_nan() { 32767 } else { se as i16 });
                    assert_eq!(
                        msx_scale_code(se),
                        if se.is_nan() { 255 } else { (se as i32 + 127) as u8 }
                    );
                    for &v in blk {
                        let q = msx_quantize(v, se, elem, round);
                        if elem == MsxElem::Int8 {
                            // The integer path gives the same value (a zero may differ in sign).
                            let k = mxint8_code(v, se, round);
                            let d = mxint8_dequant(k, se);
                            assert!(d == q || (d.is_nan() && q.is_nan()), "{p}: {v:e} -> {k} {d:e} vs {q:e}");
                        }
                        deq.push(q);
                    }
                    t.blocks += 1;
                }
            }
            t.ints(&format!("{p}/scale_exp"), &exps, r.i16(&format!("{p}/scale_exp")));
            t.f32s(&format!("{p}/deq"), &deq, r.f32(&format!("{p}/deq")));
        }
    }
}

/// Checks every dataset of `r`; returns the tally (keys, blocks, values, mismatches).
fn check_all(r: &Refs) -> Tally {
    let mut t = Tally::default();
    let datasets: Vec<String> =
        r.0.keys()
            .filter_map(|k| k.strip_suffix("/x").map(str::to_owned))
            .collect();
    assert!(!datasets.is_empty());
    for ds in &datasets {
        let key = format!("{ds}/x");
        let x = r.f32(&key);
        let cols = r.shape(&key)[1] as usize;
        assert_eq!(cols % 32, 0);
        check_mx(r, ds, x, cols, &mut t);
        check_nvfp4(r, ds, x, cols, &mut t);
        check_msx(r, ds, x, cols, &mut t);
        check_quantizers(r, ds, x);
    }
    t
}

fn element(e: Elem) -> MxElement {
    match e {
        Elem::E4M3 => MxElement::E4M3,
        Elem::E5M2 => MxElement::E5M2,
        Elem::E2M3 => MxElement::E2M3,
        Elem::E3M2 => MxElement::E3M2,
        Elem::E2M1 => MxElement::E2M1,
    }
}

/// The public quantizers (`MxQuantizer`, `Nvfp4Quantizer`, through the block walker and the
/// packer) give every reference array: scale bytes, element codes, packed bytes, values.
fn check_quantizers(r: &Refs, ds: &str, x: &[f32]) {
    for elem in Elem::ALL {
        for rule in ScaleRule::ALL {
            let p = format!("{ds}/mx/{}/{}", elem.name(), rule.name());
            if !r.has(&format!("{p}/scale")) {
                continue;
            }
            let q = MxQuantizer::new(element(elem), rule)
                .unwrap()
                .with_non_finite(NonFinite::Propagate)
                .unwrap();
            let z = q.quantize(x).unwrap();
            let scales: Vec<u8> = z.scale_codes().iter().map(|&c| c as u8).collect();
            assert_eq!(scales, r.u8(&format!("{p}/scale")), "{p}/scale");
            assert_eq!(z.unpacked_codes(), r.u8(&format!("{p}/codes")), "{p}/codes");
            assert_eq!(
                bits(&q.dequantize(&z).unwrap()),
                bits(r.f32(&format!("{p}/deq"))),
                "{p}/deq"
            );
            if r.has(&format!("{p}/packed")) {
                assert_eq!(z.codes(), r.u8(&format!("{p}/packed")), "{p}/packed");
            }
            let back = lowbit::quant::Quantized::from_bytes(&z.to_bytes()).unwrap();
            assert_eq!(back, z, "{p}: bytes round trip");
        }
    }
    for kind in ["single", "two"] {
        let p = format!("{ds}/nvfp4/{kind}");
        if !r.has(&format!("{p}/scale")) {
            continue;
        }
        let ts = if kind == "two" {
            TensorScale::FromAmax
        } else {
            TensorScale::None
        };
        let q = Nvfp4Quantizer::new(ts)
            .unwrap()
            .with_non_finite(NonFinite::Propagate)
            .unwrap();
        let z = q.quantize(x).unwrap();
        if kind == "two" {
            assert_eq!(
                z.tensor_scale().map(f32::to_bits),
                Some(r.f32(&format!("{p}/tensor_scale"))[0].to_bits())
            );
        }
        let scales: Vec<u8> = z.scale_codes().iter().map(|&c| c as u8).collect();
        assert_eq!(scales, r.u8(&format!("{p}/scale")), "{p}/scale");
        assert_eq!(z.unpacked_codes(), r.u8(&format!("{p}/codes")), "{p}/codes");
        assert_eq!(
            bits(&q.dequantize(&z).unwrap()),
            bits(r.f32(&format!("{p}/deq"))),
            "{p}/deq"
        );
    }
    // microxcaling: MXINT8 (both tie rules) and half-away FP elements, by value (microxcaling
    // turns -0.0 into +0.0 and keeps -0.0 for negatives rounded to zero).
    for (elem, me) in [
        (MsxElem::Int8, MxElement::Int8),
        (MsxElem::E4M3, MxElement::E4M3),
        (MsxElem::E5M2, MxElement::E5M2),
        (MsxElem::E3M2, MxElement::E3M2),
        (MsxElem::E2M3, MxElement::E2M3),
        (MsxElem::E2M1, MxElement::E2M1),
    ] {
        for (round, rounding) in [
            (MsxRound::Nearest, Rounding::NearestAway),
            (MsxRound::Even, Rounding::NearestEven),
        ] {
            let p = format!("{ds}/msx/{}/{}", elem.name(), round.name());
            if !r.has(&format!("{p}/deq")) || (elem != MsxElem::Int8 && round == MsxRound::Even) {
                continue;
            }
            let q = MxQuantizer::new(me, ScaleRule::Floor)
                .unwrap()
                .with_rounding(rounding)
                .unwrap()
                .with_non_finite(NonFinite::Propagate)
                .unwrap();
            let z = q.quantize(x).unwrap();
            let exps: Vec<i16> = z
                .scale_codes()
                .iter()
                .map(|&c| if c == 255 { 32767 } else { c as i16 - 127 })
                .collect();
            assert_eq!(exps, r.i16(&format!("{p}/scale_exp")), "{p}/scale_exp");
            let y = q.dequantize(&z).unwrap();
            for (i, (a, b)) in y.iter().zip(r.f32(&format!("{p}/deq"))).enumerate() {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{p}[{i}]: {a:e} vs {b:e} (x = {:e})",
                    x[i]
                );
            }
        }
    }
}

fn report(name: &str, r: &Refs, t: &Tally) {
    eprintln!(
        "mx {name}: {} keys, {} blocks, {} values compared; {} mismatches",
        t.keys,
        t.blocks,
        t.values,
        t.bad.len()
    );
    assert!(t.bad.is_empty(), "{}", t.bad.join("\n"));
    // Every key but the inputs and the version string is checked.
    let inputs =
        r.0.keys()
            .filter(|k| k.ends_with("/x") || k.starts_with("meta/"))
            .count();
    assert_eq!(t.keys, r.0.len() - inputs, "unchecked keys");
}

#[test]
fn mx_reference_subset() {
    let r = Refs::load(&data("mx/mx_refs_small.npz"));
    let t = check_all(&r);
    report("subset", &r, &t);
    assert!(t.keys > 350, "{}", t.keys);
}

#[test]
fn mx_reference_full() {
    let Some(p) = shared_ref("mx/mx_refs.npz") else {
        eprintln!("../shared/refs/mx/mx_refs.npz not present: skipped");
        return;
    };
    let r = Refs::load(&p);
    let t = check_all(&r);
    report("full", &r, &t);
    assert_eq!(t.keys, 644);
}

#[test]
fn mx_rule_names_round_trip() {
    for r in ScaleRule::ALL {
        assert_eq!(rule(r.name()), r);
    }
    assert_eq!(mx_scale_code(448.0, Elem::E4M3, ScaleRule::Floor), 127);
}

#[test]
fn swizzle_matches_torchao_to_blocked() {
    use lowbit::quant::mx::{swizzle_scales, unswizzle_scales};
    let scales: Vec<u8> = (0..130 * 6).map(|i| (i % 251) as u8).collect();
    let want = std::fs::read(data("mx/to_blocked_130x6.u8")).unwrap();
    let got = swizzle_scales(&scales, 130, 6).unwrap();
    assert_eq!(got, want);
    assert_eq!(unswizzle_scales(&got, 130, 6).unwrap(), scales);
    assert!(swizzle_scales(&scales, 130, 5).is_err());
    assert!(swizzle_scales(&[], usize::MAX, 2).is_err());
    assert!(unswizzle_scales(&got[1..], 130, 6).is_err());
}

#[test]
fn bad_input_is_an_error() {
    use lowbit::QuantError;
    let q = MxQuantizer::new(MxElement::E4M3, ScaleRule::Floor).unwrap();
    assert_eq!(
        q.quantize(&[1.0; 33]).unwrap_err(),
        QuantError::NotWholeBlocks { len: 33, block: 32 }
    );
    let mut x = vec![1.0f32; 64];
    x[40] = f32::NAN;
    assert_eq!(
        q.quantize(&x).unwrap_err(),
        QuantError::NonFinite { group: 1, index: 40 }
    );
    assert!(MxQuantizer::new(MxElement::Int8, ScaleRule::Ceil).is_err());
    assert!(q.with_rounding(Rounding::TowardZero).is_err());
    assert!(MxQuantizer::new(MxElement::E4M3, ScaleRule::RCeil)
        .unwrap()
        .with_rounding(Rounding::NearestAway)
        .is_err());
    assert!(q.with_non_finite(NonFinite::Skip).is_err());
    assert!(q.with_block_size(0).is_err());
    assert!(MxQuantizer::new(MxElement::E2M3, ScaleRule::Floor)
        .unwrap()
        .with_block_size(6)
        .is_err());
    assert!(Nvfp4Quantizer::new(TensorScale::Fixed(f32::NAN)).is_err());
    assert!(Nvfp4Quantizer::new(TensorScale::Fixed(0.0)).is_err());
    assert!(Nvfp4Quantizer::new(TensorScale::None)
        .unwrap()
        .quantize(&[1.0; 17])
        .is_err());
    // Decoding with the wrong quantizer or buffer is refused.
    let z = q.quantize(&[1.0; 32]).unwrap();
    let fp4 = MxQuantizer::new(MxElement::E2M1, ScaleRule::Floor).unwrap();
    assert!(fp4.dequantize(&z).is_err());
    assert!(q.dequantize_into(&z, &mut [0.0; 31]).is_err());
    let two = Nvfp4Quantizer::new(TensorScale::FromAmax).unwrap();
    let one = Nvfp4Quantizer::new(TensorScale::None).unwrap();
    assert!(one.dequantize(&two.quantize(&[1.0; 16]).unwrap()).is_err());
    // An all-zero tensor under two levels codes zeros (torchao would divide 0 by 0).
    let z = two.quantize(&[0.0; 16]).unwrap();
    assert_eq!(two.dequantize(&z).unwrap(), [0.0; 16]);
}

/// Fuzz finding F33: under `TensorScale::FromAmax`, a tensor whose amax is below
/// `2688 × 2^-150` got the tensor scale `amax / 2688 = 0`: its all-zero blocks the NaN scale
/// (finite data dequantized to NaN), and a `Quantized` that `from_bytes` refuses (a zero tensor
/// scale is `ScaleOutOfRange`). Such a tensor codes as zeros under a tensor scale of 1, as an
/// all-zero one; from `2688 × 2^-150` up the scale is torchao's.
#[test]
fn nvfp4_tensor_scale_never_underflows_to_zero() {
    use lowbit::quant::Quantized;
    let two = Nvfp4Quantizer::new(TensorScale::FromAmax).unwrap();
    let tiny = |k: u32| f32::from_bits(k); // k × 2^-149
    for amax in [tiny(1), tiny(700), tiny(1343), tiny(1344)] {
        for x in [vec![amax; 16], [vec![amax, -amax], vec![0.0; 30]].concat()] {
            let z = two.quantize(&x).unwrap();
            assert_eq!(z.tensor_scale(), Some(1.0), "amax {amax:e}");
            assert!(!z.has_non_finite_scales());
            let y = two.dequantize(&z).unwrap();
            assert!(y.iter().all(|&v| v == 0.0), "amax {amax:e}: {y:?}");
            assert_eq!(Quantized::from_bytes(&z.to_bytes()).unwrap(), z);
            let mut f = vec![f32::NAN; x.len()];
            two.fake_quantize(&x, &mut f).unwrap();
            assert!(f.iter().all(|&v| v == 0.0));
        }
    }
    // F34: up to an amax of about 5.07e-34 torchao's tensor scale makes the element multiplier
    // of the smallest block scale overflow (zeros came back nonzero, errors reached amax / 2);
    // such tensors take the scale 1 too, and code as zeros.
    for amax in [tiny(1345), 1e-37, 1e-36, 1e-35, 5e-34] {
        let x = [vec![amax, -amax * 0.5, amax * 0.25], vec![0.0; 13], vec![0.0; 16]].concat();
        let z = two.quantize(&x).unwrap();
        assert_eq!(z.tensor_scale(), Some(1.0), "amax {amax:e}");
        let y = two.dequantize(&z).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "amax {amax:e}: {y:?}");
    }
    // Above, torchao's scale, and zeros stay zeros.
    for amax in [6e-34f32, 1e-33, 1e-30] {
        let x = [vec![amax, -amax * 0.5, amax * 0.25], vec![0.0; 13], vec![0.0; 16]].concat();
        let z = two.quantize(&x).unwrap();
        assert_eq!(z.tensor_scale(), Some(amax / 2688.0), "amax {amax:e}");
        assert_eq!(Quantized::from_bytes(&z.to_bytes()).unwrap(), z);
        let y = two.dequantize(&z).unwrap();
        assert!(y[3..].iter().all(|&v| v == 0.0), "amax {amax:e}: {y:?}");
        assert!(
            x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= amax / 2.0),
            "amax {amax:e}: {y:?}"
        );
    }
}

mod props {
    use super::*;
    use lowbit::FloatFormat;
    use proptest::prelude::*;

    fn block() -> impl Strategy<Value = Vec<f32>> {
        (prop::collection::vec(-1.0f32..1.0, 64), -30i32..30).prop_map(|(v, e)| {
            let s = 2f32.powi(e);
            v.into_iter().map(|x| x * s).collect()
        })
    }

    const ELEMENTS: [MxElement; 6] = MxElement::ALL;

    proptest! {
        /// Floor's scale is the spec's: `amax / scale` lies in `[2^emax, 2^(emax+1))`; elements
        /// are nearest (the dequantized value is the element grid value nearest `x / scale`,
        /// unless saturated); requantizing the values gives the same bytes; bytes round-trip;
        /// blocks are independent.
        #[test]
        fn mx_properties(x in block(), ei in 0usize..6) {
            let elem = ELEMENTS[ei];
            let q = MxQuantizer::new(elem, ScaleRule::Floor).unwrap();
            let z = q.quantize(&x).unwrap();
            let y = q.dequantize(&z).unwrap();
            let mut f = vec![0f32; x.len()];
            q.fake_quantize(&x, &mut f).unwrap();
            prop_assert_eq!(bits(&f), bits(&y), "fake quantization equals quantize + dequantize");
            let emax = match elem {
                MxElement::E4M3 => 8, MxElement::E5M2 => 15, MxElement::E2M3 | MxElement::E2M1 => 2,
                MxElement::E3M2 => 4, MxElement::Int8 => 0,
            };
            for (b, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let scale = z.scales()[b];
                if amax > 0.0 && amax >= 2f32.powi(-100) {
                    let r = amax / scale;
                    prop_assert!(r >= 2f32.powi(emax) && r < 2f32.powi(emax + 1), "block {}: {} / {}", b, amax, scale);
                }
                // Nearest: no neighbouring grid value is closer to x / scale (saturated
                // elements are the grid's maximum).
                let codes = z.unpacked_codes();
                for (k, (&a, &v)) in xs.iter().zip(ys).enumerate() {
                    let t = a / scale;
                    let c = codes[b * 32 + k];
                    let grid = |c: i32| -> Option<f32> {
                        match elem {
                            MxElement::E4M3 if (0..0x7f).contains(&(c & 0x7f)) && (0..256).contains(&c) => Some(lowbit::E4M3::decode_f32(c as u8)),
                            MxElement::E5M2 if (0..0x7c).contains(&(c & 0x7f)) && (0..256).contains(&c) => Some(lowbit::E5M2::decode_f32(c as u8)),
                            MxElement::E2M3 if (0..64).contains(&c) => Some(lowbit::E2M3::decode_f32(c as u8)),
                            MxElement::E3M2 if (0..64).contains(&c) => Some(lowbit::E3M2::decode_f32(c as u8)),
                            MxElement::E2M1 if (0..16).contains(&c) => Some(lowbit::E2M1::decode_f32(c as u8)),
                            MxElement::Int8 if (-127..=127).contains(&c) => Some(c as f32 / 64.0),
                            _ => None,
                        }
                    };
                    let c = if elem == MxElement::Int8 { i32::from(c as i8) } else { i32::from(c) };
                    let g = grid(c).unwrap();
                    prop_assert_eq!(g * scale, v);
                    for n in [c - 1, c + 1] {
                        if let Some(h) = grid(n) {
                            if h.signum() == g.signum() || h == 0.0 || g == 0.0 {
                                prop_assert!((t - g).abs() <= (t - h).abs(), "{} / {}: {} is nearer than {}", a, scale, h, g);
                            }
                        }
                    }
                }
            }
            let z2 = q.quantize(&y).unwrap();
            prop_assert_eq!(&z2, &z);
            prop_assert_eq!(&lowbit::quant::Quantized::from_bytes(&z.to_bytes()).unwrap(), &z);
            let halves = [q.quantize(&x[..32]).unwrap(), q.quantize(&x[32..]).unwrap()];
            let mut codes = halves[0].unpacked_codes();
            codes.extend(halves[1].unpacked_codes());
            prop_assert_eq!(codes, z.unpacked_codes());
        }

        #[test]
        fn nvfp4_properties(x in block()) {
            let q = Nvfp4Quantizer::new(TensorScale::None).unwrap();
            let z = q.quantize(&x).unwrap();
            let y = q.dequantize(&z).unwrap();
            for ts in [TensorScale::None, TensorScale::FromAmax] {
                let q = Nvfp4Quantizer::new(ts).unwrap();
                let mut f = vec![0f32; x.len()];
                q.fake_quantize(&x, &mut f).unwrap();
                prop_assert_eq!(bits(&f), bits(&q.dequantize(&q.quantize(&x).unwrap()).unwrap()));
            }
            for (b, (xs, ys)) in x.chunks(16).zip(y.chunks(16)).enumerate() {
                let s = z.scales()[b];
                let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                if !(amax / 6.0 <= 448.0 && amax / 6.0 >= 2f32.powi(-6)) {
                    continue; // the block scale is clamped: elements saturate by design
                }
                for (&a, &v) in xs.iter().zip(ys) {
                    // E2M1's largest gap is 2 (between 4 and 6), and the scale is within an
                    // E4M3 rounding of amax / 6: at most one unit of the scale and a bit.
                    prop_assert!((a - v).abs() <= s * 1.07, "{} -> {} (scale {})", a, v, s);
                }
            }
            prop_assert_eq!(&lowbit::quant::Quantized::from_bytes(&z.to_bytes()).unwrap(), &z);
            let two = Nvfp4Quantizer::new(TensorScale::FromAmax).unwrap();
            let z = two.quantize(&x).unwrap();
            prop_assert_eq!(&lowbit::quant::Quantized::from_bytes(&z.to_bytes()).unwrap(), &z);
        }
    }
}
