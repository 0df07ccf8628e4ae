//! Block-wise k-bit quantization behind one object-safe trait.
//!
//! A [`Quantizer`] turns a slice of `f32` into a [`Quantized`] value: bit-packed integer codes
//! (see [`pack`] for the bit order), one scale per group and, for the affine scheme, one zero
//! point per group. Groups are set by a [`Granularity`]: the whole tensor, each row or each
//! column of a row-major matrix, or blocks of `B` consecutive elements (the last one may be
//! shorter).
//!
//! | quantizer | codes | formula | bits |
//! |---|---|---|---|
//! | [`AbsmaxQuantizer`] | signed, `±(2^(k-1) - 1)` | `s = absmax / (2^(k-1) - 1)`, `q = round(x / s)`, `x' = q s` | 2..=8 |
//! | [`AffineQuantizer`] | unsigned, `0 ..= 2^k - 1` | `s = (max - min) / (2^k - 1)`, `q = round(x / s) + z`, `x' = (q - z) s` | 1..=8 |
//! | [`CodebookQuantizer`] | index into a [`Codebook`] (NF4, FP4, E2M1, NFk, yours) | `s = absmax`, `q = nearest level to x / s`, `x' = level[q] s` | 1..=8 |
//!
//! [`double`] quantizes the scales again (QLoRA's double quantization) and reports storage;
//! [`crate::compat::bnb`] reproduces bitsandbytes' bytes.
//!
//! Scales are stored as `f32` by default, or rounded through any [`FloatFormat`](crate::FloatFormat) chosen with
//! the quantizer's type parameter (`AbsmaxQuantizer::<Fp16>`, `E8M0` for power-of-two scales,
//! ...). The scale is rounded to its storage format *first*, and the codes are computed with
//! the stored scale, so the error the storage format adds is part of what you get, and
//! [`Quantized::scales`] holds exactly what a reader of the bytes sees.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
//!
//! let x: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
//! let q = AbsmaxQuantizer::new(4, Granularity::PerBlock(32))?;
//! let packed = q.quantize(&x)?;
//! assert_eq!(packed.scales().len(), 4); // 32 + 32 + 32 + 4
//! assert_eq!(packed.codes().len(), 50); // 100 codes of 4 bits
//! assert_eq!(packed.bits_per_element(), 4.0 + 4.0 * 32.0 / 100.0);
//!
//! let y = q.dequantize(&packed)?;
//! for (block, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
//!     let s = packed.scales()[block];
//!     assert!(xs.iter().zip(ys).all(|(a, b)| (a - b).abs() <= s / 2.0 * 1.0001));
//! }
//!
//! // The bytes round-trip.
//! let bytes = packed.to_bytes();
//! assert_eq!(lowbit::quant::Quantized::from_bytes(&bytes)?, packed);
//! # Ok::<(), lowbit::Error>(())
//! ```

use crate::format::{Layout, NanRule, Specials};

mod absmax;
mod affine;
pub mod codebook;
pub mod double;
pub(crate) mod kernels;
pub mod pack;
mod walk;

pub use absmax::AbsmaxQuantizer;
pub use affine::{AffineQuantizer, QParams, QRange, TORCH_EPS};
pub use codebook::{Codebook, CodebookQuantizer};

