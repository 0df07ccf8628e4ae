//! Observing a batch: blocks of [`BLOCK`] values, counted in one pass by the runtime-selected
//! kernel of `crate::arch` (which stops where a page must be allocated first), with the
//! non-finite values checked (and the state restored, or the values skipped) as [`NonFinite`]
//! says.

use super::{HistogramCalibrator, NonFinite, BLOCK, PAGES};
use crate::calib::minmax::first_non_finite;
use crate::calib::Error;

impl HistogramCalibrator {
    /// [`Calibrator::observe`](crate::calib::Calibrator::observe): the batch a block of
    /// [`BLOCK`] at a time, non-finite values checked as the policy says.
    pub(super) fn observe_batch(&mut self, batch: &[f32]) -> Result<(), Error> {
        // A strict batch of one block is checked before it is counted (nothing to undo). Longer
        // batches, and any batch under `NonFinite::Skip`, are checked while counting
        // (`scatter_checked` stops before the first non-finite value, within a chunk): then a strict
        // batch is restored from a copy taken before its first block, and a skipping one counts
        // the rest of that block through the filtering path below.
        let n = batch.len() as u64;
        if self.count.checked_add(n).is_none() || self.skipped.checked_add(n).is_none() {
            return Err(Error::CountOverflow);
        }
        let strict = self.nonfinite == NonFinite::Error;
        let check_first = strict && batch.len() <= BLOCK;
        let saved = (strict && !check_first).then(|| {
            (
                self.words.clone(),
                self.spill.clone(),
                self.index.clone(),
                self.sparse.clone(),
                self.since_flush,
            )
        });
        let (mut pm, mut nm) = (self.pos_max, self.neg_max);
        let (mut counted, mut skipped) = (0u64, 0u64);
        for block in batch.chunks(BLOCK) {
            let mut block = block;
            // Not when a flush is due: that goes by the number of finite values, as before.
            if !check_first && self.since_flush + block.len() as u64 <= u64::from(u32::MAX) {
                let mut m = [0u32; 2];
                let done = self.scatter_checked(block, &mut m);
                pm = pm.max(m[0]);
                nm = nm.max(m[1]);
                counted += done as u64;
                if done == block.len() {
                    continue;
                }
                block = &block[done..];
            }
            let (p, q, t) = crate::arch::run(Maxima(block));
            if t < 0x7f80_0000 {
                pm = pm.max(p);
                nm = nm.max(q);
                self.scatter(block);
                counted += block.len() as u64;
                continue;
            }
            if strict {
                if let Some((w, s, i, p, f)) = saved {
                    (self.words, self.spill, self.index, self.sparse, self.since_flush) = (w, s, i, p, f);
                }
                return Err(first_non_finite(batch));
            }
            let finite: Vec<f32> = block.iter().copied().filter(|x| x.is_finite()).collect();
            for &x in &finite {
                let b = x.to_bits();
                if b >> 31 == 0 {
                    pm = pm.max(b);
                } else {
                    nm = nm.max(b & 0x7fff_ffff);
                }
            }
            self.scatter(&finite);
            skipped += (block.len() - finite.len()) as u64;
            counted += finite.len() as u64;
        }
        self.pos_max = pm;
        self.neg_max = nm;
        self.count += counted;
        self.skipped += skipped;
        Ok(())
    }

    /// Counts values known to be finite.
    fn scatter(&mut self, chunk: &[f32]) {
        if self.since_flush + chunk.len() as u64 > u64::from(u32::MAX) {
            self.flush();
        }
        self.since_flush += chunk.len() as u64;
        let mut rest = chunk;
        while !rest.is_empty() {
            let job = Scatter {
                index: &self.index,
                words: &mut self.words,
                data: rest,
                fine: self.fine,
                maxima: &mut [0; 2],
            };
            match job.run() {
                Ok(()) => break,
                Err(at) => {
                    // A page is missing in the step at `at`: allocate the pages of the chunk
                    // from there (in order of first occurrence), then go on.
                    rest = &rest[at..];
                    for &x in &rest[..CHUNK.min(rest.len())] {
                        self.page((x.to_bits() >> 23) as usize);
                    }
                }
            }
        }
    }

