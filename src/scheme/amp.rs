//! Automatic mixed precision: dynamic loss scaling ([`GradScaler`]), the inf/NaN check over
//! f16/bf16 gradient codes ([`find_non_finite`]), and f32 master weights for a bf16/f16
//! working copy ([`MasterWeights`]).
//!
//! [`GradScaler`] is `torch.amp.GradScaler` with its defaults: the loss is multiplied by the
//! scale (`2^16` at first) before the backward pass; the gradients are unscaled by `1/scale`
//! (computed in f64, rounded to f32, as torch does) and checked for inf/NaN; a step whose
//! gradients hold any is skipped and the scale is multiplied by the backoff factor 0.5; after
//! 2000 consecutive clean steps it is multiplied by the growth factor 2 (unless that would
//! overflow f32). The schedule is `torch._amp_update_scale_`'s, step for step, but for one
//! end: torch keeps backing off until the scale underflows to 0 (after about 150 overflowing
//! steps in a row, a diverged run), where `1 / scale` is infinite and unscaling turns every
//! gradient into an infinity or a NaN; here the scale stops at the smallest value whose
//! reciprocal is a finite `f32` (about `2.9e-39`).
//!
//! Non-finite inputs: a NaN or infinite loss scales to a NaN or infinity
//! ([`GradScaler::scale_loss`]), whose gradients then hold inf/NaN: unscaling records them and
//! [`GradScaler::update`] skips the step and backs off. [`MasterWeights`] refuses NaN and
//! infinities in its weights, codes and updates with [`Error::NonFinite`].
//!
//! # Examples
//!
//! ```
//! use lowbit::{Fp16, FloatFormat};
//! use lowbit::scheme::amp::GradScaler;
//!
//! let mut scaler = GradScaler::new();
//! assert_eq!(scaler.scale_loss(0.5), 32768.0);
//! // The backward pass produced f16 gradients of the scaled loss; one overflowed.
//! let grads = [Fp16::encode_f32(3.0), Fp16::encode_f32(1e6)];
//! let mut g32 = [0.0f32; 2];
//! scaler.unscale_codes::<Fp16>(&grads, &mut g32)?;
//! assert!(scaler.found_inf());
//! let outcome = scaler.update();
//! assert!(outcome.skipped); // don't call the optimizer for this step
//! assert_eq!(scaler.scale(), 32768.0);
//! # Ok::<(), lowbit::SchemeError>(())
//! ```

use super::{check_finite, check_len, Error};
use crate::format::{Code, FloatFormat, Specials};

/// Dynamic loss scaler with `torch.amp.GradScaler`'s schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct GradScaler {
    scale: f32,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u32,
    growth_tracker: u32,
    found_inf: bool,
}

/// What [`GradScaler::update`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateOutcome {
    /// The gradients of this step held inf or NaN: the optimizer step must be skipped.
    pub skipped: bool,
    /// The scale for the next step.
    pub scale: f32,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler::new()
    }
}

impl GradScaler {
    /// torch's default initial scale, `2^16`.
    pub const INIT_SCALE: f32 = 65536.0;
    /// torch's default growth factor.
    pub const GROWTH_FACTOR: f64 = 2.0;
    /// torch's default backoff factor.
    pub const BACKOFF_FACTOR: f64 = 0.5;
    /// torch's default number of clean steps between growths.
    pub const GROWTH_INTERVAL: u32 = 2000;

    /// A scaler with torch's defaults: scale `2^16`, growth 2 every 2000 clean steps,
    /// backoff 0.5.
    pub fn new() -> Self {
        GradScaler {
            scale: Self::INIT_SCALE,
            growth_factor: Self::GROWTH_FACTOR,
            backoff_factor: Self::BACKOFF_FACTOR,
            growth_interval: Self::GROWTH_INTERVAL,
            growth_tracker: 0,
            found_inf: false,
        }
    }

