//! The one block walker both quantizers share: group statistics, the scale-and-code map, and
//! branch-free code loops over fixed-size staging chunks.

use super::pack::{pack_unchecked, packed_len, unpack_unchecked};
use super::Granularity;
use super::{Error, GroupParams, NonFinite, Quantized, Rounding, Scale, Scheme};
use crate::format::Layout;

/// Codes are staged in chunks of this many elements; `CH * k / 8` bytes is whole for any `k`.
const CH: usize = 256;
/// `1.5 × 2^23`: adding it rounds an `f32` of magnitude below `2^22` to an integer (ties to
/// even) and leaves that integer in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
const MAGIC_BITS: i32 = 0x4B40_0000;

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

/// The code map of one group: `code = round(clamp(x × inv, lo, hi)) + offset` (mod 256).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Enc {
    pub inv: f32,
    pub lo: f32,
    pub hi: f32,
    pub offset: i32,
}

/// The value map of one group: `x' = ((code ^ xor) - sub) × scale`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dec {
    pub scale: f32,
    pub xor: u8,
    pub sub: f32,
}

/// What a scheme supplies to the walker.
pub(crate) trait Kernel {
    const SCHEME: Scheme;
    fn bits(&self) -> u32;
    fn granularity(&self) -> Granularity;
    fn rounding(&self) -> Rounding;
    fn non_finite(&self) -> NonFinite;
    fn layout(&self) -> Layout;
    /// The stored scale and zero point of a group from its statistics.
    fn params(&self, group: usize, st: Stats) -> Result<(Scale, u8), Error>;
    /// The code map for a stored scale and zero point.
    fn enc(&self, scale: f32, zp: u8) -> Enc;
    /// The value map for a stored scale and zero point.
    fn dec(&self, scale: f32, zp: u8) -> Dec;
}

/// `1 / scale`, or 0 for a zero scale (an all-zero group).
#[inline]
pub(crate) fn inverse(scale: f32) -> f32 {
    if scale == 0.0 {
        0.0
    } else {
        1.0 / scale
    }
}

/// How `encode` rounds `x × inv` to an integer: the [`Rounding`]s integer codes support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Even,
    Away,
    TowardZero,
}

impl Mode {
    /// The integer rounding for `r`, or [`Error::UnsupportedRounding`] (stochastic rounding
    /// needs random bits per element, which a quantizer does not take).
    pub fn of(r: Rounding) -> Result<Mode, Error> {
        match r {
            Rounding::NearestEven => Ok(Mode::Even),
            Rounding::NearestAway => Ok(Mode::Away),
            Rounding::TowardZero => Ok(Mode::TowardZero),
            Rounding::Stochastic(_) => Err(Error::UnsupportedRounding),
        }
    }
}

/// Codes of `x` under `e`, one per byte (masked later by the packer). `M` is a [`Mode`] as
/// `u8`, so each mode compiles to its own branch-free loop.
#[inline(always)]
pub(crate) fn encode<const M: u8>(e: &Enc, x: &[f32], out: &mut [u8]) {
    let (inv, lo, hi, off) = (e.inv, e.lo, e.hi, e.offset);
    for (o, &v) in out.iter_mut().zip(x) {
        let t = v * inv;
        let t = if t.is_nan() { 0.0 } else { t };
        let y = if t < lo { lo } else { t };
        let y = if y > hi { hi } else { y };
        let q = if M == Mode::TowardZero as u8 {
            y as i32
        } else {
            let b = (y + MAGIC).to_bits() as i32;
            let mut q = b.wrapping_sub(MAGIC_BITS);
            if M == Mode::Away as u8 {
                let r = f32::from_bits(b as u32) - MAGIC;
                let d = y - r;
                q += i32::from(d == 0.5 && y > 0.0) - i32::from(d == -0.5 && y < 0.0);
            }
            q
        };
        *o = q.wrapping_add(off) as u8;
    }
}

#[inline(always)]
fn encode_dispatch(mode: Mode, e: &Enc, x: &[f32], out: &mut [u8]) {
    match mode {
        Mode::Even => encode::<{ Mode::Even as u8 }>(e, x, out),
        Mode::Away => encode::<{ Mode::Away as u8 }>(e, x, out),
        Mode::TowardZero => encode::<{ Mode::TowardZero as u8 }>(e, x, out),
    }
}

/// Values of `codes` under `d`.
#[inline(always)]
pub(crate) fn decode(d: &Dec, codes: &[u8], out: &mut [f32]) {
    let (s, x, sub) = (d.scale, d.xor, d.sub);
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = (f32::from(c ^ x) - sub) * s;
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

/// Max of `|x|` as `f32` bits (a NaN or an infinity gives bits `>= 0x7f80_0000`).
#[inline(always)]
fn absmax_bits(x: &[f32]) -> u32 {
    let mut m = [0u32; 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            let b = c[j].to_bits() & 0x7fff_ffff;
            m[j] = if b > m[j] { b } else { m[j] };
        }
    }
    for w in [4, 2, 1] {
        for j in 0..w {
            m[j] = if m[j + w] > m[j] { m[j + w] } else { m[j] };
        }
    }
    rem.iter().fold(m[0], |a, v| a.max(v.to_bits() & 0x7fff_ffff))
}

