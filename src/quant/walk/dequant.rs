//! The walker's dequantize loop: codes unpacked in the kernel's bit order, group by group.

use super::{packed_len, unpack_ordered, BitOrder, Kernel, CH};

/// The portable loop of [`dequantize_slices`].
#[inline(always)]
pub(crate) fn dequantize_portable<K: Kernel>(k: &K, codes: &[u8], scales: &[f32], zps: &[u8], out: &mut [f32]) {
    let bits = k.bits();
    let order = k.order();
    let n = out.len();
    let zp = |g: usize| zps.get(g).copied().unwrap_or(0);
    match k.granularity().run(n) {
        Some(run) if bits == 8 => {
            for (g, (ys, cs)) in out.chunks_mut(run).zip(codes.chunks(run)).enumerate() {
                k.decode(&k.dec(scales[g], zp(g)), cs, ys);
            }
        }
        Some(16) if bits == 4 => fixed_nibbles::<K, 16>(k, codes, scales, zps, out),
        Some(32) if bits == 4 => fixed_nibbles::<K, 32>(k, codes, scales, zps, out),
        Some(64) if bits == 4 => fixed_nibbles::<K, 64>(k, codes, scales, zps, out),
        Some(128) if bits == 4 => fixed_nibbles::<K, 128>(k, codes, scales, zps, out),
        Some(256) if bits == 4 => fixed_nibbles::<K, 256>(k, codes, scales, zps, out),
        Some(run) => {
            let w = CH / 8 * bits as usize;
            let mut buf = [0u8; CH];
            let (mut pos, mut avail, mut chunk) = (0usize, 0usize, 0usize);
            for (g, mut ys) in out.chunks_mut(run).enumerate() {
                let d = k.dec(scales[g], zp(g));
                while !ys.is_empty() {
                    if pos == avail {
                        let cnt = CH.min(n - chunk * CH);
                        let at = chunk * w;
                        unpack_ordered(order, bits, &codes[at..at + packed_len(bits, cnt)], &mut buf[..cnt]);
                        avail = cnt;
                        pos = 0;
                        chunk += 1;
                    }
                    let take = (avail - pos).min(ys.len());
                    let (head, tail) = ys.split_at_mut(take);
                    k.decode(&d, &buf[pos..pos + take], head);
                    pos += take;
                    ys = tail;
                }
            }
        }
        None => {
            let cols = scales.len().max(1);
            let mut buf = [0u8; CH];
            for (ci, ys) in out.chunks_mut(CH).enumerate() {
                let cnt = ys.len();
                let at = ci * (CH / 8 * bits as usize);
                unpack_ordered(order, bits, &codes[at..at + packed_len(bits, cnt)], &mut buf[..cnt]);
                for (j, y) in ys.iter_mut().enumerate() {
                    let c = (ci * CH + j) % cols;
                    k.decode(&k.dec(scales[c], zp(c)), &buf[j..j + 1], core::slice::from_mut(y));
                }
            }
        }
    }
}

/// 4-bit codes in groups of a fixed size `B` (even, so each group's codes are whole bytes),
/// the last group possibly shorter: each group unpacked by a loop of known length, then
/// decoded.
#[inline(always)]
fn fixed_nibbles<K: Kernel, const B: usize>(k: &K, codes: &[u8], scales: &[f32], zps: &[u8], out: &mut [f32]) {
    let order = k.order();
    let mut buf = [0u8; B];
    for (g, (ys, cs)) in out.chunks_mut(B).zip(codes.chunks(B / 2)).enumerate() {
        let d = k.dec(scales[g], zps.get(g).copied().unwrap_or(0));
        match <&mut [f32; B]>::try_from(&mut *ys) {
            Ok(ya) => {
                for (pair, &c) in buf.chunks_exact_mut(2).zip(cs) {
                    let (hi, lo) = (c >> 4, c & 0x0f);
                    (pair[0], pair[1]) = match order {
                        BitOrder::MsbFirst => (hi, lo),
                        BitOrder::LsbFirst => (lo, hi),
                    };
                }
                k.decode(&d, &buf, ya);
            }
            Err(_) => {
                let t = ys.len();
                unpack_ordered(order, 4, cs, &mut buf[..t]);
                k.decode(&d, &buf[..t], ys);
            }
        }
    }
}
