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
