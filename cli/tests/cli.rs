//! The `lowbit` command end to end: the embedded default, quantize / inspect on a written
//! checkpoint, and calibration states that merge to the one-batch result.

use std::process::Command;

fn lowbit(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lowbit")).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("lowbit-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_string_lossy().into_owned()
}

#[test]
fn first_run_quantizes_the_embedded_layer() {
    let (ok, out, err) = lowbit(&[]);
    assert!(ok, "{err}");
    for recipe in ["int8", "int4", "nf4", "fp8", "mxfp8", "mxfp4", "nvfp4"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(recipe))
            .unwrap_or_else(|| panic!("{recipe}:\n{out}"));
        let sqnr: f64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
        assert!(sqnr > 15.0, "{line}");
    }
    assert!(out.contains("entropy"), "{out}");
}

/// A small checkpoint: one 64 × 32 F32 weight and a bias.
fn checkpoint(path: &str) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let w: Vec<u8> = (0..64 * 32)
        .flat_map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0).to_le_bytes())
        .collect();
    let b: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let t = vec![
        (
            "l.weight".to_string(),
            TensorView::new(Dtype::F32, vec![64, 32], &w).unwrap(),
        ),
        ("l.bias".to_string(), TensorView::new(Dtype::F32, vec![64], &b).unwrap()),
    ];
    safetensors::serialize_to_file(t, None, std::path::Path::new(path)).unwrap();
}

#[test]
fn quantize_writes_what_inspect_reads() {
    let (src, dst) = (tmp("in.safetensors"), tmp("out.safetensors"));
    checkpoint(&src);
    for recipe in ["int8", "nf4", "mxfp4", "nvfp4", "fp8"] {
        let (ok, out, err) = lowbit(&["quantize", &src, "--recipe", recipe, "-o", &dst, "--json"]);
        assert!(ok, "{recipe}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["layers"].as_array().unwrap().len(), 1, "{recipe}");
        assert!(v["weight_sqnr_db"].as_f64().unwrap() > 15.0, "{recipe}: {out}");
        let (ok, out, err) = lowbit(&["inspect", &dst]);
        assert!(ok, "{err}");
        assert!(out.contains("l.bias"), "{out}");
        assert!(out.contains(&format!("lowbit.recipe: {recipe}")), "{out}");
    }
}

#[test]
fn calibration_states_merge_to_the_one_batch_result() {
    let write_npy = |path: &str, scale: f32| {
        let v: Vec<f32> = (0..4096)
            .map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * scale)
            .collect();
        // A version 1.0 `.npy`: magic, header length, the header dict padded to 64 bytes.
        let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", v.len());
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::write(path, bytes).unwrap();
    };
    let (a, b) = (tmp("a.npy"), tmp("b.npy"));
    write_npy(&a, 1.0);
    write_npy(&b, 3.0);
    let (sa, sb) = (tmp("a.state"), tmp("b.state"));
    for method in ["entropy", "mse", "percentile=99.9", "minmax"] {
        assert!(lowbit(&["calibrate", &a, "--method", method, "--state-out", &sa]).0);
        assert!(lowbit(&["calibrate", &b, "--method", method, "--state-out", &sb]).0);
        let merged = lowbit(&[
            "calibrate",
            "--method",
            method,
            "--merge",
            &sa,
            "--merge",
            &sb,
            "--json",
        ]);
        let whole = lowbit(&["calibrate", &a, &b, "--method", method, "--json"]);
        assert!(merged.0 && whole.0, "{method}: {} {}", merged.2, whole.2);
        assert_eq!(merged.1, whole.1, "{method}");
    }
}

/// `.npy` bytes (version 1.0) of a 1-D f32 array.
fn npy_bytes(v: &[f32]) -> Vec<u8> {
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", v.len());
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    bytes
}

/// An `.npz` of the named arrays (stored, not deflated).
fn write_npz(path: &str, arrays: &[(&str, Vec<f32>)]) {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, v) in arrays {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(&npy_bytes(v)).unwrap();
    }
    z.finish().unwrap();
}

