//! One build as `serve` holds it: opened under its trust root, every megabinary's code loaded
//! through the shared load path (artifact, compile cache or compilation) and linked once, and
//! the tools it offers. A new build replaces a [`Loaded`] as a whole; calls in flight keep the
//! one they started with (it is shared through an `Arc`).

use crate::commands::args::TrustArgs;
use crate::commands::load::load_code;
use megabin_format::Digest;
use runtime_check::manifest::AgentTool;
use runtime_check::Cache;
use runtime_check::LoadOptions;
use runtime_check::Measurer;
use runtime_check::Prepared;
use runtime_check::{Container, MANIFEST_FILE};
use runtime_check::{Refusal, EXIT_REFUSED};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use wasmtime::Engine;

/// A loaded, verified build.
pub struct Loaded {
    /// The opened build output.
    pub container: Container,
    /// Each megabinary file name → its code, linked with the preview1 host.
    pub prepared: BTreeMap<String, Prepared>,
    /// What `manifest.json` looked like when this build was loaded.
    pub stamp: Option<Stamp>,
}

/// The identity of `manifest.json` (a rebuild replaces it atomically: a new inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

/// The current identity of `OUT/manifest.json` (`None`: it cannot be seen).
pub fn stamp(out: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(out.join(MANIFEST_FILE)).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    })
}

impl Loaded {
    /// Opens OUT under the pin of `trust` and loads every megabinary. Nothing of a build that
    /// fails anywhere is used.
    pub fn load(
        out: &Path,
        trust: &TrustArgs,
        engine: &Engine,
        cache: Option<&Cache>,
    ) -> Result<Loaded, Refusal> {
        let refused = |message: String| Refusal {
            exit_code: EXIT_REFUSED,
            message,
        };
        let stamp = stamp(out);
        let container = Container::open(out, trust.expect_id)?;
        let measurer = Measurer::new(cache, trust.rehash);
        let opts = LoadOptions {
            cache,
            measurer: &measurer,
            require_aot: false,
        };
        let mut prepared = BTreeMap::new();
        for name in container.manifest().megabinaries.keys() {
            let (module, _) = load_code(engine, &container, name, &opts)?;
            prepared.insert(
                name.clone(),
                Prepared::new(engine, &module).map_err(refused)?,
            );
        }
        for (name, tool) in &container.manifest().agent_tools {
            tool_path(&container, tool).ok_or_else(|| {
                refused(format!(
                    "agent tool `{name}`: no binary has {} at its path",
                    tool.digest
                ))
            })?;
        }
        Ok(Loaded {
            container,
            prepared,
            stamp,
        })
    }

    /// The container id.
    pub fn id(&self) -> &Digest {
        &self.container.manifest().container_id
    }

    /// The agent tools.
    pub fn tools(&self) -> &BTreeMap<String, AgentTool> {
        &self.container.manifest().agent_tools
    }
}

/// The in-rootfs path whose file is verified on each call of `tool`: its configured path (a
/// program or a `#!` script), or (manifests of earlier releases) the first path of a binary
/// with its digest.
pub fn tool_path(container: &Container, tool: &AgentTool) -> Option<String> {
    let m = container.manifest();
    match &tool.path {
        Some(p) => {
            let digest = m
                .binaries
                .get(p)
                .map(|b| &b.hash)
                .or_else(|| m.scripts.get(p).map(|s| &s.hash));
            (digest == Some(&tool.digest)).then(|| p.clone())
        }
        None => m
            .binaries
            .iter()
            .find(|(_, b)| b.hash == tool.digest)
            .map(|(p, _)| p.clone()),
    }
}
