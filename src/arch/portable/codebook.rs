//! The 16-level codebook block kernels (NF4, FP4 and any other 16-level table). `x86` reuses
//! the block loops around its own pair kernel; `quant::codebook::tests::simd_parity` checks
//! the two bit for bit.

/// A 16-level codebook as the block kernels see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Levels16 {
    /// The 15 decision bounds: a value above `bounds[i]` gets a level index above `i`.
    pub bounds: [f32; 15],
    /// The stored code of each level index (`None`: the index is the code).
    pub map: Option<[u8; 16]>,
    /// The code of every element of an all-zero block.
    pub zero_code: u8,
    /// Whether the nibble that pads an odd-length block holds a code (the code of 0.0, or
    /// `zero_code` in an all-zero block) rather than zero bits.
    pub pad_with_code: bool,
}

impl Levels16 {
    /// The stored code of `y` (already divided by the block's absmax).
    #[inline(always)]
    fn code(&self, y: f32) -> u8 {
        let n = self.bounds.iter().filter(|&&b| y > b).count();
        self.map.map_or(n as u8, |m| m[n])
    }
}

/// Elements per step of the comparison-count loop (two bytes of codes per step lane pair).
const LANES: usize = 16;

/// Largest `|x|` of a block, and whether every element is finite.
///
/// Works on the bits: `|x|` as an integer orders like the float, and NaN and infinity are
/// exactly the magnitudes `>= 0x7f80_0000`, so one integer max does both jobs.
#[inline(always)]
pub(crate) fn absmax_finite(x: &[f32]) -> (f32, bool) {
    let mut m = [0u32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            m[j] = m[j].max(c[j].to_bits() & 0x7fff_ffff);
        }
    }
    let mut mm = it
        .remainder()
        .iter()
        .fold(0u32, |a, v| a.max(v.to_bits() & 0x7fff_ffff));
    for v in m {
        mm = mm.max(v);
    }
    (f32::from_bits(mm), mm < 0x7f80_0000)
}

/// Codes of `x * c` against 15 decision bounds (a 16-level codebook), packed two a byte,
/// first element in the high nibble. `x.len() == 2 * out.len()`. `map` turns a level index
/// into its stored code (`None`: the index is the code).
#[inline(always)]
pub(crate) fn quantize_pairs15(t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
    debug_assert_eq!(x.len(), 2 * out.len());
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES / 2);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        let mut y = [0f32; LANES];
        for j in 0..LANES {
            y[j] = xc[j] * c;
        }
        let mut cnt = [0u32; LANES];
        for b in &t.bounds {
            for j in 0..LANES {
                cnt[j] += u32::from(y[j] > *b);
            }
        }
        if let Some(m) = &t.map {
            for v in cnt.iter_mut() {
                *v = u32::from(m[*v as usize & 15]);
            }
        }
        for k in 0..LANES / 2 {
            oc[k] = ((cnt[2 * k] << 4) | cnt[2 * k + 1]) as u8;
        }
    }
    for (xc, o) in xs.remainder().chunks_exact(2).zip(os.into_remainder()) {
        *o = (t.code(xc[0] * c) << 4) | t.code(xc[1] * c);
    }
}

/// Values of packed 4-bit codes: `out[2i], out[2i+1] = table[bytes[i]] * a`.
#[inline(always)]
pub(crate) fn dequantize_pairs(table: &[[f32; 2]; 256], bytes: &[u8], a: f32, out: &mut [f32]) {
    debug_assert_eq!(out.len(), 2 * bytes.len());
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        let t = table[*b as usize];
        o[0] = t[0] * a;
        o[1] = t[1] * a;
    }
}

/// The pair kernel [`quantize_blocks15_with`] runs: [`quantize_pairs15`] or a wider twin.
pub(crate) trait PairKernel {
    /// Codes of `x * c`, two a byte, as [`quantize_pairs15`].
    fn pairs(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]);

    /// A hint that `x` is read soon (a cache prefetch; nothing in the portable kernel). Changes
    /// no result.
    #[inline(always)]
    fn prefetch(&self, x: &[f32]) {
        let _ = x;
    }
}

/// The portable pair kernel.
pub(crate) struct PortablePairs;

impl PairKernel for PortablePairs {
    #[inline(always)]
    fn pairs(&self, t: &Levels16, x: &[f32], c: f32, out: &mut [u8]) {
        quantize_pairs15(t, x, c, out);
    }
}

/// Quantize a whole tensor of 16-level codes, block by block (portable loop; the caller has
/// checked the lengths). Returns the index of the first block holding a NaN or infinity.
#[inline(always)]
pub(crate) fn quantize_blocks15(
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    quantize_blocks15_with(&PortablePairs, t, x, block, packed, absmax)
}

