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
    /// `2^(bits-1)` at most the number of bins. Of the edges within 0.1% of the smallest
    /// divergence, the smallest is chosen (modelopt takes the exact minimum, ties to the
    /// largest), which keeps the choice from jumping between distant, nearly equal minima.
    Entropy {
        /// Quantized bit width (sign included).
        bits: u32,
    },
    /// The edge that minimises the count-weighted squared error of the bin centres quantized
    /// with `2^(bits-1) - 1` positive levels (`bits` in `2..=16`), clipped values included;
    /// of the edges within 0.1% of the smallest error, the smallest.
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
const BLOCK: usize = 1 << 16;
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
/// bins). Each fine bin also keeps the smallest and largest value it has seen (their low
/// mantissa bits). Bins are never rescaled by the data seen so far, so the state is a pure
/// function of the multiset: observing is counting (and a `min`/`max`), merging is adding.
///
/// [`Calibrator::range`] re-bins the fine bins into `bins` linear bins over `[0, max|x|]`, the
/// largest magnitude being tracked exactly. A fine bin is at most `2^-M` of its lower edge wide,
/// so it meets at most two linear bins. When its smallest and largest values fall in the same
/// linear bin its count goes there exactly; otherwise those two values go to their own bins and
/// the rest is split in proportion to the overlap (at most one fine bin per linear edge can
/// straddle it). So:
///
/// - every value lands at most one linear bin from its bin in a one-pass histogram over all the
///   data, and the percentile is within one bin (`max|x| / bins`) of the one-pass result;
/// - for values with at most `M` significant bits (data that came from f16, bf16 or FP8, as
///   activations often do) each fine bin holds one distinct value, the re-binned histogram
///   *is* the one-pass histogram and every method gives exactly the one-pass result;
/// - for general `f32` data the histograms differ in a few counts at straddled edges. Entropy
///   and MSE are argmins over a flat objective; they choose, among ranges within 0.1% of the
///   best, the tightest (see [`Method`]), and agree with the one-pass result within one bin in
///   about 98–99% of random tests (exactly, on the MiniLM activations); the rest are further
///   off because the objective has two nearly equal minima.
///
/// # Memory
///
/// Fine bins are allocated a page at a time, one page per sign and binary exponent that occurs,
/// each `2^M` × (4-byte count + 4-byte extremes): **16 KiB** for `M = 11` (counts that could
/// pass 2^32 are moved to a second, 8-byte-per-bin array first, which then doubles it). Values
/// spanning 2^-20..2^6 of both signs use 54 pages (864 KiB); the worst case is 508 pages
/// (8 MiB). [`Calibrator::range`] needs two vectors of `bins` counts more.
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
/// count `u32`, and that many (slot `u32`, count `u64`, extremes `u32`) records in increasing
/// slot order, where extremes holds the largest value's low mantissa bits (the `23 - M` bits
/// below the key) in its high 16 bits and the complement of the smallest value's in its low 16.
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
    /// Per fine bin: `[count since the last flush, extremes]`, the extremes holding the largest
    /// value's low mantissa bits (below the key) in the high half and the complement of the
    /// smallest value's in the low half (so that both update by `max`). Side by side, so that
    /// counting a value and checking its extremes touch one cache line.
    words: Vec<[u32; 2]>,
    /// Counts moved out of `words` before they could overflow 32 bits (empty until needed).
    spill: Vec<u64>,
    since_flush: u64,
    count: u64,
    skipped: u64,
    pos_max: u32,
    neg_max: u32,
}

