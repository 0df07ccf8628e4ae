//! x86-64 versions of the portable loops, compiled with AVX2 enabled so LLVM vectorises them
//! eight lanes wide.

use super::portable::{self, Levels16};

/// `[e(i0), e(i1), ...]` written out: an array built by `map` or `from_fn` calls its closure
/// through a function compiled without the kernel's target features, so the vectors would go
/// through memory at every call instead of staying in registers.
macro_rules! lanes {
    ($k:ident in [$($i:expr),* $(,)?] => $e:expr) => {
        [$({
            let $k = $i;
            $e
        }),*]
    };
}

pub(super) mod avx512;
pub(super) mod nibbles;

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_blocks15_avx2(
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    portable::quantize_blocks15_with(&Pairs15::new(t), t, x, block, packed, absmax)
}

struct Pairs15 {
    bv: [core::arch::x86_64::__m256; 15],
    t4: core::arch::x86_64::__m256,
    table: Option<core::arch::x86_64::__m256i>,
    pick: core::arch::x86_64::__m256i,
}

impl portable::PairKernel for Pairs15 {
    #[inline(always)]
    fn pairs(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
        // SAFETY: a `Pairs15` is only built inside `quantize_blocks15_avx2`, which runs on
        // CPUs with AVX2 (its own contract).
        unsafe { self.run(t, x, c, out) }
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32]) {
        prefetch_t0(x);
    }
}

/// Prefetch every cache line of `x` into all cache levels (a hint: it never faults and changes
/// no result).
#[inline(always)]
pub(super) fn prefetch_t0(x: &[f32]) {
    use core::arch::x86_64::*;
    for line in x.chunks(16) {
        // SAFETY: SSE is part of x86-64; a prefetch reads nothing architecturally.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

impl Pairs15 {
    /// The constants, built once per tensor.
    #[target_feature(enable = "avx2")]
    fn new(t: &Levels16) -> Self {
        use core::arch::x86_64::*;
        let b = &t.bounds;
        let table = t.map.map(|m| {
            let mut t = [0i8; 32];
            for (i, &v) in m.iter().enumerate() {
                t[i] = v as i8;
                t[i + 16] = v as i8;
            }
            _mm256_setr_epi8(
                t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15],
                t[16], t[17], t[18], t[19], t[20], t[21], t[22], t[23], t[24], t[25], t[26], t[27], t[28], t[29],
                t[30], t[31],
            )
        });
        Self {
            bv: core::array::from_fn(|i| _mm256_set1_ps(b[i])),
            t4: _mm256_setr_ps(b[0], b[2], b[4], b[6], b[8], b[10], b[12], b[14]),
            table,
            // Dwords p0 p4 p1 p5 | p2 p6 p3 p7: byte 0 of each, as p0 p1 p4 p5 | p2 p3 p6 p7.
            pick: _mm256_setr_epi8(
                0, 8, 4, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, 4, 12, -1, -1, -1, -1, -1, -1, -1,
                -1, -1, -1, -1, -1,
            ),
        }
    }

    /// `#{i : y > bound[i]}` per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn count(&self, y: core::arch::x86_64::__m256) -> core::arch::x86_64::__m256i {
        use core::arch::x86_64::*;
        let bv = &self.bv;
        let gt = |b: __m256| _mm256_cmp_ps::<_CMP_GT_OQ>(y, b);
        let bit = |m: __m256, k: i32| _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(k));
        let m1 = gt(bv[7]);
        let m2 = gt(_mm256_blendv_ps(bv[3], bv[11], m1));
        let m3 = gt(_mm256_blendv_ps(
            _mm256_blendv_ps(bv[1], bv[9], m1),
            _mm256_blendv_ps(bv[5], bv[13], m1),
            m2,
        ));
        let idx = _mm256_add_epi32(_mm256_add_epi32(bit(m1, 8), bit(m2, 4)), bit(m3, 2));
        let m4 = gt(_mm256_permutevar8x32_ps(self.t4, _mm256_srli_epi32::<1>(idx)));
        _mm256_add_epi32(idx, bit(m4, 1))
    }

    /// The comparison count of [`portable::quantize_pairs15`], 16 elements a step. For
    /// each lane, `#{i : y > bound[i]}` over the 15 sorted bounds is found by a branch-free
    /// binary search in four compares (`y > b`, false for NaN as in the portable loop), which
    /// equals the portable loop's count for sorted bounds: the bounds of steps 2 and 3 are
    /// picked with blends by the earlier masks, that of step 4 with one register permute. Then
    /// each 64-bit pair of counts becomes `even << 4 | odd` in place, and a blend, a byte
    /// shuffle and an unpack put the eight bytes in order. Bit-identical to the portable loop
    /// (checked by `quant::codebook::tests::simd_parity`).
    ///
    /// # Safety
    /// The CPU must support AVX2. `x.len() == 2 * out.len()`; `t` is the table `self` was
    /// built from.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
        use core::arch::x86_64::*;
        debug_assert_eq!(x.len(), 2 * out.len());
        let n = (x.len() / 16).min(out.len() / 8);
        let cv = _mm256_set1_ps(c);
        for i in 0..n {
            let xs = &x[16 * i..16 * i + 16];
            let o = &mut out[8 * i..8 * i + 8];
            // SAFETY: `xs` holds 16 f32 and `o` 8 bytes; loads and stores are unaligned.
            unsafe {
                let a = _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr()), cv);
                let b = _mm256_mul_ps(_mm256_loadu_ps(xs.as_ptr().add(8)), cv);
                let mut ca = self.count(a);
                let mut cb = self.count(b);
                if let Some(tv) = self.table {
                    // Byte 0 of each dword becomes map[count]; the other bytes are never used.
                    ca = _mm256_shuffle_epi8(tv, ca);
                    cb = _mm256_shuffle_epi8(tv, cb);
                }
                // Low dword of each qword: byte 0 = even << 4 | odd (p0..p3 from a, p4..p7 from b).
                let va = _mm256_or_si256(_mm256_slli_epi32::<4>(ca), _mm256_srli_epi64::<32>(ca));
                let vb = _mm256_or_si256(_mm256_slli_epi32::<4>(cb), _mm256_srli_epi64::<32>(cb));
                let w = _mm256_blend_epi32::<0b1010_1010>(va, _mm256_slli_epi64::<32>(vb));
                let w = _mm256_shuffle_epi8(w, self.pick);
                let r = _mm_unpacklo_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
                _mm_storel_epi64(o.as_mut_ptr().cast(), r);
            }
        }
        portable::quantize_pairs15(t, &x[16 * n..], c, &mut out[8 * n..]);
    }
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
    portable::dequantize_blocks(table, packed, absmax, block, out);
}

