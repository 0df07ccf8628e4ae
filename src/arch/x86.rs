//! x86-64 versions of the portable loops, compiled with AVX2 enabled so LLVM vectorises them
//! eight lanes wide.

use crate::format::slice::portable;
use crate::format::FloatFormat;

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn encode_f32_rne_avx2<F: FloatFormat, const SATURATE: bool>(src: &[f32], dst: &mut [F::Code]) {
    portable::encode_f32_rne::<F, SATURATE>(src, dst);
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn decode_f32_avx2<F: FloatFormat>(src: &[F::Code], dst: &mut [f32]) {
    portable::decode_f32::<F>(src, dst);
}

/// # Safety
/// The CPU must support AVX2.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_blocks15_avx2(
    bounds: &[f32; 15],
    map: Option<&[u8; 16]>,
    zero_code: u8,
    bnb_zero: bool,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    let pairs = |b: &[f32; 15], m: Option<&[u8; 16]>, xs: &[f32], c: f32, o: &mut [u8]| {
        // SAFETY: this function runs only on CPUs with AVX2 (its own contract).
        unsafe { quantize_pairs15_avx2(b, m, xs, c, o) }
    };
    crate::quant::kernels::quantize_blocks15_with(pairs, bounds, map, zero_code, bnb_zero, x, block, packed, absmax)
}

/// The comparison count of `quant::kernels::quantize_pairs15`, 16 elements a step: the even
/// and odd elements go to separate registers (`shufps`); for each, `#{i : y > bound[i]}` over
/// the 15 sorted bounds is found by a branch-free binary search in four compares (`y > b`,
/// false for NaN as in the portable loop; the bound of each step comes from a register
/// permute), which equals the portable loop's count for sorted bounds; then `even << 4 | odd`
/// is one byte per pair. Bit-identical to the portable loop (checked by
/// `quant::kernels::tests`).
///
/// # Safety
/// The CPU must support AVX2. `x.len() == 2 * out.len()`.
#[target_feature(enable = "avx2")]
unsafe fn quantize_pairs15_avx2(bounds: &[f32; 15], map: Option<&[u8; 16]>, x: &[f32], c: f32, out: &mut [u8]) {
    use core::arch::x86_64::*;
    debug_assert_eq!(x.len(), 2 * out.len());
    let n = (x.len() / 16).min(out.len() / 8);
    let b = bounds;
    let b7 = _mm256_set1_ps(b[7]);
    let b3 = _mm256_set1_ps(b[3]);
    let b11 = _mm256_set1_ps(b[11]);
    let t3 = _mm256_setr_ps(b[1], b[5], b[9], b[13], b[1], b[5], b[9], b[13]);
    let t4 = _mm256_setr_ps(b[0], b[2], b[4], b[6], b[8], b[10], b[12], b[14]);
    let (k8, k4, k2, k1) = (
        _mm256_set1_epi32(8),
        _mm256_set1_epi32(4),
        _mm256_set1_epi32(2),
        _mm256_set1_epi32(1),
    );
    let count = |y: __m256| {
        let gt = |y: __m256, b: __m256| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(y, b));
        let m = gt(y, b7);
        let mut idx = _mm256_and_si256(m, k8);
        let m = gt(y, _mm256_blendv_ps(b3, b11, _mm256_castsi256_ps(m)));
        idx = _mm256_add_epi32(idx, _mm256_and_si256(m, k4));
        let m = gt(y, _mm256_permutevar8x32_ps(t3, _mm256_srli_epi32::<2>(idx)));
        idx = _mm256_add_epi32(idx, _mm256_and_si256(m, k2));
        let m = gt(y, _mm256_permutevar8x32_ps(t4, _mm256_srli_epi32::<1>(idx)));
        _mm256_add_epi32(idx, _mm256_and_si256(m, k1))
    };
    let cv = _mm256_set1_ps(c);
    let table = map.map(|m| {
        let mut t = [0u8; 32];
        t[..16].copy_from_slice(m);
        t[16..].copy_from_slice(m);
        t
    });
    // Byte 0 of each dword to the low four bytes of its 128-bit lane.
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1,
    );
    for i in 0..n {
        let xs = &x[16 * i..16 * i + 16];
        let o = &mut out[8 * i..8 * i + 8];
        // SAFETY: `xs` holds 16 f32 and `o` 8 bytes; loads and stores are unaligned.
        unsafe {
            let a = _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr()), cv);
            let b = _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr().add(8)), cv);
            // evens: x0 x2 x8 x10 | x4 x6 x12 x14; odds: x1 x3 x9 x11 | x5 x7 x13 x15
            let ev = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let od = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let mut ce = count(ev);
            let mut co = count(od);
            if let Some(t) = &table {
                let tv = _mm256_loadu_si256(t.as_ptr().cast());
                ce = _mm256_shuffle_epi8(tv, ce);
                co = _mm256_and_si256(_mm256_shuffle_epi8(tv, co), _mm256_set1_epi32(0xff));
            }
            // Byte 0 of each dword: pairs p0 p1 p4 p5 | p2 p3 p6 p7.
            let v = _mm256_or_si256(_mm256_slli_epi32::<4>(ce), co);
            let v = _mm256_shuffle_epi8(v, pick);
            let r = _mm_unpacklo_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            _mm_storel_epi64(o.as_mut_ptr().cast(), r);
        }
    }
    crate::quant::kernels::quantize_pairs15(bounds, map, &x[16 * n..], c, &mut out[8 * n..]);
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dequantize_blocks_avx2(
    table: &[[f32; 2]; 256],
    packed: &[u8],
    absmax: &[f32],
    block: usize,
    out: &mut [f32],
) {
    crate::quant::kernels::dequantize_blocks(table, packed, absmax, block, out);
}

/// f32 → IEEE binary16 with the F16C instruction, eight lanes at a time.
///
/// `vcvtps2ph` rounds to nearest even and handles subnormals and overflow exactly as the
/// portable codec does; only NaNs differ (it quiets them, NumPy's rule keeps the payload as it
/// is), so a chunk holding a NaN is redone by the portable codec.
///
/// # Safety
/// The CPU must support F16C (which implies AVX).
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn encode_fp16_f16c(src: &[f32], dst: &mut [u16]) {
    use core::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let mut chunks_src = src.chunks_exact(8);
    let mut chunks_dst = dst.chunks_exact_mut(8);
    for (s, d) in (&mut chunks_src).zip(&mut chunks_dst) {
        // SAFETY: `s` has exactly 8 f32 and `d` exactly 8 u16; the loads and stores are
        // unaligned, and the instructions are enabled by this function's target features.
        unsafe {
            let v = _mm256_loadu_ps(s.as_ptr());
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(d.as_mut_ptr().cast(), h);
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v)) != 0 {
                portable::encode_f32_rne::<crate::Fp16, false>(s, d);
            }
        }
    }
    portable::encode_f32_rne::<crate::Fp16, false>(chunks_src.remainder(), chunks_dst.into_remainder());
}
