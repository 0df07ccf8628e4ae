//! Codebook quantization: NF4, FP4, E2M1 and any sorted table of levels in `[-1, 1]`.
//!
//! Per block of `B` elements: `absmax = max |x|`, `c = 1 / absmax`, the code of `x` is the
//! level nearest to `x * c`, and `x' = level[code] * absmax`. This is QLoRA's NormalFloat
//! recipe ("assume the weights are normal, take 16 fixed values from the normal quantile
//! function, scale each block by its absmax, map each value to the nearest level") and
//! bitsandbytes' FP4.
//!
//! # Decision bounds and ties
//!
//! A [`Codebook`] holds its levels in ascending order and one *decision bound* between each
//! pair of neighbours: the code of `y` is the number of bounds strictly below `y`
//! (`#{i : y > bound[i]}`). With [`Codebook::new`] each bound is the exact midpoint rounded
//! down to `f32`, so the code is exactly the nearest level and an exact midpoint goes to the
//! *lower* level, which is what bitsandbytes' NF4 kernel does (`dQuantizeNF4` compares
//! `x > 0.0397...f`). [`Codebook::nf4`] uses that kernel's 15 constants as they are
//! ([`NF4_BOUNDS`]). [`Codebook::bnb_fp4`] uses bitsandbytes' own FP4 thresholds
//! (sign-magnitude: ties go toward zero on both sides; note its `0.583333f` is not the
//! midpoint `7/12`, so FP4 is not exactly nearest between `0.583333` and `7/12`),
//! [`Codebook::e2m1`] sends ties to the even code as OCP's round-to-nearest-even does.
//! [`Codebook::with_bounds`] takes bounds of your own.
//!
//! The search is branch-free: for 16-level books (NF4, FP4, E2M1) the AVX-512 and AVX2
//! kernels find `#{i : y > bound[i]}` by a four-step binary search over the sorted bounds in
//! `f32` lanes (each step's bound comes from a register permute), and pack each pair as
//! `even << 4 | odd`; the portable loop counts the comparisons, and tests check the kernels
//! agree with it bit for bit. While a group of blocks is coded, the next group's input is
//! prefetched, so that reading memory overlaps the arithmetic. Dequantization looks each
//! byte up in a 256-entry table of level pairs and multiplies by the block's absmax.
//!
//! # Zero blocks, odd lengths, storage
//!
//! - An all-zero block has absmax 0; its codes are the code of the level nearest 0 and it
//!   dequantizes to 0. (bitsandbytes computes `0 * (1/0) = NaN` there and stores code 0: see
//!   [`crate::compat::bnb`], which reproduces that byte for byte.)
//! - The last block may be shorter. Codes are packed densely at [`Codebook::code_bits`] bits,
//!   most significant bits first ([`crate::quant::pack`]): 4-bit codes go two a byte, the first
//!   element in the high nibble (bitsandbytes' order), and an odd element count leaves the last
//!   low nibble zero ([`crate::compat::bnb`] writes the code of 0.0 there, as bitsandbytes).
//! - NaN or infinity in a block is [`Error::NonFinite`] naming the block.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::codebook::{normal_float_levels, Codebook, CodebookQuantizer};
//! use lowbit::quant::{Granularity, Quantizer};
//!
//! // NF4 built from the normal quantile function is bitsandbytes' table, bit for bit.
//! assert_eq!(normal_float_levels(4)?, Codebook::nf4().levels());
//!
//! let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64))?;
//! let x = [0.5f32, -1.0, 0.25, 0.0, 0.9];
//! let packed = q.quantize(&x)?;
//! assert_eq!(packed.scales(), [1.0]); // the block's absmax
//! assert_eq!(packed.codes(), [0xC0, 0xA7, 0xF0]); // 0.5 -> 12, -1 -> 0, 0.25 -> 10, 0 -> 7, 0.9 -> 15
//! let y = q.dequantize(&packed)?;
//! assert_eq!(y[1], -1.0); // the absmax element round-trips exactly
//! assert_eq!(y[3], 0.0);
//! # Ok::<(), lowbit::QuantError>(())
//! ```