    /// Counts `values` up to a stop of [`Scatter`] (a step needing a page not allocated yet)
    /// whose [`CHUNK`] values from there hold a non-finite value, widening `maxima` (positive,
    /// negative magnitude) by the values counted; returns how many were counted (all of them
    /// are finite). The caller checked that no flush is due (`since_flush + values.len()` fits
    /// in a u32). A non-finite value's page (exponent 0xff) is never allocated, so [`Scatter`]
    /// stops at its step as at any missing page; only a chunk of finite values allocates pages.
    fn scatter_checked(&mut self, values: &[f32], maxima: &mut [u32; 2]) -> usize {
        // Reserved first, so that a sparse page moved into `words` meanwhile (`page`) sees them.
        self.since_flush += values.len() as u64;
        let mut rest = values;
        let done = loop {
            let job = Scatter {
                index: &self.index,
                words: &mut self.words,
                data: rest,
                fine: self.fine,
                maxima,
            };
            match job.run() {
                Ok(()) => break values.len(),
                Err(at) => {
                    rest = &rest[at..];
                    let chunk = &rest[..CHUNK.min(rest.len())];
                    if chunk.iter().any(|x| !x.is_finite()) {
                        break values.len() - rest.len();
                    }
                    for &x in chunk {
                        self.page((x.to_bits() >> 23) as usize);
                    }
                }
            }
        };
        self.since_flush -= (values.len() - done) as u64;
        done
    }

    /// The per-value loop the chunked [`Scatter`] replaced, kept as its reference.
    #[cfg(test)]
    fn scatter_reference(&mut self, chunk: &[f32]) {
        if self.since_flush + chunk.len() as u64 > u64::from(u32::MAX) {
            self.flush();
        }
        self.since_flush += chunk.len() as u64;
        let shift = 23 - self.fine;
        let mask = (1u32 << self.fine) - 1;
        let low = (1u32 << shift) - 1;
        for &x in chunk {
            let b = x.to_bits();
            let i = self.page((b >> 23) as usize) + ((b >> shift) & mask) as usize;
            let l = b & low;
            self.words[i][0] += 1;
            let e = self.words[i][1];
            self.words[i][1] = ((e >> 16).max(l) << 16) | (e & 0xffff).max(!l & 0xffff);
        }
    }
}

/// The largest positive magnitude, the largest negative magnitude and the largest of all
/// (non-finite values included, as bits) of a block.
struct Maxima<'a>(&'a [f32]);

impl crate::arch::Job for Maxima<'_> {
    type Out = (u32, u32, u32);

    #[inline(always)]
    fn run(self) -> (u32, u32, u32) {
        // i32 arithmetic (the magnitudes fit) vectorises
        let (mut p, mut q, mut t) = (0i32, 0i32, 0i32);
        for &x in self.0 {
            let b = x.to_bits() as i32;
            let a = b & 0x7fff_ffff;
            let neg = b >> 31;
            t = t.max(a);
            p = p.max(a & !neg);
            q = q.max(a & neg);
        }
        (p as u32, q as u32, t as u32)
    }
}

/// Values whose pages [`HistogramCalibrator::scatter`] allocates at a time when counting stops
/// at a page not allocated yet.
const CHUNK: usize = 1024;

/// Counts finite values into allocated pages in one pass (`crate::arch::count_values`): the
/// fine bin of each value, its count, and its extremes where they grow. Stops with `Err(at)` at
/// the first step of values that needs a page not allocated yet, having counted the values
/// before `at` (and widened `maxima`, the largest positive and negative magnitudes, by them).
struct Scatter<'a> {
    index: &'a [u32; PAGES],
    words: &'a mut [[u32; 2]],
    data: &'a [f32],
    fine: u32,
    /// Widened by the largest positive and negative magnitudes of the values counted.
    maxima: &'a mut [u32; 2],
}

