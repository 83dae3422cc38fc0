//! The merge, as a list of phases: check the programs, parse them, check the limits, plan the
//! index spaces, then emit the module the plan describes (after Binaryen's `wasm-merge.cpp`
//! and wasm-compose's build-a-graph-then-encode).

use crate::emit::{self, Sections};
use crate::error::{MergeError, Unsupported};
use crate::footprint::Footprint;
use crate::input::Input;
use crate::limits;
use crate::parallel::parallel_map;
use crate::plan::Plan;
use crate::{DebugOptions, MergeOptions, Merged, Program};
use sha2::{Digest as _, Sha256};

pub use megabin_format::names::RESERVED_NAMES;

pub(crate) fn merge(
    programs: &[Program<'_>],
    options: &MergeOptions,
    debug: &DebugOptions,
) -> Result<Merged, MergeError> {
    // Refuse bad entry names, and inputs too large for any module before validating them.
    check_programs(programs)?;
    // Hash every input (in parallel): the dispatcher selects programs by these digests.
    let digests: Vec<[u8; 32]> =
        parallel_map(programs, options.jobs, |p| Sha256::digest(p.wasm).into());
    // Validate (unless proven valid already) and parse every input (in parallel); refuse what
    // megabin cannot merge.
    let inputs = parse_all(programs, &digests, options)?;
    // Refuse a set of programs that would exceed an engine limit once merged.
    check_footprint(programs, &inputs)?;
    // Plan where every input goes in every index space (imports, layouts, index maps, types).
    let mut plan = Plan::new(programs, digests, inputs, debug.bridge_all)?;
    // Re-encode every program's code against the plan (in parallel).
    let code = emit::program_code(&plan, options.jobs)?;
    // Build the other sections, program by program, and the merge map.
    let mut sections = Sections::build(&mut plan, programs, debug)?;
    let map = sections.take_map();
    // Write the module at its exact size, code and data straight from the inputs.
    let wasm = emit::write(&plan, sections, &map, code)?;
    // Validate the output: a module that does not validate is a bug in megabin.
    wasmparser::Validator::new_with_features(crate::input::features())
        .validate_all(&wasm)
        .map_err(|e| MergeError::Internal(e.to_string()))?;
    Ok(Merged { wasm, map })
}

/// Refuses an empty set, bad or duplicate names, and a set whose bytes alone exceed a module.
fn check_programs(programs: &[Program<'_>]) -> Result<(), MergeError> {
    if programs.is_empty() {
        return Err(MergeError::Empty);
    }
    let mut seen = std::collections::HashSet::new();
    for p in programs {
        let ok = !p.name.is_empty()
            && p.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !RESERVED_NAMES.contains(&p.name.as_str())
            && seen.insert(p.name.as_str());
        if !ok {
            return Err(MergeError::BadName(p.name.clone()));
        }
    }
    let sizes = programs.iter().fold(Footprint::base(), |acc, p| {
        acc.plus(Footprint::oversized(p.wasm.len()))
    });
    if sizes.bytes > limits::MAX_MODULE_BYTES {
        sizes.check().map_err(MergeError::TooLarge)?;
    }
    Ok(())
}

/// Validates (unless a program carries the [`crate::Validated`] proof for its `digests`
/// entry) and parses every program on up to `options.jobs` threads.
fn parse_all<'a>(
    programs: &[Program<'a>],
    digests: &[[u8; 32]],
    options: &MergeOptions,
) -> Result<Vec<Input<'a>>, MergeError> {
    let stub_foreign = options.stub_foreign_imports;
    let indexed: Vec<usize> = (0..programs.len()).collect();
    let results = parallel_map(&indexed, options.jobs, |&i| {
        let p = &programs[i];
        Input::parse(p.wasm, stub_foreign, p.validated.map(|v| (&digests[i], v)))
    });
    results
        .into_iter()
        .zip(programs)
        .map(|(r, p)| {
            r.map_err(|reason: Unsupported| MergeError::Unsupported {
                entry: p.name.clone(),
                reason,
            })
        })
        .collect()
}

/// Refuses a set of programs whose merged module would exceed an engine limit.
fn check_footprint(programs: &[Program<'_>], inputs: &[Input<'_>]) -> Result<(), MergeError> {
    let total = inputs
        .iter()
        .zip(programs)
        .fold(Footprint::base(), |acc, (i, p)| {
            acc.plus(Footprint::of_input(i, p.wasm.len()))
        });
    total.check().map_err(MergeError::TooLarge)
}
