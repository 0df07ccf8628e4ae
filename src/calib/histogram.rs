//! The order-independent histogram calibrator.

use super::bytes::{Reader, Writer};
use super::minmax::first_non_finite;
use super::select::{entropy_edge, first_edge_reaching, mse_edge};
use super::{Calibrator, Error, Range};

/// How [`HistogramCalibrator`] chooses the range from its histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The smallest bin edge below which at least `p` percent of the values lie, `p` in
    /// `(0, 100]`. Asymmetric: `(100 - p) / 2` percent of all values are clipped from each end.
    Percentile(f64),
    /// TensorRT's entropy calibration: the edge `i` (from `2^(bits-1)` bins up) that minimises
    /// the KL divergence between the histogram clipped at `i` (tail folded into the last bin)
    /// and the same merged into `2^(bits-1)` quantization levels. `bits` in `2..=16`, and
    /// `2^(bits-1)` at most the number of bins.
    Entropy {
        /// Quantized bit width (sign included).
        bits: u32,
    },
    /// The edge that minimises the count-weighted squared error of the bin centres quantized
    /// with `2^(bits-1) - 1` positive levels (`bits` in `2..=16`), clipped values included.
    Mse {
        /// Quantized bit width (sign included).
        bits: u32,
    },
}

impl Method {
    fn validate(&self, bins: usize) -> Result<(), Error> {
        match *self {
            Method::Percentile(p) => {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(Error::InvalidPercentile(p));
                }
            }
            Method::Entropy { bits } | Method::Mse { bits } => {
                if !(2..=16).contains(&bits) {
                    return Err(Error::InvalidBits {
                        bits,
                        reason: "must be in 2..=16",
                    });
                }
                if matches!(self, Method::Entropy { .. }) && (1usize << (bits - 1)) > bins {
                    return Err(Error::InvalidBits {
                        bits,
                        reason: "2^(bits-1) levels exceed the number of bins",
                    });
                }
            }
        }
        Ok(())
    }

    fn encode(&self) -> (u8, u8, f64) {
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

/// What [`HistogramCalibrator::observe`] does with NaN and infinities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Return [`Error::NonFinite`] and leave the state unchanged (the default).
    #[default]
    Error,
    /// Skip them and count them ([`HistogramCalibrator::skipped`]).
    Skip,
}

const PAGES: usize = 512;
const NONE: u32 = u32::MAX;
const CHUNK: usize = 4096;
/// Default number of linear bins.
const DEFAULT_BINS: usize = 2048;
const MAX_BINS: usize = 1 << 16;

