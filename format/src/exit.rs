//! The exit codes megabin documents (`docs/usage.md`), each defined once. A program run through
//! megabin ends with its own status (0..=255) unless megabin itself stops it with one of these.

/// Success.
pub const SUCCESS: i32 = 0;
/// A failure reported by the command (problems found by `verify`, an I/O or internal error of
/// `build`, a program's `proc_exit` status above 255).
pub const FAILURE: i32 = 1;
/// Usage error: bad flags or arguments (also a `--max-memory` too small to instantiate).
pub const USAGE: i32 = 2;
/// `build`: the rootfs does not exist, is not a directory or cannot be read.
pub const BUILD_ROOTFS: i32 = 3;
/// `build`: configuration error (`megabin.toml`, an agent tool that is not a merged program).
pub const BUILD_CONFIG: i32 = 4;
/// `build`: the output directory is unusable.
pub const BUILD_OUTPUT: i32 = 5;
/// `build`: the rootfs holds no WASI command program.
pub const BUILD_NOTHING: i32 = 6;
/// `--timeout` elapsed.
pub const TIMEOUT: i32 = 124;
/// `--max-memory` refused memory and the program then failed.
pub const MEMORY: i32 = 125;
/// Refused: a file's hash, the megabinary or the manifest does not match (or is not trusted).
pub const REFUSED: i32 = 126;
/// Not found: a path not in the manifest, skipped, an unknown digest or tool. The dispatcher
/// inside a megabinary exits with it too when asked for a digest it does not hold.
pub const NOT_FOUND: i32 = 127;
/// The program trapped.
pub const TRAP: i32 = 134;
