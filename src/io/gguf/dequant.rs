//! Tensor data to `f32` and back, for every type lowbit has (F32, F16, BF16 and the block
//! types of [`crate::compat::ggml`]).

use crate::compat::ggml::{
    BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K, BlockQ6_K, BlockQ8_0,
    BlockQ8_K, GgmlBlock,
};
use crate::{Bf16, FloatFormat, Fp16};

use super::GgmlType;

/// Whether [`to_f32`] reads the type.
pub(super) fn readable(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_K) || writable_block(ty)
}

/// The block types [`from_f32`] writes (every file block type lowbit has; not `Q8_K`, which
/// is no file type).
pub(super) fn writable_block(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K)
}

/// Blocks copied out of bytes (which need not be aligned for the block type).
fn blocks<B: bytemuck::Pod>(data: &[u8]) -> Vec<B> {
    data.chunks_exact(core::mem::size_of::<B>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

fn deq<B: GgmlBlock>(data: &[u8], out: &mut [f32]) -> Result<(), crate::quant::Error> {
    B::dequantize_into(&blocks::<B>(data), out)
}

/// `n` values of type `ty` from `data` (`ty.bytes_for(n)` bytes), as ggml's `to_float`;
/// `None` for a type lowbit does not read.
pub(super) fn to_f32(ty: GgmlType, data: &[u8], n: usize) -> Option<Result<Vec<f32>, crate::quant::Error>> {
    let mut x = vec![0f32; n];
    let r = match ty {
        GgmlType::F32 => {
            for (v, b) in x.iter_mut().zip(data.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            Ok(())
        }
        GgmlType::F16 => {
            for (v, b) in x.iter_mut().zip(data.chunks_exact(2)) {
                *v = Fp16::decode_f32(u16::from_le_bytes([b[0], b[1]]));
            }
            Ok(())
        }
        GgmlType::BF16 => {
            for (v, b) in x.iter_mut().zip(data.chunks_exact(2)) {
                *v = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
            Ok(())
        }
        GgmlType::Q4_0 => deq::<BlockQ4_0>(data, &mut x),
        GgmlType::Q4_1 => deq::<BlockQ4_1>(data, &mut x),
        GgmlType::Q5_0 => deq::<BlockQ5_0>(data, &mut x),
        GgmlType::Q5_1 => deq::<BlockQ5_1>(data, &mut x),
        GgmlType::Q8_0 => deq::<BlockQ8_0>(data, &mut x),
        GgmlType::Q2_K => deq::<BlockQ2_K>(data, &mut x),
        GgmlType::Q3_K => deq::<BlockQ3_K>(data, &mut x),
        GgmlType::Q4_K => deq::<BlockQ4_K>(data, &mut x),
        GgmlType::Q5_K => deq::<BlockQ5_K>(data, &mut x),
        GgmlType::Q6_K => deq::<BlockQ6_K>(data, &mut x),
        GgmlType::Q8_K => deq::<BlockQ8_K>(data, &mut x),
        _ => return None,
    };
    Some(r.map(|()| x))
}

fn q<B: GgmlBlock>(x: &[f32]) -> Result<Vec<u8>, crate::quant::Error> {
    Ok(bytemuck::cast_slice(&B::quantize(x)?).to_vec())
}

/// Rows of `n_per_row` values in matrices (experts) of `rows_per_mat` rows, each matrix with
/// its `n_per_row` importances: what `llama_tensor_quantize_impl` hands `ggml_quantize_chunk`.
fn qw<B: GgmlBlock>(
    x: &[f32],
    n_per_row: usize,
    rows_per_mat: usize,
    w: &[f32],
) -> Result<Vec<u8>, crate::quant::Error> {
    let mut out = Vec::with_capacity(x.len() / B::BLOCK * core::mem::size_of::<B>());
    for (m, xs) in x.chunks(n_per_row * rows_per_mat.max(1)).enumerate() {
        let wm = w.get(m * n_per_row..(m + 1) * n_per_row).unwrap_or(&[]);
        out.extend_from_slice(bytemuck::cast_slice(&crate::compat::ggml::quantize_with_imatrix::<B>(
            xs, n_per_row, wm,
        )?));
    }
    Ok(out)
}

/// [`from_f32`] with importance weights (`weights` holds `n_per_row` values per matrix of
/// `rows_per_mat` rows), as ggml's `quantize_<type>(.., quant_weights)`.
pub(super) fn from_f32_weighted(
    ty: GgmlType,
    x: &[f32],
    n_per_row: usize,
    rows_per_mat: usize,
    weights: &[f32],
) -> Option<Result<Vec<u8>, crate::quant::Error>> {
    let (n, r, w) = (n_per_row, rows_per_mat, weights);
    Some(match ty {
        GgmlType::Q4_0 => qw::<BlockQ4_0>(x, n, r, w),
        GgmlType::Q4_1 => qw::<BlockQ4_1>(x, n, r, w),
        GgmlType::Q5_0 => qw::<BlockQ5_0>(x, n, r, w),
        GgmlType::Q5_1 => qw::<BlockQ5_1>(x, n, r, w),
        GgmlType::Q8_0 => qw::<BlockQ8_0>(x, n, r, w),
        GgmlType::Q2_K => qw::<BlockQ2_K>(x, n, r, w),
        GgmlType::Q3_K => qw::<BlockQ3_K>(x, n, r, w),
        GgmlType::Q4_K => qw::<BlockQ4_K>(x, n, r, w),
        GgmlType::Q5_K => qw::<BlockQ5_K>(x, n, r, w),
        GgmlType::Q6_K => qw::<BlockQ6_K>(x, n, r, w),
        _ => return None,
    })
}

/// `x` quantized to the block type `ty` with ggml's reference quantizer; `None` for a type
/// that is not one of [`writable_block`].
pub(super) fn from_f32(ty: GgmlType, x: &[f32]) -> Option<Result<Vec<u8>, crate::quant::Error>> {
    Some(match ty {
        GgmlType::Q4_0 => q::<BlockQ4_0>(x),
        GgmlType::Q4_1 => q::<BlockQ4_1>(x),
        GgmlType::Q5_0 => q::<BlockQ5_0>(x),
        GgmlType::Q5_1 => q::<BlockQ5_1>(x),
        GgmlType::Q8_0 => q::<BlockQ8_0>(x),
        GgmlType::Q2_K => q::<BlockQ2_K>(x),
        GgmlType::Q3_K => q::<BlockQ3_K>(x),
        GgmlType::Q4_K => q::<BlockQ4_K>(x),
        GgmlType::Q5_K => q::<BlockQ5_K>(x),
        GgmlType::Q6_K => q::<BlockQ6_K>(x),
        _ => return None,
    })
}

/// F16 or BF16 codes of `x`, round to nearest even (`Err(i)`: `x[i]` overflows to infinity).
pub(super) fn to_half(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>, usize> {
    let mut codes = vec![0u16; x.len()];
    let overflow = if ty == GgmlType::F16 {
        Fp16::encode_slice(x, &mut codes).ok();
        0x7c00
    } else {
        Bf16::encode_slice(x, &mut codes).ok();
        0x7f80
    };
    if let Some(i) = codes.iter().position(|c| c & overflow == overflow) {
        return Err(i);
    }
    Ok(codes.iter().flat_map(|c| c.to_le_bytes()).collect())
}
