//! ggml's tensor types (`enum ggml_type`): ids, names, block sizes and bytes per block.

/// A ggml tensor type: its id in the file, and its block size and bytes per block from
/// ggml's type table (`ggml/src/ggml.c`; the same as gguf-py's `GGML_QUANT_SIZES` except
/// `Q8_1`, where gguf-py says 40 bytes and ggml's `block_q8_1` has 36).
///
/// [`super`] has the blocks of `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0` and the K-quants
/// `Q2_K` to `Q8_K` ([`super::GgmlBlock`]); the GGUF reader and writer (`io::gguf`, feature `gguf`) pass
/// tensors of the other types through as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types, missing_docs)] // ggml's names
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// (type, id, name, block size, type size), in id order.
const TYPES: [(GgmlType, u32, &str, u64, u64); 35] = {
    use GgmlType::*;
    [
        (F32, 0, "f32", 1, 4),
        (F16, 1, "f16", 1, 2),
        (Q4_0, 2, "q4_0", 32, 18),
        (Q4_1, 3, "q4_1", 32, 20),
        (Q5_0, 6, "q5_0", 32, 22),
        (Q5_1, 7, "q5_1", 32, 24),
        (Q8_0, 8, "q8_0", 32, 34),
        (Q8_1, 9, "q8_1", 32, 36),
        (Q2_K, 10, "q2_K", 256, 84),
        (Q3_K, 11, "q3_K", 256, 110),
        (Q4_K, 12, "q4_K", 256, 144),
        (Q5_K, 13, "q5_K", 256, 176),
        (Q6_K, 14, "q6_K", 256, 210),
        (Q8_K, 15, "q8_K", 256, 292),
        (IQ2_XXS, 16, "iq2_xxs", 256, 66),
        (IQ2_XS, 17, "iq2_xs", 256, 74),
        (IQ3_XXS, 18, "iq3_xxs", 256, 98),
        (IQ1_S, 19, "iq1_s", 256, 50),
        (IQ4_NL, 20, "iq4_nl", 32, 18),
        (IQ3_S, 21, "iq3_s", 256, 110),
        (IQ2_S, 22, "iq2_s", 256, 82),
        (IQ4_XS, 23, "iq4_xs", 256, 136),
        (I8, 24, "i8", 1, 1),
        (I16, 25, "i16", 1, 2),
        (I32, 26, "i32", 1, 4),
        (I64, 27, "i64", 1, 8),
        (F64, 28, "f64", 1, 8),
        (IQ1_M, 29, "iq1_m", 256, 56),
        (BF16, 30, "bf16", 1, 2),
        (TQ1_0, 34, "tq1_0", 256, 54),
        (TQ2_0, 35, "tq2_0", 256, 66),
        (MXFP4, 39, "mxfp4", 32, 17),
        (NVFP4, 40, "nvfp4", 64, 36),
        (Q1_0, 41, "q1_0", 128, 18),
        (Q2_0, 42, "q2_0", 64, 18),
    ]
};

impl GgmlType {
    /// Every type, in id order.
    pub const ALL: [GgmlType; 35] = {
        let mut all = [GgmlType::F32; 35];
        let mut i = 0;
        while i < 35 {
            all[i] = TYPES[i].0;
            i += 1;
        }
        all
    };

    const fn entry(self) -> (GgmlType, u32, &'static str, u64, u64) {
        // `TYPES` lists the variants in declaration order (checked by a test).
        TYPES[self as usize]
    }

    /// The id written in the file (`ggml_type`).
    pub const fn id(self) -> u32 {
        self.entry().1
    }

    /// The type of an id, `None` for ids ggml does not define (or no longer does: 4, 5,
    /// 31–33, 36–38).
    pub fn from_id(id: u32) -> Option<Self> {
        TYPES.iter().find(|t| t.1 == id).map(|t| t.0)
    }

    /// ggml's name (`ggml_type_name`): `"f32"`, `"q8_0"`, `"q4_K"`, ...
    pub const fn name(self) -> &'static str {
        self.entry().2
    }

    /// Elements per block (1 for the plain types).
    pub const fn block_size(self) -> u64 {
        self.entry().3
    }

    /// Bytes per block.
    pub const fn type_size(self) -> u64 {
        self.entry().4
    }

    /// Whether the type is a block-quantized one (`ggml_is_quantized`).
    pub const fn is_quantized(self) -> bool {
        !matches!(
            self,
            Self::F32 | Self::F16 | Self::BF16 | Self::F64 | Self::I8 | Self::I16 | Self::I32 | Self::I64
        )
    }

    /// Bytes of `n` elements, `None` unless `n` is a whole number of blocks and the size
    /// fits in `u64`.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
