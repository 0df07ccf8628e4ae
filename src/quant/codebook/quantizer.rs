//! The codebook quantizer on the block walker.

use super::Codebook;
use crate::arch::Levels16;
use crate::format::FloatFormat;
use crate::format::Layout;
use crate::quant::pack::{self, BitOrder};
use crate::quant::walk::{self, Kernel, Stats};
use crate::quant::{check_compatible, check_len, Error, Granularity, NonFinite, Quantized, Quantizer, Scale, Scheme};
use crate::Fp32;

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

/// The [`Scheme`] tag of codebook quantization with a table of your own in a [`Quantized`]
/// (the known codebooks have their own, [`Codebook::scheme`]).
pub const CODEBOOK_SCHEME: Scheme = Scheme::Other(0);

/// A codebook quantizer: per group (block, row or the whole tensor) `absmax = max |x|`, codes
/// of the levels nearest to `x / absmax`, `x' = level * absmax` (see the [module docs](super)).
///
/// Implements [`Quantizer`]: the [`Quantized`] it makes has the codebook's scheme
/// ([`Codebook::scheme`]; decoding with another known codebook is an error),
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
    /// The nested block size of double quantization, if on.
    double: Option<usize>,
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
            double: None,
        })
    }

    /// The same quantizer with double quantization of its scales in nested blocks of
    /// `blocksize2` (`None`: off, the default): QLoRA's and bitsandbytes'
    /// `compress_statistics=True`, whose `blocksize2` is 256. The codes are those of the
    /// exact scales; the [`Quantized`] made holds the [`DoubleQuant`](crate::quant::double::DoubleQuant)
    /// ([`Quantized::double_quant`]) and dequantizes with the restored scales, as bitsandbytes
    /// does. Scales near `f32::MAX` may not double-quantize (a typed error). With it on,
    /// `quantize_into` allocates the nested parts on each call.
    ///
    /// # Errors
    /// [`Error::ZeroGroupSize`] for `Some(0)`.
    ///
    /// ```
    /// use lowbit::quant::{Codebook, CodebookQuantizer, Granularity, Quantized, Quantizer};
    ///
    /// let x: Vec<f32> = (0..16384).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    /// let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(64))?
    ///     .with_double_quant(Some(256))?;
    /// let z = q.quantize(&x)?;
    /// assert_eq!(z.double_quant().unwrap().codes().len(), 256); // one 8-bit code per block
    /// // 4-bit codes, an 8-bit code per block of 64, an f32 per 256 blocks, an f32 offset.
    /// assert_eq!(z.bits_per_element(), 4.0 + (8.0 * 256.0 + 32.0 + 32.0) / 16384.0);
    /// // The stored object carries its nested scales.
    /// assert_eq!(Quantized::from_bytes(&z.to_bytes())?, z);
    /// let y = q.dequantize(&z)?;
    /// assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.2));
    /// # Ok::<(), lowbit::QuantError>(())
    /// ```
    pub fn with_double_quant(self, blocksize2: Option<usize>) -> Result<Self, Error> {
        if blocksize2 == Some(0) {
            return Err(Error::ZeroGroupSize);
        }
        Ok(Self {
            double: blocksize2,
            ..self
        })
    }

    /// The nested block size of double quantization, if on.
    pub fn double_quant(&self) -> Option<usize> {
        self.double
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
    fn scheme(&self) -> Scheme {
        self.codebook.scheme()
    }
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
        r?;
        if let Some(b2) = self.double {
            let d = crate::quant::double::DoubleQuant::quantize(out.scales(), b2)?;
            *out = std::mem::take(out).with_double_quant(d)?;
        }
        Ok(())
    }

    fn dequantize_into(&self, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
        check_compatible(q, self.codebook.scheme(), self.bits(), out.len())?;
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
        let mut rng = crate::testing::XorShift(0x2545_f491_4f6c_dd1d);
        let mut x: Vec<f32> = (0..4099).map(|_| rng.centered() * 4.0).collect();
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

    /// Every 16-level kernel the CPU has (AVX-512, AVX2) against the portable loop, bit for bit:
    /// random blocks, exact ties, ±0, subnormal values and a block whose absmax is subnormal
    /// (so `1 / absmax` overflows), zero blocks, every tail length up to 300 for block sizes
    /// around the kernels' steps (16 and 32 elements), and NaN or infinity at several places
    /// (the same error, the same blocks written before it). Several groups of 32 blocks, so
    /// that the prefetch of the next group runs too.
    #[test]
    fn every_kernel_matches_portable() {
        type Kernel = fn(&Levels16, &[f32], usize, &mut [u8], &mut [f32]) -> Result<(), usize>;
        let kernels: [(&str, Kernel); 2] = [
            ("dispatched", crate::arch::quantize_blocks15),
            ("avx2 or portable", crate::arch::quantize_blocks15_avx2),
        ];
        let mut rng = crate::testing::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut x: Vec<f32> = (0..2400).map(|_| rng.centered() * 6.0).collect();
        let nf4 = Codebook::nf4();
        let fp4 = Codebook::bnb_fp4();
        let mut ties = vec![1.0f32, -1.0];
        for b in nf4.bounds().iter().chain(fp4.bounds()) {
            ties.extend([*b, b.next_up(), b.next_down(), -*b]);
        }
        x.splice(100..100, ties);
        x.splice(300..300, [0.0f32, -0.0].repeat(40)); // ±0 only: a zero block
        let sub: Vec<f32> = (0..70)
            .map(|i| f32::from_bits(1 + i * 12345) * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        x.splice(400..400, sub.clone()); // subnormal absmax
        x.splice(700..700, sub.iter().map(|v| v * 1e30)); // normal, tiny
        for (i, v) in sub.iter().enumerate() {
            x[900 + 3 * i] = *v; // subnormals in normal blocks
            x[1200 + 2 * i] = if i % 2 == 0 { 0.0 } else { -0.0 };
        }
        let mut fp4_ident = fp4.fast15.unwrap();
        fp4_ident.map = None;
        let tables = [nf4.fast15.unwrap(), fp4.fast15.unwrap(), fp4_ident];
        let run = |k: Kernel, t: &Levels16, x: &[f32], block: usize| {
            let (mut p, mut a) = (vec![0x5au8; x.len().div_ceil(2)], vec![-7f32; x.len().div_ceil(block)]);
            let r = k(t, x, block, &mut p, &mut a);
            (r, p, a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        for t in tables {
            for bnb in [false, true] {
                let t = Levels16 {
                    zero_code: if bnb { 7 } else { t.zero_code },
                    pad_with_code: bnb,
                    ..t
                };
                for block in [2usize, 4, 14, 16, 30, 32, 34, 48, 64, 66, 96, 128, 130, 256, 258, 1024] {
                    let lens = (0..=300).chain([x.len() - 1, x.len()]);
                    for len in lens {
                        let want = run(crate::arch::portable::quantize_blocks15, &t, &x[..len], block);
                        for (name, k) in kernels {
                            assert!(run(k, &t, &x[..len], block) == want, "{name}: block {block}, len {len}");
                        }
                    }
                    for (at, bad) in [
                        (0, f32::NAN),
                        (1, f32::INFINITY),
                        (777, f32::NEG_INFINITY),
                        (2099, -f32::NAN),
                    ] {
                        let mut y = x.clone();
                        y[at] = bad;
                        let want = run(crate::arch::portable::quantize_blocks15, &t, &y, block);
                        assert_eq!(want.0, Err(at / block));
                        for (name, k) in kernels {
                            assert!(run(k, &t, &y, block) == want, "{name}: block {block}, {bad} at {at}");
                        }
                    }
                }
            }
        }
    }
}
