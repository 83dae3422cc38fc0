//! `megabin inspect <OUT_DIR | container.wasm>`: what a megabinary holds.

use super::error::CliError;
use megabin_format::Digest;
use runtime_check::manifest::{AgentTool, Manifest, Script};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Show the programs of a megabinary.
#[derive(Clone, Debug, clap::Args)]
pub struct InspectArgs {
    /// Build output directory or a megabinary file.
    pub target: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Description of one megabinary.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The file inspected.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its programs, in entry order.
    pub entries: Vec<EntryInfo>,
    /// WASI functions imported.
    pub imports: Vec<String>,
    /// Functions reachable from more than one program (the bridge helpers).
    pub shared_functions: usize,
    /// Functions, imported ones included.
    pub functions: u32,
    /// Memories.
    pub memories: u32,
}

/// One program of a megabinary.
#[derive(Debug, Serialize)]
pub struct EntryInfo {
    /// The entry's name.
    pub name: String,
    /// The program's digest, `sha256:<hex>`.
    pub digest: String,
    /// The export that starts it.
    pub start_export: String,
    /// Index of its memory.
    pub memory: u32,
    /// Rootfs paths (when a manifest is available).
    pub paths: Vec<String>,
    /// Its functions.
    pub functions: u32,
    /// Bytes of its code.
    pub code_bytes: u64,
    /// Bytes of its data segments.
    pub data_bytes: u64,
}

/// What `inspect` shows: the build (from its manifest, when the target is a build output
/// directory) and each of its megabinaries (shards).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The build's id (absent for a bare megabinary file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Digest>,
    /// Each megabinary: its entries with every path that runs them (a program's aliases).
    pub megabinaries: Vec<Inspection>,
    /// Agent tool name → its record.
    pub agent_tools: BTreeMap<String, AgentTool>,
    /// Script path → the merged interpreter that runs it (digest, interpreter, argv).
    pub scripts: BTreeMap<String, Script>,
    /// Rootfs path → why it is not in any megabinary.
    pub skipped: BTreeMap<String, String>,
}

/// Runs the command: inspects a build output (every megabinary, the container id, the agent
/// tools and the skipped paths) or one megabinary file.
pub fn run(a: InspectArgs) -> Result<ExitCode, CliError> {
    let report = report(&a.target).map_err(|e| CliError::failed("inspect", e))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializes")
        );
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of a build output directory or of a megabinary file.
pub fn report(target: &Path) -> Result<Report, String> {
    if !target.is_dir() {
        return Ok(Report {
            container_id: None,
            megabinaries: vec![inspect_file(target, None)?],
            agent_tools: BTreeMap::new(),
            scripts: BTreeMap::new(),
            skipped: BTreeMap::new(),
        });
    }
    let m = runtime_check::load_manifest(target).map_err(|e| e.message)?;
    let megabinaries = m
        .megabinaries
        .keys()
        .map(|f| inspect_file(&target.join(f), Some(&m)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        container_id: Some(m.container_id),
        megabinaries,
        agent_tools: m.agent_tools,
        scripts: m.scripts,
        skipped: m.skipped,
    })
}

/// Prints a report: the build's id, each megabinary's table, the agent tools, the scripts, the
/// skipped paths.
fn print_report(r: &Report) {
    if let Some(id) = &r.container_id {
        println!("container_id: {id}");
        println!("megabinaries (shards): {}", r.megabinaries.len());
    }
    r.megabinaries.iter().for_each(print);
    if !r.agent_tools.is_empty() {
        println!("agent tools:");
        for (name, t) in &r.agent_tools {
            println!(
                "  {name}  {}  {}",
                t.digest,
                t.path.as_deref().unwrap_or("")
            );
        }
    }
    if !r.scripts.is_empty() {
        println!("scripts:");
        for (path, s) in &r.scripts {
            println!("  {path}  {}  {} {path}", s.hash, s.argv.join(" "));
        }
    }
    if !r.skipped.is_empty() {
        println!("skipped ({}):", r.skipped.len());
        for (path, reason) in &r.skipped {
            println!("  {path}: {reason}");
        }
    }
}

/// Inspects a megabinary, with the paths from `manifest` when given.
pub fn inspect_file(path: &Path, manifest: Option<&Manifest>) -> Result<Inspection, String> {
    // Opened like every file the runner reads: a FIFO or device is refused, never waited on.
    let opened =
        runtime_check::open_regular(path).map_err(|e| format!("{} {e}", path.display()))?;
    let wasm = runtime_check::read_all(&opened.file, opened.meta.len())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let map = merger::read_entries_section(&wasm).ok_or_else(|| {
        format!(
            "{}: not a megabinary (no megabin.entries section)",
            path.display()
        )
    })?;
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(m) = manifest {
        for (p, b) in &m.binaries {
            paths.entry(b.hash.to_string()).or_default().push(p.clone());
        }
    }
    let (mut imports, mut functions, mut memories) = (Vec::new(), 0u32, 0u32);
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        match payload.map_err(|e| format!("{}: {e}", path.display()))? {
            wasmparser::Payload::ImportSection(r) => {
                for i in r.into_imports().flatten() {
                    imports.push(i.name.to_string());
                    functions += 1;
                }
            }
            wasmparser::Payload::FunctionSection(r) => functions += r.count(),
            wasmparser::Payload::MemorySection(r) => memories += r.count(),
            _ => {}
        }
    }
    let shared = merger::check_isolation(&wasm)
        .map(|r| r.shared.len())
        .unwrap_or(0);
    Ok(Inspection {
        file: path.display().to_string(),
        size: wasm.len() as u64,
        entries: map
            .entries
            .iter()
            .map(|e| {
                let digest = e.digest.to_string();
                EntryInfo {
                    name: e.name.clone(),
                    paths: paths.get(&digest).cloned().unwrap_or_default(),
                    digest,
                    start_export: e.start_export.clone(),
                    memory: e.memory,
                    functions: e.functions.end - e.functions.start,
                    code_bytes: e.code_bytes,
                    data_bytes: e.data_bytes,
                }
            })
            .collect(),
        imports,
        shared_functions: shared,
        functions,
        memories,
    })
}

/// Prints an inspection as a table.
pub fn print(i: &Inspection) {
    println!(
        "{}: {} bytes, {} programs, {} memories, {} functions ({} shared), imports: {}",
        i.file,
        i.size,
        i.entries.len(),
        i.memories,
        i.functions,
        i.shared_functions,
        i.imports.join(" ")
    );
    println!(
        "{:<16} {:>4} {:>7} {:>9} {:>9}  {:<71} paths",
        "entry", "mem", "funcs", "code", "data", "digest"
    );
    for e in &i.entries {
        println!(
            "{:<16} {:>4} {:>7} {:>9} {:>9}  {:<71} {}",
            e.name,
            e.memory,
            e.functions,
            e.code_bytes,
            e.data_bytes,
            e.digest,
            e.paths.join(" ")
        );
    }
}
