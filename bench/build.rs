//! The optional ggml peer of the benchmarks.
//!
//! When `LOWBIT_GGML_DIR` names a ggml source tree (a checkout of github.com/ggml-org/ggml, or
//! of llama.cpp, whose copy is in `ggml/`), this compiles the few C files of ggml that hold its
//! quantizers, dequantizers and f16/bf16 row conversions, links them into this crate and sets
//! `cfg(ggml)`, which turns on the ggml peers in `benches/` and the test in `tests/ggml.rs`.
//! Nothing of ggml is in this repository. Unset (CI, a fresh clone), nothing is compiled and
//! no C compiler is needed; if the build fails, a warning says why and the peer is left out.
//!
//! ggml is built as its CMake build lays it out: `ggml-quants.c` (ggml-base: the `_ref`
//! quantizers and `dequantize_row_*`) without architecture flags, and the CPU backend files
//! (`ggml-cpu/quants.c`, `ggml-cpu/arch/<arch>/quants.c`, `ggml-cpu/ggml-cpu.c`: the
//! `from_float` quantizers and the row conversions) twice: `generic` without architecture flags
//! (on x86-64 the SSE2 baseline, ggml's reference build) and `native` with `-march=native`
//! (what `GGML_NATIVE`, the default of a llama.cpp build, gives on this machine). Each build is
//! one relocatable object: `ggml_shim.c` and ggml's objects partially linked (`-r`) with
//! `--gc-sections`, rooted at the shim's one exported function, then every other symbol made
//! local with `objcopy --localize-hidden` (everything is compiled with `-fvisibility=hidden`),
//! so the two builds, which define the same ggml functions, link side by side.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const VAR: &str = "LOWBIT_GGML_DIR";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ggml)");
    println!("cargo::rerun-if-env-changed={VAR}");
    println!("cargo::rerun-if-changed=build.rs");
    let Some(dir) = env::var_os(VAR).filter(|d| !d.is_empty()) else {
        return;
    };
    println!("cargo::rerun-if-changed=ggml_shim.c");
    match build(Path::new(&dir)) {
        Ok(()) => println!("cargo::rustc-cfg=ggml"),
        Err(e) => println!(
            "cargo::warning={VAR} is set but ggml was not built, so the ggml peer is left out: {}",
            e.replace('\n', " ")
        ),
    }
}

fn build(dir: &Path) -> Result<(), String> {
    // A llama.cpp checkout keeps ggml in ggml/.
    let root = if dir.join("src/ggml-quants.c").is_file() {
        dir.to_path_buf()
    } else if dir.join("ggml/src/ggml-quants.c").is_file() {
        dir.join("ggml")
    } else {
        return Err(format!(
            "no src/ggml-quants.c (nor ggml/src/ggml-quants.c) in {}",
            dir.display()
        ));
    };
    let src = root.join("src");
    let cpu = src.join("ggml-cpu");
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default().as_str() {
        "x86_64" | "x86" => "x86",
        "aarch64" | "arm" => "arm",
        other => return Err(format!("no ggml CPU files are chosen for target arch {other:?}")),
    };
    let native = if arch == "x86" { "-march=native" } else { "-mcpu=native" };
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return Err(format!(
            "the native build uses {native}, so the peer is only built for the host"
        ));
    }
    let cpu_files = [
        cpu.join("quants.c"),
        cpu.join("arch").join(arch).join("quants.c"),
        cpu.join("ggml-cpu.c"),
    ];
    let base_file = src.join("ggml-quants.c");
    for f in cpu_files.iter().chain([&base_file]) {
        if !f.is_file() {
            return Err(format!("{} is missing (a ggml tree of another layout?)", f.display()));
        }
        println!("cargo::rerun-if-changed={}", f.display());
    }
    for d in [
        root.join("include"),
        src.join("ggml-common.h"),
        src.join("ggml-impl.h"),
        src.join("ggml-quants.h"),
    ] {
        println!("cargo::rerun-if-changed={}", d.display());
    }
    for h in ["quants.h", "simd-mappings.h", "ggml-cpu-impl.h", "arch-fallback.h"] {
        println!("cargo::rerun-if-changed={}", cpu.join(h).display());
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let cc = |sub: &str, flags: &[&str]| -> Result<cc::Build, String> {
        let dir = out.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut b = cc::Build::new();
        b.out_dir(dir)
            .std("c11")
            .opt_level(3)
            .debug(false)
            .warnings(false)
            .cargo_warnings(false)
            .define("NDEBUG", None)
            .define("_GNU_SOURCE", None)
            .include(root.join("include"))
            .include(&src)
            .include(&cpu)
            .flag("-w")
            .flag("-fvisibility=hidden")
            .flag("-ffunction-sections")
            .flag("-fdata-sections");
        for f in flags {
            b.flag(f);
        }
        Ok(b)
    };

    // ggml-base, as CMake compiles it: no architecture flags, in both builds.
    let base = cc("base", &[])?
        .file(&base_file)
        .try_compile_intermediates()
        .map_err(|e| e.to_string())?;

    let mut objects = Vec::new();
    for (name, flags) in [("generic", &[][..]), ("native", &[native][..])] {
        let build = cc(name, flags)?;
        let mut objs = build
            .clone()
            .files(&cpu_files)
            .file("ggml_shim.c")
            .define("LOWBIT_GGML_BUILD", name)
            .try_compile_intermediates()
            .map_err(|e| e.to_string())?;
        objs.extend(base.iter().cloned());
        let obj = out.join(format!("lowbit_ggml_{name}.o"));
        let export = format!("lowbit_ggml_{name}");
        let mut link = build.try_get_compiler().map_err(|e| e.to_string())?.to_command();
        link.args(["-r", "-nostdlib", "-Wl,--gc-sections"])
            .arg(format!("-Wl,--undefined={export}"))
            .arg("-o")
            .arg(&obj)
            .args(&objs);
        run(link, "partial link")?;
        let objcopy = env::var_os("OBJCOPY").unwrap_or_else(|| "objcopy".into());
        let mut localize = Command::new(objcopy);
        localize.args(["--localize-hidden", "--strip-unneeded"]).arg(&obj);
        run(localize, "objcopy")?;
        objects.push(obj);
    }

    let lib = out.join("liblowbit_ggml.a");
    let _ = std::fs::remove_file(&lib);
    let mut ar = cc::Build::new().try_get_archiver().map_err(|e| e.to_string())?;
    ar.arg("crs").arg(&lib).args(&objects);
    run(ar, "ar")?;
    println!("cargo::rustc-link-search=native={}", out.display());
    println!("cargo::rustc-link-lib=static=lowbit_ggml");
    println!("cargo::rustc-link-lib=m");
    Ok(())
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}