    /// A scaler with other parameters.
    ///
    /// # Errors
    /// [`Error::Parameter`] unless `init_scale` is positive and finite with a finite
    /// reciprocal ([`inv_scale`](Self::inv_scale)), `growth_factor > 1`,
    /// `0 < backoff_factor < 1` and `growth_interval > 0` (torch asserts the same, but for the
    /// reciprocal).
    pub fn with_params(
        init_scale: f32,
        growth_factor: f64,
        backoff_factor: f64,
        growth_interval: u32,
    ) -> Result<Self, Error> {
        let bad = |name, value: f64, why| Err(Error::Parameter { name, value, why });
        if !(init_scale.is_finite() && init_scale > 0.0 && inv(init_scale).is_finite()) {
            return bad(
                "init_scale",
                f64::from(init_scale),
                "must be positive and finite, with a finite reciprocal",
            );
        }
        if !(growth_factor > 1.0 && growth_factor.is_finite()) {
            return bad("growth_factor", growth_factor, "must be > 1");
        }
        if !(backoff_factor > 0.0 && backoff_factor < 1.0) {
            return bad("backoff_factor", backoff_factor, "must be in (0, 1)");
        }
        if growth_interval == 0 {
            return bad("growth_interval", 0.0, "must be > 0");
        }
        Ok(GradScaler {
            scale: init_scale,
            growth_factor,
            backoff_factor,
            growth_interval,
            growth_tracker: 0,
            found_inf: false,
        })
    }

    /// The current scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Clean steps since the last growth or backoff.
    pub fn growth_tracker(&self) -> u32 {
        self.growth_tracker
    }

    /// `loss · scale`: differentiate this instead of the loss. A NaN or infinite loss gives a
    /// NaN or infinity (as in torch); the gradients it produces are then non-finite, and the
    /// step is skipped.
    pub fn scale_loss(&self, loss: f32) -> f32 {
        loss * self.scale
    }

    /// `1 / scale` as torch computes it (in f64, rounded to f32). Always finite.
    pub fn inv_scale(&self) -> f32 {
        inv(self.scale)
    }

    /// Unscale f32 gradients in place (`g · inv_scale`) and record whether any was inf or NaN
    /// (checked before unscaling, as torch does). Call it for every gradient tensor of the step.
    /// Returns whether this slice held a non-finite value.
    pub fn unscale(&mut self, grads: &mut [f32]) -> bool {
        let inv = self.inv_scale();
        let mut bad = false;
        for g in grads.iter_mut() {
            bad |= !g.is_finite();
            *g *= inv;
        }
        self.found_inf |= bad;
        bad
    }

    /// Unscale gradients held as codes of a low-precision format (f16, bf16, ...) into f32
    /// master gradients, recording inf/NaN. Returns whether this slice held one.
    ///
    /// # Errors
    /// [`Error::Shape`] when `out.len() != grads.len()`.
    pub fn unscale_codes<F: FloatFormat>(&mut self, grads: &[F::Code], out: &mut [f32]) -> Result<bool, Error> {
        check_len("out", grads.len(), out.len())?;
        let bad = has_non_finite::<F>(grads);
        let inv = self.inv_scale();
        for (o, &c) in out.iter_mut().zip(grads) {
            *o = F::decode_f32(c) * inv;
        }
        self.found_inf |= bad;
        Ok(bad)
    }

    /// Record an overflow found elsewhere (another rank's gradients, a fused kernel).
    pub fn record_inf(&mut self) {
        self.found_inf = true;
    }

    /// Whether an inf or NaN was seen since the last [`update`](Self::update): if so, skip the
    /// optimizer step.
    pub fn found_inf(&self) -> bool {
        self.found_inf
    }

