//! Baseline files for file-driven tests: `BLESS=1` rewrites them. Shared by the merger's
//! tests (`support`) and the megabin crate's (`tests/common`, through `#[path]`).

use std::path::Path;

/// Compares `actual` with the baseline file `path`, or writes it when `BLESS` is set.
pub fn check_baseline(path: &Path, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs; BLESS=1 if the change is deliberate",
        path.display()
    );
}
