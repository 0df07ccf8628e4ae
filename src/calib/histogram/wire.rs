//! The serialised state: `to_bytes` / `from_bytes` in the layout documented on
//! [`HistogramCalibrator`].

use super::{HistogramCalibrator, Method, NonFinite, SparseBin, MAX_BINS, PAGES};
use crate::calib::bytes::{Reader, Writer};
use crate::calib::Error;

impl Method {
    pub(crate) fn encode(&self) -> (u8, u8, f64) {
        match *self {
            Method::Percentile(p) => (0, 0, p),
            Method::Entropy { bits } => (1, bits as u8, 0.0),
            Method::Mse { bits } => (2, bits as u8, 0.0),
        }
    }

    fn decode(tag: u8, bits: u8, p: f64) -> Result<Self, Error> {
        Ok(match tag {
            0 => Method::Percentile(p),
            1 => Method::Entropy { bits: bits.into() },
            2 => Method::Mse { bits: bits.into() },
            _ => return Err(Error::Decode("unknown method")),
        })
    }
}

impl HistogramCalibrator {
    /// [`Calibrator::to_bytes`](crate::calib::Calibrator::to_bytes), in the layout documented on
    /// [`HistogramCalibrator`].
    pub(super) fn encode_state(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let (tag, bits, p) = self.method.encode();
        w.bytes(b"LBHC").u8(1).u8(self.fine as u8).u16(0);
        w.u32(self.bins as u32).u8(tag).u8(bits).u8(self.symmetric as u8);
        w.u8((self.nonfinite == NonFinite::Skip) as u8).f64(p);
        w.u64(self.count).u64(self.skipped).u32(self.pos_max).u32(self.neg_max);
        type Page = (usize, Vec<(u32, u64, u32)>);
        let pages: Vec<Page> = (0..PAGES)
            .map(|p| {
                let mut nz = Vec::new();
                self.for_each_bin(p, |slot, c, e| nz.push((slot, c, e)));
                (p, nz)
            })
            .filter(|(_, nz)| !nz.is_empty())
            .collect();
        w.u32(pages.len() as u32);
        for (p, nz) in pages {
            w.u16(p as u16).u16(0).u32(nz.len() as u32);
            for (slot, c, e) in nz {
                w.u32(slot).u64(c).u32(e);
            }
        }
        w.0
    }

