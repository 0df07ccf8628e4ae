use super::*;

/// Block by block with [`q8_0`]: what the kernel and the eight-block path must equal.
fn q8_0_blockwise(x: &[f32]) -> Result<Vec<BlockQ8_0>, Error> {
    x.chunks_exact(QK).enumerate().map(|(i, c)| q8_0(arr(c)?, i)).collect()
}

fn bytes(b: &[BlockQ8_0]) -> &[u8] {
    bytemuck::cast_slice(b)
}

/// The AVX2 kernel (where the CPU has it), the eight-block path and the block-by-block
/// reference agree bit for bit: random data at many scales, exact ties, zero blocks,
/// subnormal and huge blocks, NaN and infinity, every tail length.
#[test]
fn q8_0_fast_paths_equal_blockwise() {
    let mut rng = crate::testing::XorShift(0x2545_f491_4f6c_dd1d);
    let mut rnd = move || rng.next_u64();
    let mut x = Vec::new();
    for b in 0..400 {
        let r = rnd();
        let block: Vec<f32> = match b % 8 {
            // Exact ties: amax 127 gives id 1, and every k + 0.5 is a tie.
            0 => (0..QK)
                .map(|j| {
                    if j == 0 {
                        127.0
                    } else {
                        (rnd() % 254) as f32 / 2.0 - 63.5
                    }
                })
                .collect(),
            1 => vec![0.0; QK],
            2 => (0..QK).map(|_| f32::from_bits((rnd() as u32) & 0x807f_ffff)).collect(), // subnormal
            3 => (0..QK)
                .map(|_| f32::from_bits((rnd() as u32 & 0x80ff_ffff) | 0x7e00_0000))
                .collect(), // ~1e38
            _ => {
                let scale = f32::from_bits(((r >> 40) as u32 % 110 + 60) << 23);
                (0..QK)
                    .map(|_| ((rnd() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale)
                    .collect()
            }
        };
        x.extend(block);
    }
    let finite: Vec<f32> = x
        .chunks_exact(QK)
        .filter(|c| q8_0(arr(c).unwrap(), 0).is_ok())
        .flatten()
        .copied()
        .collect();
    assert!(finite.len() >= 300 * QK);
    for len in [0, 1, 7, 8, 9, 15, 16, 17, 250] {
        let x = &finite[..len * QK];
        let want = q8_0_blockwise(x).unwrap();
        let mut got = vec![BlockQ8_0::zeroed(); len];
        quantize_q8_0_into(x, &mut got).unwrap();
        assert_eq!(bytes(&got), bytes(&want), "{len} blocks");
        let mut eight = vec![BlockQ8_0::zeroed(); len];
        for (j, (xs, os)) in x.chunks_exact(8 * QK).zip(eight.chunks_exact_mut(8)).enumerate() {
            q8_0_x8(xs, os, 8 * j).unwrap();
        }
        let done = len / 8 * 8;
        assert_eq!(
            bytes(&eight[..done]),
            bytes(&want[..done]),
            "{len} blocks, eight at a time"
        );
    }
    // Blocks the kernel hands back: the same results and the same first error.
    for bad in [f32::NAN, f32::INFINITY, 1e38, 1e-44] {
        for at in [0, 5 * QK + 3, 17 * QK] {
            let mut y = finite[..20 * QK].to_vec();
            y[at] = bad;
            let mut got = vec![BlockQ8_0::zeroed(); 20];
            let r = quantize_q8_0_into(&y, &mut got);
            assert_eq!(r, q8_0_blockwise(&y).map(|_| ()), "{bad} at {at}");
            if let Ok(want) = q8_0_blockwise(&y) {
                assert_eq!(bytes(&got), bytes(&want), "{bad} at {at}");
            }
        }
    }
}

#[test]
fn roundf_ties_away() {
    for (t, r) in [
        (0.5, 1.0),
        (1.5, 2.0),
        (2.5, 3.0),
        (-0.5, -1.0),
        (-2.5, -3.0),
        (0.49999997, 0.0),
        (126.6, 127.0),
    ] {
        assert_eq!(roundf(t), r, "{t}");
    }
}

#[test]
fn trunc_and_int() {
    for t in [0.0f32, 0.25, 0.5, 0.99999994, 1.0, 1.5, 2.5, 14.999999, 15.0] {
        assert_eq!(trunc_pos(t), t.trunc(), "{t}");
        assert_eq!(int(t.trunc()), t as i32);
    }
    assert_eq!(int(-127.0), -127);
}

#[test]
fn errors() {
    assert_eq!(
        quantize_q8_0(&[0.0; 33]),
        Err(Error::NotWholeBlocks { len: 33, block: 32 })
    );
    let mut x = [0.0f32; 64];
    x[40] = f32::NAN;
    assert_eq!(quantize_q4_1(&x), Err(Error::NonFinite { group: 1, index: 40 }));
    x[40] = 1e10;
    assert!(matches!(
        quantize_q4_0(&x),
        Err(Error::ScaleOutOfRange { group: 1, .. })
    ));
    assert!(dequantize_q8_0(&[BlockQ8_0::zeroed()], &mut [0.0; 31]).is_err());
    assert_eq!(quantize_q8_0(&[]), Ok(vec![]));
}

/// The AVX-512 `Q8_0` dequantize, called directly (when the CPU has AVX-512), against the
/// portable loop bit for bit: every one of the 65 536 scales (subnormal, infinite and NaN ones
/// with their payloads included), random codes with -128, 0 and 127 at every position, and
/// every block count up to 9; also through `dequantize_into`.
#[test]
fn q8_0_dequantize_avx512_equals_portable() {
    let mut rng = crate::testing::XorShift(0x9e37_79b9_7f4a_7c15);
    let blocks: Vec<BlockQ8_0> = (0..=u16::MAX)
        .map(|h| {
            let mut b = BlockQ8_0::zeroed();
            b.d = f16::from_bits(h);
            for q in &mut b.qs {
                *q = rng.next_u64() as i8;
            }
            b.qs[usize::from(h) % QK] = [-128, 0, 127][usize::from(h) % 3];
            b
        })
        .collect();
    let has_avx512 = {
        #[cfg(target_arch = "x86_64")]
        let yes = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl");
        #[cfg(not(target_arch = "x86_64"))]
        let yes = false;
        yes
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let check = |b: &[BlockQ8_0]| {
        let mut want = vec![0f32; b.len() * QK];
        dequantize_portable(b, &mut want);
        let mut got = vec![f32::from_bits(0x7fa5_a5a5); b.len() * QK + 1];
        let n = got.len() - 1;
        let ran = crate::arch::dequantize_i8_f16_blocks_avx512(bytes(b), &mut got[..n], |h| value(f16::from_bits(h)));
        assert_eq!(ran, has_avx512);
        if ran {
            assert_eq!(bits(&got[..n]), bits(&want), "{} blocks", b.len());
            assert_eq!(got[n].to_bits(), 0x7fa5_a5a5, "wrote past the end");
        }
        let mut via = vec![0f32; n];
        BlockQ8_0::dequantize_into(b, &mut via).unwrap();
        assert_eq!(bits(&via), bits(&want));
    };
    check(&blocks);
    for start in [0, 1, 31_744, 65_000] {
        for len in 0..=9 {
            check(&blocks[start..start + len]);
        }
    }
}

/// The AVX2 `Q4_0` and `Q4_1` dequantize (where the CPU has it), called directly and through
/// `dequantize_into`, against the portable loop bit for bit: every one of the 65 536 scales
/// and, for `Q4_1`, minima (subnormal, infinite and NaN ones included), random codes with 0
/// and 15 at every position, and every block count up to 9.
#[test]
fn q4_dequantize_kernel_equals_portable() {
    let mut rng = crate::testing::XorShift(0x6a09_e667_f3bc_c908);
    let mut q40 = Vec::new();
    let mut q41 = Vec::new();
    for h in 0..=u16::MAX {
        let mut qs = [0u8; QK / 2];
        for q in &mut qs {
            *q = rng.next_u64() as u8;
        }
        qs[usize::from(h) % (QK / 2)] = [0x00, 0xff, 0x0f, 0xf0][usize::from(h) % 4];
        let d = f16::from_bits(h);
        q40.push(BlockQ4_0 { d, qs });
        let m = f16::from_bits(h.wrapping_mul(40_503));
        q41.push(BlockQ4_1 { d, m, qs });
    }
    let avx2 = {
        #[cfg(target_arch = "x86_64")]
        let yes = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let yes = false;
        yes
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    fn check<B: GgmlBlock>(
        b: &[B],
        avx2: bool,
        affine: bool,
        scale: fn(&[u8]) -> (f32, f32),
        bits: impl Fn(&[f32]) -> Vec<u32>,
    ) {
        let mut want = vec![0f32; b.len() * QK];
        dequantize_portable(b, &mut want);
        let mut got = vec![f32::from_bits(0x7fa5_a5a5); b.len() * QK + 1];
        let n = got.len() - 1;
        let ran =
            crate::arch::dequantize_u4_blocks(bytemuck::cast_slice(b), size_of::<B>(), affine, &mut got[..n], scale);
        assert_eq!(ran, avx2);
        if ran {
            assert_eq!(bits(&got[..n]), bits(&want), "{} blocks", b.len());
            assert_eq!(got[n].to_bits(), 0x7fa5_a5a5, "wrote past the end");
        }
        let mut via = vec![0f32; n];
        B::dequantize_into(b, &mut via).unwrap();
        assert_eq!(bits(&via), bits(&want));
    }
    let s0: fn(&[u8]) -> (f32, f32) = |r| (half_at(r, 0), 0.0);
    let s1: fn(&[u8]) -> (f32, f32) = |r| (half_at(r, 0), half_at(r, 2));
    check(&q40, avx2, false, s0, bits);
    check(&q41, avx2, true, s1, bits);
    for start in [0, 1, 31_744, 65_000] {
        for len in 0..=9 {
            check(&q40[start..start + len], avx2, false, s0, bits);
            check(&q41[start..start + len], avx2, true, s1, bits);
        }
    }
}

/// The `Q4_0` and `Q4_1` fast path (the AVX2 kernel eight blocks a step where the CPU has it)
/// against [`q4_0`] and [`q4_1`] block by block, bit for bit: random data at many scales,
/// values on the truncation boundaries, blocks holding both `+amax` and `-amax` (the first
/// decides the sign), zero blocks and blocks whose minimum or maximum is a zero of either sign,
/// subnormal and huge blocks, every tail length; and with a NaN, an infinity, an overflowing
/// scale or a tiny block placed anywhere, the same blocks and the same first error.
#[test]
fn q4_fast_paths_equal_blockwise() {
    let mut rng = crate::testing::XorShift(0x3c6e_f372_fe94_f82b);
    let mut rnd = move || rng.next_u64();
    let mut x = Vec::new();
    for b in 0..480 {
        let r = rnd();
        let mut block: Vec<f32> = match b % 12 {
            // id = ±1 and values on the half-integers: `x × id + 8.5` lands on integers.
            0 => (0..QK)
                .map(|j| if j == 3 { -8.0 } else { (rnd() % 32) as f32 / 2.0 - 8.0 })
                .collect(),
            1 => vec![0.0; QK],
            2 => (0..QK).map(|_| f32::from_bits((rnd() as u32) & 0x807f_ffff)).collect(),
            3 => (0..QK)
                .map(|_| f32::from_bits((rnd() as u32 & 0x80ff_ffff) | 0x4600_0000))
                .collect(),
            // Non-negative, with a zero minimum of either sign (ReLU outputs).
            4 => (0..QK)
                .map(|j| match j % 7 {
                    0 => [0.0, -0.0][(r as usize >> j) & 1],
                    _ => (rnd() >> 40) as f32 / (1u64 << 20) as f32,
                })
                .collect(),
            _ => {
                let scale = f32::from_bits(((r >> 40) as u32 % 40 + 100) << 23);
                (0..QK)
                    .map(|_| ((rnd() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale)
                    .collect()
            }
        };
        if b % 12 == 5 {
            // Both signs of the largest magnitude, in either order.
            let a = block.iter().fold(0f32, |a, v| a.max(v.abs())) * 1.5;
            let (i, j) = ((r % 32) as usize, ((r >> 8) % 32) as usize);
            block[i] = a;
            block[j] = -a;
        }
        if b % 12 == 6 {
            block.iter_mut().for_each(|v| *v = -v.abs());
        }
        x.extend(block);
    }
    let bytes4 = |b: &[BlockQ4_0]| bytemuck::cast_slice::<_, u8>(b).to_vec();
    let bytes41 = |b: &[BlockQ4_1]| bytemuck::cast_slice::<_, u8>(b).to_vec();
    let blockwise0 = |x: &[f32]| -> Result<Vec<BlockQ4_0>, Error> {
        x.chunks_exact(QK).enumerate().map(|(i, c)| q4_0(arr(c)?, i)).collect()
    };
    let blockwise1 = |x: &[f32]| -> Result<Vec<BlockQ4_1>, Error> {
        x.chunks_exact(QK).enumerate().map(|(i, c)| q4_1(arr(c)?, i)).collect()
    };
    assert!(blockwise0(&x).is_ok() && blockwise1(&x).is_ok());
    for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 480] {
        let x = &x[..len * QK];
        let mut got = vec![BlockQ4_0::zeroed(); len];
        quantize_q4_0_into(x, &mut got).unwrap();
        assert_eq!(bytes4(&got), bytes4(&blockwise0(x).unwrap()), "Q4_0, {len} blocks");
        let mut got = vec![BlockQ4_1::zeroed(); len];
        quantize_q4_1_into(x, &mut got).unwrap();
        assert_eq!(bytes41(&got), bytes41(&blockwise1(x).unwrap()), "Q4_1, {len} blocks");
    }
    for bad in [f32::NAN, f32::NEG_INFINITY, 1e38, -7e5, 1e-44] {
        for at in [0, 5 * QK + 3, 17 * QK, 30 * QK - 1] {
            let mut y = x[..32 * QK].to_vec();
            y[at] = bad;
            let mut got = vec![BlockQ4_0::zeroed(); 32];
            let r = quantize_q4_0_into(&y, &mut got);
            let want = blockwise0(&y);
            assert_eq!(r, want.as_ref().map(|_| ()).map_err(|e| *e), "Q4_0, {bad} at {at}");
            if let Ok(want) = want {
                assert_eq!(bytes4(&got), bytes4(&want), "Q4_0, {bad} at {at}");
            }
            let mut got = vec![BlockQ4_1::zeroed(); 32];
            let r = quantize_q4_1_into(&y, &mut got);
            let want = blockwise1(&y);
            assert_eq!(r, want.as_ref().map(|_| ()).map_err(|e| *e), "Q4_1, {bad} at {at}");
            if let Ok(want) = want {
                assert_eq!(bytes41(&got), bytes41(&want), "Q4_1, {bad} at {at}");
            }
        }
    }
}
