//! Replaying saved fuzz inputs on stable Rust, for the crates' regression tests (included by
//! `runtime/tests/fuzz_regressions.rs` and `trainer/tests/fuzz_regressions.rs`).

use std::path::{Path, PathBuf};

/// The saved inputs of `target` (`fuzz/seeds/<target>/`, then `fuzz/regressions/<target>/`),
/// found from a crate one folder below the repository root.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["seeds", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) {
            let mut found: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
            found.sort();
            files.extend(found);
        }
    }
    files
}

/// Runs `run` on every saved input of `target`; fails naming each input that panicked.
pub fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no saved inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("a saved input");
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} panicked on {failed:?}");
}