/// Histogram calibration (percentile, entropy, MSE) whose result depends only on the multiset of
/// values observed: the same [`Range`], bit for bit, for any order of the batches, any split into
/// batches and any tree of [`Calibrator::merge`]s.
///
/// # How
///
/// Every finite `f32` is counted in a fixed fine bin keyed on its bits: the sign, the 8 exponent
/// bits and the top `M` mantissa bits, `M = max(11, ceil(log2(bins)))` (11 for the default 2048
/// bins). Bins are never rescaled by the data seen so far, so the state is a pure count per key
/// (plus the exact largest magnitude of each sign): observing is counting, merging is adding.
/// [`Calibrator::range`] re-bins the fine counts into `bins` linear bins over `[0, max|x|]`
/// (each fine bin goes whole to the linear bin holding its midpoint) and applies the
/// [`Method`]. A fine bin is at most `2^-M` of its lower edge wide, never wider than a linear
/// bin, so every value lands at most one linear bin from where a one-pass histogram over all the
/// data would put it, and the range agrees with that of a one-pass `bins`-bin histogram over
/// `[0, max|x|]` within one bin width `max|x| / bins` (for the percentile this is guaranteed;
/// entropy and MSE are tested on real and synthetic data).
///
/// # Memory
///
/// Fine bins are `u64` counts allocated a page at a time, one page of `2^M` counts
/// (**16 KiB** for `M = 11`) per sign and binary exponent that occurs: at most 2 × 254 pages
/// (8 MiB) in the worst case, typically 0.5–1 MiB for activations (values spanning
/// 2^-20..2^6 of both signs use 54 pages, 864 KiB). [`Calibrator::range`] needs two vectors of
/// `bins` counts more.
///
/// # Symmetric and asymmetric
///
/// Symmetric (the default) works on the histogram of `|x|` and returns `[-amax, amax]`.
/// Asymmetric ([`HistogramCalibrator::with_symmetric`]`(false)`) keeps the two signs apart,
/// each in `bins` bins over `[0, its own max]`, and clips each tail by the method on its own
/// histogram (the percentile cuts `(100 - p) / 2` percent of all values from each end); the
/// range always contains 0.
///
/// # Serialised layout
///
/// Little endian: `b"LBHC"`, version `1u8`, `M` `u8`, 2 reserved bytes, bins `u32`, method tag
/// `u8` (0 percentile, 1 entropy, 2 MSE), bits `u8`, symmetric `u8`, non-finite policy `u8`
/// (0 error, 1 skip), percentile `f64`, count `u64`, skipped `u64`, largest positive magnitude
/// bits `u32`, largest negative magnitude bits `u32`, page count `u32`; then per non-empty page
/// in increasing order: page id `u16` (sign × 256 + exponent), 2 reserved bytes, non-zero
/// count `u32`, and that many (slot `u32`, count `u64`) pairs in increasing slot order.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{Calibrator, HistogramCalibrator, Method};
///
/// let data: Vec<f32> = (0..4096).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
/// let mut a = HistogramCalibrator::new(Method::Entropy { bits: 8 });
/// let mut b = HistogramCalibrator::new(Method::Entropy { bits: 8 });
/// a.observe(&data[..1000])?;
/// b.observe(&data[1000..])?;
/// a.merge(&b)?;
/// let r = a.range()?;
/// assert!(r.max > 2.5 && r.max <= 3.0 && r.min == -r.max);
/// // Another method on the same counts:
/// let p = a.range_with(Method::Percentile(50.0), true)?;
/// assert!((p.max - 3.0 * std::f32::consts::FRAC_1_SQRT_2).abs() < 3.0 / 1024.0);
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HistogramCalibrator {
    method: Method,
    bins: usize,
    symmetric: bool,
    nonfinite: NonFinite,
    fine: u32,
    index: Box<[u32; PAGES]>,
    arena: Vec<u64>,
    count: u64,
    skipped: u64,
    pos_max: u32,
    neg_max: u32,
}

fn fine_bits(bins: usize) -> u32 {
    (bins.next_power_of_two().trailing_zeros()).max(11)
}

impl HistogramCalibrator {
    /// A symmetric calibrator with 2048 bins. The method is checked when the range is computed
    /// (or at once by [`HistogramCalibrator::try_new`]).
    pub fn new(method: Method) -> Self {
        Self::with_config(method, DEFAULT_BINS)
    }

    /// Like [`HistogramCalibrator::new`], checking the method now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPercentile`] or [`Error::InvalidBits`].
    pub fn try_new(method: Method) -> Result<Self, Error> {
        method.validate(DEFAULT_BINS)?;
        Ok(Self::new(method))
    }

    fn with_config(method: Method, bins: usize) -> Self {
        Self {
            method,
            bins,
            symmetric: true,
            nonfinite: NonFinite::Error,
            fine: fine_bits(bins),
            index: Box::new([NONE; PAGES]),
            arena: Vec::new(),
            count: 0,
            skipped: 0,
            pos_max: 0,
            neg_max: 0,
        }
    }

    /// Use `bins` linear bins (default 2048), in `1..=65536`. Counts observed so far are kept when
    /// the fine binning stays the same (up to 2048 bins), and dropped otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBins`] outside `1..=65536`.
    pub fn with_bins(mut self, bins: usize) -> Result<Self, Error> {
        if bins == 0 || bins > MAX_BINS {
            return Err(Error::InvalidBins {
                bins,
                min: 1,
                max: MAX_BINS,
            });
        }
        if fine_bits(bins) != self.fine {
            self = Self::with_config(self.method, bins)
                .with_symmetric(self.symmetric)
                .with_nonfinite(self.nonfinite);
        }
        self.bins = bins;
        Ok(self)
    }

    /// Symmetric (`true`, the default) or asymmetric range.
    pub fn with_symmetric(mut self, symmetric: bool) -> Self {
        self.symmetric = symmetric;
        self
    }

    /// What to do with NaN and infinities (default [`NonFinite::Error`]).
    pub fn with_nonfinite(mut self, policy: NonFinite) -> Self {
        self.nonfinite = policy;
        self
    }

