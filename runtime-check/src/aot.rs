//! Ahead-of-time artifacts: `container.cwasm` next to `container.wasm`, precompiled with the
//! runner's own engine configuration, recorded in the manifest with its sha256 and the engine
//! id. Loading them is [`crate::load`]'s job.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use wasmtime::Engine;

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
