use super::*;

/// A state with a zero block size could be built by hand and then divided by zero; now
/// its constructor refuses it, and so does every other inconsistent state.
#[test]
fn states_are_checked() {
    let plain = || Absmax::Plain(vec![1.0; 2]);
    assert!(matches!(
        QuantState::new(plain(), 0, QuantType::Nf4, 100),
        Err(Error::BlockSize { size: 0, .. })
    ));
    assert!(matches!(
        QuantState::new(plain(), 64, QuantType::Nf4, 1 << 40),
        Err(Error::LengthMismatch { .. })
    ));
    let st = QuantState::new(plain(), 64, QuantType::Fp4, 100).unwrap();
    assert_eq!((st.blocksize(), st.len(), st.quant_type()), (64, 100, QuantType::Fp4));
    assert_eq!(dequantize_4bit(&[0u8; 50], &st).unwrap().len(), 100);
    assert_eq!(
        DoubleQuant::from_parts(vec![0; 4], vec![1.0], 0.5, 0),
        Err(Error::ZeroGroupSize)
    );
    assert!(matches!(
        DoubleQuant::from_parts(vec![0; 4], vec![1.0, 2.0], 0.5, 256),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(DoubleQuant::from_parts(vec![0; 4], vec![f32::NAN], 0.5, 256).is_err());
    let dq = DoubleQuant::from_parts(vec![0; 2], vec![1.0], 0.5, 256).unwrap();
    let st = QuantState::new(Absmax::Double(dq), 64, QuantType::Nf4, 100).unwrap();
    assert_eq!(st.absmax().unwrap().len(), 2);
}

#[test]
fn bad_input() {
    assert!(matches!(
        quantize_4bit(&[1.0; 8], 48, QuantType::Nf4, false),
        Err(Error::BlockSize { .. })
    ));
    assert!(matches!(
        quantize_4bit(&[1.0, f32::NAN], 64, QuantType::Fp4, false),
        Err(Error::NonFinite { group: 0, .. })
    ));
    assert!(matches!(
        quantize_blockwise(&[1.0; 8], 32),
        Err(Error::BlockSize { .. })
    ));
    let (p, s) = quantize_4bit(&[1.0; 9], 64, QuantType::Nf4, true).unwrap();
    assert_eq!(p.len(), 5);
    assert!(matches!(
        dequantize_4bit(&p[..4], &s),
        Err(Error::LengthMismatch { .. })
    ));
    let mut bad = s.clone();
    bad.len = 1000;
    assert!(dequantize_4bit(&p, &bad).is_err());
    let (q, mut st) = quantize_blockwise(&[1.0; 100], 64).unwrap();
    st.absmax.pop();
    assert!(matches!(
        dequantize_blockwise(&q, &st),
        Err(Error::LengthMismatch { .. })
    ));
    st.code.pop();
    assert!(matches!(dequantize_blockwise(&q, &st), Err(Error::Codebook(_))));
}

#[test]
fn empty_is_fine() {
    let (p, s) = quantize_4bit(&[], 64, QuantType::Nf4, true).unwrap();
    assert!(p.is_empty());
    assert!(dequantize_4bit(&p, &s).unwrap().is_empty());
}

#[test]
fn zero_block_codes_like_bnb() {
    let (p, s) = quantize_4bit(&[0.0; 4], 64, QuantType::Nf4, false).unwrap();
    assert_eq!(p, vec![0, 0]);
    let y = dequantize_4bit(&p, &s).unwrap();
    assert!(y.iter().all(|v| v.to_bits() == (-0.0f32).to_bits()));
    let (p, _) = quantize_4bit(&[0.0; 3], 64, QuantType::Fp4, false).unwrap();
    assert_eq!(p, vec![0, 0]);
}
