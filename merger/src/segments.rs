//! Coalescing of a program's active data segments.
//!
//! Linkers may emit one data segment per static object; engines allow 100,000 per module. The
//! merger turns each program's active segments into passive ones applied by its start
//! function, and first coalesces runs of constant-offset segments into a few large ones,
//! zero-filling small gaps. Fresh memory is zero, so filling a gap changes nothing, unless an
//! earlier segment with a computed offset (`global.get`) could have written there: then only
//! overlapping or touching segments are joined. Segment order is kept exactly, so overlapping
//! segments still resolve as in the original. Gaps of at most [`FREE_GAP`] bytes are always
//! filled (a separate segment would cost as much); the zero bytes spent on larger gaps are
//! bounded by the program's own active data bytes plus [`FILL_SLACK`], so coalescing never
//! blows a program up (at most 2 × data + 32 × segments + 64 KiB), whatever the layout.

use wasmparser::{ConstExpr, Operator};

/// Largest zero gap filled between two segments that are joined.
pub const MAX_GAP: u64 = 4096;

/// Gaps up to this size are always filled: a segment kept apart costs about as many bytes (its
/// passive-segment header and the `memory.init`/`data.drop` in the start function).
pub const FREE_GAP: u64 = 32;

/// Zero bytes a program's coalescing may spend on gaps larger than [`FREE_GAP`] beyond its
/// own active data bytes: in total at most `data bytes + FILL_SLACK`, so many tiny segments
/// spread 4 KiB apart cannot blow a small input up into a huge output.
pub const FILL_SLACK: u64 = 64 * 1024;

/// One active data segment of the output, in application order. Nothing is copied: the bytes
/// are borrowed from the input and only laid out when the output is written
/// ([`ActiveData::write_to`]).
#[derive(Debug)]
pub enum ActiveData<'a> {
    /// One input segment at a constant offset, kept as is.
    Const { offset: u32, bytes: &'a [u8] },
    /// Several constant-offset segments joined into one spanning `offset .. offset + len`,
    /// zero-filled; `parts` are (position relative to `offset`, bytes), in original order, so
    /// later parts overwrite earlier ones where they overlap.
    Joined {
        offset: u32,
        len: usize,
        parts: Vec<(usize, &'a [u8])>,
    },
    /// Lands at an offset computed by a constant expression (e.g. `global.get`).
    Expr {
        offset: ConstExpr<'a>,
        bytes: &'a [u8],
    },
}

impl ActiveData<'_> {
    /// Number of bytes in the segment.
    pub fn len(&self) -> usize {
        match self {
            ActiveData::Const { bytes, .. } | ActiveData::Expr { bytes, .. } => bytes.len(),
            ActiveData::Joined { len, .. } => *len,
        }
    }

    /// Appends the segment's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            ActiveData::Const { bytes, .. } | ActiveData::Expr { bytes, .. } => {
                out.extend_from_slice(bytes)
            }
            ActiveData::Joined { len, parts, .. } => {
                let start = out.len();
                out.resize(start + len, 0);
                let dst = &mut out[start..];
                for (at, bytes) in parts {
                    dst[*at..*at + bytes.len()].copy_from_slice(bytes);
                }
            }
        }
    }

    /// The segment's bytes as one vector (tests).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

/// The constant value of an `i32.const N` offset expression.
pub fn const_offset(expr: &ConstExpr<'_>) -> Option<u32> {
    let mut ops = expr.get_operators_reader();
    let value = match ops.read().ok()? {
        Operator::I32Const { value } => value as u32,
        _ => return None,
    };
    matches!(ops.read().ok()?, Operator::End).then_some(value)
}

