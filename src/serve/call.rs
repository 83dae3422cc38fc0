//! One tool call: its arguments (`args`, `stdin`, `files`), the fresh per-call working
//! directory preopened as `/work`, the files the program left there, and the result an agent
//! sees (`structuredContent` plus a plain-text rendering).

use base64::Engine as _;
use runtime_check::open_regular;
use runtime_check::{Ending, Outcome, Output};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Guest path of the per-call directory.
pub const WORK_DIR: &str = "/work";
/// Bytes of stdout and of stderr kept per call.
pub const OUTPUT_LIMIT: usize = 1 << 20;
/// Bytes of one returned file kept.
pub const FILE_LIMIT: usize = 1 << 20;
/// Bytes of all returned files together.
pub const FILES_LIMIT: usize = 8 << 20;
/// Largest input (stdin and files together) accepted.
pub const INPUT_LIMIT: usize = 64 << 20;
/// Most files returned.
const MAX_FILES: usize = 1000;

/// The parsed arguments of a call.
#[derive(Debug, Default)]
pub struct Arguments {
    /// argv after argv[0].
    pub args: Vec<String>,
    /// Bytes on stdin.
    pub stdin: Vec<u8>,
    /// Relative path → content, written into the work directory first.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The default input schema of a tool.
pub fn default_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "args": {"type": "array", "items": {"type": "string"},
                     "description": "Command-line arguments (after the program name)"},
            "stdin": {"type": "string", "description": "Text on standard input"},
            "files": {
                "type": "object",
                "description": "Files written into the working directory /work first: relative path -> text content (or {\"base64\": ...})",
                "additionalProperties": {"oneOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {"base64": {"type": "string"}},
                     "required": ["base64"], "additionalProperties": false}
                ]}
            }
        },
        "additionalProperties": false
    })
}

/// The output schema every tool shares.
pub fn output_schema() -> Value {
    let file = json!({
        "type": "object",
        "properties": {
            "encoding": {"enum": ["utf-8", "base64"]},
            "content": {"type": "string"},
            "size": {"type": "integer"},
            "truncated": {"type": "boolean"}
        },
        "required": ["encoding", "content", "size", "truncated"]
    });
    json!({
        "type": "object",
        "properties": {
            "exit_code": {"type": "integer"},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "files": {"type": "object", "additionalProperties": file},
            "error": {"type": "string"}
        },
        "required": ["exit_code", "stdout", "stderr", "files"]
    })
}

/// Parses call arguments (`None`: no arguments).
pub fn parse_arguments(v: Option<&Map<String, Value>>) -> Result<Arguments, String> {
    let mut a = Arguments::default();
    let Some(map) = v else { return Ok(a) };
    let mut size = 0usize;
    for (k, v) in map {
        match k.as_str() {
            "args" => {
                let list = v.as_array().ok_or("`args` must be an array of strings")?;
                for item in list {
                    let s = item.as_str().ok_or("`args` must be an array of strings")?;
                    if s.contains('\0') {
                        return Err("an argument contains a NUL byte".into());
                    }
                    a.args.push(s.to_string());
                }
            }
            "stdin" => {
                let s = v.as_str().ok_or("`stdin` must be a string")?;
                size += s.len();
                a.stdin = s.as_bytes().to_vec();
            }
            "files" => {
                let files = v
                    .as_object()
                    .ok_or("`files` must be an object: relative path -> content")?;
                for (path, content) in files {
                    check_relative(path)?;
                    let bytes = match content {
                        Value::String(s) => s.as_bytes().to_vec(),
                        Value::Object(o) if o.len() == 1 && o.contains_key("base64") => {
                            let b = o["base64"].as_str().ok_or("`base64` must be a string")?;
                            base64::engine::general_purpose::STANDARD
                                .decode(b)
                                .map_err(|e| format!("file `{path}`: invalid base64: {e}"))?
                        }
                        _ => {
                            return Err(format!(
                                "file `{path}`: content must be a string or {{\"base64\": string}}"
                            ))
                        }
                    };
                    size += bytes.len();
                    a.files.insert(path.clone(), bytes);
                }
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (expected args, stdin, files)"
                ))
            }
        }
    }
    if size > INPUT_LIMIT {
        return Err(format!(
            "the input is {size} bytes, more than the limit of {INPUT_LIMIT}"
        ));
    }
    Ok(a)
}

/// A file path must be relative, with no `..`, `.` or empty components.
fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.contains('\0')
        && !path.ends_with('/')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.split('/').any(|c| c.is_empty() || c == ".");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file path `{path}` must be relative inside the working directory (no `..`, `.`, empty or absolute components)"
        ))
    }
}

/// Writes the input files into `dir`.
pub fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create the directory of `{rel}`: {e}"))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write `{rel}`: {e}"))?;
    }
    Ok(())
}

/// Regular files under `dir` that are new or differ from `inputs`, read without following
/// symlinks; each capped at [`FILE_LIMIT`], all at [`FILES_LIMIT`].
pub fn changed_files(dir: &Path, inputs: &BTreeMap<String, Vec<u8>>) -> Map<String, Value> {
    let mut found = Vec::new();
    walk(dir, "", &mut found, 0);
    found.sort();
    let mut out = Map::new();
    let mut budget = FILES_LIMIT;
    for rel in found.into_iter().take(MAX_FILES) {
        let Ok(opened) = open_regular(&dir.join(&rel)) else {
            continue;
        };
        let size = opened.meta.len();
        let keep = (FILE_LIMIT.min(budget) as u64).min(size) as usize;
        let mut bytes = vec![0u8; keep];
        let n = read_prefix(&opened.file, &mut bytes);
        bytes.truncate(n);
        let full = n as u64 == size;
        if full && inputs.get(&rel) == Some(&bytes) {
            continue;
        }
        budget -= bytes.len();
        out.insert(rel, encode_file(&bytes, size));
    }
    out
}

