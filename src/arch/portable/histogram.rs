//! The portable twins of the histogram scan kernels of `x86` (the histogram calibrator's
//! counting loops). They live here rather than in `calib` because they work on plain arrays
//! only: a page index, fine-bin words and the values.

use crate::arch::KeyScan;

/// Entries of the page index (sign × 256 + exponent).
const PAGES: usize = 512;
/// The page index's mark of a page not allocated.
const NONE: u32 = u32::MAX;

/// For each value `data[j]`: its fine bin `slot[j]` (the page's offset from `index` plus the
/// slot in the page) and its extremes word `word[j]` (low mantissa bits in the high half, their
/// complement in the low half); also the maxima of the values (see [`KeyScan`]). The portable
/// twin of `x86::fine_keys_avx2`.
#[inline(always)]
pub(crate) fn fine_keys(index: &[u32; PAGES], data: &[f32], fine: u32, slot: &mut [u32], word: &mut [u32]) -> KeyScan {
    let shift = 23 - fine;
    let mask = (1u32 << fine) - 1;
    let low = (1u32 << shift) - 1;
    let mut missing = false;
    let (mut pos, mut neg) = (0u32, 0u32);
    for ((s, w), &x) in slot.iter_mut().zip(word.iter_mut()).zip(data) {
        let b = x.to_bits();
        let off = index[(b >> 23) as usize];
        missing |= off == NONE;
        *s = off.wrapping_add((b >> shift) & mask);
        let l = b & low;
        *w = (l << 16) | (!l & 0xffff);
        // Branch-free: `sign` is all ones for a negative value.
        let sign = ((b as i32) >> 31) as u32;
        let a = b & 0x7fff_ffff;
        pos = pos.max(a & !sign);
        neg = neg.max(a & sign);
    }
    KeyScan { missing, pos, neg }
}

/// Counts each value (`words[slot[j]][0] += 1`) and widens its bin's extremes by `word[j]`.
/// The portable twin of `x86::count_and_widen_avx2`.
///
/// # Panics
///
/// If a slot is out of bounds (the callers pass slots of allocated pages).
#[inline(always)]
pub(crate) fn count_and_widen(words: &mut [[u32; 2]], slot: &[u32], word: &[u32]) {
    for &i in slot {
        words[i as usize][0] += 1;
    }
    widen_extremes(words, slot, word);
}

/// Widens the extremes `words[slot[j]][1]` by `word[j]` (both halves by `max`), writing only those
/// that change. The portable twin of `x86::widen_extremes_avx2`.
///
/// # Panics
///
/// If a slot is out of bounds (the callers pass slots of allocated pages).
#[inline(always)]
pub(crate) fn widen_extremes(words: &mut [[u32; 2]], slot: &[u32], word: &[u32]) {
    for (&i, &w) in slot.iter().zip(word) {
        let e = words[i as usize][1];
        let n = (e & 0xffff_0000).max(w & 0xffff_0000) | (e & 0xffff).max(w & 0xffff);
        if n != e {
            words[i as usize][1] = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The runtime-selected kernels (AVX2 where the CPU has it) against their portable
        /// twins: bins repeated within a step of eight, pages missing, ragged tails.
        #[test]
        fn kernels_match_portable(
            bits in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..300),
            pages in proptest::collection::vec(0u32..4, PAGES),
            slots in proptest::collection::vec(0u32..64, 0..300),
            fine in 11u32..17,
        ) {
            let index: [u32; PAGES] = std::array::from_fn(|p| if pages[p] == 0 { NONE } else { pages[p] * 4096 });
            let data: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let n = data.len();
            let (mut s1, mut w1, mut s2, mut w2) = (vec![0; n], vec![0; n], vec![0; n], vec![0; n]);
            let m1 = crate::arch::fine_keys(&index, &data, fine, &mut s1, &mut w1);
            let m2 = fine_keys(&index, &data, fine, &mut s2, &mut w2);
            proptest::prop_assert_eq!((m1, &s1, &w1), (m2, &s2, &w2));
            // The maxima are those of all the values, non-finite ones included.
            let mut want = KeyScan { missing: false, pos: 0, neg: 0 };
            for &b in &bits {
                want.missing |= index[(b >> 23) as usize] == NONE;
                if b >> 31 == 0 { want.pos = want.pos.max(b) } else { want.neg = want.neg.max(b & 0x7fff_ffff) }
            }
            proptest::prop_assert_eq!(m2, want);
            // Few bins, so that steps repeat them; words as `fine_keys` makes them.
            let words: Vec<u32> = slots.iter().map(|&i| { let l = i.wrapping_mul(0x9e37_79b9) >> 20; (l << 16) | (!l & 0xffff) }).collect();
            let start: Vec<[u32; 2]> = (0..64u32).map(|k| if k % 3 == 0 { [0, 0] } else { [k, (k * 40) << 16 | (0xffff - k * 30)] }).collect();
            let (mut a, mut b) = (start.clone(), start);
            crate::arch::count_and_widen(&mut a, &slots, &words);
            count_and_widen(&mut b, &slots, &words);
            proptest::prop_assert_eq!(a, b);
        }
    }
}
