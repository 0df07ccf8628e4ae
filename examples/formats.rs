//! A tour of the float formats: each format's range, a few values with their bit fields, and
//! a cast table.
//!
//! Run with `cargo run --release --example formats`.

use lowbit::format::{cast_one, Code, FloatFormat, Options, Overflow};
use lowbit::{Bf16, E4M3Fnuz, E5M2Fnuz, Fp16, Fp32, Tf32, E2M1, E2M3, E3M2, E3M4, E4M3, E5M2, E8M0};

fn range_row<F: FloatFormat>() {
    let l = F::LAYOUT;
    println!(
        "{:<16} {:>4} {:>3} {:>3} {:>5} {:>12.6e} {:>12.6e} {:>12.6e} {:>5} {:>5}",
        F::NAME,
        F::BITS,
        l.exp_bits(),
        l.man_bits(),
        l.bias(),
        F::MAX,
        F::MIN_POSITIVE_NORMAL,
        F::MIN_POSITIVE,
        if l.has_inf() { "yes" } else { "no" },
        if l.has_nan() { "yes" } else { "no" },
    );
}

fn fields<F: FloatFormat>(xs: &[f32]) {
    println!("{}:", F::NAME);
    for &x in xs {
        let c = F::encode_f32(x);
        println!("  {:>10} -> {:#06x}  {}", x, c.to_u64(), F::decompose(c));
    }
}

fn cast_row<F: FloatFormat>(x: f32) {
    let c = F::encode_f32(x);
    let to = |v: f64| format!("{v:>11.5}");
    println!(
        "{:<16} {:>11.5} {} {} {} {} {}",
        F::NAME,
        F::decode_f32(c),
        to(E4M3::decode_f64(cast_one::<F, E4M3>(c, Options::default()))),
        to(E5M2::decode_f64(cast_one::<F, E5M2>(c, Options::default()))),
        to(E2M1::decode_f64(cast_one::<F, E2M1>(c, Options::default()))),
        to(Bf16::decode_f64(cast_one::<F, Bf16>(c, Options::default()))),
        to(E4M3::decode_f64(cast_one::<F, E4M3>(
            c,
            Options::default().with_overflow(Overflow::Saturate)
        ))),
    );
}

fn main() {
    println!("Ranges");
    println!(
        "{:<16} {:>4} {:>3} {:>3} {:>5} {:>12} {:>12} {:>12} {:>5} {:>5}",
        "format", "bits", "exp", "man", "bias", "max", "min normal", "min", "inf", "NaN"
    );
    range_row::<Fp32>();
    range_row::<Tf32>();
    range_row::<Bf16>();
    range_row::<Fp16>();
    range_row::<E4M3>();
    range_row::<E5M2>();
    range_row::<E4M3Fnuz>();
    range_row::<E5M2Fnuz>();
    range_row::<E3M4>();
    range_row::<E8M0>();
    range_row::<E3M2>();
    range_row::<E2M3>();
    range_row::<E2M1>();

    println!("\nValues and their bit fields");
    let xs = [0.3f32, -2.5, 448.0, 1e-3, 1e6];
    fields::<Bf16>(&xs);
    fields::<E4M3>(&xs);
    fields::<E5M2>(&xs);
    fields::<E2M1>(&xs);
    fields::<E8M0>(&[0.3, 2.5, 448.0]);

    println!("\nCast table: 300.7 stored in a format, then cast (one rounding) to others");
    println!(
        "{:<16} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "from", "value", "E4M3", "E5M2", "E2M1", "Bf16", "E4M3 sat"
    );
    cast_row::<Fp32>(300.7);
    cast_row::<Bf16>(300.7);
    cast_row::<Fp16>(300.7);
    cast_row::<E5M2>(300.7);
    cast_row::<E4M3>(300.7);
    println!("\nAnd 600.0, past E4M3's 448 (NaN by its own rule, 448 saturated):");
    cast_row::<Fp16>(600.0);
}
