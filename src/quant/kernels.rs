//! The portable inner loops of the codebook quantizer, written so LLVM vectorises them.
//!
//! `crate::arch` compiles the same functions again with AVX2 enabled and picks that copy at
//! run time, so the two are bit-identical by construction (`tests/all/bnb.rs` checks it too).

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
pub(crate) fn quantize_pairs15(bounds: &[f32; 15], map: Option<&[u8; 16]>, x: &[f32], c: f32, out: &mut [u8]) {
    debug_assert_eq!(x.len(), 2 * out.len());
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES / 2);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        let mut y = [0f32; LANES];
        for j in 0..LANES {
            y[j] = xc[j] * c;
        }
        let mut cnt = [0u32; LANES];
        for b in bounds {
            for j in 0..LANES {
                cnt[j] += u32::from(y[j] > *b);
            }
        }
        if let Some(m) = map {
            for v in cnt.iter_mut() {
                *v = u32::from(m[*v as usize & 15]);
            }
        }
        for k in 0..LANES / 2 {
            oc[k] = ((cnt[2 * k] << 4) | cnt[2 * k + 1]) as u8;
        }
    }
    for (xc, o) in xs.remainder().chunks_exact(2).zip(os.into_remainder()) {
        let idx = |v: f32| {
            let y = v * c;
            let n = bounds.iter().filter(|&&b| y > b).count();
            map.map_or(n as u8, |m| m[n])
        };
        *o = (idx(xc[0]) << 4) | idx(xc[1]);
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

/// Quantize a whole tensor of 16-level codes, block by block (portable loop; the caller has
/// checked the lengths). Returns the index of the first block holding a NaN or infinity.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn quantize_blocks15(
    bounds: &[f32; 15],
    map: Option<&[u8; 16]>,
    zero_code: u8,
    bnb_zero: bool,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    quantize_blocks15_with(
        quantize_pairs15,
        bounds,
        map,
        zero_code,
        bnb_zero,
        x,
        block,
        packed,
        absmax,
    )
}

/// [`quantize_blocks15`] with the inner pair kernel given (the AVX2 one, or the portable one).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn quantize_blocks15_with(
    pairs: impl Fn(&[f32; 15], Option<&[u8; 16]>, &[f32], f32, &mut [u8]),
    bounds: &[f32; 15],
    map: Option<&[u8; 16]>,
    zero_code: u8,
    bnb_zero: bool,
    x: &[f32],
    block: usize,
    packed: &mut [u8],
    absmax: &mut [f32],
) -> Result<(), usize> {
    debug_assert!(block.is_multiple_of(2));
    let half = block / 2;
    // Blocks go in groups: first every absmax of the group (independent, so the reductions
    // overlap), then the codes; the group's input stays in L1 between the two passes.
    const GROUP: usize = 32;
    for (gi, ((xg, og), ag)) in x
        .chunks(block * GROUP)
        .zip(packed.chunks_mut(half * GROUP))
        .zip(absmax.chunks_mut(GROUP))
        .enumerate()
    {
        for (k, (xb, am)) in xg.chunks(block).zip(ag.iter_mut()).enumerate() {
            let (m, ok) = absmax_finite(xb);
            if !ok {
                return Err(gi * GROUP + k);
            }
            *am = m;
        }
        for ((xb, ob), &m) in xg.chunks(block).zip(og.chunks_mut(half)).zip(ag.iter()) {
            quantize_block15(&pairs, bounds, map, zero_code, bnb_zero, xb, m, ob);
        }
    }
    Ok(())
}

