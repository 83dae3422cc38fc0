//! `megabin verify OUT [--rootfs DIR] [--expect-id ID]`: check a build, reporting every problem.
//!
//! OUT on its own: the trust root (the pin, or ownership), the manifest's id and names, every
//! megabinary's and artifact's digest (always hashed in full), every entry in its megabinary,
//! the isolation invariant and the agent tools. With `--rootfs`: every listed program file, and
//! provenance, by rebuilding the rootfs in memory ([`super::provenance`]).

use super::args::PinArgs;
use super::error::CliError;
use crate::rootfs;
use megabin_format::Digest;
use runtime_check::hash_file;
use runtime_check::Container;
use runtime_check::Measurer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes:
  0    the build verifies
  1    problems found (each is listed)
  126  refused: the pin does not match, OUT is not trusted, or the manifest was modified
  127  the build output does not exist";

/// Check a build: its trust root, digests, entries, isolation; with --rootfs also every
/// program file and the build's provenance. Reports every problem.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct VerifyArgs {
    /// Build output directory.
    pub out: PathBuf,
    /// The rootfs the build was made from.
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// The pin.
    #[command(flatten)]
    pub pin: PinArgs,
}

/// Runs the command: prints the problems (or that the build is consistent).
pub fn run(a: VerifyArgs) -> Result<ExitCode, CliError> {
    let container = Container::open(&a.out, a.pin.expect_id)
        .map_err(|r| CliError::from(r).in_command("verify"))?;
    let rootfs = a.rootfs.as_deref();
    let problems = verify_build(&container, rootfs);
    for p in &problems {
        eprintln!("megabin: verify: {p}");
    }
    if !problems.is_empty() {
        let message = format!("{} problem(s)", problems.len());
        return Err(CliError::failed("verify", message));
    }
    let against = rootfs.map_or(String::new(), |r| format!(" with {}", r.display()));
    println!(
        "megabin: verify: {} is consistent{against}",
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every problem found in an opened build (empty: the build verifies).
pub fn verify_build(container: &Container, root: Option<&Path>) -> Vec<String> {
    let manifest = container.manifest();
    // verify always hashes in full: it is the explicit check.
    let full = Measurer::new(None, true);
    let mut problems = Vec::new();
    for name in manifest.megabinaries.keys() {
        let wasm = match container.megabinary_bytes(name, &full) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e.message);
                continue;
            }
        };
        problems.extend(check_entries(manifest, name, &wasm));
        if let Err(found) = merger::check_isolation(&wasm) {
            problems.extend(found.into_iter().map(|p| format!("{name}: isolation: {p}")));
        }
    }
    if let Some(aot) = &manifest.aot {
        for (file, expected) in &aot.artifacts {
            if let Err(e) = container.verified_file(file, expected, &full) {
                problems.push(e.to_string());
            }
        }
    }
    for (tool, t) in &manifest.agent_tools {
        let d = &t.digest;
        if !manifest.binaries.values().any(|b| &b.hash == d) {
            problems.push(format!(
                "agent tool `{tool}` names {d}, which no binary has"
            ));
        }
        if let Some(path) = &t.path {
            if manifest.binaries.get(path).map(|b| &b.hash) != Some(d) {
                problems.push(format!(
                    "agent tool `{tool}`: its path {path} is not a binary with digest {d}"
                ));
            }
        }
    }
    if let Some(root) = root {
        problems.extend(check_program_files(manifest, root));
        problems.extend(super::provenance::check_provenance(
            container.out(),
            manifest,
            root,
        ));
    }
    problems
}

/// Every binary of megabinary `name` has its digest, entry and stubbed imports in the
/// `megabin.entries` section.
fn check_entries(
    manifest: &runtime_check::manifest::Manifest,
    name: &str,
    wasm: &[u8],
) -> Vec<String> {
    let Some(map) = merger::read_entries_section(wasm) else {
        return vec![format!("{name}: no readable megabin.entries section")];
    };
    let present: BTreeSet<(Digest, String, Vec<String>)> = map
        .entries
        .iter()
        .map(|e| {
            let stubbed = e.stubbed_imports.clone();
            (e.digest, e.start_export.clone(), stubbed)
        })
        .collect();
    let mut problems = Vec::new();
    for (path, b) in manifest
        .binaries
        .iter()
        .filter(|(_, b)| b.megabinary == name)
    {
        let entry = (b.hash, b.entry_point.clone(), b.stubbed_imports.clone());
        if !present.contains(&entry) {
            let stubs = match b.stubbed_imports.is_empty() {
                true => String::new(),
                false => format!(" and stubbed imports {}", b.stubbed_imports.join(", ")),
            };
            problems.push(format!(
                "{path}: {name} has no entry {} with digest {}{stubs}",
                b.entry_point, b.hash
            ));
        }
    }
    problems
}

/// Every listed path exists in the rootfs and hashes to its digest.
fn check_program_files(manifest: &runtime_check::manifest::Manifest, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, b) in &manifest.binaries {
        match rootfs::resolve(root, path) {
            Err(e) => problems.push(format!("{path}: cannot be resolved in the rootfs ({e:?})")),
            Ok(t) => match hash_file(&t.host) {
                Err(e) => problems.push(format!("{path}: cannot be read: {e}")),
                Ok(d) if Digest(d) != b.hash => problems.push(format!(
                    "{path}: hashes to {}, the manifest expects {}",
                    Digest(d),
                    b.hash
                )),
                Ok(_) => {}
            },
        }
    }
    problems
}
