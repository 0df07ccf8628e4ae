//! Logarithmic (power-of-two) quantization: every value becomes `0` or `±2^e`, with `e` stored
//! as a `k`-bit code relative to the tensor's largest exponent (Miyashita et al., 2016).
//!
//! Each element takes `1 + k` bits: the sign (bit `k`) and the exponent code `c` (bits
//! `0..k`). `c = 0` is zero; `c` in `1..2^k` is `2^(e_max - (2^k - 1 - c))`, so the top code is
//! `2^e_max` and the grid spans `2^k - 1` octaves below it. `e_max` is the exponent of the
//! power of two nearest to `max|x|`.
//!
//! Rounding is to the nearest value of the grid in the linear domain (a magnitude in
//! `[2^e, 2^(e+1))` goes up from `1.5 · 2^e` on; ties go up), which minimises `|x - x'|`;
//! magnitudes below the smallest power of two round to it or to 0, whichever is nearer (ties
//! to the power of two). Multiplication by a dequantized value is a shift.
//!
//! The grid is a float format of its own: `k` exponent bits, no mantissa, no infinity or NaN,
//! and a bias that puts the top code on `2^e_max` ([`Log2Quantized::layout`]); the crate's one
//! codec encodes into it with [`Rounding::NearestAway`] (ties up, in magnitude) and saturation,
//! and decodes from it. Its subnormal step is the smallest power of two, which is why the
//! magnitudes below it go to it or to 0.
//!
//! The codes are packed densely, most significant bit first, as everywhere in the crate (see
//! [`Log2Quantized::packed`]).
//!
//! # Examples
//!
//! ```
//! use lowbit::scheme::log2::Log2Quantizer;
//!
//! let q = Log2Quantizer::new(3)?.quantize(&[1.0, -0.3, 0.0, 0.7, 0.012])?;
//! assert_eq!(q.e_max(), 0); // max |x| = 1 = 2^0
//! let mut y = [0.0; 5];
//! q.dequantize(&mut y)?;
//! assert_eq!(y, [1.0, -0.25, 0.0, 0.5, 0.015625]); // 2^-6 is the smallest step with k = 3
//! assert_eq!(q.bits_per_element(), 4.0 + 32.0 / 5.0); // sign + 3 bits, and the i32 e_max
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::{check_finite, check_len, pack_codes, Error};
use crate::format::{codec, Layout, NanRule, Options, Overflow, Rounding, Specials};

/// Power-of-two quantizer with `k`-bit exponent codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log2Quantizer {
    exp_bits: u32,
}

/// A tensor quantized to powers of two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Quantized {
    packed: Vec<u8>,
    len: usize,
    exp_bits: u32,
    e_max: i32,
}

/// Exponent of the power of two nearest to a positive finite `a` (ties up), exactly.
fn nearest_exponent(a: f32) -> i32 {
    let b = f64::from(a).to_bits();
    let e = ((b >> 52) & 0x7ff) as i32 - 1023;
    e + ((b >> 51) & 1) as i32
}

impl Log2Quantizer {
    /// Exponent codes of `exp_bits` bits (`1..=7`, so an element is at most a byte).
    ///
    /// # Errors
    /// [`Error::Bits`] outside `1..=7`.
    pub fn new(exp_bits: u32) -> Result<Self, Error> {
        if !(1..=7).contains(&exp_bits) {
            return Err(Error::Bits {
                bits: exp_bits,
                min: 1,
                max: 7,
            });
        }
        Ok(Log2Quantizer { exp_bits })
    }