    /// Number of linear bins.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Number of finite values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of non-finite values skipped (with [`NonFinite::Skip`]).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Bytes held by the fine histogram.
    pub fn memory(&self) -> usize {
        self.arena.capacity() * 8 + PAGES * 4
    }

    /// The largest magnitude observed (`max|x|`).
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any value was observed.
    pub fn amax(&self) -> Result<f32, Error> {
        if self.count == 0 {
            return Err(Error::NoData);
        }
        Ok(f32::from_bits(self.pos_max.max(self.neg_max)))
    }

    fn same_config(&self, o: &Self) -> bool {
        self.method == o.method
            && self.bins == o.bins
            && self.symmetric == o.symmetric
            && self.nonfinite == o.nonfinite
            && self.fine == o.fine
    }

    #[inline(always)]
    fn page(&mut self, page: usize) -> usize {
        let off = self.index[page];
        if off != NONE {
            return off as usize;
        }
        let off = self.arena.len();
        self.arena.resize(off + (1usize << self.fine), 0);
        self.index[page] = off as u32;
        off
    }

    /// Counts a chunk known to be all finite. `sign` is +1 or -1 (undo).
    fn scatter(&mut self, chunk: &[f32], add: bool) {
        let shift = 23 - self.fine;
        let mask = (1u32 << self.fine) - 1;
        for &x in chunk {
            let b = x.to_bits();
            let off = self.page((b >> 23) as usize);
            let slot = ((b >> shift) & mask) as usize;
            let c = &mut self.arena[off + slot];
            if add {
                *c += 1;
            } else {
                *c -= 1;
            }
        }
    }

    /// Linear histogram(s) over `[0, amax]` of the fine pages of `signs`.
    fn rebin(&self, signs: &[u32], amax: f32, out: &mut [u64]) {
        out.fill(0);
        let n = out.len();
        let shift = 23 - self.fine;
        let slots = 1usize << self.fine;
        let a = f64::from(amax);
        for &s in signs {
            for e in 0..256u32 {
                let off = self.index[(s * 256 + e) as usize];
                if off == NONE {
                    continue;
                }
                let page = &self.arena[off as usize..off as usize + slots];
                for (slot, &c) in page.iter().enumerate() {
                    if c == 0 {
                        continue;
                    }
                    let lo_bits = (e << 23) | ((slot as u32) << shift);
                    let lo = f64::from(f32::from_bits(lo_bits));
                    let hi = f64::from(f32::from_bits(lo_bits + (1 << shift)));
                    let idx = if a > 0.0 {
                        let mid = 0.5 * (lo + hi);
                        ((mid / a * n as f64).floor() as usize).min(n - 1)
                    } else {
                        0
                    };
                    out[idx] += c;
                }
            }
        }
    }

    /// The clipping magnitude the method picks on the linear histogram `bins` over `[0, amax]`.
    fn pick(method: Method, bins: &[u64], amax: f32, total: u64, side_cut: Option<f64>) -> f32 {
        let n = bins.len();
        let k = match method {
            Method::Percentile(p) => match side_cut {
                None => first_edge_reaching(bins, p / 100.0 * total as f64),
                Some(cut) => {
                    let side: u64 = bins.iter().sum();
                    first_edge_reaching(bins, side as f64 - cut)
                }
            },
            Method::Entropy { bits } => entropy_edge(bins, 1usize << (bits - 1)),
            Method::Mse { bits } => mse_edge(bins, (1usize << (bits - 1)) - 1),
        };
        if k == n {
            amax
        } else {
            (k as f64 * f64::from(amax) / n as f64) as f32
        }
    }

    /// The range by another method or symmetry, from the same counts (the calibrator's own
    /// settings are what [`Calibrator::range`] uses).
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any value, [`Error::InvalidPercentile`] or
    /// [`Error::InvalidBits`] for a bad method.
    pub fn range_with(&self, method: Method, symmetric: bool) -> Result<Range, Error> {
        method.validate(self.bins)?;
        if self.count == 0 {
            return Err(Error::NoData);
        }
        let n = self.bins;
        let mut bins = vec![0u64; n];
        if symmetric {
            let amax = f32::from_bits(self.pos_max.max(self.neg_max));
            self.rebin(&[0, 1], amax, &mut bins);
            let a = Self::pick(method, &bins, amax, self.count, None);
            return Ok(Range { min: -a, max: a });
        }
        let cut = match method {
            Method::Percentile(p) => Some((100.0 - p) / 200.0 * self.count as f64),
            _ => None,
        };
        let mut side = |sign: u32, bits: u32| -> f32 {
            let amax = f32::from_bits(bits);
            self.rebin(&[sign], amax, &mut bins);
            let total: u64 = bins.iter().sum();
            if total == 0 {
                return 0.0;
            }
            Self::pick(method, &bins, amax, total, cut)
        };
        let max = side(0, self.pos_max);
        let min = -side(1, self.neg_max);
        Ok(Range { min, max })
    }
}