/// [`quantize_blocks15`] with the inner pair kernel given (the AVX2 one, or the portable one).
#[inline(always)]
pub(crate) fn quantize_blocks15_with(
    k: &impl PairKernel,
    t: &Levels16,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    debug_assert!(block.is_multiple_of(2));
    let half = block / 2;
    // Blocks go in groups: first every absmax of the group (independent, so the reductions
    // overlap), then the codes; the group's input stays in L1 between the two passes. While
    // the codes of a group are computed, the kernel prefetches the next group's input (block
    // by block), so that memory keeps streaming while the absmax pass does not run: the
    // hardware prefetcher alone waits for the next group's first loads. Only for groups that
    // fit in L1 (blocks up to `PREFETCH_BLOCK`); longer blocks stream well on their own.
    const GROUP: usize = 32;
    const PREFETCH_BLOCK: usize = 256;
    let ahead = if block <= PREFETCH_BLOCK {
        block * GROUP
    } else {
        usize::MAX
    };
    for (gi, ((xg, og), ag)) in x
        .chunks(block.saturating_mul(GROUP))
        .zip(packed.chunks_mut(half.saturating_mul(GROUP)))
        .zip(absmax.chunks_mut(GROUP))
        .enumerate()
    {
        for (i, (xb, am)) in xg.chunks(block).zip(ag.iter_mut()).enumerate() {
            let (m, ok) = absmax_finite(xb);
            if !ok {
                return Err(gi * GROUP + i);
            }
            *am = m;
        }
        // The next group's input, if prefetched: one block of it per block coded.
        let start = gi * block * GROUP;
        let mut next = x.get(start.saturating_add(ahead)..).unwrap_or_default().chunks(block);
        for ((xb, ob), &m) in xg.chunks(block).zip(og.chunks_mut(half)).zip(ag.iter()) {
            if let Some(nb) = next.next() {
                k.prefetch(nb);
            }
            quantize_block15(k, t, xb, m, ob);
        }
    }
    Ok(())
}

/// The codes of one block whose absmax `m` is known.
#[inline(always)]
fn quantize_block15(k: &impl PairKernel, t: &Levels16, xb: &[f32], m: f32, ob: &mut [u8]) {
    if m == 0.0 {
        // bitsandbytes multiplies by 1/absmax: for an all-zero block that is 0 * inf = NaN,
        // and NaN gets its `zero_code` (its pad nibble too); lowbit codes the level nearest 0.
        let nib = t.zero_code & 15;
        ob.fill((nib << 4) | nib);
        if !t.pad_with_code && xb.len() % 2 == 1 {
            ob[xb.len() / 2] &= 0xf0;
        }
        return;
    }
    let c = 1.0 / m;
    if c.is_infinite() {
        // Subnormal absmax: 1/absmax overflows, divide instead.
        quantize_scalar15(t, xb, m, ob);
        return;
    }
    let even = xb.len() & !1;
    k.pairs(t, &xb[..even], c, &mut ob[..even / 2]);
    if even < xb.len() {
        let pad = if t.pad_with_code { t.code(0.0 * c) } else { 0 };
        ob[even / 2] = (t.code(xb[even] * c) << 4) | pad;
    }
}

#[cold]
fn quantize_scalar15(t: &Levels16, xb: &[f32], m: f32, ob: &mut [u8]) {
    for (i, o) in ob.iter_mut().enumerate() {
        let hi = t.code(xb[2 * i] / m);
        let lo = match xb.get(2 * i + 1) {
            Some(&v) => t.code(v / m),
            None if t.pad_with_code => t.code(0.0),
            None => 0,
        };
        *o = (hi << 4) | lo;
    }
}

/// Dequantize a whole tensor of packed 4-bit codes (portable loop; lengths checked by the
/// caller). A shorter last block may have an odd length: its pad nibble is ignored.
#[inline(always)]
pub(crate) fn dequantize_blocks(table: &[[f32; 2]; 256], packed: &[u8], absmax: &[f32], block: usize, out: &mut [f32]) {
    debug_assert!(block.is_multiple_of(2));
    for ((ob, pb), &a) in out.chunks_mut(block).zip(packed.chunks(block / 2)).zip(absmax) {
        let even = ob.len() & !1;
        let (head, tail) = ob.split_at_mut(even);
        dequantize_pairs(table, &pb[..even / 2], a, head);
        if let Some(t) = tail.first_mut() {
            *t = table[pb[even / 2] as usize][0] * a;
        }
    }
}
