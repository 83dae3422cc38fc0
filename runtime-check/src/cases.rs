//! The fixture test cases (`fixtures/cases.json`), shared by every differential test: how to
//! invoke each fixture program, with which stdin and which preopened directory, and how to
//! snapshot the directory afterwards to compare file effects.

use crate::Invocation;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One invocation of one fixture program.
#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    /// Unique case id.
    pub id: String,
    /// Fixture program name (`fixtures/wasm/<program>.wasm`).
    pub program: String,
    /// argv, including argv[0].
    pub args: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Literal stdin.
    #[serde(default)]
    pub stdin: Option<String>,
    /// stdin as a string repeated N times.
    #[serde(default)]
    pub stdin_repeat: Option<(String, usize)>,
    /// A preopened directory and its initial files.
    #[serde(default)]
    pub dir: Option<CaseDir>,
}

/// A preopened directory of a case.
#[derive(Clone, Debug, Deserialize)]
pub struct CaseDir {
    /// Guest path, e.g. `/data`.
    pub guest: String,
    /// Initial files (relative path → content).
    pub files: BTreeMap<String, String>,
}

/// What a directory holds: path → file content, or `-> target` for symlinks, `/` for dirs.
pub type DirSnapshot = BTreeMap<String, String>;

impl Case {
    /// Builds the invocation, creating and filling the case's directory under `scratch`.
    pub fn invocation(&self, scratch: &Path) -> std::io::Result<Invocation> {
        let mut preopens = Vec::new();
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(scratch)?;
            for (name, content) in &dir.files {
                std::fs::write(scratch.join(name), content)?;
            }
            preopens.push((scratch.to_path_buf(), dir.guest.clone()));
        }
        let stdin = match (&self.stdin, &self.stdin_repeat) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some((s, n))) => s.repeat(*n).into_bytes(),
            (None, None) => Vec::new(),
        };
        Ok(Invocation {
            args: self.args.clone(),
            env: self.env.clone().into_iter().collect(),
            stdin,
            preopens,
            read_only: Vec::new(),
        })
    }
}

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// All cases of `fixtures/cases.json`.
pub fn load_cases() -> Vec<Case> {
    let path = fixtures_dir().join("cases.json");
    let text = std::fs::read_to_string(&path).expect("fixtures/cases.json");
    serde_json::from_str(&text).expect("fixtures/cases.json parses")
}

/// Fixture programs that import functions of a host module other than WASI preview1: they
/// run standalone only on a host that provides (or stubs) those, and merge only with
/// `stub_foreign_imports`. [`fixture_programs`] leaves them out.
pub const FOREIGN_IMPORT_FIXTURES: &[&str] = &["hostcall"];

/// Names and bytes of the WASI-only fixture programs (`fixtures/wasm/*.wasm` except
/// [`FOREIGN_IMPORT_FIXTURES`]), sorted by name.
pub fn fixture_programs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let dir = fixtures_dir().join("wasm");
    for e in std::fs::read_dir(&dir).expect("fixtures/wasm") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "wasm") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            if FOREIGN_IMPORT_FIXTURES.contains(&name.as_str()) {
                continue;
            }
            out.push((name, std::fs::read(&p).expect("read fixture")));
        }
    }
    out.sort();
    out
}

/// Snapshots a directory tree (contents, symlink targets, subdirectories).
pub fn snapshot(root: &Path) -> DirSnapshot {
    fn walk(root: &Path, dir: &Path, out: &mut DirSnapshot) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()));
            } else if meta.is_dir() {
                out.insert(rel.clone(), "/".into());
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
                );
            }
        }
    }
    let mut out = DirSnapshot::new();
    walk(root, root, &mut out);
    out
}