fn fine_bits(bins: usize) -> u32 {
    bins.next_power_of_two().trailing_zeros().max(11)
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
            words: Vec::new(),
            spill: Vec::new(),
            since_flush: 0,
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
        self.words.capacity() * 8 + self.spill.capacity() * 8 + PAGES * 4
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
        let off = self.words.len();
        self.words.resize(off + (1usize << self.fine), [0; 2]);
        if !self.spill.is_empty() {
            self.spill.resize(self.words.len(), 0);
        }
        self.index[page] = off as u32;
        off
    }

    #[inline]
    fn slot_count(&self, i: usize) -> u64 {
        u64::from(self.words[i][0]) + self.spill.get(i).copied().unwrap_or(0)
    }

    #[inline]
    fn slot_ext(&self, i: usize) -> u32 {
        self.words[i][1]
    }

    /// Moves the 32-bit counts into `spill`.
    fn flush(&mut self) {
        if self.spill.is_empty() {
            self.spill = vec![0; self.words.len()];
        }
        for (w, s) in self.words.iter_mut().zip(self.spill.iter_mut()) {
            *s += u64::from(w[0]);
            w[0] = 0;
        }
        self.since_flush = 0;
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
            match crate::arch::run(job) {
                Ok(()) => break,
                Err(at) => {
                    // A page is missing in the chunk at `at`: allocate, then go on from there.
                    rest = &rest[at..];
                    for &x in &rest[..CHUNK.min(rest.len())] {
                        self.page((x.to_bits() >> 23) as usize);
                    }
                }
            }
        }
    }

    /// Counts `values` up to the first chunk of [`CHUNK`] that holds a non-finite value, widening
    /// `maxima` (positive, negative magnitude) by the values counted; returns how many were
    /// counted. The caller checked that no flush is due (`since_flush + values.len()` fits in a
    /// u32). A non-finite value's page (exponent 0xff) is never allocated, so [`Scatter`] stops
    /// at its chunk as at any missing page; only a chunk of finite values allocates pages.
    fn scatter_checked(&mut self, values: &[f32], maxima: &mut [u32; 2]) -> usize {
        let mut rest = values;
        let done = loop {
            let job = Scatter {
                index: &self.index,
                words: &mut self.words,
                data: rest,
                fine: self.fine,
                maxima,
            };
            match crate::arch::run(job) {
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
        self.since_flush += done as u64;
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

    /// Linear histogram(s) over `[0, amax]` of the fine pages of `signs`.
    #[allow(clippy::needless_range_loop)]
    fn rebin(&self, signs: &[u32], amax: f32, out: &mut [u64]) {
        out.fill(0);
        let n = out.len();
        let shift = 23 - self.fine;
        let slots = 1usize << self.fine;
        let low = (1u32 << shift) - 1;
        let a = f64::from(amax);
        for &s in signs {
            for e in 0..256u32 {
                let off = self.index[(s * 256 + e) as usize];
                if off == NONE {
                    continue;
                }
                let off = off as usize;
                for slot in 0..slots {
                    let c = self.slot_count(off + slot);
                    if c == 0 {
                        continue;
                    }
                    let ext = self.slot_ext(off + slot);
                    let key = (e << 23) | ((slot as u32) << shift);
                    let vmin = f64::from(f32::from_bits(key | (!ext & 0xffff & low)));
                    let vmax = f64::from(f32::from_bits(key | (ext >> 16)));
                    let (jmin, jmax) = (bin_of(vmin, a, n), bin_of(vmax, a, n));
                    if jmin == jmax {
                        out[jmin] += c;
                        continue;
                    }
                    // The smallest and largest value are known exactly; the others are spread
                    // over [vmin, vmax] in proportion to the overlap with each linear bin.
                    out[jmin] += 1;
                    out[jmax] += 1;
                    let rest = c - 2;
                    let mut given = 0u64;
                    let span = vmax - vmin;
                    for j in jmin..jmax {
                        let edge = (j + 1) as f64 * a / n as f64;
                        let upto = ((edge - vmin) / span * rest as f64).round() as u64;
                        let upto = upto.clamp(given, rest);
                        out[j] += upto - given;
                        given = upto;
                    }
                    out[jmax] += rest - given;
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

/// Values per chunk of [`Scatter`].
const CHUNK: usize = 1024;

/// Counts finite values into allocated pages, a chunk at a time: first the fine-bin index of
/// every value of the chunk and its extremes word (branch-free, so it vectorises), then the
/// counts, and the extremes only where they grow. Stops with `Err(start of the chunk)` at the
/// first chunk that needs a page not allocated yet, having counted the chunks before it.
struct Scatter<'a> {
    index: &'a [u32; PAGES],
    words: &'a mut [[u32; 2]],
    data: &'a [f32],
    fine: u32,
    /// Widened by the largest positive and negative magnitudes of the chunks counted.
    maxima: &'a mut [u32; 2],
}

impl crate::arch::Job for Scatter<'_> {
    type Out = Result<(), usize>;

    #[inline(always)]
    fn run(self) -> Result<(), usize> {
        let mut slot = [0u32; CHUNK];
        let mut word = [0u32; CHUNK];
        for (ci, chunk) in self.data.chunks(CHUNK).enumerate() {
            let keys = crate::arch::fine_keys(self.index, chunk, self.fine, &mut slot, &mut word);
            if keys.missing {
                return Err(ci * CHUNK);
            }
            self.maxima[0] = self.maxima[0].max(keys.pos);
            self.maxima[1] = self.maxima[1].max(keys.neg);
            let n = chunk.len();
            crate::arch::count_and_widen(self.words, &slot[..n], &word[..n]);
        }
        Ok(())
    }
}

/// Linear bin of magnitude `v` among `n` over `[0, a]`: `floor(v / a * n)` in `f64`, the top
/// edge in the last bin.
#[inline]
fn bin_of(v: f64, a: f64, n: usize) -> usize {
    if a > 0.0 {
        ((v / a * n as f64) as usize).min(n - 1)
    } else {
        0
    }
}

/// Apply a symmetric [`Method`] to a linear histogram of magnitudes: `counts[j]` values in
/// `[j, j + 1) * amax / counts.len()` (the last bin closed). Returns the clipping magnitude, a
/// bin edge. This is what [`HistogramCalibrator`] does after re-binning; use it on a histogram
/// of your own, e.g. to compare with a one-pass histogram.
///
/// # Errors
///
/// [`Error::InvalidBins`] for an empty histogram, [`Error::InvalidPercentile`] or
/// [`Error::InvalidBits`] for a bad method, [`Error::NoData`] if all counts are 0,
/// [`Error::InvalidRange`] if `amax` is negative or not finite.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{amax_from_histogram, Method};
/// let mut counts = vec![0u64; 100];
/// counts[..90].fill(10);
/// counts[99] = 1;
/// assert_eq!(amax_from_histogram(Method::Percentile(99.0), &counts, 10.0)?, 9.0);
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
pub fn amax_from_histogram(method: Method, counts: &[u64], amax: f32) -> Result<f32, Error> {
    if counts.is_empty() || counts.len() > MAX_BINS {
        return Err(Error::InvalidBins {
            bins: counts.len(),
            min: 1,
            max: MAX_BINS,
        });
    }
    method.validate(counts.len())?;
    if !(amax >= 0.0 && amax.is_finite()) {
        return Err(Error::InvalidRange { min: -amax, max: amax });
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Err(Error::NoData);
    }
    Ok(HistogramCalibrator::pick(method, counts, amax, total, None))
}

impl Calibrator for HistogramCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        // A strict batch of one block is checked before it is counted (nothing to undo). Longer
        // batches, and any batch under `NonFinite::Skip`, are checked while counting
        // (`scatter_checked` stops at the first chunk holding a non-finite value): then a strict
        // batch is restored from a copy taken before its first block, and a skipping one counts
        // the rest of that block through the filtering path below.
        let strict = self.nonfinite == NonFinite::Error;
        let check_first = strict && batch.len() <= BLOCK;
        let saved = (strict && !check_first).then(|| {
            (
                self.words.clone(),
                self.spill.clone(),
                self.index.clone(),
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
                if let Some((w, s, i, f)) = saved {
                    (self.words, self.spill, self.index, self.since_flush) = (w, s, i, f);
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

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
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
        type Page = (usize, Vec<(usize, u64, u32)>);
        let pages: Vec<Page> = (0..PAGES)
            .filter(|&p| self.index[p] != NONE)
            .map(|p| {
                let off = self.index[p] as usize;
                let nz = (0..slots)
                    .map(|k| (k, self.slot_count(off + k), self.slot_ext(off + k)))
                    .filter(|&(_, c, _)| c != 0)
                    .collect();
                (p, nz)
            })
            .filter(|(_, nz): &(usize, Vec<_>)| !nz.is_empty())
            .collect();
        w.u32(pages.len() as u32);
        for (p, nz) in pages {
            w.u16(p as u16).u16(0).u32(nz.len() as u32);
            for (slot, c, e) in nz {
                w.u32(slot as u32).u64(c).u32(e);
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
                let ext = r.u32()?;
                let low = (1u32 << (23 - fine)) - 1;
                let (hi, lo) = (ext >> 16, !ext & 0xffff);
                if slot >= slots || last_slot >= Some(slot) || c == 0 || hi > low || lo > hi {
                    return Err(Error::Decode("bad slot"));
                }
                last_slot = Some(slot);
                if c > u64::from(u32::MAX) {
                    if s.spill.is_empty() {
                        s.spill = vec![0; s.words.len()];
                    }
                    s.spill[off + slot] = c;
                } else {
                    s.words[off + slot][0] = c as u32;
                }
                s.words[off + slot][1] = ext;
                total = total.checked_add(c).ok_or(Error::Decode("count overflow"))?;
            }
        }
        r.finish()?;
        s.since_flush = s.count; // bounds every 32-bit count held in `words`
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
        // Several blocks: the earlier ones are undone, extremes included.
        let mut long: Vec<f32> = (0..50_000).map(|i| (i as f32).sqrt() * 1.37 - 50.0).collect();
        long[45_000] = f32::NEG_INFINITY;
        assert!(matches!(h.observe(&long), Err(Error::NonFinite { index: 45_000, .. })));
        assert_eq!(h.to_bytes(), before, "state unchanged after an error in a later block");
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
        let mut base = HistogramCalibrator::new(Method::Entropy { bits: 8 });
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
                let mut s = base.clone().with_nonfinite(NonFinite::Skip);
                s.observe(&v).unwrap();
                v.remove(at);
                let mut want = base.clone().with_nonfinite(NonFinite::Skip);
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
        let mut s = base.clone().with_nonfinite(NonFinite::Skip);
        s.observe(&v).unwrap();
        let mut h = base.clone();
        assert!(matches!(h.observe(&v), Err(Error::NonFinite { index: 3000, .. })));
        assert!(snapshot(&h) == before);
        v.remove(3000);
        let mut want = base.clone().with_nonfinite(NonFinite::Skip);
        want.observe(&v).unwrap();
        want.skipped += 1;
        assert!(snapshot(&s) == snapshot(&want));
        // Several non-finite values, one per block, and a batch of them only.
        let mut s = base.clone().with_nonfinite(NonFinite::Skip);
        let mut v = data.clone();
        for k in 0..4 {
            v[k * BLOCK + 100] = f32::NAN;
        }
        s.observe(&v).unwrap();
        s.observe(&[f32::INFINITY; 3000]).unwrap();
        assert_eq!((s.count(), s.skipped()), (1000 + n as u64 - 4, 4 + 3000));
    }

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

    #[test]
    fn zeros_and_asymmetric() {
        let mut h = HistogramCalibrator::new(Method::Percentile(100.0)).with_symmetric(false);
        h.observe(&[0.0, 0.0]).unwrap();
        assert_eq!(h.range().unwrap(), Range { min: -0.0, max: 0.0 });
        h.observe(&[3.0, -1.0, 2.0]).unwrap();
        assert_eq!(h.range().unwrap(), Range { min: -1.0, max: 3.0 });
    }

    /// Deterministic data: Laplace-like f32 with outliers, values of f16 precision, zeros and
    /// subnormals.
    pub(super) fn golden_data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
                let l = -u.signum() * (1.0 - 2.0 * u.abs()).ln();
                match i % 7 {
                    0 => (l * 30.0) as f32,
                    1 => f32::from_bits((l as f32).to_bits() & !0xfff),
                    2 if i % 5 == 0 => f32::from_bits((s >> 40) as u32 & 0x807f_ffff),
                    3 if i % 11 == 0 => 0.0,
                    _ => l as f32,
                }
            })
            .collect()
    }

    fn fnv(h: &mut u64, bytes: &[u8]) {
        for &b in bytes {
            *h = (*h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    /// Digest of the serialised state and of every method's range, symmetric and not.
    pub(super) fn digest(h: &HistogramCalibrator) -> u64 {
        let mut d = 0xcbf2_9ce4_8422_2325u64;
        fnv(&mut d, &h.to_bytes());
        let methods = [
            Method::Entropy { bits: 8 },
            Method::Mse { bits: 8 },
            Method::Mse { bits: 4 },
            Method::Percentile(99.99),
            Method::Percentile(99.9),
            Method::Percentile(50.0),
        ];
        for m in methods {
            for sym in [true, false] {
                match h.range_with(m, sym) {
                    Ok(r) => {
                        fnv(&mut d, &r.min.to_bits().to_le_bytes());
                        fnv(&mut d, &r.max.to_bits().to_le_bytes());
                    }
                    Err(e) => fnv(&mut d, format!("{e:?}").as_bytes()),
                }
            }
        }
        d
    }

    /// The state and every result, against digests taken from the per-value implementation
    /// before the chunked one replaced it.
    #[test]
    fn golden_digests() {
        let mut got = Vec::new();
        for (n, seed, bins) in [
            (300_000, 7u64, 2048),
            (70_001, 99, 2048),
            (20_000, 5, 100),
            (9_000, 3, 40_000),
        ] {
            let data = golden_data(n, seed);
            let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 })
                .with_bins(bins)
                .unwrap();
            for part in data.chunks(n / 3 + 1) {
                h.observe(part).unwrap();
            }
            let mut skip = HistogramCalibrator::new(Method::Mse { bits: 8 })
                .with_bins(bins)
                .unwrap()
                .with_nonfinite(NonFinite::Skip);
            let mut bad = data.clone();
            for i in (0..n).step_by(977) {
                bad[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3];
            }
            skip.observe(&bad).unwrap();
            got.push(digest(&h));
            got.push(digest(&skip));
        }
        assert_eq!(got, GOLDEN);
    }

    const GOLDEN: [u64; 8] = [
        0x5b3e_04a9_6314_aad6,
        0xd3dc_74de_b5f9_f0d7,
        0xecce_bdd6_3de5_7b60,
        0x7160_2e90_3144_0866,
        0xa94f_335d_d28b_f42b,
        0x9c51_493f_ff7d_5a19,
        0xdec5_9b66_3958_25a1,
        0x7ae1_26b2_ca2e_ef07,
    ];

    /// A calibrator fed through [`HistogramCalibrator::scatter_reference`], the per-value loop.
    fn reference(bins: usize, batches: &[Vec<f32>]) -> HistogramCalibrator {
        let mut h = HistogramCalibrator::new(Method::Entropy { bits: 8 })
            .with_bins(bins)
            .unwrap();
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
            let mut got = HistogramCalibrator::new(Method::Entropy { bits: 8 }).with_bins(bins).unwrap();
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