mod normal_float;
mod quantizer;

pub(crate) use normal_float::torch_linspace_f32;
pub use normal_float::{normal_float_levels, normal_float_levels_with_offset, normal_float_offset, normal_quantile};
pub use quantizer::{CodebookQuantizer, ZeroBlock, CODEBOOK_SCHEME};

use super::Error;
use crate::arch::Levels16;
use crate::format::FloatFormat;

/// bitsandbytes' NF4 levels (`get_4bit_type("nf4")`, also `create_normal_map()`'s 16 values).
#[allow(clippy::excessive_precision)]
pub const NF4_LEVELS: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// The decision bounds of bitsandbytes' NF4 kernel (`dQuantizeNF4` in `csrc/kernels.cu`),
/// ascending, read as `f32` literals the way nvcc reads them. Seven are the exact midpoints of
/// [`NF4_LEVELS`]. The other eight midpoints lie between two `f32` values; four constants are
/// the one below (as exact nearest-level needs) and four the one above (`-0.6106329`,
/// `-0.33967942`, `-0.2346074`, `0.120255254`): an input equal to one of those four goes to
/// the lower level although it is nearer, by less than an ulp, to the upper.
#[allow(clippy::excessive_precision)]
pub const NF4_BOUNDS: [f32; 15] = [
    -0.8480964004993439,
    -0.6106329262256622,
    -0.4599952697753906,
    -0.33967943489551544,
    -0.23460740596055984,
    -0.13791173323988914,
    -0.045525018125772476,
    0.03979014977812767,
    0.1202552504837513,
    0.2035212516784668,
    0.2920137718319893,
    0.3893125355243683,
    0.5016634166240692,
    0.6427869200706482,
    0.8614784181118011,
];

/// bitsandbytes' FP4 values in code order (`get_4bit_type("fp4")`: `[0, 0.0625, 8, 12, 4, 6,
/// 2, 3]` and their negatives, divided by 12). Code `0b1000` is bitsandbytes' negative zero.
pub const BNB_FP4_VALUES: [f32; 16] = [
    0.0,
    0.0625 / 12.0,
    8.0 / 12.0,
    1.0,
    4.0 / 12.0,
    0.5,
    2.0 / 12.0,
    0.25,
    -0.0,
    -0.0625 / 12.0,
    -8.0 / 12.0,
    -1.0,
    -4.0 / 12.0,
    -0.5,
    -2.0 / 12.0,
    -0.25,
];

/// bitsandbytes' FP4 magnitude thresholds (`dQuantizeFP4`), ascending, with the magnitude
/// code each interval above them gets.
const BNB_FP4_THRESHOLDS: [f32; 7] = [
    0.002_604_17,
    0.085_937_5,
    0.208_333_33,
    0.291_666_67,
    0.416_666_7,
    0.583_333,
    0.833_333_3,
];
/// Magnitude code (3 bits) of the k-th smallest FP4 magnitude.
const BNB_FP4_MAG_CODES: [u8; 8] = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

/// The default offset of QLoRA's NF4 (`create_normal_map(offset=0.9677083)`).
pub const NF4_OFFSET: f32 = 0.967_708_3;

/// A sorted table of levels in `[-1, 1]` with its decision bounds and stored codes.
///
/// See the [module docs](self) for how bounds decide ties.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    levels: Vec<f32>,
    bounds: Vec<f32>,
    /// Stored code of each level (by ascending index).
    codes: Vec<u8>,
    /// Value of each code (16 entries for nibble books, 256 otherwise).
    values: Vec<f32>,
    /// The code bitsandbytes' kernels give a NaN input (its all-zero blocks).
    nan_code: u8,
    /// The [`Scheme`](super::Scheme) tag of the values it makes: which known codebook it is
    /// (0 for a table of your own).
    tag: u8,
    /// The block kernels' table, for 16-level books (its zero-block fields are set per call).
    fast15: Option<Levels16>,
    /// Byte -> (high-nibble value, low-nibble value), for nibble books.
    pairs: Option<Box<[[f32; 2]; 256]>>,
}