/// Errors of the quantization module.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bit width outside the range the scheme supports.
    #[error("{bits}-bit codes are not supported here (supported: {min}..={max})")]
    InvalidBits {
        /// The width asked for.
        bits: u32,
        /// Smallest supported width.
        min: u32,
        /// Largest supported width.
        max: u32,
    },
    /// A block size, or a row or column count, of zero.
    #[error("group size must be at least 1")]
    ZeroGroupSize,
    /// The input length is not a multiple of the row length a per-row or per-column
    /// granularity needs.
    #[error("length {len} is not a multiple of the row length {cols}")]
    NotAMultiple {
        /// Elements given.
        len: usize,
        /// Columns of the matrix.
        cols: usize,
    },
    /// A fixed-block layout got a length that is not a whole number of blocks.
    #[error("length {len} is not a multiple of the block size {block}")]
    NotWholeBlocks {
        /// Elements given.
        len: usize,
        /// Elements per block.
        block: usize,
    },
    /// A buffer has the wrong length.
    #[error("length mismatch: expected {expected}, got {actual}")]
    LengthMismatch {
        /// The length needed.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A group holds a NaN or an infinity and the policy is [`NonFinite::Error`].
    #[error("group {group} holds a non-finite value at element {index}")]
    NonFinite {
        /// Index of the group (block, row or column).
        group: usize,
        /// Index of the first non-finite element in the input.
        index: usize,
    },
    /// A group's scale does not fit the scale's storage format (it rounds to infinity, NaN,
    /// or zero for a group that is not all zeros).
    #[error("group {group}: scale {scale:e} is out of range for the scale format")]
    ScaleOutOfRange {
        /// Index of the group.
        group: usize,
        /// The scale before rounding to the storage format.
        scale: f32,
    },
    /// A code does not fit in the bit width.
    #[error("code {code} at index {index} does not fit in {bits} bits")]
    CodeOutOfRange {
        /// Index of the code.
        index: usize,
        /// The code.
        code: u8,
        /// The bit width.
        bits: u32,
    },
    /// A serialized buffer is shorter than its header says it must be.
    #[error("buffer too short: need {needed} bytes, got {got}")]
    BufferTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A serialized buffer is not a valid [`Quantized`] (bad magic, version or field).
    #[error("invalid quantized buffer: {0}")]
    InvalidHeader(&'static str),
    /// A [`Quantized`] value does not match the quantizer asked to decode it.
    #[error("quantized value does not match this quantizer: {0}")]
    Incompatible(&'static str),
    /// An integer code range that does not hold 0 or is empty.
    #[error("invalid code range {min}..={max}")]
    InvalidRange {
        /// Smallest code.
        min: i32,
        /// Largest code.
        max: i32,
    },
    /// The scale storage format is not supported: more than 32 bits, or values outside the
    /// `f32` range.
    #[error("scale format with {bits} bits is not supported (at most 32 bits, values within f32)")]
    UnsupportedScaleFormat {
        /// Width of the format.
        bits: u32,
    },
    /// A block size the scheme does not support (bitsandbytes' fixed list, an odd block for
    /// nibble-packed codebook codes, ...).
    #[error("unsupported block size {size} (supported: {supported})")]
    BlockSize {
        /// The block size asked for.
        size: usize,
        /// What is supported, in words.
        supported: &'static str,
    },
    /// A codebook table is not usable (unsorted, outside `[-1, 1]`, too long, ...).
    #[error("invalid codebook: {0}")]
    Codebook(&'static str),
}

/// How elements are grouped to share a scale (and zero point).
///
/// Matrices are row-major: element `(r, c)` of a matrix with `cols` columns is at index
/// `r * cols + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One group: the whole slice.
    PerTensor,
    /// One group per row of a row-major matrix with `cols` columns (per output channel of a
    /// `Linear` weight stored `[out, in]`). The length must be a multiple of `cols`.
    PerRow {
        /// Columns (row length).
        cols: usize,
    },
    /// One group per column of a row-major matrix with `cols` columns. The length must be a
    /// multiple of `cols`.
    PerColumn {
        /// Columns (row length).
        cols: usize,
    },
    /// Blocks of this many consecutive elements; the last block may be shorter.
    PerBlock(usize),
}

impl Granularity {
    /// Check the group size: [`Error::ZeroGroupSize`] for a zero block size or column count.
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`].
    pub fn validate(self) -> Result<(), Error> {
        match self {
            Granularity::PerTensor => Ok(()),
            Granularity::PerRow { cols: n } | Granularity::PerColumn { cols: n } | Granularity::PerBlock(n) => {
                if n == 0 {
                    Err(Error::ZeroGroupSize)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Number of groups (scales) for `len` elements.
    ///
    /// ```
    /// use lowbit::quant::Granularity;
    /// assert_eq!(Granularity::PerBlock(32).groups(100)?, 4);
    /// assert_eq!(Granularity::PerRow { cols: 10 }.groups(100)?, 10);
    /// assert_eq!(Granularity::PerColumn { cols: 4 }.groups(100)?, 4);
    /// assert_eq!(Granularity::PerTensor.groups(0)?, 0);
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`], or [`Error::NotAMultiple`] when a per-row or per-column
    /// length is not a multiple of `cols`.
    pub fn groups(self, len: usize) -> Result<usize, Error> {
        self.validate()?;
        Ok(match self {
            Granularity::PerTensor => usize::from(len > 0),
            Granularity::PerBlock(b) => len.div_ceil(b),
            Granularity::PerRow { cols } | Granularity::PerColumn { cols } => {
                if !len.is_multiple_of(cols) {
                    return Err(Error::NotAMultiple { len, cols });
                }
                if matches!(self, Granularity::PerRow { .. }) {
                    len / cols
                } else if len == 0 {
                    0
                } else {
                    cols
                }
            }
        })
    }

    /// For contiguous groupings, the length of each group (all but possibly the last);
    /// `None` for [`PerColumn`](Granularity::PerColumn).
    pub(crate) fn run(self, len: usize) -> Option<usize> {
        match self {
            Granularity::PerTensor => Some(len.max(1)),
            Granularity::PerBlock(b) => Some(b),
            Granularity::PerRow { cols } => Some(cols),
            Granularity::PerColumn { .. } => None,
        }
    }

    fn tag(self) -> (u8, u64) {
        match self {
            Granularity::PerTensor => (0, 0),
            Granularity::PerRow { cols } => (1, cols as u64),
            Granularity::PerColumn { cols } => (2, cols as u64),
            Granularity::PerBlock(b) => (3, b as u64),
        }
    }
}

/// Rounding of `x / scale` to an integer code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round half to even (torch's `quantize_per_tensor`, NumPy's `rint`). The default.
    #[default]
    HalfEven,
    /// Round half away from zero (C's `roundf`, as ggml uses).
    HalfAway,
}

/// What to do with NaN and infinity in the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NonFinite {
    /// Return [`Error::NonFinite`] naming the first group (and element) that holds one. The
    /// default.
    #[default]
    Error,
    /// A group holding a NaN or an infinity gets a NaN scale, so the whole group dequantizes
    /// to NaN; its codes are 0. (With an integer scale format that has no NaN this is
    /// an error instead.)
    Propagate,
    /// Take the scale (absmax, min and max) over the finite values only; then NaN gets the
    /// code of 0.0 and ±infinity clamps to the extreme code of its sign.
    Ignore,
}

/// Which scheme produced a [`Quantized`] value, and so how its codes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Signed codes in `k`-bit two's complement, `x' = q × scale` ([`AbsmaxQuantizer`]).
    Symmetric,
    /// Unsigned codes `0 ..= 2^k - 1`, `x' = (q - zero_point) × scale` ([`AffineQuantizer`]).
    Affine,
    /// Another scheme, identified by its own tag (codebook quantizers and the like); codes
    /// are unsigned `k`-bit indices.
    Other(u8),
}

impl Scheme {
    fn tag(self) -> u8 {
        match self {
            Scheme::Symmetric => 0,
            Scheme::Affine => 1,
            Scheme::Other(t) => t.saturating_add(2).max(2),
        }
    }
    fn from_tag(t: u8) -> Scheme {
        match t {
            0 => Scheme::Symmetric,
            1 => Scheme::Affine,
            t => Scheme::Other(t - 2),
        }
    }
}

/// A quantized tensor: packed codes, per-group scales and zero points, and what they mean.
///
/// # Byte layout
///
/// [`to_bytes`](Self::to_bytes) writes, all little-endian, a 32-byte header then three parts:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `b"LBQT"` |
/// | 4 | 1 | version, `1` |
/// | 5 | 1 | bits per code, `1..=8` |
/// | 6 | 1 | scheme: 0 symmetric, 1 affine, `2 + t` for [`Scheme::Other`]`(t)` |
/// | 7 | 1 | granularity: 0 tensor, 1 row, 2 column, 3 block |
/// | 8 | 8 | element count (`u64`) |
/// | 16 | 8 | `cols` or block size (`u64`, 0 per tensor) |
/// | 24 | 1 | scale format exponent bits |
/// | 25 | 1 | scale format mantissa bits |
/// | 26 | 2 | scale format bias (`i16`) |
/// | 28 | 1 | scale format specials: 0 IEEE, 1 FN, 2 FNUZ, 3 finite, 4 power of two |
/// | 29 | 1 | scale format NaN rule: 0 canonical, 1 payload, 2 payload quieted |
/// | 30 | 1 | bytes per scale code `w`: 1, 2 or 4 |
/// | 31 | 1 | zero, reserved |
/// | 32 | `g × w` | scale codes, one per group, in the scale format (an `f32` scale is its bits) |
/// | … | `g` or 0 | zero points (`u8`), one per group, affine only |
/// | … | `ceil(n k / 8)` | codes, packed MSB first (see [`pack`]) |
///
/// `g` is the number of groups ([`Granularity::groups`]). Codes are in element order
/// whatever the granularity.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    scheme: Scheme,
    bits: u32,
    len: usize,
    granularity: Granularity,
    scale_layout: Layout,
    codes: Vec<u8>,
    scales: Vec<f32>,
    zero_points: Vec<u8>,
}

/// The IEEE binary32 layout: the default scale format.
pub(crate) const F32_LAYOUT: Layout = Layout::new(8, 23, 127, Specials::Ieee, NanRule::Canonical);

impl Default for Quantized {
    fn default() -> Self {
        Self::empty()
    }
}

const MAGIC: &[u8; 4] = b"LBQT";
const HEADER: usize = 32;

impl Quantized {
    /// An empty value (no elements), to pass to [`Quantizer::quantize_into`].
    pub const fn empty() -> Self {
        Self {
            scheme: Scheme::Symmetric,
            bits: 8,
            len: 0,
            granularity: Granularity::PerTensor,
            scale_layout: F32_LAYOUT,
            codes: Vec::new(),
            scales: Vec::new(),
            zero_points: Vec::new(),
        }
    }

    /// Assemble a value from its parts, checking that they agree.
    ///
    /// `scales` must already be values of `scale_layout` (they are stored as its codes).
    ///
    /// # Errors
    /// [`Error::InvalidBits`], [`Error::ZeroGroupSize`], [`Error::NotAMultiple`],
    /// [`Error::UnsupportedScaleFormat`], [`Error::LengthMismatch`] when a part has the wrong
    /// length (zero points must be empty unless the scheme is affine), and
    /// [`Error::CodeOutOfRange`] when a zero point does not fit in `bits`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        scheme: Scheme,
        bits: u32,
        len: usize,
        granularity: Granularity,
        scale_layout: Layout,
        codes: Vec<u8>,
        scales: Vec<f32>,
        zero_points: Vec<u8>,
    ) -> Result<Self, Error> {
        pack::check_bits(bits)?;
        check_scale_layout(&scale_layout)?;
        let g = granularity.groups(len)?;
        expect_len(pack::packed_len(bits, len), codes.len())?;
        expect_len(g, scales.len())?;
        let zp = if scheme == Scheme::Affine { g } else { 0 };
        expect_len(zp, zero_points.len())?;
        if let Some(index) = zero_points.iter().position(|&z| bits < 8 && z >> bits != 0) {
            return Err(Error::CodeOutOfRange {
                index,
                code: zero_points[index],
                bits,
            });
        }
        Ok(Self {
            scheme,
            bits,
            len,
            granularity,
            scale_layout,
            codes,
            scales,
            zero_points,
        })
    }

    /// Take the parts apart: `(codes, scales, zero_points)`.
    pub fn into_parts(self) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
        (self.codes, self.scales, self.zero_points)
    }

    /// Reset to describe `len` elements, resizing the parts (allocating only when a part
    /// grows past its capacity). Contents are unspecified until the caller fills them.
    pub(crate) fn reset(
        &mut self,
        scheme: Scheme,
        bits: u32,
        len: usize,
        granularity: Granularity,
        layout: Layout,
        groups: usize,
    ) {
        self.scheme = scheme;
        self.bits = bits;
        self.len = len;
        self.granularity = granularity;
        self.scale_layout = layout;
        self.codes.resize(pack::packed_len(bits, len), 0);
        self.scales.resize(groups, 0.0);
        self.zero_points
            .resize(if scheme == Scheme::Affine { groups } else { 0 }, 0);
    }

    /// Mutable parts for the quantizers: `(codes, scales, zero_points)`.
    pub(crate) fn parts_mut(&mut self) -> (&mut [u8], &mut [f32], &mut [u8]) {
        (&mut self.codes, &mut self.scales, &mut self.zero_points)
    }

    /// The scheme that produced the codes.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// Bits per code.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// How elements are grouped.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }
    /// The storage format of the scales.
    pub fn scale_layout(&self) -> Layout {
        self.scale_layout
    }
    /// Packed codes, MSB first (see [`pack`]).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// One scale per group, already rounded to the scale format (exactly the stored values).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// One zero point per group (affine only; empty otherwise).
    pub fn zero_points(&self) -> &[u8] {
        &self.zero_points
    }
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.scales.len()
    }

    /// The codes unpacked, one per `u8` (two's complement for [`Scheme::Symmetric`]).
    pub fn unpacked_codes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        pack::unpack_unchecked(self.bits, &self.codes, &mut out);
        out
    }

    /// Storage size in bits per element, counting the packed codes, each scale at its
    /// format's width and each zero point as a byte (the header is not counted).
    ///
    /// ```
    /// use lowbit::quant::{AbsmaxQuantizer, Granularity, Quantizer};
    /// use lowbit::Fp16;
    /// let q = AbsmaxQuantizer::<Fp16>::with_scale_format(4, Granularity::PerBlock(64))?;
    /// let z = q.quantize(&[0.5; 128])?;
    /// assert_eq!(z.bits_per_element(), 4.25); // 4 + 16 / 64
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn bits_per_element(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let bits =
            self.codes.len() * 8 + self.scales.len() * self.scale_layout.bits() as usize + self.zero_points.len() * 8;
        bits as f64 / self.len as f64
    }

    /// Size of [`to_bytes`](Self::to_bytes)' output.
    pub fn byte_len(&self) -> usize {
        HEADER + self.scales.len() * scale_width(&self.scale_layout) + self.zero_points.len() + self.codes.len()
    }

    /// Serialize in the documented layout (see the type's docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.extend_from_slice(MAGIC);
        out.push(1);
        out.push(self.bits as u8);
        out.push(self.scheme.tag());
        let (gt, gp) = self.granularity.tag();
        out.push(gt);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&gp.to_le_bytes());
        let l = &self.scale_layout;
        out.push(l.exp_bits as u8);
        out.push(l.man_bits as u8);
        out.extend_from_slice(&(l.bias as i16).to_le_bytes());
        out.push(match l.specials {
            Specials::Ieee => 0,
            Specials::FiniteNan => 1,
            Specials::FiniteNanUnsignedZero => 2,
            Specials::Finite => 3,
            Specials::PowerOfTwo => 4,
        });
        out.push(match l.nan_rule {
            NanRule::Canonical => 0,
            NanRule::Payload { quiet: false } => 1,
            NanRule::Payload { quiet: true } => 2,
        });
        let w = scale_width(l);
        out.push(w as u8);
        out.push(0);
        for &s in &self.scales {
            let c = scale_code(l, s);
            out.extend_from_slice(&c.to_le_bytes()[..w]);
        }
        out.extend_from_slice(&self.zero_points);
        out.extend_from_slice(&self.codes);
        out
    }

    /// Read the layout written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] when the buffer is shorter than its header (or than the
    /// header says), [`Error::InvalidHeader`] for a bad magic, version or field,
    /// [`Error::LengthMismatch`] for trailing bytes, and the errors of
    /// [`from_parts`](Self::from_parts).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER {
            return Err(Error::BufferTooShort {
                needed: HEADER,
                got: bytes.len(),
            });
        }
        if &bytes[..4] != MAGIC {
            return Err(Error::InvalidHeader("bad magic"));
        }
        if bytes[4] != 1 {
            return Err(Error::InvalidHeader("unknown version"));
        }
        let bits = u32::from(bytes[5]);
        pack::check_bits(bits)?;
        let scheme = Scheme::from_tag(bytes[6]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let len = usize::try_from(u64_at(8)).map_err(|_| Error::InvalidHeader("length too large"))?;
        let gp = usize::try_from(u64_at(16)).map_err(|_| Error::InvalidHeader("group size too large"))?;
        let granularity = match bytes[7] {
            0 => Granularity::PerTensor,
            1 => Granularity::PerRow { cols: gp },
            2 => Granularity::PerColumn { cols: gp },
            3 => Granularity::PerBlock(gp),
            _ => return Err(Error::InvalidHeader("unknown granularity")),
        };
        let groups = granularity.groups(len)?;
        let specials = match bytes[28] {
            0 => Specials::Ieee,
            1 => Specials::FiniteNan,
            2 => Specials::FiniteNanUnsignedZero,
            3 => Specials::Finite,
            4 => Specials::PowerOfTwo,
            _ => return Err(Error::InvalidHeader("unknown scale specials")),
        };
        let nan_rule = match bytes[29] {
            0 => NanRule::Canonical,
            1 => NanRule::Payload { quiet: false },
            2 => NanRule::Payload { quiet: true },
            _ => return Err(Error::InvalidHeader("unknown scale NaN rule")),
        };
        let (exp_bits, man_bits) = (u32::from(bytes[24]), u32::from(bytes[25]));
        if !(1..=8).contains(&exp_bits)
            || man_bits > 23
            || (man_bits == 0 && matches!(specials, Specials::Ieee | Specials::FiniteNan))
        {
            return Err(Error::InvalidHeader("unsupported scale format"));
        }
        let layout = Layout {
            exp_bits,
            man_bits,
            bias: i32::from(i16::from_le_bytes([bytes[26], bytes[27]])),
            specials,
            nan_rule,
        };
        if !in_f32_range(&layout) {
            return Err(Error::InvalidHeader("scale format outside the f32 range"));
        }
        let w = scale_width(&layout);
        if usize::from(bytes[30]) != w {
            return Err(Error::InvalidHeader("scale width does not match the scale format"));
        }
        let zp = if scheme == Scheme::Affine { groups } else { 0 };
        let needed = groups
            .checked_mul(w)
            .and_then(|s| s.checked_add(HEADER + zp))
            .and_then(|s| s.checked_add(pack::packed_len(bits, len)))
            .ok_or(Error::InvalidHeader("sizes overflow"))?;
        if bytes.len() < needed {
            return Err(Error::BufferTooShort {
                needed,
                got: bytes.len(),
            });
        }
        expect_len(needed, bytes.len())?;
        let mut at = HEADER;
        let scales = bytes[at..at + groups * w]
            .chunks_exact(w)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(c);
                scale_value(&layout, u64::from_le_bytes(b))
            })
            .collect();
        at += groups * w;
        let zero_points = bytes[at..at + zp].to_vec();
        at += zp;
        let codes = bytes[at..].to_vec();
        Self::from_parts(scheme, bits, len, granularity, layout, codes, scales, zero_points)
    }
}

