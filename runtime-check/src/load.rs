//! Loading the code of a megabinary, cheapest trusted source first:
//! 1. its AOT artifact in OUT (`container.cwasm`), when the manifest lists one for this engine:
//!    verified against the trusted manifest, then mapped (`Module::deserialize_open_file`: a
//!    run touches only the pages it uses), or deserialized from the verified in-memory copy
//!    when others could write the file;
//! 2. the compile cache: a private entry keyed by the megabinary's digest and the engine id;
//! 3. compiling the verified `container.wasm` once, and keeping the result in the cache.
//!
//! Without the `compiler` feature (the runner for scratch images) only the first source
//! exists: a build without a loadable artifact is refused ([`EXIT_NO_ARTIFACT`]).
//!
//! A precompiled artifact is native code: it is only ever deserialized from bytes verified
//! against a trusted digest (the pinned or privately owned manifest, or the private cache's
//! own record of what it wrote).

use crate::aot::artifact_name;
#[cfg(feature = "compiler")]
use crate::aot::engine_id;
use crate::cache::Cache;
use crate::measure::Measurer;
use crate::trust::{Container, FileError, VerifiedFile};
#[cfg(feature = "compiler")]
use crate::verify::refused;
use crate::verify::Refusal;
#[cfg(feature = "compiler")]
use megabin_format::Digest;
#[cfg(feature = "compiler")]
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use wasmtime::{Engine, Module};

/// Exit code of a runner without the compiler asked to run a build it has no loadable AOT
/// artifact for (the `refused` code: the build cannot be executed by this binary).
pub const EXIT_NO_ARTIFACT: i32 = crate::verify::EXIT_REFUSED;

/// Where the loaded code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// The verified AOT artifact in OUT.
    Artifact,
    /// A compile-cache entry.
    Cached(PathBuf),
    /// Compiled now; the cache entry written, if any.
    Compiled(Option<PathBuf>),
}

/// What the loader tells its caller while it works (the CLI prints these on stderr).
#[derive(Clone, Debug)]
pub enum LoadEvent {
    /// Why the AOT artifact is not used (only when the manifest lists artifacts).
    ArtifactNotUsed(String),
    /// A cache problem (the cache is then bypassed or the entry rebuilt).
    CacheProblem(String),
    /// Compilation starts: the megabinary, its size, where the result will be cached.
    Compiling {
        /// The megabinary's file name in OUT.
        megabinary: String,
        /// Its size.
        bytes: u64,
        /// The cache entry the result goes to (`None`: not cached).
        cache: Option<PathBuf>,
    },
    /// Compilation finished.
    Compiled,
}

/// How to load.
pub struct LoadOptions<'a> {
    /// The private cache (`None`: `--no-cache`, or no usable cache directory).
    pub cache: Option<&'a Cache>,
    /// Measures files (verified-once records in the cache, or full hashing).
    pub measurer: &'a Measurer<'a>,
    /// Refuse to compile: run only from a verified artifact (or a cached compilation).
    pub require_aot: bool,
}

/// The record beside a compile-cache entry: what the entry must hash to.
#[cfg(feature = "compiler")]
#[derive(Debug, Serialize, Deserialize)]
struct CacheRecord {
    /// The digest of the `.cwasm` entry.
    digest: Digest,
    /// The megabinary it was compiled from.
    megabinary: Digest,
    /// The engine it was compiled for.
    engine: String,
}

/// The cache key of a megabinary for an engine: file-name safe.
#[cfg(feature = "compiler")]
pub fn cache_key(megabinary_digest: &Digest, engine: &Engine) -> String {
    let engine = engine_id(engine);
    format!(
        "{}-{}",
        megabinary_digest.hex(),
        engine.trim_start_matches("wasmtime/")
    )
}

