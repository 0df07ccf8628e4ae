//! The K-quant super-blocks of 256 with 16 × 16 or 8 × 32 sub-blocks: `Q8_K`, `Q6_K`, `Q4_K`,
//! `Q5_K` (the 2- and 3-bit ones are in `k_small`).

// Index loops as in ggml-quants.c, so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::k_search::{make_qkx_quants, make_qx_quants, nearest_int, Search, GROUP_MAX_EPS};
use super::{half, half_checked, sealed::Sealed, value, GgmlBlock, GgmlType, QK_K};
use crate::quant::Error;

/// ggml's `block_q8_K`: an `f32` scale, 256 signed 8-bit codes and the sums of each 16 codes
/// (ggml's intermediate type for dot products; not written to model files).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_K {
    /// Scale; element `j` is `d × qs[j]`.
    pub d: f32,
    /// Codes.
    pub qs: [i8; QK_K],
    /// `bsums[k]`: the sum of `qs[16k..16k + 16]` (0 for an all-zero block, which ggml
    /// leaves unwritten).
    pub bsums: [i16; QK_K / 16],
}

/// ggml's `block_q6_K`: 6-bit codes offset by 32 in 16 sub-blocks of 16, each with an `i8`
/// scale, and a half super-scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6_K {
    /// Low 4 bits of the codes: in each half of 128 elements, byte `l` holds elements `l`
    /// and `l + 64`, byte `l + 32` elements `l + 32` and `l + 96` (low, high nibble).
    pub ql: [u8; QK_K / 2],
    /// High 2 bits: in each half, byte `l` holds elements `l`, `l + 32`, `l + 64`, `l + 96`
    /// in bits 0–1, 2–3, 4–5, 6–7.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-scale; element `j` is `d × scales[j / 16] × (code - 32)`.
    pub d: f16,
}

/// ggml's `block_q4_K`: 4-bit codes in 8 sub-blocks of 32, each with a 6-bit scale and
/// minimum, and half super-scales for both.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_K {
    /// Super-scale of the sub-block scales.
    pub d: f16,
    /// Super-scale of the sub-block minimums.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit minimums, packed as ggml's `get_scale_min_k4`
    /// reads them.
    pub scales: [u8; 12],
    /// Codes: in each 64 elements, byte `l` holds element `l` (low nibble) and `l + 32`.
    /// Element `j` is `d × scale × code - dmin × min`.
    pub qs: [u8; QK_K / 2],
}

/// ggml's `block_q5_K`: [`BlockQ4_K`] with a fifth code bit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_K {
    /// Super-scale of the sub-block scales.
    pub d: f16,
    /// Super-scale of the sub-block minimums.
    pub dmin: f16,
    /// Scales and minimums, as in [`BlockQ4_K`].
    pub scales: [u8; 12],
    /// Bit 4 of the codes: bit `2k` of byte `l` for element `64k + l`, bit `2k + 1` for
    /// element `64k + 32 + l`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits, as the codes of [`BlockQ4_K`].
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_K>() == 292);
const _: () = assert!(core::mem::size_of::<BlockQ6_K>() == 210);
const _: () = assert!(core::mem::size_of::<BlockQ4_K>() == 144);
const _: () = assert!(core::mem::size_of::<BlockQ5_K>() == 176);

/// `QK_K` values of a block (the trait checks the length first).
#[inline(always)]
pub(super) fn arr256(x: &[f32]) -> Result<&[f32; QK_K], Error> {
    x.try_into().map_err(|_| Error::NotWholeBlocks {
        len: x.len(),
        block: QK_K,
    })
}

/// Magnitudes from which the 2- to 6-bit K-quants refuse a block: their half super-scale
/// overflows from about 3·10^6 (`Q2_K`) to 3·10^8 (`Q6_K`) already, and from about 10^12 on
/// ggml's `f32` sums overflow and it writes an arbitrary block.
pub(super) const K_MAX_MAGNITUDE: f32 = 4_294_967_296.0;

/// [`arr256`], and [`Error::ScaleOutOfRange`] (with the block's largest magnitude) for a
/// value of magnitude [`K_MAX_MAGNITUDE`] or more.
#[inline(always)]
pub(super) fn super_block(x: &[f32], group: usize) -> Result<&[f32; QK_K], Error> {
    let x = arr256(x)?;
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if amax >= K_MAX_MAGNITUDE {
        return Err(Error::ScaleOutOfRange { group, scale: amax });
    }
    Ok(x)
}

