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
    crate::quant::kernels::quantize_blocks15(bounds, map, zero_code, bnb_zero, x, block, packed, absmax)
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
