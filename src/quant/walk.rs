//! The one block walker the block quantizers share: per group, statistics → scale (and zero
//! point) → codes → packing in the kernel's bit order, with code loops over fixed-size staging
//! chunks. A quantizer is a [`Kernel`]: how a group's statistics become its stored scale, and
//! how that scale maps values to codes and back.

use super::pack::{pack_ordered, packed_len, unpack_ordered, BitOrder};
use super::{Error, GroupParams, NonFinite, Quantized, Quantizer, Scale, Scheme};
use crate::format::Layout;

/// Codes are staged in chunks of this many elements; `CH * k / 8` bytes is whole for any `k`.
const CH: usize = 256;

/// Min and max over the finite values (both widened to include 0), and whether any value was
/// not finite.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub min: f32,
    pub max: f32,
    pub nonfinite: bool,
}

impl Stats {
    const ZERO: Stats = Stats {
        min: 0.0,
        max: 0.0,
        nonfinite: false,
    };

    #[inline(always)]
    fn merge(self, o: Stats) -> Stats {
        Stats {
            min: if o.min < self.min { o.min } else { self.min },
            max: if o.max > self.max { o.max } else { self.max },
            nonfinite: self.nonfinite | o.nonfinite,
        }
    }

    /// `max(|min|, |max|)`.
    #[inline(always)]
    pub fn absmax(self) -> f32 {
        let n = -self.min;
        if n > self.max {
            n
        } else {
            self.max
        }
    }
}

/// Statistics of a slice, eight lanes at a time.
#[inline(always)]
pub(crate) fn stats(x: &[f32]) -> Stats {
    const L: usize = 8;
    let mut mn = [0f32; L];
    let mut mx = [0f32; L];
    let mut bad = [0u32; L];
    let chunks = x.chunks_exact(L);
    let rem = chunks.remainder();
    for c in chunks {
        for j in 0..L {
            let v = c[j];
            let fin = (v.to_bits() & 0x7fff_ffff) < 0x7f80_0000;
            let v = if fin { v } else { 0.0 };
            mn[j] = if v < mn[j] { v } else { mn[j] };
            mx[j] = if v > mx[j] { v } else { mx[j] };
            bad[j] |= u32::from(!fin);
        }
    }
    let mut s = Stats::ZERO;
    for j in 0..L {
        s = s.merge(Stats {
            min: mn[j],
            max: mx[j],
            nonfinite: bad[j] != 0,
        });
    }
    for &v in rem {
        let fin = v.is_finite();
        let v = if fin { v } else { 0.0 };
        s = s.merge(Stats {
            min: v,
            max: v,
            nonfinite: !fin,
        });
    }
    s
}

/// `impl Quantizer` for a [`Kernel`] type whose quantize and dequantize are the walker's, with
/// a `granularity` field: `walker_quantizer!(impl[S: FloatFormat] AbsmaxQuantizer<S>, |q| q.bits);`.
macro_rules! walker_quantizer {
    (impl[$($gen:tt)*] $t:ty, |$q:ident| $bits:expr) => {
        impl<$($gen)*> $crate::quant::Quantizer for $t {
            fn bits(&self) -> u32 {
                let $q = self;
                $bits
            }
            fn granularity(&self) -> $crate::quant::Granularity {
                self.granularity
            }
            fn quantize_into(&self, x: &[f32], out: &mut $crate::quant::Quantized) -> Result<(), $crate::quant::Error> {
                $crate::quant::walk::quantize(self, x, out)
            }
            fn dequantize_into(&self, q: &$crate::quant::Quantized, out: &mut [f32]) -> Result<(), $crate::quant::Error> {
                $crate::quant::walk::dequantize(self, q, out)
            }
        }
    };
}
pub(crate) use walker_quantizer;

