//! Stage 2, check: which scanned programs the merger accepts, each one's footprint, and the
//! `argv[0]` names each program may keep.

use super::{BuildError, BuildOptions, Scanned};
use crate::config::Config;
use crate::manifest::{AgentTool, Script};
use crate::rootfs::{self, SkipReason};
use std::collections::{BTreeMap, BTreeSet};

/// A program that passed every check, ready to merge.
pub(super) struct Ready {
    /// Its entry name (`<name>_start` is its start export).
    pub name: String,
    /// Its rootfs paths.
    pub paths: Vec<String>,
    /// The bytes read by the scan and their digest (the one the manifest records).
    pub content: rootfs::Content,
    /// What it adds to a megabinary (shard planning).
    pub footprint: merger::Footprint,
    /// The merger's proof that its bytes validated: the merge does not validate them again.
    pub validated: Option<merger::Validated>,
}

/// Stage 2 output: the programs to merge, in build order, and what was skipped.
pub(super) struct Checked {
    /// Programs to merge, sorted by digest (the build order).
    pub ready: Vec<Ready>,
    /// `argv[0]` names per program of `ready` (see [`unique_aliases`]).
    pub aliases: Vec<Vec<String>>,
    /// Rootfs path → a `#!` script one of `ready` interprets (see `scripts.rs`).
    pub scripts: BTreeMap<String, Script>,
    /// Rootfs path → why it is not merged (the scan's reasons and the check's).
    pub skipped: BTreeMap<String, SkipReason>,
    /// The scan's warnings, then the check's.
    pub warnings: Vec<String>,
}

/// Parses each program's bytes from the scan (in parallel) into its footprint; programs the
/// merger refuses, or that alone exceed an engine limit, are skipped with their reason.
/// Nothing is read from the rootfs again.
///
/// Validation: this is where a program is judged (validated and parsed by
/// [`merger::Footprint::of_with`], the merger's own parser), so a program the merger would
/// refuse is skipped here with its reason and never fails a merge. `merger::merge` then
/// parses (and so validates) the same bytes once more: its API takes bytes only, and its
/// parsed form (`Input<'a>`, borrowing the bytes) is private to the merger, so the parse
/// cannot be handed over. Passing it would need a merger API that returns an opaque parsed
/// program for both the footprint and the merge (and keeps every program's parse alive from
/// this stage to its shard's merge).
pub(super) fn check(
    opts: &BuildOptions,
    merge_options: &merger::MergeOptions,
    scanned: Scanned,
) -> Result<Checked, BuildError> {
    let scan = scanned.scan;
    let mut skipped = scan.skipped;
    let mut warnings = scan.warnings;
    let names = rootfs::entry_names(&scan.programs);
    let checked = merger::parallel_map(&scan.programs, opts.jobs, |p| {
        check_program(p, merge_options)
    });
    let mut ready = Vec::new();
    for ((p, name), result) in scan.programs.into_iter().zip(names).zip(checked) {
        match (result, p.content) {
            (Ok((footprint, validated)), Some(content)) => ready.push(Ready {
                name,
                paths: p.paths,
                content,
                footprint,
                validated,
            }),
            (Ok(_), None) => unreachable!("checked programs have content"),
            (Err(reason), _) => {
                for path in &p.paths {
                    skipped.insert(path.clone(), reason.clone());
                }
            }
        }
    }
    if ready.is_empty() {
        return Err(BuildError::NothingToBuild(opts.rootfs.clone()));
    }
    ready.sort_by_key(|r| r.content.digest());
    let aliases = unique_aliases(&ready, &mut warnings);
    let scripts = super::scripts::check_scripts(&opts.rootfs, scan.scripts, &ready, &mut skipped);
    Ok(Checked {
        ready,
        aliases,
        scripts,
        skipped,
        warnings,
    })
}

impl Checked {
    /// Σ size of the programs to merge.
    pub fn input_bytes(&self) -> u64 {
        self.ready
            .iter()
            .map(|r| r.content.bytes().len() as u64)
            .sum()
    }
}

/// One program's footprint, or why it is skipped.
fn check_program(
    p: &rootfs::Program,
    merge_options: &merger::MergeOptions,
) -> Result<(merger::Footprint, Option<merger::Validated>), SkipReason> {
    // A program larger than a whole module may be was not kept by the scan.
    let content = match &p.content {
        Some(c) if p.size <= merger::limits::MAX_MODULE_BYTES => c,
        _ => {
            return Err(SkipReason::TooLarge(merger::LimitExceeded {
                what: "bytes",
                needed: p.size,
                limit: merger::limits::MAX_MODULE_BYTES,
            }))
        }
    };
    let (footprint, validated) = merger::Footprint::checked(content.bytes(), merge_options)?;
    merger::fits(&[footprint]).map_err(SkipReason::TooLarge)?;
    Ok((footprint, validated))
}

/// argv[0] names per program: the basenames of its paths, minus names that two different
/// programs claim (those are reported, and reachable by digest only).
fn unique_aliases(ready: &[Ready], warnings: &mut Vec<String>) -> Vec<Vec<String>> {
    let mut owners: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, r) in ready.iter().enumerate() {
        for p in &r.paths {
            let base = p.rsplit('/').next().unwrap_or(p).to_string();
            if !base.is_empty() {
                owners.entry(base).or_default().insert(i);
            }
        }
    }
    let mut out = vec![Vec::new(); ready.len()];
    for (name, who) in owners {
        if who.len() == 1 {
            out[*who.iter().next().expect("one")].push(name);
        } else {
            warnings.push(format!(
                "argv[0] name `{name}` belongs to {} different programs; select them by digest",
                who.len()
            ));
        }
    }
    out
}

/// Agent tools must name merged programs or runnable scripts: tool name → the digest of the
/// program or script.
pub(super) fn agent_tools(
    config: &Config,
    checked: &Checked,
) -> Result<BTreeMap<String, AgentTool>, BuildError> {
    let mut agent_tools = BTreeMap::new();
    for (tool, spec) in config.tools() {
        let path = &spec.path;
        let program = checked.ready.iter().find(|r| r.paths.contains(path));
        let digest = match (program, checked.scripts.get(path)) {
            (Some(r), _) => Some(r.content.digest()),
            (None, Some(script)) => Some(script.hash),
            (None, None) => None,
        };
        let Some(digest) = digest else {
            let reason = match checked.skipped.get(path) {
                Some(why) => format!("is not merged ({why})"),
                None => "is not a WASI command program or a script in the rootfs".into(),
            };
            return Err(BuildError::AgentTool {
                name: tool.clone(),
                path: path.clone(),
                reason,
            });
        };
        agent_tools.insert(
            tool.clone(),
            AgentTool {
                digest,
                path: Some(path.clone()),
                description: spec.description.clone(),
                timeout_ms: spec.timeout_ms,
                max_memory: spec.max_memory,
                input_schema: spec.input_schema.clone(),
            },
        );
    }
    Ok(agent_tools)
}
