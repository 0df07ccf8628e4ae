//! The byte layout of a [`Quantized`] (documented on the type).

use super::{expect_len, in_f32_range, Quantized};
use crate::format::codec;
use crate::format::{Layout, NanRule, Specials};
use crate::quant::double::DoubleQuant;
use crate::quant::pack::{self, BitOrder};
use crate::quant::{Error, Granularity, Scheme};

const MAGIC: &[u8; 4] = b"LBQT";
pub(crate) const HEADER: usize = 32;

fn scale_width(l: &Layout) -> usize {
    match l.bits() {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

impl Quantized {
    /// Size of [`to_bytes`](Self::to_bytes)' output.
    pub fn byte_len(&self) -> usize {
        let scales = match &self.double {
            Some(d) => 12 + 4 * d.absmax2().len() + d.codes().len(),
            None => self.scales.len() * scale_width(&self.scale_layout),
        };
        HEADER + 4 * usize::from(self.tensor_scale.is_some()) + scales + self.zero_points.len() + self.codes.len()
    }

    /// Serialize in the documented layout (see the type's docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.extend_from_slice(MAGIC);
        out.push(1);
        out.push(self.bits as u8);
        out.push(self.scheme.tag());
        let (gt, gp) = self.granularity.tag();
        out.push(gt);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&gp.to_le_bytes());
        let l = &self.scale_layout;
        out.push(l.exp_bits as u8);
        out.push(l.man_bits as u8);
        out.extend_from_slice(&(l.bias as i16).to_le_bytes());
        out.push(match l.specials {
            Specials::Ieee => 0,
            Specials::FiniteNan => 1,
            Specials::FiniteNanUnsignedZero => 2,
            Specials::Finite => 3,
            Specials::PowerOfTwo => 4,
        });
        out.push(match l.nan_rule {
            NanRule::Canonical => 0,
            NanRule::Payload { quiet: false } => 1,
            NanRule::Payload { quiet: true } => 2,
        });
        let w = scale_width(l);
        out.push(w as u8);
        let order = match self.order {
            BitOrder::MsbFirst => 0,
            BitOrder::LsbFirst => 1,
        };
        out.push(
            order
                | u8::from(self.tensor_scale.is_some()) << 1
                | u8::from(self.double.is_some()) << 2
                | u8::from(self.has_non_finite_scales()) << 3,
        );
        if let Some(t) = self.tensor_scale {
            out.extend_from_slice(&t.to_le_bytes());
        }
        match &self.double {
            Some(d) => {
                out.extend_from_slice(&d.offset().to_le_bytes());
                out.extend_from_slice(&(d.blocksize2() as u64).to_le_bytes());
                for a in d.absmax2() {
                    out.extend_from_slice(&a.to_le_bytes());
                }
                out.extend_from_slice(d.codes());
            }
            None => {
                for &c in &self.scale_codes {
                    out.extend_from_slice(&c.to_le_bytes()[..w]);
                }
            }
        }
        out.extend_from_slice(&self.zero_points);
        out.extend_from_slice(&self.codes);
        out
    }

    /// Read the layout written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] when the buffer is shorter than its header (or than the
    /// header says), [`Error::InvalidHeader`] for a bad magic, version or field,
    /// [`Error::LengthMismatch`] for trailing bytes, [`Error::ScaleOutOfRange`] for a NaN or
    /// infinite scale in a buffer whose header does not declare non-finite scales (bit 3 of
    /// byte 31; a header that declares them must hold one), the errors of
    /// [`DoubleQuant::from_parts`] for double-quantized scales, and those of
    /// [`from_parts`](Self::from_parts).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER {
            return Err(Error::BufferTooShort {
                needed: HEADER,
                got: bytes.len(),
            });
        }
        if &bytes[..4] != MAGIC {
            return Err(Error::InvalidHeader("bad magic"));
        }
        if bytes[4] != 1 {
            return Err(Error::InvalidHeader("unknown version"));
        }
        let bits = u32::from(bytes[5]);
        pack::check_bits(bits)?;
        let scheme = Scheme::from_tag(bytes[6]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let len = usize::try_from(u64_at(8)).map_err(|_| Error::InvalidHeader("length too large"))?;
        let gp = usize::try_from(u64_at(16)).map_err(|_| Error::InvalidHeader("group size too large"))?;
        let granularity = match bytes[7] {
            0 => Granularity::PerTensor,
            1 => Granularity::PerRow { cols: gp },
            2 => Granularity::PerColumn { cols: gp },
            3 => Granularity::PerBlock(gp),
            _ => return Err(Error::InvalidHeader("unknown granularity")),
        };
        let groups = granularity.groups(len)?;
        let specials = match bytes[28] {
            0 => Specials::Ieee,
            1 => Specials::FiniteNan,
            2 => Specials::FiniteNanUnsignedZero,
            3 => Specials::Finite,
            4 => Specials::PowerOfTwo,
            _ => return Err(Error::InvalidHeader("unknown scale specials")),
        };
        let nan_rule = match bytes[29] {
            0 => NanRule::Canonical,
            1 => NanRule::Payload { quiet: false },
            2 => NanRule::Payload { quiet: true },
            _ => return Err(Error::InvalidHeader("unknown scale NaN rule")),
        };
        let (exp_bits, man_bits) = (u32::from(bytes[24]), u32::from(bytes[25]));
        let bias = i32::from(i16::from_le_bytes([bytes[26], bytes[27]]));
        let layout = Layout::try_new(exp_bits, man_bits, bias, specials, nan_rule)
            .map_err(|_| Error::InvalidHeader("unsupported scale format"))?;
        if !in_f32_range(&layout) {
            return Err(Error::InvalidHeader("scale format outside the f32 range"));
        }
        let w = scale_width(&layout);
        if usize::from(bytes[30]) != w {
            return Err(Error::InvalidHeader("scale width does not match the scale format"));
        }
        let zp = if scheme == Scheme::Affine { groups } else { 0 };
        let order = match bytes[31] & 1 {
            0 => BitOrder::MsbFirst,
            _ => BitOrder::LsbFirst,
        };
        if bytes[31] >> 4 != 0 {
            return Err(Error::InvalidHeader("unknown flags in byte 31"));
        }
        let has_tensor_scale = bytes[31] & 2 != 0;
        let is_double = bytes[31] & 4 != 0;
        let declares_non_finite = bytes[31] & 8 != 0;
        let ts_len = 4 * usize::from(has_tensor_scale);
        let mut at = HEADER + ts_len;
        // Double-quantized scales: offset, nested block size, second-level absmax, codes.
        let (scale_len, blocksize2) = if is_double {
            if layout != <crate::Fp32 as crate::format::FloatFormat>::LAYOUT || scheme == Scheme::Affine {
                return Err(Error::InvalidHeader(
                    "double-quantized scales must be f32 without zero points",
                ));
            }
            if bytes.len() < at + 12 {
                return Err(Error::BufferTooShort {
                    needed: at + 12,
                    got: bytes.len(),
                });
            }
            let b2 = usize::try_from(u64_at(at + 4)).map_err(|_| Error::InvalidHeader("nested block too large"))?;
            if b2 == 0 {
                return Err(Error::ZeroGroupSize);
            }
            let len = groups
                .div_ceil(b2)
                .checked_mul(4)
                .and_then(|s| s.checked_add(12 + groups))
                .ok_or(Error::InvalidHeader("sizes overflow"))?;
            (len, b2)
        } else {
            (groups.checked_mul(w).ok_or(Error::InvalidHeader("sizes overflow"))?, 0)
        };
        let needed = scale_len
            .checked_add(HEADER + ts_len + zp)
            .and_then(|s| s.checked_add(pack::packed_len(bits, len)))
            .ok_or(Error::InvalidHeader("sizes overflow"))?;
        if bytes.len() < needed {
            return Err(Error::BufferTooShort {
                needed,
                got: bytes.len(),
            });
        }
        expect_len(needed, bytes.len())?;
        let f32_at = |o: usize| f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let tensor_scale = has_tensor_scale.then(|| f32_at(HEADER));
        let (scale_codes, scales, double) = if is_double {
            let offset = f32_at(at);
            let n2 = groups.div_ceil(blocksize2);
            let absmax2 = (0..n2).map(|i| f32_at(at + 12 + 4 * i)).collect();
            let codes = bytes[at + 12 + 4 * n2..at + scale_len].to_vec();
            let d = DoubleQuant::from_parts(codes, absmax2, offset, blocksize2)?;
            let scales = d.restore()?;
            (scales.iter().map(|s| s.to_bits()).collect(), scales, Some(d))
        } else {
            let scale_codes: Vec<u32> = bytes[at..at + scale_len]
                .chunks_exact(w)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b[..w].copy_from_slice(c);
                    u32::from_le_bytes(b)
                })
                .collect();
            if scale_codes.iter().any(|&c| u64::from(c) >> layout.bits() != 0) {
                return Err(Error::InvalidHeader("scale code wider than its format"));
            }
            let scales = scale_codes
                .iter()
                .map(|&c| codec::decode_f32(&layout, u64::from(c)))
                .collect();
            (scale_codes, scales, None)
        };
        at += scale_len;
        let zero_points = bytes[at..at + zp].to_vec();
        at += zp;
        let codes = bytes[at..].to_vec();
        let q = Self::checked(
            scheme,
            bits,
            len,
            granularity,
            layout,
            codes,
            scale_codes,
            scales,
            zero_points,
        )?;
        let mut q = q.with_bit_order(order).with_tensor_scale(tensor_scale)?;
        q.double = double;
        if q.has_non_finite_scales() != declares_non_finite {
            if !declares_non_finite {
                let group = q.scales.iter().position(|s| !s.is_finite()).unwrap_or(0);
                let scale = q.scales.get(group).copied().or(q.tensor_scale).unwrap_or(f32::NAN);
                return Err(Error::ScaleOutOfRange { group, scale });
            }
            return Err(Error::InvalidHeader("non-finite scales declared but none held"));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of every header byte, for a few layouts: an error or a value, never a panic.
    #[test]
    fn corrupt_headers_never_panic() {
        use crate::quant::{AbsmaxQuantizer, AffineQuantizer, Quantizer};
        let x: Vec<f32> = (0..40).map(|i| i as f32 - 17.5).collect();
        let values = [
            AbsmaxQuantizer::new(3, Granularity::PerBlock(7))
                .unwrap()
                .quantize(&x)
                .unwrap(),
            AbsmaxQuantizer::<crate::E8M0>::with_scale_format(4, Granularity::PerRow { cols: 8 })
                .unwrap()
                .quantize(&x)
                .unwrap(),
            AffineQuantizer::<crate::Bf16>::with_scale_format(5, Granularity::PerColumn { cols: 5 })
                .unwrap()
                .quantize(&x)
                .unwrap(),
        ];
        for q in values {
            let bytes = q.to_bytes();
            for i in 0..HEADER {
                for v in 0..=255u8 {
                    let mut b = bytes.clone();
                    b[i] = v;
                    if let Ok(back) = Quantized::from_bytes(&b) {
                        assert_eq!(back.byte_len(), b.len());
                    }
                }
            }
        }
    }

    /// A NaN scale is refused unless the header declares non-finite scales, which `to_bytes`
    /// does for values that hold them (a propagated NaN block).
    #[test]
    fn non_finite_scales_must_be_declared() {
        use crate::quant::{AbsmaxQuantizer, Quantizer};
        use crate::NonFinite;
        let q = AbsmaxQuantizer::new(8, Granularity::PerBlock(2)).unwrap();
        let z = q.quantize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let mut b = z.to_bytes();
        assert_eq!(b[31] & 8, 0);
        b[HEADER..HEADER + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            Quantized::from_bytes(&b),
            Err(Error::ScaleOutOfRange { group: 0, scale }) if scale.is_nan()
        ));
        b[31] |= 8;
        assert!(Quantized::from_bytes(&b).is_ok());
        // Declared but none held: not what to_bytes writes.
        let mut b = z.to_bytes();
        b[31] |= 8;
        assert!(matches!(Quantized::from_bytes(&b), Err(Error::InvalidHeader(_))));
        // A propagated NaN block round-trips.
        let p = q.with_non_finite(NonFinite::Propagate);
        let z = p.quantize(&[1.0, f32::NAN, 3.0, 4.0]).unwrap();
        assert!(z.has_non_finite_scales());
        let back = Quantized::from_bytes(&z.to_bytes()).unwrap();
        assert_eq!(back, z);
    }

    #[test]
    fn double_quant_bytes() {
        use crate::quant::{Codebook, CodebookQuantizer, Quantizer};
        let x: Vec<f32> = (0..1000)
            .map(|i| (i as f32 * 0.37).sin() * (1 + i % 7) as f32)
            .collect();
        let q = CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(4))
            .unwrap()
            .with_double_quant(Some(16))
            .unwrap();
        let z = q.quantize(&x).unwrap();
        let d = z.double_quant().unwrap();
        assert_eq!((d.codes().len(), d.absmax2().len()), (250, 16));
        let b = z.to_bytes();
        assert_eq!(b.len(), z.byte_len());
        assert_eq!(b[31] & 4, 4);
        assert_eq!(Quantized::from_bytes(&b).unwrap(), z);
        // A zero nested block size, truncated buffers: errors.
        let mut bad = b.clone();
        bad[HEADER + 4..HEADER + 12].fill(0);
        assert_eq!(Quantized::from_bytes(&bad), Err(Error::ZeroGroupSize));
        for cut in [HEADER + 3, HEADER + 20, b.len() - 1] {
            assert!(Quantized::from_bytes(&b[..cut]).is_err());
        }
        // A huge nested block size is one second-level scale, not an allocation.
        let mut big = b.clone();
        big[HEADER + 4..HEADER + 12].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Quantized::from_bytes(&big).is_err());
        // Plain quantizers reset the double quantization of a reused value.
        let mut reuse = z.clone();
        CodebookQuantizer::new(Codebook::nf4(), Granularity::PerBlock(4))
            .unwrap()
            .quantize_into(&x, &mut reuse)
            .unwrap();
        assert!(reuse.double_quant().is_none());
        assert_eq!(q.dequantize(&reuse).unwrap().len(), 1000);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            Quantized::from_bytes(&[0; 10]),
            Err(Error::BufferTooShort { needed: 32, got: 10 })
        );
        let mut b = Quantized::empty().to_bytes();
        assert_eq!(Quantized::from_bytes(&b), Ok(Quantized::empty()));
        b[0] = b'X';
        assert_eq!(Quantized::from_bytes(&b), Err(Error::InvalidHeader("bad magic")));
    }
}
