//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! code the fuzz targets run (`apiserver::fuzzing`), so every input the fuzzer kept,
//! crashes found and fixed included, is checked on stable in the normal `cargo test`.
//! Running without a panic is the assertion.

use apiserver::fuzzing::TARGETS;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_runs_without_a_panic() {
    let mut panicked = Vec::new();
    for (target, run) in TARGETS {
        let inputs = files(&corpus_dir(target));
        // An empty or missing corpus would make this test pass without checking anything.
        assert!(!inputs.is_empty(), "fuzz/corpus/{target} has no inputs");
        for path in inputs {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                panicked.push(format!("{target}: {}", path.display()));
            }
        }
    }
    assert!(panicked.is_empty(), "inputs that panicked:\n{}", panicked.join("\n"));
}