impl Codebook {
    /// A codebook over `levels` (2 to 256 values, finite, in `[-1, 1]`, strictly ascending;
    /// `-0.0` before `0.0` counts as ascending) that picks the nearest level exactly: each bound
    /// is the exact midpoint of its neighbours rounded down to `f32`, so `y > bound` holds
    /// exactly when `y` is above the real midpoint, and an exact midpoint goes to the lower
    /// level. The code of a level is its index.
    ///
    /// # Errors
    ///
    /// [`Error::Codebook`] if the table breaks one of those rules.
    ///
    /// # Examples
    ///
    /// ```
    /// use lowbit::quant::codebook::Codebook;
    /// let cb = Codebook::new(&[-1.0, -0.25, 0.0, 0.5, 1.0])?;
    /// assert_eq!(cb.encode(0.3), 3); // nearest is 0.5
    /// assert_eq!(cb.encode(0.25), 2); // exact midpoint of 0 and 0.5: the lower level
    /// assert!(Codebook::new(&[0.5, 0.2]).is_err());
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn new(levels: &[f32]) -> Result<Self, Error> {
        check_levels(levels)?;
        let bounds = levels.windows(2).map(|w| split(w[0], w[1], false)).collect::<Vec<_>>();
        Self::build(levels, bounds, (0..levels.len()).map(|i| i as u8).collect(), 0)
    }

    /// A codebook over `levels` with explicit decision bounds: `bounds[i]` separates level
    /// `i` from level `i + 1`, and `y` goes above it when `y > bounds[i]`. Each bound must lie
    /// in `[levels[i], levels[i + 1])` (for a `-0.0, 0.0` pair: within a subnormal of 0).
    ///
    /// # Errors
    ///
    /// [`Error::Codebook`] for a bad table or misplaced bounds.
    pub fn with_bounds(levels: &[f32], bounds: &[f32]) -> Result<Self, Error> {
        check_levels(levels)?;
        check_bounds(levels, bounds)?;
        Self::build(levels, bounds.to_vec(), (0..levels.len()).map(|i| i as u8).collect(), 0)
    }

    /// This codebook with the stored code of each level (ascending) replaced by `codes`
    /// (distinct; below 16 for books of at most 16 levels). Only the stored bytes change.
    ///
    /// # Errors
    ///
    /// [`Error::Codebook`] if `codes` has the wrong length, repeats a code or overflows the
    /// code width.
    pub fn with_codes(self, codes: &[u8]) -> Result<Self, Error> {
        if codes.len() != self.levels.len() {
            return Err(Error::Codebook("one code per level is needed"));
        }
        let limit = if self.levels.len() <= 16 { 16 } else { 256 };
        let mut seen = [false; 256];
        for &c in codes {
            if usize::from(c) >= limit || seen[usize::from(c)] {
                return Err(Error::Codebook("codes must be distinct and fit the code width"));
            }
            seen[usize::from(c)] = true;
        }
        let nan = codes[0];
        Self::build(&self.levels, self.bounds, codes.to_vec(), nan)
    }

    fn build(levels: &[f32], bounds: Vec<f32>, codes: Vec<u8>, nan_code: u8) -> Result<Self, Error> {
        let nibble = levels.len() <= 16;
        let mut values = vec![0f32; if nibble { 16 } else { 256 }];
        for (&l, &c) in levels.iter().zip(&codes) {
            values[usize::from(c)] = l;
        }
        let identity = codes.iter().enumerate().all(|(i, &c)| usize::from(c) == i);
        let fast15 = (levels.len() == 16).then(|| {
            let mut b = [0f32; 15];
            b.copy_from_slice(&bounds);
            let map = (!identity).then(|| {
                let mut m = [0u8; 16];
                m.copy_from_slice(&codes);
                m
            });
            Levels16 {
                bounds: b,
                map,
                zero_code: 0,
                pad_with_code: false,
            }
        });
        let pairs = nibble.then(|| {
            let mut t = Box::new([[0f32; 2]; 256]);
            for (b, e) in t.iter_mut().enumerate() {
                *e = [values[b >> 4], values[b & 15]];
            }
            t
        });
        Ok(Self {
            tag: 0,
            levels: levels.to_vec(),
            bounds,
            codes,
            values,
            nan_code,
            fast15,
            pairs,
        })
    }

