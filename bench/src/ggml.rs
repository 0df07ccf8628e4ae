//! ggml's own C functions, the optional peer of the benchmarks (`cfg(ggml)`: built by
//! `build.rs` when `LOWBIT_GGML_DIR` names a ggml source tree).
//!
//! [`Ggml::generic`] and [`Ggml::native`] are ggml's CPU code compiled without architecture
//! flags and with `-march=native`; [`reference`] is ggml-base's `ggml-quants.c`, compiled
//! without architecture flags as ggml's CMake does. The blocks are lowbit's
//! [`lowbit::compat::ggml`] structs, which have ggml's layout. Every function panics if the
//! lengths do not match.

use std::ffi::c_void;
use std::sync::OnceLock;

use lowbit::compat::ggml::{BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ6_K, BlockQ8_0, QK, QK_K};

type Quantize = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type Dequantize = unsafe extern "C" fn(*const c_void, *mut f32, i64);
type ToHalf = unsafe extern "C" fn(*const f32, *mut u16, i64);
type FromHalf = unsafe extern "C" fn(*const u16, *mut f32, i64);

/// `struct lowbit_ggml_fns` of `ggml_shim.c`.
#[repr(C)]
struct Fns {
    from_float_q8_0: Quantize,
    from_float_q4_0: Quantize,
    from_float_q4_k: Quantize,
    from_float_q6_k: Quantize,
    ref_q8_0: Quantize,
    ref_q4_0: Quantize,
    ref_q4_1: Quantize,
    ref_q4_k: Quantize,
    ref_q6_k: Quantize,
    to_float_q8_0: Dequantize,
    to_float_q4_0: Dequantize,
    to_float_q4_1: Dequantize,
    to_float_q4_k: Dequantize,
    to_float_q6_k: Dequantize,
    fp32_to_fp16: ToHalf,
    fp32_to_bf16: ToHalf,
    fp16_to_fp32: FromHalf,
    bf16_to_fp32: FromHalf,
}

extern "C" {
    fn lowbit_ggml_generic() -> *const Fns;
    fn lowbit_ggml_native() -> *const Fns;
}

/// One build of ggml's CPU backend code (`ggml-cpu/`).
pub struct Ggml {
    /// `"generic"` or `"native"`.
    pub name: &'static str,
    f: &'static Fns,
}

// SAFETY (of every call below): the table's functions are ggml's, which read `k` values and
// write `k / block` blocks (or `k` halves), and the lengths are checked before each call.
fn quantize<B>(f: Quantize, x: &[f32], out: &mut [B], block: usize) {
    assert_eq!(x.len(), out.len() * block, "ggml quantize: lengths");
    unsafe { f(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64) }
}

fn dequantize<B>(f: Dequantize, blocks: &[B], y: &mut [f32], block: usize) {
    assert_eq!(y.len(), blocks.len() * block, "ggml dequantize: lengths");
    unsafe { f(blocks.as_ptr().cast(), y.as_mut_ptr(), y.len() as i64) }
}

fn to_half(f: ToHalf, x: &[f32], y: &mut [u16]) {
    assert_eq!(x.len(), y.len(), "ggml conversion: lengths");
    unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len() as i64) }
}

fn from_half(f: FromHalf, x: &[u16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "ggml conversion: lengths");
    unsafe { f(x.as_ptr(), y.as_mut_ptr(), x.len() as i64) }
}