    /// End the step: back off (and report the step skipped) if an inf/NaN was seen, else count
    /// a clean step and grow the scale every `growth_interval` of them. Clears the inf flag.
    /// The scale stays within the finite `f32` values whose reciprocal is finite: a growth
    /// past `f32::MAX` (as torch) or a backoff below about `2.9e-39` (where torch goes on to 0)
    /// leaves it as it is.
    pub fn update(&mut self) -> UpdateOutcome {
        let skipped = self.found_inf;
        if skipped {
            let backed_off = (f64::from(self.scale) * self.backoff_factor) as f32;
            if backed_off > 0.0 && inv(backed_off).is_finite() {
                self.scale = backed_off;
            }
            self.growth_tracker = 0;
        } else {
            let successful = self.growth_tracker + 1;
            if successful == self.growth_interval {
                let grown = (f64::from(self.scale) * self.growth_factor) as f32;
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.growth_tracker = 0;
            } else {
                self.growth_tracker = successful;
            }
        }
        self.found_inf = false;
        UpdateOutcome {
            skipped,
            scale: self.scale,
        }
    }
}

/// `1 / scale` in f64, rounded to f32 (torch's `inv_scale`).
fn inv(scale: f32) -> f32 {
    (1.0 / f64::from(scale)) as f32
}

/// Whether a code is infinite or NaN in format `F`.
#[inline(always)]
fn code_non_finite<F: FloatFormat>(c: u64) -> bool {
    let l = F::LAYOUT;
    match l.specials {
        Specials::Ieee => (c & l.magnitude_mask()) >= (l.exp_field_max() << l.man_bits),
        Specials::Finite => false,
        _ => l.is_nan_code(c),
    }
}

/// Whether any code is an infinity or NaN of format `F` (for f16/bf16: the exponent field is
/// all ones). Branch-free over the slice.
///
/// ```
/// use lowbit::{Bf16, FloatFormat};
/// use lowbit::scheme::amp::{find_non_finite, has_non_finite};
/// let g = [Bf16::encode_f32(1.0), Bf16::encode_f32(-0.0), Bf16::encode_f32(f32::NEG_INFINITY)];
/// assert!(has_non_finite::<Bf16>(&g));
/// assert_eq!(find_non_finite::<Bf16>(&g), Some(2));
/// ```
pub fn has_non_finite<F: FloatFormat>(codes: &[F::Code]) -> bool {
    codes
        .chunks(256)
        .any(|c| c.iter().fold(false, |acc, &x| acc | code_non_finite::<F>(x.to_u64())))
}

/// Index of the first infinite or NaN code of format `F`.
pub fn find_non_finite<F: FloatFormat>(codes: &[F::Code]) -> Option<usize> {
    codes.iter().position(|&c| code_non_finite::<F>(c.to_u64()))
}

/// Number of infinite or NaN codes of format `F`.
pub fn count_non_finite<F: FloatFormat>(codes: &[F::Code]) -> usize {
    codes.iter().filter(|&&c| code_non_finite::<F>(c.to_u64())).count()
}

/// f32 master weights with a low-precision working copy (bf16 or f16 codes) for the forward
/// and backward passes.
///
/// Updates go to the master copy and the working copy is re-encoded from it (round to nearest
/// even), so updates smaller than half a bf16/f16 step accumulate instead of being lost.
///
/// ```
/// use lowbit::{Bf16, FloatFormat};
/// use lowbit::scheme::amp::MasterWeights;
///
/// let mut w = MasterWeights::<Bf16>::new(&[1.0])?;
/// for _ in 0..100 {
///     w.sgd_step(&[-1e-3], 1.0)?; // +0.001: an eighth of bf16's step at 1.0
/// }
/// assert!((w.master()[0] - 1.1).abs() < 1e-5);
/// assert_eq!(Bf16::decode_f32(w.working()[0]), 1.1015625);
/// # Ok::<(), lowbit::SchemeError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MasterWeights<F: FloatFormat> {
    master: Vec<f32>,
    working: Vec<F::Code>,
}

impl<F: FloatFormat> MasterWeights<F> {
    /// Start from f32 weights.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinity.
    pub fn new(init: &[f32]) -> Result<Self, Error> {
        check_finite(init, "init")?;
        let mut w = MasterWeights {
            master: init.to_vec(),
            working: vec![F::Code::default(); init.len()],
        };
        w.sync()?;
        Ok(w)
    }

