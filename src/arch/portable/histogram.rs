//! The portable twin of the histogram counting kernel of `x86` (the histogram calibrator's
//! inner loop). It lives here rather than in `calib` because it works on plain arrays only: a
//! page index, fine-bin words and the values.

/// Entries of the page index (sign × 256 + exponent).
const PAGES: usize = 512;
/// The page index's mark of a page not allocated.
const NONE: u32 = u32::MAX;
/// Values per step of [`count_values`]: a step is counted whole or not at all.
pub(crate) const STEP: usize = 8;

/// Counts `data` into the fine bins `words`, [`STEP`] values a step, and widens `maxima`
/// (largest positive magnitude, largest negative magnitude, as bits) by the values counted.
///
/// Value `x` with bits `b` goes to the fine bin `index[b >> 23] + ((b >> (23 - fine)) & (2^fine
/// - 1))`: its count `words[i][0]` grows by one and its extremes word `words[i][1]` (the
/// largest low mantissa bits `l = b & (2^(23 - fine) - 1)` in the high half, the complement of
/// the smallest in the low half) widens by `l << 16 | !l & 0xffff`, each half by `max`.
///
/// Stops with `Err(start of the step)` at the first step holding a value whose page is not
/// allocated (`index` holds [`NONE`]; always so for a non-finite value, whose page is never
/// allocated), having counted the steps before it and nothing of that step. The portable twin
/// of `x86::count_values_avx2`.
///
/// # Panics
///
/// If a bin is out of bounds (the callers pass the index of `words`).
#[inline(always)]
pub(crate) fn count_values(
    index: &[u32; PAGES],
    words: &mut [[u32; 2]],
    data: &[f32],
    fine: u32,
    maxima: &mut [u32; 2],
) -> Result<(), usize> {
    let shift = 23 - fine;
    let mask = (1u32 << fine) - 1;
    let low = (1u32 << shift) - 1;
    for (k, step) in data.chunks(STEP).enumerate() {
        if step.iter().any(|x| index[(x.to_bits() >> 23) as usize] == NONE) {
            return Err(k * STEP);
        }
        for &x in step {
            let b = x.to_bits();
            let i = index[(b >> 23) as usize] as usize + ((b >> shift) & mask) as usize;
            let l = b & low;
            let w = (l << 16) | (!l & 0xffff);
            let bin = &mut words[i];
            bin[0] += 1;
            let e = bin[1];
            bin[1] = (e & 0xffff_0000).max(w & 0xffff_0000) | (e & 0xffff).max(w & 0xffff);
            let a = b & 0x7fff_ffff;
            let m = &mut maxima[(b >> 31) as usize];
            *m = (*m).max(a);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite or not, from a few pages (so that bins repeat within a step) or any.
    fn value() -> impl proptest::strategy::Strategy<Value = u32> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u32>(),
            (any::<u32>(), 0u32..4, any::<bool>())
                .prop_map(|(b, e, s)| (b & 0x7f_fff0) | ((125 + e) << 23) | (u32::from(s) << 31)),
            (0u32..6, any::<bool>()).prop_map(|(k, s)| (k << 20) | (127 << 23) | (u32::from(s) << 31)),
            (0u32..40).prop_map(|b| b | (u32::from(b % 2 == 0) << 31)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The runtime-selected kernel (AVX2 where the CPU has it) against its portable twin:
        /// same counts, extremes, maxima and stopping step; pages missing (non-finite values
        /// included), bins repeated within a step, subnormals, ±0, every tail length.
        #[test]
        fn kernel_matches_portable(
            bits in proptest::collection::vec(value(), 0..200),
            missing in proptest::collection::vec(0u32..6, 0..4),
            fine in 11u32..17,
        ) {
            // Pages of every value allocated (in order of first occurrence), but the
            // non-finite ones and those of `missing` (exponents 125..=127 and 0, both signs).
            let mut index = [NONE; PAGES];
            let mut pages = 0u32;
            for &b in &bits {
                let p = (b >> 23) as usize;
                let gone = p & 0xff == 0xff || missing.iter().any(|&m| [125, 126, 127, 0, 256 + 126, 256][m as usize] == p);
                if index[p] == NONE && !gone {
                    index[p] = pages << fine;
                    pages += 1;
                }
            }
            // Extremes already seen in some bins, counts anywhere.
            let start: Vec<[u32; 2]> = (0..(pages << fine))
                .map(|k| if k % 3 == 0 { [0, 0] } else { [k, (k % 4096) << 16 | (0xffff - k % 3000)] })
                .collect();
            let data: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let (mut a, mut b) = (start.clone(), start);
            let (mut ma, mut mb) = ([3u32, 0], [3u32, 0]);
            let ra = crate::arch::count_values(&index, &mut a, &data, fine, &mut ma);
            let rb = count_values(&index, &mut b, &data, fine, &mut mb);
            proptest::prop_assert_eq!(ra, rb);
            proptest::prop_assert_eq!(ma, mb);
            proptest::prop_assert!(a == b);
            // Every tail length: each prefix of the values.
            if let Some(n) = bits.len().checked_sub(1) {
                let cut = n % 23;
                let (mut a, mut b) = (b.clone(), b);
                let ra = crate::arch::count_values(&index, &mut a, &data[..cut], fine, &mut ma);
                let rb = count_values(&index, &mut b, &data[..cut], fine, &mut mb);
                proptest::prop_assert_eq!((ra, ma), (rb, mb));
                proptest::prop_assert!(a == b);
            }
        }
    }

    /// Every tail length from 0 to 40 and every position of a missing page in it.
    #[test]
    fn tails_and_stops() {
        let fine = 11;
        let mut index = [NONE; PAGES];
        index[127] = 0;
        index[256 + 127] = 1 << fine;
        let ok: Vec<f32> = (0..40)
            .map(|i| {
                if i % 3 == 0 {
                    -1.0 - i as f32 / 64.0
                } else {
                    1.0 + i as f32 / 40.0
                }
            })
            .collect();
        for n in 0..=40 {
            for bad in (0..n).map(Some).chain([None]) {
                let mut x = ok[..n].to_vec();
                if let Some(at) = bad {
                    x[at] = if at % 2 == 0 { f32::NAN } else { 4.0 };
                }
                let (mut a, mut b) = (vec![[0u32; 2]; 2 << fine], vec![[0u32; 2]; 2 << fine]);
                let (mut ma, mut mb) = ([0u32; 2], [0u32; 2]);
                let ra = crate::arch::count_values(&index, &mut a, &x, fine, &mut ma);
                let rb = count_values(&index, &mut b, &x, fine, &mut mb);
                assert_eq!(rb, bad.map_or(Ok(()), |at| Err(at / STEP * STEP)));
                assert_eq!((ra, ma), (rb, mb), "{n} {bad:?}");
                assert!(a == b);
            }
        }
    }
}