/// `--per-array`: a range per layer, and whole-model states that merge to the result of one
/// run over both shards; a state of another method is refused.
#[test]
fn per_array_states_merge_to_the_one_run_result() {
    let vals = |n: usize, scale: f32, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((((i + seed) * 7919) % 1000) as f32 / 500.0 - 1.0) * scale)
            .collect()
    };
    let (a, b) = (tmp("shard_a.npz"), tmp("shard_b.npz"));
    write_npz(&a, &[("l0.q", vals(3000, 1.0, 1)), ("l0.ffn", vals(2000, 4.0, 2))]);
    write_npz(&b, &[("l0.q", vals(1000, 2.5, 3)), ("l1.out", vals(500, 0.5, 4))]);
    let (sa, sb) = (tmp("shard_a.state"), tmp("shard_b.state"));
    for method in ["entropy", "percentile=99.9", "minmax"] {
        let run = |args: &[&str]| {
            let mut all = vec!["calibrate", "--per-array", "--method", method];
            all.extend_from_slice(args);
            lowbit(&all)
        };
        assert!(run(&[&a, "--state-out", &sa]).0, "{method}");
        assert!(run(&[&b, "--state-out", &sb]).0, "{method}");
        let merged = run(&["--merge", &sb, "--merge", &sa, "--json"]);
        let whole = run(&[&a, &b, "--json"]);
        assert!(merged.0 && whole.0, "{method}: {} {}", merged.2, whole.2);
        assert_eq!(merged.1, whole.1, "{method}");
        let v: serde_json::Value = serde_json::from_str(&whole.1).unwrap();
        let layers = v["layers"].as_object().unwrap();
        assert_eq!(
            layers.keys().collect::<Vec<_>>(),
            ["l0.ffn", "l0.q", "l1.out"],
            "{method}"
        );
        let text = run(&[&a]);
        assert!(text.0 && text.1.lines().count() == 2, "{}", text.1);
    }
    // The states were written by minmax: another method's recipe refuses them.
    let (ok, _, err) = lowbit(&["calibrate", "--per-array", "--method", "mse", "--merge", &sa]);
    assert!(!ok && err.contains("other activation rules"), "{err}");
}

