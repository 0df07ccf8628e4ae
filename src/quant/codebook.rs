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
//! The search is branch-free: for 16-level books (NF4, FP4, E2M1) the AVX2 kernel finds
//! `#{i : y > bound[i]}` by a four-step binary search over the sorted bounds in `f32` lanes
//! (each step's bound comes from a register permute), on even and odd elements in separate
//! registers so that `even << 4 | odd` is directly the packed byte; the portable loop counts
//! the comparisons, and a test checks the two agree bit for bit. Dequantization looks each
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

use super::pack::BitOrder;
use super::walk::{self, Kernel, Stats};
use super::{check_compatible, check_len, pack, Error, Granularity, NonFinite, Quantized, Quantizer, Scale, Scheme};
use crate::arch::Levels16;
use crate::format::FloatFormat;
use crate::format::Layout;
use crate::Fp32;

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

/// The standard normal quantile function `Φ⁻¹(p)` (the inverse of the normal CDF), in `f64`.
///
/// Wichura's algorithm AS 241 (`PPND16`, Applied Statistics 37, 1988), accurate to about
/// 1e-16 relative. `p = 0` gives `-inf`, `p = 1` gives `inf`; outside `[0, 1]` and NaN give
/// NaN.
///
/// # Examples
///
/// ```
/// use lowbit::quant::codebook::normal_quantile;
/// assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-15);
/// assert_eq!(normal_quantile(0.5), 0.0);
/// ```
#[allow(clippy::excessive_precision)] // AS 241's published coefficients, kept as printed
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 8] = [
        3.387_132_872_796_366_608,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_9,
        5.769_497_221_460_691_405_5,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_7e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_4e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_4,
        6.897_673_349_851_000_045_5e-1,
        1.481_039_764_274_800_745_9e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_2,
        5.463_784_911_164_114_369_9,
        1.784_826_539_917_291_335_8,
        2.965_605_718_285_048_912_3e-1,
        2.653_218_952_657_612_309_3e-2,
        1.242_660_947_388_078_438_6e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_9e-1,
        1.369_298_809_227_358_053_1e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591e-4,
        1.846_318_317_510_054_681_8e-5,
        1.421_511_758_316_445_888_7e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    fn poly(c: &[f64; 8], x: f64) -> f64 {
        c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
    }
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let r = if q < 0.0 { p } else { 1.0 - p };
    let r = (-r.ln()).sqrt();
    let v = if r <= 5.0 {
        let r = r - 1.6;
        poly(&C, r) / poly(&D, r)
    } else {
        let r = r - 5.0;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 {
        -v
    } else {
        v
    }
}

/// `torch.linspace(start, end, steps)` for `float32` on the CPU: the first half counts up
/// from `start`, the second half down from `end`, each value with two `f32` roundings.
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// The default NFk offset: QLoRA's `1 - (1/(2(2^k - 1)) + 1/(2·2^k)) / 2`, and bitsandbytes'
/// literal `0.9677083` for k = 4.
pub fn normal_float_offset(k: u32) -> f64 {
    if k == 4 {
        return f64::from(NF4_OFFSET);
    }
    let n = f64::from(1u32 << k);
    1.0 - 0.5 * (1.0 / (2.0 * (n - 1.0)) + 1.0 / (2.0 * n))
}

/// The `2^k` NormalFloat levels NFk, built the way QLoRA / bitsandbytes'
/// `create_normal_map(offset, use_extra_value=True)` does: `2^(k-1)` positive levels at the
/// normal quantiles of `linspace(offset, 0.5, 2^(k-1) + 1)`, `2^(k-1) - 1` negative ones from
/// `linspace(offset, 0.5, 2^(k-1))`, and an exact zero; rounded to `f32`, sorted and divided
/// by the largest. The offset is [`normal_float_offset`]`(k)`.
///
/// For `k = 4` this is bitsandbytes' NF4 table bit for bit ([`NF4_LEVELS`]).
///
/// # Errors
///
/// [`Error::InvalidBits`] unless `2 <= k <= 8`.
///
/// # Examples
///
/// ```
/// use lowbit::quant::codebook::{normal_float_levels, NF4_LEVELS};
/// assert_eq!(normal_float_levels(4)?, NF4_LEVELS);
/// let nf3 = normal_float_levels(3)?;
/// assert_eq!(nf3.len(), 8);
/// assert_eq!((nf3[0], nf3[3], nf3[7]), (-1.0, 0.0, 1.0));
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub fn normal_float_levels(k: u32) -> Result<Vec<f32>, Error> {
    if !(2..=8).contains(&k) {
        return Err(Error::InvalidBits {
            bits: k,
            min: 2,
            max: 8,
        });
    }
    normal_float_levels_with_offset(k, normal_float_offset(k) as f32)
}

/// [`normal_float_levels`] with an explicit outermost quantile `offset` (in `(0.5, 1)`).
///
/// # Errors
///
/// [`Error::InvalidBits`] unless `2 <= k <= 8`; [`Error::Codebook`] if `offset` is not in
/// `(0.5, 1)`.
pub fn normal_float_levels_with_offset(k: u32, offset: f32) -> Result<Vec<f32>, Error> {
    if !(2..=8).contains(&k) {
        return Err(Error::InvalidBits {
            bits: k,
            min: 2,
            max: 8,
        });
    }
    if !(offset > 0.5 && offset < 1.0) {
        return Err(Error::Codebook("the NormalFloat offset must lie in (0.5, 1)"));
    }
    let h = 1usize << (k - 1);
    let mut v: Vec<f32> = Vec::with_capacity(2 * h);
    for &p in &torch_linspace_f32(offset, 0.5, h + 1)[..h] {
        v.push(normal_quantile(f64::from(p)) as f32);
    }
    v.push(0.0);
    for &p in &torch_linspace_f32(offset, 0.5, h)[..h - 1] {
        v.push(-normal_quantile(f64::from(p)) as f32);
    }
    v.sort_by(f32::total_cmp);
    let max = v[v.len() - 1];
    for x in &mut v {
        *x /= max;
    }
    Ok(v)
}

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
        Self::with_bounds(&NF4_LEVELS, &NF4_BOUNDS).expect("NF4 table is valid")
    }

    /// NFk from [`normal_float_levels`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBits`] unless `2 <= k <= 8`.
    pub fn normal_float(k: u32) -> Result<Self, Error> {
        Self::new(&normal_float_levels(k)?)
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
        cb.with_codes(&codes).expect("E2M1 codes are valid")
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
    /// 256-entry map: 8). Codes are packed densely at this width ([`pack`]).
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

/// How a codebook quantizer codes an all-zero block, and what pads the last byte of an
/// odd-length tensor of 4-bit codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ZeroBlock {
    /// Every element gets the level nearest 0 (so the block dequantizes to 0); pad bits are
    /// zero. The default.
    #[default]
    Nearest,
    /// What bitsandbytes' kernels store: they multiply by `1 / absmax`, so an all-zero block
    /// is `0 × inf = NaN` and gets the code their comparisons give a NaN (its pad nibble
    /// too); an odd tensor's pad nibble otherwise holds the code of 0.0.
    Bitsandbytes,
}