    /// Quantize a tensor.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinity.
    pub fn quantize(&self, x: &[f32]) -> Result<Log2Quantized, Error> {
        check_finite(x, "x")?;
        let k = self.exp_bits;
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        // 2^e_max must be a finite f32.
        let e_max = if amax == 0.0 {
            0
        } else {
            nearest_exponent(amax).min(127)
        };
        let layout = grid(k, e_max);
        let opts = Options::rounding(Rounding::NearestAway).with_overflow(Overflow::Saturate);
        let zero_mask = (1u64 << k) - 1;
        let codes: Vec<u8> = x
            .iter()
            .map(|&v| {
                let c = codec::encode_f64(&layout, f64::from(v), opts);
                // A magnitude that rounds to zero is +0 (no negative zero code).
                (if c & zero_mask == 0 { 0 } else { c }) as u8
            })
            .collect();
        Ok(Log2Quantized {
            packed: pack_codes(&codes, k + 1),
            len: x.len(),
            exp_bits: k,
            e_max,
        })
    }
}

/// The format of the grid: `k` exponent bits, no mantissa, finite, exponent field `f` worth
/// `2^(e_max - (2^k - 1 - f))` (so field 0 is zero and its subnormal step the smallest power).
fn grid(k: u32, e_max: i32) -> Layout {
    let top = (1i32 << k) - 1;
    let e_min = e_max - (top - 1);
    match Layout::try_new(k, 0, 1 - e_min, Specials::Finite, NanRule::Canonical) {
        Ok(l) => l,
        // k <= 7 and -149 <= e_max <= 127 keep the bias within -1000..=1000 and the values
        // within f64: every grid the quantizer makes is a valid layout.
        Err(_) => unreachable!("a log2 grid is a valid layout"),
    }
}