/// What a quantizer supplies to the walker.
pub(crate) trait Kernel: Quantizer {
    /// The scheme tag of what it makes.
    fn scheme(&self) -> Scheme;
    /// Whether a group's statistics are just its absmax (`min = -max`): one integer max
    /// over the bits instead of a min and a max.
    const ABSMAX_ONLY: bool;
    /// A group's code map, built once per group from its stored scale.
    type Enc: Copy;
    /// A group's value map.
    type Dec: Copy;
    fn non_finite(&self) -> NonFinite;
    /// The scale's storage format.
    fn layout(&self) -> Layout;
    /// How the codes fill a byte.
    fn order(&self) -> BitOrder {
        BitOrder::MsbFirst
    }
    /// A second-level scale of the whole tensor, stored with the value.
    fn tensor_scale(&self) -> Option<f32> {
        None
    }
    /// The stored scale and zero point of a group from its statistics.
    fn params(&self, group: usize, st: Stats) -> Result<(Scale, u8), Error>;
    /// A contiguous group's stored scale, zero point and code map, from its values and
    /// statistics. The default is [`params`](Self::params) then [`enc`](Self::enc); a kernel
    /// whose scale is not a function of the min and max (binary's `mean|x|`) or whose code
    /// map is not a function of the stored scale (ternary's threshold) overrides it, and then
    /// accepts only contiguous groups (the per-column path calls `params` and `enc`).
    #[inline(always)]
    fn group(&self, group: usize, _x: &[f32], st: Stats) -> Result<(Scale, u8, Self::Enc), Error> {
        let (s, z) = self.params(group, st)?;
        Ok((s, z, self.enc(s.value, z)))
    }
    /// The code map for a stored scale and zero point.
    fn enc(&self, scale: f32, zp: u8) -> Self::Enc;
    /// Codes of `x`, one per byte (the packer keeps the low `bits`).
    fn encode(&self, e: &Self::Enc, x: &[f32], out: &mut [u8]);
    /// The value map for a stored scale and zero point.
    fn dec(&self, scale: f32, zp: u8) -> Self::Dec;
    /// Values of `codes`.
    fn decode(&self, d: &Self::Dec, codes: &[u8], out: &mut [f32]);
    /// The code that fills the unused bits of the last byte, or `None` for zero bits.
    fn pad(&self, _e: &Self::Enc) -> Option<u8> {
        None
    }
}

/// Index of the first non-finite element of `x` (which has one).
fn first_nonfinite(x: &[f32]) -> usize {
    x.iter().position(|v| !v.is_finite()).unwrap_or(0)
}

/// Statistics of a group, applying the non-finite policy's error.
fn group_stats<K: Kernel>(k: &K, group: usize, st: Stats, find: impl FnOnce() -> usize) -> Result<Stats, Error> {
    if st.nonfinite && k.non_finite() == NonFinite::Error {
        return Err(Error::NonFinite { group, index: find() });
    }
    Ok(st)
}

/// Statistics for the kernel: just the absmax when that is all it needs.
#[inline(always)]
fn kernel_stats<K: Kernel>(k: &K, x: &[f32]) -> Stats {
    if K::ABSMAX_ONLY && k.non_finite() != NonFinite::Skip {
        let (a, finite) = crate::arch::portable::absmax_finite(x);
        Stats {
            min: -a,
            max: a,
            nonfinite: !finite,
        }
    } else {
        stats(x)
    }
}

