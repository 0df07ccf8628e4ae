//! ggml's 4-bit blocks (`Q4_0`, `Q4_1`): 32 codes in 16 bytes, element `j` in the low nibble
//! of byte `j` and element `j + 16` in its high nibble.

use core::arch::x86_64::*;

/// See [`crate::arch::dequantize_u4_blocks`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(in crate::arch) unsafe fn dequantize_u4_blocks<const AFFINE: bool>(
    records: &[u8],
    stride: usize,
    out: &mut [f32],
    scale: impl Fn(&[u8]) -> (f32, f32),
) {
    let n = (records.len() / stride).min(out.len() / 32);
    let low = _mm_set1_epi8(0x0f);
    let eight = _mm256_set1_ps(8.0);
    for (r, y) in records.chunks_exact(stride).zip(out.chunks_exact_mut(32)).take(n) {
        let (d, m) = scale(r);
        let (d, m) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
        // SAFETY: a record ends with its 16 code bytes (`stride >= 16`, checked by the entry
        // point), so the load at `r + stride - 16` is in bounds; `y` holds 32 f32 (four
        // 8-lane stores); loads and stores are unaligned.
        unsafe {
            let qs = _mm_loadu_si128(r.as_ptr().add(stride - 16).cast());
            let lo = _mm_and_si128(qs, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), low);
            let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
            for (k, q) in parts.into_iter().enumerate() {
                let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q));
                // The portable loop's arithmetic, unfused: `q × d + m` or `(q - 8) × d`.
                let v = if AFFINE {
                    _mm256_add_ps(_mm256_mul_ps(f, d), m)
                } else {
                    _mm256_mul_ps(_mm256_sub_ps(f, eight), d)
                };
                _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), v);
            }
        }
    }
}

/// See [`crate::arch::quantize_u4_blocks`]: eight blocks a step, whose scales, inverses,
/// binary16 codes and checks are one vector instruction each (as `super::eight_blocks` for
/// `Q8_0`).
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(in crate::arch) unsafe fn quantize_u4_blocks<const AFFINE: bool>(x: &[f32], out: &mut [u8]) -> usize {
    let stride = if AFFINE { 20 } else { 18 };
    let n = (x.len() / 32).min(out.len() / stride);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, so the 256 f32 at `x + 32i` and the `8 × stride` bytes at
        // `out + stride × i` are in bounds.
        let ok = unsafe { eight_blocks::<AFFINE>(x.as_ptr().add(32 * i), out.as_mut_ptr().add(stride * i)) };
        if !ok {
            break;
        }
        i += 8;
    }
    i
}

