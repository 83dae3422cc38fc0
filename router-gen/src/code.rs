//! Small helpers for emitting function bodies: locals, the counted loop, array addresses and
//! the fetch of args/environ strings that the trampolines and the dispatcher share.

use crate::layout::BridgeEnv;
use wasm_encoder::{BlockType, Function, InstructionSink, ValType};

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

    /// Declares `N` more `i32` locals and returns their indices, in order.
    pub fn i32s<const N: usize>(&mut self) -> [u32; N] {
        std::array::from_fn(|_| self.add(ValType::I32))
    }

    /// Declares two adjacent `i32` scratch locals; returns the first index.
    pub fn tmp_pair(&mut self) -> u32 {
        self.i32s::<2>()[0]
    }

    /// Wraps an already encoded body (ending in `end`) with the declared locals.
    pub fn finish(self, body: Vec<u8>) -> Function {
        let mut f = Function::new_with_locals_types(self.decls);
        f.raw(body);
        f
    }
}

/// The upper bound of a [`counted_loop`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    /// The value of this local, read on every iteration.
    Local(u32),
    /// A constant.
    Const(i32),
}

/// `while i < bound { body; i += 1 }`, unsigned. `i` is not initialised here (a fresh local is
/// 0). Inside `body`, `br 1` leaves the loop and `br 0` starts the next iteration without the
/// increment.
pub(crate) fn counted_loop(
    s: &mut InstructionSink,
    i: u32,
    bound: Bound,
    body: impl FnOnce(&mut InstructionSink),
) {
    s.block(BlockType::Empty).loop_(BlockType::Empty);
    s.local_get(i);
    match bound {
        Bound::Local(n) => s.local_get(n),
        Bound::Const(n) => s.i32_const(n),
    };
    s.i32_ge_u().br_if(1);
    body(s);
    increment(s, i).br(0);
    s.end().end();
}

/// `local += 1`.
pub(crate) fn increment<'a, 'b>(
    s: &'a mut InstructionSink<'b>,
    local: u32,
) -> &'a mut InstructionSink<'b> {
    s.local_get(local).i32_const(1).i32_add().local_set(local)
}

/// Pushes the address of element `index` (a local) of the array at `base` (a local) whose
/// elements are `stride` bytes: `base + index * stride`.
pub(crate) fn elem_addr<'a, 'b>(
    s: &'a mut InstructionSink<'b>,
    base: u32,
    index: u32,
    stride: i32,
) -> &'a mut InstructionSink<'b> {
    s.local_get(base)
        .local_get(index)
        .i32_const(stride)
        .i32_mul()
        .i32_add()
}

/// Pushes the bridge byte at `base + index` (both locals).
pub(crate) fn load_byte<'a, 'b>(
    s: &'a mut InstructionSink<'b>,
    env: &BridgeEnv,
    base: u32,
    index: u32,
) -> &'a mut InstructionSink<'b> {
    s.local_get(base)
        .local_get(index)
        .i32_add()
        .i32_load8_u(env.byte(0))
}

/// Pushes `min_u(a, b)` using the two scratch locals from [`LocalAlloc::tmp_pair`].
pub(crate) fn min_u(
    s: &mut InstructionSink,
    tmp: u32,
    a: impl FnOnce(&mut InstructionSink),
    b: impl FnOnce(&mut InstructionSink),
) {
    a(s);
    s.local_tee(tmp);
    b(s);
    s.local_tee(tmp + 1)
        .local_get(tmp)
        .local_get(tmp + 1)
        .i32_lt_u()
        .select();
}

/// What [`fetch_strings`] does when the host reports an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnHostError {
    /// Return the errno from the generated function (the trampolines). The string buffer's
    /// size and address are kept in locals, for copying it out.
    Return,
    /// Go on as if there were no strings (count 0: the dispatcher).
    NoStrings,
}

/// The locals [`fetch_strings`] leaves set; all in the bridge memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strings {
    /// How many strings.
    pub count: u32,
    /// The array of pointers to them.
    pub ptrs: u32,
    /// With [`OnHostError::Return`]: `(size, address)` of the string buffer.
    pub buf: Option<(u32, u32)>,
}

/// Fetches args or environ into bridge scratch: calls `sizes` (`args_sizes_get` or
/// `environ_sizes_get`), allocates the pointer array and the string buffer, and calls `get`.
pub(crate) fn fetch_strings(
    s: &mut InstructionSink,
    l: &mut LocalAlloc,
    env: &BridgeEnv,
    (sizes, get): (u32, u32),
    on_error: OnHostError,
) -> Strings {
    let returns = on_error == OnHostError::Return;
    let sz = l.add(ValType::I32);
    let ret = returns.then(|| l.add(ValType::I32));
    let count = l.add(ValType::I32);
    let bytes = returns.then(|| l.add(ValType::I32));
    let ptrs = l.add(ValType::I32);
    let buf = returns.then(|| l.add(ValType::I32));
    // Host error: return it, or skip the rest (the block is closed at the end).
    let check = |s: &mut InstructionSink| match ret {
        Some(ret) => {
            s.local_tee(ret)
                .if_(BlockType::Empty)
                .local_get(ret)
                .return_()
                .end();
        }
        None => {
            s.i32_eqz().if_(BlockType::Empty);
        }
    };

    s.i64_const(8).call(env.alloc_func).local_set(sz);
    s.local_get(sz)
        .local_get(sz)
        .i32_const(4)
        .i32_add()
        .call(sizes);
    check(s);
    s.local_get(sz).i32_load(env.word(0)).local_set(count);
    if let Some(bytes) = bytes {
        s.local_get(sz).i32_load(env.word(4)).local_set(bytes);
    }
    s.local_get(count)
        .i64_extend_i32_u()
        .i64_const(4)
        .i64_mul()
        .call(env.alloc_func)
        .local_set(ptrs);
    match bytes.zip(buf) {
        Some((bytes, buf)) => {
            s.local_get(bytes)
                .i64_extend_i32_u()
                .call(env.alloc_func)
                .local_set(buf);
            s.local_get(ptrs).local_get(buf).call(get);
            check(s);
        }
        None => {
            s.local_get(ptrs)
                .local_get(sz)
                .i32_load(env.word(4))
                .i64_extend_i32_u()
                .call(env.alloc_func)
                .call(get)
                .if_(BlockType::Empty)
                .i32_const(0)
                .local_set(count)
                .end();
            s.end();
        }
    }
    Strings {
        count,
        ptrs,
        buf: bytes.zip(buf),
    }
}
