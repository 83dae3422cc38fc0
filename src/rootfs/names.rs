//! Entry names: one unique identifier-safe name per program.

use std::collections::HashSet;

use megabin_format::names::{start_export, RESERVED_NAMES};

use super::Program;

/// Turns the basename of `path` into an identifier matching `[A-Za-z_][A-Za-z0-9_]*`.
///
/// Characters outside `[A-Za-z0-9_]` become `_`, except `[` and `]` which become `lbracket` and
/// `rbracket` (so `/usr/bin/[` is `lbracket`); a leading digit gets a `_` prefix; an empty
/// result becomes `prog`.
pub fn sanitize_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let mut name = String::with_capacity(base.len());
    for c in base.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' => name.push(c),
            '[' => name.push_str("lbracket"),
            ']' => name.push_str("rbracket"),
            _ => name.push('_'),
        }
    }
    if name.is_empty() {
        name.push_str("prog");
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Returns one entry name per program (same order as `programs`).
///
/// Each name is [`sanitize_name`] of the program's [`primary_path`](Program::primary_path).
/// Names are unique; no name is in [`RESERVED_NAMES`]; and for any two names `a` and `b`,
/// `a != b` and `a != start_export(b)`, so that names and `<name>_start` exports never
/// collide. Clashes are resolved by appending `_2`, `_3`, ...: programs claim names in order of
/// their primary path (then digest), so the result depends only on the set of programs, not on
/// the order of the slice.
pub fn entry_names(programs: &[Program]) -> Vec<String> {
    let mut order: Vec<usize> = (0..programs.len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&programs[a], &programs[b]);
        (&pa.primary_path, &pa.digest).cmp(&(&pb.primary_path, &pb.digest))
    });

    let mut taken: HashSet<String> = RESERVED_NAMES.iter().map(|s| s.to_string()).collect();
    let mut names = vec![String::new(); programs.len()];
    for i in order {
        let base = sanitize_name(&programs[i].primary_path);
        let mut candidate = base.clone();
        let mut n = 1u64;
        while taken.contains(&candidate) || taken.contains(&start_export(&candidate)) {
            n += 1;
            candidate = format!("{base}_{n}");
        }
        taken.insert(start_export(&candidate));
        taken.insert(candidate.clone());
        names[i] = candidate;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn program(digest: u8, primary: &str) -> Program {
        Program {
            digest: [digest; 32],
            paths: vec![primary.to_string()],
            primary_path: primary.to_string(),
            host_path: PathBuf::from(primary),
            size: 0,
            content: None,
        }
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize_name("/usr/bin/ls"), "ls");
        assert_eq!(sanitize_name("/usr/bin/["), "lbracket");
        assert_eq!(sanitize_name("/usr/bin/[["), "lbracketlbracket");
        assert_eq!(sanitize_name("/bin/python3.12"), "python3_12");
        assert_eq!(sanitize_name("/bin/g++"), "g__");
        assert_eq!(sanitize_name("/bin/7z"), "_7z");
        assert_eq!(sanitize_name("/bin/héllo-wörld"), "h_llo_w_rld");
        assert_eq!(sanitize_name("/bin/"), "prog");
        assert_eq!(sanitize_name(""), "prog");
        assert_eq!(sanitize_name("plain"), "plain");
    }

    #[test]
    fn collisions_are_resolved_deterministically() {
        let programs = vec![
            program(9, "/usr/bin/foo"),
            program(1, "/bin/foo"),
            program(3, "/opt/foo"),
            program(4, "/bin/memory"),
            program(5, "/bin/megabin_dispatch"),
            program(6, "/bin/_start"),
            program(7, "/bin/foo-2"),
        ];
        let names = entry_names(&programs);
        assert_eq!(
            names,
            vec![
                "foo_4",
                "foo",
                "foo_3",
                "memory_2",
                "megabin_dispatch_2",
                "_start_2",
                "foo_2"
            ]
        );
        let mut reversed = programs.clone();
        reversed.reverse();
        let mut names_rev = entry_names(&reversed);
        names_rev.reverse();
        assert_eq!(names_rev, names);
    }

    #[test]
    fn start_suffix_never_collides() {
        let programs = vec![
            program(1, "/bin/a"),
            program(2, "/bin/a_start"),
            program(3, "/bin/b_start"),
            program(4, "/bin/b"),
        ];
        let names = entry_names(&programs);
        let all: HashSet<&String> = names.iter().collect();
        assert_eq!(all.len(), names.len());
        for name in &names {
            assert!(!RESERVED_NAMES.contains(&name.as_str()));
            assert!(!all.contains(&start_export(name)), "{names:?}");
        }
        assert_eq!(names[0], "a");
        assert_eq!(names[3], "b");
    }

    #[test]
    fn empty() {
        assert!(entry_names(&[]).is_empty());
    }
}
