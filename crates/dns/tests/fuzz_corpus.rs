//! Replays the committed cargo-fuzz corpus (`crates/dns/fuzz/corpus/<target>/`)
//! through the code the fuzz targets run (`dns::fuzzing`), so every kept input is
//! checked on stable in the normal `cargo test`. Running without a panic is the
//! assertion.

use dns::fuzzing::TARGETS;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

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
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let inputs = files(&dir);
        // An empty or missing corpus would make this test pass without checking anything.
        assert!(inputs.len() >= 10, "fuzz/corpus/{target} has only {} inputs", inputs.len());
        for path in inputs {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                panicked.push(format!("{target}: {}", path.display()));
            }
        }
    }
    assert!(panicked.is_empty(), "inputs that panicked:\n{}", panicked.join("\n"));
}