/// Checks that a buffer has the expected length.
pub(crate) fn check_len(_what: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    expect_len(expected, actual)
}

fn expect_len(expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch { expected, actual })
    }
}

pub(crate) fn check_scale_layout(l: &Layout) -> Result<(), Error> {
    if l.bits() > 32 || !in_f32_range(l) {
        Err(Error::UnsupportedScaleFormat { bits: l.bits() })
    } else {
        Ok(())
    }
}

/// Whether every value of the layout is an `f32` (its top binade at most `2^128`, its
/// smallest step at least `2^-149`).
const fn in_f32_range(l: &Layout) -> bool {
    let top = (1i32 << l.exp_bits) - 1 - l.bias;
    let bottom = 1 - l.bias - l.man_bits as i32;
    top <= 128 && bottom >= -149
}

fn scale_width(l: &Layout) -> usize {
    match l.bits() {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

pub(crate) const fn is_f32(l: &Layout) -> bool {
    l.exp_bits == 8 && l.man_bits == 23 && l.bias == 127 && matches!(l.specials, Specials::Ieee)
}

/// Value of a scale code.
pub(crate) fn scale_value(l: &Layout, code: u64) -> f32 {
    if is_f32(l) {
        return f32::from_bits(code as u32);
    }
    let code = code & ((1u64 << l.bits()) - 1);
    if l.is_nan_code(code) {
        return f32::NAN;
    }
    let negative = code & l.sign_mask() != 0;
    let mag = code & l.magnitude_mask();
    let v = if Some(mag) == l.inf_magnitude_code() {
        f64::INFINITY
    } else {
        l.magnitude_value(mag)
    };
    (if negative { -v } else { v }) as f32
}

/// Code of a scale that is a value of the layout (as the quantizers produce). Values that are
/// not get the code of the next magnitude up.
pub(crate) fn scale_code(l: &Layout, v: f32) -> u64 {
    if is_f32(l) {
        return u64::from(v.to_bits());
    }
    if v.is_nan() {
        return l.nan_code().unwrap_or(0);
    }
    let sign = if v.is_sign_negative() && l.is_signed() && (v != 0.0 || l.has_negative_zero()) {
        l.sign_mask()
    } else {
        0
    };
    let a = f64::from(v.abs());
    if a.is_infinite() {
        return sign | l.inf_magnitude_code().unwrap_or(l.max_magnitude_code());
    }
    // Binary search for the smallest magnitude code whose value is >= a.
    let (mut lo, mut hi) = (0u64, l.max_magnitude_code());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if l.magnitude_value(mid) < a {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    sign | lo
}

/// Quantize slices of `f32` and dequantize them back.
///
/// Object safe: `Box<dyn Quantizer>` works. The `_into` methods allocate nothing once the
/// destination has the capacity.
///
/// # Examples
///
/// ```
/// use lowbit::quant::{AbsmaxQuantizer, AffineQuantizer, Granularity, Quantized, Quantizer};
///
/// let qs: Vec<Box<dyn Quantizer>> = vec![
///     Box::new(AbsmaxQuantizer::new(8, Granularity::PerBlock(64))?),
///     Box::new(AffineQuantizer::new(4, Granularity::PerTensor)?),
/// ];
/// let x = [0.0, 0.25, -1.0, 0.5];
/// let mut q = Quantized::empty();
/// let mut y = [0f32; 4];
/// for quantizer in &qs {
///     quantizer.quantize_into(&x, &mut q)?;
///     quantizer.dequantize_into(&q, &mut y)?;
///     assert_eq!(y[0], 0.0); // zero is exact in both schemes
///     assert_eq!(y[2], -1.0);
/// }
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub trait Quantizer {
    /// Bits per code.
    fn bits(&self) -> u32;

    /// How elements are grouped.
    fn granularity(&self) -> Granularity;

    /// Quantize `x` into a new [`Quantized`].
    ///
    /// # Errors
    /// As [`quantize_into`](Self::quantize_into).
    fn quantize(&self, x: &[f32]) -> Result<Quantized, Error> {
        let mut q = Quantized::empty();
        self.quantize_into(x, &mut q)?;
        Ok(q)
    }

    /// Quantize `x` into `out`, reusing its buffers.
    ///
    /// # Errors
    /// [`Error::NotAMultiple`] when a per-row or per-column length does not divide `x.len()`,
    /// [`Error::NonFinite`] for NaN or infinity under the default policy, and
    /// [`Error::ScaleOutOfRange`] when a scale does not fit its storage format.
    fn quantize_into(&self, x: &[f32], out: &mut Quantized) -> Result<(), Error>;

    /// Dequantize into a new vector.
    ///
    /// # Errors
    /// As [`dequantize_into`](Self::dequantize_into).
    fn dequantize(&self, q: &Quantized) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; q.len()];
        self.dequantize_into(q, &mut out)?;
        Ok(out)
    }

    /// Dequantize into `out`, which must hold exactly `q.len()` elements.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `out.len() != q.len()`, [`Error::Incompatible`] when `q`
    /// was made by another scheme or bit width.
    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error>;
}

/// Check that a [`Quantized`] matches a quantizer before decoding it.
pub(crate) fn check_compatible(q: &Quantized, scheme: Scheme, bits: u32, out_len: usize) -> Result<(), Error> {
    if q.scheme != scheme {
        return Err(Error::Incompatible("scheme"));
    }
    if q.bits != bits {
        return Err(Error::Incompatible("bit width"));
    }
    expect_len(q.len, out_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FloatFormat;

    #[test]
    fn scale_codes_round_trip() {
        for v in [0.0f32, 1.0, 0.375, 448.0, 2f32.powi(-9), 1e-3] {
            let l = crate::E4M3::LAYOUT;
            let s = crate::E4M3::decode_f32(crate::E4M3::encode_f32(v));
            let c = scale_code(&l, s);
            assert_eq!(c, u64::from(crate::E4M3::encode_f32(v)), "{v}");
            assert_eq!(scale_value(&l, c), s);
        }
        for c in 0..255u8 {
            let l = crate::E8M0::LAYOUT;
            assert_eq!(scale_code(&l, scale_value(&l, u64::from(c))), u64::from(c));
        }
        for c in (0..=0xffffu16).step_by(7) {
            let l = crate::Fp16::LAYOUT;
            let v = scale_value(&l, u64::from(c));
            if !v.is_nan() {
                assert_eq!(v, crate::Fp16::decode_f32(c));
                assert_eq!(scale_code(&l, v), u64::from(c));
            }
        }
    }

    /// Every value of every header byte, for a few layouts: an error or a value, never a panic.
    #[test]
    fn corrupt_headers_never_panic() {
        use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Quantizer};
        let x: Vec<f32> = (0..40).map(|i| i as f32 - 17.5).collect();
        let values = [
            AbsmaxQuantizer::new(3, Granularity::PerBlock(7))
                .unwrap()
                .quantize(&x)
                .unwrap(),
            AbsmaxQuantizer::<crate::E8M0>::with_scale_format(4, Granularity::PerRow { cols: 8 })
                .unwrap()
                .quantize(&x)
                .unwrap(),
            AffineQuantizer::<crate::Bf16>::with_scale_format(5, Granularity::PerColumn { cols: 5 })
                .unwrap()
                .quantize(&x)
                .unwrap(),
        ];
        for q in values {
            let bytes = q.to_bytes();
            for i in 0..HEADER {
                for v in 0..=255u8 {
                    let mut b = bytes.clone();
                    b[i] = v;
                    if let Ok(back) = Quantized::from_bytes(&b) {
                        assert_eq!(back.byte_len(), b.len());
                    }
                }
            }
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            Quantized::from_bytes(&[0; 10]),
            Err(Error::BufferTooShort { needed: 32, got: 10 })
        );
        let mut b = Quantized::empty().to_bytes();
        assert_eq!(Quantized::from_bytes(&b), Ok(Quantized::empty()));
        b[0] = b'X';
        assert_eq!(Quantized::from_bytes(&b), Err(Error::InvalidHeader("bad magic")));
    }
}