    /// [`Calibrator::from_bytes`](crate::calib::Calibrator::from_bytes): checks every field, that
    /// the counts add up and that the largest magnitudes are those of the fine bins. The pages
    /// are kept sparse, so that memory follows the length of the input.
    pub(super) fn decode_state(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBHC", 1)?;
        let fine = u32::from(r.u8()?);
        r.u16()?;
        let bins = r.u32()? as usize;
        let (tag, bits, sym, nf) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let p = r.f64()?;
        let method = Method::decode(tag, bits, p)?;
        if bins == 0 || bins > MAX_BINS {
            return Err(Error::Decode("bad bin count"));
        }
        method.validate(bins).map_err(|_| Error::Decode("bad method"))?;
        let mut s = Self::with_config(method, bins);
        if fine != s.fine || sym > 1 || nf > 1 {
            return Err(Error::Decode("bad configuration"));
        }
        s.symmetric = sym == 1;
        s.nonfinite = if nf == 1 { NonFinite::Skip } else { NonFinite::Error };
        s.count = r.u64()?;
        s.skipped = r.u64()?;
        s.pos_max = r.u32()?;
        s.neg_max = r.u32()?;
        let npages = r.u32()? as usize;
        let slots = 1usize << fine;
        let shift = 23 - fine;
        let low = (1u32 << shift) - 1;
        let mut total = 0u64;
        let mut maxima = [0u32; 2];
        let mut last_page = None;
        for _ in 0..npages {
            let page = r.u16()? as usize;
            r.u16()?;
            let nnz = r.u32()? as usize;
            if page >= PAGES || (page & 255) == 255 || last_page >= Some(page) || nnz > slots {
                return Err(Error::Decode("bad page"));
            }
            last_page = Some(page);
            // 16 bytes a record: allocate only for records that are there.
            if r.0.len() / 16 < nnz {
                return Err(Error::Decode("truncated"));
            }
            let mut list = Vec::with_capacity(nnz);
            for _ in 0..nnz {
                let slot = r.u32()?;
                let c = r.u64()?;
                let ext = r.u32()?;
                let (hi, lo) = (ext >> 16, !ext & 0xffff);
                if slot as usize >= slots || list.last().is_some_and(|l: &SparseBin| l.0 >= slot) {
                    return Err(Error::Decode("bad slot"));
                }
                // A bin's smallest value is at most its largest, and one value is both.
                if c == 0 || hi > low || lo > hi || (c == 1 && lo != hi) {
                    return Err(Error::Decode("bad fine bin"));
                }
                let largest = ((page as u32 & 255) << 23) | (slot << shift) | hi;
                let m = &mut maxima[page >> 8];
                *m = (*m).max(largest);
                list.push((slot, c, ext));
                total = total.checked_add(c).ok_or(Error::Decode("count overflow"))?;
            }
            if !list.is_empty() {
                s.sparse.insert(page as u16, list);
            }
        }
        r.finish()?;
        if total != s.count {
            return Err(Error::Decode("counts do not add up"));
        }
        if [s.pos_max, s.neg_max] != maxima {
            return Err(Error::Decode("largest magnitudes do not match the counts"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::Calibrator;

    #[test]
    fn bytes_round_trip() {
        let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 })
            .unwrap()
            .with_symmetric(false);
        let data: Vec<f32> = (0..5000).map(|i| ((i as f32) * 0.77).sin() * (i as f32)).collect();
        h.observe(&data).unwrap();
        let b = h.to_bytes();
        let g = HistogramCalibrator::from_bytes(&b).unwrap();
        assert_eq!(g.to_bytes(), b);
        assert_eq!(g.range().unwrap(), h.range().unwrap());
        assert!(HistogramCalibrator::from_bytes(&b[..b.len() - 1]).is_err());
        let mut c = b.clone();
        let last = c.len() - 1;
        c[last] ^= 1; // corrupt a count
        assert!(HistogramCalibrator::from_bytes(&c).is_err());
    }

    /// The bytes of a state of `h`'s configuration with these fields and pages (records of
    /// slot, count, extremes), written field by field.
    fn state(h: &HistogramCalibrator, count: u64, maxima: [u32; 2], pages: &[(u16, Vec<SparseBin>)]) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(&h.to_bytes()[..24])
            .u64(count)
            .u64(0)
            .u32(maxima[0])
            .u32(maxima[1]);
        w.u32(pages.len() as u32);
        for (p, recs) in pages {
            w.u16(*p).u16(0).u32(recs.len() as u32);
            for &(slot, c, e) in recs {
                w.u32(slot).u64(c).u32(e);
            }
        }
        w.0
    }

    /// Extremes word of a fine bin whose values have these low mantissa bits.
    fn ext(lo: u32, hi: u32) -> u32 {
        (hi << 16) | (!lo & 0xffff)
    }

    /// A fine bin holding one value cannot have two different extremes: `range` would
    /// underflow (`count - 2`) splitting it over two linear bins.
    #[test]
    fn one_value_with_two_extremes_is_refused() {
        let h = HistogramCalibrator::new(Method::Percentile(99.0)).unwrap();
        // 1.0 (slot 0) and 1.5 (slot 1024) of page 127, both counted once; the first claims a
        // largest value 4095 ulps above its smallest, across a linear bin edge of [0, 1.5].
        let good = state(
            &h,
            2,
            [1.5f32.to_bits(), 0],
            &[(127, vec![(0, 1, ext(0, 0)), (1024, 1, ext(0, 0))])],
        );
        let g = HistogramCalibrator::from_bytes(&good).unwrap();
        assert_eq!(g.range().unwrap().max, 1.5);
        let bad = state(
            &h,
            2,
            [1.5f32.to_bits(), 0],
            &[(127, vec![(0, 1, ext(0, 0xfff)), (1024, 1, ext(0, 0))])],
        );
        let r = HistogramCalibrator::from_bytes(&bad).map(|c| c.range());
        assert_eq!(r.err(), Some(Error::Decode("bad fine bin")));
        // Two values may have two extremes.
        let two = state(
            &h,
            3,
            [1.5f32.to_bits(), 0],
            &[(127, vec![(0, 2, ext(0, 0xfff)), (1024, 1, ext(0, 0))])],
        );
        let t = HistogramCalibrator::from_bytes(&two).unwrap();
        assert_eq!(t.to_bytes(), two);
        assert!(t.range().is_ok());
    }

    /// The largest magnitudes are a function of the fine bins: a state that disagrees is
    /// refused rather than re-binned over a wrong `[0, amax]`.
    #[test]
    fn maxima_must_match_the_bins() {
        let h = HistogramCalibrator::new(Method::Percentile(99.0)).unwrap();
        let recs = vec![(0, 1, ext(0, 0))];
        assert!(HistogramCalibrator::from_bytes(&state(&h, 1, [1f32.to_bits(), 0], &[(127, recs.clone())])).is_ok());
        for maxima in [[0, 0], [2f32.to_bits(), 0], [1f32.to_bits(), 1]] {
            let b = state(&h, 1, maxima, &[(127, recs.clone())]);
            assert!(
                matches!(HistogramCalibrator::from_bytes(&b), Err(Error::Decode(_))),
                "{maxima:?}"
            );
        }
        // A negative value: page 256 + exponent.
        let b = state(&h, 1, [0, 1f32.to_bits()], &[(256 + 127, recs)]);
        assert_eq!(HistogramCalibrator::from_bytes(&b).unwrap().range().unwrap().min, -1.0);
    }

    /// A count of 2^64 - 1 decodes, answers `range`, and refuses to count more (observe and
    /// merge) with `CountOverflow`, unchanged; counts past 2^32 keep counting after decoding.
    #[test]
    fn counts_near_the_u64_limit() {
        let h = HistogramCalibrator::new(Method::Percentile(99.0)).unwrap();
        let full = state(
            &h,
            u64::MAX,
            [1f32.to_bits(), 0],
            &[(127, vec![(0, u64::MAX, ext(0, 0))])],
        );
        let mut g = HistogramCalibrator::from_bytes(&full).unwrap();
        assert_eq!(g.range().unwrap().max, 1.0);
        assert_eq!(g.observe(&[1.0]), Err(Error::CountOverflow));
        assert_eq!(g.observe(&[2.0; 70_000]), Err(Error::CountOverflow));
        let mut one = HistogramCalibrator::new(Method::Percentile(99.0)).unwrap();
        one.observe(&[3.0]).unwrap();
        assert_eq!(g.merge(&one), Err(Error::CountOverflow));
        assert_eq!(one.merge(&g), Err(Error::CountOverflow));
        assert_eq!(g.to_bytes(), full);
        g.observe(&[]).unwrap();
        // 2^40 values of 1.0, then more of them and others: counted on top.
        let big = 1u64 << 40;
        let b = state(&h, big, [1f32.to_bits(), 0], &[(127, vec![(0, big, ext(0, 0))])]);
        let mut g = HistogramCalibrator::from_bytes(&b).unwrap();
        g.observe(&[1.0, 1.0, 2.0]).unwrap();
        g.merge(&one).unwrap();
        let want = state(
            &h,
            big + 4,
            [3f32.to_bits(), 0],
            &[
                (127, vec![(0, big + 2, ext(0, 0))]),
                (128, vec![(0, 1, ext(0, 0)), (1024, 1, ext(0, 0))]),
            ],
        );
        assert_eq!(g.to_bytes(), want);
    }

    /// Decoding allocates in proportion to its input: 170 pages of one value each at 65536
    /// bins (a page is 512 KiB when counted into) take a few KiB, and still give the same
    /// bytes and ranges; a page counted into afterwards is allocated then.
    #[test]
    fn decoding_allocates_what_the_input_implies() {
        let h = HistogramCalibrator::new(Method::Percentile(100.0))
            .unwrap()
            .with_bins(65536)
            .unwrap();
        let pages: Vec<(u16, Vec<SparseBin>)> = (1..=170).map(|e| (e, vec![(0, 1, ext(0, 0))])).collect();
        let top = 170u32 << 23;
        let b = state(&h, 170, [top, 0], &pages);
        assert!(b.len() < 4200, "{}", b.len());
        let mut g = HistogramCalibrator::from_bytes(&b).unwrap();
        assert!(
            g.memory() < 8 * b.len() + 4 * PAGES + 4096,
            "{} bytes for {}",
            g.memory(),
            b.len()
        );
        assert_eq!(g.to_bytes(), b);
        assert_eq!(g.range().unwrap().max, f32::from_bits(top));
        // The same values observed: the same bytes and range (with every page allocated).
        let mut o = h.clone();
        let vals: Vec<f32> = (1..=170u32).map(|e| f32::from_bits(e << 23)).collect();
        o.observe(&vals).unwrap();
        assert_eq!(o.to_bytes(), b);
        assert_eq!(
            o.range_with(Method::Percentile(50.0), false),
            g.range_with(Method::Percentile(50.0), false)
        );
        // Counting into one page allocates that page only.
        g.observe(&[f32::from_bits(3 << 23)]).unwrap();
        assert!(g.memory() < (1 << 16) * 8 + 8 * b.len() + 4 * PAGES + 4096);
        o.observe(&[f32::from_bits(3 << 23)]).unwrap();
        assert_eq!(g.to_bytes(), o.to_bytes());
        // A truncated page does not allocate its claimed records.
        let mut t = state(&h, 1, [1 << 23, 0], &[(1, vec![(0, 1, ext(0, 0))])]);
        t.truncate(t.len() - 16);
        t[56..60].copy_from_slice(&65536u32.to_le_bytes());
        assert_eq!(
            HistogramCalibrator::from_bytes(&t).err(),
            Some(Error::Decode("truncated"))
        );
    }

    /// Methods are checked when built, so `to_bytes` writes what it was given: the bit width
    /// fits its byte, and bytes with a width outside `2..=16` or a bad percentile are refused.
    #[test]
    fn methods_round_trip_and_bad_ones_are_refused() {
        for m in [
            Method::Entropy { bits: 2 },
            Method::Entropy { bits: 12 },
            Method::Mse { bits: 16 },
            Method::Percentile(f64::MIN_POSITIVE),
            Method::Percentile(100.0),
        ] {
            let h = HistogramCalibrator::new(m).unwrap();
            assert_eq!(HistogramCalibrator::from_bytes(&h.to_bytes()).unwrap().method, m);
        }
        assert_eq!(
            HistogramCalibrator::new(Method::Percentile(150.0)).err(),
            Some(Error::InvalidPercentile(150.0))
        );
        assert!(HistogramCalibrator::new(Method::Percentile(f64::NAN)).is_err());
        assert!(matches!(
            HistogramCalibrator::new(Method::Entropy { bits: 264 }),
            Err(Error::InvalidBits { bits: 264, .. })
        ));
        // 4096 levels need 4096 bins or more: set them first.
        assert!(HistogramCalibrator::new(Method::Entropy { bits: 13 }).is_err());
        let wide = HistogramCalibrator::new(Method::Mse { bits: 8 })
            .unwrap()
            .with_bins(65536)
            .unwrap()
            .with_method(Method::Entropy { bits: 11 })
            .unwrap();
        let back = HistogramCalibrator::from_bytes(&wide.to_bytes()).unwrap();
        assert_eq!(back.method, Method::Entropy { bits: 11 });
        assert!(back.clone().with_bins(512).is_err());
        // F28: 16 bits over 65536 bins would cost 2^30 search steps: refused.
        assert!(back.with_method(Method::Entropy { bits: 16 }).is_err());
        assert!(wide.with_method(Method::Percentile(-1.0)).is_err());
        let h = HistogramCalibrator::new(Method::Mse { bits: 8 }).unwrap();
        for (tag, bits, p) in [
            (2u8, 17u8, 0.0f64),
            (1, 1, 0.0),
            (0, 0, 150.0),
            (0, 0, f64::NAN),
            (0, 0, 0.0),
        ] {
            let mut b = h.to_bytes();
            b[12] = tag;
            b[13] = bits;
            b[16..24].copy_from_slice(&p.to_le_bytes());
            assert_eq!(
                HistogramCalibrator::from_bytes(&b).err(),
                Some(Error::Decode("bad method"))
            );
        }
    }
}