/// Blocks of a fixed size `B` (a multiple of 8, so each block's codes are whole bytes),
/// the last one possibly shorter. The packing is chosen once, outside the block loop: 8-bit
/// codes are written in place and 4-bit codes packed by a loop of known length, which the
/// compiler unrolls and vectorises.
#[inline(always)]
fn fixed<K: Kernel, G: GroupSink + ?Sized, const B: usize>(
    k: &K,
    x: &[f32],
    codes: &mut [u8],
    params: &mut G,
) -> Result<(), Error> {
    match (k.bits(), k.order()) {
        (8, _) => fixed_packed::<K, G, B, 8>(k, x, codes, params, |_, _| {}),
        (4, BitOrder::MsbFirst) => fixed_packed::<K, G, B, 4>(k, x, codes, params, |c, o| {
            for (o, c) in o.iter_mut().zip(c.chunks_exact(2)) {
                *o = (c[0] << 4) | (c[1] & 0x0f);
            }
        }),
        (4, BitOrder::LsbFirst) => fixed_packed::<K, G, B, 4>(k, x, codes, params, |c, o| {
            for (o, c) in o.iter_mut().zip(c.chunks_exact(2)) {
                *o = (c[0] & 0x0f) | (c[1] << 4);
            }
        }),
        (bits, order) => fixed_packed::<K, G, B, 0>(k, x, codes, params, |c, o| pack_ordered(order, bits, c, o)),
    }
}

/// [`fixed`] with `pack` packing a whole block's `B` codes (`BITS` 8: none, the codes are
/// written in place; 0: any width).
#[inline(always)]
fn fixed_packed<K: Kernel, G: GroupSink + ?Sized, const B: usize, const BITS: u32>(
    k: &K,
    x: &[f32],
    codes: &mut [u8],
    params: &mut G,
    pack: impl Fn(&[u8; B], &mut [u8]),
) -> Result<(), Error> {
    let bits = k.bits();
    let order = k.order();
    let bpb = B / 8 * bits as usize;
    let mut buf = [0u8; B];
    for (g, (xs, cs)) in x.chunks(B).zip(codes.chunks_mut(bpb)).enumerate() {
        let st = if let Ok(xa) = <&[f32; B]>::try_from(xs) {
            kernel_stats(k, xa)
        } else {
            kernel_stats(k, xs)
        };
        let st = group_stats(k, g, st, || g * B + first_nonfinite(xs))?;
        let (s, z, e) = k.group(g, xs, st)?;
        params.set(g, s, z);
        match <&[f32; B]>::try_from(xs) {
            Ok(xa) if BITS == 8 => k.encode(&e, xa, cs),
            Ok(xa) => {
                k.encode(&e, xa, &mut buf);
                pack(&buf, cs);
            }
            Err(_) => {
                let t = xs.len();
                k.encode(&e, xs, &mut buf[..t]);
                pack_ordered(order, bits, &buf[..t], cs);
            }
        }
    }
    Ok(())
}

/// Codes staged in `CH`-element chunks and packed into `codes` as each chunk fills.
struct Stager<'a> {
    bits: u32,
    order: BitOrder,
    codes: &'a mut [u8],
    buf: [u8; CH],
    fill: usize,
    chunk: usize,
}

impl<'a> Stager<'a> {
    #[inline(always)]
    fn new(bits: u32, order: BitOrder, codes: &'a mut [u8]) -> Self {
        Self {
            bits,
            order,
            codes,
            buf: [0; CH],
            fill: 0,
            chunk: 0,
        }
    }

    #[inline(always)]
    fn push<K: Kernel>(&mut self, k: &K, mut x: &[f32], e: &K::Enc) {
        while !x.is_empty() {
            let take = (CH - self.fill).min(x.len());
            k.encode(e, &x[..take], &mut self.buf[self.fill..self.fill + take]);
            self.fill += take;
            x = &x[take..];
            if self.fill == CH {
                let w = CH / 8 * self.bits as usize;
                let at = self.chunk * w;
                pack_ordered(self.order, self.bits, &self.buf, &mut self.codes[at..at + w]);
                self.chunk += 1;
                self.fill = 0;
            }
        }
    }

    #[inline(always)]
    fn finish(self) {
        if self.fill > 0 {
            let w = CH / 8 * self.bits as usize;
            let at = self.chunk * w;
            let n = packed_len(self.bits, self.fill);
            pack_ordered(
                self.order,
                self.bits,
                &self.buf[..self.fill],
                &mut self.codes[at..at + n],
            );
        }
    }
}

