//! `megabin verify OUT --rootfs DIR`, provenance: builds are byte-reproducible, so the rootfs is
//! rebuilt in memory with the options the manifest records and the result is compared with the
//! build. A megabinary whose code does not come from the rootfs is reported even when its
//! manifest is self-consistent, and so is every WASI program or runnable script of the rootfs
//! that the build lacks (a stale build).

use super::args::default_jobs;
use crate::build::{self, BuildOptions, DEFAULT_MAX_SHARD_BYTES};
use crate::config::Config;
use crate::manifest::Manifest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Rebuilds `rootfs` in memory (nothing is written) and compares it with the build in `out`
/// described by `manifest`. Returns every problem found (empty: the build is what the rootfs
/// gives).
pub fn check_provenance(out: &Path, manifest: &Manifest, rootfs: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let rebuilt = match rebuild(out, manifest, rootfs, &mut problems) {
        Ok(b) => b.manifest,
        Err(e) => {
            problems.push(format!(
                "cannot rebuild from the rootfs {}: {e}",
                rootfs.display()
            ));
            return problems;
        }
    };
    problems.extend(compare_megabinaries(manifest, &rebuilt, rootfs));
    problems.extend(compare_paths(manifest, &rebuilt));
    problems.extend(compare_scripts(manifest, &rebuilt));
    if manifest.agent_tools != rebuilt.agent_tools {
        problems.push(format!(
            "agent tools differ from the rebuild's: the build has {:?}, rebuilding gives {:?}",
            manifest.agent_tools, rebuilt.agent_tools
        ));
    }
    problems
}

/// Builds `rootfs` in memory with the options and configuration `manifest` records; a
/// manifest without them (an older megabin) is rebuilt with the defaults and the rootfs's own
/// megabin.toml, which is noted in `problems`.
fn rebuild(
    out: &Path,
    manifest: &Manifest,
    rootfs: &Path,
    problems: &mut Vec<String>,
) -> Result<build::Built, build::BuildError> {
    let recorded = manifest.build.as_ref();
    let opts = BuildOptions {
        rootfs: rootfs.to_path_buf(),
        out: out.to_path_buf(),
        config: None,
        jobs: default_jobs(),
        max_shard_bytes: recorded.map_or(DEFAULT_MAX_SHARD_BYTES, |b| b.max_shard_bytes),
        progress: false,
        aot: false,
        stub_foreign_imports: recorded.is_some_and(|b| b.stub_foreign_imports),
    };
    match recorded {
        Some(b) => build::build_outputs_with_config(
            &opts,
            Config {
                agent_tools: b
                    .agent_tools
                    .iter()
                    .filter_map(|(n, t)| Some((n.clone(), serde_json::from_value(t.clone()).ok()?)))
                    .collect(),
                stub_foreign_imports: b.stub_foreign_imports,
            },
        ),
        None => {
            problems.push(
                "the manifest records no build options (an older megabin): rebuilding with \
                 the defaults"
                    .to_string(),
            );
            build::build_outputs(&opts)
        }
    }
}

/// Megabinaries: the code itself.
fn compare_megabinaries(manifest: &Manifest, rebuilt: &Manifest, rootfs: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let names = union_keys(&manifest.megabinaries, &rebuilt.megabinaries);
    for name in names {
        match (
            manifest.megabinaries.get(name),
            rebuilt.megabinaries.get(name),
        ) {
            (Some(have), Some(want)) if have != want => problems.push(format!(
                "{name} is not built from the rootfs {}: it is {have}, rebuilding gives {want}",
                rootfs.display()
            )),
            (Some(_), None) => problems.push(format!(
                "{name} is not built from the rootfs {}: rebuilding gives no such megabinary",
                rootfs.display()
            )),
            (None, Some(_)) => problems.push(format!(
                "{name}: rebuilding from the rootfs gives this megabinary, the build lacks it"
            )),
            _ => {}
        }
    }
    problems
}

/// Paths: programs the build lacks (stale build), has in excess, or maps differently.
fn compare_paths(manifest: &Manifest, rebuilt: &Manifest) -> Vec<String> {
    let show = |b: &crate::manifest::Binary| {
        format!("{} as {} in {}", b.hash, b.entry_point, b.megabinary)
    };
    compare_entries(
        ("WASI program", "merged WASI program"),
        (&manifest.binaries, &rebuilt.binaries),
        &rebuilt.skipped,
        show,
    )
}

/// Scripts: the ones the build lacks, has in excess, or records differently.
fn compare_scripts(manifest: &Manifest, rebuilt: &Manifest) -> Vec<String> {
    let show = |s: &crate::manifest::Script| {
        format!("script {} run by {} as {:?}", s.hash, s.interpreter, s.argv)
    };
    compare_entries(
        ("script", "runnable script"),
        (&manifest.scripts, &rebuilt.scripts),
        &rebuilt.skipped,
        show,
    )
}

/// The entries of a path map of the build (`have`) against the rebuild's (`want`): each one
/// the build lacks, has in excess (with the rebuild's skip reason) or records differently.
/// `what` names an entry, as found and as kept (`("script", "runnable script")`).
fn compare_entries<V: PartialEq>(
    what: (&str, &str),
    (have, want): (&BTreeMap<String, V>, &BTreeMap<String, V>),
    skipped: &BTreeMap<String, String>,
    show: impl Fn(&V) -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    for path in union_keys(have, want) {
        match (have.get(path), want.get(path)) {
            (None, Some(w)) => problems.push(format!(
                "{path}: {} in the rootfs ({}) that the build lacks (stale build?)",
                what.0,
                show(w)
            )),
            (Some(_), None) => problems.push(format!(
                "{path}: in the build, but not a {} of the rootfs{}",
                what.1,
                skipped
                    .get(path)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            )),
            (Some(h), Some(w)) if h != w => problems.push(format!(
                "{path}: the build has {}, rebuilding gives {}",
                show(h),
                show(w)
            )),
            _ => {}
        }
    }
    problems
}

/// The keys of both maps, sorted, once each.
fn union_keys<'a, V>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, V>,
) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}
