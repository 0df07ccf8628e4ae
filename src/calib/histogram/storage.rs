//! The fine histogram's storage: pages allocated on first use, 32-bit counts moved to the
//! 64-bit `spill` before they could overflow, and merging two calibrators' counts.

use super::{HistogramCalibrator, SparseBin, NONE, PAGES};
use crate::calib::Error;

impl HistogramCalibrator {
    pub(crate) fn same_config(&self, o: &Self) -> bool {
        self.method == o.method
            && self.bins == o.bins
            && self.symmetric == o.symmetric
            && self.nonfinite == o.nonfinite
            && self.fine == o.fine
    }

    /// The offset of `page` in `words`, allocating it (and moving a sparse page there) on
    /// first use.
    #[inline(always)]
    pub(super) fn page(&mut self, page: usize) -> usize {
        let off = self.index[page];
        if off != NONE {
            return off as usize;
        }
        self.allocate(page)
    }

    #[cold]
    fn allocate(&mut self, page: usize) -> usize {
        let off = self.words.len();
        self.words.resize(off + (1usize << self.fine), [0; 2]);
        if !self.spill.is_empty() {
            self.spill.resize(self.words.len(), 0);
        }
        self.index[page] = off as u32;
        if let Some(bins) = self.sparse.remove(&(page as u16)) {
            for (slot, c, e) in bins {
                self.add_dense(off + slot as usize, c, e, false);
            }
        }
        off
    }

    /// Adds `c` values with extremes `e` to the dense slot `i`: into the 32-bit count while
    /// `since_flush` (which bounds every 32-bit count) stays within `u32`, else into `spill`.
    /// `reserved`: `since_flush` already accounts for them.
    #[inline]
    fn add_dense(&mut self, i: usize, c: u64, e: u32, reserved: bool) {
        if reserved {
            self.words[i][0] += c as u32;
        } else if self.since_flush.saturating_add(c) <= u64::from(u32::MAX) {
            self.since_flush += c;
            self.words[i][0] += c as u32;
        } else {
            if self.spill.is_empty() {
                self.spill = vec![0; self.words.len()];
            }
            self.spill[i] += c;
        }
        let w = &mut self.words[i][1];
        *w = widen(*w, e);
    }

    #[inline]
    pub(super) fn slot_count(&self, i: usize) -> u64 {
        u64::from(self.words[i][0]) + self.spill.get(i).copied().unwrap_or(0)
    }

    #[inline]
    pub(super) fn slot_ext(&self, i: usize) -> u32 {
        self.words[i][1]
    }

    /// Calls `f(slot, count, extremes)` for every non-empty fine bin of `page`, dense or
    /// sparse, in increasing slot order.
    #[inline]
    pub(super) fn for_each_bin(&self, page: usize, mut f: impl FnMut(u32, u64, u32)) {
        let off = self.index[page];
        if off != NONE {
            let off = off as usize;
            for slot in 0..1usize << self.fine {
                let c = self.slot_count(off + slot);
                if c != 0 {
                    f(slot as u32, c, self.slot_ext(off + slot));
                }
            }
        } else if let Some(bins) = self.sparse.get(&(page as u16)) {
            for &(slot, c, e) in bins {
                f(slot, c, e);
            }
        }
    }

    /// Moves the 32-bit counts into `spill`.
    pub(super) fn flush(&mut self) {
        if self.spill.is_empty() {
            self.spill = vec![0; self.words.len()];
        }
        for (w, s) in self.words.iter_mut().zip(self.spill.iter_mut()) {
            *s += u64::from(w[0]);
            w[0] = 0;
        }
        self.since_flush = 0;
    }

    /// [`Calibrator::merge`](crate::calib::Calibrator::merge): adds the other calibrator's counts.
    /// A page sparse in `other` and absent here stays sparse.
    pub(super) fn merge_counts(&mut self, other: &Self) -> Result<(), Error> {
        if !self.same_config(other) {
            return Err(Error::ConfigMismatch);
        }
        let count = self.count.checked_add(other.count).ok_or(Error::CountOverflow)?;
        let skipped = self.skipped.checked_add(other.skipped).ok_or(Error::CountOverflow)?;
        // Add into the 32-bit counts while no count can pass 2^32, into `spill` otherwise.
        let small = self.since_flush.saturating_add(other.count) <= u64::from(u32::MAX);
        if small {
            self.since_flush += other.count;
        } else {
            self.flush();
        }
        for page in 0..PAGES {
            let mut bins = Vec::new();
            other.for_each_bin(page, |slot, c, e| bins.push((slot, c, e)));
            if bins.is_empty() {
                continue;
            }
            if self.index[page] == NONE && other.index[page] == NONE {
                let mine = self.sparse.entry(page as u16).or_default();
                *mine = merge_sparse(mine, &bins);
                continue;
            }
            let dst = self.page(page);
            for (slot, c, e) in bins {
                let i = dst + slot as usize;
                if small {
                    self.add_dense(i, c, e, true);
                } else {
                    if self.spill.is_empty() {
                        self.spill = vec![0; self.words.len()];
                    }
                    self.spill[i] += c;
                    let w = &mut self.words[i][1];
                    *w = widen(*w, e);
                }
            }
        }
        self.count = count;
        self.skipped = skipped;
        self.pos_max = self.pos_max.max(other.pos_max);
        self.neg_max = self.neg_max.max(other.neg_max);
        Ok(())
    }
}