/// Where the walker puts each group's scale and zero point: a [`Quantized`]'s parts, or a
/// plain array of `f32` scales (bitsandbytes' absmax).
pub(crate) trait GroupSink {
    /// Set group `g`'s scale and zero point.
    fn set(&mut self, g: usize, scale: Scale, zero_point: u8);
    /// Group `g`'s scale value and zero point.
    fn get(&self, g: usize) -> (f32, u8);
}

impl GroupSink for GroupParams<'_> {
    #[inline(always)]
    fn set(&mut self, g: usize, scale: Scale, zero_point: u8) {
        GroupParams::set(self, g, scale, zero_point);
    }
    #[inline(always)]
    fn get(&self, g: usize) -> (f32, u8) {
        GroupParams::get(self, g)
    }
}

impl GroupSink for [f32] {
    #[inline(always)]
    fn set(&mut self, g: usize, scale: Scale, _zero_point: u8) {
        self[g] = scale.value;
    }
    #[inline(always)]
    fn get(&self, g: usize) -> (f32, u8) {
        (self[g], 0)
    }
}

/// Quantize `x` into `out` with kernel `k`, with the widest instruction set available.
pub(crate) fn quantize<K: Kernel>(k: &K, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
    let (codes, mut params) = reset(k, x.len(), out)?;
    quantize_slices(k, x, codes, &mut params)
}

/// Size `out` for `n` elements of kernel `k` and hand out its parts.
pub(crate) fn reset<'a, K: Kernel>(
    k: &K,
    n: usize,
    out: &'a mut Quantized,
) -> Result<(&'a mut [u8], GroupParams<'a>), Error> {
    out.reset(k, n)?;
    Ok(out.parts_mut())
}

/// Quantize `x` into packed `codes` and the groups' `sink` (lengths as [`reset`] makes them),
/// with the widest instruction set available.
pub(crate) fn quantize_slices<K: Kernel, G: GroupSink + ?Sized>(
    k: &K,
    x: &[f32],
    codes: &mut [u8],
    sink: &mut G,
) -> Result<(), Error> {
    crate::arch::run(QuantizeJob { k, x, codes, sink })
}

/// Dequantize `q` into `out` with kernel `k`, with the widest instruction set available.
pub(crate) fn dequantize<K: Kernel>(k: &K, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
    super::check_compatible(q, k.scheme(), k.bits(), out.len())?;
    if q.bit_order() != k.order() {
        return Err(Error::Incompatible("bit order"));
    }
    if q.granularity() != k.granularity() {
        return Err(Error::Incompatible("granularity"));
    }
    dequantize_slices(k, q.codes(), q.scales(), q.zero_points(), out);
    Ok(())
}

/// Dequantize packed `codes` with per-group `scales` and `zero_points` (empty without them)
/// into `out`, whose length is the element count; the caller has checked the lengths.
pub(crate) fn dequantize_slices<K: Kernel>(k: &K, codes: &[u8], scales: &[f32], zero_points: &[u8], out: &mut [f32]) {
    crate::arch::run(DequantizeJob {
        k,
        codes,
        scales,
        zero_points,
        out,
    })
}

struct QuantizeJob<'a, K, G: ?Sized> {
    k: &'a K,
    x: &'a [f32],
    codes: &'a mut [u8],
    sink: &'a mut G,
}

impl<K: Kernel, G: GroupSink + ?Sized> crate::arch::Job for QuantizeJob<'_, K, G> {
    type Out = Result<(), Error>;
    #[inline(always)]
    fn run(self) -> Self::Out {
        quantize_portable(self.k, self.x, self.codes, self.sink)
    }
}

struct DequantizeJob<'a, K> {
    k: &'a K,
    codes: &'a [u8],
    scales: &'a [f32],
    zero_points: &'a [u8],
    out: &'a mut [f32],
}