impl Calibrator for HistogramCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        let mut pm = self.pos_max;
        let mut nm = self.neg_max;
        let mut skipped = 0u64;
        for (ci, chunk) in batch.chunks(CHUNK).enumerate() {
            let (mut p, mut q, mut bad) = (0u32, 0u32, false);
            for &x in chunk {
                let b = x.to_bits();
                let a = b & 0x7fff_ffff;
                let neg = ((b as i32) >> 31) as u32;
                bad |= a >= 0x7f80_0000;
                p = p.max(a & !neg);
                q = q.max(a & neg);
            }
            if bad {
                if self.nonfinite == NonFinite::Error {
                    // Undo the chunks already counted: the state is as before the call.
                    for done in batch[..ci * CHUNK].chunks(CHUNK) {
                        self.scatter(done, false);
                    }
                    return Err(first_non_finite(batch));
                }
                let finite: Vec<f32> = chunk.iter().copied().filter(|x| x.is_finite()).collect();
                skipped += (chunk.len() - finite.len()) as u64;
                for &x in &finite {
                    let b = x.to_bits();
                    if b >> 31 == 0 {
                        pm = pm.max(b);
                    } else {
                        nm = nm.max(b & 0x7fff_ffff);
                    }
                }
                self.scatter(&finite, true);
            } else {
                pm = pm.max(p);
                nm = nm.max(q);
                self.scatter(chunk, true);
            }
        }
        self.pos_max = pm;
        self.neg_max = nm;
        self.skipped += skipped;
        self.count += batch.len() as u64 - skipped;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
        if !self.same_config(other) {
            return Err(Error::ConfigMismatch);
        }
        let slots = 1usize << self.fine;
        for page in 0..PAGES {
            let off = other.index[page];
            if off == NONE {
                continue;
            }
            let src = &other.arena[off as usize..off as usize + slots];
            if src.iter().all(|&c| c == 0) {
                continue;
            }
            let dst = self.page(page);
            for (d, s) in self.arena[dst..dst + slots].iter_mut().zip(src) {
                *d += s;
            }
        }
        self.count += other.count;
        self.skipped += other.skipped;
        self.pos_max = self.pos_max.max(other.pos_max);
        self.neg_max = self.neg_max.max(other.neg_max);
        Ok(())
    }

    fn range(&self) -> Result<Range, Error> {
        self.range_with(self.method, self.symmetric)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let (tag, bits, p) = self.method.encode();
        w.bytes(b"LBHC").u8(1).u8(self.fine as u8).u16(0);
        w.u32(self.bins as u32).u8(tag).u8(bits).u8(self.symmetric as u8);
        w.u8((self.nonfinite == NonFinite::Skip) as u8).f64(p);
        w.u64(self.count).u64(self.skipped).u32(self.pos_max).u32(self.neg_max);
        let slots = 1usize << self.fine;
        let pages: Vec<(usize, &[u64])> = (0..PAGES)
            .filter(|&p| self.index[p] != NONE)
            .map(|p| {
                let off = self.index[p] as usize;
                (p, &self.arena[off..off + slots])
            })
            .filter(|(_, s)| s.iter().any(|&c| c != 0))
            .collect();
        w.u32(pages.len() as u32);
        for (p, counts) in pages {
            let nnz = counts.iter().filter(|&&c| c != 0).count();
            w.u16(p as u16).u16(0).u32(nnz as u32);
            for (slot, &c) in counts.iter().enumerate().filter(|(_, &c)| c != 0) {
                w.u32(slot as u32).u64(c);
            }
        }
        w.0
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBHC", 1)?;
        let fine = u32::from(r.u8()?);
        r.u16()?;
        let bins = r.u32()? as usize;
        let (tag, bits, sym, nf) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let p = r.f64()?;
        let method = Method::decode(tag, bits, p)?;
        let mut s = Self::new(method)
            .with_bins(bins)
            .map_err(|_| Error::Decode("bad bin count"))?;
        if fine != s.fine || sym > 1 || nf > 1 {
            return Err(Error::Decode("bad configuration"));
        }
        s.symmetric = sym == 1;
        s.nonfinite = if nf == 1 { NonFinite::Skip } else { NonFinite::Error };
        s.count = r.u64()?;
        s.skipped = r.u64()?;
        s.pos_max = r.u32()?;
        s.neg_max = r.u32()?;
        if s.pos_max >= 0x7f80_0000 || s.neg_max >= 0x7f80_0000 {
            return Err(Error::Decode("non-finite maximum"));
        }
        let npages = r.u32()? as usize;
        let slots = 1usize << fine;
        let mut total = 0u64;
        let mut last_page = None;
        for _ in 0..npages {
            let page = r.u16()? as usize;
            r.u16()?;
            let nnz = r.u32()? as usize;
            if page >= PAGES || (page & 255) == 255 || last_page >= Some(page) || nnz > slots {
                return Err(Error::Decode("bad page"));
            }
            last_page = Some(page);
            let off = s.page(page);
            let mut last_slot = None;
            for _ in 0..nnz {
                let slot = r.u32()? as usize;
                let c = r.u64()?;
                if slot >= slots || last_slot >= Some(slot) || c == 0 {
                    return Err(Error::Decode("bad slot"));
                }
                last_slot = Some(slot);
                s.arena[off + slot] = c;
                total = total.checked_add(c).ok_or(Error::Decode("count overflow"))?;
            }
        }
        r.finish()?;
        if total != s.count {
            return Err(Error::Decode("counts do not add up"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input() {
        let mut h = HistogramCalibrator::new(Method::Percentile(99.0));
        assert_eq!(h.range(), Err(Error::NoData));
        h.observe(&[]).unwrap();
        assert_eq!(h.range(), Err(Error::NoData));
        let big: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        h.observe(&big).unwrap();
        let before = h.to_bytes();
        let mut bad = big.clone();
        bad[9_000] = f32::NAN;
        assert!(matches!(h.observe(&bad), Err(Error::NonFinite { index: 9000, .. })));
        assert_eq!(h.to_bytes(), before, "state unchanged after an error");
        assert_eq!(
            h.range_with(Method::Percentile(0.0), true),
            Err(Error::InvalidPercentile(0.0))
        );
        assert!(h.range_with(Method::Percentile(100.5), true).is_err());
        assert!(h.range_with(Method::Entropy { bits: 1 }, true).is_err());
        assert!(h.range_with(Method::Mse { bits: 17 }, true).is_err());
        assert!(HistogramCalibrator::new(Method::Mse { bits: 8 }).with_bins(0).is_err());
        let small = HistogramCalibrator::new(Method::Entropy { bits: 8 })
            .with_bins(64)
            .unwrap();
        let mut small = small;
        small.observe(&[1.0]).unwrap();
        assert!(matches!(small.range(), Err(Error::InvalidBits { .. })));
        let other = HistogramCalibrator::new(Method::Mse { bits: 8 });
        assert_eq!(h.merge(&other), Err(Error::ConfigMismatch));
        let mut skip = HistogramCalibrator::new(Method::Percentile(100.0)).with_nonfinite(NonFinite::Skip);
        skip.observe(&[1.0, f32::INFINITY, -2.0, f32::NAN]).unwrap();
        assert_eq!((skip.count(), skip.skipped()), (2, 2));
        assert_eq!(skip.range().unwrap(), Range { min: -2.0, max: 2.0 });
    }

    #[test]
    fn zeros_and_asymmetric() {
        let mut h = HistogramCalibrator::new(Method::Percentile(100.0)).with_symmetric(false);
        h.observe(&[0.0, 0.0]).unwrap();
        assert_eq!(h.range().unwrap(), Range { min: -0.0, max: 0.0 });
        h.observe(&[3.0, -1.0, 2.0]).unwrap();
        assert_eq!(h.range().unwrap(), Range { min: -1.0, max: 3.0 });
    }

    #[test]
    fn bytes_round_trip() {
        let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 }).with_symmetric(false);
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
}
