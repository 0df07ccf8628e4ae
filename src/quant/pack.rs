//! Dense bit packing of `k`-bit codes, `k = 1..=8`, in either [`BitOrder`].
//!
//! [`BitOrder::MsbFirst`], the default ([`pack`], [`unpack`]): codes are laid out as one bit stream: element `i` occupies stream bits `i*k .. (i+1)*k`,
//! and the stream fills each byte from its most significant bit down. So the first element
//! sits in the high bits of the first byte: for 4-bit codes `[a, b]` the byte is `a << 4 | b`
//! (bitsandbytes' "first element in the high nibble"), for 2-bit codes `[a, b, c, d]` it is
//! `a << 6 | b << 4 | c << 2 | d`, and a 3-bit stream of 8 codes fills exactly 3 bytes. The
//! unused low bits of the last byte are zero. `n` codes take [`packed_len`]`(k, n)` =
//! `ceil(n * k / 8)` bytes.
//!
//! [`BitOrder::LsbFirst`] ([`pack_in`], [`unpack_in`]) fills each byte from its least
//! significant bit up: for 4-bit codes `[a, b]` the byte is `b << 4 | a`, the first element
//! in the LOW nibble, as torch's `float4_e2m1fn_x2`, the OCP MX spec and NVIDIA's FP4 layout
//! store it. Stream bit `j` is bit `j % 8` of byte `j / 8`.
//!
//! # Examples
//!
//! ```
//! use lowbit::quant::pack;
//!
//! let codes = [1u8, 2, 3, 4, 5];
//! let mut bytes = vec![0u8; pack::packed_len(3, codes.len())];
//! pack::pack(3, &codes, &mut bytes)?;
//! // 001 010 011 100 101 (+ 0 padding) = 0b0010_1001, 0b1100_1010
//! assert_eq!(bytes, [0b0010_1001, 0b1100_1010]);
//!
//! let mut back = [0u8; 5];
//! pack::unpack(3, &bytes, &mut back)?;
//! assert_eq!(back, codes);
//! # Ok::<(), lowbit::QuantError>(())
//! ```

use super::Error;

/// `$f::<K>(args)` for `bits = K` in `1..=7`, `$wide` for 8: the one dispatch from a run-time
/// width to the const-generic loops.
macro_rules! by_width {
    ($bits:expr, $f:ident($($arg:expr),*), $wide:expr) => {
        match $bits {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            _ => $wide,
        }
    };
}

/// The order in which codes fill a byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BitOrder {
    /// The first code in the most significant bits (bitsandbytes' high nibble first; the
    /// 6-bit stream torchao packs FP6 into). The default.
    #[default]
    MsbFirst,
    /// The first code in the least significant bits (OCP MX and NVFP4's low nibble first).
    LsbFirst,
}

/// Bytes needed for `n` codes of `bits` bits: `ceil(n * bits / 8)`.
///
/// ```
/// assert_eq!(lowbit::quant::pack::packed_len(4, 7), 4);
/// assert_eq!(lowbit::quant::pack::packed_len(3, 8), 3);
/// ```
#[inline]
pub const fn packed_len(bits: u32, n: usize) -> usize {
    // Exact in u128 for any arguments; a length no buffer can have saturates at usize::MAX
    // (callers compare it with a real length, which then differs).
    let b = (n as u128 * bits as u128).div_ceil(8);
    if b > usize::MAX as u128 {
        usize::MAX
    } else {
        b as usize
    }
}

/// Check that `bits` is in `1..=8`.
pub(crate) fn check_bits(bits: u32) -> Result<(), Error> {
    if (1..=8).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidBits { bits, min: 1, max: 8 })
    }
}

/// Pack `codes` (each `< 2^bits`) into `out`, which must be exactly
/// [`packed_len`]`(bits, codes.len())` bytes long.
///
/// # Errors
/// [`Error::InvalidBits`] unless `1 <= bits <= 8`, [`Error::LengthMismatch`] when `out` has
/// the wrong length, [`Error::CodeOutOfRange`] when a code does not fit in `bits` bits.
pub fn pack(bits: u32, codes: &[u8], out: &mut [u8]) -> Result<(), Error> {
    check_bits(bits)?;
    check_out(bits, codes.len(), out.len())?;
    check_codes(bits, codes)?;
    pack_unchecked(bits, codes, out);
    Ok(())
}

