//! The 2- and 3-bit K-quants: `Q2_K` and `Q3_K` (16 sub-blocks of 16).

// Index loops as in ggml-quants.c, so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::k_quants::super_block;
use super::k_search::{make_q3_quants, make_qkx_quants, nearest_int, Search};
use super::{half, half_checked, sealed::Sealed, value, GgmlBlock, GgmlType, QK_K};
use crate::quant::Error;

/// ggml's `block_q2_K`: 2-bit codes in 16 sub-blocks of 16, each with a 4-bit scale and
/// minimum, and half super-scales for both.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2_K {
    /// Sub-block `j`'s scale in the low nibble of `scales[j]`, its minimum in the high one.
    pub scales: [u8; QK_K / 16],
    /// Codes: in each 128 elements, byte `l` holds elements `l`, `l + 32`, `l + 64`,
    /// `l + 96` in bits 0–1, 2–3, 4–5, 6–7.
    pub qs: [u8; QK_K / 4],
    /// Super-scale of the scales; element `j` is `d × scale × code - dmin × min`.
    pub d: f16,
    /// Super-scale of the minimums.
    pub dmin: f16,
}

/// ggml's `block_q3_K`: 3-bit codes offset by 4 in 16 sub-blocks of 16, each with a 6-bit
/// signed scale, and a half super-scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3_K {
    /// Bit 2 of the codes: element `j`'s in bit `j / 32` of byte `j % 32`.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the codes, laid out as the codes of [`BlockQ2_K`].
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales offset by 32: the low 4 bits of scale `j` in the low (`j < 8`)
    /// or high nibble of byte `j % 8`, the high 2 bits in bits `2(j / 4)` of byte `8 + j % 4`.
    pub scales: [u8; 12],
    /// Super-scale; element `j` is `d × (scale - 32) × (code - 4)`.
    pub d: f16,
}

const _: () = assert!(core::mem::size_of::<BlockQ2_K>() == 84);
const _: () = assert!(core::mem::size_of::<BlockQ3_K>() == 110);

/// Four 2-bit codes per byte, as ggml packs `Q2_K` and the low bits of `Q3_K`.
fn pack2(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for h in 0..2 {
        for i in 0..32 {
            let e = 128 * h + i;
            qs[32 * h + i] = l[e] | (l[e + 32] << 2) | (l[e + 64] << 4) | (l[e + 96] << 6);
        }
    }
}

/// Element `e`'s 2-bit code from that packing.
#[inline(always)]
fn code2(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3
}

/// `Q3_K`'s 6-bit scale `j` (0..=63, not yet offset).
#[inline(always)]
fn q3_scale(s: &[u8; 12], j: usize) -> u8 {
    let lo = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)
}

