//! `megabin completions SHELL` and `megabin man [COMMAND]`: shell completion scripts and man
//! pages (roff), generated from the clap definitions of the command line, so they always
//! describe the options the binary accepts.

use clap_complete::Shell;

/// The completion script of `cmd` (the whole `megabin` command line) for `shell`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "megabin", &mut out);
    out
}

/// The man page of `cmd` (`megabin(1)`), or of its subcommand `sub` (`megabin-run(1)`, …).
pub fn man_page(cmd: clap::Command, sub: Option<&str>) -> Result<Vec<u8>, String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = format!("megabin {}", cmd.get_version().unwrap_or_default());
    let page = match sub {
        None => cmd,
        Some(name) => cmd.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
            format!("no command `{name}` (commands: {})", names.join(", "))
        })?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(source)
        .manual("megabin manual")
        .render(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}
