//! `megabin build`: rootfs → megabinaries + `manifest.json`.
//!
//! Stages, one way: scan (walk, classify, hash) → check each program (parse, footprint) →
//! plan shards → merge each shard → write manifest → atomic commit.

mod plan;
mod write;

pub use plan::{plan, shard_file, DEFAULT_MAX_SHARD_BYTES};

use crate::config::{Config, ConfigError};
use crate::manifest::{
    container_id, digest_string, sha256_string, AgentTool, Aot, Binary, Manifest, FORMAT,
};
use crate::rootfs::{self, ScanError, ScanOptions};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Name of the configuration file looked up at the rootfs root.
pub const CONFIG_FILE: &str = "megabin.toml";

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
}

/// Why a build failed. [`BuildError::exit_code`] gives the documented exit code.
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
        name: String,
        path: String,
        reason: String,
    },
    /// The output directory is unusable.
    #[error("output directory {}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    /// No program in the rootfs can be merged.
    #[error("no WASI command program found in rootfs {}", .0.display())]
    NothingToBuild(PathBuf),
    /// Reading a program failed after the scan.
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// Precompiling a megabinary failed.
    #[error("precompiling (--aot): {0}")]
    Aot(String),
    /// The merger failed (a bug, since programs are checked first).
    #[error("merging {shard}: {source}")]
    Merge {
        shard: String,
        #[source]
        source: merger::MergeError,
    },
}

impl BuildError {
    /// The process exit code for this error (documented in `megabin build --help`).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Read { .. } | BuildError::Merge { .. } | BuildError::Aot(_) => 1,
            BuildError::Rootfs(_) => 3,
            BuildError::Config(_) | BuildError::AgentTool { .. } => 4,
            BuildError::Output { .. } => 5,
            BuildError::NothingToBuild(_) => 6,
        }
    }
}

/// What a build did, printed as the summary (or as JSON with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Container id of the manifest written.
    pub container_id: String,
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

/// A program that passed every check, ready to merge.
struct Ready {
    digest: [u8; 32],
    name: String,
    paths: Vec<String>,
    bytes: Vec<u8>,
    footprint: merger::Footprint,
}