/// The [`Scheme`] tag of codebook quantization in a [`Quantized`].
pub const CODEBOOK_SCHEME: Scheme = Scheme::Other(0);

/// A codebook quantizer: per group (block, row or the whole tensor) `absmax = max |x|`, codes
/// of the levels nearest to `x / absmax`, `x' = level * absmax` (see the [module docs](self)).
///
/// Implements [`Quantizer`]: the [`Quantized`] it makes has scheme [`CODEBOOK_SCHEME`],
/// [`Codebook::code_bits`]-bit codes packed MSB first ([`pack`]; for 4-bit codes the first
/// element is the high nibble, as bitsandbytes), `f32` absmax scales and no zero points.
/// Dequantizing needs the same codebook.
///
/// # Examples
///
/// ```
/// use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantizer};
///
/// let q = CodebookQuantizer::new(Codebook::normal_float(3)?, Granularity::PerBlock(64))?;
/// let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
/// let packed = q.quantize(&x)?;
/// assert_eq!(packed.bits(), 3);
/// assert_eq!(packed.codes().len(), 38); // 100 codes of 3 bits
/// let y = q.dequantize(&packed)?;
/// assert_eq!(y.len(), 100);
/// # Ok::<(), lowbit::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CodebookQuantizer {
    codebook: Codebook,
    granularity: Granularity,
    zero_block: ZeroBlock,
}

