//! `megabin build`: rootfs → megabinaries + `manifest.json`.
//!
//! Named stages, one way, each a function in its own file, called in order by
//! [`build_scanned`] (after Binaryen's `wasm-merge.cpp`); each consumes the typed output of the
//! one before:
//!
//! 1. [`scan`] (`scan.rs`, [`crate::rootfs`]): walk, classify, read and hash each program once;
//! 2. `check` (`check.rs`): parse each program's bytes, its footprint, skip what the merger
//!    refuses (a typed [`SkipReason`]), entry names and `argv[0]` aliases, agent tools;
//!    and the `#!` scripts a merged program interprets (`scripts.rs`);
//! 3. `merge` (`merge.rs`): plan the shards, merge each from the same bytes (and, with
//!    `--aot`, precompile each);
//! 4. `manifest` (`manifest.rs`): built from the merger's [`merger::MergeMap`]s;
//! 5. [`write`] (`write.rs`): everything into OUT atomically.
//!
//! [`build_outputs`] runs every stage but the last, in memory; `megabin verify --rootfs` uses it
//! to rebuild and compare.

mod check;
mod manifest;
mod merge;
mod plan;
mod scan;
mod scripts;
#[cfg(test)]
mod tests;
mod write;

pub use plan::{plan, shard_file, DEFAULT_MAX_SHARD_BYTES};
pub use scan::{scan, Scanned};
pub use write::write;

pub use crate::config::CONFIG_FILE;
use crate::config::{Config, ConfigError};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::rootfs::{ScanError, SkipReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Build settings.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The rootfs directory.
    pub rootfs: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// `--config`, else `<rootfs>/megabin.toml` when present.
    pub config: Option<PathBuf>,
    /// Worker threads for hashing, parsing and merging.
    pub jobs: usize,
    /// Cap on a megabinary's estimated size; larger sets are split into shards.
    pub max_shard_bytes: u64,
    /// Report progress on stderr (a TTY).
    pub progress: bool,
    /// Also write precompiled artifacts (`container.cwasm`, …) for the runner's engine.
    pub aot: bool,
    /// Merge programs that import functions of non-WASI host modules, each such import
    /// replaced by a stub that traps when called (`--stub-foreign-imports`; also switched on
    /// by `stub_foreign_imports = true` in the configuration).
    pub stub_foreign_imports: bool,
}

/// Why a build failed (`commands::error::build_code` gives the documented exit code).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The rootfs cannot be scanned.
    #[error("{0}")]
    Rootfs(#[from] ScanError),
    /// The configuration file is unusable.
    #[error("config {0}")]
    Config(#[from] ConfigError),
    /// An agent tool names a path that is not a merged program.
    #[error("agent tool `{name}`: {path} {reason}")]
    AgentTool {
        /// The tool.
        name: String,
        /// The path it names.
        path: String,
        /// Why that path is not a merged program.
        reason: String,
    },
    /// The output directory is unusable.
    #[error("output directory {}: {reason}", path.display())]
    Output {
        /// The output directory.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// No program in the rootfs can be merged.
    #[error("no WASI command program found in rootfs {}", .0.display())]
    NothingToBuild(PathBuf),
    /// Precompiling a megabinary failed.
    #[error("precompiling (--aot): {0}")]
    Aot(String),
    /// This megabin is the runner, built without the `compiler` feature.
    #[error(
        "this megabin is the runner without the Cranelift compiler (built without the \
         `compiler` feature): it only runs builds; build them with the full megabin"
    )]
    NoCompiler,
    /// The merger failed (a bug, since programs are checked first).
    #[error("merging {shard}: {source}")]
    Merge {
        /// The megabinary being merged.
        shard: String,
        /// The merger's error.
        #[source]
        source: merger::MergeError,
    },
}

/// What a build did, printed as the summary (or as JSON with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Container id of the manifest written.
    pub container_id: megabin_format::Digest,
    /// Programs merged.
    pub programs: usize,
    /// Rootfs paths mapped to them.
    pub paths: usize,
    /// Megabinary files written.
    pub megabinaries: Vec<String>,
    /// Skipped paths by reason kind (the part before `:`).
    pub skipped: BTreeMap<String, usize>,
    /// Warnings (unreadable files, dangling symlinks, ambiguous names).
    pub warnings: Vec<String>,
    /// Σ size of merged program files.
    pub input_bytes: u64,
    /// Σ size of megabinaries.
    pub output_bytes: u64,
    /// Σ size of AOT artifacts (0 without `--aot`).
    pub aot_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Output files in memory: file name → bytes, in write order.
pub type Files = Vec<(String, Vec<u8>)>;