    /// bitsandbytes' NF4: [`NF4_LEVELS`] with the bounds of its kernel, [`NF4_BOUNDS`]
    /// (`x > bound`: a tie goes to the lower level). `Codebook::new(&NF4_LEVELS)` differs only
    /// in being exactly nearest at the one bound where bitsandbytes' constant is a hair high.
    pub fn nf4() -> Self {
        let mut cb = Self::with_bounds(&NF4_LEVELS, &NF4_BOUNDS).expect("NF4 table is valid");
        cb.tag = 8;
        cb
    }

    /// NFk from [`normal_float_levels`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBits`] unless `2 <= k <= 8`.
    pub fn normal_float(k: u32) -> Result<Self, Error> {
        let mut cb = Self::new(&normal_float_levels(k)?)?;
        cb.tag = 16 + k as u8;
        Ok(cb)
    }

    /// bitsandbytes' FP4: its 16 values (including a negative zero) sorted, its thresholds
    /// (`dQuantizeFP4`: sign from `x < 0`, then `|x| > t` for each threshold, so ties go toward
    /// zero), and its codes ([`BNB_FP4_VALUES`] order: sign bit 3, magnitude codes
    /// `0 0.0625 8 12 4 6 2 3`).
    pub fn bnb_fp4() -> Self {
        let mut levels = Vec::with_capacity(16);
        let mut codes = Vec::with_capacity(16);
        let mut bounds = Vec::with_capacity(15);
        for &mag in BNB_FP4_MAG_CODES.iter().rev() {
            let c = 0b1000 | mag;
            levels.push(BNB_FP4_VALUES[usize::from(c)]);
            codes.push(c);
        }
        for &c in &BNB_FP4_MAG_CODES {
            levels.push(BNB_FP4_VALUES[usize::from(c)]);
            codes.push(c);
        }
        // Negative side: y < -t (i.e. |y| > t) goes down, so y == -t stays up.
        for t in BNB_FP4_THRESHOLDS.iter().rev() {
            bounds.push((-t).next_down());
        }
        bounds.push((-0.0f32).next_down()); // y < 0 is negative zero, y >= -0.0 is +0
        bounds.extend_from_slice(&BNB_FP4_THRESHOLDS);
        let cb = Self::with_bounds(&levels, &bounds).expect("bnb FP4 table is valid");
        let mut cb = cb.with_codes(&codes).expect("bnb FP4 codes are valid");
        cb.nan_code = 0; // bitsandbytes: NaN < 0 is false and |NaN| > t is false
        cb.tag = 9;
        cb
    }

    /// The OCP E2M1 (FP4) values divided by 6 (its max), with the E2M1 codes as stored codes
    /// and ties to the even code (round to nearest even, as encoding to E2M1 does). `-0.0` is
    /// a level of its own (code `0b1000`) for negative inputs that round to zero.
    pub fn e2m1() -> Self {
        let scale = crate::E2M1::MAX as f32;
        let mut pairs: Vec<(f32, u8)> = (0u8..16).map(|c| (crate::E2M1::decode_f32(c) / scale, c)).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let levels: Vec<f32> = pairs.iter().map(|p| p.0).collect();
        let codes: Vec<u8> = pairs.iter().map(|p| p.1).collect();
        let bounds: Vec<f32> = pairs
            .windows(2)
            .map(|w| {
                if w[0].0 == w[1].0 {
                    (-0.0f32).next_down()
                } else {
                    split(w[0].0, w[1].0, w[1].1 & 1 == 0)
                }
            })
            .collect();
        let cb = Self::with_bounds(&levels, &bounds).expect("E2M1 table is valid");
        let mut cb = cb.with_codes(&codes).expect("E2M1 codes are valid");
        cb.tag = 10;
        cb
    }

