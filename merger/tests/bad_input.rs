//! Inputs megabin refuses, one file a case: `bad-input/NAME.wat` is merged as entry `p`, and
//! the error's message must equal `bad-input/NAME.err`. A first-line comment
//! `;; merge: stub-foreign` merges with foreign function imports stubbed. `BLESS=1 cargo test
//! --workspace --test bad_input` rewrites the `.err` baselines.

mod support;

use merger::{merge, MergeError, MergeOptions};
use std::path::Path;
use support::{check_baseline, program};

#[test]
fn every_bad_input_is_refused_with_its_baseline_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wat"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let wasm = wat::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let options = MergeOptions {
            stub_foreign_imports: text.starts_with(";; merge: stub-foreign"),
            ..Default::default()
        };
        let message = match merge(&[program("p", &wasm)], &options) {
            Err(e @ MergeError::Unsupported { .. }) => e.to_string(),
            Err(e) => panic!("{}: not an unsupported input: {e}", case.display()),
            Ok(_) => panic!("{}: merged", case.display()),
        };
        check_baseline(&case.with_extension("err"), &format!("{message}\n"));
    }
}
