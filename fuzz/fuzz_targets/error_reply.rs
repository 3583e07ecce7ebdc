#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| satellite_fuzz_checks::router::error_reply(data));
