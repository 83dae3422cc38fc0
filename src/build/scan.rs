//! Stage 1, scan: the rootfs's programs, read and hashed once ([`crate::rootfs::scan`]).

use super::{BuildError, BuildOptions};
use crate::rootfs::{self, ScanOptions};

/// Stage 1 output: what the rootfs holds.
pub struct Scanned {
    pub(super) scan: rootfs::Scan,
}

/// Stage 1, scan: walk the rootfs, classify every file, read and hash each WASI command module
/// once (the bytes stay in memory for the later stages).
pub fn scan(opts: &BuildOptions) -> Result<Scanned, BuildError> {
    let scan = rootfs::scan(
        &opts.rootfs,
        &ScanOptions {
            jobs: opts.jobs.max(1),
        },
    )?;
    Ok(Scanned { scan })
}
