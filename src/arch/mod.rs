//! Runtime-selected fast paths. All `unsafe` of the crate lives here.
//!
//! Each entry point checks the CPU once per call (the standard library caches the CPUID
//! answer) and runs the same portable loop compiled for a wider instruction set, so the
//! results are bit-identical to the portable path by construction; `tests/all/simd_parity.rs`
//! checks it anyway. One exception: the 16-level codebook quantizer (NF4/FP4) has
//! hand-written AVX-512 and AVX2 kernels (`x86::avx512::Pairs15`, `x86::Pairs15`, a
//! branch-free binary search over the bounds); their portable twin is
//! [`portable::quantize_pairs15`], and `quant::codebook::quantizer`'s tests `simd_parity` and
//! `every_kernel_matches_portable` check each bit for bit, exact ties, subnormals, every tail
//! length and the non-finite errors included. The histogram counting kernel
//! (`x86::count_values_avx2`) is hand-written too; its portable twin is
//! [`portable::count_values`], whose tests check the two. ggml's `Q8_0` has a hand-written
//! AVX2 + F16C kernel ([`absmax_i8_f16_blocks`]); `compat::ggml`'s tests check it against the
//! block-by-block quantizer, ties and special blocks included. The FP16 and BF16 slice
//! conversions have hand-written AVX-512 (F, BW, VL) kernels (`x86::avx512`, picked before the
//! F16C/AVX2 ones: [`encode_fp16`], [`decode_fp16`], [`encode_bf16_avx512`],
//! [`decode_bf16_avx512`]); `format::slice`'s unit tests call each kernel directly against the
//! portable loops, on every FP16/BF16 code and on random, tie and boundary inputs at every
//! length up to 200.
//!
//! The kernels take plain slices and tables ([`Levels16`]) and return plain data: this module is the lowest layer and knows nothing of the modules that call
//! it.
#![allow(unsafe_code)]

pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use portable::Levels16;

/// Whether the CPU has AVX-512 F, BW and VL, which the AVX-512 kernels need.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
}

/// Encode `src` to IEEE binary16 with the widest conversion instruction the CPU has
/// ([`encode_fp16_avx512`], else [`encode_fp16_f16c`]) and say whether it did (`false`: the
/// caller runs its portable loop). `exact` encodes what the instructions would get wrong (NaNs,
/// whose payload they quiet), so the result equals `exact` on the whole slice.
#[inline]
pub(crate) fn encode_fp16(src: &[f32], dst: &mut [u16], exact: impl Fn(&[f32], &mut [u16])) -> bool {
    encode_fp16_avx512(src, dst, &exact) || encode_fp16_f16c(src, dst, exact)
}

/// Decode IEEE binary16 with the widest conversion instruction the CPU has
/// ([`decode_fp16_avx512`], else [`decode_fp16_f16c`]) and say whether it did. `exact`
/// decodes what the instructions would get wrong (NaN codes), so the result equals `exact` on
/// the whole slice.
#[inline]
pub(crate) fn decode_fp16(src: &[u16], dst: &mut [f32], exact: impl Fn(&[u16], &mut [f32])) -> bool {
    decode_fp16_avx512(src, dst, &exact) || decode_fp16_f16c(src, dst, exact)
}

/// Encode `src` to IEEE binary16 with AVX-512's 16-lane `vcvtps2ph`, if the CPU has AVX-512
/// (F, BW, VL), and say whether it did. Each NaN lane is redone by `exact` (the instruction
/// quiets payloads), so the result equals `exact` on the whole slice.
#[inline]
pub(crate) fn encode_fp16_avx512(src: &[f32], dst: &mut [u16], exact: impl Fn(&[f32], &mut [u16])) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        unsafe { x86::avx512::encode_fp16(src, dst, exact) };
        return true;
    }
    let _ = (src, dst, exact);
    false
}

/// Decode IEEE binary16 with AVX-512's 16-lane `vcvtph2ps`, if the CPU has AVX-512 (F, BW,
/// VL), and say whether it did. Each NaN lane is redone by `exact` (the instruction quiets a
/// signalling NaN), so the result equals `exact` on the whole slice.
#[inline]
pub(crate) fn decode_fp16_avx512(src: &[u16], dst: &mut [f32], exact: impl Fn(&[u16], &mut [f32])) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        unsafe { x86::avx512::decode_fp16(src, dst, exact) };
        return true;
    }
    let _ = (src, dst, exact);
    false
}

