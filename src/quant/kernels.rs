//! The portable inner loops of the codebook quantizer, written so LLVM vectorises them.
//!
//! `crate::arch` compiles the same functions again with AVX2 enabled and picks that copy at
//! run time, so the two are bit-identical by construction (`tests/all/bnb.rs` checks it too).

/// Elements per step of the comparison-count loop (two bytes of codes per step lane pair).
const LANES: usize = 16;

/// Largest `|x|` of a block, and whether every element is finite.
#[inline(always)]
pub(crate) fn absmax_finite(x: &[f32]) -> (f32, bool) {
    let mut m = [0f32; 8];
    let mut bad = [0u32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            let a = c[j].abs();
            m[j] = if a > m[j] { a } else { m[j] };
            bad[j] |= u32::from(a.is_nan() || a == f32::INFINITY);
        }
    }
    let mut mm = 0f32;
    let mut b = 0u32;
    for &v in it.remainder() {
        let a = v.abs();
        mm = if a > mm { a } else { mm };
        b |= u32::from(a.is_nan() || a == f32::INFINITY);
    }
    for j in 0..8 {
        mm = if m[j] > mm { m[j] } else { mm };
        b |= bad[j];
    }
    (mm, b == 0)
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
    debug_assert!(block % 2 == 0);
    let half = block / 2;
    for (bi, ((xb, ob), am)) in x
        .chunks(block)
        .zip(packed.chunks_mut(half))
        .zip(absmax.iter_mut())
        .enumerate()
    {
        let (m, ok) = absmax_finite(xb);
        if !ok {
            return Err(bi);
        }
        *am = m;
        // bitsandbytes multiplies by 1/absmax; for an all-zero block that is 0 * inf = NaN.
        let c = if m == 0.0 && !bnb_zero { 0.0 } else { 1.0 / m };
        if m == 0.0 && bnb_zero {
            let nib = zero_code & 15;
            ob.fill((nib << 4) | nib);
            continue;
        }
        if m == 0.0 {
            let nib = zero_code & 15;
            ob.fill((nib << 4) | nib);
            if xb.len() % 2 == 1 {
                ob[xb.len() / 2] &= 0xf0;
            }
            continue;
        }
        if c.is_infinite() {
            // Subnormal absmax: 1/absmax overflows, divide instead.
            quantize_scalar15(bounds, map, xb, m, ob, bnb_zero);
            continue;
        }
        let even = xb.len() & !1;
        quantize_pairs15(bounds, map, &xb[..even], c, &mut ob[..even / 2]);
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
    Ok(())
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
    debug_assert!(block % 2 == 0);
    for ((ob, pb), &a) in out.chunks_mut(block).zip(packed.chunks(block / 2)).zip(absmax) {
        let even = ob.len() & !1;
        let (head, tail) = ob.split_at_mut(even);
        dequantize_pairs(table, &pb[..even / 2], a, head);
        if let Some(t) = tail.first_mut() {
            *t = table[pb[even / 2] as usize][0] * a;
        }
    }
}
