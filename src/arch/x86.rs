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
#[target_feature(enable = "avx2")]
pub(super) unsafe fn run_avx2<J: super::Job>(job: J) -> J::Out {
    job.run()
}
