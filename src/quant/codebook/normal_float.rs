//! NormalFloat levels (QLoRA's NFk) and the normal quantile function they are built from.

use super::NF4_OFFSET;
use crate::quant::Error;

/// The standard normal quantile function `Φ⁻¹(p)` (the inverse of the normal CDF), in `f64`.
///
/// Wichura's algorithm AS 241 (`PPND16`, Applied Statistics 37, 1988), accurate to about
/// 1e-16 relative. `p = 0` gives `-inf`, `p = 1` gives `inf`; outside `[0, 1]` and NaN give
/// NaN.
///
/// # Examples
///
/// ```
/// use lowbit::quant::codebook::normal_quantile;
/// assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-15);
/// assert_eq!(normal_quantile(0.5), 0.0);
/// ```
#[allow(clippy::excessive_precision)] // AS 241's published coefficients, kept as printed
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 8] = [
        3.387_132_872_796_366_608,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_9,
        5.769_497_221_460_691_405_5,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_7e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_4e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_4,
        6.897_673_349_851_000_045_5e-1,
        1.481_039_764_274_800_745_9e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_2,
        5.463_784_911_164_114_369_9,
        1.784_826_539_917_291_335_8,
        2.965_605_718_285_048_912_3e-1,
        2.653_218_952_657_612_309_3e-2,
        1.242_660_947_388_078_438_6e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_9e-1,
        1.369_298_809_227_358_053_1e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591e-4,
        1.846_318_317_510_054_681_8e-5,
        1.421_511_758_316_445_888_7e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    fn poly(c: &[f64; 8], x: f64) -> f64 {
        c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
    }
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let r = if q < 0.0 { p } else { 1.0 - p };
    let r = (-r.ln()).sqrt();
    let v = if r <= 5.0 {
        let r = r - 1.6;
        poly(&C, r) / poly(&D, r)
    } else {
        let r = r - 5.0;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 {
        -v
    } else {
        v
    }
}

/// `torch.linspace(start, end, steps)` for `float32`: the first half counts up from `start`,
/// the second half down from `end`. On the CPU (`fused == false`) each value takes two `f32`
/// roundings; on a CUDA device (`fused == true`) `start + step·i` is one fused multiply-add.
pub(crate) fn torch_linspace_f32(start: f32, end: f32, steps: usize, fused: bool) -> Vec<f32> {
    if steps <= 1 {
        return vec![start; steps];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| match (i < half, fused) {
            (true, false) => start + step * i as f32,
            (false, false) => end - step * (steps - i - 1) as f32,
            (true, true) => step.mul_add(i as f32, start),
            (false, true) => (-step).mul_add((steps - i - 1) as f32, end),
        })
        .collect()
}

/// The default NFk offset: QLoRA's `1 - (1/(2(2^k - 1)) + 1/(2·2^k)) / 2`, and bitsandbytes'
/// literal `0.9677083` for k = 4.
pub fn normal_float_offset(k: u32) -> f64 {
    if k == 4 {
        return f64::from(NF4_OFFSET);
    }
    let n = 2f64.powi(k.min(1023) as i32);
    1.0 - 0.5 * (1.0 / (2.0 * (n - 1.0)) + 1.0 / (2.0 * n))
}

/// The `2^k` NormalFloat levels NFk, built the way QLoRA / bitsandbytes'
/// `create_normal_map(offset, use_extra_value=True)` does: `2^(k-1)` positive levels at the
/// normal quantiles of `linspace(offset, 0.5, 2^(k-1) + 1)`, `2^(k-1) - 1` negative ones from
/// `linspace(offset, 0.5, 2^(k-1))`, and an exact zero; rounded to `f32`, sorted and divided
/// by the largest. The offset is [`normal_float_offset`]`(k)`.
///
/// For `k = 4` this is bitsandbytes' NF4 table bit for bit ([`NF4_LEVELS`](super::NF4_LEVELS)).
///
/// # Errors
///
/// [`Error::InvalidBits`] unless `2 <= k <= 8`.
///
/// # Examples
///
/// ```
/// use lowbit::quant::codebook::{normal_float_levels, NF4_LEVELS};
/// assert_eq!(normal_float_levels(4)?, NF4_LEVELS);
/// let nf3 = normal_float_levels(3)?;
/// assert_eq!(nf3.len(), 8);
/// assert_eq!((nf3[0], nf3[3], nf3[7]), (-1.0, 0.0, 1.0));
/// # Ok::<(), lowbit::QuantError>(())
/// ```
pub fn normal_float_levels(k: u32) -> Result<Vec<f32>, Error> {
    if !(2..=8).contains(&k) {
        return Err(Error::InvalidBits {
            bits: k,
            min: 2,
            max: 8,
        });
    }
    normal_float_levels_with_offset(k, normal_float_offset(k) as f32)
}

/// [`normal_float_levels`] with an explicit outermost quantile `offset` (in `(0.5, 1)`).
///
/// # Errors
///
/// [`Error::InvalidBits`] unless `2 <= k <= 8`; [`Error::Codebook`] if `offset` is not in
/// `(0.5, 1)`.
pub fn normal_float_levels_with_offset(k: u32, offset: f32) -> Result<Vec<f32>, Error> {
    if !(2..=8).contains(&k) {
        return Err(Error::InvalidBits {
            bits: k,
            min: 2,
            max: 8,
        });
    }
    if !(offset > 0.5 && offset < 1.0) {
        return Err(Error::Codebook("the NormalFloat offset must lie in (0.5, 1)"));
    }
    let h = 1usize << (k - 1);
    let mut v: Vec<f32> = Vec::with_capacity(2 * h);
    for &p in &torch_linspace_f32(offset, 0.5, h + 1, false)[..h] {
        v.push(normal_quantile(f64::from(p)) as f32);
    }
    v.push(0.0);
    for &p in &torch_linspace_f32(offset, 0.5, h, false)[..h - 1] {
        v.push(-normal_quantile(f64::from(p)) as f32);
    }
    v.sort_by(f32::total_cmp);
    let max = v[v.len() - 1];
    for x in &mut v {
        *x /= max;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::codebook::NF4_LEVELS;

    #[test]
    fn quantile_known_values() {
        // scipy.stats.norm.ppf
        let known: &[(f64, f64)] = &[
            (1e-300, -37.0470962993612),
            (1e-20, -9.262340089798409),
            (1e-10, -6.361340902404056),
            (1e-5, -4.264890793922825),
            (0.001, -3.090232306167813),
            (0.02425, -1.972961051311885),
            (0.05, -1.6448536269514729),
            (0.075, -1.4395314709384563),
            (0.1, -1.2815515655446004),
            (0.25, -0.6744897501960817),
            (0.4, -0.2533471031357997),
            (0.6, 0.2533471031357997),
            (0.75, 0.6744897501960817),
            (0.9, 1.2815515655446004),
            (0.95, 1.6448536269514722),
            (0.975, 1.959963984540054),
            (0.99, 2.3263478740408408),
            (0.999, 3.090232306167813),
            (0.9677083, 1.8481309597573734),
            (0.8413447460685429, 1.0),
        ];
        for &(p, z) in known {
            let got = normal_quantile(p);
            assert!((got - z).abs() <= 4e-15 * z.abs().max(1.0), "p={p}: {got} vs {z}");
        }
        assert_eq!(normal_quantile(0.5), 0.0);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(1.5).is_nan() && normal_quantile(f64::NAN).is_nan());
        // Symmetry.
        for i in 1..100 {
            let p = f64::from(i) / 200.0;
            assert!((normal_quantile(p) + normal_quantile(1.0 - p)).abs() < 1e-14);
        }
    }

    #[test]
    fn nf4_from_quantiles_is_bnb_table() {
        assert_eq!(normal_float_levels(4).unwrap(), NF4_LEVELS);
    }

    #[test]
    fn nfk_match_qlora_recipe_with_scipy() {
        // create_normal_map's recipe run with scipy.stats.norm.ppf (float64) and the same
        // offsets, as f32 bits.
        let nf2: [u32; 4] = [0xbf800000, 0x00000000, 0x3edf2391, 0x3f800000];
        let nf3: [u32; 8] = [
            0xbf800000, 0xbf08f740, 0xbe7cdb96, 0x00000000, 0x3e3bbcd5, 0x3ec394b6, 0x3f1f7bfd, 0x3f800000,
        ];
        let nf5: [u32; 32] = [
            0xbf800000, 0xbf463fd5, 0xbf2727c3, 0xbf1083d8, 0xbefc4ca0, 0xbedcbfa4, 0xbec0a83c, 0xbea70436, 0xbe8f2d60,
            0xbe716241, 0xbe46777e, 0xbe1d1a3c, 0xbde9c77b, 0xbd9afc46, 0xbd1a7978, 0x00000000, 0x3d10cd03, 0x3d91389c,
            0x3ddae651, 0x3e12f490, 0x3e3964e4, 0x3e61142c, 0x3e8531de, 0x3e9ae736, 0x3eb1faed, 0x3ecadc3d, 0x3ee62cbb,
            0x3f0273c9, 0x3f145c3d, 0x3f2a70bb, 0x3f48b184, 0x3f800000,
        ];
        let bits = |k| {
            normal_float_levels(k)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(2), nf2);
        assert_eq!(bits(3), nf3);
        assert_eq!(bits(5), nf5);
        for k in 2..=8 {
            let l = normal_float_levels(k).unwrap();
            assert_eq!(l.len(), 1 << k);
            assert_eq!((l[0], l[l.len() - 1]), (-1.0, 1.0));
            assert!(l.contains(&0.0));
        }
    }
}