/// Unpack `out.len()` codes of `bits` bits from `packed`, which must be exactly
/// [`packed_len`]`(bits, out.len())` bytes long.
///
/// # Errors
/// [`Error::InvalidBits`] unless `1 <= bits <= 8`, [`Error::LengthMismatch`] when `packed`
/// has the wrong length.
pub fn unpack(bits: u32, packed: &[u8], out: &mut [u8]) -> Result<(), Error> {
    check_bits(bits)?;
    check_out(bits, out.len(), packed.len())?;
    unpack_unchecked(bits, packed, out);
    Ok(())
}

/// [`pack`] in the given bit order.
///
/// ```
/// use lowbit::quant::pack::{self, BitOrder};
/// let mut b = [0u8; 1];
/// pack::pack_in(BitOrder::LsbFirst, 4, &[0x1, 0xf], &mut b)?;
/// assert_eq!(b, [0xf1]); // first element in the low nibble
/// # Ok::<(), lowbit::QuantError>(())
/// ```
///
/// # Errors
/// As [`pack`].
pub fn pack_in(order: BitOrder, bits: u32, codes: &[u8], out: &mut [u8]) -> Result<(), Error> {
    match order {
        BitOrder::MsbFirst => pack(bits, codes, out),
        BitOrder::LsbFirst => {
            check_bits(bits)?;
            check_out(bits, codes.len(), out.len())?;
            check_codes(bits, codes)?;
            pack_ordered(order, bits, codes, out);
            Ok(())
        }
    }
}

/// [`unpack`] in the given bit order.
///
/// # Errors
/// As [`unpack`].
pub fn unpack_in(order: BitOrder, bits: u32, packed: &[u8], out: &mut [u8]) -> Result<(), Error> {
    check_bits(bits)?;
    check_out(bits, out.len(), packed.len())?;
    unpack_ordered(order, bits, packed, out);
    Ok(())
}

/// Pack with the lengths already checked, in either order.
#[inline(always)]
pub(crate) fn pack_ordered(order: BitOrder, bits: u32, codes: &[u8], out: &mut [u8]) {
    match order {
        BitOrder::MsbFirst => pack_unchecked(bits, codes, out),
        BitOrder::LsbFirst => by_width!(bits, pack_lsb(codes, out), out.copy_from_slice(codes)),
    }
}

/// Unpack with the lengths already checked, in either order.
#[inline(always)]
pub(crate) fn unpack_ordered(order: BitOrder, bits: u32, packed: &[u8], out: &mut [u8]) {
    match order {
        BitOrder::MsbFirst => unpack_unchecked(bits, packed, out),
        BitOrder::LsbFirst => by_width!(bits, unpack_lsb(packed, out), out.copy_from_slice(packed)),
    }
}

/// Eight codes to a `K`-byte little-endian group, the first code in the lowest bits.
#[inline(always)]
fn group_lsb<const K: usize>(c: &[u8; 8]) -> u64 {
    let mask = (1u64 << K) - 1;
    c.iter()
        .enumerate()
        .fold(0u64, |v, (j, &x)| v | ((u64::from(x) & mask) << (j * K)))
}

#[inline(always)]
fn pack_lsb<const K: usize>(codes: &[u8], out: &mut [u8]) {
    let full = codes.len() / 8;
    let (head, tail) = codes.split_at(full * 8);
    let (ohead, otail) = out.split_at_mut(full * K);
    if K == 4 {
        for (o, c) in ohead.iter_mut().zip(head.chunks_exact(2)) {
            *o = (c[0] & 0x0f) | (c[1] << 4);
        }
    } else {
        for (o, c) in ohead.chunks_exact_mut(K).zip(head.chunks_exact(8)) {
            let c: &[u8; 8] = c.try_into().unwrap_or(&[0; 8]);
            o.copy_from_slice(&group_lsb::<K>(c).to_le_bytes()[..K]);
        }
    }
    if !tail.is_empty() {
        let mut c = [0u8; 8];
        c[..tail.len()].copy_from_slice(tail);
        let n = otail.len();
        otail.copy_from_slice(&group_lsb::<K>(&c).to_le_bytes()[..n]);
    }
}

