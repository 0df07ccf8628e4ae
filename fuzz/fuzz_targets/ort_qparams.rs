#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lowbit_fuzz::targets::ort_qparams(data));
