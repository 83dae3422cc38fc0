//! `manifest.json`: what the build produced and what the runner trusts.
//!
//! Schema: `docs/manifest.md` and `docs/manifest.schema.json`.

use megabin_format::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifest format tag.
pub use megabin_format::FORMAT;

/// The manifest of one build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// sha256 over the megabinaries' digests, the binaries map, the agent tools and the AOT
    /// artifacts (see [`container_id`]).
    pub container_id: Digest,
    /// The first megabinary's file name.
    pub megabinary: String,
    /// Every megabinary file name → its `sha256:` digest.
    pub megabinaries: BTreeMap<String, Digest>,
    /// Absolute rootfs path → program.
    pub binaries: BTreeMap<String, Binary>,
    /// Agent tool name → the program it names, with what `serve` tells agents about it.
    pub agent_tools: BTreeMap<String, AgentTool>,
    /// Absolute rootfs path → a `#!` script a merged program interprets. Absent when there is
    /// none (and then not part of the container id, so builds without scripts keep theirs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripts: BTreeMap<String, Script>,
    /// Absolute rootfs path → why it is not in the megabinary.
    pub skipped: BTreeMap<String, String>,
    /// Ahead-of-time compiled artifacts, when built with `--aot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aot: Option<Aot>,
    /// The build options that shape the output, so `megabin verify --rootfs` can rebuild the
    /// megabinaries from the rootfs and compare. Absent in manifests of older builds. Not
    /// covered by `container_id`: altering it can only make that rebuild differ, never make
    /// code that is not from the rootfs match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildInfo>,
}

/// The options a build was made with (see [`Manifest::build`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BuildInfo {
    /// Cap on a megabinary's estimated size in bytes (`--max-shard-size`).
    pub max_shard_bytes: u64,
    /// The configuration's agent tools (from `megabin.toml` or `--config`): name → the entry
    /// as configured, an absolute rootfs path or the table form (`path`, `description`,
    /// `timeout`, `max_memory`, `input_schema`).
    pub agent_tools: BTreeMap<String, serde_json::Value>,
    /// Whether foreign imports were stubbed (`--stub-foreign-imports` or the configuration).
    #[serde(default)]
    pub stub_foreign_imports: bool,
}

/// Precompiled (native) artifacts of the megabinaries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Aot {
    /// The engine the artifacts were compiled for (Wasmtime version and configuration); a
    /// runner with another engine id must not load them.
    pub engine: String,
    /// Artifact file name (`container.cwasm`) → its `sha256:` digest.
    pub artifacts: BTreeMap<String, Digest>,
}

/// An agent tool: a program of the build offered to agents (by `megabin serve`).
///
/// Written as an object; a manifest of an earlier release, whose tools were plain digest
/// strings, is read as well (such a tool has no path: see [`AgentTool::path`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "AgentToolForm", into = "AgentToolForm")]
pub struct AgentTool {
    /// The program's digest.
    pub digest: Digest,
    /// The absolute in-rootfs path the tool was configured with (`None` only in manifests
    /// of earlier releases).
    pub path: Option<String>,
    /// What the tool does, shown to agents.
    pub description: Option<String>,
    /// Per-call wall-clock limit, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Per-call cap on all memories together, in bytes.
    pub max_memory: Option<u64>,
    /// The JSON Schema of the tool's arguments, when it narrows the default one.
    pub input_schema: Option<serde_json::Value>,
}

impl AgentTool {
    /// A tool with only a digest and a path.
    pub fn new(digest: Digest, path: String) -> Self {
        AgentTool {
            digest,
            path: Some(path),
            description: None,
            timeout_ms: None,
            max_memory: None,
            input_schema: None,
        }
    }
}

/// The on-disk forms of an [`AgentTool`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum AgentToolForm {
    /// Earlier releases: the digest only.
    Bare(Digest),
    /// The object form.
    Object(AgentToolObject),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentToolObject {
    digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_schema: Option<serde_json::Value>,
}

impl From<AgentToolForm> for AgentTool {
    fn from(f: AgentToolForm) -> Self {
        match f {
            AgentToolForm::Bare(digest) => AgentTool {
                digest,
                path: None,
                description: None,
                timeout_ms: None,
                max_memory: None,
                input_schema: None,
            },
            AgentToolForm::Object(o) => AgentTool {
                digest: o.digest,
                path: o.path,
                description: o.description,
                timeout_ms: o.timeout_ms,
                max_memory: o.max_memory,
                input_schema: o.input_schema,
            },
        }
    }
}

impl From<AgentTool> for AgentToolForm {
    fn from(t: AgentTool) -> Self {
        AgentToolForm::Object(AgentToolObject {
            digest: t.digest,
            path: t.path,
            description: t.description,
            timeout_ms: t.timeout_ms,
            max_memory: t.max_memory,
            input_schema: t.input_schema,
        })
    }
}

/// One path that maps to a program.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// The digest of the file content.
    pub hash: Digest,
    /// Export that starts it, `<name>_start`.
    pub entry_point: String,
    /// File name of the megabinary that holds it.
    pub megabinary: String,
    /// File size in bytes.
    pub size: u64,
    /// Foreign function imports (`module::name`) that were replaced by stubs trapping when
    /// called (`megabin build --stub-foreign-imports`); absent when there are none. Part of the
    /// container id like every other field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stubbed_imports: Vec<String>,
}