#[inline(always)]
fn unpack_lsb<const K: usize>(packed: &[u8], out: &mut [u8]) {
    let mask = (1u64 << K) - 1;
    let full = out.len() / 8;
    let (ohead, otail) = out.split_at_mut(full * 8);
    let (head, tail) = packed.split_at(full * K);
    if K == 4 {
        for (c, &b) in ohead.chunks_exact_mut(2).zip(head) {
            c[0] = b & 0xf;
            c[1] = b >> 4;
        }
    } else {
        for (c, b) in ohead.chunks_exact_mut(8).zip(head.chunks_exact(K)) {
            let mut w = [0u8; 8];
            w[..K].copy_from_slice(b);
            let v = u64::from_le_bytes(w);
            for (j, o) in c.iter_mut().enumerate() {
                *o = ((v >> (j * K)) & mask) as u8;
            }
        }
    }
    if !otail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        let v = u64::from_le_bytes(w);
        for (j, o) in otail.iter_mut().enumerate() {
            *o = ((v >> (j * K)) & mask) as u8;
        }
    }
}

fn check_codes(bits: u32, codes: &[u8]) -> Result<(), Error> {
    if bits < 8 {
        if let Some(index) = codes.iter().position(|&c| c >> bits != 0) {
            return Err(Error::CodeOutOfRange {
                index,
                code: codes[index],
                bits,
            });
        }
    }
    Ok(())
}

fn check_out(bits: u32, n: usize, bytes: usize) -> Result<(), Error> {
    let expected = packed_len(bits, n);
    if expected == bytes {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected,
            actual: bytes,
        })
    }
}

/// Pack with the lengths already checked; codes are masked to `bits` bits.
#[inline(always)]
pub(crate) fn pack_unchecked(bits: u32, codes: &[u8], out: &mut [u8]) {
    by_width!(bits, pack_k(codes, out), out.copy_from_slice(codes))
}

/// Unpack with the lengths already checked.
#[inline(always)]
pub(crate) fn unpack_unchecked(bits: u32, packed: &[u8], out: &mut [u8]) {
    by_width!(bits, unpack_k(packed, out), out.copy_from_slice(packed))
}

/// Eight codes to a `K`-byte big-endian group.
#[inline(always)]
fn group<const K: usize>(c: &[u8; 8]) -> u64 {
    let mask = (1u64 << K) - 1;
    let mut v = 0u64;
    for &x in c {
        v = (v << K) | (u64::from(x) & mask);
    }
    v
}

#[inline(always)]
fn pack_k<const K: usize>(codes: &[u8], out: &mut [u8]) {
    let full = codes.len() / 8;
    let (head, tail) = codes.split_at(full * 8);
    let (ohead, otail) = out.split_at_mut(full * K);
    if K == 4 {
        for (o, c) in ohead.iter_mut().zip(head.chunks_exact(2)) {
            // The pair as a little-endian u16 word, which vectorizes well.
            let w = u16::from_le_bytes([c[0], c[1]]);
            *o = (((w & 0x0f) << 4) | ((w >> 8) & 0x0f)) as u8;
        }
    } else if K == 2 || K == 1 {
        let per = 8 / K;
        let mask = ((1u16 << K) - 1) as u8;
        for (o, c) in ohead.iter_mut().zip(head.chunks_exact(per)) {
            let mut b = 0u8;
            for &x in c {
                b = (b << K) | (x & mask);
            }
            *o = b;
        }
    } else {
        for (o, c) in ohead.chunks_exact_mut(K).zip(head.chunks_exact(8)) {
            let c: &[u8; 8] = c.try_into().unwrap_or(&[0; 8]);
            let v = group::<K>(c);
            o.copy_from_slice(&v.to_be_bytes()[8 - K..]);
        }
    }
    if !tail.is_empty() {
        let mut c = [0u8; 8];
        c[..tail.len()].copy_from_slice(tail);
        let v = group::<K>(&c);
        let n = otail.len();
        otail.copy_from_slice(&v.to_be_bytes()[8 - K..8 - K + n]);
    }
}

#[inline(always)]
fn ungroup<const K: usize>(v: u64, out: &mut [u8; 8]) {
    let mask = (1u64 << K) - 1;
    for (j, o) in out.iter_mut().enumerate() {
        *o = ((v >> ((7 - j) * K)) & mask) as u8;
    }
}