/// `Q3_K`'s scale packing, as ggml writes it.
pub(super) fn pack_q3_scales(ls: &[u8; 16]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for (j, &l) in ls.iter().enumerate() {
        if j < 8 {
            s[j] = l & 0xf;
        } else {
            s[j - 8] |= (l & 0xf) << 4;
        }
        s[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
    }
    s
}

/// The end of `Q3_K` quantization: re-quantize each sub-block with its stored scale, split
/// off the high bits.
pub(super) fn q3_k_finish(x: &[f32; QK_K], l: &mut [i8; QK_K], d: f16, scales: [u8; 12]) -> BlockQ3_K {
    let dd = value(d);
    for j in 0..16 {
        let sc = q3_scale(&scales, j) as i8 - 32;
        let d = dd * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        for ii in 16 * j..16 * j + 16 {
            l[ii] = (nearest_int(x[ii] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut b = BlockQ3_K {
        hmask: [0; QK_K / 8],
        qs: [0; QK_K / 4],
        scales,
        d,
    };
    let mut low = [0u8; QK_K];
    for (e, (&v, o)) in l.iter().zip(low.iter_mut()).enumerate() {
        let mut v = v as u8;
        if v > 3 {
            b.hmask[e % 32] |= 1 << (e / 32);
            v -= 4;
        }
        *o = v;
    }
    pack2(&low, &mut b.qs);
    b
}

impl Sealed for BlockQ3_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        let x = super_block(x, group)?;
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for (j, s) in scales.iter_mut().enumerate() {
            *s = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            if s.abs() > amax {
                amax = s.abs();
                max_scale = *s;
            }
        }
        let (d, packed) = if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let mut ls = [0u8; 16];
            for (o, &s) in ls.iter_mut().zip(&scales) {
                // `int8_t l = nearest_int(.)`, then `MAX(-32, MIN(31, l)) + 32`.
                *o = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            }
            (half_checked(1.0 / iscale, group)?, pack_q3_scales(&ls))
        } else {
            (half(0.0), [0u8; 12])
        };
        Ok(q3_k_finish(x, &mut l, d, packed))
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let d_all = value(self.d);
        for (j, ys) in out.chunks_exact_mut(16).enumerate() {
            let dl = d_all * f32::from(q3_scale(&self.scales, j) as i8 - 32);
            for (i, y) in ys.iter_mut().enumerate() {
                let e = 16 * j + i;
                let hi = if self.hmask[e % 32] & (1 << (e / 32)) != 0 {
                    0
                } else {
                    4
                };
                *y = dl * f32::from(code2(&self.qs, e) as i8 - hi);
            }
        }
    }
}

impl GgmlBlock for BlockQ3_K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const BLOCK: usize = QK_K;
}

/// The end of `Q2_K` quantization: re-quantize each sub-block with its stored scale and
/// minimum, pack.
pub(super) fn q2_k_finish(x: &[f32; QK_K], l: &mut [u8; QK_K], scales: [u8; 16], d: f16, dmin: f16) -> BlockQ2_K {
    let (dd, dm) = (value(d), value(dmin));
    for j in 0..16 {
        let d = dd * f32::from(scales[j] & 0xf);
        if d == 0.0 {
            continue;
        }
        let m = dm * f32::from(scales[j] >> 4);
        for ii in 16 * j..16 * j + 16 {
            l[ii] = nearest_int((x[ii] + m) / d).clamp(0, 3) as u8;
        }
    }
    let mut b = BlockQ2_K {
        scales,
        qs: [0; QK_K / 4],
        d,
        dmin,
    };
    pack2(l, &mut b.qs);
    b
}

impl Sealed for BlockQ2_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        const S: Search = Search {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        const Q4SCALE: f32 = 15.0;
        let x = super_block(x, group)?;
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        let mut weights = [0f32; 16];
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            scales[j] = make_qkx_quants(S, xs, &weights, &mut l[16 * j..16 * j + 16], &mut mins[j]);
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let mut packed = [0u8; 16];
        let d = if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (o, &s) in packed.iter_mut().zip(&scales) {
                *o = nearest_int(iscale * s) as u8;
            }
            half_checked(max_scale / Q4SCALE, group)?
        } else {
            half(0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (o, &m) in packed.iter_mut().zip(&mins) {
                *o |= (nearest_int(iscale * m) << 4) as u8;
            }
            half_checked(max_min / Q4SCALE, group)?
        } else {
            half(0.0)
        };
        Ok(q2_k_finish(x, &mut l, packed, d, dmin))
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let (d, min) = (value(self.d), value(self.dmin));
        for (j, ys) in out.chunks_exact_mut(16).enumerate() {
            let sc = self.scales[j];
            let (dl, ml) = (d * f32::from(sc & 0xf), min * f32::from(sc >> 4));
            for (i, y) in ys.iter_mut().enumerate() {
                *y = dl * f32::from(code2(&self.qs, 16 * j + i)) - ml;
            }
        }
    }
}

impl GgmlBlock for BlockQ2_K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const BLOCK: usize = QK_K;
}