/// Statistics for the kernel: just the absmax when that is all it needs.
#[inline(always)]
fn kernel_stats<K: Kernel>(k: &K, x: &[f32]) -> Stats {
    if K::SCHEME == Scheme::Symmetric && k.non_finite() != NonFinite::Ignore {
        let b = absmax_bits(x);
        let a = f32::from_bits(b);
        Stats {
            min: -a,
            max: a,
            nonfinite: b >= 0x7f80_0000,
        }
    } else {
        stats(x)
    }
}

/// Blocks of a fixed size `B` (a multiple of 8, so each block's codes are whole bytes),
/// the last one possibly shorter.
#[inline(always)]
fn fixed<K: Kernel, const B: usize>(
    k: &K,
    x: &[f32],
    codes: &mut [u8],
    params: &mut GroupParams<'_>,
    mode: Mode,
) -> Result<(), Error> {
    let bits = k.bits();
    let bpb = B / 8 * bits as usize;
    let mut buf = [0u8; B];
    for (g, (xs, cs)) in x.chunks(B).zip(codes.chunks_mut(bpb)).enumerate() {
        let st = if let Ok(xa) = <&[f32; B]>::try_from(xs) {
            kernel_stats(k, xa)
        } else {
            kernel_stats(k, xs)
        };
        let st = group_stats(k, g, st, || g * B + first_nonfinite(xs))?;
        let (s, z) = k.params(g, st)?;
        params.set(g, s, z);
        let e = k.enc(s.value, z);
        match (<&[f32; B]>::try_from(xs), bits) {
            (Ok(xa), 8) => encode_dispatch(mode, &e, xa, cs),
            (Ok(xa), 4) => {
                encode_dispatch(mode, &e, xa, &mut buf);
                // Pairs as little-endian u16 words: one shift-and-mask per byte.
                for (o, p) in cs.iter_mut().zip(buf.chunks_exact(2)) {
                    let w = u16::from_le_bytes([p[0], p[1]]);
                    *o = (((w & 0x0f) << 4) | ((w >> 8) & 0x0f)) as u8;
                }
            }
            (Ok(xa), _) => {
                encode_dispatch(mode, &e, xa, &mut buf);
                pack_unchecked(bits, &buf, cs);
            }
            (Err(_), _) => {
                let t = xs.len();
                encode_dispatch(mode, &e, xs, &mut buf[..t]);
                pack_unchecked(bits, &buf[..t], cs);
            }
        }
    }
    Ok(())
}

/// Codes staged in `CH`-element chunks and packed into `codes` as each chunk fills.
struct Stager<'a> {
    bits: u32,
    codes: &'a mut [u8],
    buf: [u8; CH],
    fill: usize,
    chunk: usize,
}

impl<'a> Stager<'a> {
    #[inline(always)]
    fn new(bits: u32, codes: &'a mut [u8]) -> Self {
        Self {
            bits,
            codes,
            buf: [0; CH],
            fill: 0,
            chunk: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, mut x: &[f32], e: &Enc, mode: Mode) {
        while !x.is_empty() {
            let take = (CH - self.fill).min(x.len());
            encode_dispatch(mode, e, &x[..take], &mut self.buf[self.fill..self.fill + take]);
            self.fill += take;
            x = &x[take..];
            if self.fill == CH {
                let w = CH / 8 * self.bits as usize;
                pack_unchecked(
                    self.bits,
                    &self.buf,
                    &mut self.codes[self.chunk * w..(self.chunk + 1) * w],
                );
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
            pack_unchecked(self.bits, &self.buf[..self.fill], &mut self.codes[at..at + n]);
        }
    }
}

/// Quantize `x` into `out` with kernel `k`, with the widest instruction set available.
pub(crate) fn quantize<K: Kernel>(k: &K, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
    crate::arch::run(QuantizeJob { k, x, out })
}

/// Dequantize `q` into `out` with kernel `k`, with the widest instruction set available.
pub(crate) fn dequantize<K: Kernel>(k: &K, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
    crate::arch::run(DequantizeJob { k, q, out })
}

struct QuantizeJob<'a, K> {
    k: &'a K,
    x: &'a [f32],
    out: &'a mut Quantized,
}

impl<K: Kernel> crate::arch::Job for QuantizeJob<'_, K> {
    type Out = Result<(), Error>;
    #[inline(always)]
    fn run(self) -> Self::Out {
        quantize_portable(self.k, self.x, self.out)
    }
}

struct DequantizeJob<'a, K> {
    k: &'a K,
    q: &'a Quantized,
    out: &'a mut [f32],
}

impl<K: Kernel> crate::arch::Job for DequantizeJob<'_, K> {
    type Out = Result<(), Error>;
    #[inline(always)]
    fn run(self) -> Self::Out {
        dequantize_portable(self.k, self.q, self.out)
    }
}