#[test]
fn errors_are_one_line_and_fail() {
    let (ok, _, err) = lowbit(&["quantize", "/nonexistent.safetensors", "--recipe", "int8"]);
    assert!(!ok);
    assert!(err.starts_with("lowbit: /nonexistent.safetensors"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let src = tmp("err_in.safetensors");
    checkpoint(&src);
    let (ok, _, err) = lowbit(&["quantize", &src, "--recipe", "int3"]);
    assert!(!ok && err.contains("unknown recipe"), "{err}");
    assert!(!lowbit(&["frobnicate"]).0);
}

#[test]
fn runtime_layouts_read_back() {
    use lowbit::io::safetensors::{bnb, compressed, SafetensorsFile};
    let src = tmp("rt_in.safetensors");
    checkpoint(&src);
    let out = tmp("rt_nf4.safetensors");
    let (ok, _, err) = lowbit(&["quantize", &src, "--recipe", "nf4", "--format", "bnb", "-o", &out]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let f = SafetensorsFile::parse(&bytes).unwrap();
    assert_eq!(bnb::read(&f, "l").unwrap().dequantize().unwrap().len(), 64 * 32);
    assert!(f.contains("l.bias"));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out}.quantization_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["bnb_4bit_quant_type"], "nf4");
    let out = tmp("rt_fp8.safetensors");
    let (ok, _, err) = lowbit(&[
        "quantize",
        &src,
        "--recipe",
        "fp8",
        "--format",
        "compressed-tensors",
        "-o",
        &out,
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let f = SafetensorsFile::parse(&bytes).unwrap();
    let scheme = compressed::Scheme::Fp8 {
        strategy: compressed::Strategy::Channel,
        activations: compressed::Activations::DynamicPerToken,
    };
    assert_eq!(
        compressed::read(&f, "l", &scheme).unwrap().dequantize().unwrap().len(),
        64 * 32
    );
    assert!(!lowbit(&["quantize", &src, "--recipe", "int8", "--format", "bnb"]).0);
}

#[test]
fn gguf_requantizes_as_llama_quantize() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gguf/tiny_llama_f16.gguf").to_string();
    let out = tmp("out.gguf");
    let (ok, stdout, err) = lowbit(&["quantize", &src, "--recipe", "q8_0", "-o", &out, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["file_type"], 7);
    let (ok, stdout, err) = lowbit(&["inspect", &out]);
    assert!(ok, "{err}");
    assert!(stdout.contains("general.file_type"), "{stdout}");

    // The K-quant mixes, by llama-quantize's names in either case, and its aliases.
    for (recipe, name, ftype) in [
        ("q4_k_m", "Q4_K_M", 15),
        ("Q4_K_M", "Q4_K_M", 15),
        ("q4_k", "Q4_K_M", 15),
        ("Q5_K_S", "Q5_K_S", 16),
        ("q3_k_l", "Q3_K_L", 13),
        ("q2_k", "Q2_K", 10),
    ] {
        let (ok, stdout, err) = lowbit(&["quantize", &src, "--recipe", recipe, "-o", &out, "--json"]);
        assert!(ok, "{recipe}: {err}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            (v["recipe"].as_str(), v["file_type"].as_u64()),
            (Some(name), Some(ftype))
        );
        // The library's file, byte for byte.
        let bytes = std::fs::read(&src).unwrap();
        let g = lowbit::io::gguf::Gguf::read(&bytes).unwrap();
        let target = lowbit::io::gguf::Target::from_name(recipe).unwrap();
        let (want, _) = g.requantize(target, &Default::default()).unwrap();
        assert!(std::fs::read(&out).unwrap() == want.to_bytes().unwrap(), "{recipe}");
    }
    let (ok, _, err) = lowbit(&["quantize", &src, "--recipe", "iq4_xs"]);
    assert!(!ok && err.contains("q4_k_m"), "{err}");
}

/// `--imatrix` with llama-quantize's filters: the library's file with the same filtered matrix.
#[test]
fn gguf_requantizes_with_an_imatrix() {
    use lowbit::io::gguf::{Gguf, Imatrix, RequantizeOptions, Target};
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gguf/tiny_llama_f16.gguf").to_string();
    let bytes = std::fs::read(&src).unwrap();
    let g = Gguf::read(&bytes).unwrap();
    let mut m = Imatrix::new();
    for t in g.tensors.iter().filter(|t| t.info.dims.len() == 2) {
        let w = (0..t.info.dims[0]).map(|i| 0.5 + (i % 7) as f32).collect();
        m.insert(t.info.name.clone(), w).unwrap();
    }
    let (imatrix, out) = (tmp("imatrix.gguf"), tmp("imatrix_out.gguf"));
    std::fs::write(&imatrix, m.to_bytes().unwrap()).unwrap();
    let (ok, _, err) = lowbit(&[
        "quantize",
        &src,
        "--recipe",
        "q4_k_m",
        "--imatrix",
        &imatrix,
        "--exclude-weights",
        "attn_v",
        "-o",
        &out,
    ]);
    assert!(ok, "{err}");
    let mut filtered = m.clone();
    filtered.exclude(&["attn_v"]);
    let (want, _) = g
        .requantize(
            Target::Q4_K_M,
            &RequantizeOptions::default().with_imatrix(imatrix.as_str(), filtered),
        )
        .unwrap();
    assert!(std::fs::read(&out).unwrap() == want.to_bytes().unwrap());
    let (plain, _) = g.requantize(Target::Q4_K_M, &RequantizeOptions::default()).unwrap();
    assert!(std::fs::read(&out).unwrap() != plain.to_bytes().unwrap());
    for bad in [
        vec!["--include-weights", "ffn"],
        vec![
            "--imatrix",
            &imatrix,
            "--include-weights",
            "a",
            "--exclude-weights",
            "b",
        ],
        vec!["--imatrix", &src],
    ] {
        let mut args = vec!["quantize", &src, "--recipe", "q4_k_m"];
        args.extend(bad.iter().copied());
        let (ok, _, err) = lowbit(&args);
        assert!(!ok && err.lines().count() == 1, "{bad:?}: {err}");
    }
}

/// `--format gguf` from a safetensors checkpoint: the 2-D weight as Q8_0 with exactly the bytes
/// `compat::ggml` gives its values, the bias kept at F32, dims in ggml's order.
#[test]
fn safetensors_to_gguf() {
    use lowbit::io::gguf::{GgmlType, Gguf};
    let (src, dst) = (tmp("to_gguf.safetensors"), tmp("to_gguf.gguf"));
    checkpoint(&src);
    let (ok, stdout, err) = lowbit(&[
        "quantize", &src, "--format", "gguf", "--recipe", "q8_0", "-o", &dst, "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["file_type"], 7);
    let bytes = std::fs::read(&dst).unwrap();
    let g = Gguf::read(&bytes).unwrap();
    let w = g.tensor("l.weight").unwrap();
    assert_eq!((w.info.ty, w.info.dims.as_slice()), (GgmlType::Q8_0, &[32u64, 64][..]));
    let x: Vec<f32> = (0..64 * 32).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let blocks = lowbit::compat::ggml::quantize_q8_0(&x).unwrap();
    assert_eq!(&w.data[..], lowbit::bytemuck::cast_slice::<_, u8>(&blocks));
    let b = g.tensor("l.bias").unwrap();
    assert_eq!(b.info.ty, GgmlType::F32);
    assert_eq!(g.metadata.get_str("general.name"), Some("to_gguf"));
    // A K-quant mix: rows of 32 are not whole 256-blocks, so Q5_K falls back to Q5_1.
    let (ok, stdout, err) = lowbit(&[
        "quantize", &src, "--format", "gguf", "--recipe", "q5_k_m", "-o", &dst, "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["file_type"], 17);
    let g = Gguf::read(&std::fs::read(&dst).unwrap()).unwrap().into_owned();
    assert_eq!(g.tensor("l.weight").unwrap().info.ty, GgmlType::Q5_1);
    // A recipe without a GGUF type is refused with one line.
    let (ok, _, err) = lowbit(&["quantize", &src, "--format", "gguf", "--recipe", "nf4"]);
    assert!(!ok && err.trim().lines().count() == 1, "{err}");
}
