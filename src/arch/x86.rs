//! x86-64 versions of the portable loops, compiled with AVX2 enabled so LLVM vectorises them
//! eight lanes wide.

use crate::format::slice::portable;
use crate::format::F32Fast;
use crate::format::FloatFormat;

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn encode_f32_rne_avx2<F: FloatFormat>(k: &F32Fast, src: &[f32], dst: &mut [F::Code]) {
    portable::encode_f32_rne::<F>(k, src, dst);
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
