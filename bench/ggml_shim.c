// The functions of ggml that lowbit-bench calls, in one table per build of ggml's CPU code.
//
// build.rs compiles this file with -DLOWBIT_GGML_BUILD=generic and =native beside ggml's own
// files (taken from LOWBIT_GGML_DIR; nothing of ggml is in this repository) and keeps one
// symbol of each build global: lowbit_ggml_generic() and lowbit_ggml_native(). Their layout is
// `Fns` in src/ggml.rs.

#include "ggml-quants.h"   // ggml-base: quantize_row_*_ref, dequantize_row_*
#include "ggml-cpu.h"      // ggml_cpu_fp32_to_fp16 and the other row conversions
#include "quants.h"        // ggml-cpu: quantize_row_*, the CPU backend's from_float
#include "simd-mappings.h" // ggml_table_f32_f16

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define EXPORT_NAME CAT(lowbit_ggml_, LOWBIT_GGML_BUILD)

typedef void (*quantize_fn)(const float *, void *, int64_t);
typedef void (*dequantize_fn)(const void *, float *, int64_t);
typedef void (*to_half_fn)(const float *, uint16_t *, int64_t);
typedef void (*from_half_fn)(const uint16_t *, float *, int64_t);

struct lowbit_ggml_fns {
    quantize_fn from_float_q8_0, from_float_q4_0, from_float_q4_K, from_float_q6_K;
    quantize_fn ref_q8_0, ref_q4_0, ref_q4_1, ref_q4_K, ref_q6_K;
    dequantize_fn to_float_q8_0, to_float_q4_0, to_float_q4_1, to_float_q4_K, to_float_q6_K;
    to_half_fn fp32_to_fp16, fp32_to_bf16;
    from_half_fn fp16_to_fp32, bf16_to_fp32;
};

// ggml's functions take typed block pointers; these wrappers give them the table's types.
#define DEQ(t) static void deq_##t(const void *x, float *y, int64_t k) { dequantize_row_##t(x, y, k); }
DEQ(q8_0) DEQ(q4_0) DEQ(q4_1) DEQ(q4_K) DEQ(q6_K)
#define REF(t) static void ref_##t(const float *x, void *y, int64_t k) { quantize_row_##t##_ref(x, y, k); }
REF(q8_0) REF(q4_0) REF(q4_1) REF(q4_K) REF(q6_K)
static void to_bf16(const float *x, uint16_t *y, int64_t n) { ggml_cpu_fp32_to_bf16(x, (ggml_bf16_t *)y, n); }
static void from_bf16(const uint16_t *x, float *y, int64_t n) { ggml_cpu_bf16_to_fp32((const ggml_bf16_t *)x, y, n); }

static const struct lowbit_ggml_fns fns = {
    quantize_row_q8_0, quantize_row_q4_0, quantize_row_q4_K, quantize_row_q6_K,
    ref_q8_0, ref_q4_0, ref_q4_1, ref_q4_K, ref_q6_K,
    deq_q8_0, deq_q4_0, deq_q4_1, deq_q4_K, deq_q6_K,
    ggml_cpu_fp32_to_fp16, to_bf16,
    ggml_cpu_fp16_to_fp32, from_bf16,
};

// The table, after filling ggml_table_f32_f16 as ggml_cpu_init() does (the generic build's
// ggml_cpu_fp16_to_fp32 reads it). Not thread-safe: the Rust side calls it once.
__attribute__((visibility("default"))) const struct lowbit_ggml_fns *EXPORT_NAME(void) {
    for (int i = 0; i < (1 << 16); ++i) {
        union { uint16_t u16; ggml_fp16_t fp16; } u = {(uint16_t)i};
        ggml_table_f32_f16[i] = GGML_COMPUTE_FP16_TO_FP32(u.fp16);
    }
    return &fns;
}