    /// Start from a low-precision checkpoint: the master copy is its exact decoding.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinite code (every later update would fail on it).
    pub fn from_working(codes: &[F::Code]) -> Result<Self, Error> {
        let master: Vec<f32> = codes.iter().map(|&c| F::decode_f32(c)).collect();
        check_finite(&master, "working")?;
        Ok(MasterWeights {
            master,
            working: codes.to_vec(),
        })
    }

    /// The f32 master copy.
    pub fn master(&self) -> &[f32] {
        &self.master
    }

    /// The working copy's codes.
    pub fn working(&self) -> &[F::Code] {
        &self.working
    }

    /// The working copy decoded into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `out` has the wrong length.
    pub fn working_f32(&self, out: &mut [f32]) -> Result<(), Error> {
        check_len("out", self.working.len(), out.len())?;
        F::decode_slice(&self.working, out)?;
        Ok(())
    }

    /// Change the master weights with `f` (an optimizer step), then refresh the working copy.
    ///
    /// # Errors
    /// Whatever `f` returns; [`Error::NonFinite`] if the update made a master weight inf or NaN.
    /// The working copy is then left as it was, and the master copy holds what `f` wrote
    /// (rebuild it with [`from_working`](Self::from_working) to go on from the working copy);
    /// [`sgd_step`](Self::sgd_step) checks before it writes.
    pub fn update<E>(&mut self, f: impl FnOnce(&mut [f32]) -> Result<(), E>) -> Result<(), E>
    where
        E: From<Error>,
    {
        f(&mut self.master)?;
        check_finite(&self.master, "master")?;
        self.sync()?;
        Ok(())
    }

    /// Plain SGD: `master -= lr · grads`, then refresh the working copy.
    ///
    /// # Errors
    /// [`Error::Shape`] when `grads` has the wrong length; [`Error::NonFinite`] naming
    /// `master` if a weight would become inf or NaN (a NaN or infinite gradient or `lr`, an
    /// overflow); both copies are then unchanged.
    pub fn sgd_step(&mut self, grads: &[f32], lr: f32) -> Result<(), Error> {
        check_len("grads", self.master.len(), grads.len())?;
        if let Some(index) = self
            .master
            .iter()
            .zip(grads)
            .position(|(&w, &g)| !(w - lr * g).is_finite())
        {
            return Err(Error::NonFinite { what: "master", index });
        }
        self.update(|m| {
            for (w, &g) in m.iter_mut().zip(grads) {
                *w -= lr * g;
            }
            Ok::<(), Error>(())
        })
    }

    fn sync(&mut self) -> Result<(), Error> {
        F::encode_slice(&self.master, &mut self.working)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bf16, Fp16, E2M1, E4M3};

    #[test]
    fn non_finite_codes_every_16_bit_pattern() {
        for c in 0..=u16::MAX {
            assert_eq!(
                code_non_finite::<Fp16>(u64::from(c)),
                !Fp16::decode_f32(c).is_finite(),
                "{c:#x}"
            );
            assert_eq!(
                code_non_finite::<Bf16>(u64::from(c)),
                !Bf16::decode_f32(c).is_finite(),
                "{c:#x}"
            );
        }
        for c in 0..=u8::MAX {
            assert_eq!(code_non_finite::<E4M3>(u64::from(c)), E4M3::decode_f32(c).is_nan());
        }
        assert!(!has_non_finite::<E2M1>(&[0xf, 0x7]));
    }

    #[test]
    fn bad_params() {
        assert!(GradScaler::with_params(0.0, 2.0, 0.5, 1).is_err());
        assert!(GradScaler::with_params(1.0, 1.0, 0.5, 1).is_err());
        assert!(GradScaler::with_params(1.0, 2.0, 1.0, 1).is_err());
        assert!(GradScaler::with_params(1.0, 2.0, 0.5, 0).is_err());
    }

