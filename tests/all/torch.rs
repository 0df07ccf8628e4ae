//! Affine and symmetric qparams against torch.ao's `MinMaxObserver` (torch 2.11), see
//! `tests/data/README.md`.

use crate::common::{data, shared_ref, Npz};
use lowbit::quant::{AbsmaxQuantizer, AffineQuantizer, Granularity, QParams, QRange, Quantizer, TORCH_EPS};

fn npz_f64(path: &std::path::Path, key: &str) -> Vec<f64> {
    let mut npz = Npz::open(path).unwrap();
    npz.by_name(key).unwrap().unwrap().into_vec::<f64>().unwrap()
}

const DISTS: [&str; 3] = ["normal", "laplace_outlier", "relu_lognormal"];

#[test]
fn minmax_observer_qparams() {
    let p = data("torch/torch_qparams.npz");
    for d in DISTS {
        let aff = npz_f64(&p, &format!("obs_{d}_minmax_aff_u8"));
        let (min, max) = (aff[2] as f32, aff[3] as f32);
        let got = QParams::torch_affine(min, max, QRange::QUINT8, TORCH_EPS);
        assert_eq!(
            got,
            QParams {
                scale: aff[0] as f32,
                zero_point: aff[1] as i32
            },
            "{d} affine quint8"
        );
        let sym = npz_f64(&p, &format!("obs_{d}_minmax_sym_i8"));
        let got = QParams::torch_symmetric(min, max, QRange::QINT8, TORCH_EPS);
        assert_eq!(
            got,
            QParams {
                scale: sym[0] as f32,
                zero_point: sym[1] as i32
            },
            "{d} symmetric qint8"
        );
    }
}

#[test]
fn quantize_per_tensor_ties_to_even() {
    let want: Vec<i32> = {
        let mut npz = Npz::open(data("torch/torch_qparams.npz")).unwrap();
        let v: Vec<i8> = npz.by_name("qpt_ties_int").unwrap().unwrap().into_vec().unwrap();
        v.into_iter().map(i32::from).collect()
    };
    let p = QParams {
        scale: 1.0,
        zero_point: 0,
    };
    let x = [0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, -128.5];
    let got: Vec<i32> = x.iter().map(|&v| p.quantize(v, QRange::QINT8)).collect();
    assert_eq!(got, want);
    // The 8-bit affine quantizer rounds the same way (scale 1, zero point 128 here).
    let q = AffineQuantizer::new(8, Granularity::PerTensor).unwrap();
    let z = q.quantize(&[-128.0, 127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5]).unwrap();
    assert_eq!((z.scales()[0], z.zero_points()[0]), (1.0, 128));
    let codes: Vec<i32> = z.unpacked_codes().iter().map(|&c| i32::from(c) - 128).collect();
    assert_eq!(&codes[2..], &want[..6]);
}

/// The full distributions (in `../shared/refs`, when present) through the quantizers.
#[test]
fn quantizers_on_observer_data() {
    let Some(p) = shared_ref("torch/torch_refs.npz") else {
        return;
    };
    let mut npz = Npz::open(&p).unwrap();
    for d in DISTS {
        let x: Vec<f32> = npz.by_name(&format!("dist_{d}")).unwrap().unwrap().into_vec().unwrap();
        let aff = npz_f64(&p, &format!("obs_{d}_minmax_aff_u8"));
        let z = AffineQuantizer::new(8, Granularity::PerTensor)
            .unwrap()
            .quantize(&x)
            .unwrap();
        assert_eq!(z.scales()[0], aff[0] as f32, "{d}");
        assert_eq!(i32::from(z.zero_points()[0]), aff[1] as i32, "{d}");
        // torch's symmetric qint8 range is 127.5 steps each side; the absmax quantizer's
        // narrow range is 127: scale = absmax / 127 = torch's scale × 127.5 / 127.
        let sym = npz_f64(&p, &format!("obs_{d}_minmax_sym_i8"));
        let amax = (aff[2] as f32).abs().max(aff[3] as f32);
        let z = AbsmaxQuantizer::new(8, Granularity::PerTensor)
            .unwrap()
            .quantize(&x)
            .unwrap();
        assert_eq!(z.scales()[0], amax / 127.0, "{d}");
        assert_eq!(
            QParams::torch_symmetric(-amax, amax, QRange::QINT8, TORCH_EPS).scale,
            sym[0] as f32
        );
        assert_eq!(
            QParams::torch_symmetric(-amax, amax, QRange::QINT8_NARROW, TORCH_EPS).scale,
            z.scales()[0],
            "{d}: narrow-range torch equals absmax"
        );
    }
}