impl<K: Kernel> crate::arch::Job for DequantizeJob<'_, K> {
    type Out = ();
    #[inline(always)]
    fn run(self) {
        dequantize_portable(self.k, self.codes, self.scales, self.zero_points, self.out);
    }
}

/// The portable loop of [`quantize_slices`] (`tests` compare it with the dispatched one).
#[inline(always)]
pub(crate) fn quantize_portable<K: Kernel, G: GroupSink + ?Sized>(
    k: &K,
    x: &[f32],
    codes: &mut [u8],
    params: &mut G,
) -> Result<(), Error> {
    let gran = k.granularity();
    let bits = k.bits();
    let order = k.order();
    let n = x.len();
    let groups = gran.groups(n)?;
    match gran.run(n) {
        Some(16) => fixed::<K, G, 16>(k, x, codes, params)?,
        Some(32) => fixed::<K, G, 32>(k, x, codes, params)?,
        Some(64) => fixed::<K, G, 64>(k, x, codes, params)?,
        Some(128) => fixed::<K, G, 128>(k, x, codes, params)?,
        Some(256) => fixed::<K, G, 256>(k, x, codes, params)?,
        Some(run) => {
            if bits == 8 {
                for (g, (xs, cs)) in x.chunks(run).zip(codes.chunks_mut(run)).enumerate() {
                    let st = group_stats(k, g, kernel_stats(k, xs), || g * run + first_nonfinite(xs))?;
                    let (s, z, e) = k.group(g, xs, st)?;
                    params.set(g, s, z);
                    k.encode(&e, xs, cs);
                }
            } else {
                let mut stage = Stager::new(bits, order, codes);
                for (g, xs) in x.chunks(run).enumerate() {
                    let st = group_stats(k, g, kernel_stats(k, xs), || g * run + first_nonfinite(xs))?;
                    let (s, z, e) = k.group(g, xs, st)?;
                    params.set(g, s, z);
                    stage.push(k, xs, &e);
                }
                stage.finish();
            }
        }
        None => {
            // Per column: statistics down each column, then codes row by row.
            let cols = groups;
            for c in 0..cols {
                let col = x.iter().skip(c).step_by(cols);
                let st = col
                    .clone()
                    .fold(Stats::ZERO, |a, &v| a.merge(stats(core::slice::from_ref(&v))));
                let st = group_stats(k, c, st, || {
                    c + cols * col.clone().position(|v| !v.is_finite()).unwrap_or(0)
                })?;
                let (s, z) = k.params(c, st)?;
                params.set(c, s, z);
            }
            let mut stage = Stager::new(bits, order, codes);
            for row in x.chunks_exact(cols.max(1)) {
                for (c, v) in row.iter().enumerate() {
                    let (s, z) = params.get(c);
                    stage.push(k, core::slice::from_ref(v), &k.enc(s, z));
                }
            }
            stage.finish();
        }
    }
    // A kernel may fill the bits that pad the last byte (bitsandbytes does).
    let pad_bits = (n * bits as usize) % 8;
    if pad_bits != 0 {
        let last_group = match gran.run(n) {
            Some(run) => (n - 1) / run.max(1),
            None => (n - 1) % groups.max(1),
        };
        let (s, z) = params.get(last_group);
        if let (Some(pad), Some(byte)) = (k.pad(&k.enc(s, z)), codes.last_mut()) {
            *byte |= pad_byte(order, bits, pad_bits as u32, pad);
        }
    }
    Ok(())
}

/// The bits that fill the unused part of a last byte holding `used` bits, as `pad` codes.
fn pad_byte(order: BitOrder, bits: u32, used: u32, pad: u8) -> u8 {
    let mut b = 0u16;
    let mut at = used;
    while at < 8 {
        let code = u16::from(pad) & ((1 << bits) - 1);
        b |= match order {
            BitOrder::MsbFirst => (code << (16 - bits - at)) >> 8,
            BitOrder::LsbFirst => code << at,
        };
        at += bits;
    }
    b as u8
}

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

