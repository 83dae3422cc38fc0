//! `megabin list OUT [--json]`: what can be run from a build (as BusyBox's `--list`): every
//! program with its paths, the bare names a `PATH` lookup finds it by, its short digest and
//! its entry, the `#!` scripts and their interpreters, and the agent tools.

use super::args::PinArgs;
use super::error::CliError;
use super::lookup::DEFAULT_PATH;
use crate::manifest::Manifest;
use megabin_format::Digest;
use runtime_check::Container;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Hex digits of the short digest form (`sha256:<12 hex>`), the shortest prefix accepted.
pub const SHORT_DIGEST: usize = runtime_check::MIN_DIGEST_PREFIX;

/// List what can be run: every program's paths, names, short digest and entry; agent tools.
#[derive(Clone, Debug, clap::Args)]
pub struct ListArgs {
    /// Build output directory.
    pub out: PathBuf,
    /// The pin.
    #[command(flatten)]
    pub pin: PinArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: prints the listing of a trusted build.
pub fn run(a: ListArgs) -> Result<ExitCode, CliError> {
    let container = Container::open(&a.out, a.pin.expect_id)
        .map_err(|r| CliError::from(r).in_command("list"))?;
    let l = listing(container.manifest());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&l).expect("serializes"));
    } else {
        print(&l);
    }
    Ok(ExitCode::SUCCESS)
}

/// One runnable program.
#[derive(Debug, Serialize)]
pub struct Listed {
    /// The program's digest.
    pub digest: Digest,
    /// Its entry export.
    pub entry: String,
    /// The megabinary holding it.
    pub megabinary: String,
    /// Every rootfs path that runs it.
    pub paths: Vec<String>,
    /// Bare names that find it through the rootfs's `PATH` directories.
    pub names: Vec<String>,
}

/// Everything runnable, for `--json`.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The build's id.
    pub container_id: Digest,
    /// Programs by digest order.
    pub programs: Vec<Listed>,
    /// Agent tool name → its record (program digest, path, description, limits).
    pub agent_tools: BTreeMap<String, runtime_check::manifest::AgentTool>,
    /// Script path → its record (digest, interpreter, argv).
    pub scripts: BTreeMap<String, runtime_check::manifest::Script>,
}

/// The listing of a trusted manifest.
pub fn listing(m: &Manifest) -> Listing {
    let mut by_digest: BTreeMap<Digest, Listed> = BTreeMap::new();
    for (path, b) in &m.binaries {
        let l = by_digest.entry(b.hash).or_insert_with(|| Listed {
            digest: b.hash,
            entry: b.entry_point.clone(),
            megabinary: b.megabinary.clone(),
            paths: Vec::new(),
            names: Vec::new(),
        });
        l.paths.push(path.clone());
    }
    // A bare name finds the first PATH directory's program of that name.
    let mut taken = std::collections::BTreeSet::new();
    for dir in DEFAULT_PATH {
        for (path, b) in &m.binaries {
            let Some(name) = path
                .strip_prefix(dir)
                .and_then(|r| r.strip_prefix('/'))
                .filter(|n| !n.contains('/'))
            else {
                continue;
            };
            if taken.insert(name.to_string()) {
                if let Some(l) = by_digest.get_mut(&b.hash) {
                    l.names.push(name.to_string());
                }
            }
        }
    }
    Listing {
        container_id: m.container_id,
        programs: by_digest.into_values().collect(),
        agent_tools: m.agent_tools.clone(),
        scripts: m.scripts.clone(),
    }
}

/// `sha256:<12 hex>`.
pub fn short(digest: &Digest) -> String {
    format!("{}{}", Digest::PREFIX, &digest.hex()[..SHORT_DIGEST])
}

/// Prints the listing as a table.
pub fn print(l: &Listing) {
    for p in &l.programs {
        let names = if p.names.is_empty() {
            String::new()
        } else {
            format!("  ({})", p.names.join(", "))
        };
        println!("{}  {}  {}{names}", short(&p.digest), p.entry, p.megabinary);
        for path in &p.paths {
            println!("    {path}");
        }
    }
    if !l.scripts.is_empty() {
        println!("scripts:");
        for (path, s) in &l.scripts {
            println!(
                "  {path}  {}  run by {} as: {} {path}",
                short(&s.hash),
                s.interpreter,
                s.argv.join(" ")
            );
        }
    }
    if !l.agent_tools.is_empty() {
        println!("agent tools:");
        for (name, tool) in &l.agent_tools {
            let path = tool.path.as_deref().unwrap_or("");
            match &tool.description {
                Some(d) => println!("  {name}  {}  {path}  {d}", short(&tool.digest)),
                None => println!("  {name}  {}  {path}", short(&tool.digest)),
            }
        }
    }
}
