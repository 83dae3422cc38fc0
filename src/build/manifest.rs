//! Stage 4, manifest: every path's program and megabinary, the digests, the container id, and
//! the options a rebuild needs.

use super::check::Checked;
use super::merge::Shard;
use super::{shard_file, BuildOptions, Files};
use crate::config::Config;
use crate::manifest::{AgentTool, Aot, Binary, BuildInfo, Manifest, FORMAT};
use megabin_format::Digest;
use std::collections::BTreeMap;

/// What the manifest records besides the merged shards.
pub(super) struct Inputs<'a> {
    /// The build settings.
    pub opts: &'a BuildOptions,
    /// The configuration used.
    pub config: &'a Config,
    /// The checked programs and the skipped paths.
    pub checked: &'a Checked,
    /// The agent tools (checked against the merged programs).
    pub agent_tools: BTreeMap<String, AgentTool>,
    /// `--aot`: the engine id and the artifacts.
    pub aot: Option<&'a (String, Files)>,
}

/// Builds the manifest. Where each program landed comes from the merger's [`merger::MergeMap`]
/// of its shard: the digest of the bytes merged, the start export and the stubbed imports.
pub(super) fn manifest(inputs: Inputs<'_>, shards: &[Shard]) -> Manifest {
    let Inputs {
        opts,
        config,
        checked,
        agent_tools,
        aot,
    } = inputs;
    let binaries = binaries(checked, shards);
    let digests: BTreeMap<String, Digest> = shards
        .iter()
        .map(|s| (s.file.clone(), Digest::of(&s.merged.wasm)))
        .collect();
    let aot = aot.map(|(engine, artifacts)| Aot {
        engine: engine.clone(),
        artifacts: artifacts
            .iter()
            .map(|(f, b)| (f.clone(), Digest::of(b)))
            .collect(),
    });
    let mut manifest = Manifest {
        format: FORMAT.to_string(),
        container_id: Digest([0; 32]),
        megabinary: shard_file(0),
        megabinaries: digests,
        binaries,
        agent_tools,
        scripts: checked.scripts.clone(),
        skipped: checked
            .skipped
            .iter()
            .map(|(path, reason)| (path.clone(), reason.to_string()))
            .collect(),
        aot,
        build: Some(BuildInfo {
            max_shard_bytes: opts.max_shard_bytes,
            agent_tools: config
                .agent_tools
                .iter()
                .filter_map(|(n, t)| Some((n.clone(), serde_json::to_value(t).ok()?)))
                .collect(),
            stub_foreign_imports: opts.stub_foreign_imports || config.stub_foreign_imports,
        }),
    };
    manifest.container_id = manifest.computed_id();
    manifest
}

/// Rootfs path → its program's digest, start export, megabinary, size and stubbed imports,
/// read from each shard's merge map.
fn binaries(checked: &Checked, shards: &[Shard]) -> BTreeMap<String, Binary> {
    let mut binaries = BTreeMap::new();
    for shard in shards {
        debug_assert_eq!(shard.members.len(), shard.merged.map.entries.len());
        for (&i, entry) in shard.members.iter().zip(&shard.merged.map.entries) {
            let program = &checked.ready[i];
            debug_assert_eq!(entry.digest, program.content.digest());
            for path in &program.paths {
                binaries.insert(
                    path.clone(),
                    Binary {
                        hash: entry.digest,
                        entry_point: entry.start_export.clone(),
                        megabinary: shard.file.clone(),
                        size: program.content.bytes().len() as u64,
                        stubbed_imports: entry.stubbed_imports.clone(),
                    },
                );
            }
        }
    }
    binaries
}
