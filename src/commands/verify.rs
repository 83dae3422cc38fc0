//! `megabin verify OUT --rootfs DIR`: check a build against a rootfs, reporting every problem.

use crate::rootfs;
use runtime_check::manifest::digest_string;
use runtime_check::verify::{hash_file, load_manifest, load_megabinary};
use std::collections::BTreeSet;
use std::path::Path;

/// Every problem found (empty: the build verifies).
pub fn verify_build(out: &Path, root: &Path) -> Vec<String> {
    let manifest = match load_manifest(out) {
        Ok(m) => m,
        Err(e) => return vec![e.message],
    };
    let mut problems = Vec::new();
    for name in manifest.megabinaries.keys() {
        let wasm = match load_megabinary(out, &manifest, name) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e.message);
                continue;
            }
        };
        match merger::read_entries_section(&wasm) {
            None => problems.push(format!("{name}: no readable megabin.entries section")),
            Some(map) => {
                let present: BTreeSet<(String, String, Vec<String>)> = map
                    .entries
                    .iter()
                    .map(|e| {
                        let stubbed = e.stubbed_imports.clone();
                        (digest_string(&e.digest), e.start_export.clone(), stubbed)
                    })
                    .collect();
                for (path, b) in manifest
                    .binaries
                    .iter()
                    .filter(|(_, b)| &b.megabinary == name)
                {
                    let entry = (
                        b.hash.clone(),
                        b.entry_point.clone(),
                        b.stubbed_imports.clone(),
                    );
                    if !present.contains(&entry) {
                        let stubs = match b.stubbed_imports.is_empty() {
                            true => String::new(),
                            false => {
                                format!(" and stubbed imports {}", b.stubbed_imports.join(", "))
                            }
                        };
                        problems.push(format!(
                            "{path}: {name} has no entry {} with digest {}{stubs}",
                            b.entry_point, b.hash
                        ));
                    }
                }
            }
        }
        if let Err(found) = merger::check_isolation(&wasm) {
            problems.extend(found.into_iter().map(|p| format!("{name}: isolation: {p}")));
        }
    }
    for (path, b) in &manifest.binaries {
        match rootfs::resolve(root, path) {
            Err(e) => problems.push(format!("{path}: cannot be resolved in the rootfs ({e:?})")),
            Ok(t) => match hash_file(&t.host) {
                Err(e) => problems.push(format!("{path}: cannot be read: {e}")),
                Ok(d) if digest_string(&d) != b.hash => problems.push(format!(
                    "{path}: hashes to {}, the manifest expects {}",
                    digest_string(&d),
                    b.hash
                )),
                Ok(_) => {}
            },
        }
    }
    if let Some(aot) = &manifest.aot {
        for (file, expected) in &aot.artifacts {
            match std::fs::read(out.join(file)) {
                Err(e) => problems.push(format!("{file}: cannot be read: {e}")),
                Ok(bytes) => {
                    let actual = runtime_check::manifest::sha256_string(&bytes);
                    if &actual != expected {
                        problems.push(format!(
                            "{file} does not match the manifest: expected {expected}, found {actual}"
                        ));
                    }
                }
            }
        }
    }
    for (tool, d) in &manifest.agent_tools {
        if !manifest.binaries.values().any(|b| &b.hash == d) {
            problems.push(format!(
                "agent tool `{tool}` names {d}, which no binary has"
            ));
        }
    }
    problems
}