/// Encode `src` to IEEE binary16 with F16C, if the CPU has it, and say whether it did.
/// `exact` encodes what the instruction would get wrong (chunks holding a NaN, whose payload
/// it quiets) and the tail, so the result equals `exact` on the whole slice.
#[inline]
pub(crate) fn encode_fp16_f16c(src: &[f32], dst: &mut [u16], exact: impl Fn(&[f32], &mut [u16])) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU supports F16C and AVX, checked on the line above.
        unsafe { x86::encode_fp16_f16c(src, dst, exact) };
        return true;
    }
    let _ = (src, dst, exact);
    false
}

/// Decode IEEE binary16 with F16C, if the CPU has it, and say whether it did. `exact`
/// decodes what the instruction would get wrong (chunks holding a NaN) and the tail, so the
/// result equals `exact` on the whole slice.
#[inline]
pub(crate) fn decode_fp16_f16c(src: &[u16], dst: &mut [f32], exact: impl Fn(&[u16], &mut [f32])) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports F16C and AVX2, checked on the line above.
        unsafe { x86::decode_fp16_f16c(src, dst, exact) };
        return true;
    }
    let _ = (src, dst, exact);
    false
}

/// Encode `src` to BF16 with AVX-512 (F, BW, VL) integer code, if the CPU has it, and say
/// whether it did. The codes: `(bits + 0x7fff + ((bits >> 16) & 1)) >> 16` (nearest even, an
/// overflow carrying into infinity), and `sign | 0x7fc0` for a NaN — the caller's portable loop
/// bit for bit.
#[inline]
pub(crate) fn encode_bf16_avx512(src: &[f32], dst: &mut [u16]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        unsafe { x86::avx512::encode_bf16(src, dst) };
        return true;
    }
    let _ = (src, dst);
    false
}

/// Decode BF16 (`code << 16` as `f32` bits, NaNs kept) with AVX-512 (F, BW, VL), if the CPU has
/// it, and say whether it did.
#[inline]
pub(crate) fn decode_bf16_avx512(src: &[u16], dst: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        unsafe { x86::avx512::decode_bf16(src, dst) };
        return true;
    }
    let _ = (src, dst);
    false
}

/// Absmax int8 blocks of 32 values with a binary16 scale, written as 34-byte records (the
/// scale's two little-endian bytes, then 32 codes): ggml's `Q8_0`. `d = amax / 127`,
/// `id = 1 / d` (0 for `d == 0`), codes `roundf(x * id)` (half away from zero), scale `d`
/// rounded to nearest even. Returns how many leading blocks it wrote — it stops before the
/// first block the caller must do itself: one holding a NaN or infinity, or whose scale
/// overflows binary16 or has an infinite inverse — or `None` when the CPU lacks AVX2 and F16C.
#[inline]
pub(crate) fn absmax_i8_f16_blocks(x: &[f32], out: &mut [u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU supports AVX2 and F16C, checked on the line above.
        return Some(unsafe { x86::absmax_i8_f16_blocks(x, out) });
    }
    let _ = (x, out);
    None
}

/// Dequantize ggml `Q8_0` records (34 bytes: a little-endian binary16 scale, 32 `i8` codes)
/// into `out` with AVX-512 (F, BW, VL), if the CPU has it, and say whether it did: element `j`
/// of a record is `f32::from(code[j]) * scale(bits)`, bit for bit the portable loop with the
/// same `scale`. Writes `min(records.len() / 34, out.len() / 32)` records.
#[inline]
pub(crate) fn dequantize_i8_f16_blocks_avx512(records: &[u8], out: &mut [f32], scale: impl Fn(u16) -> f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        unsafe { x86::avx512::dequantize_i8_f16_blocks(records, out, scale) };
        return true;
    }
    let _ = (records, out, scale);
    false
}

/// Quantize ggml `Q4_0` (18-byte records: binary16 `d`, 16 code bytes) or, `affine`, `Q4_1`
/// (20 bytes: `d`, `m`, codes) blocks of 32 `f32` with AVX2 and F16C, bit for bit ggml's
/// reference quantizer as the portable loop computes it (`d = max / -8` with `max` the first
/// element of largest magnitude, or `d = (max - min) / 15`, `m = min`; inverse `1 / d`, or 0
/// for `d == 0`; codes `x × id + 8.5` or `(x - min) × id + 0.5`, unfused, clamped to
/// [0, 15] and truncated; halves rounded to nearest even). Eight blocks a step: returns how
/// many leading blocks it wrote, a multiple of 8, stopping before a step holding a block the
/// caller must do itself (a NaN or an infinity, a half that overflows, an infinite inverse,
/// a `Q4_1` extreme equal to zero) or fewer than 8 blocks; `None` when the CPU lacks AVX2
/// or F16C.
#[inline]
pub(crate) fn quantize_u4_blocks(x: &[f32], out: &mut [u8], affine: bool) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU supports AVX2 and F16C, checked on the line above.
        return Some(unsafe {
            if affine {
                x86::nibbles::quantize_u4_blocks::<true>(x, out)
            } else {
                x86::nibbles::quantize_u4_blocks::<false>(x, out)
            }
        });
    }
    let _ = (x, out, affine);
    None
}

