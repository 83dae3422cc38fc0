//! Stage 3, merge: plan the shards and merge each one from the scanned bytes; then, with
//! `--aot`, precompile each megabinary.

use super::check::Checked;
use super::{plan, shard_file, BuildError, BuildOptions, Files};
use crate::progress::Progress;

/// One megabinary: its programs and what the merger made of them.
pub(super) struct Shard {
    /// Its file name ([`shard_file`]).
    pub file: String,
    /// Its programs, as indices into [`Checked::ready`], in build order.
    pub members: Vec<usize>,
    /// The module and the merger's map of where each member went (`map.entries[j]` is
    /// `members[j]`'s).
    pub merged: merger::Merged,
}

/// Plans the shards from the programs' footprints and merges each one (on all threads).
pub(super) fn merge(
    opts: &BuildOptions,
    merge_options: &merger::MergeOptions,
    checked: &Checked,
    progress: &Progress,
) -> Result<Vec<Shard>, BuildError> {
    let ready = &checked.ready;
    let footprints: Vec<_> = ready.iter().map(|r| r.footprint).collect();
    let mut shards = Vec::new();
    for (k, members) in plan(&footprints, opts.max_shard_bytes)
        .into_iter()
        .enumerate()
    {
        let file = shard_file(k);
        progress.stage(&format!("merging {file} ({} programs)", members.len()));
        let programs: Vec<merger::Program> = members
            .iter()
            .map(|&i| merger::Program {
                name: ready[i].name.clone(),
                wasm: ready[i].content.bytes(),
                aliases: checked.aliases[i].clone(),
                validated: ready[i].validated,
            })
            .collect();
        let merged =
            merger::merge(&programs, merge_options).map_err(|source| BuildError::Merge {
                shard: file.clone(),
                source,
            })?;
        shards.push(Shard {
            file,
            members,
            merged,
        });
    }
    Ok(shards)
}

/// `--aot`: precompiles each megabinary for the runner's engine; returns the engine id and the
/// artifacts.
#[cfg(feature = "compiler")]
pub(super) fn precompile(
    shards: &[Shard],
    progress: &Progress,
) -> Result<(String, Files), BuildError> {
    let engine = runtime_check::new_engine().map_err(|e| BuildError::Aot(e.to_string()))?;
    let mut artifacts = Vec::new();
    for Shard { file, merged, .. } in shards {
        progress.stage(&format!("precompiling {file}"));
        let native = runtime_check::precompile(&engine, &merged.wasm)
            .map_err(|e| BuildError::Aot(format!("{file}: {e}")))?;
        artifacts.push((runtime_check::artifact_name(file), native));
    }
    Ok((runtime_check::engine_id(&engine), artifacts))
}

#[cfg(not(feature = "compiler"))]
pub(super) fn precompile(_: &[Shard], _: &Progress) -> Result<(String, Files), BuildError> {
    Err(BuildError::NoCompiler)
}