/// Loads the code of `megabinary` (see the module documentation).
pub fn load_module(
    engine: &Engine,
    container: &Container,
    megabinary: &str,
    opts: &LoadOptions,
    on: &mut dyn FnMut(LoadEvent),
) -> Result<(Module, Loaded), Refusal> {
    let artifact = match load_artifact(engine, container, megabinary, opts.measurer)? {
        Ok(module) => return Ok((module, Loaded::Artifact)),
        Err(why) => why,
    };
    #[cfg(feature = "compiler")]
    return compile_or_cached(engine, container, megabinary, opts, on, artifact);
    #[cfg(not(feature = "compiler"))]
    {
        let _ = (opts, on);
        Err(no_artifact(megabinary, artifact))
    }
}

/// A runner without the compiler: there is no artifact it can load, so it refuses.
#[cfg(not(feature = "compiler"))]
fn no_artifact(megabinary: &str, artifact: Option<String>) -> Refusal {
    let why = artifact.unwrap_or_else(|| "the build has no AOT artifacts".to_string());
    Refusal {
        exit_code: EXIT_NO_ARTIFACT,
        message: format!(
            "this megabin is the runner without the Cranelift compiler: it runs only a \
             build's verified AOT artifact, compiled by the same megabin version for this \
             CPU (`megabin build --aot` with the full megabin); {megabinary}: {why}"
        ),
    }
}

/// Sources 2 and 3: the compile cache, or compiling now.
#[cfg(feature = "compiler")]
fn compile_or_cached(
    engine: &Engine,
    container: &Container,
    megabinary: &str,
    opts: &LoadOptions,
    on: &mut dyn FnMut(LoadEvent),
    artifact: Option<String>,
) -> Result<(Module, Loaded), Refusal> {
    let manifest = container.manifest();
    let digest = manifest.megabinaries.get(megabinary).ok_or_else(|| {
        refused(format!(
            "megabinary {megabinary} is not listed in the manifest"
        ))
    })?;
    let key = cache_key(digest, engine);
    if let Some(cache) = opts.cache {
        match load_cached(engine, cache, &key, opts.measurer) {
            Ok(Some((module, path))) => return Ok((module, Loaded::Cached(path))),
            Ok(None) => {}
            Err(problem) => on(LoadEvent::CacheProblem(problem)),
        }
    }
    if let Some(why) = &artifact {
        if opts.require_aot {
            return Err(refused(format!("--require-aot: {why}")));
        }
        on(LoadEvent::ArtifactNotUsed(why.clone()));
    } else if opts.require_aot {
        return Err(refused(format!(
            "--require-aot: the manifest lists no AOT artifact for {megabinary} and no compiled \
             copy is cached"
        )));
    }
    let wasm = container.megabinary_bytes(megabinary, opts.measurer)?;
    on(LoadEvent::Compiling {
        megabinary: megabinary.to_string(),
        bytes: wasm.len() as u64,
        cache: opts.cache.map(|c| c.root().to_path_buf()),
    });
    let native = engine
        .precompile_module(&wasm)
        .map_err(|e| refused(format!("cannot compile {megabinary}: {e}")))?;
    drop(wasm);
    on(LoadEvent::Compiled);
    let written = opts.cache.and_then(|cache| {
        let native_digest = Digest::of(&native);
        let path = store_cached(cache, &key, digest, engine, &native_digest, &native)
            .map_err(|e| on(LoadEvent::CacheProblem(e)))
            .ok()?;
        // The next run finds the entry measured and maps it without hashing it.
        opts.measurer.record_written(&path, &native_digest);
        Some(path)
    });
    // SAFETY: these bytes were just produced by this engine from the verified megabinary.
    let module = unsafe { Module::deserialize(engine, &native) }
        .map_err(|e| refused(format!("cannot load the compiled {megabinary}: {e}")))?;
    Ok((module, Loaded::Compiled(written)))
}

