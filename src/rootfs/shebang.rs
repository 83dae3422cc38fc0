//! The `#!` line of a script, read the way Linux's `binfmt_script` reads it.
//!
//! The kernel looks at the first [`LINE_MAX`] bytes: after `#!` and any blanks (space, tab)
//! comes the interpreter path, up to the next blank; after more blanks, everything to the end
//! of the line (trailing blanks removed) is **one** optional argument, spaces included. An
//! interpreter named `env` (`#!/usr/bin/env qjs`) is not run itself: like `env` it looks the
//! name up in the rootfs `PATH` ([`crate::rootfs::DEFAULT_PATH`]) and runs it with
//! `argv[0] = NAME`.

/// How many bytes of a script the kernel reads to find its `#!` line (`BINPRM_BUF_SIZE`).
pub const LINE_MAX: usize = 256;

/// A parsed `#!` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter as written (`/usr/bin/python3`, `/usr/bin/env`).
    pub interpreter: String,
    /// The one optional argument (`-u`, or the program name after `env`).
    pub arg: Option<String>,
}

impl Shebang {
    /// For `#!/…/env NAME`: NAME, the program `env` would look up in `PATH`. `None` for any
    /// other interpreter. `env` with options or assignments (`-S`, `K=V`) is an error.
    pub fn env_name(&self) -> Result<Option<&str>, String> {
        if self.interpreter.rsplit('/').next() != Some("env") {
            return Ok(None);
        }
        match self.arg.as_deref() {
            None => Err(format!("{} without a program name", self.interpreter)),
            Some(a) if a.starts_with('-') || a.contains('=') || a.contains([' ', '\t']) => {
                Err(format!(
                    "{} with options or assignments (`{a}`) is not supported",
                    self.interpreter
                ))
            }
            Some(name) if name.contains('/') => Err(format!(
                "{} {name}: a path is not looked up in PATH; name the interpreter directly",
                self.interpreter
            )),
            Some(name) => Ok(Some(name)),
        }
    }
}

/// Parses the `#!` line at the start of `head` (the first [`LINE_MAX`] bytes of the file, or
/// the whole file if shorter; `whole` says which). The reason on error is one line.
pub fn parse(head: &[u8], whole: bool) -> Result<Shebang, String> {
    let rest = head
        .strip_prefix(b"#!")
        .ok_or_else(|| "does not start with #!".to_string())?;
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..end],
        None if whole => rest,
        None => return Err(format!("the #! line is longer than {} bytes", LINE_MAX - 1)),
    };
    let line = std::str::from_utf8(line).map_err(|_| "the #! line is not UTF-8".to_string())?;
    if line.contains('\0') {
        return Err("the #! line holds a NUL byte".into());
    }
    let blank = |c: char| c == ' ' || c == '\t';
    let line = line.trim_matches(blank);
    let (interpreter, arg) = match line.find(blank) {
        Some(i) => (&line[..i], Some(line[i..].trim_start_matches(blank))),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Err("the #! line names no interpreter".into());
    }
    if !interpreter.starts_with('/') {
        return Err(format!(
            "interpreter `{interpreter}` is not an absolute path"
        ));
    }
    Ok(Shebang {
        interpreter: interpreter.to_string(),
        arg: arg.filter(|a| !a.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> (String, Option<String>) {
        let s = parse(line.as_bytes(), true).unwrap();
        (s.interpreter, s.arg)
    }

    #[test]
    fn as_the_kernel_splits_it() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("#!/usr/bin/python3\nprint(1)\n", "/usr/bin/python3", None),
            ("#! /usr/bin/python3 -u\n", "/usr/bin/python3", Some("-u")),
            ("#!/bin/sh -e -x \t\n", "/bin/sh", Some("-e -x")),
            ("#!\t/usr/bin/env qjs\n", "/usr/bin/env", Some("qjs")),
            ("#!/bin/cat", "/bin/cat", None),
            ("#!/bin/cat   \n", "/bin/cat", None),
        ];
        for (line, interp, arg) in cases {
            assert_eq!(
                ok(line),
                (interp.to_string(), arg.map(str::to_string)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn bad_lines_say_why() {
        let cases: &[(&[u8], bool, &str)] = &[
            (b"#!\n", true, "names no interpreter"),
            (b"#!python3\n", true, "not an absolute path"),
            (b"#!/bin/\xff\n", true, "not UTF-8"),
            (b"#!/bin/a\0b\n", true, "NUL"),
            (b"#!/aaa", false, "longer than 255"),
        ];
        for (head, whole, why) in cases {
            let e = parse(head, *whole).unwrap_err();
            assert!(e.contains(why), "{head:?}: {e}");
        }
    }

    #[test]
    fn env_names_a_program() {
        let env = |arg: Option<&str>| Shebang {
            interpreter: "/usr/bin/env".into(),
            arg: arg.map(str::to_string),
        };
        assert_eq!(env(Some("qjs")).env_name().unwrap(), Some("qjs"));
        for bad in [None, Some("-S qjs -m"), Some("A=1"), Some("./qjs")] {
            assert!(env(bad).env_name().is_err(), "{bad:?}");
        }
        let direct = Shebang {
            interpreter: "/usr/bin/python3".into(),
            arg: Some("-u".into()),
        };
        assert_eq!(direct.env_name().unwrap(), None);
    }
}