impl CodebookQuantizer {
    /// A quantizer over `codebook` with per-tensor, per-row or per-block groups.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroGroupSize`] for an empty block or row; [`Error::Incompatible`] for
    /// [`Granularity::PerColumn`] (columns are not contiguous runs).
    pub fn new(codebook: Codebook, granularity: Granularity) -> Result<Self, Error> {
        granularity.validate()?;
        if matches!(granularity, Granularity::PerColumn { .. }) {
            return Err(Error::Incompatible(
                "the codebook quantizer groups contiguous runs: per tensor, per row or per block",
            ));
        }
        Ok(Self {
            codebook,
            granularity,
            zero_block: ZeroBlock::Nearest,
        })
    }

    /// The same quantizer with another [`ZeroBlock`] policy.
    pub fn with_zero_block(self, zero_block: ZeroBlock) -> Self {
        Self { zero_block, ..self }
    }

    /// The codebook.
    pub fn codebook(&self) -> &Codebook {
        &self.codebook
    }

    /// The code every element of an all-zero block gets.
    fn zero_code(&self) -> u8 {
        match self.zero_block {
            ZeroBlock::Nearest => self.codebook.encode(0.0),
            ZeroBlock::Bitsandbytes => self.codebook.nan_code,
        }
    }

    /// The run length of a group for `n` elements.
    fn run(&self, n: usize) -> usize {
        self.granularity.run(n).unwrap_or(1).max(1)
    }

    /// Quantize `x` into packed `codes` (MSB first) and one `f32` absmax per group.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for buffers of the wrong length, [`Error::NonFinite`].
    pub(crate) fn quantize_to(&self, x: &[f32], codes: &mut [u8], absmax: &mut [f32]) -> Result<(), Error> {
        let run = self.run(x.len());
        check_len(
            "codes",
            pack::packed_len(self.codebook.code_bits(), x.len()),
            codes.len(),
        )?;
        check_len("absmax", self.granularity.groups(x.len())?, absmax.len())?;
        match &self.codebook.fast15 {
            // 16 levels in even-length blocks: the hand-written whole-tensor kernel.
            Some(f) if run.is_multiple_of(2) => {
                let t = Levels16 {
                    zero_code: self.zero_code(),
                    pad_with_code: self.zero_block == ZeroBlock::Bitsandbytes,
                    ..*f
                };
                crate::arch::quantize_blocks15(&t, x, run, codes, absmax).map_err(|group| Error::NonFinite {
                    group,
                    index: group * run + first_non_finite(&x[group * run..]),
                })
            }
            _ => walk::quantize_slices(self, x, codes, absmax),
        }
    }

    /// Dequantize packed `codes` with one `f32` absmax per group into `out`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] for buffers of the wrong length.
    pub(crate) fn dequantize_from(&self, codes: &[u8], absmax: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let run = self.run(out.len());
        check_len(
            "codes",
            pack::packed_len(self.codebook.code_bits(), out.len()),
            codes.len(),
        )?;
        check_len("absmax", self.granularity.groups(out.len())?, absmax.len())?;
        match self.codebook.pairs() {
            Some(t) if self.codebook.code_bits() == 4 && run.is_multiple_of(2) => {
                crate::arch::dequantize_blocks(t, codes, absmax, run, out);
            }
            _ => walk::dequantize_slices(self, codes, absmax, &[], out),
        }
        Ok(())
    }
}