fn read_prefix(f: &std::fs::File, buf: &mut [u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<String>, depth: usize) {
    if depth > 32 || found.len() > MAX_FILES {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), &rel, found, depth + 1),
            Ok(t) if t.is_file() => found.push(rel),
            _ => {}
        }
    }
}

fn encode_file(bytes: &[u8], size: u64) -> Value {
    let truncated = (bytes.len() as u64) < size;
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            json!({"encoding": "utf-8", "content": text, "size": size, "truncated": truncated})
        }
        // A text file cut inside a character is still text.
        Err(e) if truncated && e.error_len().is_none() => {
            let text = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            json!({"encoding": "utf-8", "content": text, "size": size, "truncated": true})
        }
        Err(_) => json!({
            "encoding": "base64",
            "content": base64::engine::general_purpose::STANDARD.encode(bytes),
            "size": size,
            "truncated": truncated
        }),
    }
}

/// A captured stream as text, with a visible marker when it was truncated.
pub fn stream_text(o: &Output) -> String {
    let mut s = String::from_utf8_lossy(&o.bytes).into_owned();
    if o.truncated() {
        s.push_str(&format!(
            "\n[megabin: output truncated: {} of {} bytes shown]",
            o.bytes.len(),
            o.total
        ));
    }
    s
}

/// The message of an ending that is not a plain exit.
pub fn ending_message(tool: &str, e: &Ending) -> Option<String> {
    match e {
        Ending::Exit(_) => None,
        Ending::Trap(m) => Some(format!("`{tool}` trapped: {m}")),
        Ending::Timeout(d) => Some(format!("`{tool}` stopped: time limit of {d:?} exceeded")),
        Ending::Cancelled => Some(format!("`{tool}` stopped: the call was cancelled")),
        Ending::Memory { limit, message } => Some(format!(
            "`{tool}` stopped: memory limit of {limit} bytes exceeded ({message})"
        )),
        Ending::Failed(m) => Some(format!("`{tool}` could not start: {m}")),
    }
}

/// The structured result and its text rendering.
pub fn result_value(
    tool: &str,
    outcome: &Outcome,
    files: Map<String, Value>,
) -> (Value, String, bool) {
    let code = outcome.ending.exit_code();
    let stdout = stream_text(&outcome.stdout);
    let stderr = stream_text(&outcome.stderr);
    let error = ending_message(tool, &outcome.ending);
    let mut text = format!("exit code {code}\n");
    if let Some(e) = &error {
        text.push_str(&format!("error: {e}\n"));
    }
    text.push_str(&format!(
        "--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n"
    ));
    if !files.is_empty() {
        let names: Vec<&str> = files.keys().map(|k| k.as_str()).collect();
        text.push_str(&format!("--- files ---\n{}\n", names.join("\n")));
    }
    let mut v = json!({
        "exit_code": code,
        "stdout": stdout,
        "stderr": stderr,
        "files": files,
    });
    if let Some(e) = error {
        v["error"] = Value::String(e);
    }
    (v, text, code != 0)
}

/// The result of a call refused before anything ran.
pub fn refusal_value(exit_code: i32, message: &str) -> (Value, String) {
    (
        json!({
            "exit_code": exit_code,
            "stdout": "",
            "stderr": "",
            "files": {},
            "error": message,
        }),
        format!("refused (exit code {exit_code}): {message}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        let a = parse_arguments(Some(&m(json!({
            "args": ["-l"], "stdin": "x", "files": {"a/b.txt": "t", "c.bin": {"base64": "AAE="}}
        }))))
        .unwrap();
        assert_eq!(a.args, ["-l"]);
        assert_eq!(a.files["c.bin"], [0, 1]);
        for bad in [
            json!({"args": "x"}),
            json!({"env": {}}),
            json!({"files": {"../x": "t"}}),
            json!({"files": {"/etc/x": "t"}}),
            json!({"files": {"a/./b": "t"}}),
            json!({"files": {"a//b": "t"}}),
            json!({"files": {"x": 1}}),
        ] {
            assert!(parse_arguments(Some(&m(bad.clone()))).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_come_back_encoded_and_capped() {
        let d = tempfile::tempdir().unwrap();
        let inputs: BTreeMap<String, Vec<u8>> = [("same.txt".to_string(), b"s".to_vec())].into();
        write_files(d.path(), &inputs).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/new.txt"), "héllo").unwrap();
        std::fs::write(d.path().join("bin"), [0xff, 0x00]).unwrap();
        std::fs::write(d.path().join("big"), vec![b'a'; FILE_LIMIT + 5]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let f = changed_files(d.path(), &inputs);
        let keys: Vec<&String> = f.keys().collect();
        assert_eq!(keys, ["big", "bin", "sub/new.txt"]);
        assert_eq!(f["sub/new.txt"]["content"], "héllo");
        assert_eq!(f["bin"]["encoding"], "base64");
        assert_eq!(f["bin"]["content"], "/wA=");
        assert_eq!(f["big"]["truncated"], true);
        assert_eq!(f["big"]["size"], FILE_LIMIT + 5);
    }
}
