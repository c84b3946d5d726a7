#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| denoisekit_fuzz::tiff(data));
