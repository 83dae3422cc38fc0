//! Static evaluation of a program's `i32` constant expressions (segment offsets).
//!
//! A WASI command imports no globals, so every offset expression (`i32.const`, `global.get` of
//! an immutable global, extended-const `i32.add`/`i32.sub`/`i32.mul`) has a value known at
//! build time. The merger uses it to decide whether a program's element segments can stay
//! active (applied at instantiation) without any chance of trapping there: see
//! [`eager_tables`].

use crate::input::Input;
use wasmparser::{ConstExpr, ElementItems, ElementKind, Operator, ValType};

/// The values of a program's `i32` globals (`None` for other types or initialisers this
/// evaluator does not know), in index order. Globals may only refer to earlier ones, so one
/// pass in order suffices.
pub fn i32_globals(input: &Input<'_>) -> Vec<Option<i32>> {
    let mut values: Vec<Option<i32>> = Vec::with_capacity(input.globals.len());
    for g in &input.globals {
        let v = match g.ty.content_type {
            ValType::I32 => eval_i32(&g.init_expr, &values),
            _ => None,
        };
        values.push(v);
    }
    values
}

/// The value of an `i32` constant expression, given the values of the globals it may read.
pub fn eval_i32(expr: &ConstExpr<'_>, globals: &[Option<i32>]) -> Option<i32> {
    let mut stack: Vec<i32> = Vec::new();
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        match reader.read().ok()? {
            Operator::I32Const { value } => stack.push(value),
            Operator::GlobalGet { global_index } => {
                stack.push((*globals.get(global_index as usize)?)?)
            }
            Operator::I32Add => {
                let (b, a) = (stack.pop()?, stack.pop()?);
                stack.push(a.wrapping_add(b));
            }
            Operator::I32Sub => {
                let (b, a) = (stack.pop()?, stack.pop()?);
                stack.push(a.wrapping_sub(b));
            }
            Operator::I32Mul => {
                let (b, a) = (stack.pop()?, stack.pop()?);
                stack.push(a.wrapping_mul(b));
            }
            Operator::End => {}
            _ => return None,
        }
    }
    match stack.as_slice() {
        [v] => Some(*v),
        _ => None,
    }
}

/// The function a `funcref` element item refers to: `Some(Some(f))` for `ref.func f`,
/// `Some(None)` for `ref.null`, `None` for any other expression.
pub fn ref_item(expr: &ConstExpr<'_>) -> Option<Option<u32>> {
    let mut reader = expr.get_operators_reader();
    let item = match reader.read().ok()? {
        Operator::RefFunc { function_index } => Some(function_index),
        Operator::RefNull { .. } => None,
        _ => return None,
    };
    match (reader.read().ok()?, reader.eof()) {
        (Operator::End, true) => Some(item),
        _ => None,
    }
}

/// Whether the program's tables can be created at their original size and its active element
/// segments applied at instantiation, as in a standalone module: true when every active
/// segment's offset is known and the segment fits its table, so applying it cannot trap.
///
/// Passive segments cost Wasmtime work at every instantiation (it evaluates them all up
/// front), for every program of the megabinary; active segments with constant function
/// indices are folded into the table's lazy initialisation at compile time. A program whose
/// segments could trap keeps the standalone behaviour instead: empty tables, grown and
/// filled by `<name>_start`, which traps where the standalone instantiation would.
pub fn eager_tables(input: &Input<'_>) -> bool {
    let globals = i32_globals(input);
    input.elements.iter().all(|e| {
        let ElementKind::Active {
            table_index,
            offset_expr,
        } = &e.kind
        else {
            return true;
        };
        let count = match &e.items {
            ElementItems::Functions(f) => f.count(),
            ElementItems::Expressions(_, x) => x.count(),
        };
        let Some(table) = input.tables.get(table_index.unwrap_or(0) as usize) else {
            return false;
        };
        eval_i32(offset_expr, &globals)
            .is_some_and(|o| u64::from(o as u32) + u64::from(count) <= table.ty.initial)
    })
}