/// Quantize and dequantize `x` into `y` in one pass, group by group, with no packed buffer
/// (fake quantization): the values [`quantize`] then [`dequantize`] give, for contiguous groups.
///
/// # Errors
/// The errors of [`quantize`]; [`Error::LengthMismatch`] when `y` is not as long as `x`;
/// [`Error::Incompatible`] for per-column groups.
pub(crate) fn fake_quantize<K: Kernel>(k: &K, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
    super::expect_len(x.len(), y.len())?;
    let gran = k.granularity();
    gran.groups(x.len())?;
    let run = gran
        .run(x.len())
        .ok_or(Error::Incompatible("fake quantization runs over contiguous groups"))?;
    let mut buf = [0u8; CH];
    for (g, (xs, ys)) in x.chunks(run).zip(y.chunks_mut(run)).enumerate() {
        let st = group_stats(k, g, kernel_stats(k, xs), || g * run + first_nonfinite(xs))?;
        let (s, z, e) = k.group(g, xs, st)?;
        let d = k.dec(s.value, z);
        for (xc, yc) in xs.chunks(CH).zip(ys.chunks_mut(CH)) {
            let codes = &mut buf[..xc.len()];
            k.encode(&e, xc, codes);
            if k.bits() < 8 {
                // The packer keeps the low bits; so must the decoder's input.
                let mask = ((1u16 << k.bits()) - 1) as u8;
                codes.iter_mut().for_each(|c| *c &= mask);
            }
            k.decode(&d, codes, yc);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Codebook, CodebookQuantizer, Granularity};

    fn portable<K: Kernel>(k: &K, x: &[f32]) -> Quantized {
        let mut q = Quantized::empty();
        let (codes, mut params) = reset(k, x.len(), &mut q).unwrap();
        quantize_portable(k, x, codes, &mut params).unwrap();
        q
    }

    fn parity<K: Kernel>(k: &K, x: &[f32]) {
        let mut a = Quantized::empty();
        quantize(k, x, &mut a).unwrap();
        assert_eq!(a, portable(k, x));
        let (mut ya, mut yb) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        dequantize(k, &a, &mut ya).unwrap();
        dequantize_portable(k, a.codes(), a.scales(), a.zero_points(), &mut yb);
        assert_eq!(
            ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            yb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// The dispatched (AVX2 where the CPU has it) build agrees bit for bit with the portable one.
    #[test]
    fn dispatched_equals_portable() {
        let x: Vec<f32> = (0..5000).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.013).collect();
        for g in [
            Granularity::PerBlock(32),
            Granularity::PerBlock(64),
            Granularity::PerBlock(33),
            Granularity::PerRow { cols: 100 },
            Granularity::PerColumn { cols: 50 },
            Granularity::PerTensor,
        ] {
            for bits in [2, 3, 4, 8] {
                parity(&AbsmaxQuantizer::new(bits, g).unwrap(), &x);
                parity(&AffineQuantizer::new(bits, g).unwrap(), &x);
            }
            if !matches!(g, Granularity::PerColumn { .. }) {
                parity(
                    &CodebookQuantizer::new(Codebook::normal_float(3).unwrap(), g).unwrap(),
                    &x,
                );
            }
        }
    }

    #[test]
    fn pad_bytes() {
        assert_eq!(pad_byte(BitOrder::MsbFirst, 4, 4, 7), 0x07);
        assert_eq!(pad_byte(BitOrder::LsbFirst, 4, 4, 7), 0x70);
        assert_eq!(pad_byte(BitOrder::MsbFirst, 3, 6, 7), 0b11);
        assert_eq!(pad_byte(BitOrder::MsbFirst, 2, 2, 1), 0b0001_0101);
        assert_eq!(pad_byte(BitOrder::LsbFirst, 2, 2, 1), 0b0101_0100);
    }
}
