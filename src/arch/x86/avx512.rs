//! AVX-512 (F, BW, VL) kernels for the FP16 and BF16 slice conversions, 16 lanes a vector.
//!
//! Each loop takes 64 elements a step and does the last partial steps 16 lanes at a time with
//! masked loads and stores (a masked-off lane is never read or written, so nothing outside the
//! slices is touched). The FP16 kernels use the conversion instructions and hand each NaN lane
//! to `exact`, since the instructions quiet NaN payloads; the BF16 kernels are integer code that
//! computes the portable loop's bits for every input, NaNs included.

use core::arch::x86_64::*;

use crate::arch::portable::{self, Levels16};

/// Run `exact` on each lane of `mask` (bit `j` for element `j`) of `s` into `d`.
#[inline(always)]
fn redo<S, D>(mut mask: u64, s: &[S], d: &mut [D], exact: &impl Fn(&[S], &mut [D])) {
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        exact(&s[j..j + 1], &mut d[j..j + 1]);
        mask &= mask - 1;
    }
}

/// The NaN lanes of four vectors (bit `16k + j` for lane `j` of vector `k`), or `None` if there
/// are none. The common case costs two compares (`unord(a, b)` is true where either is NaN)
/// and one test; the exact mask is computed only when there is a NaN.
#[inline]
#[target_feature(enable = "avx512f")]
fn nan_lanes(v: [__m512; 4]) -> Option<u64> {
    let any = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v[0], v[1]) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v[2], v[3]);
    if any == 0 {
        return None;
    }
    let mut nan = 0u64;
    for (k, &v) in v.iter().enumerate() {
        nan |= u64::from(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)) << (16 * k);
    }
    Some(nan)
}

/// The mask of the first `len` lanes of 16 (`len <= 16`).
#[inline(always)]
fn first(len: usize) -> __mmask16 {
    debug_assert!(len <= 16);
    ((1u32 << len) - 1) as __mmask16
}

/// f32 → IEEE binary16 with `vcvtps2ph` (AVX-512F), 16 lanes a vector.
///
/// The instruction rounds to nearest even and handles subnormals and overflow exactly as the
/// portable codec does (with the default MXCSR, which Rust never changes); it quiets NaNs,
/// whose payload the portable codec keeps, so each NaN lane is redone by `exact`, the portable
/// codec, afterwards. The result equals `exact` on the whole slice.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn encode_fp16(src: &[f32], dst: &mut [u16], exact: impl Fn(&[f32], &mut [u16])) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, so the 64 f32 at `src + i` and the 64 u16 at `dst + i` are in
        // bounds (four vectors at offsets 16k, k < 4); loads and stores are unaligned, and the
        // instructions are enabled by this function's target features.
        let nan = unsafe {
            let (p, q) = (src.as_ptr().add(i), dst.as_mut_ptr().add(i));
            let v = lanes!(k in [0, 1, 2, 3] => _mm512_loadu_ps(p.add(16 * k)));
            for (k, &v) in v.iter().enumerate() {
                _mm256_storeu_si256(q.add(16 * k).cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
            }
            nan_lanes(v)
        };
        if let Some(nan) = nan {
            redo(nan, &src[i..i + 64], &mut dst[i..i + 64], &exact);
        }
        i += 64;
    }
    while i < n {
        let len = (n - i).min(16);
        let m = first(len);
        // SAFETY: the mask `m` selects the `len` lanes at `src + i` and `dst + i`, all in bounds
        // (`i + len <= n`); masked-off lanes are neither read nor written. The instructions are
        // enabled by this function's target features.
        let nan = unsafe {
            let v = _mm512_maskz_loadu_ps(m, src.as_ptr().add(i));
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_mask_storeu_epi16(dst.as_mut_ptr().add(i).cast(), m, h);
            // Masked-off lanes were loaded as zero, which is not a NaN.
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
        };
        if nan != 0 {
            redo(u64::from(nan), &src[i..i + len], &mut dst[i..i + len], &exact);
        }
        i += len;
    }
}

