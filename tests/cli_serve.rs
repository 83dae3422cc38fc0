//! `megabin serve` driven by the official MCP Python SDK: the scenarios are Python tests in
//! `tests/mcp/` (pytest), run with the interpreter of `MEGABIN_TEST_PYTHON` (`.ci/run` creates
//! a virtual environment with `.ci/requirements.txt` and sets it). This test builds the test
//! rootfs (the sample plus tools for limits and cancellation) and hands it over.

mod common;

use common::{build, compile, copy_tree, megabin, sample_rootfs, write_exec};
use std::path::Path;

/// A WASI command that never ends (for time limits and cancellation).
fn spin_program() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $x (param i32)))
          (memory (export "memory") 1)
          (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap()
}

/// The agent tools of the test rootfs: both forms of `megabin.toml`.
const CONFIG: &str = r#"[agent_tools]
search_web = "/opt/tools/search_web"

[agent_tools.write_file]
path = "/opt/tools/write_file"
description = "Exercises the file system in the directory given"

[agent_tools.cat]
path = "/usr/bin/cat"
description = "Copies stdin, or the files named, to stdout"

[agent_tools.wc]
path = "/usr/bin/wc"
input_schema = { type = "object", properties = { stdin = { type = "string" } } }

[agent_tools.bigout]
path = "/usr/bin/bigout"

[agent_tools.spin]
path = "/opt/tools/spin"
timeout = "500ms"

[agent_tools.spin_forever]
path = "/opt/tools/spin"

[agent_tools.memgrow]
path = "/usr/bin/memgrow"
max_memory = "32M"

[agent_tools.notes]
path = "/opt/tools/notes"
description = "A #! script run by the merged cat"
"#;

/// The script tool `notes`: `cat` prints it (and what it is given).
const NOTES: &str = "#!/usr/bin/cat\nnotes of the day\n";

#[test]
fn serve_speaks_mcp_to_the_python_sdk() {
    let Some(python) = std::env::var_os("MEGABIN_TEST_PYTHON") else {
        eprintln!(
            "\n\n*** SKIPPED serve_speaks_mcp_to_the_python_sdk: MEGABIN_TEST_PYTHON is not set.\n\
             *** Create a venv with `pip install -r .ci/requirements.txt` and point \
             MEGABIN_TEST_PYTHON at its python (.ci/run does).\n\n"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    copy_tree(&sample_rootfs(), &rootfs, false);
    write_exec(&rootfs.join("opt/tools/spin"), &spin_program());
    write_exec(&rootfs.join("opt/tools/notes"), NOTES.as_bytes());
    std::fs::write(rootfs.join("megabin.toml"), CONFIG).unwrap();
    let out = tmp.path().join("out");
    let o = build(&rootfs, &out, &["-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    compile(&out);

    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("megabin-cache");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp");
    let o = std::process::Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .arg(&tests)
        .current_dir(&tests)
        .env("MEGABIN_BIN", megabin().get_program())
        .env("MEGABIN_SERVE_ROOTFS", &rootfs)
        .env("MEGABIN_SERVE_OUT", &out)
        .env("MEGABIN_CACHE_DIR", &cache)
        .env_remove("MEGABIN_EXPECT_ID")
        .output()
        .expect("python runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{report}");
    assert!(o.status.success(), "the MCP tests failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
}
