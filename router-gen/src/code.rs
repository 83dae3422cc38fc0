//! Small helpers for emitting function bodies.

use wasm_encoder::{Function, ValType};

/// Hands out local indices after a function's parameters and builds the final [`Function`].
#[derive(Debug)]
pub struct LocalAlloc {
    next: u32,
    decls: Vec<ValType>,
}

impl LocalAlloc {
    /// Starts after `params` parameters.
    pub fn new(params: u32) -> Self {
        LocalAlloc {
            next: params,
            decls: Vec::new(),
        }
    }

    /// Declares one more local of type `ty` and returns its index.
    pub fn add(&mut self, ty: ValType) -> u32 {
        self.decls.push(ty);
        self.next += 1;
        self.next - 1
    }

    /// Declares two adjacent `i32` scratch locals; returns the first index.
    pub fn tmp_pair(&mut self) -> u32 {
        let first = self.add(ValType::I32);
        self.add(ValType::I32);
        first
    }

    /// Wraps an already encoded body (ending in `end`) with the declared locals.
    pub fn finish(self, body: Vec<u8>) -> Function {
        let mut f = Function::new_with_locals_types(self.decls);
        f.raw(body);
        f
    }
}