    #[test]
    fn growth_stops_at_f32_max() {
        let mut s = GradScaler::with_params(2f32.powi(127), 2.0, 0.5, 1).unwrap();
        assert_eq!(s.update().scale, 2f32.powi(127));
        assert_eq!(s.growth_tracker(), 0);
    }

    #[test]
    fn master_rejects_non_finite_updates() {
        let mut w = MasterWeights::<Fp16>::new(&[1.0, 2.0]).unwrap();
        assert!(matches!(w.sgd_step(&[1.0], 1.0), Err(Error::Shape { .. })));
        assert!(matches!(
            w.sgd_step(&[f32::INFINITY, 0.0], 1.0),
            Err(Error::NonFinite { .. })
        ));
        assert_eq!(Fp16::decode_f32(w.working()[1]), 2.0);
        assert_eq!(w.master(), &[1.0, 2.0]);
    }

    /// Non-finite losses and gradients never panic and never leave non-finite state: the
    /// step is skipped and the scale backs off; past about 150 backoffs in a row the scale
    /// stays at the smallest value with a finite reciprocal (torch's reaches 0, and unscaling
    /// then multiplies by infinity).
    #[test]
    fn non_finite_losses_and_gradients() {
        let mut s = GradScaler::new();
        for loss in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(s.scale_loss(loss).to_bits(), (loss * 65536.0).to_bits());
        }
        let mut last = s.scale();
        for step in 0..400 {
            let mut g = [f32::NAN, 1.0, 0.0, f32::INFINITY];
            assert!(s.unscale(&mut g));
            let codes = [Fp16::encode_f32(f32::NAN), Fp16::encode_f32(1e-3)];
            let mut out = [0.0; 2];
            assert!(s.unscale_codes::<Fp16>(&codes, &mut out).unwrap());
            assert!(out[1].is_finite(), "step {step}");
            let o = s.update();
            assert!(o.skipped);
            assert!(
                o.scale > 0.0 && o.scale <= last && s.inv_scale().is_finite(),
                "step {step}"
            );
            last = o.scale;
        }
        assert!(last < 1e-38);
        // Clean gradients after the collapse unscale to finite values and the scale grows.
        let mut g = [0.0, 1e-30, -3e-10];
        assert!(!s.unscale(&mut g));
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        assert!(GradScaler::with_params(1e-45, 2.0, 0.5, 1).is_err());
        assert!(GradScaler::with_params(f32::NAN, 2.0, 0.5, 1).is_err());
        assert!(GradScaler::with_params(1.0, f64::NAN, 0.5, 1).is_err());
        assert!(GradScaler::with_params(1.0, 2.0, f64::NAN, 1).is_err());
        let mut s = GradScaler::with_params(3e-39, 2.0, 0.5, 1).unwrap();
        s.record_inf();
        assert_eq!(s.update().scale, 3e-39);
    }

    /// Master weights refuse non-finite codes, gradients and learning rates, unchanged.
    #[test]
    fn master_weights_and_non_finite_values() {
        let nan = Bf16::encode_f32(f32::NAN);
        assert!(matches!(
            MasterWeights::<Bf16>::from_working(&[Bf16::encode_f32(1.0), nan]),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(MasterWeights::<Bf16>::new(&[f32::INFINITY]).is_err());
        let mut w = MasterWeights::<Bf16>::new(&[1.0, -2.0]).unwrap();
        let before = w.clone();
        for (g, lr) in [
            ([f32::NAN, 0.0], 0.1),
            ([0.0, f32::INFINITY], 0.1),
            ([1.0, 1.0], f32::NAN),
            ([1.0, 0.0], f32::INFINITY),
            ([-f32::MAX, 0.0], f32::MAX),
        ] {
            assert!(matches!(
                w.sgd_step(&g, lr),
                Err(Error::NonFinite { what: "master", .. })
            ));
            assert_eq!(w, before);
        }
        w.sgd_step(&[1.0, 1.0], 0.5).unwrap();
        assert_eq!(w.master(), &[0.5, -2.5]);
    }
}