/// What a build produces, in memory: nothing is written until [`write`].
pub struct Built {
    /// The manifest.
    pub manifest: Manifest,
    /// Megabinary file name → bytes, in shard order.
    pub megabinaries: Files,
    /// AOT artifact file name → bytes (empty without `--aot`).
    pub artifacts: Files,
    /// Rootfs path → why it is not merged (the manifest records the reasons' strings).
    pub skipped: BTreeMap<String, SkipReason>,
    /// Warnings (unreadable files, dangling symlinks, ambiguous names).
    pub warnings: Vec<String>,
    /// Programs merged.
    pub programs: usize,
    /// Σ size of merged programs.
    pub input_bytes: u64,
}

/// Runs a build. Nothing in `opts.out` changes unless the whole build succeeds.
pub fn build(opts: &BuildOptions) -> Result<Summary, BuildError> {
    if !cfg!(feature = "compiler") {
        return Err(BuildError::NoCompiler);
    }
    let started = Instant::now();
    // Refuse an unusable output directory before any work.
    write::check_output_dir(&opts.rootfs, &opts.out)?;
    let progress = Progress::new(opts.progress);
    // Stages 1 to 4, in memory.
    let built = build_outputs_with(opts, load_config(opts)?, &progress)?;
    // Stage 5: commit every output at once.
    progress.stage("writing outputs");
    write(opts, &built)?;
    progress.finish();
    Ok(built.summary(started))
}

/// Builds in memory: scan, check, merge, manifest (and `--aot` precompilation). Writes nothing
/// (`opts.out` is not used). Builds are byte-reproducible: the same rootfs and options give the
/// same bytes.
pub fn build_outputs(opts: &BuildOptions) -> Result<Built, BuildError> {
    build_outputs_with(opts, load_config(opts)?, &Progress::new(false))
}

/// [`build_outputs`] with the configuration given (e.g. the one a manifest records).
pub fn build_outputs_with_config(opts: &BuildOptions, config: Config) -> Result<Built, BuildError> {
    build_outputs_with(opts, config, &Progress::new(false))
}

fn build_outputs_with(
    opts: &BuildOptions,
    config: Config,
    progress: &Progress,
) -> Result<Built, BuildError> {
    progress.stage("scanning rootfs");
    let scanned = scan(opts)?;
    build_scanned(opts, config, scanned, progress)
}

/// Stages 2 to 4 on the result of [`scan`].
fn build_scanned(
    opts: &BuildOptions,
    config: Config,
    scanned: Scanned,
    progress: &Progress,
) -> Result<Built, BuildError> {
    let merge_options = merger::MergeOptions {
        jobs: opts.jobs,
        stub_foreign_imports: opts.stub_foreign_imports || config.stub_foreign_imports,
    };
    // Check: parse each program once, skip what cannot be merged, name the rest.
    progress.stage("checking programs");
    let checked = check::check(opts, &merge_options, scanned)?;
    // Resolve the configuration's agent tools to merged programs.
    let agent_tools = check::agent_tools(&config, &checked)?;
    // Merge: cut the shards, merge each one.
    let shards = merge::merge(opts, &merge_options, &checked, progress)?;
    // `--aot`: precompile each megabinary.
    let aot = if opts.aot {
        Some(merge::precompile(&shards, progress)?)
    } else {
        None
    };
    // Manifest: from the merge maps, the skipped paths and the agent tools.
    let manifest = manifest::manifest(
        manifest::Inputs {
            opts,
            config: &config,
            checked: &checked,
            agent_tools,
            aot: aot.as_ref(),
        },
        &shards,
    );
    Ok(Built {
        manifest,
        megabinaries: shards
            .into_iter()
            .map(|s| (s.file, s.merged.wasm))
            .collect(),
        artifacts: aot.map(|(_, artifacts)| artifacts).unwrap_or_default(),
        input_bytes: checked.input_bytes(),
        programs: checked.ready.len(),
        skipped: checked.skipped,
        warnings: checked.warnings,
    })
}

impl Built {
    /// The build's summary; `started` is when the build began.
    fn summary(self, started: Instant) -> Summary {
        let mut by_reason = BTreeMap::new();
        for reason in self.skipped.values() {
            *by_reason.entry(reason.kind().to_string()).or_insert(0) += 1;
        }
        Summary {
            container_id: self.manifest.container_id,
            programs: self.programs,
            paths: self.manifest.binaries.len(),
            megabinaries: self.megabinaries.iter().map(|(f, _)| f.clone()).collect(),
            skipped: by_reason,
            warnings: self.warnings,
            input_bytes: self.input_bytes,
            output_bytes: self.megabinaries.iter().map(|(_, w)| w.len() as u64).sum(),
            aot_bytes: self.artifacts.iter().map(|(_, b)| b.len() as u64).sum(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// The configuration: `--config`, else the rootfs's `megabin.toml` (resolved inside it), else
/// none.
pub fn load_config(opts: &BuildOptions) -> Result<Config, BuildError> {
    Ok(match &opts.config {
        Some(p) => Config::load(p)?,
        None => Config::load_from_rootfs(&opts.rootfs)?.unwrap_or_default(),
    })
}