impl Sealed for BlockQ8_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        let x = arr256(x)?;
        let mut b = Self::zeroed();
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            return Ok(b);
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| i32::from(v)).sum::<i32>() as i16;
        }
        b.d = 1.0 / iscale;
        // Near `f32::MAX` the rounded `d` can make `127 × d` overflow: ggml's block would
        // dequantize to infinities.
        if !(b.d * 127.0).is_finite() {
            return Err(Error::ScaleOutOfRange { group, scale: b.d });
        }
        Ok(b)
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        for (y, &q) in out.iter_mut().zip(&self.qs) {
            *y = self.d * f32::from(q);
        }
    }
}

impl GgmlBlock for BlockQ8_K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLOCK: usize = QK_K;
}

/// `quantize_row_q6_K_ref` (`qw` `None`) and `quantize_row_q6_K_impl` with importance
/// weights (`qw`, this super-block's 256).
pub(super) fn q6_k(x: &[f32; QK_K], qw: Option<&[f32]>, group: usize) -> Result<BlockQ6_K, Error> {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        let r = 16 * ib..16 * ib + 16;
        *s = make_qx_quants(32, &x[r.clone()], &mut l[r.clone()], qw.map(|q| &q[r]));
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }
    let mut b = BlockQ6_K::zeroed();
    if max_abs_scale < GROUP_MAX_EPS {
        b.d = half(0.0);
        return Ok(b);
    }
    let iscale = -128.0 / max_scale;
    b.d = half_checked(1.0 / iscale, group)?;
    for (o, &s) in b.scales.iter_mut().zip(&scales) {
        *o = nearest_int(iscale * s).min(127) as i8;
    }
    let dd = value(b.d);
    for j in 0..QK_K / 16 {
        let d = dd * f32::from(b.scales[j]);
        if d == 0.0 {
            continue;
        }
        for ii in 16 * j..16 * j + 16 {
            l[ii] = (nearest_int(x[ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    for h in 0..2 {
        let (ql, qh, lh) = (
            &mut b.ql[64 * h..64 * h + 64],
            &mut b.qh[32 * h..32 * h + 32],
            &l[128 * h..],
        );
        for i in 0..32 {
            let q = [lh[i] as u8, lh[i + 32] as u8, lh[i + 64] as u8, lh[i + 96] as u8];
            ql[i] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
            ql[i + 32] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
            qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    Ok(b)
}

impl Sealed for BlockQ6_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        q6_k(super_block(x, group)?, None, group)
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        let d = value(self.d);
        for h in 0..2 {
            let (ql, qh, sc) = (&self.ql[64 * h..], &self.qh[32 * h..], &self.scales[8 * h..]);
            let y = &mut out[128 * h..128 * h + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                y[l] = d * f32::from(sc[is]) * f32::from(q1);
                y[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
                y[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
                y[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
            }
        }
    }
}

impl GgmlBlock for BlockQ6_K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const BLOCK: usize = QK_K;
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and minimum of sub-block `j`.
#[inline(always)]
pub(super) fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The packing `get_scale_min_k4` reads, as ggml writes it (bits above 6 wrap as in C).
pub(super) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// The sub-block scales and minimums of a `Q4_K`/`Q5_K` super-block, their half
/// super-scales, and the codes of the search (kept where a sub-block's scale is 0).
pub(super) struct KScales {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub l: [u8; QK_K],
}

/// The scale stage of `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref`.
fn k_scales_ref(x: &[f32; QK_K], s: Search, group: usize) -> Result<KScales, Error> {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        scales[j] = make_qkx_quants(s, xs, &weights, &mut l[32 * j..32 * j + 32], &mut mins[j]);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    Ok(KScales {
        d: half_checked(max_scale / 63.0, group)?,
        dmin: half_checked(max_min / 63.0, group)?,
        scales: pack_scale_min_k4(&ls, &lm),
        l,
    })
}

/// The final codes of a `Q4_K`/`Q5_K` super-block: each sub-block re-quantized with its
/// stored (half × 6-bit) scale and minimum.
pub(super) fn k_codes(x: &[f32; QK_K], k: &mut KScales, nmax: i32) {
    let (dd, dm) = (value(k.d), value(k.dmin));
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &k.scales);
        let d = dd * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dmj = dm * f32::from(m);
        for ii in 32 * j..32 * j + 32 {
            k.l[ii] = nearest_int((x[ii] + dmj) / d).clamp(0, nmax) as u8;
        }
    }
}

/// A `Q4_K` block from its scales (codes re-quantized).
pub(super) fn q4_k_from(x: &[f32; QK_K], mut k: KScales) -> BlockQ4_K {
    k_codes(x, &mut k, 15);
    let mut b = BlockQ4_K {
        d: k.d,
        dmin: k.dmin,
        scales: k.scales,
        qs: [0; QK_K / 2],
    };
    for (c, q) in b.qs.chunks_exact_mut(32).enumerate() {
        for (i, o) in q.iter_mut().enumerate() {
            *o = k.l[64 * c + i] | (k.l[64 * c + i + 32] << 4);
        }
    }
    b
}

/// A `Q5_K` block from its scales (codes re-quantized).
pub(super) fn q5_k_from(x: &[f32; QK_K], mut k: KScales) -> BlockQ5_K {
    k_codes(x, &mut k, 31);
    let mut b = BlockQ5_K {
        d: k.d,
        dmin: k.dmin,
        scales: k.scales,
        qh: [0; QK_K / 8],
        qs: [0; QK_K / 2],
    };
    for c in 0..4 {
        let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for j in 0..32 {
            let (mut l1, mut l2) = (k.l[64 * c + j], k.l[64 * c + j + 32]);
            if l1 > 15 {
                l1 -= 16;
                b.qh[j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                b.qh[j] |= m2;
            }
            b.qs[32 * c + j] = l1 | (l2 << 4);
        }
    }
    b
}

/// The `Q4_K` search parameters of `quantize_row_q4_K_ref`.
const Q4K_REF: Search = Search {
    nmax: 15,
    rmin: -1.0,
    rdelta: 0.1,
    nstep: 20,
    use_mad: false,
};

/// The `Q5_K` search parameters of `quantize_row_q5_K_ref`.
const Q5K_REF: Search = Search {
    nmax: 31,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: false,
};

impl Sealed for BlockQ4_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        let x = super_block(x, group)?;
        Ok(q4_k_from(x, k_scales_ref(x, Q4K_REF, group)?))
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        // `dequantize_row_q4_K`'s loop: 64 values a step, the low nibbles then the high ones
        // of the same 32 bytes, with fixed bounds so that the inner loop vectorises.
        let (d, min) = (value(self.d), value(self.dmin));
        for j in 0..QK_K / 64 {
            let [(d1, m1), (d2, m2)] = [2 * j, 2 * j + 1].map(|k| {
                let (sc, m) = get_scale_min_k4(k, &self.scales);
                (d * f32::from(sc), min * f32::from(m))
            });
            let q: &[u8; 32] = self.qs[32 * j..32 * j + 32].try_into().unwrap_or(&[0; 32]);
            let y = &mut out[64 * j..64 * j + 64];
            for l in 0..32 {
                y[l] = d1 * f32::from(q[l] & 0xf) - m1;
                y[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
            }
        }
    }
}

impl GgmlBlock for BlockQ4_K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const BLOCK: usize = QK_K;
}

impl Sealed for BlockQ5_K {
    fn quantize_block(x: &[f32], group: usize) -> Result<Self, Error> {
        let x = super_block(x, group)?;
        Ok(q5_k_from(x, k_scales_ref(x, Q5K_REF, group)?))
    }

    #[inline(always)]
    fn dequantize_block(&self, out: &mut [f32]) {
        // `dequantize_row_q5_K`'s loop (as Q4_K's); the fifth bit of sub-block `s` is bit `s`
        // of `qh`.
        let (d, min) = (value(self.d), value(self.dmin));
        for j in 0..QK_K / 64 {
            let [(d1, m1), (d2, m2)] = [2 * j, 2 * j + 1].map(|k| {
                let (sc, m) = get_scale_min_k4(k, &self.scales);
                (d * f32::from(sc), min * f32::from(m))
            });
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let q: &[u8; 32] = self.qs[32 * j..32 * j + 32].try_into().unwrap_or(&[0; 32]);
            let y = &mut out[64 * j..64 * j + 64];
            for l in 0..32 {
                let h = self.qh[l];
                y[l] = d1 * f32::from((q[l] & 0xf) + if h & u1 != 0 { 16 } else { 0 }) - m1;
                y[l + 32] = d2 * f32::from((q[l] >> 4) + if h & u2 != 0 { 16 } else { 0 }) - m2;
            }
        }
    }
}

impl GgmlBlock for BlockQ5_K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const BLOCK: usize = QK_K;
}