/// Eight `Q4_0` (or, `AFFINE`, `Q4_1`) blocks at `p` into the `8 × stride` bytes at `o`;
/// `false` (nothing written) when one of them is a block the caller must do itself: a NaN or
/// an infinity, a scale or minimum that overflows binary16, an infinite inverse, or (`Q4_1`)
/// a zero extreme, whose sign depends on which zero comes first.
///
/// # Safety
/// `p` must point to 256 readable f32 and `o` to `8 × stride` writable bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn eight_blocks<const AFFINE: bool>(p: *const f32, o: *mut u8) -> bool {
    // SAFETY: the caller's contract: block `b` is the 32 f32 at `p + 32b`.
    let blocks = unsafe { lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => super::q8_load(p.add(32 * b))) };
    let amax = super::fold8(lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => blocks[b].1), |a, b| {
        _mm256_max_epu32(a, b)
    });
    // The magnitudes' sign bits are clear, so a signed compare orders them.
    let non_finite = _mm256_cmpgt_epi32(amax, _mm256_set1_epi32(0x7f7f_ffff));
    if _mm256_movemask_epi8(non_finite) != 0 {
        return false;
    }
    let (d, lo, bad) = if AFFINE {
        // Finite values: `min` and `max` are exact folds, but `min(-0.0, 0.0)` may give either
        // zero, and ggml keeps the first; a zero extreme goes back to the caller.
        let lo = lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => {
            let v = blocks[b].0;
            _mm256_castps_si256(_mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3])))
        });
        let hi = lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => {
            let v = blocks[b].0;
            _mm256_castps_si256(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3])))
        });
        let lo = super::fold8(lo, |a, b| {
            _mm256_castps_si256(_mm256_min_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b)))
        });
        let hi = super::fold8(hi, |a, b| {
            _mm256_castps_si256(_mm256_max_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b)))
        });
        let (lo, hi) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
        let zero = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_EQ_OQ>(lo, _mm256_setzero_ps()),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(hi, _mm256_setzero_ps()),
        );
        let d = _mm256_div_ps(_mm256_sub_ps(hi, lo), _mm256_set1_ps(15.0));
        (d, lo, _mm256_movemask_ps(zero) != 0)
    } else {
        // The first element of largest magnitude, with its sign (ggml's strict `<` scan);
        // an all-zero block keeps `max = 0.0`.
        let mut am = [0u32; 8];
        // SAFETY: `am` holds the eight 32-bit lanes of `amax`; unaligned store.
        unsafe { _mm256_storeu_si256(am.as_mut_ptr().cast(), amax) };
        let mut signs = [0u32; 8];
        for (b, sign) in signs.iter_mut().enumerate() {
            let (v, _) = blocks[b];
            let a = _mm256_set1_epi32(am[b] as i32);
            let mut eq = 0u32;
            let mut neg = 0u32;
            for (k, &v) in v.iter().enumerate() {
                let abs = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fff_ffff));
                eq |= (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(abs, a))) as u32) << (8 * k);
                neg |= (_mm256_movemask_ps(v) as u32) << (8 * k);
            }
            if am[b] != 0 {
                *sign = ((neg >> eq.trailing_zeros()) & 1) << 31;
            }
        }
        // SAFETY: `signs` holds eight u32; unaligned load.
        let signs = unsafe { _mm256_loadu_si256(signs.as_ptr().cast()) };
        let max = _mm256_castsi256_ps(_mm256_or_si256(amax, signs));
        (_mm256_div_ps(max, _mm256_set1_ps(-8.0)), _mm256_setzero_ps(), false)
    };
    let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(d, _mm256_setzero_ps());
    let id = _mm256_andnot_ps(zero, _mm256_div_ps(_mm256_set1_ps(1.0), d));
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let id_inf = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_and_ps(id, magnitude), _mm256_set1_ps(f32::INFINITY));
    let hd = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
    let hm = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(lo);
    let exp = _mm_set1_epi16(0x7c00);
    let h_inf = _mm_or_si128(
        _mm_cmpeq_epi16(_mm_and_si128(hd, exp), exp),
        _mm_cmpeq_epi16(_mm_and_si128(hm, exp), exp),
    );
    if bad || _mm256_movemask_ps(id_inf) != 0 || _mm_movemask_epi8(h_inf) != 0 {
        return false;
    }
    let mut hs = [[0u16; 8]; 2];
    // SAFETY: `hs` holds the eight 16-bit lanes of `hd` and of `hm`; unaligned stores.
    unsafe {
        _mm_storeu_si128(hs[0].as_mut_ptr().cast(), hd);
        _mm_storeu_si128(hs[1].as_mut_ptr().cast(), hm);
    }
    let stride = if AFFINE { 20 } else { 18 };
    for (b, (v, _)) in blocks.into_iter().enumerate() {
        let lane = _mm256_set1_epi32(b as i32);
        let idb = _mm256_permutevar8x32_ps(id, lane);
        let (mul_add, offset) = if AFFINE {
            (_mm256_permutevar8x32_ps(lo, lane), _mm256_set1_ps(0.5))
        } else {
            (_mm256_setzero_ps(), _mm256_set1_ps(8.5))
        };
        let q = lanes!(k in [0, 1, 2, 3] => {
            // The portable arithmetic, unfused: `(x - min) × id + 0.5` or `x × id + 8.5`,
            // clamped to [0, 15] and truncated.
            let x = if AFFINE { _mm256_sub_ps(v[k], mul_add) } else { v[k] };
            let t = _mm256_add_ps(_mm256_mul_ps(x, idb), offset);
            let t = _mm256_max_ps(_mm256_min_ps(_mm256_set1_ps(15.0), t), _mm256_setzero_ps());
            _mm256_cvttps_epi32(t)
        });
        let low = _mm256_packs_epi32(q[0], q[1]);
        let high = _mm256_packs_epi32(q[2], q[3]);
        // 16-bit lanes, per 128-bit half: elements 0-3, 8-11 | 4-7, 12-15 (and +16 in `high`).
        let pairs = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_or_si256(low, _mm256_slli_epi16::<4>(high)));
        let qs = _mm_packus_epi16(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256::<1>(pairs));
        // SAFETY: the caller's contract: block `b`'s `stride` bytes start at `o + stride × b`.
        unsafe {
            let o = o.add(stride * b);
            core::ptr::copy_nonoverlapping(hs[0][b].to_le_bytes().as_ptr(), o, 2);
            if AFFINE {
                core::ptr::copy_nonoverlapping(hs[1][b].to_le_bytes().as_ptr(), o.add(2), 2);
            }
            _mm_storeu_si128(o.add(stride - 16).cast(), qs);
        }
    }
    true
}