/// IEEE binary16 → f32 with `vcvtph2ps` (AVX-512F), 16 lanes a vector. The instruction is exact
/// except for NaNs (it quiets a signalling NaN, which the portable decode keeps), so each NaN
/// lane (found on the output: a code converts to a NaN exactly when it is one) is redone by
/// `exact` afterwards; the result equals `exact` on the whole slice.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn decode_fp16(src: &[u16], dst: &mut [f32], exact: impl Fn(&[u16], &mut [f32])) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, so the 64 u16 at `src + i` (two 32-code vectors, or four of 16)
        // and the 64 f32 at `dst + i` (four vectors) are in bounds; loads and stores are
        // unaligned, and the instructions are enabled by this function's target features.
        let nan = unsafe {
            let (p, q) = (src.as_ptr().add(i), dst.as_mut_ptr().add(i));
            // A code converts to a NaN exactly when it is a NaN code, so the outputs say where.
            let v = lanes!(k in [0, 1, 2, 3] => _mm512_cvtph_ps(_mm256_loadu_si256(p.add(16 * k).cast())));
            for (k, &v) in v.iter().enumerate() {
                _mm512_storeu_ps(q.add(16 * k), v);
            }
            nan_lanes(v)
        };
        if let Some(nan) = nan {
            redo(nan, &src[i..i + 64], &mut dst[i..i + 64], &exact);
        }
        i += 64;
    }
    while i < n {
        let len = (n - i).min(16);
        let m = first(len);
        // SAFETY: the mask `m` selects the `len` lanes at `src + i` and `dst + i`, all in bounds
        // (`i + len <= n`); masked-off lanes are neither read nor written. The instructions are
        // enabled by this function's target features.
        let nan = unsafe {
            let h = _mm256_maskz_loadu_epi16(m, src.as_ptr().add(i).cast());
            let v = _mm512_cvtph_ps(h);
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m, v);
            // Masked-off lanes were loaded as zero, which is not a NaN.
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
        };
        if nan != 0 {
            redo(u64::from(nan), &src[i..i + len], &mut dst[i..i + len], &exact);
        }
        i += len;
    }
}

/// The BF16 code of each f32 lane, in the high 16 bits of the lane: `bits + 0x7fff + ((bits >>
/// 16) & 1)` (round to nearest even; a carry into the exponent gives infinity), and for a NaN
/// `sign | 0x7fc0` (the canonical quiet NaN with the input's sign). The low 16 bits are junk.
/// The one floating-point instruction, the unordered compare that finds the NaNs, depends on
/// no MXCSR mode (a subnormal flushed by DAZ is still not a NaN).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn bf16_high(b: __m512i) -> __m512i {
    let round = _mm512_add_epi32(
        _mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)),
        _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1)),
    );
    let f = _mm512_castsi512_ps(b);
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(f, f);
    let quiet = _mm512_or_si512(
        _mm512_and_si512(b, _mm512_set1_epi32(i32::MIN)),
        _mm512_set1_epi32(0x7fc0_0000),
    );
    _mm512_mask_blend_epi32(nan, round, quiet)
}

/// f32 → BF16, AVX-512BW integer code: [`bf16_high`] on 16 lanes, and one `vpermt2w` picking
/// the high halves of two vectors into 32 codes. Bit-identical to the portable loop (the same
/// integer formula) for every input, NaNs, subnormals and overflow included, whatever MXCSR's
/// denormal modes (unlike `vcvtneps2bf16`, which treats subnormal inputs as zero).
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn encode_bf16(src: &[f32], dst: &mut [u16]) {
    let n = src.len().min(dst.len());
    // Word j of the result is word 2j + 1 of the pair (a, b): bit 5 of an index picks b.
    let odd = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9,
        7, 5, 3, 1,
    );
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, so the 64 f32 at `src + i` (four vectors) and the 64 u16 at
        // `dst + i` (two vectors) are in bounds; loads and stores are unaligned, and the
        // instructions are enabled by this function's target features.
        unsafe {
            let (p, q) = (src.as_ptr().add(i), dst.as_mut_ptr().add(i));
            for k in 0..2 {
                let a = bf16_high(_mm512_loadu_si512(p.add(32 * k).cast()));
                let b = bf16_high(_mm512_loadu_si512(p.add(32 * k + 16).cast()));
                _mm512_storeu_si512(q.add(32 * k).cast(), _mm512_permutex2var_epi16(a, odd, b));
            }
        }
        i += 64;
    }
    while i < n {
        let len = (n - i).min(16);
        let m = first(len);
        // SAFETY: the mask `m` selects the `len` lanes at `src + i` and `dst + i`, all in bounds
        // (`i + len <= n`); masked-off lanes are neither read nor written. The instructions are
        // enabled by this function's target features.
        unsafe {
            let b = _mm512_maskz_loadu_epi32(m, src.as_ptr().add(i).cast());
            let h = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(bf16_high(b)));
            _mm256_mask_storeu_epi16(dst.as_mut_ptr().add(i).cast(), m, h);
        }
        i += len;
    }
}