/// Runs a build. Nothing in `opts.out` changes unless the whole build succeeds.
pub fn build(opts: &BuildOptions) -> Result<Summary, BuildError> {
    let started = Instant::now();
    check_output_dir(&opts.rootfs, &opts.out)?;
    let config = match &opts.config {
        Some(p) => Config::load(p)?,
        None => {
            // Anything named megabin.toml at the root is the configuration: a directory or
            // an unreadable file there is an error, not silently no configuration.
            let p = opts.rootfs.join(CONFIG_FILE);
            if p.symlink_metadata().is_ok() {
                Config::load(&p)?
            } else {
                Config::default()
            }
        }
    };
    let progress = crate::progress::Progress::new(opts.progress);
    progress.stage("scanning rootfs");
    let scan = rootfs::scan(
        &opts.rootfs,
        &ScanOptions {
            jobs: opts.jobs.max(1),
        },
    )?;
    let mut skipped: BTreeMap<String, String> = scan
        .skipped
        .iter()
        .map(|(p, r)| (p.clone(), r.to_string()))
        .collect();
    let mut warnings = scan.warnings.clone();
    let names = rootfs::entry_names(&scan.programs);

    // Read and check every program (in parallel); unsupported ones are skipped with a reason.
    progress.stage("checking programs");
    let checked = merger::parallel_map(&scan.programs, opts.jobs, |p| {
        // A program larger than a whole module may be is refused before it is read.
        if p.size > merger::limits::MAX_MODULE_BYTES {
            let e = merger::LimitExceeded {
                what: "bytes",
                needed: p.size,
                limit: merger::limits::MAX_MODULE_BYTES,
            };
            return Ok((Vec::new(), Err(format!("too-large: {e}"))));
        }
        let bytes = std::fs::read(&p.host_path).map_err(|e| BuildError::Read {
            path: p.primary_path.clone(),
            reason: e.to_string(),
        })?;
        let fp = merger::Footprint::of(&bytes).map_err(|u| skip_reason(&u));
        let fp = fp.and_then(|f| match merger::fits(&[f]) {
            Ok(_) => Ok(f),
            Err(e) => Err(format!("too-large: {e}")),
        });
        Ok::<_, BuildError>((bytes, fp))
    });
    let mut ready = Vec::new();
    for ((p, name), result) in scan.programs.iter().zip(names).zip(checked) {
        let (bytes, fp) = result?;
        match fp {
            Ok(footprint) => ready.push(Ready {
                digest: p.digest,
                name,
                paths: p.paths.clone(),
                bytes,
                footprint,
            }),
            Err(reason) => {
                for path in &p.paths {
                    skipped.insert(path.clone(), reason.clone());
                }
            }
        }
    }
    if ready.is_empty() {
        return Err(BuildError::NothingToBuild(opts.rootfs.clone()));
    }
    ready.sort_by_key(|r| r.digest);
    let aliases = unique_aliases(&ready, &mut warnings);

    // Agent tools must name merged programs.
    let mut agent_tools = BTreeMap::new();
    for (tool, spec) in config.tools() {
        let path = &spec.path;
        match ready.iter().find(|r| r.paths.contains(path)) {
            Some(r) => {
                agent_tools.insert(
                    tool.clone(),
                    AgentTool {
                        digest: digest_string(&r.digest),
                        path: Some(path.clone()),
                        description: spec.description.clone(),
                        timeout_ms: spec.timeout_ms,
                        max_memory: spec.max_memory,
                        input_schema: spec.input_schema.clone(),
                    },
                );
            }
            None => {
                let reason = match skipped.get(path) {
                    Some(why) => format!("is not merged ({why})"),
                    None => "is not a WASI command program in the rootfs".into(),
                };
                return Err(BuildError::AgentTool {
                    name: tool.clone(),
                    path: path.clone(),
                    reason,
                });
            }
        }
    }

    // Shards, each merged on all threads.
    let footprints: Vec<_> = ready.iter().map(|r| r.footprint).collect();
    let shards = plan(&footprints, opts.max_shard_bytes);
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut binaries = BTreeMap::new();
    for (k, members) in shards.iter().enumerate() {
        let file = shard_file(k);
        progress.stage(&format!("merging {file} ({} programs)", members.len()));
        let programs: Vec<merger::Program> = members
            .iter()
            .map(|&i| merger::Program {
                name: ready[i].name.clone(),
                wasm: &ready[i].bytes,
                aliases: aliases[i].clone(),
            })
            .collect();
        let merged = merger::merge(&programs, &merger::MergeOptions { jobs: opts.jobs }).map_err(
            |source| BuildError::Merge {
                shard: file.clone(),
                source,
            },
        )?;
        for &i in members {
            for path in &ready[i].paths {
                binaries.insert(
                    path.clone(),
                    Binary {
                        hash: digest_string(&ready[i].digest),
                        entry_point: format!("{}_start", ready[i].name),
                        megabinary: file.clone(),
                        size: ready[i].bytes.len() as u64,
                    },
                );
            }
        }
        outputs.push((file, merged.wasm));
    }
    let megabinaries: BTreeMap<String, String> = outputs
        .iter()
        .map(|(f, w)| (f.clone(), sha256_string(w)))
        .collect();
    let mut artifacts: Vec<(String, Vec<u8>)> = Vec::new();
    let aot = if opts.aot {
        let engine = runtime_check::new_engine().map_err(|e| BuildError::Aot(e.to_string()))?;
        for (file, wasm) in &outputs {
            progress.stage(&format!("precompiling {file}"));
            let native = runtime_check::aot::precompile(&engine, wasm)
                .map_err(|e| BuildError::Aot(format!("{file}: {e}")))?;
            artifacts.push((runtime_check::aot::artifact_name(file), native));
        }
        Some(Aot {
            engine: runtime_check::aot::engine_id(&engine),
            artifacts: artifacts
                .iter()
                .map(|(f, b)| (f.clone(), sha256_string(b)))
                .collect(),
        })
    } else {
        None
    };
    let manifest = Manifest {
        format: FORMAT.to_string(),
        container_id: container_id(&megabinaries, &binaries, &agent_tools, aot.as_ref()),
        megabinary: shard_file(0),
        megabinaries,
        binaries,
        agent_tools,
        skipped,
        aot,
    };

    progress.stage("writing outputs");
    let out_err = |e: std::io::Error| BuildError::Output {
        path: opts.out.clone(),
        reason: e.to_string(),
    };
    let mut staged = write::Staged::new(&opts.out).map_err(out_err)?;
    for (file, bytes) in outputs.iter().chain(&artifacts) {
        staged.add(file, bytes).map_err(out_err)?;
    }
    staged
        .add(MANIFEST_FILE, &manifest.to_json())
        .map_err(out_err)?;
    staged.commit().map_err(out_err)?;
    let files: Vec<String> = outputs.iter().map(|(f, _)| f.clone()).collect();
    let written: Vec<String> = outputs
        .iter()
        .chain(&artifacts)
        .map(|(f, _)| f.clone())
        .collect();
    write::remove_stale_outputs(&opts.out, &written);
    progress.finish();

    let mut by_reason = BTreeMap::new();
    for reason in manifest.skipped.values() {
        let kind = reason.split(':').next().unwrap_or(reason).to_string();
        *by_reason.entry(kind).or_insert(0) += 1;
    }
    Ok(Summary {
        container_id: manifest.container_id.clone(),
        programs: ready.len(),
        paths: manifest.binaries.len(),
        megabinaries: files,
        skipped: by_reason,
        warnings,
        input_bytes: ready.iter().map(|r| r.bytes.len() as u64).sum(),
        output_bytes: outputs.iter().map(|(_, w)| w.len() as u64).sum(),
        aot_bytes: artifacts.iter().map(|(_, b)| b.len() as u64).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The manifest reason for a program the merger refuses.
fn skip_reason(u: &merger::Unsupported) -> String {
    use merger::Unsupported::*;
    match u {
        Component => "wasm-component".into(),
        NoStart => "wasm-reactor".into(),
        Invalid(m) => format!("invalid-wasm: {m}"),
        ForeignImports(list) => format!("foreign-imports: {}", list.join(", ")),
        Feature { feature, .. } => format!("unsupported-feature: {feature}"),
        other => format!("unsupported-feature: {other}"),
    }
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

/// Refuses an output directory inside the rootfs (it would be scanned into the next build).
fn check_output_dir(rootfs: &Path, out: &Path) -> Result<(), BuildError> {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Canonicalize the longest existing ancestor, then re-append the rest.
        let mut existing = p.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(n), Some(parent)) => {
                    rest.push(n.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut c = existing.canonicalize().unwrap_or(existing);
        for n in rest.iter().rev() {
            c.push(n);
        }
        c
    };
    if let (Ok(root), out_abs) = (rootfs.canonicalize(), abs(out)) {
        if out_abs.starts_with(&root) {
            return Err(BuildError::Output {
                path: out.to_path_buf(),
                reason: format!("is inside the rootfs {}", rootfs.display()),
            });
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(BuildError::Output {
            path: out.to_path_buf(),
            reason: "exists and is not a directory".into(),
        });
    }
    Ok(())
}
