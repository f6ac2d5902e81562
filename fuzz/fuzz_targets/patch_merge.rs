#![no_main]

// The driving code lives in apiserver::fuzzing so tests/fuzz_corpus.rs replays the
// corpus through the same path.
libfuzzer_sys::fuzz_target!(|data: &[u8]| apiserver::fuzzing::patch_merge(data));