#[inline(always)]
fn unpack_k<const K: usize>(packed: &[u8], out: &mut [u8]) {
    let full = out.len() / 8;
    let (ohead, otail) = out.split_at_mut(full * 8);
    let (head, tail) = packed.split_at(full * K);
    if K == 4 {
        for (c, &b) in ohead.chunks_exact_mut(2).zip(head) {
            c[0] = b >> 4;
            c[1] = b & 0xf;
        }
    } else if K == 2 || K == 1 {
        let per = 8 / K;
        let mask = ((1u16 << K) - 1) as u8;
        for (c, &b) in ohead.chunks_exact_mut(per).zip(head) {
            for (j, o) in c.iter_mut().enumerate() {
                *o = (b >> ((per - 1 - j) * K)) & mask;
            }
        }
    } else {
        for (c, b) in ohead.chunks_exact_mut(8).zip(head.chunks_exact(K)) {
            let mut w = [0u8; 8];
            w[8 - K..].copy_from_slice(b);
            let c: &mut [u8; 8] = c.try_into().unwrap_or_else(|_| unreachable!());
            ungroup::<K>(u64::from_be_bytes(w), c);
        }
    }
    if !otail.is_empty() {
        let mut w = [0u8; 8];
        w[8 - K..8 - K + tail.len()].copy_from_slice(tail);
        let mut c = [0u8; 8];
        ungroup::<K>(u64::from_be_bytes(w), &mut c);
        let n = otail.len();
        otail.copy_from_slice(&c[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_widths_and_lengths() {
        for bits in 1..=8u32 {
            for n in 0..40usize {
                let codes: Vec<u8> = (0..n)
                    .map(|i| ((i * 37 + 11) as u8) & ((1u16 << bits) - 1) as u8)
                    .collect();
                let mut p = vec![0u8; packed_len(bits, n)];
                pack(bits, &codes, &mut p).unwrap();
                let mut back = vec![0u8; n];
                unpack(bits, &p, &mut back).unwrap();
                assert_eq!(back, codes, "bits {bits} n {n}");
            }
        }
    }

    #[test]
    fn lsb_first_round_trips_and_order() {
        for bits in 1..=8u32 {
            for n in 0..40usize {
                let codes: Vec<u8> = (0..n)
                    .map(|i| ((i * 37 + 11) as u8) & ((1u16 << bits) - 1) as u8)
                    .collect();
                let mut p = vec![0u8; packed_len(bits, n)];
                pack_in(BitOrder::LsbFirst, bits, &codes, &mut p).unwrap();
                // Stream bit j of code i is bit (i*k + j) % 8 of byte (i*k + j) / 8.
                for (i, &c) in codes.iter().enumerate() {
                    for j in 0..bits as usize {
                        let at = i * bits as usize + j;
                        assert_eq!((p[at / 8] >> (at % 8)) & 1, (c >> j) & 1, "bits {bits} n {n}");
                    }
                }
                let mut back = vec![0u8; n];
                unpack_in(BitOrder::LsbFirst, bits, &p, &mut back).unwrap();
                assert_eq!(back, codes, "bits {bits} n {n}");
            }
        }
        let mut p = [0u8; 2];
        pack_in(BitOrder::LsbFirst, 4, &[0x1, 0x2, 0x3], &mut p).unwrap();
        assert_eq!(p, [0x21, 0x03]);
        assert!(pack_in(BitOrder::LsbFirst, 4, &[16], &mut [0]).is_err());
    }

    #[test]
    fn msb_first_bit_order() {
        let mut p = [0u8; 1];
        pack(4, &[0xa, 0x5], &mut p).unwrap();
        assert_eq!(p, [0xa5]);
        pack(1, &[1, 0, 0, 0, 0, 0, 0, 1], &mut p).unwrap();
        assert_eq!(p, [0x81]);
        let mut p = [0u8; 2];
        pack(5, &[0b10000, 0b00001], &mut p).unwrap();
        assert_eq!(p, [0b1000_0000, 0b0100_0000]);
        let mut p = [0u8; 1];
        pack(2, &[3, 0, 1], &mut p).unwrap();
        assert_eq!(p, [0b1100_0100]);
    }

    #[test]
    fn packed_len_never_overflows() {
        assert_eq!(packed_len(u32::MAX, usize::MAX), usize::MAX);
        assert_eq!(packed_len(8, usize::MAX), usize::MAX);
        assert_eq!(packed_len(1, usize::MAX), usize::MAX.div_ceil(8));
        assert_eq!(packed_len(3, 8), 3);
    }

    #[test]
    fn errors() {
        assert!(matches!(pack(0, &[], &mut []), Err(Error::InvalidBits { .. })));
        assert!(matches!(pack(9, &[], &mut []), Err(Error::InvalidBits { .. })));
        assert!(matches!(
            pack(3, &[1, 8], &mut [0]),
            Err(Error::CodeOutOfRange {
                index: 1,
                code: 8,
                bits: 3
            })
        ));
        assert!(matches!(
            pack(4, &[1, 2, 3], &mut [0]),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            unpack(4, &[0], &mut [0; 3]),
            Err(Error::LengthMismatch { .. })
        ));
    }
}
