//! Shard planning: which programs go into which megabinary.
//!
//! A run loads only its program's shard, and what loading costs grows with the shard (Wasmtime
//! decodes a module's metadata per function on every load). So a small program must not share
//! a shard with large ones: a **large** program (estimated size over [`LARGE_PROGRAM_BYTES`] or
//! more than [`LARGE_PROGRAM_FUNCTIONS`] functions) gets a shard of its own, and **small**
//! programs are packed together into shards capped at [`SMALL_SHARD_BYTES`] and
//! [`SMALL_SHARD_FUNCTIONS`]. The rule is documented in docs/format.md §7.

use merger::Footprint;

/// Default cap on a megabinary's estimated size (`--max-shard-size`).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 512 << 20;

/// A program whose estimated size ([`Footprint::bytes`]) exceeds this is large and gets a
/// shard of its own.
pub const LARGE_PROGRAM_BYTES: u64 = 4 << 20;

/// A program that adds more functions than this ([`Footprint::functions`]) is large too.
pub const LARGE_PROGRAM_FUNCTIONS: u64 = 8192;

/// Cap on the estimated size of a shard of small programs (base included); `--max-shard-size`
/// lowers it further.
pub const SMALL_SHARD_BYTES: u64 = 32 << 20;

/// Cap on the functions of a shard of small programs (base included).
pub const SMALL_SHARD_FUNCTIONS: u64 = 65_536;

/// File name of shard `k`: `container.wasm`, `container-1.wasm`, …
pub fn shard_file(k: usize) -> String {
    if k == 0 {
        "container.wasm".into()
    } else {
        format!("container-{k}.wasm")
    }
}

/// Whether a program is large: it then gets a shard of its own.
pub fn is_large(f: &Footprint) -> bool {
    f.bytes > LARGE_PROGRAM_BYTES || f.functions > LARGE_PROGRAM_FUNCTIONS
}

/// Splits programs (given in their deterministic build order, with their footprints) into
/// shards. Walking the programs in order: a large program ([`is_large`]) opens a shard of its
/// own; a small one joins the open shard of small programs while that shard still fits the
/// engine limits, `max_bytes`, [`SMALL_SHARD_BYTES`] and [`SMALL_SHARD_FUNCTIONS`], and
/// otherwise opens the next one. Shards are numbered in the order they are opened, and each
/// lists its programs in build order. Every program given must fit a module on its own (the
/// caller skips those that do not).
pub fn plan(footprints: &[Footprint], max_bytes: u64) -> Vec<Vec<usize>> {
    let small_cap = max_bytes.min(SMALL_SHARD_BYTES);
    let mut shards: Vec<Vec<usize>> = Vec::new();
    // The shard small programs join (its index) and its members' footprints.
    let mut open: Option<(usize, Vec<Footprint>)> = None;
    for (i, f) in footprints.iter().enumerate() {
        if is_large(f) {
            shards.push(vec![i]);
            continue;
        }
        if let Some((k, members)) = &mut open {
            members.push(*f);
            let fits = merger::fits(members)
                .is_ok_and(|t| t.bytes <= small_cap && t.functions <= SMALL_SHARD_FUNCTIONS);
            if fits {
                shards[*k].push(i);
                continue;
            }
        }
        open = Some((shards.len(), vec![*f]));
        shards.push(vec![i]);
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(bytes: u64, functions: u64) -> Footprint {
        Footprint {
            memories: 1,
            functions,
            bytes,
            ..Default::default()
        }
    }

    fn sizes(shards: &[Vec<usize>]) -> Vec<usize> {
        shards.iter().map(Vec::len).collect()
    }

    #[test]
    fn splits_at_the_memory_limit_and_at_the_size_cap() {
        let one = program(1000, 10);
        let shards = plan(&vec![one; 300], u64::MAX);
        assert_eq!(sizes(&shards), vec![99, 99, 99, 3]);
        assert_eq!(shards.concat(), (0..300).collect::<Vec<_>>());
        let base = Footprint::base().bytes;
        let small = plan(&vec![one; 10], base + 3000);
        assert_eq!(sizes(&small), vec![3, 3, 3, 1]);
        assert_eq!(shard_file(0), "container.wasm");
        assert_eq!(shard_file(2), "container-2.wasm");
    }

    #[test]
    fn large_programs_get_shards_of_their_own_and_small_ones_stay_together() {
        let small = program(100_000, 200);
        let big = program(70 << 20, 150_000);
        let data_heavy = program(LARGE_PROGRAM_BYTES + 1, 600);
        let many_functions = program(1 << 20, LARGE_PROGRAM_FUNCTIONS + 1);
        // Build order: small, big, small, data-heavy, small, many-functions, small.
        let footprints = [small, big, small, data_heavy, small, many_functions, small];
        let shards = plan(&footprints, DEFAULT_MAX_SHARD_BYTES);
        assert_eq!(shards, vec![vec![0, 2, 4, 6], vec![1], vec![3], vec![5]]);
        // The old greedy rule put all seven in one shard; a small program's shard now
        // holds no large program.
        for shard in &shards {
            let large = shard.iter().filter(|&&i| is_large(&footprints[i])).count();
            assert!(large == 0 || shard.len() == 1, "{shards:?}");
        }
    }

    #[test]
    fn shards_of_small_programs_are_capped_in_bytes_and_functions() {
        let base = Footprint::base();
        // Eight programs just under the large threshold fill SMALL_SHARD_BYTES, nine do not.
        let eighth = program((SMALL_SHARD_BYTES - base.bytes) / 8, 10);
        assert!(!is_large(&eighth));
        assert_eq!(sizes(&plan(&vec![eighth; 40], u64::MAX)), vec![8; 5]);
        // By functions: eight per shard.
        let eighth = program(1000, (SMALL_SHARD_FUNCTIONS - base.functions) / 8);
        assert!(!is_large(&eighth));
        assert_eq!(sizes(&plan(&vec![eighth; 17], u64::MAX)), vec![8, 8, 1]);
        // A lower --max-shard-size still lowers the cap of small shards.
        assert_eq!(
            sizes(&plan(&vec![program(1000, 10); 4], base.bytes + 2000)),
            vec![2, 2]
        );
    }

    #[test]
    fn the_plan_is_a_partition_in_build_order() {
        // Mixed sizes in a fixed pseudo-random order: every program is planned exactly once,
        // each shard lists its members in build order, and planning twice gives the same plan.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let footprints: Vec<Footprint> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                program(x % (8 << 20), x % 12_000)
            })
            .collect();
        let shards = plan(&footprints, DEFAULT_MAX_SHARD_BYTES);
        let mut all = shards.concat();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        for shard in &shards {
            assert!(shard.windows(2).all(|w| w[0] < w[1]));
            assert!(
                merger::fits(&shard.iter().map(|&i| footprints[i]).collect::<Vec<_>>()).is_ok()
            );
        }
        assert_eq!(plan(&footprints, DEFAULT_MAX_SHARD_BYTES), shards);
    }
}
