//! `megabin build`: rootfs → megabinaries + `manifest.json`.
//!
//! Named stages, one way: [`scan`] (walk, classify, read and hash each program once) → `check`
//! (parse each program's bytes, footprint) → `merge` (plan shards, merge each from the same
//! bytes) → `manifest` → [`write`] (atomic commit). [`build_outputs`] runs every stage but the
//! last, in memory; `megabin verify --rootfs` uses it to rebuild and compare.

mod plan;
#[cfg(test)]
mod tests;
mod write;

pub use plan::{plan, shard_file, DEFAULT_MAX_SHARD_BYTES};

pub use crate::config::CONFIG_FILE;
use crate::config::{Config, ConfigError};
use crate::manifest::{container_id, AgentTool, Aot, Binary, BuildInfo, Manifest, FORMAT};
use crate::rootfs::{self, ScanError, ScanOptions};
use megabin_format::Digest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

/// A program that passed every check, ready to merge.
struct Ready {
    name: String,
    paths: Vec<String>,
    /// The bytes read by the scan and their digest (the one the manifest records).
    content: rootfs::Content,
    footprint: merger::Footprint,
}

/// Stage 1 output: what the rootfs holds.
pub struct Scanned {
    scan: rootfs::Scan,
}

/// Stage 2 output: the programs to merge, in build order, and what was skipped.
struct Checked {
    ready: Vec<Ready>,
    aliases: Vec<Vec<String>>,
    skipped: BTreeMap<String, String>,
    warnings: Vec<String>,
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
    check_output_dir(&opts.rootfs, &opts.out)?;
    let progress = crate::progress::Progress::new(opts.progress);
    let built = build_outputs_with(opts, load_config(opts)?, &progress)?;
    progress.stage("writing outputs");
    write(opts, &built)?;
    progress.finish();

