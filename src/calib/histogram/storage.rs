//! The fine histogram's storage: pages allocated on first use, 32-bit counts moved to the
//! 64-bit `spill` before they could overflow, and merging two calibrators' counts.

use super::{HistogramCalibrator, NONE, PAGES};
use crate::calib::Error;

impl HistogramCalibrator {
    fn same_config(&self, o: &Self) -> bool {
        self.method == o.method
            && self.bins == o.bins
            && self.symmetric == o.symmetric
            && self.nonfinite == o.nonfinite
            && self.fine == o.fine
    }

    #[inline(always)]
    pub(super) fn page(&mut self, page: usize) -> usize {
        let off = self.index[page];
        if off != NONE {
            return off as usize;
        }
        let off = self.words.len();
        self.words.resize(off + (1usize << self.fine), [0; 2]);
        if !self.spill.is_empty() {
            self.spill.resize(self.words.len(), 0);
        }
        self.index[page] = off as u32;
        off
    }

    #[inline]
    pub(super) fn slot_count(&self, i: usize) -> u64 {
        u64::from(self.words[i][0]) + self.spill.get(i).copied().unwrap_or(0)
    }

    #[inline]
    pub(super) fn slot_ext(&self, i: usize) -> u32 {
        self.words[i][1]
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
    pub(super) fn merge_counts(&mut self, other: &Self) -> Result<(), Error> {
        if !self.same_config(other) {
            return Err(Error::ConfigMismatch);
        }
        let slots = 1usize << self.fine;
        // Add into the 32-bit counts while no count can pass 2^32, into `spill` otherwise.
        let small = self.since_flush + other.count <= u64::from(u32::MAX);
        if small {
            self.since_flush += other.count;
        } else {
            self.flush();
        }
        for page in 0..PAGES {
            let off = other.index[page];
            if off == NONE {
                continue;
            }
            let off = off as usize;
            if (off..off + slots).all(|i| other.slot_count(i) == 0) {
                continue;
            }
            let dst = self.page(page);
            for k in 0..slots {
                let (c, e) = (other.slot_count(off + k), other.slot_ext(off + k));
                if c == 0 {
                    continue;
                }
                if small {
                    self.words[dst + k][0] += c as u32;
                } else {
                    self.spill[dst + k] += c;
                }
                let w = &mut self.words[dst + k][1];
                let m = *w;
                *w = ((m >> 16).max(e >> 16) << 16) | (m & 0xffff).max(e & 0xffff);
            }
        }
        self.count += other.count;
        self.skipped += other.skipped;
        self.pos_max = self.pos_max.max(other.pos_max);
        self.neg_max = self.neg_max.max(other.neg_max);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::{Calibrator, Method};

    #[test]
    fn counts_survive_the_32_bit_flush() {
        let mut h = HistogramCalibrator::new(Method::Percentile(100.0));
        h.observe(&[1.0, 2.0, 2.0]).unwrap();
        h.since_flush = u64::from(u32::MAX) - 1; // as if 4 G values had been counted
        h.observe(&[2.0, 3.0]).unwrap();
        assert!(!h.spill.is_empty());
        let b = h.to_bytes();
        let g = HistogramCalibrator::from_bytes(&b).unwrap();
        assert_eq!(g.to_bytes(), b);
        let mut fresh = HistogramCalibrator::new(Method::Percentile(100.0));
        fresh.observe(&[1.0, 2.0, 2.0, 2.0, 3.0]).unwrap();
        assert_eq!(fresh.to_bytes(), b);
        // Merging near the limit goes through `spill` too.
        let mut m = HistogramCalibrator::new(Method::Percentile(100.0));
        m.observe(&[1.0, 2.0]).unwrap();
        m.since_flush = u64::from(u32::MAX) - 1;
        let mut other = HistogramCalibrator::new(Method::Percentile(100.0));
        other.observe(&[2.0, 2.0, 3.0]).unwrap();
        m.merge(&other).unwrap();
        assert!(!m.spill.is_empty());
        assert_eq!(m.to_bytes(), b);
    }
}
