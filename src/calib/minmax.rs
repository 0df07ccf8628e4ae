//! Min/max calibrators: running extremes, a moving average of them, and per channel.

use super::bytes::{Reader, Writer};
use super::{from_order_key, Calibrator, Error, Range};

/// Smallest and largest order key of a batch, or the first non-finite value.
#[inline]
fn scan(batch: &[f32]) -> Result<(u32, u32), Error> {
    crate::arch::run(Scan(batch)).ok_or_else(|| first_non_finite(batch))
}

/// [`scan`] compiled again for wider vectors: `None` if a value is not finite.
struct Scan<'a>(&'a [f32]);

impl crate::arch::Job for Scan<'_> {
    type Out = Option<(u32, u32)>;

    #[inline(always)]
    fn run(self) -> Option<(u32, u32)> {
        let mut lo = u32::MAX;
        let mut hi = 0u32;
        let mut bad = false;
        for chunk in self.0.chunks(1024) {
            for &x in chunk {
                let b = x.to_bits();
                bad |= (b & 0x7fff_ffff) >= 0x7f80_0000;
                let k = b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000);
                lo = lo.min(k);
                hi = hi.max(k);
            }
            if bad {
                return None;
            }
        }
        Some((lo, hi))
    }
}

pub(crate) fn first_non_finite(batch: &[f32]) -> Error {
    let (index, &value) = batch
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_finite())
        .expect("caller saw a non-finite value");
    Error::NonFinite { index, value }
}

/// Running minimum and maximum (torch.ao `MinMaxObserver`, ONNX Runtime's `MinMaxCalibrater`).
///
/// The result depends only on the set of values: any order, split or merge tree gives the same
/// range, bit for bit (`-0.0 < +0.0` is used to order signed zeros, so even they are exact).
///
/// Serialised layout (little endian, 25 bytes): `b"LBMM"`, version `1u8`, count `u64`,
/// min `f32`, max `f32` (both meaningless while count is 0).
///
/// # Examples
///
/// ```
/// use lowbit::calib::{Calibrator, MinMaxCalibrator, Range};
/// let mut c = MinMaxCalibrator::new();
/// c.observe(&[1.0, -3.0])?;
/// c.observe(&[])?;
/// c.observe(&[2.5])?;
/// assert_eq!(c.range()?, Range { min: -3.0, max: 2.5 });
/// assert!(c.observe(&[f32::NAN]).is_err());
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxCalibrator {
    lo: u32,
    hi: u32,
    count: u64,
}

impl Default for MinMaxCalibrator {
    fn default() -> Self {
        Self::new()
    }
}

impl MinMaxCalibrator {
    /// An empty calibrator.
    pub fn new() -> Self {
        Self {
            lo: u32::MAX,
            hi: 0,
            count: 0,
        }
    }

    /// Number of values observed.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Calibrator for MinMaxCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let count = self.count.checked_add(batch.len() as u64).ok_or(Error::CountOverflow)?;
        let (lo, hi) = scan(batch)?;
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        self.count = count;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
        self.count = self.count.checked_add(other.count).ok_or(Error::CountOverflow)?;
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
        Ok(())
    }

    fn range(&self) -> Result<Range, Error> {
        if self.count == 0 {
            return Err(Error::NoData);
        }
        Ok(Range {
            min: from_order_key(self.lo),
            max: from_order_key(self.hi),
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(b"LBMM").u8(1).u64(self.count);
        w.f32(from_order_key(self.lo)).f32(from_order_key(self.hi));
        w.0
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBMM", 1)?;
        let count = r.u64()?;
        let (lo, hi) = (r.f32()?, r.f32()?);
        r.finish()?;
        if count == 0 {
            return Ok(Self::new());
        }
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(Error::Decode("bad min/max"));
        }
        Ok(Self {
            lo: super::order_key(lo.to_bits()),
            hi: super::order_key(hi.to_bits()),
            count,
        })
    }
}

/// Moving average of each batch's min and max, as torch.ao `MovingAverageMinMaxObserver`:
/// the first non-empty batch sets the range, then `min += c * (batch_min - min)` (and the same
/// for max) in `f32`, with `c` the averaging constant (torch's default 0.01). When the two
/// values are more than `f32::MAX` apart, where torch's `f32` difference overflows to an
/// infinite range, the average is computed in `f64` instead (so the range stays finite), and
/// so it is where `f32` rounding would leave the min above the max (torch's state is then
/// invalid), so that `min <= max` always.
///
/// **Order dependent by definition**: the last batches weigh most. [`Calibrator::merge`] returns
/// [`Error::NotMergeable`].
///
/// Serialised layout (little endian, 18 bytes): `b"LBMA"`, version `1u8`, constant `f32`,
/// has-state `u8` (0 or 1), min `f32`, max `f32`.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{Calibrator, MovingAverageMinMaxCalibrator, Range};
/// let mut c = MovingAverageMinMaxCalibrator::new(0.5)?;
/// c.observe(&[0.0, 4.0])?;
/// c.observe(&[-2.0, 2.0])?;
/// assert_eq!(c.range()?, Range { min: -1.0, max: 3.0 });
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MovingAverageMinMaxCalibrator {
    c: f32,
    state: Option<(f32, f32)>,
}

