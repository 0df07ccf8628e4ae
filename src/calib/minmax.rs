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
        let (lo, hi) = scan(batch)?;
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        self.count += batch.len() as u64;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
        self.lo = self.lo.min(other.lo);
        self.hi = self.hi.max(other.hi);
        self.count += other.count;
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
/// for max) in `f32`, with `c` the averaging constant (torch's default 0.01).
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

impl Calibrator for MovingAverageMinMaxCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let (lo, hi) = scan(batch)?;
        let (lo, hi) = (from_order_key(lo), from_order_key(hi));
        self.state = Some(match self.state {
            None => (lo, hi),
            Some((mn, mx)) => (mn + self.c * (lo - mn), mx + self.c * (hi - mx)),
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
            1 if mn.is_finite() && mx.is_finite() => s.state = Some((mn, mx)),
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
/// Serialised layout (little endian): `b"LBMC"`, version `1u8`, channels `u32`, rows `u64`,
/// then per channel min `f32`, max `f32`.
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
    lo: Vec<u32>,
    hi: Vec<u32>,
    rows: u64,
}

impl PerChannelMinMaxCalibrator {
    /// A calibrator for `channels` channels.
    ///
    /// # Errors
    ///
    /// [`Error::ChannelMismatch`] for zero channels.
    pub fn new(channels: usize) -> Result<Self, Error> {
        if channels == 0 || channels > u32::MAX as usize {
            return Err(Error::ChannelMismatch { len: 0, channels });
        }
        Ok(Self {
            lo: vec![u32::MAX; channels],
            hi: vec![0; channels],
            rows: 0,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.lo.len()
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
}

impl Calibrator for PerChannelMinMaxCalibrator {
    fn observe(&mut self, batch: &[f32]) -> Result<(), Error> {
        let ch = self.channels();
        if !batch.len().is_multiple_of(ch) {
            return Err(Error::ChannelMismatch {
                len: batch.len(),
                channels: ch,
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        if batch.iter().any(|x| !x.is_finite()) {
            return Err(first_non_finite(batch));
        }
        for row in batch.chunks_exact(ch) {
            for ((lo, hi), &x) in self.lo.iter_mut().zip(self.hi.iter_mut()).zip(row) {
                let b = x.to_bits();
                let k = b ^ ((((b as i32) >> 31) as u32) | 0x8000_0000);
                *lo = (*lo).min(k);
                *hi = (*hi).max(k);
            }
        }
        self.rows += (batch.len() / ch) as u64;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<(), Error> {
        if other.channels() != self.channels() {
            return Err(Error::ConfigMismatch);
        }
        for (a, b) in self.lo.iter_mut().zip(&other.lo) {
            *a = (*a).min(*b);
        }
        for (a, b) in self.hi.iter_mut().zip(&other.hi) {
            *a = (*a).max(*b);
        }
        self.rows += other.rows;
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
        w.bytes(b"LBMC").u8(1).u32(self.channels() as u32).u64(self.rows);
        for (&l, &h) in self.lo.iter().zip(&self.hi) {
            w.u32(l).u32(h);
        }
        w.0
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        r.header(b"LBMC", 1)?;
        let ch = r.u32()? as usize;
        let rows = r.u64()?;
        if ch == 0 || r.0.len() != ch * 8 {
            return Err(Error::Decode("bad channel count"));
        }
        let mut s = Self::new(ch).map_err(|_| Error::Decode("bad channel count"))?;
        for i in 0..ch {
            s.lo[i] = r.u32()?;
            s.hi[i] = r.u32()?;
        }
        r.finish()?;
        s.rows = rows;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_zeros_are_ordered() {
        let mut a = MinMaxCalibrator::new();
        a.observe(&[0.0, -0.0]).unwrap();
        let mut b = MinMaxCalibrator::new();
        b.observe(&[-0.0, 0.0]).unwrap();
        assert_eq!(a.range().unwrap().min.to_bits(), (-0.0f32).to_bits());
        assert_eq!(a.range().unwrap().max.to_bits(), 0.0f32.to_bits());
        assert_eq!(a, b);
    }

    #[test]
    fn errors_leave_state() {
        let mut a = MinMaxCalibrator::new();
        assert_eq!(a.range(), Err(Error::NoData));
        a.observe(&[1.0]).unwrap();
        let e = a.observe(&[2.0, f32::INFINITY]).unwrap_err();
        assert_eq!(
            e,
            Error::NonFinite {
                index: 1,
                value: f32::INFINITY
            }
        );
        assert_eq!(a.range().unwrap(), Range { min: 1.0, max: 1.0 });
        assert!(MovingAverageMinMaxCalibrator::new(0.0).is_err());
        assert!(PerChannelMinMaxCalibrator::new(0).is_err());
    }

    #[test]
    fn bytes_round_trip() {
        let mut a = PerChannelMinMaxCalibrator::new(3).unwrap();
        a.observe(&[1.0, -2.0, 0.5, 7.0, -0.0, 3.0]).unwrap();
        let b = PerChannelMinMaxCalibrator::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a, b);
        let mut m = MovingAverageMinMaxCalibrator::new(0.01).unwrap();
        m.observe(&[1.0, -1.0]).unwrap();
        assert_eq!(MovingAverageMinMaxCalibrator::from_bytes(&m.to_bytes()).unwrap(), m);
        let mut c = MinMaxCalibrator::new();
        c.observe(&[-0.0]).unwrap();
        assert_eq!(MinMaxCalibrator::from_bytes(&c.to_bytes()).unwrap(), c);
        assert!(MinMaxCalibrator::from_bytes(&m.to_bytes()).is_err());
        assert!(MinMaxCalibrator::from_bytes(&c.to_bytes()[..10]).is_err());
    }
}
