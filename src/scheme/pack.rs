//! Dense little-endian bit packing of small codes, shared by the binary, ternary and log
//! quantizers of this module.
//!
//! Element `i` of width `k` occupies bits `i*k .. i*k + k` of the stream, where bit `j` of the
//! stream is bit `j % 8` of byte `j / 8` (least significant bit first). With `k = 1` element 0
//! is the lowest bit of byte 0; with `k = 2` element 0 is bits 0–1 of byte 0. The last byte is
//! padded with zero bits.

use super::Error;

/// Bytes needed for `n` codes of `bits` bits.
pub(crate) fn packed_len(n: usize, bits: u32) -> usize {
    (n * bits as usize).div_ceil(8)
}

/// Pack `codes` (each `< 2^bits`, `bits` in 1..=8) into a new buffer.
pub(crate) fn pack(codes: &[u8], bits: u32) -> Vec<u8> {
    debug_assert!((1..=8).contains(&bits));
    let mut out = vec![0u8; packed_len(codes.len(), bits)];
    let mask = ((1u16 << bits) - 1) as u8;
    let mut pos = 0usize;
    for &c in codes {
        let c = u16::from(c & mask);
        let byte = pos / 8;
        let shift = pos % 8;
        let v = c << shift;
        out[byte] |= v as u8;
        if shift + bits as usize > 8 {
            out[byte + 1] |= (v >> 8) as u8;
        }
        pos += bits as usize;
    }
    out
}

/// Unpack `dst.len()` codes of `bits` bits from `packed`.
///
/// # Errors
/// [`Error::PackedLength`] when `packed` does not have exactly the bytes `dst.len()` codes need.
pub(crate) fn unpack(packed: &[u8], bits: u32, dst: &mut [u8]) -> Result<(), Error> {
    let need = packed_len(dst.len(), bits);
    if packed.len() != need {
        return Err(Error::PackedLength {
            expected: need,
            got: packed.len(),
        });
    }
    let mask = (1u16 << bits) - 1;
    let mut pos = 0usize;
    for d in dst.iter_mut() {
        let byte = pos / 8;
        let shift = pos % 8;
        let mut v = u16::from(packed[byte]);
        if shift + bits as usize > 8 {
            v |= u16::from(packed[byte + 1]) << 8;
        }
        *d = ((v >> shift) & mask) as u8;
        pos += bits as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bit_order() {
        assert_eq!(pack(&[1, 0, 1, 1], 1), vec![0b1101]);
        assert_eq!(pack(&[1, 2, 3, 0, 2], 2), vec![0b00_11_10_01, 0b10]);
        // 3-bit codes straddle bytes.
        assert_eq!(pack(&[7, 7, 7], 3), vec![0xff, 0x01]);
    }

    #[test]
    fn round_trip_every_width() {
        for bits in 1..=8u32 {
            let codes: Vec<u8> = (0..101u32).map(|i| ((i * 37 + 11) % (1 << bits)) as u8).collect();
            let p = pack(&codes, bits);
            assert_eq!(p.len(), packed_len(codes.len(), bits));
            let mut back = vec![0u8; codes.len()];
            unpack(&p, bits, &mut back).unwrap();
            assert_eq!(back, codes, "bits {bits}");
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        let mut d = [0u8; 9];
        assert!(matches!(
            unpack(&[0u8; 1], 1, &mut d),
            Err(Error::PackedLength { expected: 2, got: 1 })
        ));
    }
}