impl MovingAverageMinMaxCalibrator {
    /// A calibrator with averaging constant `c` in `(0, 1]`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if `c` is outside `(0, 1]`.
    pub fn new(c: f32) -> Result<Self, Error> {
        if !(c > 0.0 && c <= 1.0) {
            return Err(Error::InvalidParameter("averaging constant must be in (0, 1]"));
        }
        Ok(Self { c, state: None })
    }
}

/// `old + c * (new - old)` in `f32`, as torch computes it; where `new - old` overflows (the two
/// are more than `f32::MAX` apart, and torch gets an infinity or NaN), the same average
/// computed in `f64`, which lies between `old` and `new`.
fn average(old: f32, new: f32, c: f32) -> f32 {
    let v = old + c * (new - old);
    if v.is_finite() {
        return v;
    }
    let (o, n) = (f64::from(old), f64::from(new));
    (o + f64::from(c) * (n - o)) as f32
}

impl Calibrator for MovingAverageMinMaxCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let (lo, hi) = scan(batch)?;
        let (lo, hi) = (from_order_key(lo), from_order_key(hi));
        self.state = Some(match self.state {
            None => (lo, hi),
            Some((mn, mx)) => {
                let (a, b) = (average(mn, lo, self.c), average(mx, hi, self.c));
                if a <= b {
                    (a, b)
                } else {
                    // f32 rounding crossed the two averages (the exact ones are ordered: a min
                    // far below loses the batch's min, e.g. -3e38 + (-10 + 3e38) = 0 while the
                    // max is -10); torch's state is then invalid. `(1 - c)·old + c·new` in f64
                    // instead: both products are exact, so each average is rounded once, and
                    // rounding keeps their order.
                    let c = f64::from(self.c);
                    let avg = |o: f32, n: f32| ((1.0 - c) * f64::from(o) + c * f64::from(n)) as f32;
                    let (a, b) = (avg(mn, lo), avg(mx, hi));
                    (a.min(b), a.max(b))
                }
            }
        });
        Ok(())
    }

    fn merge(&mut self, _other: &Self) -> Result<(), Error> {
        Err(Error::NotMergeable)
    }

    fn range(&self) -> Result<Range, Error> {
        let (min, max) = self.state.ok_or(Error::NoData)?;
        Ok(Range { min, max })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let (mn, mx) = self.state.unwrap_or((0.0, 0.0));
        w.bytes(b"LBMA").u8(1).f32(self.c).u8(self.state.is_some() as u8);
        w.f32(mn).f32(mx);
        w.0
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBMA", 1)?;
        let c = r.f32()?;
        let has = r.u8()?;
        let (mn, mx) = (r.f32()?, r.f32()?);
        r.finish()?;
        let mut s = Self::new(c).map_err(|_| Error::Decode("bad averaging constant"))?;
        match has {
            0 => {}
            1 if mn.is_finite() && mx.is_finite() && mn <= mx => s.state = Some((mn, mx)),
            _ => return Err(Error::Decode("bad state")),
        }
        Ok(s)
    }
}

/// Min and max per channel, the channel being the **last** (contiguous) axis: a batch is
/// `rows × channels` values, row-major, as activations `[tokens, features]` are laid out.
///
/// [`Calibrator::range`] gives the range over all channels; [`PerChannelMinMaxCalibrator::ranges`]
/// one per channel. Order independent and exactly mergeable, like [`MinMaxCalibrator`].
///
/// Memory follows the data: the per-channel extremes (8 bytes a channel) are allocated by the
/// first batch that holds a row (so at most twice that batch's size), not by
/// [`PerChannelMinMaxCalibrator::new`].
///
/// Serialised layout (little endian): `b"LBMC"`, version `2u8`, channels `u32`, rows `u64`,
/// then, unless rows is 0, per channel the order keys of its min and max as `u32` (the key of
/// an `f32` with bits `b` is `b | 0x8000_0000` for a positive sign, `!b` for a negative one:
/// keys compare as the values do). Version 1, which [`Calibrator::from_bytes`] also reads, wrote
/// the per-channel keys for 0 rows too.
///
/// # Examples
///
/// ```
/// use lowbit::calib::{Calibrator, PerChannelMinMaxCalibrator, Range};
/// let mut c = PerChannelMinMaxCalibrator::new(2)?;
/// c.observe(&[1.0, -1.0, 3.0, -4.0])?; // rows [1, -1] and [3, -4]
/// assert_eq!(c.ranges()?, vec![Range { min: 1.0, max: 3.0 }, Range { min: -4.0, max: -1.0 }]);
/// assert!(c.observe(&[1.0, 2.0, 3.0]).is_err()); // not a whole number of rows
/// # Ok::<(), lowbit::calib::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PerChannelMinMaxCalibrator {
    channels: usize,
    /// Per-channel order keys; empty while `rows` is 0.
    lo: Vec<u32>,
    hi: Vec<u32>,
    rows: u64,
}

