//! `megabin inspect <OUT_DIR | container.wasm>`: what a megabinary holds.

use super::error::CliError;
use runtime_check::manifest::Manifest;
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

/// Runs the command: inspects every megabinary of a build output, or one megabinary file.
pub fn run(a: InspectArgs) -> Result<ExitCode, CliError> {
    let target = &a.target;
    let (files, manifest) = if target.is_dir() {
        let m = runtime_check::verify::load_manifest(target)
            .map_err(|e| CliError::failed("inspect", e.message))?;
        let files: Vec<PathBuf> = m.megabinaries.keys().map(|f| target.join(f)).collect();
        (files, Some(m))
    } else {
        (vec![target.clone()], None)
    };
    let all = files
        .iter()
        .map(|f| inspect_file(f, manifest.as_ref()).map_err(|e| CliError::failed("inspect", e)))
        .collect::<Result<Vec<_>, _>>()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("serializes")
        );
    } else {
        all.iter().for_each(print);
    }
    Ok(ExitCode::SUCCESS)
}

/// Inspects a megabinary, with the paths from `manifest` when given.
pub fn inspect_file(path: &Path, manifest: Option<&Manifest>) -> Result<Inspection, String> {
    // Opened like every file the runner reads: a FIFO or device is refused, never waited on.
    let opened =
        runtime_check::open::open_regular(path).map_err(|e| format!("{} {e}", path.display()))?;
    let wasm = runtime_check::open::read_all(&opened.file, opened.meta.len())
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