/// BF16 → f32: each code shifted into the high half of its lane (the portable decode, NaNs
/// included: BF16 is a truncated f32).
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn decode_bf16(src: &[u16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, so the 64 u16 at `src + i` and the 64 f32 at `dst + i` are in
        // bounds (four vectors at offsets 16k, k < 4); loads and stores are unaligned, and the
        // instructions are enabled by this function's target features.
        unsafe {
            let (p, q) = (src.as_ptr().add(i), dst.as_mut_ptr().add(i));
            for k in 0..4 {
                let h = _mm256_loadu_si256(p.add(16 * k).cast());
                let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
                _mm512_storeu_si512(q.add(16 * k).cast(), v);
            }
        }
        i += 64;
    }
    while i < n {
        let len = (n - i).min(16);
        let m = first(len);
        // SAFETY: the mask `m` selects the `len` lanes at `src + i` and `dst + i`, all in bounds
        // (`i + len <= n`); masked-off lanes are neither read nor written. The instructions are
        // enabled by this function's target features.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(m, src.as_ptr().add(i).cast());
            let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i).cast(), m, v);
        }
        i += len;
    }
}

/// Dequantize 34-byte records (a little-endian binary16 scale, then 32 `i8` codes: ggml's
/// `Q8_0`) into `out`, 32 values a record: `f32::from(q) * scale(bits)`. The codes widen to
/// `f32` exactly (`vpmovsxbd`, `vcvtdq2ps`) and the product is one IEEE multiply, as in the
/// portable loop; the scale is the caller's own decode, so the result is the portable loop's bit
/// for bit. Writes `min(records.len() / 34, out.len() / 32)` records.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn dequantize_i8_f16_blocks(records: &[u8], out: &mut [f32], scale: impl Fn(u16) -> f32) {
    let n = (records.len() / 34).min(out.len() / 32);
    for (r, y) in records.chunks_exact(34).zip(out.chunks_exact_mut(32)).take(n) {
        let d = _mm512_set1_ps(scale(u16::from_le_bytes([r[0], r[1]])));
        // SAFETY: `r` holds 34 bytes, so the 16-byte loads at `r + 2` and `r + 18` are in
        // bounds, and `y` holds 32 f32 (two 16-lane stores); loads and stores are unaligned,
        // and the instructions are enabled by this function's target features.
        unsafe {
            let p = r.as_ptr().add(2);
            for k in 0..2 {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(16 * k).cast()));
                _mm512_storeu_ps(y.as_mut_ptr().add(16 * k), _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
            }
        }
    }
}

/// The 16-level codebook quantizer ([`portable::quantize_blocks15`]) with AVX-512 codes, 32
/// elements a step, and the next group's input prefetched while a group is coded.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::arch) unsafe fn quantize_blocks15(
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    portable::quantize_blocks15_with(&Pairs15::new(t), t, x, block, packed, absmax)
}

/// The pair kernel of [`quantize_blocks15`]: the bounds (and the stored codes) in one register
/// each, so that each step of the binary search picks its bound with one lane permute.
struct Pairs15 {
    /// `bounds[0..15]`, then `+inf` (never picked: the search reads `bounds[idx]` for
    /// `idx <= 14`).
    bounds: __m512,
    /// The stored code of each level index as a 32-bit lane (`None`: the index is the code).
    map: Option<__m512i>,
}