/// Largest channel count: the serialised layout holds it in a `u32`.
const MAX_CHANNELS: usize = u32::MAX as usize;

impl PerChannelMinMaxCalibrator {
    /// A calibrator for `channels` channels, in `1..=u32::MAX`. Nothing is allocated until a
    /// row is observed.
    ///
    /// # Errors
    ///
    /// [`Error::ChannelMismatch`] for zero channels or more than `u32::MAX`.
    pub fn new(channels: usize) -> Result<Self, Error> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(Error::ChannelMismatch { len: 0, channels });
        }
        Ok(Self {
            channels,
            lo: Vec::new(),
            hi: Vec::new(),
            rows: 0,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Number of rows observed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The range of each channel.
    ///
    /// # Errors
    ///
    /// [`Error::NoData`] before any row was observed.
    pub fn ranges(&self) -> Result<Vec<Range>, Error> {
        if self.rows == 0 {
            return Err(Error::NoData);
        }
        Ok(self
            .lo
            .iter()
            .zip(&self.hi)
            .map(|(&l, &h)| Range {
                min: from_order_key(l),
                max: from_order_key(h),
            })
            .collect())
    }

    /// The extremes, allocated on first use.
    fn extremes(&mut self) -> (&mut [u32], &mut [u32]) {
        if self.lo.is_empty() {
            self.lo = vec![u32::MAX; self.channels];
            self.hi = vec![0; self.channels];
        }
        (&mut self.lo, &mut self.hi)
    }
}

impl Calibrator for PerChannelMinMaxCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        let ch = self.channels;
        if !batch.len().is_multiple_of(ch) {
            return Err(Error::ChannelMismatch {
                len: batch.len(),
                channels: ch,
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        let rows = self
            .rows
            .checked_add((batch.len() / ch) as u64)
            .ok_or(Error::CountOverflow)?;
        if batch.iter().any(|x| !x.is_finite()) {
            return Err(first_non_finite(batch));
        }
        let (los, his) = self.extremes();
        for row in batch.chunks_exact(ch) {
            for ((lo, hi), &x) in los.iter_mut().zip(his.iter_mut()).zip(row) {
                let b = x.to_bits();
                let k = b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000);
                *lo = (*lo).min(k);
                *hi = (*hi).max(k);
            }
        }
        self.rows = rows;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
        if other.channels != self.channels {
            return Err(Error::ConfigMismatch);
        }
        let rows = self.rows.checked_add(other.rows).ok_or(Error::CountOverflow)?;
        if other.rows == 0 {
            return Ok(());
        }
        let (los, his) = self.extremes();
        for (a, b) in los.iter_mut().zip(&other.lo) {
            *a = (*a).min(*b);
        }
        for (a, b) in his.iter_mut().zip(&other.hi) {
            *a = (*a).max(*b);
        }
        self.rows = rows;
        Ok(())
    }

    fn range(&self) -> Result<Range, Error> {
        if self.rows == 0 {
            return Err(Error::NoData);
        }
        let lo = self.lo.iter().copied().min().unwrap_or(u32::MAX);
        let hi = self.hi.iter().copied().max().unwrap_or(0);
        Ok(Range {
            min: from_order_key(lo),
            max: from_order_key(hi),
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes(b"LBMC").u8(2).u32(self.channels as u32).u64(self.rows);
        if self.rows > 0 {
            for (&l, &h) in self.lo.iter().zip(&self.hi) {
                w.u32(l).u32(h);
            }
        }
        w.0
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        if r.take(4)? != b"LBMC" {
            return Err(Error::Decode("wrong magic (another calibrator?)"));
        }
        let version = r.u8()?;
        if version != 1 && version != 2 {
            return Err(Error::Decode("unsupported version"));
        }
        let ch = r.u32()? as usize;
        let rows = r.u64()?;
        let mut s = Self::new(ch).map_err(|_| Error::Decode("bad channel count"))?;
        let entries = r.0.len() / 8;
        if r.0.len() % 8 != 0 || (entries != ch && !(entries == 0 && rows == 0 && version == 2)) {
            return Err(Error::Decode("bad channel count"));
        }
        if rows == 0 {
            // Nothing observed: version 1 wrote the empty extremes, read without allocating.
            for _ in 0..entries {
                if (r.u32()?, r.u32()?) != (u32::MAX, 0) {
                    return Err(Error::Decode("extremes without rows"));
                }
            }
            return Ok(s);
        }
        let (mut lo, mut hi) = (Vec::with_capacity(ch), Vec::with_capacity(ch));
        for _ in 0..ch {
            let (l, h) = (r.u32()?, r.u32()?);
            if !from_order_key(l).is_finite() || !from_order_key(h).is_finite() || l > h {
                return Err(Error::Decode("bad channel min/max"));
            }
            lo.push(l);
            hi.push(h);
        }
        r.finish()?;
        (s.lo, s.hi, s.rows) = (lo, hi, rows);
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