/// The verified artifact of `megabinary`: `Ok(Ok(module))`, `Ok(Err(why not))` when there is
/// none for this engine, `Err` when it is there but does not match (tampering).
fn load_artifact(
    engine: &Engine,
    container: &Container,
    megabinary: &str,
    measurer: &Measurer,
) -> Result<Result<Module, Option<String>>, Refusal> {
    let name = artifact_name(megabinary);
    let Some(aot) = &container.manifest().aot else {
        return Ok(Err(None));
    };
    let Some(expected) = aot.artifacts.get(&name) else {
        return Ok(Err(Some(format!(
            "the manifest lists no AOT artifact for {megabinary}"
        ))));
    };
    // A runner without the compiler cannot name its engine (see `aot::engine_id`):
    // Wasmtime's own compatibility check when deserializing decides.
    #[cfg(feature = "compiler")]
    {
        let ours = engine_id(engine);
        if aot.engine != ours {
            return Ok(Err(Some(format!(
                "{name} was compiled for engine {}, this runner is {ours}",
                aot.engine
            ))));
        }
    }
    let verified = match container.verified_file(&name, expected, measurer) {
        Ok(v) => v,
        Err(tampered @ FileError::Mismatch(_)) => return Err(tampered.into()),
        Err(other) => return Ok(Err(Some(other.to_string()))),
    };
    // SAFETY: the artifact's content hashes to the digest in the trusted manifest (pinned or
    // privately owned; `container_id` covers artifact digests), and it was compiled for this
    // engine. A mapped file is private: nobody but its owner or root can change it.
    let module = unsafe {
        match verified {
            VerifiedFile::Mapped(file) => Module::deserialize_open_file(engine, file),
            VerifiedFile::Bytes(bytes) => Module::deserialize(engine, &bytes),
        }
    };
    match module {
        Ok(m) => Ok(Ok(m)),
        Err(e) => Ok(Err(Some(format!("cannot load {name}: {e}")))),
    }
}

#[cfg(feature = "compiler")]
fn record_name(key: &str) -> String {
    format!("{key}.json")
}

#[cfg(feature = "compiler")]
fn entry_name(key: &str) -> String {
    format!("{key}.cwasm")
}

/// A valid cache entry, `Ok(None)` when there is none; `Err` (and the entry removed) when it is
/// truncated, modified or unreadable.
#[cfg(feature = "compiler")]
fn load_cached(
    engine: &Engine,
    cache: &Cache,
    key: &str,
    measurer: &Measurer,
) -> Result<Option<(Module, PathBuf)>, String> {
    let path = cache.root().join("modules").join(entry_name(key));
    let Some(opened) = cache.open_entry("modules", &entry_name(key))? else {
        return Ok(None);
    };
    let corrupt = |why: String| {
        cache.remove_entry("modules", &entry_name(key));
        cache.remove_entry("modules", &record_name(key));
        format!(
            "cache entry {} {why}; removed, compiling again",
            path.display()
        )
    };
    let record: CacheRecord = cache
        .read_entry("modules", &record_name(key), 4096)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| corrupt("has no valid record".into()))?;
    let actual = measurer
        .digest(&opened)
        .map_err(|e| corrupt(format!("cannot be read: {e}")))?;
    if actual != record.digest {
        return Err(corrupt(format!(
            "was modified or truncated: it hashes to {actual}, its record says {}",
            record.digest
        )));
    }
    // SAFETY: the entry is a private file that hashes to the digest recorded when this runner
    // wrote it, compiled by this engine (the key holds the engine id).
    match unsafe { Module::deserialize_open_file(engine, opened.file) } {
        Ok(m) => Ok(Some((m, path))),
        Err(e) => Err(corrupt(format!("cannot be loaded: {e}"))),
    }
}

#[cfg(feature = "compiler")]
fn store_cached(
    cache: &Cache,
    key: &str,
    megabinary_digest: &Digest,
    engine: &Engine,
    native_digest: &Digest,
    native: &[u8],
) -> Result<PathBuf, String> {
    let record = CacheRecord {
        digest: *native_digest,
        megabinary: *megabinary_digest,
        engine: engine_id(engine),
    };
    let err =
        |e: std::io::Error| format!("cannot write to the cache {}: {e}", cache.root().display());
    // The record first: an entry without a record is treated as corrupt, never trusted.
    cache
        .write_entry(
            "modules",
            &record_name(key),
            &serde_json::to_vec(&record).expect("record serializes"),
        )
        .map_err(err)?;
    cache
        .write_entry("modules", &entry_name(key), native)
        .map_err(err)
}