impl Ggml {
    /// ggml's CPU code compiled without architecture flags (on x86-64 the SSE2 baseline: the
    /// `from_float` quantizers are the reference ones, the conversions scalar).
    pub fn generic() -> &'static Ggml {
        static G: OnceLock<Ggml> = OnceLock::new();
        // SAFETY: the shim's table is static; the call also fills ggml's fp16 table, once.
        G.get_or_init(|| Ggml {
            name: "generic",
            f: unsafe { &*lowbit_ggml_generic() },
        })
    }

    /// ggml's CPU code compiled with `-march=native`, as a llama.cpp build on this machine.
    pub fn native() -> &'static Ggml {
        static G: OnceLock<Ggml> = OnceLock::new();
        // SAFETY: as in `generic`.
        G.get_or_init(|| Ggml {
            name: "native",
            f: unsafe { &*lowbit_ggml_native() },
        })
    }

    /// Both builds: generic, then native.
    pub fn both() -> [&'static Ggml; 2] {
        [Self::generic(), Self::native()]
    }

    /// `quantize_row_q8_0`: the CPU backend's `from_float` for Q8_0 (SIMD; not always the
    /// reference bytes).
    pub fn quantize_q8_0(&self, x: &[f32], out: &mut [BlockQ8_0]) {
        quantize(self.f.from_float_q8_0, x, out, QK)
    }

    /// `quantize_row_q4_0` (the CPU backend's `from_float`, which calls the reference).
    pub fn quantize_q4_0(&self, x: &[f32], out: &mut [BlockQ4_0]) {
        quantize(self.f.from_float_q4_0, x, out, QK)
    }

    /// `quantize_row_q4_K` (calls the reference).
    pub fn quantize_q4_k(&self, x: &[f32], out: &mut [BlockQ4_K]) {
        quantize(self.f.from_float_q4_k, x, out, QK_K)
    }

    /// `quantize_row_q6_K` (calls the reference).
    pub fn quantize_q6_k(&self, x: &[f32], out: &mut [BlockQ6_K]) {
        quantize(self.f.from_float_q6_k, x, out, QK_K)
    }

    /// `ggml_cpu_fp32_to_fp16`.
    pub fn fp32_to_fp16(&self, x: &[f32], y: &mut [u16]) {
        to_half(self.f.fp32_to_fp16, x, y)
    }

    /// `ggml_cpu_fp16_to_fp32`.
    pub fn fp16_to_fp32(&self, x: &[u16], y: &mut [f32]) {
        from_half(self.f.fp16_to_fp32, x, y)
    }

    /// `ggml_cpu_fp32_to_bf16`.
    pub fn fp32_to_bf16(&self, x: &[f32], y: &mut [u16]) {
        to_half(self.f.fp32_to_bf16, x, y)
    }

    /// `ggml_cpu_bf16_to_fp32`.
    pub fn bf16_to_fp32(&self, x: &[u16], y: &mut [f32]) {
        from_half(self.f.bf16_to_fp32, x, y)
    }
}

/// ggml-base's reference quantizers `quantize_row_*_ref` (what `llama-quantize` writes without
/// an importance matrix) and its dequantizers `dequantize_row_*` (the type traits' `to_float`),
/// compiled without architecture flags.
pub mod reference {
    use super::*;

    fn f() -> &'static Fns {
        Ggml::generic().f
    }

    /// `quantize_row_q8_0_ref`.
    pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        quantize(f().ref_q8_0, x, out, QK)
    }

    /// `quantize_row_q4_0_ref`.
    pub fn quantize_q4_0(x: &[f32], out: &mut [BlockQ4_0]) {
        quantize(f().ref_q4_0, x, out, QK)
    }

    /// `quantize_row_q4_1_ref`.
    pub fn quantize_q4_1(x: &[f32], out: &mut [BlockQ4_1]) {
        quantize(f().ref_q4_1, x, out, QK)
    }

    /// `quantize_row_q4_K_ref`.
    pub fn quantize_q4_k(x: &[f32], out: &mut [BlockQ4_K]) {
        quantize(f().ref_q4_k, x, out, QK_K)
    }

    /// `quantize_row_q6_K_ref`.
    pub fn quantize_q6_k(x: &[f32], out: &mut [BlockQ6_K]) {
        quantize(f().ref_q6_k, x, out, QK_K)
    }

    /// `dequantize_row_q8_0`.
    pub fn dequantize_q8_0(blocks: &[BlockQ8_0], y: &mut [f32]) {
        dequantize(f().to_float_q8_0, blocks, y, QK)
    }

    /// `dequantize_row_q4_0`.
    pub fn dequantize_q4_0(blocks: &[BlockQ4_0], y: &mut [f32]) {
        dequantize(f().to_float_q4_0, blocks, y, QK)
    }

    /// `dequantize_row_q4_1`.
    pub fn dequantize_q4_1(blocks: &[BlockQ4_1], y: &mut [f32]) {
        dequantize(f().to_float_q4_1, blocks, y, QK)
    }

    /// `dequantize_row_q4_K`.
    pub fn dequantize_q4_k(blocks: &[BlockQ4_K], y: &mut [f32]) {
        dequantize(f().to_float_q4_k, blocks, y, QK_K)
    }

    /// `dequantize_row_q6_K`.
    pub fn dequantize_q6_k(blocks: &[BlockQ6_K], y: &mut [f32]) {
        dequantize(f().to_float_q6_k, blocks, y, QK_K)
    }
}
