//! Ahead-of-time artifacts: `container.cwasm` next to `container.wasm`, precompiled with the
//! runner's own engine configuration, recorded in the manifest with its sha256 and the engine
//! id. Deserializing native code is only safe for trusted bytes, so an artifact is loaded only
//! after its hash matched the (container_id-protected) manifest and the engine id matches.

use crate::manifest::{sha256_string, Manifest};
use crate::verify::{load_megabinary, Refusal, EXIT_REFUSED};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::{Engine, Module};

/// Artifact file name of a megabinary: `container.wasm` → `container.cwasm`.
pub fn artifact_name(megabinary: &str) -> String {
    format!(
        "{}.cwasm",
        megabinary.strip_suffix(".wasm").unwrap_or(megabinary)
    )
}

/// Feeds `Hash` data into sha256 (stable for one build of the runner on one machine).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

/// Identifies the engine artifacts are compiled for: Wasmtime's own compatibility hash (its
/// version, the configuration and the target).
pub fn engine_id(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    let d: [u8; 32] = h.0.finalize().into();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("wasmtime/{hex}")
}

/// Precompiles a megabinary for `engine`.
pub fn precompile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    engine.precompile_module(wasm)
}

/// Where the running code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// The verified AOT artifact.
    Artifact,
    /// Compiled from the verified megabinary; the reason the artifact was not used, if any.
    Compiled(Option<String>),
}

/// Loads the code of `megabinary`: its artifact when the manifest lists one, the engine id
/// matches and its hash matches; otherwise (with a reason) the compiled megabinary, unless
/// `require_aot`. An artifact whose hash does not match is tampering and always refused.
pub fn load_module(
    engine: &Engine,
    out: &Path,
    manifest: &Manifest,
    megabinary: &str,
    require_aot: bool,
) -> Result<(Module, Loaded), Refusal> {
    let name = artifact_name(megabinary);
    let listed = manifest
        .aot
        .as_ref()
        .and_then(|a| a.artifacts.get(&name).map(|h| (a, h)));
    let why_not = match listed {
        None => format!("the manifest lists no AOT artifact for {megabinary}"),
        Some((aot, _)) if aot.engine != engine_id(engine) => format!(
            "{name} was compiled for engine {}, this runner is {}",
            aot.engine,
            engine_id(engine)
        ),
        Some((_, expected)) => {
            let path = out.join(&name);
            match std::fs::read(&path) {
                Err(e) => format!("cannot read {}: {e}", path.display()),
                Ok(bytes) => {
                    let actual = sha256_string(&bytes);
                    if &actual != expected {
                        return Err(Refusal {
                            exit_code: EXIT_REFUSED,
                            message: format!(
                                "{} does not match the manifest: expected {expected}, found {actual}",
                                path.display()
                            ),
                        });
                    }
                    // SAFETY: the bytes hash to the digest recorded in the manifest, whose
                    // container_id covers the artifact digests, and the engine id matches.
                    match unsafe { Module::deserialize(engine, &bytes) } {
                        Ok(m) => return Ok((m, Loaded::Artifact)),
                        Err(e) => format!("cannot load {name}: {e}"),
                    }
                }
            }
        }
    };
    if require_aot {
        return Err(Refusal {
            exit_code: EXIT_REFUSED,
            message: format!("--require-aot: {why_not}"),
        });
    }
    let wasm = load_megabinary(out, manifest, megabinary)?;
    let module = Module::new(engine, &wasm).map_err(|e| Refusal {
        exit_code: EXIT_REFUSED,
        message: format!("cannot compile {megabinary}: {e}"),
    })?;
    let reason = manifest.aot.is_some().then_some(why_not);
    Ok((module, Loaded::Compiled(reason)))
}
