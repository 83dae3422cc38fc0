//! Stage 2b, scripts: which `#!` scripts of the rootfs a merged program can interpret.
//!
//! A script runs when its interpreter (the `#!` path, or for `#!/usr/bin/env NAME` the first
//! executable NAME in the rootfs `PATH`, as `env` finds it) is a merged program: the manifest
//! then lists the script with its own digest, the interpreter's path and the argv before the
//! script's path. Every other script is skipped with the reason. Nothing is read from the
//! rootfs but symlinks, to find an interpreter reached through a symlinked directory.

use super::check::Ready;
use crate::manifest::Script;
use crate::rootfs::{self, ScriptFile, SkipReason, DEFAULT_PATH};
use std::collections::BTreeMap;
use std::path::Path;

/// Sorts the scan's scripts into runnable ones (path → manifest entry) and skipped ones (added
/// to `skipped`).
pub(super) fn check_scripts(
    root: &Path,
    scripts: BTreeMap<String, ScriptFile>,
    ready: &[Ready],
    skipped: &mut BTreeMap<String, SkipReason>,
) -> BTreeMap<String, Script> {
    let programs: BTreeMap<&str, ()> = ready
        .iter()
        .flat_map(|r| r.paths.iter().map(|p| (p.as_str(), ())))
        .collect();
    let known = Known {
        root,
        programs: &programs,
        scripts: &scripts,
        skipped,
    };
    let mut runnable = BTreeMap::new();
    let mut refused = Vec::new();
    for (path, file) in &scripts {
        match known.interpreter(file) {
            Ok((interpreter, argv)) => {
                runnable.insert(
                    path.clone(),
                    Script {
                        hash: file.digest,
                        size: file.size,
                        interpreter,
                        argv,
                    },
                );
            }
            Err(why) => refused.push((path.clone(), SkipReason::Script(why))),
        }
    }
    skipped.extend(refused);
    runnable
}

/// What the scan and the check know about the rootfs's executables.
struct Known<'a> {
    root: &'a Path,
    programs: &'a BTreeMap<&'a str, ()>,
    scripts: &'a BTreeMap<String, ScriptFile>,
    skipped: &'a BTreeMap<String, SkipReason>,
}

impl Known<'_> {
    /// The merged program interpreting `file` (its rootfs path) and the argv before the
    /// script's path, or why there is none.
    fn interpreter(&self, file: &ScriptFile) -> Result<(String, Vec<String>), String> {
        let shebang = &file.shebang;
        let (path, argv) = match shebang.env_name()? {
            Some(name) => {
                let found = DEFAULT_PATH
                    .iter()
                    .map(|dir| format!("{dir}/{name}"))
                    .find(|p| self.executable(p).is_some());
                let Some(path) = found else {
                    return Err(format!(
                        "interpreter `{name}` ({}) is not in the rootfs PATH {}",
                        shebang.interpreter,
                        DEFAULT_PATH.join(":")
                    ));
                };
                (path, vec![name.to_string()])
            }
            None => {
                let argv = std::iter::once(shebang.interpreter.clone())
                    .chain(shebang.arg.clone())
                    .collect();
                (shebang.interpreter.clone(), argv)
            }
        };
        match self.executable(&path) {
            Some(Executable::Program(listed)) => Ok((listed, argv)),
            Some(Executable::Script) => Err(format!("interpreter {path} is itself a script")),
            Some(Executable::Skipped(why)) => {
                Err(format!("interpreter {path} is not merged ({why})"))
            }
            None => Err(format!("interpreter {path} is not in the rootfs")),
        }
    }

    /// What `path` is: looked up as listed, else after resolving its symlinks (a directory
    /// symlink such as `/bin -> usr/bin`) inside the rootfs.
    fn executable(&self, path: &str) -> Option<Executable> {
        self.listed(path).or_else(|| {
            let target = rootfs::resolve(self.root, path).ok()?;
            let rel = target.host.strip_prefix(self.root).ok()?.to_str()?;
            self.listed(&format!("/{rel}"))
        })
    }

    fn listed(&self, path: &str) -> Option<Executable> {
        if self.programs.contains_key(path) {
            Some(Executable::Program(path.to_string()))
        } else if self.scripts.contains_key(path) {
            Some(Executable::Script)
        } else {
            self.skipped
                .get(path)
                .map(|why| Executable::Skipped(why.to_string()))
        }
    }
}

/// An executable path of the rootfs, as far as the build knows it.
enum Executable {
    /// A merged program (at this listed path).
    Program(String),
    /// A script.
    Script,
    /// Skipped, for this reason.
    Skipped(String),
}