/// The code map of one group: `y = x × c` (or `x / m` where `1 / m` overflows).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CodebookEnc {
    c: f32,
    m: f32,
    /// The code of every element, for an all-zero block under [`ZeroBlock::Bitsandbytes`].
    fill: Option<u8>,
}

impl Kernel for CodebookQuantizer {
    const SCHEME: Scheme = CODEBOOK_SCHEME;
    const ABSMAX_ONLY: bool = true;
    type Enc = CodebookEnc;
    type Dec = f32;
    fn non_finite(&self) -> NonFinite {
        NonFinite::Error
    }
    fn layout(&self) -> Layout {
        Fp32::LAYOUT
    }
    #[inline(always)]
    fn params(&self, _group: usize, st: Stats) -> Result<(Scale, u8), Error> {
        Ok((Scale::store::<Fp32>(st.absmax()), 0))
    }
    #[inline(always)]
    fn enc(&self, m: f32, _zp: u8) -> CodebookEnc {
        // An all-zero block multiplies by 0, so every element gets the level nearest 0.
        CodebookEnc {
            c: if m == 0.0 { 0.0 } else { 1.0 / m },
            m,
            fill: (m == 0.0 && self.zero_block == ZeroBlock::Bitsandbytes).then_some(self.codebook.nan_code),
        }
    }
    #[inline(always)]
    fn encode(&self, e: &CodebookEnc, x: &[f32], out: &mut [u8]) {
        let cb = &self.codebook;
        if let Some(code) = e.fill {
            out.fill(code);
        } else if e.c.is_infinite() {
            // Subnormal absmax: 1/absmax overflows, divide instead.
            for (o, &v) in out.iter_mut().zip(x) {
                *o = cb.encode(v / e.m);
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = cb.encode(v * e.c);
            }
        }
    }
    fn pad(&self, e: &CodebookEnc) -> Option<u8> {
        (self.zero_block == ZeroBlock::Bitsandbytes).then(|| e.fill.unwrap_or(self.codebook.encode(0.0)))
    }
    #[inline(always)]
    fn dec(&self, scale: f32, _zp: u8) -> f32 {
        scale
    }
    #[inline(always)]
    fn decode(&self, a: &f32, codes: &[u8], out: &mut [f32]) {
        for (o, &k) in out.iter_mut().zip(codes) {
            *o = self.codebook.decode(k) * a;
        }
    }
}

impl Quantizer for CodebookQuantizer {
    fn bits(&self) -> u32 {
        self.codebook.code_bits()
    }

    fn granularity(&self) -> Granularity {
        self.granularity
    }

    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
        walk::reset(self, x.len(), out)?;
        let (codes, absmax) = out.f32_parts_mut();
        let r = self.quantize_to(x, codes, absmax);
        out.f32_scales_written();
        r
    }

    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
        check_compatible(q, CODEBOOK_SCHEME, self.bits(), out.len())?;
        if q.granularity() != self.granularity {
            return Err(Error::Incompatible("granularity"));
        }
        if q.bit_order() != BitOrder::MsbFirst {
            return Err(Error::Incompatible("bit order"));
        }
        self.dequantize_from(q.codes(), q.scales(), out)
    }
}