/// Coalesces active segments (given in original order) as described in the module docs.
/// Linear in the number of segments (plus a sort per run); copies no bytes.
pub fn coalesce<'a>(segments: Vec<(ConstExpr<'a>, &'a [u8])>) -> Vec<ActiveData<'a>> {
    let total: u64 = segments.iter().map(|(_, b)| b.len() as u64).sum();
    let mut budget = total + FILL_SLACK;
    let mut out = Vec::new();
    let mut run: Vec<(u32, &'a [u8])> = Vec::new();
    let mut seen_expr = false;
    for (expr, bytes) in segments {
        match const_offset(&expr) {
            Some(offset) => run.push((offset, bytes)),
            None => {
                flush(&mut run, seen_expr, &mut budget, &mut out);
                seen_expr = true;
                out.push(ActiveData::Expr {
                    offset: expr,
                    bytes,
                });
            }
        }
    }
    flush(&mut run, seen_expr, &mut budget, &mut out);
    out
}

/// Joins one run of constant-offset segments into groups of nearby segments, spending at most
/// `budget` zero bytes on gaps.
fn flush<'a>(
    run: &mut Vec<(u32, &'a [u8])>,
    seen_expr: bool,
    budget: &mut u64,
    out: &mut Vec<ActiveData<'a>>,
) {
    if run.is_empty() {
        return;
    }
    let max_gap = if seen_expr { 0 } else { MAX_GAP };
    // Indices into `run`, sorted by start offset (stable: ties keep original order).
    let mut order: Vec<usize> = (0..run.len()).collect();
    order.sort_by_key(|&i| run[i].0);
    let mut groups: Vec<(u64, u64, Vec<usize>)> = Vec::new(); // (start, end, members)
    for i in order {
        let (start, bytes) = (run[i].0 as u64, run[i].1);
        let end = start + bytes.len() as u64;
        match groups.last_mut() {
            Some(g)
                if start <= g.1 + max_gap
                    && (start <= g.1 + FREE_GAP.min(max_gap)
                        || start.saturating_sub(g.1) <= *budget) =>
            {
                if start > g.1 + FREE_GAP {
                    *budget -= start - g.1;
                }
                g.1 = g.1.max(end);
                g.2.push(i);
            }
            _ => groups.push((start, end, vec![i])),
        }
    }
    for (start, end, mut members) in groups {
        if members.len() == 1 {
            let (offset, bytes) = run[members[0]];
            out.push(ActiveData::Const { offset, bytes });
            continue;
        }
        members.sort_unstable(); // original order, so later segments overwrite earlier ones
        out.push(ActiveData::Joined {
            offset: start as u32,
            len: (end - start) as usize,
            parts: members
                .into_iter()
                .map(|i| ((run[i].0 as u64 - start) as usize, run[i].1))
                .collect(),
        });
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `i32.const v; end` (`v` < 2^31).
    fn i32_const(v: u32) -> Vec<u8> {
        let mut e = Vec::new();
        wasm_encoder::Encode::encode(&wasm_encoder::ConstExpr::i32_const(v as i32), &mut e);
        e
    }

    fn expr(bytes: &[u8]) -> ConstExpr<'_> {
        ConstExpr::new(wasmparser::BinaryReader::new(bytes, 0))
    }

    #[test]
    fn joins_near_segments_and_keeps_overlap_order() {
        // i32.const 0 / i32.const 2 / i32.const 10000, each `end`
        let (e0, e2, e_far) = (
            expr(&[0x41, 0x00, 0x0b]),
            expr(&[0x41, 0x02, 0x0b]),
            expr(&[0x41, 0x90, 0xce, 0x00, 0x0b]),
        );
        let out = coalesce(vec![(e0, b"abcd"), (e_far, b"zz"), (e2, b"XY")]);
        assert_eq!(out.len(), 2);
        match &out[0] {
            a @ ActiveData::Joined { offset: 0, .. } => assert_eq!(a.to_vec(), b"abXY"),
            other => panic!("{other:?}"),
        }
        match &out[1] {
            ActiveData::Const {
                offset: 10000,
                bytes,
            } => assert_eq!(&bytes[..], b"zz"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn many_tiny_segments_become_one() {
        let exprs: Vec<Vec<u8>> = (0..50_000u32).map(|i| i32_const(i * 3)).collect();
        let segs = exprs.iter().map(|e| (expr(e), &b"x"[..])).collect();
        let out = coalesce(segs);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3 * 49_999 + 1);
    }

    #[test]
    fn gap_filling_is_bounded_by_the_data_size() {
        // 20,000 one-byte segments 4 KiB apart: filling every gap would turn 20 KB of data into
        // 80 MB of zeros. The budget (data bytes + FILL_SLACK) stops joining early instead.
        let exprs: Vec<Vec<u8>> = (0..20_000u32).map(|i| i32_const(i * 4097)).collect();
        let segs = exprs.iter().map(|e| (expr(e), &b"x"[..])).collect();
        let out = coalesce(segs);
        let bytes: u64 = out.iter().map(|a| a.len() as u64).sum();
        assert!(bytes <= 2 * 20_000 + FILL_SLACK + 1, "{bytes} bytes");
        assert!(out.len() < 20_000, "some gaps are still filled");
    }

    #[test]
    fn computed_offsets_split_runs_and_disable_gap_filling() {
        let g = expr(&[0x23, 0x00, 0x0b]); // global.get 0
        let (a, b) = (expr(&[0x41, 0x00, 0x0b]), expr(&[0x41, 0x08, 0x0b]));
        let out = coalesce(vec![(g, b"g"), (a, b"aa"), (b, b"bb")]);
        assert_eq!(out.len(), 3, "no gap filling after a computed offset");
    }
}
