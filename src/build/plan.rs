//! Shard planning: which programs go into which megabinary.

use merger::Footprint;

/// Default cap on a megabinary's estimated size.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 512 << 20;

/// File name of shard `k`: `container.wasm`, `container-1.wasm`, …
pub fn shard_file(k: usize) -> String {
    if k == 0 {
        "container.wasm".into()
    } else {
        format!("container-{k}.wasm")
    }
}

/// Splits programs (given in their deterministic build order, with their footprints) into
/// shards greedily: a program joins the current shard while the shard still fits the engine
/// limits and `max_bytes`; otherwise it opens the next shard. Every program given must fit a
/// module on its own (the caller skips those that do not).
pub fn plan(footprints: &[Footprint], max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<Footprint> = Vec::new();
    for (i, f) in footprints.iter().enumerate() {
        current.push(*f);
        let fits = merger::fits(&current).is_ok_and(|t| t.bytes <= max_bytes || current.len() == 1);
        if fits && !shards.is_empty() {
            shards.last_mut().expect("non-empty").push(i);
        } else {
            current = vec![*f];
            shards.push(vec![i]);
        }
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_memory_limit_and_at_the_size_cap() {
        let one = Footprint {
            memories: 1,
            functions: 10,
            bytes: 1000,
            ..Default::default()
        };
        let shards = plan(&vec![one; 300], u64::MAX);
        assert_eq!(
            shards.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![99, 99, 99, 3]
        );
        assert_eq!(shards.concat(), (0..300).collect::<Vec<_>>());
        let base = Footprint::base().bytes;
        let small = plan(&vec![one; 10], base + 3000);
        assert_eq!(
            small.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert_eq!(shard_file(0), "container.wasm");
        assert_eq!(shard_file(2), "container-2.wasm");
    }
}