/// Dequantize ggml's 4-bit records (`stride` bytes each, ending with 16 code bytes: element
/// `j` in the low nibble of byte `j`, element `j + 16` in its high nibble) into `out` with AVX2,
/// if the CPU has it, and say whether it did. `scale(record)` gives the record's `(d, m)`;
/// element `j` is `(q - 8) × d` (`affine == false`, ggml's `Q4_0`) or `q × d + m` (`Q4_1`),
/// each product rounded before the add, bit for bit the portable loop. Writes
/// `min(records.len() / stride, out.len() / 32)` records.
#[inline]
pub(crate) fn dequantize_u4_blocks(
    records: &[u8],
    stride: usize,
    affine: bool,
    out: &mut [f32],
    scale: impl Fn(&[u8]) -> (f32, f32),
) -> bool {
    assert!(stride >= 16, "a 4-bit record holds 16 code bytes");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked on the line above.
        unsafe {
            if affine {
                x86::nibbles::dequantize_u4_blocks::<true>(records, stride, out, scale);
            } else {
                x86::nibbles::dequantize_u4_blocks::<false>(records, stride, out, scale);
            }
        }
        return true;
    }
    let _ = (records, affine, out, scale);
    false
}

/// Quantize blocks of a 16-level codebook (see [`portable::quantize_blocks15`]).
#[inline]
pub(crate) fn quantize_blocks15(
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the line above.
        return unsafe { x86::avx512::quantize_blocks15(t, x, block, packed, absmax) };
    }
    quantize_blocks15_avx2(t, x, block, packed, absmax)
}

/// [`quantize_blocks15`] without its AVX-512 kernel: the AVX2 one if the CPU has AVX2, else the
/// portable loop (the parity tests call it directly).
#[inline]
pub(crate) fn quantize_blocks15_avx2(
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked on the line above.
        return unsafe { x86::quantize_blocks15_avx2(t, x, block, packed, absmax) };
    }
    portable::quantize_blocks15(t, x, block, packed, absmax)
}

/// Dequantize packed 4-bit blocks (see [`portable::dequantize_blocks`]).
#[inline]
pub(crate) fn dequantize_blocks(table: &[[f32; 2]; 256], packed: &[u8], absmax: &[f32], block: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked on the line above.
        unsafe { x86::dequantize_blocks_avx2(table, packed, absmax, block, out) };
        return;
    }
    portable::dequantize_blocks(table, packed, absmax, block, out);
}

/// Count histogram values into their fine bins (see [`portable::count_values`]).
#[inline]
pub(crate) fn count_values(
    index: &[u32; 512],
    words: &mut [[u32; 2]],
    data: &[f32],
    fine: u32,
    maxima: &mut [u32; 2],
) -> Result<(), usize> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked on the line above.
        return unsafe { x86::count_values_avx2(index, words, data, fine, maxima) };
    }
    portable::count_values(index, words, data, fine, maxima)
}

/// A computation to run with the widest instruction set the CPU has. `run` must be
/// `#[inline(always)]`, and so must everything hot it calls, so that it is compiled again
/// inside the wider entry point.
pub(crate) trait Job {
    /// What the job returns.
    type Out;
    /// Do it.
    fn run(self) -> Self::Out;
}

/// Run `job` compiled for AVX-512 (F, BW, VL) when the CPU has it, else as [`run`]. For the
/// loops measured faster that way (the slice encoders of the 8-bit and smaller formats); the
/// same Rust, so the same bits.
#[inline]
pub(crate) fn run_wide<J: Job>(job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
    {
        // SAFETY: the CPU supports AVX-512 F, BW and VL, checked on the lines above.
        return unsafe { x86::run_avx512(job) };
    }
    run(job)
}

/// Run `job` compiled for AVX2 when the CPU has it, else the portable build. Rust does not
/// contract `a * b + c` into a fused multiply-add, so both builds compute the same bits.
///
/// An AVX-512 (F, BW, VL) build of the same loops was measured and not kept: it made int8
/// dequantization 1.4× faster and int4 dequantization 1.6× slower on the development machine.
#[inline]
pub(crate) fn run<J: Job>(job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked on the line above.
        return unsafe { x86::run_avx2(job) };
    }
    job.run()
}
