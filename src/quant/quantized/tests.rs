use super::*;
use crate::format::FloatFormat;

#[test]
fn scale_codes_are_the_codecs() {
    fn check<S: FloatFormat>(values: &[f32]) {
        let n = values.len();
        let q = Quantized::from_parts(
            Scheme::Symmetric,
            8,
            n,
            Granularity::PerBlock(1),
            S::LAYOUT,
            vec![0; n],
            values.to_vec(),
            Vec::new(),
        )
        .unwrap();
        for (&v, &c) in values.iter().zip(q.scale_codes()) {
            assert_eq!(u64::from(c), S::encode_f32(v).to_u64(), "{} {v}", S::NAME);
        }
        let back = Quantized::from_bytes(&q.to_bytes()).unwrap();
        assert_eq!(back.scale_codes(), q.scale_codes());
        assert_eq!(
            back.scales().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    check::<crate::E4M3>(&[0.0, 1.0, 0.375, 448.0, 2f32.powi(-9), -3.0]);
    check::<crate::E8M0>(&(0..255).map(crate::E8M0::decode_f32).collect::<Vec<_>>());
    check::<crate::Fp16>(
        &(0..=0xffffu16)
            .step_by(7)
            .map(crate::Fp16::decode_f32)
            .filter(|v| !v.is_nan())
            .collect::<Vec<_>>(),
    );
    check::<Fp32>(&[0.1, -0.0, f32::MAX, 1e-45]);
    // A value that is not one of the format's is refused, not rounded silently.
    let r = Quantized::from_parts(
        Scheme::Symmetric,
        8,
        1,
        Granularity::PerTensor,
        crate::E4M3::LAYOUT,
        vec![0],
        vec![0.3],
        Vec::new(),
    );
    assert_eq!(r, Err(Error::ScaleNotInFormat { group: 0, scale: 0.3 }));
}

#[test]
fn other_scheme_tags_round_trip() {
    for t in [0u8, 1, 200, 253] {
        let q = Quantized::from_parts(
            Scheme::Other(t),
            8,
            0,
            Granularity::PerTensor,
            Fp32::LAYOUT,
            vec![],
            vec![],
            vec![],
        )
        .unwrap();
        assert_eq!(Quantized::from_bytes(&q.to_bytes()).unwrap().scheme(), Scheme::Other(t));
    }
    for t in [254u8, 255] {
        let r = Quantized::from_parts(
            Scheme::Other(t),
            8,
            0,
            Granularity::PerTensor,
            Fp32::LAYOUT,
            vec![],
            vec![],
            vec![],
        );
        assert_eq!(r, Err(Error::UnsupportedScheme(t)));
    }
}