/// A `#!` script that a merged program interprets: run as the interpreter's entry with argv
/// `[argv..., <script path>, args...]`, the script's file (and nothing else of the rootfs)
/// readable at its path.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The digest of the script file.
    pub hash: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The rootfs path of the interpreter: a key of [`Manifest::binaries`], whose file is
    /// verified as well.
    pub interpreter: String,
    /// argv before the script's path: the interpreter as the `#!` line names it and its
    /// optional argument (`["/usr/bin/python3", "-u"]`), or NAME for `#!/usr/bin/env NAME`.
    pub argv: Vec<String>,
}

/// The container id: sha256 of the compact JSON array
/// `[format, megabinaries, binaries, agent_tools, aot]`, with `scripts` appended when there
/// are any (maps with sorted keys, struct fields in declaration order, `aot` null when absent),
/// so a change to any megabinary, artifact, path, hash, entry point, agent tool or script
/// changes it.
pub fn container_id(
    megabinaries: &BTreeMap<String, Digest>,
    binaries: &BTreeMap<String, Binary>,
    agent_tools: &BTreeMap<String, AgentTool>,
    aot: Option<&Aot>,
    scripts: &BTreeMap<String, Script>,
) -> Digest {
    let base = (FORMAT, megabinaries, binaries, agent_tools, aot);
    let canonical = if scripts.is_empty() {
        serde_json::to_vec(&base)
    } else {
        serde_json::to_vec(&(base.0, base.1, base.2, base.3, base.4, scripts))
    };
    Digest::of(&canonical.expect("maps serialize"))
}

impl Manifest {
    /// The container id its contents give ([`container_id`]).
    pub fn computed_id(&self) -> Digest {
        container_id(
            &self.megabinaries,
            &self.binaries,
            &self.agent_tools,
            self.aot.as_ref(),
            &self.scripts,
        )
    }

    /// Whether `container_id` matches the contents.
    pub fn id_is_consistent(&self) -> bool {
        self.container_id == self.computed_id()
    }

    /// Pretty JSON with a trailing newline (the on-disk form).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_covers_every_trusted_field() {
        let mut m = BTreeMap::new();
        m.insert("container.wasm".to_string(), Digest::of(b"a"));
        let mut b = BTreeMap::new();
        b.insert(
            "/bin/x".to_string(),
            Binary {
                hash: Digest::of(b"x"),
                entry_point: "x_start".into(),
                megabinary: "container.wasm".into(),
                size: 1,
                stubbed_imports: Vec::new(),
            },
        );
        let tools = BTreeMap::new();
        let none = BTreeMap::new();
        let id = container_id(&m, &b, &tools, None, &none);
        let mut m2 = m.clone();
        m2.insert("container.wasm".into(), Digest::of(b"b"));
        assert_ne!(id, container_id(&m2, &b, &tools, None, &none));
        let mut b2 = b.clone();
        b2.get_mut("/bin/x").unwrap().entry_point = "y_start".into();
        assert_ne!(id, container_id(&m, &b2, &tools, None, &none));
        let mut b3 = b.clone();
        b3.get_mut("/bin/x").unwrap().stubbed_imports = vec!["env::host_call".into()];
        assert_ne!(id, container_id(&m, &b3, &tools, None, &none));
        let mut t2 = tools.clone();
        let tool = AgentTool::new(Digest::of(b"x"), "/bin/x".into());
        t2.insert("tool".into(), tool.clone());
        assert_ne!(id, container_id(&m, &b, &t2, None, &none));
        // Every field of a tool is covered: a description or limit agents see, too.
        let mut t3 = t2.clone();
        t3.get_mut("tool").unwrap().description = Some("d".into());
        assert_ne!(
            container_id(&m, &b, &t2, None, &none),
            container_id(&m, &b, &t3, None, &none)
        );
        let mut t4 = t2.clone();
        t4.get_mut("tool").unwrap().timeout_ms = Some(1);
        assert_ne!(
            container_id(&m, &b, &t2, None, &none),
            container_id(&m, &b, &t4, None, &none)
        );
        let aot = Aot {
            engine: "e".into(),
            artifacts: [("container.cwasm".to_string(), Digest::of(b"n"))].into(),
        };
        assert_ne!(id, container_id(&m, &b, &tools, Some(&aot), &none));
        // A script and each of its fields.
        let script = Script {
            hash: Digest::of(b"s"),
            size: 1,
            interpreter: "/bin/x".into(),
            argv: vec!["/bin/x".into()],
        };
        let scripts: BTreeMap<String, Script> = [("/bin/s".to_string(), script)].into();
        let with = container_id(&m, &b, &tools, None, &scripts);
        assert_ne!(id, with);
        let mut s2 = scripts.clone();
        s2.get_mut("/bin/s").unwrap().argv.push("-u".into());
        assert_ne!(with, container_id(&m, &b, &tools, None, &s2));
    }

    #[test]
    fn agent_tools_read_both_forms_and_write_objects() {
        let old: AgentTool = serde_json::from_str(&format!("\"{}\"", Digest::of(b"x"))).unwrap();
        assert_eq!(old.digest, Digest::of(b"x"));
        assert_eq!(old.path, None);
        let mut t = AgentTool::new(Digest::of(b"x"), "/bin/x".into());
        t.max_memory = Some(1 << 20);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["path"], "/bin/x");
        assert_eq!(json["max_memory"], 1 << 20);
        assert!(json.get("description").is_none());
        assert_eq!(serde_json::from_value::<AgentTool>(json).unwrap(), t);
        assert!(serde_json::from_str::<AgentTool>(&format!(
            r#"{{"digest":"{}","bogus":1}}"#,
            Digest::of(b"x")
        ))
        .is_err());
    }
}
