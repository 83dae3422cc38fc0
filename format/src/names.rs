//! The naming conventions of a megabinary, in one place: the names of its exports and the
//! name-section names of what megabin generates, with the parsing that goes with them.
//!
//! Entry names are `[A-Za-z0-9_]+` (chosen by the build); an entry `cat` is started by the
//! export `cat_start`, keeps its memory in the export `cat.memory` and calls WASI through
//! trampolines named `cat::wasi::<function>`.

/// Export name of the bridge memory, the one stock WASI hosts read and write.
pub const BRIDGE_MEMORY_EXPORT: &str = "memory";
/// Export name of the dispatcher's command entry point (and of every input's).
pub const START_EXPORT: &str = "_start";
/// Export name of the dispatcher's by-digest entry point.
pub const DISPATCH_EXPORT: &str = "megabin_dispatch";
/// Name of the environment variable that selects a program by digest.
pub const ENTRY_ENV: &str = "MEGABIN_ENTRY";

/// Prefix of the name-section names of the functions, memories and globals megabin generates.
/// The merger renames input names that start with it, so only megabin's own can carry it.
pub const INTERNAL_PREFIX: &str = "megabin::";
/// Name-section name of the bridge allocator.
pub const BRIDGE_ALLOC: &str = "megabin::bridge_alloc";
/// Name-section name of the bridge memory.
pub const BRIDGE_MEMORY: &str = "megabin::bridge";
/// Name-section name of the bridge's scratch-cursor global.
pub const CURSOR_GLOBAL: &str = "megabin::cursor";
/// Name-section name of the private memory caching the environment of programs on memory 0.
pub const ENVIRON_MEMORY: &str = "megabin::environ";
/// Name-section name of the table shared by the programs on memory 0 (table 0 when any
/// program uses it).
pub const SHARED_TABLE: &str = "megabin::table";
/// Name-section name of the global recording which kind of program the instance activated.
pub const ACTIVATED_GLOBAL: &str = "megabin::activated";
/// Prefix of the name-section names of the WASI imports (`wasi::fd_write`).
pub const WASI_IMPORT_PREFIX: &str = "wasi::";
/// Prefix of the name-section names of foreign-import stubs (functions that trap when a
/// program calls an import no host provides).
pub const STUB_PREFIX: &str = "megabin::stub::";

/// Names an entry (and so a program's exports) must never take, because the merged module
/// uses them for itself.
pub const RESERVED_NAMES: &[&str] = &[
    "memory",
    "megabin_dispatch",
    "megabin",
    "wasi",
    "_start",
    "_initialize",
];

/// Separator of an entry name and its start suffix.
const START_SUFFIX: &str = "_start";
/// Between an entry name and a WASI function name in a trampoline's name.
const TRAMPOLINE_INFIX: &str = "::wasi::";

/// The export that starts entry `entry`: `<entry>_start`.
pub fn start_export(entry: &str) -> String {
    format!("{entry}{START_SUFFIX}")
}

/// The entry an export `<entry>_start` starts; `None` for any other name (including the
/// dispatcher's own `_start`).
pub fn entry_of_start_export(export: &str) -> Option<&str> {
    export
        .strip_suffix(START_SUFFIX)
        .filter(|entry| !entry.is_empty())
}

/// The export of entry `entry`'s memory: `<entry>.memory`.
pub fn memory_export(entry: &str) -> String {
    format!("{entry}.memory")
}

/// The name-section name of entry `entry`'s memory: `<entry>::memory`.
pub fn memory_name(entry: &str) -> String {
    format!("{entry}::memory")
}

/// The name-section name of the checked `memory.grow` of entry `entry` (which shares the
/// exported memory and declares a smaller maximum): `<entry>::memory_grow`.
pub fn checked_grow(entry: &str) -> String {
    format!("{entry}::memory_grow")
}

/// The name-section name of the checked `table.grow` of entry `entry` (which uses the shared
/// table and declares a maximum): `<entry>::table_grow`.
pub fn checked_table_grow(entry: &str) -> String {
    format!("{entry}::table_grow")
}

/// The export of an input's own function `export` under `--export-functions`: `<entry>.<export>`.
pub fn function_export(entry: &str, export: &str) -> String {
    format!("{entry}.{export}")
}

/// The name-section name of entry `entry`'s start function: `<entry>::start`.
pub fn start_function(entry: &str) -> String {
    format!("{entry}::start")
}

/// The name-section name of a function megabin generates: `megabin::<name>`.
pub fn internal(name: &str) -> String {
    format!("{INTERNAL_PREFIX}{name}")
}

/// The name-section name of the WASI import `func`: `wasi::<func>`.
pub fn wasi_import(func: &str) -> String {
    format!("{WASI_IMPORT_PREFIX}{func}")
}

/// The name-section name of entry `entry`'s trampoline for WASI function `func`:
/// `<entry>::wasi::<func>`.
pub fn trampoline(entry: &str, func: &str) -> String {
    format!("{entry}{TRAMPOLINE_INFIX}{func}")
}

/// The WASI function a function named `name` is the trampoline of, if it is one of entry
/// `entry`'s trampolines.
pub fn trampoline_of<'a>(entry: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(entry)?.strip_prefix(TRAMPOLINE_INFIX)
}

/// The name-section name of the stub of the foreign import `module::name`.
pub fn stub(module: &str, name: &str) -> String {
    format!("{STUB_PREFIX}{module}::{name}")
}

/// The import (`module::name`) a function named `func_name` stands for, if it is a stub.
pub fn stub_import(func_name: &str) -> Option<&str> {
    func_name.strip_prefix(STUB_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(start_export("cat"), "cat_start");
        assert_eq!(entry_of_start_export("cat_start"), Some("cat"));
        assert_eq!(entry_of_start_export("a_start_start"), Some("a_start"));
        assert_eq!(entry_of_start_export(START_EXPORT), None);
        assert_eq!(entry_of_start_export("cat"), None);
        assert_eq!(memory_export("cat"), "cat.memory");
        assert_eq!(memory_name("cat"), "cat::memory");
        assert_eq!(function_export("cat", "main"), "cat.main");
        assert_eq!(start_function("cat"), "cat::start");
        assert_eq!(internal("bridge_alloc"), BRIDGE_ALLOC);
        assert_eq!(internal("bridge"), BRIDGE_MEMORY);
        assert_eq!(internal("cursor"), CURSOR_GLOBAL);
        assert_eq!(wasi_import("fd_write"), "wasi::fd_write");
        let t = trampoline("cat", "fd_write");
        assert_eq!(t, "cat::wasi::fd_write");
        assert_eq!(trampoline_of("cat", &t), Some("fd_write"));
        assert_eq!(trampoline_of("ca", &t), None);
        assert_eq!(trampoline_of("cat", "cat::start"), None);
        let s = stub("env", "host_call");
        assert_eq!(s, "megabin::stub::env::host_call");
        assert_eq!(stub_import(&s), Some("env::host_call"));
        assert_eq!(stub_import(BRIDGE_ALLOC), None);
        assert!(STUB_PREFIX.starts_with(INTERNAL_PREFIX));
    }
}