impl Scatter<'_> {
    fn run(self) -> Result<(), usize> {
        crate::arch::count_values(self.index, self.words, self.data, self.fine, self.maxima)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::digest;
    use super::super::NONE;
    use super::*;
    use crate::calib::{Calibrator, Method};

    /// The state as a whole, for "unchanged" checks: the bytes plus what they do not show (all
    /// but the spare capacity of the vectors).
    #[allow(clippy::type_complexity)]
    fn snapshot(h: &HistogramCalibrator) -> (Vec<u8>, Vec<[u32; 2]>, Vec<u64>, Vec<u32>, u64) {
        (
            h.to_bytes(),
            h.words.clone(),
            h.spill.clone(),
            h.index.to_vec(),
            h.since_flush,
        )
    }

    /// A non-finite value found while counting (batches of several blocks, and any batch under
    /// `NonFinite::Skip`) is undone exactly: the state after the error is the state before,
    /// pages allocated by the batch included; skipping counts as the per-value filter does.
    #[test]
    fn non_finite_while_counting_is_undone() {
        let n = 3 * BLOCK + 777;
        // New exponents in every block, so that the batch allocates pages before the error.
        let data: Vec<f32> = (0..n)
            .map(|i| ((i as f32) * 0.618).sin() * (1.0 + i as f32 / 64.0))
            .collect();
        let mut base = HistogramCalibrator::new(Method::Entropy { bits: 8 }).unwrap();
        base.observe(&data[..1000]).unwrap();
        let before = snapshot(&base);
        let bads = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7f80_0001),
        ];
        let places = [
            0,
            5,
            CHUNK - 1,
            CHUNK,
            BLOCK - 1,
            BLOCK,
            BLOCK + 3000,
            2 * BLOCK + 17,
            n - 1,
            n - 1,
        ];
        for (k, at) in places.into_iter().enumerate() {
            {
                let bad = bads[k % bads.len()];
                let mut h = base.clone();
                let mut v = data.clone();
                v[at] = bad;
                assert!(
                    matches!(h.observe(&v), Err(Error::NonFinite { index, .. }) if index == at),
                    "at {at}"
                );
                assert!(
                    snapshot(&h) == before,
                    "state changed by a failed batch (at {at}, {bad})"
                );
                assert_eq!(h.index[255], NONE);
                assert_eq!(h.index[511], NONE);
                // Skipping: the same state as observing the finite values.
                let mut s = base.clone().with_non_finite(NonFinite::Skip).unwrap();
                s.observe(&v).unwrap();
                v.remove(at);
                let mut want = base.clone().with_non_finite(NonFinite::Skip).unwrap();
                want.scatter_reference(&v);
                for &x in &v {
                    let m = x.to_bits() & 0x7fff_ffff;
                    if x.is_sign_negative() {
                        want.neg_max = want.neg_max.max(m);
                    } else {
                        want.pos_max = want.pos_max.max(m);
                    }
                }
                want.count += v.len() as u64;
                want.skipped += 1;
                assert!(snapshot(&s) == snapshot(&want), "skip at {at}, {bad}");
                assert_eq!((s.index[255], s.index[511]), (NONE, NONE));
            }
        }
        // One block under Skip (checked while counting), and strict (checked first).
        let mut v = data[..5000].to_vec();
        v[3000] = f32::NAN;
        let mut s = base.clone().with_non_finite(NonFinite::Skip).unwrap();
        s.observe(&v).unwrap();
        let mut h = base.clone();
        assert!(matches!(h.observe(&v), Err(Error::NonFinite { index: 3000, .. })));
        assert!(snapshot(&h) == before);
        v.remove(3000);
        let mut want = base.clone().with_non_finite(NonFinite::Skip).unwrap();
        want.observe(&v).unwrap();
        want.skipped += 1;
        assert!(snapshot(&s) == snapshot(&want));
        // Several non-finite values, one per block, and a batch of them only.
        let mut s = base.clone().with_non_finite(NonFinite::Skip).unwrap();
        let mut v = data.clone();
        for k in 0..4 {
            v[k * BLOCK + 100] = f32::NAN;
        }
        s.observe(&v).unwrap();
        s.observe(&[f32::INFINITY; 3000]).unwrap();
        assert_eq!((s.count(), s.skipped()), (1000 + n as u64 - 4, 4 + 3000));
    }

    /// A calibrator fed through [`HistogramCalibrator::scatter_reference`], the per-value loop.
    fn reference(bins: usize, batches: &[Vec<f32>]) -> HistogramCalibrator {
        let mut h = HistogramCalibrator::with_config(Method::Entropy { bits: 8 }, bins);
        for b in batches {
            h.scatter_reference(b);
            for &x in b {
                let m = x.to_bits() & 0x7fff_ffff;
                if x.is_sign_negative() {
                    h.neg_max = h.neg_max.max(m);
                } else {
                    h.pos_max = h.pos_max.max(m);
                }
            }
            h.count += b.len() as u64;
        }
        h
    }

    /// Finite values: any bit pattern, a few exponents (bins shared), or 11 significant bits.
    fn value() -> impl proptest::strategy::Strategy<Value = f32> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u32>().prop_map(|b| f32::from_bits(b & 0x807f_ffff | ((b >> 1) % 255) << 23)),
            (any::<u32>(), 120u32..130).prop_map(|(b, e)| f32::from_bits(b & 0x807f_ffff | e << 23)),
            (any::<u32>(), 126u32..128).prop_map(|(b, e)| f32::from_bits(b & 0x807f_f000 | e << 23)),
            (0u32..8).prop_map(|k| k as f32 * 0.25 - 1.0),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The chunked scatter leaves the same state (allocation order included) and gives the
        /// same bytes and ranges as the per-value loop.
        #[test]
        fn chunked_matches_per_value(
            batches in proptest::collection::vec(proptest::collection::vec(value(), 0..3000), 1..4),
            bins in proptest::sample::select(vec![2048usize, 2048, 100, 5000, 65536]),
        ) {
            let want = reference(bins, &batches);
            let mut got = HistogramCalibrator::with_config(Method::Entropy { bits: 8 }, bins);
            for b in &batches {
                got.observe(b).unwrap();
            }
            proptest::prop_assert_eq!(&got.index, &want.index);
            proptest::prop_assert_eq!(&got.words, &want.words);
            proptest::prop_assert_eq!(got.to_bytes(), want.to_bytes());
            // The ranges follow from the state; compared too where that is quick in debug builds.
            if got.count() > 0 && bins <= 2048 {
                proptest::prop_assert_eq!(digest(&got), digest(&want));
            }
        }
    }
}