    /// The [`Scheme`](super::Scheme) of the values a [`CodebookQuantizer`] makes with this
    /// codebook: `Other(8)` NF4, `Other(9)` bitsandbytes FP4, `Other(10)` E2M1,
    /// `Other(16 + k)` NFk, and [`CODEBOOK_SCHEME`] (`Other(0)`) for a table of your own, so
    /// that decoding with another known codebook is refused.
    pub fn scheme(&self) -> super::Scheme {
        super::Scheme::Other(self.tag)
    }

    /// The levels, ascending.
    pub fn levels(&self) -> &[f32] {
        &self.levels
    }

    /// The decision bounds (`levels().len() - 1` of them).
    pub fn bounds(&self) -> &[f32] {
        &self.bounds
    }

    /// The stored code of each level, ascending by level.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// Bits a stored code takes: enough for the largest code (NF4 and FP4: 4, NF3: 3, a
    /// 256-entry map: 8). Codes are packed densely at this width ([`pack`](super::pack)).
    pub fn code_bits(&self) -> u32 {
        let max = u32::from(*self.codes.iter().max().expect("at least two levels"));
        (u32::BITS - max.leading_zeros()).max(1)
    }

    /// Index of the level chosen for a normalized value `y` (`#{i : y > bound[i]}`; NaN
    /// gives 0).
    #[inline]
    pub fn index(&self, y: f32) -> usize {
        self.bounds.partition_point(|&b| y > b)
    }

    /// The stored code chosen for a normalized value `y`.
    #[inline]
    pub fn encode(&self, y: f32) -> u8 {
        self.codes[self.index(y)]
    }

    /// The level of a stored code (unused codes decode to 0).
    #[inline]
    pub fn decode(&self, code: u8) -> f32 {
        self.values.get(usize::from(code)).copied().unwrap_or(0.0)
    }

    /// Value of each code, in code order (16 or 256 entries).
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    pub(crate) fn pairs(&self) -> Option<&[[f32; 2]; 256]> {
        self.pairs.as_deref()
    }
}

/// The bound between neighbours `a < b`: the largest `f32` below which `y` is nearer to `a`.
/// `y > bound` exactly when `y` is above the real midpoint, or at it when `tie_up`.
fn split(a: f32, b: f32, tie_up: bool) -> f32 {
    if a == b {
        return (-0.0f32).next_down(); // -0.0 then +0.0: negatives below, -0.0 and up above
    }
    let m = (f64::from(a) + f64::from(b)) * 0.5; // exact
    let r = m as f32;
    let below = if f64::from(r) > m { r.next_down() } else { r };
    if tie_up && f64::from(below) == m {
        below.next_down()
    } else {
        below
    }
}

fn check_levels(levels: &[f32]) -> Result<(), Error> {
    if levels.len() < 2 || levels.len() > 256 {
        return Err(Error::Codebook("a codebook needs 2 to 256 levels"));
    }
    if !levels.iter().all(|l| l.abs() <= 1.0) {
        return Err(Error::Codebook("levels must be finite and within [-1, 1]"));
    }
    if levels
        .windows(2)
        .any(|w| w[0].total_cmp(&w[1]) != core::cmp::Ordering::Less)
    {
        return Err(Error::Codebook("levels must be strictly ascending"));
    }
    Ok(())
}