/// Quantize `x` into `out` with kernel `k` (the portable loop; `tests` compare it with the
/// dispatched one).
#[inline(always)]
pub(crate) fn quantize_portable<K: Kernel>(k: &K, x: &[f32], out: &mut Quantized) -> Result<(), Error> {
    let gran = k.granularity();
    let bits = k.bits();
    let n = x.len();
    let groups = gran.groups(n)?;
    out.reset(K::SCHEME, bits, n, gran, k.layout(), groups);
    let mode = Mode::of(k.rounding())?;
    let (codes, mut params) = out.parts_mut();
    let params = &mut params;
    match gran.run(n) {
        Some(32) => fixed::<K, 32>(k, x, codes, params, mode)?,
        Some(64) => fixed::<K, 64>(k, x, codes, params, mode)?,
        Some(128) => fixed::<K, 128>(k, x, codes, params, mode)?,
        Some(256) => fixed::<K, 256>(k, x, codes, params, mode)?,
        Some(run) => {
            if bits == 8 {
                for (g, (xs, cs)) in x.chunks(run).zip(codes.chunks_mut(run)).enumerate() {
                    let st = group_stats(k, g, kernel_stats(k, xs), || g * run + first_nonfinite(xs))?;
                    let (s, z) = k.params(g, st)?;
                    params.set(g, s, z);
                    encode_dispatch(mode, &k.enc(s.value, z), xs, cs);
                }
            } else {
                let mut stage = Stager::new(bits, codes);
                for (g, xs) in x.chunks(run).enumerate() {
                    let st = group_stats(k, g, kernel_stats(k, xs), || g * run + first_nonfinite(xs))?;
                    let (s, z) = k.params(g, st)?;
                    params.set(g, s, z);
                    stage.push(xs, &k.enc(s.value, z), mode);
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
            let mut stage = Stager::new(bits, codes);
            for row in x.chunks_exact(cols.max(1)) {
                for (c, v) in row.iter().enumerate() {
                    let (s, z) = params.get(c);
                    stage.push(core::slice::from_ref(v), &k.enc(s, z), mode);
                }
            }
            stage.finish();
        }
    }
    Ok(())
}

/// Dequantize `q` into `out` with kernel `k` (the portable loop).
#[inline(always)]
pub(crate) fn dequantize_portable<K: Kernel>(k: &K, q: &Quantized, out: &mut [f32]) -> Result<(), Error> {
    super::check_compatible(q, K::SCHEME, k.bits(), out.len())?;
    let bits = q.bits();
    let n = q.len();
    let codes = q.codes();
    let scales = q.scales();
    let zps = q.zero_points();
    let affine = K::SCHEME == Scheme::Affine;
    let zp = |g: usize| if affine { zps[g] } else { 0 };
    match q.granularity().run(n) {
        Some(run) if bits == 8 => {
            for (g, (ys, cs)) in out.chunks_mut(run).zip(codes.chunks(run)).enumerate() {
                decode(&k.dec(scales[g], zp(g)), cs, ys);
            }
        }
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
                        unpack_unchecked(bits, &codes[at..at + packed_len(bits, cnt)], &mut buf[..cnt]);
                        avail = cnt;
                        pos = 0;
                        chunk += 1;
                    }
                    let take = (avail - pos).min(ys.len());
                    let (head, tail) = ys.split_at_mut(take);
                    decode(&d, &buf[pos..pos + take], head);
                    pos += take;
                    ys = tail;
                }
            }
        }
        None => {
            let cols = q.groups().max(1);
            let mut buf = [0u8; CH];
            for (ci, ys) in out.chunks_mut(CH).enumerate() {
                let cnt = ys.len();
                let at = ci * (CH / 8 * bits as usize);
                unpack_unchecked(bits, &codes[at..at + packed_len(bits, cnt)], &mut buf[..cnt]);
                for (j, y) in ys.iter_mut().enumerate() {
                    let c = (ci * CH + j) % cols;
                    decode(&k.dec(scales[c], zp(c)), &buf[j..j + 1], core::slice::from_mut(y));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{AbsmaxQuantizer, AffineQuantizer};

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
                let k = AbsmaxQuantizer::new(bits, g).unwrap();
                let (mut a, mut b) = (Quantized::empty(), Quantized::empty());
                quantize(&k, &x, &mut a).unwrap();
                quantize_portable(&k, &x, &mut b).unwrap();
                assert_eq!(a, b);
                let (mut ya, mut yb) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                dequantize(&k, &a, &mut ya).unwrap();
                dequantize_portable(&k, &a, &mut yb).unwrap();
                assert_eq!(ya, yb);
                let k = AffineQuantizer::new(bits, g).unwrap();
                quantize(&k, &x, &mut a).unwrap();
                quantize_portable(&k, &x, &mut b).unwrap();
                assert_eq!(a, b);
            }
        }
    }
}
