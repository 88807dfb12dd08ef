//! Runs the inputs kept from fuzzing through a target's checks: the minimized corpus
//! under `<fuzz dir>/corpus/<target>` and the minimized crashes under
//! `<fuzz dir>/regressions/<target>`.

use std::path::{Path, PathBuf};

/// The files of `dir`, sorted; none when it does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

/// Runs `check` on every kept input of `target` under `fuzz_dir`, and panics listing
/// every file whose check panicked. Returns how many corpus files there were (the
/// caller asserts the corpus is there).
pub fn run(fuzz_dir: &Path, target: &str, check: fn(&[u8])) -> usize {
    let corpus = files(&fuzz_dir.join("corpus").join(target));
    let regressions = files(&fuzz_dir.join("regressions").join(target));
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable input");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} kept inputs fail: {failures:?}",
        failures.len()
    );
    corpus.len()
}