fn check_bounds(levels: &[f32], bounds: &[f32]) -> Result<(), Error> {
    if bounds.len() + 1 != levels.len() {
        return Err(Error::Codebook("one bound between each pair of levels is needed"));
    }
    for (w, &b) in levels.windows(2).zip(bounds) {
        let ok = if w[0] == w[1] {
            b.abs() < f32::MIN_POSITIVE
        } else {
            b >= w[0] && b < w[1]
        };
        if !ok {
            return Err(Error::Codebook("each bound must lie in [levels[i], levels[i+1])"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Granularity;

    #[test]
    fn nf4_bounds_are_exact_midpoints_or_neighbours() {
        let exact = Codebook::new(&NF4_LEVELS).unwrap();
        let mut differ = 0;
        for ((&e, &k), w) in exact.bounds().iter().zip(&NF4_BOUNDS).zip(NF4_LEVELS.windows(2)) {
            let m = (f64::from(w[0]) + f64::from(w[1])) * 0.5;
            assert!(f64::from(e) <= m && f64::from(e.next_up()) > m);
            if e != k {
                differ += 1;
                assert_eq!(k, e.next_up(), "bnb constant is the f32 above the midpoint");
            }
        }
        assert_eq!(differ, 4);
    }

    #[test]
    fn bad_tables_are_errors() {
        assert!(Codebook::new(&[0.0]).is_err());
        assert!(Codebook::new(&[0.0, 1.5]).is_err());
        assert!(Codebook::new(&[0.0, f32::NAN]).is_err());
        assert!(Codebook::new(&[0.5, 0.5]).is_err());
        assert!(Codebook::with_bounds(&[0.0, 1.0], &[1.0]).is_err());
        assert!(Codebook::with_bounds(&[0.0, 1.0], &[]).is_err());
        assert!(Codebook::nf4().with_codes(&[0; 16]).is_err());
        assert!(normal_float_levels(1).is_err());
        assert!(normal_float_levels(9).is_err());
        assert!(CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(0)).is_err());
        assert!(CodebookQuantizer::new(Codebook::nf4(), Granularity::PerColumn { cols: 4 }).is_err());
    }

    #[test]
    fn bnb_fp4_ties_go_toward_zero() {
        let cb = Codebook::bnb_fp4();
        assert_eq!(cb.encode(0.291_666_67), 0b0111); // |x| > t is false: stays 3/12
        assert_eq!(cb.encode(-0.291_666_67), 0b1111);
        assert_eq!(cb.encode(0.291_666_7f32.next_up()), 0b0100);
        assert_eq!(cb.encode(0.583_333), 0b0101);
        assert_eq!(cb.encode(-0.583_333), 0b1101);
        assert_eq!(cb.encode(-0.0), 0b0000);
        assert_eq!(cb.encode(-1e-30), 0b1000);
        assert_eq!(cb.encode(1.0), 0b0011);
        assert_eq!(cb.encode(-1.0), 0b1011);
        for c in 0..16u8 {
            assert_eq!(cb.decode(c).to_bits(), BNB_FP4_VALUES[usize::from(c)].to_bits());
        }
    }

    #[test]
    fn e2m1_matches_format_encoder() {
        let cb = Codebook::e2m1();
        let ties: Vec<f32> = cb.levels().windows(2).map(|w| (w[0] + w[1]) * 3.0).collect();
        for i in -700..=700 {
            let v = i as f32 / 100.0;
            if ties.iter().any(|t| (t - v).abs() < 1e-4) {
                continue;
            }
            let want = crate::E2M1::encode_f32(v.clamp(-6.0, 6.0));
            let got = cb.encode(v / 6.0);
            assert_eq!(crate::E2M1::decode_f32(got), crate::E2M1::decode_f32(want), "v={v}");
        }
        // Exact ties (in the scaled domain) go to the even code.
        for (w, &b) in cb.levels().windows(2).zip(cb.bounds()) {
            if w[0] == w[1] {
                continue;
            }
            let mid = (w[0] + w[1]) * 0.5;
            if f64::from(mid) == (f64::from(w[0]) + f64::from(w[1])) * 0.5 {
                assert_eq!(cb.encode(mid) & 1, 0, "tie between {} and {}", w[0], w[1]);
            }
            assert!(b <= mid);
        }
    }
}