    let mut by_reason = BTreeMap::new();
    for reason in built.manifest.skipped.values() {
        let kind = reason.split(':').next().unwrap_or(reason).to_string();
        *by_reason.entry(kind).or_insert(0) += 1;
    }
    Ok(Summary {
        container_id: built.manifest.container_id,
        programs: built.programs,
        paths: built.manifest.binaries.len(),
        megabinaries: built.megabinaries.iter().map(|(f, _)| f.clone()).collect(),
        skipped: by_reason,
        warnings: built.warnings,
        input_bytes: built.input_bytes,
        output_bytes: built.megabinaries.iter().map(|(_, w)| w.len() as u64).sum(),
        aot_bytes: built.artifacts.iter().map(|(_, b)| b.len() as u64).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Builds in memory: scan, check, merge, manifest (and `--aot` precompilation). Writes nothing
/// (`opts.out` is not used). Builds are byte-reproducible: the same rootfs and options give the
/// same bytes.
pub fn build_outputs(opts: &BuildOptions) -> Result<Built, BuildError> {
    build_outputs_with(
        opts,
        load_config(opts)?,
        &crate::progress::Progress::new(false),
    )
}

/// [`build_outputs`] with the configuration given (e.g. the one a manifest records).
pub fn build_outputs_with_config(opts: &BuildOptions, config: Config) -> Result<Built, BuildError> {
    build_outputs_with(opts, config, &crate::progress::Progress::new(false))
}

fn build_outputs_with(
    opts: &BuildOptions,
    config: Config,
    progress: &crate::progress::Progress,
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
    progress: &crate::progress::Progress,
) -> Result<Built, BuildError> {
    let merge_options = merger::MergeOptions {
        jobs: opts.jobs,
        stub_foreign_imports: opts.stub_foreign_imports || config.stub_foreign_imports,
    };
    progress.stage("checking programs");
    let mut checked = check(opts, &merge_options, scanned)?;
    let agent_tools = agent_tools(&config, &checked)?;
    let (shards, megabinaries, stubbed) = merge(opts, &merge_options, &checked, progress)?;
    let (aot_engine, artifacts) = if opts.aot {
        let (engine, artifacts) = precompile(&megabinaries, progress)?;
        (Some(engine), artifacts)
    } else {
        (None, Vec::new())
    };
    let manifest = manifest(
        opts,
        &config,
        &checked,
        (&shards, &stubbed),
        agent_tools,
        &megabinaries,
        aot_engine.map(|engine| (engine, &artifacts)),
    );
    Ok(Built {
        manifest,
        megabinaries,
        artifacts,
        warnings: std::mem::take(&mut checked.warnings),
        programs: checked.ready.len(),
        input_bytes: checked
            .ready
            .iter()
            .map(|r| r.content.bytes().len() as u64)
            .sum(),
    })
}

/// The configuration: `--config`, else the rootfs's `megabin.toml` (resolved inside it), else
/// none.
pub fn load_config(opts: &BuildOptions) -> Result<Config, BuildError> {
    Ok(match &opts.config {
        Some(p) => Config::load(p)?,
        None => Config::load_from_rootfs(&opts.rootfs)?.unwrap_or_default(),
    })
}

/// Stage 1, scan: walk the rootfs, classify every file, read and hash each WASI command module
/// once (the bytes stay in memory for the later stages).
pub fn scan(opts: &BuildOptions) -> Result<Scanned, BuildError> {
    let scan = rootfs::scan(
        &opts.rootfs,
        &ScanOptions {
            jobs: opts.jobs.max(1),
        },
    )?;
    Ok(Scanned { scan })
}

/// Stage 2, check: each program's footprint (parsing its bytes from the scan, in parallel);
/// unsupported ones are skipped with a reason. Nothing is read from the rootfs again.
fn check(
    opts: &BuildOptions,
    merge_options: &merger::MergeOptions,
    scanned: Scanned,
) -> Result<Checked, BuildError> {
    let scan = scanned.scan;
    let mut skipped: BTreeMap<String, String> = scan
        .skipped
        .iter()
        .map(|(p, r)| (p.clone(), r.to_string()))
        .collect();
    let mut warnings = scan.warnings.clone();
    let names = rootfs::entry_names(&scan.programs);
    let too_large = |size: u64| {
        let e = merger::LimitExceeded {
            what: "bytes",
            needed: size,
            limit: merger::limits::MAX_MODULE_BYTES,
        };
        format!("too-large: {e}")
    };
    let checked = merger::parallel_map(&scan.programs, opts.jobs, |p| {
        // A program larger than a whole module may be was not kept by the scan.
        let content = match &p.content {
            Some(c) if p.size <= merger::limits::MAX_MODULE_BYTES => c,
            _ => return Err(too_large(p.size)),
        };
        let fp = merger::Footprint::of_with(content.bytes(), merge_options)
            .map_err(|u| skip_reason(&u))?;
        match merger::fits(&[fp]) {
            Ok(_) => Ok(fp),
            Err(e) => Err(format!("too-large: {e}")),
        }
    });
    let mut ready = Vec::new();
    for ((p, name), result) in scan.programs.into_iter().zip(names).zip(checked) {
        match (result, p.content) {
            (Ok(footprint), Some(content)) => ready.push(Ready {
                name,
                paths: p.paths,
                content,
                footprint,
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
    Ok(Checked {
        ready,
        aliases,
        skipped,
        warnings,
    })
}

/// Agent tools must name merged programs: tool name → program digest.
fn agent_tools(
    config: &Config,
    checked: &Checked,
) -> Result<BTreeMap<String, AgentTool>, BuildError> {
    let mut agent_tools = BTreeMap::new();
    for (tool, spec) in config.tools() {
        let path = &spec.path;
        match checked.ready.iter().find(|r| r.paths.contains(path)) {
            Some(r) => {
                agent_tools.insert(
                    tool.clone(),
                    AgentTool {
                        digest: r.content.digest().into(),
                        path: Some(path.clone()),
                        description: spec.description.clone(),
                        timeout_ms: spec.timeout_ms,
                        max_memory: spec.max_memory,
                        input_schema: spec.input_schema.clone(),
                    },
                );
            }
            None => {
                let reason = match checked.skipped.get(path) {
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
    Ok(agent_tools)
}

/// Shard plan (program indices per megabinary), megabinaries (file name, bytes) and each
/// program's stubbed foreign imports (by program index).
type Merged = (Vec<Vec<usize>>, Files, Vec<Vec<String>>);

/// Stage 3, merge: plan the shards and merge each one (on all threads) from the scanned bytes.
fn merge(
    opts: &BuildOptions,
    merge_options: &merger::MergeOptions,
    checked: &Checked,
    progress: &crate::progress::Progress,
) -> Result<Merged, BuildError> {
    let ready = &checked.ready;
    let footprints: Vec<_> = ready.iter().map(|r| r.footprint).collect();
    let shards = plan(&footprints, opts.max_shard_bytes);
    let mut outputs = Vec::new();
    let mut stubbed = vec![Vec::new(); ready.len()];
    for (k, members) in shards.iter().enumerate() {
        let file = shard_file(k);
        progress.stage(&format!("merging {file} ({} programs)", members.len()));
        let programs: Vec<merger::Program> = members
            .iter()
            .map(|&i| merger::Program {
                name: ready[i].name.clone(),
                wasm: ready[i].content.bytes(),
                aliases: checked.aliases[i].clone(),
            })
            .collect();
        let merged =
            merger::merge(&programs, merge_options).map_err(|source| BuildError::Merge {
                shard: file.clone(),
                source,
            })?;
        for (&i, entry) in members.iter().zip(&merged.map.entries) {
            stubbed[i] = entry.stubbed_imports.clone();
        }
        outputs.push((file, merged.wasm));
    }
    Ok((shards, outputs, stubbed))
}

/// `--aot`: precompiles each megabinary for the runner's engine; returns the engine id and the
/// artifacts.
#[cfg(feature = "compiler")]
fn precompile(
    megabinaries: &Files,
    progress: &crate::progress::Progress,
) -> Result<(String, Files), BuildError> {
    let engine = runtime_check::new_engine().map_err(|e| BuildError::Aot(e.to_string()))?;
    let mut artifacts = Vec::new();
    for (file, wasm) in megabinaries {
        progress.stage(&format!("precompiling {file}"));
        let native = runtime_check::aot::precompile(&engine, wasm)
            .map_err(|e| BuildError::Aot(format!("{file}: {e}")))?;
        artifacts.push((runtime_check::aot::artifact_name(file), native));
    }
    Ok((runtime_check::aot::engine_id(&engine), artifacts))
}

#[cfg(not(feature = "compiler"))]
fn precompile(_: &Files, _: &crate::progress::Progress) -> Result<(String, Files), BuildError> {
    Err(BuildError::NoCompiler)
}

/// Stage 4, manifest: every path's program and megabinary, the digests, the container id, and
/// the options a rebuild needs.
fn manifest(
    opts: &BuildOptions,
    config: &Config,
    checked: &Checked,
    (shards, stubbed): (&[Vec<usize>], &[Vec<String>]),
    agent_tools: BTreeMap<String, AgentTool>,
    megabinaries: &Files,
    aot: Option<(String, &Files)>,
) -> Manifest {
    let mut binaries = BTreeMap::new();
    for (k, members) in shards.iter().enumerate() {
        for &i in members {
            let r = &checked.ready[i];
            for path in &r.paths {
                binaries.insert(
                    path.clone(),
                    Binary {
                        hash: r.content.digest().into(),
                        entry_point: format!("{}_start", r.name),
                        megabinary: shard_file(k),
                        size: r.content.bytes().len() as u64,
                        stubbed_imports: stubbed[i].clone(),
                    },
                );
            }
        }
    }
    let digests: BTreeMap<String, Digest> = megabinaries
        .iter()
        .map(|(f, w)| (f.clone(), Digest::of(w)))
        .collect();
    let aot = aot.map(|(engine, artifacts)| Aot {
        engine,
        artifacts: artifacts
            .iter()
            .map(|(f, b)| (f.clone(), Digest::of(b)))
            .collect(),
    });
    Manifest {
        format: FORMAT.to_string(),
        container_id: container_id(&digests, &binaries, &agent_tools, aot.as_ref()),
        megabinary: shard_file(0),
        megabinaries: digests,
        binaries,
        agent_tools,
        skipped: checked.skipped.clone(),
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
    }
}

/// Stage 5, write: stage every file in `opts.out`, commit them atomically (manifest last),
/// then remove outputs of an earlier build that this one no longer has.
pub fn write(opts: &BuildOptions, built: &Built) -> Result<(), BuildError> {
    let out_err = |e: std::io::Error| BuildError::Output {
        path: opts.out.clone(),
        reason: e.to_string(),
    };
    let mut staged = write::Staged::new(&opts.out).map_err(out_err)?;
    for (file, bytes) in built.megabinaries.iter().chain(&built.artifacts) {
        staged.add(file, bytes).map_err(out_err)?;
    }
    staged
        .add(MANIFEST_FILE, &built.manifest.to_json())
        .map_err(out_err)?;
    staged.commit().map_err(out_err)?;
    let written: Vec<String> = built
        .megabinaries
        .iter()
        .chain(&built.artifacts)
        .map(|(f, _)| f.clone())
        .collect();
    write::remove_stale_outputs(&opts.out, &written);
    Ok(())
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
