//! Differential tests: every fixture case run standalone on stock wasmtime-wasi must behave
//! exactly like the same program started through `<name>_start` in ONE merged module of all
//! fixtures (stdout, stderr, exit code or trap, and the files it leaves behind).

mod support;

use merger::Merged;
use runtime_check::cases::{fixture_programs, load_cases, snapshot};
use runtime_check::{Captured, Runner, Status};
use std::collections::HashMap;
use support::{fixture_entries, merge_jobs};

fn merge_all(fixtures: &[(String, Vec<u8>)]) -> Merged {
    merge_jobs(&fixture_entries(fixtures), 2).expect("fixtures merge")
}

/// Traps compare by trap code; the message differs (function names carry the entry prefix).
fn comparable(c: &Captured) -> (String, String, String) {
    let status = match &c.status {
        Status::Exit(code) => format!("exit {code}"),
        Status::Trap { code, .. } => format!("trap {code}"),
    };
    (
        String::from_utf8_lossy(&c.stdout).into_owned(),
        String::from_utf8_lossy(&c.stderr).into_owned(),
        status,
    )
}

#[test]
fn every_fixture_behaves_the_same_standalone_and_merged() {
    let fixtures = fixture_programs();
    assert!(fixtures.len() >= 8, "need the fixture programs");
    let merged = merge_all(&fixtures);
    let runner = Runner::new().unwrap();
    let merged_module = runner.compile(&merged.wasm).unwrap();
    let standalone: HashMap<&str, _> = fixtures
        .iter()
        .map(|(n, w)| (n.as_str(), runner.compile(w).unwrap()))
        .collect();

    let cases = load_cases();
    let mut covered = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        covered.insert(case.program.clone());
        let tmp = tempfile::tempdir().unwrap();
        let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
        let inv_a = case.invocation(&dir_a).unwrap();
        let inv_b = case.invocation(&dir_b).unwrap();
        let a = runner
            .run_captured(&standalone[case.program.as_str()], "_start", &inv_a)
            .unwrap();
        let export = format!("{}_start", case.program.replace('-', "_"));
        let b = runner
            .run_captured(&merged_module, &export, &inv_b)
            .unwrap();
        if comparable(&a) != comparable(&b) {
            let (sa, ea, xa) = comparable(&a);
            let (sb, eb, xb) = comparable(&b);
            failures.push(format!(
                "{}: standalone {xa} / merged {xb}\n  stdout equal: {} ({} vs {} bytes)\n  stderr standalone: {:.300}\n  stderr merged: {:.300}",
                case.id,
                sa == sb,
                sa.len(),
                sb.len(),
                ea,
                eb
            ));
        }
        if case.dir.is_some() && snapshot(&dir_a) != snapshot(&dir_b) {
            failures.push(format!(
                "{}: file effects differ:\n  standalone {:?}\n  merged     {:?}",
                case.id,
                snapshot(&dir_a),
                snapshot(&dir_b)
            ));
        }
        // The case must do something observable, or comparing proves nothing.
        assert!(
            !a.stdout.is_empty() || !a.stderr.is_empty(),
            "{}: case produces no output",
            case.id
        );
    }
    let all: std::collections::BTreeSet<String> = fixtures.iter().map(|f| f.0.clone()).collect();
    assert_eq!(covered, all, "every fixture program has a case");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