/// Index of the first non-finite element of `x`.
fn first_non_finite(x: &[f32]) -> usize {
    x.iter().position(|v| !v.is_finite()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_known_values() {
        // scipy.stats.norm.ppf
        let known: &[(f64, f64)] = &[
            (1e-300, -37.0470962993612),
            (1e-20, -9.262340089798409),
            (1e-10, -6.361340902404056),
            (1e-5, -4.264890793922825),
            (0.001, -3.090232306167813),
            (0.02425, -1.972961051311885),
            (0.05, -1.6448536269514729),
            (0.075, -1.4395314709384563),
            (0.1, -1.2815515655446004),
            (0.25, -0.6744897501960817),
            (0.4, -0.2533471031357997),
            (0.6, 0.2533471031357997),
            (0.75, 0.6744897501960817),
            (0.9, 1.2815515655446004),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.99, 2.3263478740408408),
            (0.999, 3.090232306167813),
            (0.9677083, 1.8481309597573734),
            (0.8413447460685429, 1.0),
        ];
        for &(p, z) in known {
            let got = normal_quantile(p);
            assert!((got - z).abs() <= 4e-15 * z.abs().max(1.0), "p={p}: {got} vs {z}");
        }
        assert_eq!(normal_quantile(0.5), 0.0);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(1.5).is_nan() && normal_quantile(f64::NAN).is_nan());
        // Symmetry.
        for i in 1..100 {
            let p = f64::from(i) / 200.0;
            assert!((normal_quantile(p) + normal_quantile(1.0 - p)).abs() < 1e-14);
        }
    }

    #[test]
    fn nf4_from_quantiles_is_bnb_table() {
        assert_eq!(normal_float_levels(4).unwrap(), NF4_LEVELS);
    }

    #[test]
    fn nfk_match_qlora_recipe_with_scipy() {
        // create_normal_map's recipe run with scipy.stats.norm.ppf (float64) and the same
        // offsets, as f32 bits.
        let nf2: [u32; 4] = [0xbf800000, 0x00000000, 0x3edf2391, 0x3f800000];
        let nf3: [u32; 8] = [
            0xbf800000, 0xbf08f740, 0xbe7cdb96, 0x00000000, 0x3e3bbcd5, 0x3ec394b6, 0x3f1f7bfd, 0x3f800000,
        ];
        let nf5: [u32; 32] = [
            0xbf800000, 0xbf463fd5, 0xbf2727c3, 0xbf1083d8, 0xbefc4ca0, 0xbedcbfa4, 0xbec0a83c, 0xbea70436, 0xbe8f2d60,
            0xbe716241, 0xbe46777e, 0xbe1d1a3c, 0xbde9c77b, 0xbd9afc46, 0xbd1a7978, 0x00000000, 0x3d10cd03, 0x3d91389c,
            0x3ddae651, 0x3e12f490, 0x3e3964e4, 0x3e61142c, 0x3e8531de, 0x3e9ae736, 0x3eb1faed, 0x3ecadc3d, 0x3ee62cbb,
            0x3f0273c9, 0x3f145c3d, 0x3f2a70bb, 0x3f48b184, 0x3f800000,
        ];
        let bits = |k| {
            normal_float_levels(k)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(2), nf2);
        assert_eq!(bits(3), nf3);
        assert_eq!(bits(5), nf5);
        for k in 2..=8 {
            let l = normal_float_levels(k).unwrap();
            assert_eq!(l.len(), 1 << k);
            assert_eq!((l[0], l[l.len() - 1]), (-1.0, 1.0));
            assert!(l.contains(&0.0));
        }
    }

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

    #[test]
    fn odd_length_pads_with_zero_code() {
        let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64)).unwrap();
        let r = q.quantize(&[1.0, 0.5, -1.0]).unwrap();
        assert_eq!(r.codes(), [0xFC, 0x00]); // lowbit's packing pads with zero bits
        assert_eq!(q.dequantize(&r).unwrap(), vec![1.0, 0.440_709_83, -1.0]);
        // Odd blocks of a nibble book go through the generic walker: same codes.
        let q3 = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(3)).unwrap();
        assert_eq!(q3.quantize(&[1.0, 0.5, -1.0]).unwrap().codes(), [0xFC, 0x00]);
    }

    #[test]
    fn zero_block_dequantizes_to_zero() {
        for cb in [
            Codebook::nf4(),
            Codebook::bnb_fp4(),
            Codebook::e2m1(),
            Codebook::normal_float(3).unwrap(),
        ] {
            let q = CodebookQuantizer::new(cb, Granularity::PerBlock(4)).unwrap();
            let x = [0.0, 0.0, 0.0, 0.0, 1.0, -2.0, 0.0, 0.0];
            let r = q.quantize(&x).unwrap();
            assert_eq!(r.scales(), [0.0, 2.0]);
            let y = q.dequantize(&r).unwrap();
            assert!(y[..4].iter().all(|v| *v == 0.0));
            assert_eq!(y[5], -2.0);
        }
    }

    #[test]
    fn rows_tensor_and_mismatches() {
        let x: Vec<f32> = (0..30).map(|i| (i as f32 - 11.0) / 3.0).collect();
        let rows = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerRow { cols: 10 }).unwrap();
        let blocks = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(10)).unwrap();
        let r = rows.quantize(&x).unwrap();
        let b = blocks.quantize(&x).unwrap();
        assert_eq!(r.codes(), b.codes());
        assert_eq!(r.scales(), b.scales());
        assert!(rows.quantize(&x[..25]).is_err()); // not whole rows
        let t = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerTensor).unwrap();
        let q = t.quantize(&x).unwrap();
        assert_eq!(q.scales(), [6.0]);
        let mut out = vec![0f32; 29];
        assert!(matches!(
            t.dequantize_into(&q, &mut out),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(rows.dequantize(&b), Err(Error::Incompatible(_))));
        let nf3 = CodebookQuantizer::new(Codebook::normal_float(3).unwrap(), Granularity::PerTensor).unwrap();
        assert!(matches!(nf3.dequantize(&q), Err(Error::Incompatible(_))));
        assert!(t.quantize(&[]).unwrap().is_empty());
    }

    #[test]
    fn non_finite_names_the_block() {
        let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(2)).unwrap();
        assert_eq!(
            q.quantize(&[0.0, 1.0, 1.0, f32::NAN]),
            Err(Error::NonFinite { group: 1, index: 3 })
        );
        assert_eq!(
            q.quantize(&[f32::INFINITY]),
            Err(Error::NonFinite { group: 0, index: 0 })
        );
        let q = CodebookQuantizer::new(Codebook::normal_float(5).unwrap(), Granularity::PerBlock(3)).unwrap();
        assert_eq!(
            q.quantize(&[0.0, 1.0, 2.0, f32::NEG_INFINITY]),
            Err(Error::NonFinite { group: 1, index: 3 })
        );
    }

    /// The dispatched path (AVX2 where the CPU has it) against the portable loop, bit for bit.
    #[test]
    fn simd_parity() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut x: Vec<f32> = (0..4099)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect();
        // A block holding 1.0 (absmax 1) and every bound and its neighbours: exact ties.
        let nf4 = Codebook::nf4();
        let fp4 = Codebook::bnb_fp4();
        let mut ties = vec![1.0f32];
        for b in nf4.bounds().iter().chain(fp4.bounds()) {
            ties.extend([*b, b.next_up(), b.next_down()]);
        }
        ties.resize(128, 0.0);
        x.splice(256..256, ties);
        x.splice(512..512, [0.0f32; 64]); // a zero block
        for cb in [&nf4, &fp4] {
            for block in [32usize, 64, 128, 4096] {
                for bnb in [false, true] {
                    let t = Levels16 {
                        zero_code: 7,
                        pad_with_code: bnb,
                        ..cb.fast15.unwrap()
                    };
                    let nb = x.len().div_ceil(block);
                    let (mut p1, mut a1) = (vec![0u8; x.len().div_ceil(2)], vec![0f32; nb]);
                    let (mut p2, mut a2) = (p1.clone(), a1.clone());
                    crate::arch::portable::quantize_blocks15(&t, &x, block, &mut p1, &mut a1).unwrap();
                    crate::arch::quantize_blocks15(&t, &x, block, &mut p2, &mut a2).unwrap();
                    assert_eq!(p1, p2, "block {block}");
                    assert_eq!(a1, a2);
                    let table = cb.pairs().unwrap();
                    let (mut y1, mut y2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                    crate::arch::portable::dequantize_blocks(table, &p1, &a1, block, &mut y1);
                    crate::arch::dequantize_blocks(table, &p1, &a1, block, &mut y2);
                    assert_eq!(
                        y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}
