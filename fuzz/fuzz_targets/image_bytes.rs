#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runtime_fuzz::image_bytes(data));