/// The extremes word of the union of two fine bins' values (both halves by `max`).
#[inline]
fn widen(m: u32, e: u32) -> u32 {
    ((m >> 16).max(e >> 16) << 16) | (m & 0xffff).max(e & 0xffff)
}

/// Two sparse pages added, in increasing slot order.
fn merge_sparse(a: &[SparseBin], b: &[SparseBin]) -> Vec<SparseBin> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
            out.push(a[i]);
            i += 1;
        } else if i == a.len() || b[j].0 < a[i].0 {
            out.push(b[j]);
            j += 1;
        } else {
            out.push((a[i].0, a[i].1 + b[j].1, widen(a[i].2, b[j].2)));
            i += 1;
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::{Calibrator, Method};

    #[test]
    fn counts_survive_the_32_bit_flush() {
        let mut h = HistogramCalibrator::new(Method::Percentile(100.0)).unwrap();
        h.observe(&[1.0, 2.0, 2.0]).unwrap();
        h.since_flush = u64::from(u32::MAX) - 1; // as if 4 G values had been counted
        h.observe(&[2.0, 3.0]).unwrap();
        assert!(!h.spill.is_empty());
        let b = h.to_bytes();
        let g = HistogramCalibrator::from_bytes(&b).unwrap();
        assert_eq!(g.to_bytes(), b);
        let mut fresh = HistogramCalibrator::new(Method::Percentile(100.0)).unwrap();
        fresh.observe(&[1.0, 2.0, 2.0, 2.0, 3.0]).unwrap();
        assert_eq!(fresh.to_bytes(), b);
        // Merging near the limit goes through `spill` too.
        let mut m = HistogramCalibrator::new(Method::Percentile(100.0)).unwrap();
        m.observe(&[1.0, 2.0]).unwrap();
        m.since_flush = u64::from(u32::MAX) - 1;
        let mut other = HistogramCalibrator::new(Method::Percentile(100.0)).unwrap();
        other.observe(&[2.0, 2.0, 3.0]).unwrap();
        m.merge(&other).unwrap();
        assert!(!m.spill.is_empty());
        assert_eq!(m.to_bytes(), b);
    }

    /// Decoded (sparse) pages merge with dense and sparse ones, and take counts afterwards,
    /// to the same state as observing everything.
    #[test]
    fn sparse_pages_merge_and_count_like_dense_ones() {
        let data = super::super::tests::golden_data(30_000, 11);
        let (a, rest) = data.split_at(10_000);
        let (b, c) = rest.split_at(10_000);
        let make = || HistogramCalibrator::new(Method::Mse { bits: 8 }).unwrap();
        let mut all = make();
        all.observe(&data).unwrap();
        let shard = |part: &[f32]| {
            let mut h = make();
            h.observe(part).unwrap();
            HistogramCalibrator::from_bytes(&h.to_bytes()).unwrap()
        };
        let (sa, sb, sc) = (shard(a), shard(b), shard(c));
        assert!(sa.words.is_empty() && !sa.sparse.is_empty());
        // sparse + sparse, then dense counts on top
        let mut m = sa.clone();
        m.merge(&sb).unwrap();
        assert!(m.words.is_empty());
        m.observe(c).unwrap();
        assert_eq!(m.to_bytes(), all.to_bytes());
        assert_eq!(m.range().unwrap(), all.range().unwrap());
        // dense + sparse, sparse + dense
        let mut d = make();
        d.observe(b).unwrap();
        d.merge(&sa).unwrap();
        d.merge(&sc).unwrap();
        assert_eq!(d.to_bytes(), all.to_bytes());
        let mut e = sc.clone();
        let mut dense = make();
        dense.observe(a).unwrap();
        dense.observe(b).unwrap();
        e.merge(&dense).unwrap();
        assert_eq!(e.to_bytes(), all.to_bytes());
        assert_eq!(e.range(), all.range());
        // A failed batch restores the sparse pages it moved.
        let mut f = sa.clone();
        let before = f.clone();
        let mut bad = b.repeat(8);
        bad[70_000] = f32::NAN;
        assert!(f.observe(&bad).is_err());
        assert_eq!(
            (&f.sparse, &f.words, f.since_flush),
            (&before.sparse, &before.words, before.since_flush)
        );
    }
}