/// See [`super::absmax_i8_f16_blocks`]. `roundf(t)` is computed as `t + copysign(0.5 - 2^-25,
/// t)` truncated, which is exact for `|t| < 2^22` (here `|t| <= 127`): the sum reaches the
/// next integer exactly when the fraction of `|t|` is at least one half (at one half by the
/// tie to even), so truncation rounds half away from zero. The saturating packs are exact
/// because every code is within ±127.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn absmax_i8_f16_blocks(x: &[f32], out: &mut [u8]) -> usize {
    let n = (x.len() / 32).min(out.len() / 34);
    let mut i = 0;
    // Eight blocks a step: their absolute maxima gather into one vector, so the scales, their
    // inverses, their binary16 codes and the checks for blocks to hand back are one
    // instruction each instead of eight scalar chains.
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, so the 256 f32 at `x + 32i` and the 272 bytes at `out + 34i`
        // are in bounds.
        let ok = unsafe { eight_blocks(x.as_ptr().add(32 * i), out.as_mut_ptr().add(34 * i)) };
        if !ok {
            break;
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`, so the 32 f32 at `x + 32i` and the 34 bytes at `out + 34i` are in
        // bounds.
        if !unsafe { one_block(x.as_ptr().add(32 * i), out.as_mut_ptr().add(34 * i)) } {
            return i;
        }
        i += 1;
    }
    n
}

/// The 32 codes of a `Q8_0` block with inverse scale `id`, in order.
#[inline]
#[target_feature(enable = "avx2")]
fn q8_codes(v: [core::arch::x86_64::__m256; 4], id: core::arch::x86_64::__m256) -> core::arch::x86_64::__m256i {
    use core::arch::x86_64::*;
    let below_half = _mm256_set1_ps(0.499_999_97);
    let sign = _mm256_set1_ps(-0.0);
    let q = lanes!(k in [0, 1, 2, 3] => {
        let t = _mm256_mul_ps(v[k], id);
        let s = _mm256_add_ps(t, _mm256_or_ps(_mm256_and_ps(t, sign), below_half));
        _mm256_cvttps_epi32(s)
    });
    let codes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_permutevar8x32_epi32(codes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// The four vectors of a block and the largest magnitude's bits in each lane position
/// (compared as integers: NaNs order above infinity, so one test finds both).
///
/// # Safety
/// `p` must point to 32 readable f32.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q8_load(p: *const f32) -> ([core::arch::x86_64::__m256; 4], core::arch::x86_64::__m256i) {
    use core::arch::x86_64::*;
    // SAFETY: the caller's contract; the loads are unaligned.
    let v = unsafe { lanes!(k in [0, 8, 16, 24] => _mm256_loadu_ps(p.add(k))) };
    let m = lanes!(k in [0, 1, 2, 3] => _mm256_and_si256(_mm256_castps_si256(v[k]), _mm256_set1_epi32(0x7fff_ffff)));
    (
        v,
        _mm256_max_epu32(_mm256_max_epu32(m[0], m[1]), _mm256_max_epu32(m[2], m[3])),
    )
}

/// Lane `b` of the result is `f` folded over the eight lanes of `m[b]`: pairs of vectors
/// interleave and fold (32-bit, then 64-bit, then 128-bit halves). `f` must be commutative and
/// associative on the values it meets (max and min are).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn fold8(
    m: [core::arch::x86_64::__m256i; 8],
    f: impl Fn(core::arch::x86_64::__m256i, core::arch::x86_64::__m256i) -> core::arch::x86_64::__m256i,
) -> core::arch::x86_64::__m256i {
    use core::arch::x86_64::*;
    let fold32 = |a, b| f(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    let fold64 = |a, b| f(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    let (p01, p23, p45, p67) = (
        fold32(m[0], m[1]),
        fold32(m[2], m[3]),
        fold32(m[4], m[5]),
        fold32(m[6], m[7]),
    );
    let (q03, q47) = (fold64(p01, p23), fold64(p45, p67));
    f(
        _mm256_permute2x128_si256::<0x20>(q03, q47),
        _mm256_permute2x128_si256::<0x31>(q03, q47),
    )
}

/// One `Q8_0` block at `p` into the 34 bytes at `o`; `false` (nothing written) for a block
/// the caller must do itself.
///
/// # Safety
/// `p` must point to 32 readable f32 and `o` to 34 writable bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn one_block(p: *const f32, o: *mut u8) -> bool {
    use core::arch::x86_64::*;
    // SAFETY: the caller's contract.
    let (v, m) = unsafe { q8_load(p) };
    let m = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm_max_epu32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
    let bits = _mm_cvtsi128_si32(m) as u32;
    if bits >= 0x7f80_0000 {
        return false;
    }
    let d = f32::from_bits(bits) / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let h = _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d))) as u16;
    if id.is_infinite() || h & 0x7c00 == 0x7c00 {
        return false;
    }
    let codes = q8_codes(v, _mm256_set1_ps(id));
    // SAFETY: the caller's contract: 2 bytes of scale, then 32 of codes; unaligned stores.
    unsafe {
        core::ptr::copy_nonoverlapping(h.to_le_bytes().as_ptr(), o, 2);
        _mm256_storeu_si256(o.add(2).cast(), codes);
    }
    true
}

/// Eight `Q8_0` blocks at `p` into the 272 bytes at `o`; `false` (nothing written) when one of
/// them is a block the caller must do itself.
///
/// # Safety
/// `p` must point to 256 readable f32 and `o` to 272 writable bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn eight_blocks(p: *const f32, o: *mut u8) -> bool {
    use core::arch::x86_64::*;
    // SAFETY: the caller's contract: block `b` is the 32 f32 at `p + 32b`.
    let blocks = unsafe { lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => q8_load(p.add(32 * b))) };
    let amax = fold8(lanes!(b in [0, 1, 2, 3, 4, 5, 6, 7] => blocks[b].1), |a, b| {
        _mm256_max_epu32(a, b)
    });
    // The magnitudes' sign bits are clear, so a signed compare orders them.
    let non_finite = _mm256_cmpgt_epi32(amax, _mm256_set1_epi32(0x7f7f_ffff));
    let d = _mm256_div_ps(_mm256_castsi256_ps(amax), _mm256_set1_ps(127.0));
    let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(d, _mm256_setzero_ps());
    let id = _mm256_andnot_ps(zero, _mm256_div_ps(_mm256_set1_ps(1.0), d));
    let id_inf = _mm256_cmp_ps::<_CMP_EQ_OQ>(id, _mm256_set1_ps(f32::INFINITY));
    let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
    let h_inf = _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7c00)), _mm_set1_epi16(0x7c00));
    let bad = _mm256_or_si256(non_finite, _mm256_castps_si256(id_inf));
    if _mm256_movemask_epi8(bad) != 0 || _mm_movemask_epi8(h_inf) != 0 {
        return false;
    }
    let mut hs = [0u16; 8];
    // SAFETY: `hs` holds the eight 16-bit lanes of `h`; unaligned store.
    unsafe { _mm_storeu_si128(hs.as_mut_ptr().cast(), h) };
    for (b, (v, _)) in blocks.into_iter().enumerate() {
        let idb = _mm256_permutevar8x32_ps(id, _mm256_set1_epi32(b as i32));
        let codes = q8_codes(v, idb);
        // SAFETY: the caller's contract: block `b`'s 34 bytes start at `o + 34b`.
        unsafe {
            let o = o.add(34 * b);
            core::ptr::copy_nonoverlapping(hs[b].to_le_bytes().as_ptr(), o, 2);
            _mm256_storeu_si256(o.add(2).cast(), codes);
        }
    }
    true
}

/// f32 → IEEE binary16 with the F16C instruction, eight lanes at a time.
///
/// `vcvtps2ph` rounds to nearest even and handles subnormals and overflow exactly as the
/// portable codec does; only NaNs differ (it quiets them, NumPy's rule keeps the payload as it
/// is), so a chunk holding a NaN is redone by `exact`, the portable codec.
///
/// # Safety
/// The CPU must support F16C (which implies AVX).
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn encode_fp16_f16c(src: &[f32], dst: &mut [u16], exact: impl Fn(&[f32], &mut [u16])) {
    use core::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    // 32 lanes a step: the NaN test of the four vectors folds into one branch.
    let mut chunks_src = src.chunks_exact(32);
    let mut chunks_dst = dst.chunks_exact_mut(32);
    for (s, d) in (&mut chunks_src).zip(&mut chunks_dst) {
        // SAFETY: `s` has exactly 32 f32 and `d` exactly 32 u16, so every load at `s + 8i` and
        // store at `d + 8i` (i < 4) is in bounds; they are unaligned, and the instructions
        // are enabled by this function's target features.
        unsafe {
            let mut unordered = _mm256_setzero_ps();
            for i in 0..4 {
                let v = _mm256_loadu_ps(s.as_ptr().add(8 * i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(d.as_mut_ptr().add(8 * i).cast(), h);
                unordered = _mm256_or_ps(unordered, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            }
            if _mm256_movemask_ps(unordered) != 0 {
                exact(s, d);
            }
        }
    }
    exact(chunks_src.remainder(), chunks_dst.into_remainder());
}

/// Decode IEEE binary16 with F16C, 32 codes a step; a chunk holding a NaN code goes to
/// `exact` (the instruction quiets a signalling NaN, which the portable decode keeps), and so
/// does the tail, so the result equals `exact` on the whole slice.
///
/// # Safety
/// The CPU must support F16C and AVX2.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn decode_fp16_f16c(src: &[u16], dst: &mut [f32], exact: impl Fn(&[u16], &mut [f32])) {
    use core::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let mut chunks_src = src.chunks_exact(32);
    let mut chunks_dst = dst.chunks_exact_mut(32);
    let magnitude = _mm256_set1_epi16(0x7fff);
    let inf = _mm256_set1_epi16(0x7c00);
    for (s, d) in (&mut chunks_src).zip(&mut chunks_dst) {
        // SAFETY: `s` has exactly 32 u16 and `d` exactly 32 f32, so the loads at `s + 16i`
        // (i < 2, 16 codes each), the loads at `s + 8i` and the stores at `d + 8i` (i < 4) are
        // in bounds; they are unaligned, and the instructions are enabled by this function's
        // target features.
        unsafe {
            let a = _mm256_loadu_si256(s.as_ptr().cast());
            let b = _mm256_loadu_si256(s.as_ptr().add(16).cast());
            // A NaN code has a magnitude above 0x7c00 (signed 16-bit compare: magnitudes are
            // at most 0x7fff).
            let nan = _mm256_or_si256(
                _mm256_cmpgt_epi16(_mm256_and_si256(a, magnitude), inf),
                _mm256_cmpgt_epi16(_mm256_and_si256(b, magnitude), inf),
            );
            if _mm256_movemask_epi8(nan) != 0 {
                exact(s, d);
                continue;
            }
            for i in 0..4 {
                let h = _mm_loadu_si128(s.as_ptr().add(8 * i).cast());
                _mm256_storeu_ps(d.as_mut_ptr().add(8 * i), _mm256_cvtph_ps(h));
            }
        }
    }
    exact(chunks_src.remainder(), chunks_dst.into_remainder());
}

/// `portable::count_values` in one pass, eight values a step: the page offsets gathered from
/// `index` (every `bits >> 23` is below 512, so the gather stays inside it), a step with a page
/// missing (or, defensively, a bin out of bounds) handed back before anything of it is counted,
/// the eight extremes words gathered and compared with the new ones 16-bit half by half
/// (`max_epu16`), then the eight counts incremented in scalar code (a bin repeated within the
/// step is incremented twice, as in the portable loop) and, only for the lanes whose extremes
/// grow (rare once a bin has seen a few values), the extremes widened in order, each re-read
/// (so a bin repeated within the step widens by both). Extremes only widen, so a lane that does
/// not grow against the word gathered before the step does not grow against a later one. The
/// maxima are kept per lane and reduced at the end; the input is prefetched 2 KiB ahead (the
/// hardware prefetcher stops at page ends). The tail (fewer than eight values) goes to the
/// portable loop. Same result as the portable loop.
///
/// One pass over the values, instead of a pass computing the bins into a buffer and a second
/// counting them, keeps the memory reads streaming while the counts are updated.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn count_values_avx2(
    index: &[u32; 512],
    words: &mut [[u32; 2]],
    data: &[f32],
    fine: u32,
    maxima: &mut [u32; 2],
) -> Result<(), usize> {
    use core::arch::x86_64::*;
    const AHEAD: usize = 512;
    let n = data.len() / 8 * 8;
    let shift = _mm_cvtsi32_si128((23 - fine) as i32);
    let mask = _mm256_set1_epi32(((1u32 << fine) - 1) as i32);
    let low = _mm256_set1_epi32(((1u32 << (23 - fine)) - 1) as i32);
    let ones16 = _mm256_set1_epi32(0xffff);
    let none = _mm256_set1_epi32(-1);
    let magnitude = _mm256_set1_epi32(0x7fff_ffff);
    let lim = _mm256_set1_epi32(i32::try_from(words.len()).unwrap_or(i32::MAX));
    let mut pos = _mm256_setzero_si256();
    let mut neg = _mm256_setzero_si256();
    // The count is the first u32 of each 8-byte bin, the extremes the second.
    let base = words.as_mut_ptr().cast::<u32>();
    let mut stop = None;
    let mut j = 0;
    while j < n {
        let d = &data[j..j + 8];
        // SAFETY: `d` holds 8 f32 (unaligned load); the prefetch never faults, so an address
        // past the data is harmless (hence `wrapping_add`); the gather reads `index[b >> 23]`,
        // and `b >> 23 < 512` for every u32 `b`.
        let (b, off) = unsafe {
            _mm_prefetch::<_MM_HINT_T0>(d.as_ptr().wrapping_add(AHEAD).cast());
            let b = _mm256_loadu_si256(d.as_ptr().cast());
            (
                b,
                _mm256_i32gather_epi32::<4>(index.as_ptr().cast(), _mm256_srli_epi32::<23>(b)),
            )
        };
        let i = _mm256_add_epi32(off, _mm256_and_si256(_mm256_srl_epi32(b, shift), mask));
        // Every page allocated, and every bin in `0..words.len()` (as i32, so also below 2^31).
        let ok = _mm256_andnot_si256(
            _mm256_or_si256(
                _mm256_cmpeq_epi32(off, none),
                _mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
            ),
            _mm256_cmpgt_epi32(lim, i),
        );
        if _mm256_movemask_ps(_mm256_castsi256_ps(ok)) != 0xff {
            stop = Some(j);
            break;
        }
        // SAFETY: every lane of `i` is in `0..words.len()` (checked above) and below 2^31, so
        // `base + 2i + 1` is `words[i][1]` (the gather scales the signed lane by 8 bytes).
        let e = unsafe { _mm256_i32gather_epi32::<8>(base.add(1).cast_const().cast(), i) };
        let l = _mm256_and_si256(b, low);
        let v = _mm256_or_si256(_mm256_slli_epi32::<16>(l), _mm256_andnot_si256(l, ones16));
        let same = _mm256_cmpeq_epi32(_mm256_max_epu16(e, v), e);
        let grow = !_mm256_movemask_ps(_mm256_castsi256_ps(same)) as u32 & 0xff;
        let sign = _mm256_srai_epi32::<31>(b);
        let a = _mm256_and_si256(b, magnitude);
        pos = _mm256_max_epu32(pos, _mm256_andnot_si256(sign, a));
        neg = _mm256_max_epu32(neg, _mm256_and_si256(sign, a));
        let mut s = [0u32; 8];
        // SAFETY: `s` holds 8 u32 (unaligned store).
        unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), i) };
        for &k in &s {
            // SAFETY: `k < words.len()` (checked above), so `base + 2k` is `words[k][0]`;
            // `base` is the only access to `words` in this function.
            unsafe { *base.add(2 * k as usize) += 1 };
        }
        if grow != 0 {
            let mut w = [0u32; 8];
            // SAFETY: `w` holds 8 u32 (unaligned store).
            unsafe { _mm256_storeu_si256(w.as_mut_ptr().cast(), v) };
            let mut g = grow;
            while g != 0 {
                let q = g.trailing_zeros() as usize;
                g &= g - 1;
                let (k, x) = (s[q] as usize, w[q]);
                // SAFETY: `k < words.len()` (checked above): `base + 2k + 1` is `words[k][1]`.
                unsafe {
                    let e = base.add(2 * k + 1);
                    *e = (*e & 0xffff_0000).max(x & 0xffff_0000) | (*e & 0xffff).max(x & 0xffff);
                }
            }
        }
        j += 8;
    }
    let (mut p, mut q) = ([0u32; 8], [0u32; 8]);
    // SAFETY: `p` and `q` hold 8 u32 each (unaligned stores).
    unsafe {
        _mm256_storeu_si256(p.as_mut_ptr().cast(), pos);
        _mm256_storeu_si256(q.as_mut_ptr().cast(), neg);
    }
    maxima[0] = p.iter().fold(maxima[0], |m, &x| m.max(x));
    maxima[1] = q.iter().fold(maxima[1], |m, &x| m.max(x));
    // The step that stopped (a page missing, or a bin out of bounds: then the portable loop
    // panics) and the tail go to the portable loop.
    let from = stop.unwrap_or(j);
    super::portable::count_values(index, words, &data[from..], fine, maxima).map_err(|at| from + at)
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn run_avx2<J: super::Job>(job: J) -> J::Out {
    job.run()
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn run_avx512<J: super::Job>(job: J) -> J::Out {
    job.run()
}