/// The codes of one block whose absmax `m` is known.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn quantize_block15(
    pairs: &impl Fn(&[f32; 15], Option<&[u8; 16]>, &[f32], f32, &mut [u8]),
    bounds: &[f32; 15],
    map: Option<&[u8; 16]>,
    zero_code: u8,
    bnb_zero: bool,
    xb: &[f32],
    m: f32,
    ob: &mut [u8],
) {
    if m == 0.0 {
        // bitsandbytes multiplies by 1/absmax: for an all-zero block that is 0 * inf = NaN,
        // and NaN gets `zero_code` (its pad nibble too); lowbit codes the level nearest 0.
        let nib = zero_code & 15;
        ob.fill((nib << 4) | nib);
        if !bnb_zero && xb.len() % 2 == 1 {
            ob[xb.len() / 2] &= 0xf0;
        }
        return;
    }
    let c = 1.0 / m;
    if c.is_infinite() {
        // Subnormal absmax: 1/absmax overflows, divide instead.
        quantize_scalar15(bounds, map, xb, m, ob, bnb_zero);
        return;
    }
    let even = xb.len() & !1;
    pairs(bounds, map, &xb[..even], c, &mut ob[..even / 2]);
    if even < xb.len() {
        let idx = |y: f32| {
            let n = bounds.iter().filter(|&&b| y > b).count();
            map.map_or(n as u8, |mp| mp[n])
        };
        // bitsandbytes pads with the code of 0.0; lowbit's packing leaves zero bits.
        let pad = if bnb_zero { idx(0.0 * c) } else { 0 };
        ob[even / 2] = (idx(xb[even] * c) << 4) | pad;
    }
}

#[cold]
fn quantize_scalar15(bounds: &[f32; 15], map: Option<&[u8; 16]>, xb: &[f32], m: f32, ob: &mut [u8], bnb_pad: bool) {
    let idx = |y: f32| {
        let n = bounds.iter().filter(|&&b| y > b).count();
        map.map_or(n as u8, |mp| mp[n])
    };
    for (k, o) in ob.iter_mut().enumerate() {
        let hi = idx(xb[2 * k] / m);
        let lo = match xb.get(2 * k + 1) {
            Some(&v) => idx(v / m),
            None if bnb_pad => idx(0.0),
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

#[cfg(test)]
mod tests {
    use crate::quant::codebook::Codebook;

    /// The dispatched path (AVX2 where the CPU has it) against the portable loop, bit for bit.
    #[test]
    fn simd_parity() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut x: Vec<f32> = (0..4099)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect();
        // A block holding 1.0 (absmax 1) and every bound and its neighbours: exact ties.
        let nf4 = Codebook::nf4();
        let fp4 = Codebook::bnb_fp4();
        let mut ties = vec![1.0f32];
        for b in nf4.bounds().iter().chain(fp4.bounds()) {
            ties.extend([*b, b.next_up(), b.next_down()]);
        }
        ties.resize(128, 0.0);
        x.splice(256..256, ties);
        x.splice(512..512, [0.0f32; 64]); // a zero block
        for (cb, map) in [(&nf4, None), (&fp4, Some(fp4.codes()))] {
            let mut bounds = [0f32; 15];
            bounds.copy_from_slice(cb.bounds());
            let map: Option<[u8; 16]> = map.map(|m| m.try_into().unwrap());
            for block in [32usize, 64, 128, 4096] {
                for bnb in [false, true] {
                    let nb = x.len().div_ceil(block);
                    let (mut p1, mut a1) = (vec![0u8; x.len().div_ceil(2)], vec![0f32; nb]);
                    let (mut p2, mut a2) = (p1.clone(), a1.clone());
                    super::quantize_blocks15(&bounds, map.as_ref(), 7, bnb, &x, block, &mut p1, &mut a1).unwrap();
                    crate::arch::quantize_blocks15(&bounds, map.as_ref(), 7, bnb, &x, block, &mut p2, &mut a2).unwrap();
                    assert_eq!(p1, p2, "block {block}");
                    assert_eq!(a1, a2);
                    let table = cb.pairs().unwrap();
                    let (mut y1, mut y2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                    super::dequantize_blocks(table, &p1, &a1, block, &mut y1);
                    crate::arch::dequantize_blocks(table, &p1, &a1, block, &mut y2);
                    assert_eq!(
                        y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}