impl portable::PairKernel for Pairs15 {
    #[inline(always)]
    fn pairs(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
        // SAFETY: a `Pairs15` is only built inside `quantize_blocks15`, which runs on CPUs with
        // AVX-512 F, BW and VL (its own contract).
        unsafe { self.run(t, x, c, out) }
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32]) {
        super::prefetch_t0(x);
    }
}

impl Pairs15 {
    /// The constants, built once per tensor.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn new(t: &Levels16) -> Self {
        let mut b = [f32::INFINITY; 16];
        b[..15].copy_from_slice(&t.bounds);
        let map = t.map.map(|m| {
            let m: [u32; 16] = core::array::from_fn(|i| u32::from(m[i]));
            // SAFETY: `m` holds 16 u32 (unaligned load).
            unsafe { _mm512_loadu_si512(m.as_ptr().cast()) }
        });
        // SAFETY: `b` holds 16 f32 (unaligned load).
        let bounds = unsafe { _mm512_loadu_ps(b.as_ptr()) };
        Self { bounds, map }
    }

    /// The stored codes of 16 lanes: `#{i : y > bound[i]}` by a branch-free binary search over
    /// the 15 sorted bounds (`idx += 8` if `y > b[7]`, then `+= 4` if `y > b[idx + 3]`,
    /// `+= 2` if `y > b[idx + 1]`, `+= 1` if `y > b[idx]`), each bound picked by a lane
    /// permute; `y > b` is false for NaN, as in the portable count. Then the map, if any.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn codes(&self, y: __m512) -> __m512i {
        let above = |i: __m512i| _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_permutexvar_ps(i, self.bounds));
        let idx = _mm512_maskz_mov_epi32(above(_mm512_set1_epi32(7)), _mm512_set1_epi32(8));
        let m = above(_mm512_add_epi32(idx, _mm512_set1_epi32(3)));
        let idx = _mm512_mask_add_epi32(idx, m, idx, _mm512_set1_epi32(4));
        let m = above(_mm512_add_epi32(idx, _mm512_set1_epi32(1)));
        let idx = _mm512_mask_add_epi32(idx, m, idx, _mm512_set1_epi32(2));
        let m = above(idx);
        let idx = _mm512_mask_add_epi32(idx, m, idx, _mm512_set1_epi32(1));
        match self.map {
            Some(map) => _mm512_permutexvar_epi32(idx, map),
            None => idx,
        }
    }

    /// [`portable::quantize_pairs15`], 32 elements a step: the codes of two vectors, each
    /// 64-bit pair of codes made `even << 4 | odd` in its low byte, and those bytes narrowed
    /// (`vpmovqb`) into the 16 output bytes. The rest goes to the portable loop. Bit-identical
    /// to the portable loop for sorted bounds (checked by `portable::codebook`'s tests).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VL. `x.len() == 2 * out.len()`; `t` is the table
    /// `self` was built from.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn run(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
        debug_assert_eq!(x.len(), 2 * out.len());
        let n = (x.len() / 32).min(out.len() / 16);
        let cv = _mm512_set1_ps(c);
        let pair = |v: __m512i| _mm512_or_si512(_mm512_slli_epi64::<4>(v), _mm512_srli_epi64::<32>(v));
        for (xs, o) in x.chunks_exact(32).zip(out.chunks_exact_mut(16)).take(n) {
            // SAFETY: `xs` holds 32 f32 and `o` 16 bytes; loads and stores are unaligned.
            unsafe {
                let a = self.codes(_mm512_mul_ps(_mm512_loadu_ps(xs.as_ptr()), cv));
                let b = self.codes(_mm512_mul_ps(_mm512_loadu_ps(xs.as_ptr().add(16)), cv));
                let r = _mm_unpacklo_epi64(_mm512_cvtepi64_epi8(pair(a)), _mm512_cvtepi64_epi8(pair(b)));
                _mm_storeu_si128(o.as_mut_ptr().cast(), r);
            }
        }
        portable::quantize_pairs15(t, &x[32 * n..], c, &mut out[16 * n..]);
    }
}
