#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::routing(data));