impl Log2Quantized {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The exponent of the largest magnitude, `2^e_max`.
    pub fn e_max(&self) -> i32 {
        self.e_max
    }
    /// Width of the exponent code, `k`.
    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }
    /// The packed `1 + k`-bit codes: element `i` is bits `i(k+1) .. (i+1)(k+1)` of the byte
    /// stream, most significant bit first ([`crate::quant::pack`]); within an element the sign
    /// is the top bit.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }
    /// Storage in bytes: packed codes plus the 4-byte `e_max`.
    pub fn size_bytes(&self) -> usize {
        self.packed.len() + 4
    }
    /// Bits per element including `e_max`.
    pub fn bits_per_element(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        f64::from(self.exp_bits + 1) + 32.0 / self.len as f64
    }

    /// The codes, one per byte (sign in bit `k`).
    pub fn codes(&self) -> Vec<u8> {
        let mut c = vec![0u8; self.len];
        // The buffer was packed for exactly `len` codes.
        crate::quant::pack::unpack_unchecked(self.exp_bits + 1, &self.packed, &mut c);
        c
    }

    /// Dequantize into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `out.len() != self.len()`.
    pub fn dequantize(&self, out: &mut [f32]) -> Result<(), Error> {
        check_len("out", self.len, out.len())?;
        let layout = self.layout();
        let table: Vec<f32> = (0..1u64 << (self.exp_bits + 1))
            .map(|c| codec::decode_f32(&layout, c))
            .collect();
        for (o, c) in out.iter_mut().zip(self.codes()) {
            *o = table[usize::from(c)];
        }
        Ok(())
    }

    /// The grid as a float format: `k` exponent bits, no mantissa, finite, its top code
    /// `2^e_max`; the codes are its codes.
    pub fn layout(&self) -> Layout {
        grid(self.exp_bits, self.e_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_power_of_two() {
        assert_eq!(nearest_exponent(1.0), 0);
        assert_eq!(nearest_exponent(1.4999999), 0);
        assert_eq!(nearest_exponent(1.5), 1);
        assert_eq!(nearest_exponent(0.75), 0);
        assert_eq!(nearest_exponent(f32::from_bits(1)), -149);
        assert_eq!(nearest_exponent(f32::MAX), 128);
    }

    /// The definition, written out: the nearest power of two in the linear domain (ties up),
    /// below the grid to its smallest power or 0, whichever is nearer (ties to the power).
    fn reference(k: u32, x: &[f32]) -> (i32, Vec<u8>, Vec<f32>) {
        let top = (1i32 << k) - 1;
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let e_max = if amax == 0.0 {
            0
        } else {
            nearest_exponent(amax).min(127)
        };
        let e_min = e_max - (top - 1);
        let pow2 = |e: i32| 2f64.powi(e);
        let codes: Vec<u8> = x
            .iter()
            .map(|&v| {
                let a = v.abs();
                let c = if a == 0.0 {
                    0
                } else {
                    let e = nearest_exponent(a);
                    if e >= e_min {
                        e.min(e_max) - e_min + 1
                    } else if f64::from(a) >= pow2(e_min - 1) {
                        1
                    } else {
                        0
                    }
                };
                (u8::from(v.is_sign_negative() && c != 0) << k) | c as u8
            })
            .collect();
        let values = codes
            .iter()
            .map(|&code| {
                let c = i32::from(code) & top;
                let mag = if c == 0 { 0.0 } else { pow2(e_max - (top - c)) as f32 };
                if code >> k == 1 {
                    -mag
                } else {
                    mag
                }
            })
            .collect();
        (e_max, codes, values)
    }

    /// The codec on the grid's layout equals the definition, code for code and bit for bit,
    /// for every width, on magnitudes from subnormal to `f32::MAX`, ties included.
    #[test]
    fn codec_equals_definition() {
        let mut rng = crate::testing::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        for k in 1..=7 {
            for round in 0..300 {
                let scale = 2f32.powi((round % 56) * 5 - 150);
                let mut x: Vec<f32> = (0..64)
                    .map(|_| {
                        let r = next();
                        let v = ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale;
                        // Exact ties: 1.5 · 2^e, and midpoints between 0 and the smallest power.
                        match r % 7 {
                            0 => 1.5 * 2f32.powi((r >> 8) as i32 % 40 - 20),
                            1 => f32::from_bits(1) * ((r >> 8) % 4) as f32,
                            _ => v,
                        }
                    })
                    .collect();
                if round % 17 == 0 {
                    x.push(f32::MAX);
                }
                let q = Log2Quantizer::new(k).unwrap().quantize(&x).unwrap();
                let (e_max, codes, values) = reference(k, &x);
                assert_eq!(q.e_max(), e_max);
                assert_eq!(q.codes(), codes, "k {k} round {round}");
                let mut y = vec![0f32; x.len()];
                q.dequantize(&mut y).unwrap();
                assert_eq!(
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn grid_and_underflow() {
        let q = Log2Quantizer::new(2).unwrap(); // codes 1..=3: 2^(e_max-2) ..= 2^e_max
        let x = [8.0, 3.0, 2.9, 1.0, 0.99, 1.0 - 1e-7, -2.0, -0.5, 0.0];
        let r = q.quantize(&x).unwrap();
        assert_eq!(r.e_max(), 3);
        let mut y = [0.0; 9];
        r.dequantize(&mut y).unwrap();
        // 2^1 is the smallest: 1.0 is the midpoint to 0 and goes up; below it, 0.
        assert_eq!(y, [8.0, 4.0, 2.0, 2.0, 0.0, 0.0, -2.0, 0.0, 0.0]);
    }

    #[test]
    fn extremes() {
        let q = Log2Quantizer::new(7).unwrap();
        let r = q.quantize(&[f32::MAX, -1.0]).unwrap();
        assert_eq!(r.e_max(), 127);
        let mut y = [0.0; 2];
        r.dequantize(&mut y).unwrap();
        // The grid is 2^1 ..= 2^127: 1.0 is the midpoint between 0 and 2^1 and goes up.
        assert_eq!(y, [2f32.powi(127), -2.0]);
        assert!(Log2Quantizer::new(0).is_err());
        assert!(Log2Quantizer::new(8).is_err());
        assert!(q.quantize(&[f32::INFINITY]).is_err());
        let z = q.quantize(&[0.0, -0.0]).unwrap();
        z.dequantize(&mut y).unwrap();
        assert_eq!(y.map(f32::to_bits), [0, 0]);
        assert!(q.quantize(&[]).unwrap().is_empty());
    }
}
