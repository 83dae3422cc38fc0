//! Ahead-of-time artifacts: `container.cwasm` next to `container.wasm`, precompiled with the
//! runner's own engine configuration, recorded in the manifest with its sha256 and the engine
//! id. Loading them is [`crate::load`]'s job.

#[cfg(feature = "compiler")]
use sha2::{Digest, Sha256};
#[cfg(feature = "compiler")]
use std::hash::{Hash, Hasher};
#[cfg(feature = "compiler")]
use wasmtime::Engine;

/// Artifact file name of a megabinary: `container.wasm` → `container.cwasm`.
pub fn artifact_name(megabinary: &str) -> String {
    format!(
        "{}.cwasm",
        megabinary.strip_suffix(".wasm").unwrap_or(megabinary)
    )
}

/// Feeds `Hash` data into sha256 (stable for one build of the runner on one machine).
#[cfg(feature = "compiler")]
struct ShaHasher(Sha256);

#[cfg(feature = "compiler")]
impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

/// Identifies the engine artifacts are compiled for: Wasmtime's own compatibility hash (its
/// version, the configuration and the target). Only with the `compiler` feature: Wasmtime
/// computes that hash only with a compiler; a runner without one relies on Wasmtime's own
/// compatibility check when it deserializes an artifact (version, target and CPU features,
/// configuration, wasm features).
#[cfg(feature = "compiler")]
pub fn engine_id(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    let d: [u8; 32] = h.0.finalize().into();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("wasmtime/{hex}")
}

/// Precompiles a megabinary for `engine`.
#[cfg(feature = "compiler")]
pub fn precompile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    engine.precompile_module(wasm)
}
