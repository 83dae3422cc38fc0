//! Coalescing of a program's active data segments.
//!
//! Linkers may emit one data segment per static object; engines allow 100,000 per module. The
//! merger turns each program's active segments into passive ones applied by its start
//! function, and first coalesces runs of constant-offset segments into a few large ones,
//! zero-filling small gaps. Fresh memory is zero, so filling a gap changes nothing, unless an
//! earlier segment with a computed offset (`global.get`) could have written there: then only
//! overlapping or touching segments are joined. Segment order is kept exactly, so overlapping
//! segments still resolve as in the original.

use std::borrow::Cow;
use wasmparser::{ConstExpr, Operator};

/// Largest zero gap filled between two segments that are joined.
pub const MAX_GAP: u64 = 4096;

/// One active data segment of the output, in application order.
#[derive(Debug)]
pub enum ActiveData<'a> {
    /// Lands at a constant offset.
    Const { offset: u32, bytes: Cow<'a, [u8]> },
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
            ActiveData::Const { bytes, .. } => bytes.len(),
            ActiveData::Expr { bytes, .. } => bytes.len(),
        }
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
pub fn coalesce<'a>(segments: Vec<(ConstExpr<'a>, &'a [u8])>) -> Vec<ActiveData<'a>> {
    let mut out = Vec::new();
    let mut run: Vec<(u32, &'a [u8])> = Vec::new();
    let mut seen_expr = false;
    for (expr, bytes) in segments {
        match const_offset(&expr) {
            Some(offset) => run.push((offset, bytes)),
            None => {
                flush(&mut run, seen_expr, &mut out);
                seen_expr = true;
                out.push(ActiveData::Expr {
                    offset: expr,
                    bytes,
                });
            }
        }
    }
    flush(&mut run, seen_expr, &mut out);
    out
}

/// Joins one run of constant-offset segments into groups of nearby segments.
fn flush<'a>(run: &mut Vec<(u32, &'a [u8])>, seen_expr: bool, out: &mut Vec<ActiveData<'a>>) {
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
            Some(g) if start <= g.1 + max_gap => {
                g.1 = g.1.max(end);
                g.2.push(i);
            }
            _ => groups.push((start, end, vec![i])),
        }
    }
    for (start, end, mut members) in groups {
        if members.len() == 1 {
            let (offset, bytes) = run[members[0]];
            out.push(ActiveData::Const {
                offset,
                bytes: Cow::Borrowed(bytes),
            });
            continue;
        }
        members.sort_unstable(); // original order, so later segments overwrite earlier ones
        let mut buf = vec![0u8; (end - start) as usize];
        for i in members {
            let (offset, bytes) = run[i];
            let at = (offset as u64 - start) as usize;
            buf[at..at + bytes.len()].copy_from_slice(bytes);
        }
        out.push(ActiveData::Const {
            offset: start as u32,
            bytes: Cow::Owned(buf),
        });
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ActiveData::Const { offset: 0, bytes } => assert_eq!(&bytes[..], b"abXY"),
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
        let exprs: Vec<Vec<u8>> = (0..50_000u32)
            .map(|i| {
                let mut e = vec![0x41];
                let mut v = i * 3;
                loop {
                    let b = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 && b & 0x40 == 0 {
                        e.push(b);
                        break;
                    }
                    e.push(b | 0x80);
                }
                e.push(0x0b);
                e
            })
            .collect();
        let segs = exprs.iter().map(|e| (expr(e), &b"x"[..])).collect();
        let out = coalesce(segs);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 3 * 49_999 + 1);
    }

    #[test]
    fn computed_offsets_split_runs_and_disable_gap_filling() {
        let g = expr(&[0x23, 0x00, 0x0b]); // global.get 0
        let (a, b) = (expr(&[0x41, 0x00, 0x0b]), expr(&[0x41, 0x08, 0x0b]));
        let out = coalesce(vec![(g, b"g"), (a, b"aa"), (b, b"bb")]);
        assert_eq!(out.len(), 3, "no gap filling after a computed offset");
    }
}
