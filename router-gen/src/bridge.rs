//! WASI bridge trampolines.
//!
//! Stock WASI hosts read and write guest memory through the export named `memory`. In a
//! megabinary that export is the *bridge memory*; every program keeps its own memory. For each
//! WASI function a program imports, a trampoline with the same signature copies what the host
//! will read from the program's memory into the bridge memory, calls the real import with
//! bridge pointers, and on success copies back exactly what the host wrote.
//!
//! Scratch space in the bridge is bump-allocated from [`BridgeEnv::scratch_base`] on every call
//! by a shared allocator function that grows the bridge memory on demand (no fixed I/O cap).

use crate::code::{
    counted_loop, elem_addr, fetch_strings, increment, load_byte, min_u, Bound, LocalAlloc,
    OnHostError, Strings,
};
use crate::layout::HIDDEN_ENV_PREFIX;
use crate::wasi::{Param, Role, Used, WasiFunc};
use wasm_encoder::{BlockType, Function, InstructionSink, MemArg, ValType};

pub use crate::layout::BridgeEnv;

/// The core signature `(params, results)` of a WASI function.
pub fn signature(func: &WasiFunc) -> (Vec<ValType>, Vec<ValType>) {
    let params = func
        .param_is_i64()
        .map(|w| if w { ValType::I64 } else { ValType::I32 })
        .collect();
    let results = if func.returns_errno {
        vec![ValType::I32]
    } else {
        vec![]
    };
    (params, results)
}

/// The signature of the allocator: `(size: i64) -> i32`.
pub fn alloc_signature() -> (Vec<ValType>, Vec<ValType>) {
    (vec![ValType::I64], vec![ValType::I32])
}

/// Generates the bridge allocator: 8-byte aligned bump allocation from the cursor global,
/// growing the bridge memory when needed; traps when the allocation's end reaches 4 GiB (the
/// cursor, an `i32`, would wrap to 0) or growth fails.
pub fn alloc_function(env: &BridgeEnv) -> Function {
    // param 0: size (i64); locals: start (i64), end (i64). The arithmetic is 64-bit so that
    // neither the alignment nor the end wraps around 4 GiB.
    let mut f = Function::new([(2, ValType::I64)]);
    let (size, start, end) = (0, 1, 2);
    let mut s = f.instructions();
    s.global_get(env.cursor_global)
        .i64_extend_i32_u()
        .i64_const(7)
        .i64_add()
        .i64_const(-8)
        .i64_and()
        .local_tee(start)
        .local_get(size)
        .i64_add()
        .local_tee(end)
        // An end of 4 GiB or more would wrap the i32 cursor (to 0 for exactly 4 GiB, where the
        // dispatcher's static data lives).
        .i64_const(1 << 32)
        .i64_ge_u()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        // if end > memory.size * 64Ki: grow by ceil((end - current) / 64Ki) pages
        .local_get(end)
        .memory_size(env.memory)
        .i64_extend_i32_u()
        .i64_const(16)
        .i64_shl()
        .i64_gt_u()
        .if_(BlockType::Empty)
        .local_get(end)
        .memory_size(env.memory)
        .i64_extend_i32_u()
        .i64_const(16)
        .i64_shl()
        .i64_sub()
        .i64_const(0xffff)
        .i64_add()
        .i64_const(16)
        .i64_shr_u()
        .i32_wrap_i64()
        .memory_grow(env.memory)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end()
        .local_get(end)
        .i32_wrap_i64()
        .global_set(env.cursor_global)
        .local_get(start)
        .i32_wrap_i64()
        .end();
    f
}

/// Generates the trampoline of `func` for a program whose memory is `entry_memory`.
///
/// `import` is the function index of the real WASI import; `sizes_import` is the index of its
/// [`WasiFunc::sizes_from`] companion, required for the roles that have one ([`Role::companion`]:
/// `args_get`, `environ_get` and `environ_sizes_get`).
pub fn trampoline(
    func: &WasiFunc,
    entry_memory: u32,
    import: u32,
    sizes_import: Option<u32>,
    env: &BridgeEnv,
) -> Function {
    let mut locals = LocalAlloc::new(func.params.len() as u32);
    let mut body = Vec::new();
    let mut s = InstructionSink::new(&mut body);
    let g = Gen {
        env,
        entry: entry_memory,
    };
    s.i32_const(env.scratch_base as i32)
        .global_set(env.cursor_global);
    let companion = || sizes_import.expect("the companion import of this role");
    match func.role {
        Role::EnvironSizesGet => g.environ_sizes(&mut s, &mut locals, import, companion()),
        Role::ArgsGet => g.pointer_array_call(&mut s, &mut locals, import, companion(), false),
        Role::EnvironGet => g.pointer_array_call(&mut s, &mut locals, import, companion(), true),
        Role::Plain | Role::ProcExit => g.bridged_call(&mut s, &mut locals, func, import),
    }
    locals.finish(body)
}

/// How many functions the environment cache adds ([`stash_environ`],
/// [`environ_sizes_cached`], [`environ_get_cached`]).
pub const ENVIRON_HELPERS: u32 = 3;

/// A 4-byte aligned access to memory `memory` at `offset`.
fn word_of(memory: u32, offset: u64) -> MemArg {
    MemArg {
        offset,
        align: 2,
        memory_index: memory,
    }
}

/// `()`: the environment cache of programs that use the exported memory 0 as their own (their
/// environ functions cannot use bridge scratch: every byte of memory 0 is theirs). Called by
/// their start function before activation, while memory 0 may still be used as scratch: fetches
/// the environment into bridge scratch (from the current cursor, not reset, so that the
/// activation erases it too) and copies every variable but `MEGABIN_ENTRY=…`, packed, to
/// `cache` (a private memory): `{count: u32, bytes: u32}` then the strings, NUL-terminated.
/// WASI preview1's environment does not change during a run, so the cache is exact. A host
/// error reads as an empty environment.
pub fn stash_environ(env: &BridgeEnv, cache: u32, sizes: u32, get: u32) -> Function {
    let mut locals = LocalAlloc::new(0);
    let mut body = Vec::new();
    let s = &mut InstructionSink::new(&mut body);
    let g = Gen {
        env,
        entry: env.memory,
    };
    let strings = crate::code::fetch_strings(
        s,
        &mut locals,
        env,
        (sizes, get),
        crate::code::OnHostError::NoStrings,
    );
    let [j, k, off, str_, hidden, len, need] = locals.i32s();
    // room for the header
    s.i32_const(8).local_set(need);
    grow_to_or_trap(s, cache, need);
    counted_loop(s, j, Bound::Local(strings.count), |s| {
        g.load_string(s, strings.ptrs, j, str_);
        g.is_hidden(s, &mut locals, str_, hidden);
        s.local_get(hidden).i32_eqz().if_(BlockType::Empty);
        g.strlen(s, str_, len);
        // grow the cache to 8 + off + len bytes
        s.local_get(off)
            .i32_const(8)
            .i32_add()
            .local_get(len)
            .i32_add()
            .local_set(need);
        grow_to_or_trap(s, cache, need);
        s.local_get(off)
            .i32_const(8)
            .i32_add()
            .local_get(str_)
            .local_get(len)
            .memory_copy(cache, env.memory);
        increment(s, k);
        s.local_get(off).local_get(len).i32_add().local_set(off);
        s.end();
    });
    s.i32_const(0)
        .local_get(k)
        .i32_store(word_of(cache, 0))
        .i32_const(0)
        .local_get(off)
        .i32_store(word_of(cache, 4))
        .end();
    locals.finish(body)
}

/// Grows `memory` until it holds the number of bytes in local `need` (an `i32`), trapping when
/// it cannot grow.
fn grow_to_or_trap(s: &mut InstructionSink, memory: u32, need: u32) {
    let size_in_bytes = |s: &mut InstructionSink| {
        s.memory_size(memory).i32_const(16).i32_shl();
    };
    s.local_get(need);
    size_in_bytes(s);
    s.i32_gt_u().if_(BlockType::Empty).local_get(need);
    size_in_bytes(s);
    s.i32_sub()
        .i32_const(0xffff)
        .i32_add()
        .i32_const(16)
        .i32_shr_u()
        .memory_grow(memory)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end();
}

/// `environ_sizes_get(count_ptr, bytes_ptr) -> errno` of a program on memory 0, from the
/// cache [`stash_environ`] filled.
pub fn environ_sizes_cached(env: &BridgeEnv, cache: u32) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .local_get(0)
        .i32_const(0)
        .i32_load(word_of(cache, 0))
        .i32_store(env.word(0))
        .local_get(1)
        .i32_const(0)
        .i32_load(word_of(cache, 4))
        .i32_store(env.word(0))
        .i32_const(0)
        .end();
    f
}

/// `environ_get(ptrs, buf) -> errno` of a program on memory 0, from the cache
/// [`stash_environ`] filled: copies the strings to `buf` and points `ptrs[j]` at each.
pub fn environ_get_cached(env: &BridgeEnv, cache: u32) -> Function {
    let (ptrs, buf) = (0, 1);
    let mut locals = LocalAlloc::new(2);
    let [count, j, off] = locals.i32s();
    let mut body = Vec::new();
    let s = &mut InstructionSink::new(&mut body);
    s.i32_const(0)
        .i32_load(word_of(cache, 0))
        .local_set(count)
        .local_get(buf)
        .i32_const(8)
        .i32_const(0)
        .i32_load(word_of(cache, 4))
        .memory_copy(env.memory, cache);
    counted_loop(s, j, Bound::Local(count), |s| {
        elem_addr(s, ptrs, j, 4)
            .local_get(buf)
            .local_get(off)
            .i32_add()
            .i32_store(env.word(0));
        // off += strlen + 1 (the NUL), reading the cache
        s.block(BlockType::Empty).loop_(BlockType::Empty);
        s.local_get(off).i32_load8_u(MemArg {
            offset: 8,
            align: 0,
            memory_index: cache,
        });
        increment(s, off);
        s.i32_eqz().br_if(1).br(0);
        s.end().end();
    });
    s.i32_const(0).end();
    locals.finish(body)
}

struct Gen<'a> {
    env: &'a BridgeEnv,
    entry: u32,
}

/// Which way [`Gen::copy`] copies.
#[derive(Clone, Copy)]
enum Way {
    /// From the entry's memory to the bridge.
    In,
    /// From the bridge to the entry's memory.
    Out,
}

impl Gen<'_> {
    /// A 4-byte aligned access to the entry's memory at `offset`.
    fn entry_word(&self, offset: u64) -> MemArg {
        MemArg {
            offset,
            align: 2,
            memory_index: self.entry,
        }
    }

    /// The whole body of a trampoline whose parameters are bridged by their kinds: copy in,
    /// call, and on success copy back what the host wrote.
    fn bridged_call(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        func: &WasiFunc,
        import: u32,
    ) {
        let bridged = self.bridge_params(s, locals, func.params);
        for (i, b) in bridged.iter().enumerate() {
            s.local_get(b.unwrap_or(i as u32));
        }
        s.call(import);
        if !func.returns_errno {
            s.unreachable().end();
            return;
        }
        let ret = locals.add(ValType::I32);
        let tmp = locals.tmp_pair();
        s.local_tee(ret).i32_eqz().if_(BlockType::Empty);
        self.copy_back(s, locals, func.params, &bridged, tmp);
        s.end().local_get(ret).end();
    }

    /// Allocates the bridge side of every pointer parameter and copies in what the host will
    /// read; returns the local holding each bridge pointer (`None` for values).
    fn bridge_params(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        params: &[Param],
    ) -> Vec<Option<u32>> {
        let mut bridged: Vec<Option<u32>> = vec![None; params.len()];
        for (i, p) in params.iter().enumerate() {
            let param = i as u32;
            let b = match *p {
                Param::I32 | Param::I64 | Param::Len => continue,
                Param::InBytes { len } | Param::InOutBytes { len } => {
                    let b = self.alloc_local(s, locals, |s| {
                        s.local_get(len as u32).i64_extend_i32_u();
                    });
                    self.copy(s, Way::In, b, param, |s| {
                        s.local_get(len as u32);
                    });
                    b
                }
                Param::OutBytes { len, .. } => self.alloc_local(s, locals, |s| {
                    s.local_get(len as u32).i64_extend_i32_u();
                }),
                Param::Out { size } => {
                    let b = self.alloc_local(s, locals, |s| {
                        s.i64_const(size as i64);
                    });
                    self.copy(s, Way::In, b, param, |s| {
                        s.i32_const(size as i32);
                    });
                    b
                }
                Param::InArray { elem, count } | Param::OutArray { elem, count, .. } => {
                    let count = count as u32;
                    let b = self.alloc_local(s, locals, |s| {
                        s.local_get(count)
                            .i64_extend_i32_u()
                            .i64_const(elem as i64)
                            .i64_mul();
                    });
                    if matches!(p, Param::InArray { .. }) {
                        self.copy(s, Way::In, b, param, |s| {
                            s.local_get(count).i32_const(elem as i32).i32_mul();
                        });
                    }
                    b
                }
                Param::InIovs { count } | Param::OutIovs { count, .. } => {
                    let copy_data = matches!(p, Param::InIovs { .. });
                    self.iovs_in(s, locals, param, count as u32, copy_data)
                }
                Param::PtrArray | Param::StrBuf => unreachable!("handled by pointer_array_call"),
            };
            bridged[i] = Some(b);
        }
        bridged
    }

    /// After a successful call: copies back to the entry what the host wrote through each
    /// bridged parameter (`tmp`: a [`LocalAlloc::tmp_pair`]).
    fn copy_back(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        params: &[Param],
        bridged: &[Option<u32>],
        tmp: u32,
    ) {
        let used_at = |u: usize| bridged[u].expect("used is an out param");
        // Pushes the u32 the host wrote through out-parameter `u`.
        let load_used = |s: &mut InstructionSink, u: usize| {
            s.local_get(used_at(u)).i32_load(self.env.word(0));
        };
        for (i, p) in params.iter().enumerate() {
            let Some(b) = bridged[i] else { continue };
            let dst = i as u32;
            match *p {
                Param::Out { size } => self.copy(s, Way::Out, dst, b, |s| {
                    s.i32_const(size as i32);
                }),
                Param::InOutBytes { len } => self.copy(s, Way::Out, dst, b, |s| {
                    s.local_get(len as u32);
                }),
                Param::OutBytes { len, used } => self.copy(s, Way::Out, dst, b, |s| match used {
                    Used::All => {
                        s.local_get(len as u32);
                    }
                    Used::Param(u) => {
                        let capacity = |s: &mut InstructionSink| {
                            s.local_get(len as u32);
                        };
                        min_u(s, tmp, capacity, |s| load_used(s, u));
                    }
                }),
                Param::OutArray { elem, count, used } => self.copy(s, Way::Out, dst, b, |s| {
                    // min(used, count) records: never more than the caller's array holds
                    min_u(
                        s,
                        tmp,
                        |s| load_used(s, used),
                        |s| {
                            s.local_get(count as u32);
                        },
                    );
                    s.i32_const(elem as i32).i32_mul();
                }),
                Param::OutIovs { count, used } => {
                    self.iovs_out(s, locals, dst, b, count as u32, used_at(used))
                }
                _ => {}
            }
        }
    }

    /// `local = alloc(size)`; `size` pushes an i64.
    fn alloc_local(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        size: impl FnOnce(&mut InstructionSink),
    ) -> u32 {
        let l = locals.add(ValType::I32);
        size(s);
        s.call(self.env.alloc_func).local_set(l);
        l
    }

    /// Copies `len` bytes from the pointer in local `src` to the pointer in local `dst`: from
    /// the entry's memory to the bridge ([`Way::In`]) or back ([`Way::Out`]).
    fn copy(
        &self,
        s: &mut InstructionSink,
        way: Way,
        dst: u32,
        src: u32,
        len: impl FnOnce(&mut InstructionSink),
    ) {
        s.local_get(dst).local_get(src);
        len(s);
        match way {
            Way::In => s.memory_copy(self.env.memory, self.entry),
            Way::Out => s.memory_copy(self.entry, self.env.memory),
        };
    }

    /// Copies an iovec array (pointer param `p`, count param `count`) into the bridge, with a
    /// bridge buffer for each element (filled from the entry when `copy_data`); returns the
    /// local holding the bridge array.
    fn iovs_in(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        p: u32,
        count: u32,
        copy_data: bool,
    ) -> u32 {
        let arr = self.alloc_local(s, locals, |s| {
            s.local_get(count).i64_extend_i32_u().i64_const(8).i64_mul();
        });
        self.copy(s, Way::In, arr, p, |s| {
            s.local_get(count).i32_const(8).i32_mul();
        });
        let [j, addr, buf] = locals.i32s();
        let word = |offset| self.env.word(offset);
        s.i32_const(0).local_set(j);
        counted_loop(s, j, Bound::Local(count), |s| {
            elem_addr(s, arr, j, 8).local_set(addr);
            s.local_get(addr)
                .i32_load(word(4))
                .i64_extend_i32_u()
                .call(self.env.alloc_func)
                .local_set(buf);
            if copy_data {
                // Empty iovecs are skipped, as wasmtime-wasi does: their pointer is never checked.
                s.local_get(addr)
                    .i32_load(word(4))
                    .if_(BlockType::Empty)
                    .local_get(buf)
                    .local_get(addr)
                    .i32_load(word(0))
                    .local_get(addr)
                    .i32_load(word(4))
                    .memory_copy(self.env.memory, self.entry)
                    .end();
            }
            s.local_get(addr).local_get(buf).i32_store(word(0));
        });
        arr
    }

    /// After a successful read: scatters the `u32` byte count at bridge local `used` back into
    /// the entry's iovec buffers, in order.
    fn iovs_out(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        p: u32,
        arr: u32,
        count: u32,
        used: u32,
    ) {
        let [j, rem, n, addr] = locals.i32s();
        let tmp = locals.tmp_pair();
        let word = |offset| self.env.word(offset);
        s.local_get(used).i32_load(word(0)).local_set(rem);
        s.i32_const(0).local_set(j);
        counted_loop(s, j, Bound::Local(count), |s| {
            s.local_get(rem).i32_eqz().br_if(1);
            elem_addr(s, arr, j, 8).local_set(addr);
            let buf_len = |s: &mut InstructionSink| {
                s.local_get(addr).i32_load(word(4));
            };
            min_u(s, tmp, buf_len, |s| {
                s.local_get(rem);
            });
            s.local_set(n);
            // Empty iovecs are skipped, as wasmtime-wasi does: their pointer is never checked.
            s.local_get(n).if_(BlockType::Empty);
            // dst: the entry's original buffer pointer, read from its own iovec array
            elem_addr(s, p, j, 8)
                .i32_load(self.entry_word(0))
                .local_get(addr)
                .i32_load(word(0))
                .local_get(n)
                .memory_copy(self.entry, self.env.memory);
            s.end();
            s.local_get(rem).local_get(n).i32_sub().local_set(rem);
        });
    }

    /// [`fetch_strings`] for a trampoline: a host error is returned from it.
    fn fetch_strings(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        sizes: u32,
        get: u32,
    ) -> (Strings, (u32, u32)) {
        let strings = fetch_strings(s, locals, self.env, (sizes, get), OnHostError::Return);
        let buf = strings.buf.expect("kept by OnHostError::Return");
        (strings, buf)
    }

    /// Sets `hidden` to whether the bridge string at `str_` is a `MEGABIN_ENTRY=` variable.
    fn is_hidden(&self, s: &mut InstructionSink, locals: &mut LocalAlloc, str_: u32, hidden: u32) {
        let (addr, len) = HIDDEN_ENV_PREFIX;
        let i = locals.add(ValType::I32);
        s.i32_const(1).local_set(hidden).i32_const(0).local_set(i);
        counted_loop(s, i, Bound::Const(len as i32), |s| {
            load_byte(s, self.env, str_, i)
                .local_get(i)
                .i32_load8_u(self.env.byte(addr as u64))
                .i32_ne()
                .if_(BlockType::Empty)
                .i32_const(0)
                .local_set(hidden)
                .br(2)
                .end();
        });
    }

    /// Sets `len` to the length of the bridge string at `str_` including its NUL.
    fn strlen(&self, s: &mut InstructionSink, str_: u32, len: u32) {
        s.i32_const(0).local_set(len);
        s.block(BlockType::Empty).loop_(BlockType::Empty);
        load_byte(s, self.env, str_, len)
            .local_get(len)
            .i32_const(1)
            .i32_add()
            .local_set(len)
            .i32_eqz()
            .br_if(1)
            .br(0);
        s.end().end();
    }

    /// Loads the `j`-th pointer of the bridge pointer array `ptrs` into `str_`.
    fn load_string(&self, s: &mut InstructionSink, ptrs: u32, j: u32, str_: u32) {
        elem_addr(s, ptrs, j, 4)
            .i32_load(self.env.word(0))
            .local_set(str_);
    }

    /// `environ_sizes_get` with the dispatcher's `MEGABIN_ENTRY` variable left out.
    fn environ_sizes(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        sizes: u32,
        get: u32,
    ) {
        let (strings, (bytes, _)) = self.fetch_strings(s, locals, sizes, get);
        let count = strings.count;
        let [j, n, str_, hidden, len] = locals.i32s();
        s.local_get(count).local_set(n);
        counted_loop(s, j, Bound::Local(n), |s| {
            self.load_string(s, strings.ptrs, j, str_);
            self.is_hidden(s, locals, str_, hidden);
            s.local_get(hidden).if_(BlockType::Empty);
            self.strlen(s, str_, len);
            s.local_get(count).i32_const(1).i32_sub().local_set(count);
            s.local_get(bytes).local_get(len).i32_sub().local_set(bytes);
            s.end();
        });
        s.local_get(0)
            .local_get(count)
            .i32_store(self.entry_word(0));
        s.local_get(1)
            .local_get(bytes)
            .i32_store(self.entry_word(0));
        s.i32_const(0).end();
    }

    /// `args_get` / `environ_get`: learn the sizes, let the host fill bridge buffers, copy the
    /// strings to the entry's buffer and rebase every pointer into it. For `environ_get`
    /// (`hide`), the dispatcher's `MEGABIN_ENTRY` variable is left out, consistently with
    /// [`Gen::environ_sizes`].
    fn pointer_array_call(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        import: u32,
        sizes: u32,
        hide: bool,
    ) {
        let (strings, buf) = self.fetch_strings(s, locals, sizes, import);
        let j = locals.add(ValType::I32);
        if hide {
            self.copy_visible_strings(s, locals, strings, j);
        } else {
            self.copy_strings(s, strings, buf, j);
        }
        s.i32_const(0).end();
    }

    /// Copies the whole bridge string buffer to the entry's (parameter 1) and rebases each
    /// pointer into the entry's pointer array (parameter 0); `j` is a fresh local.
    fn copy_strings(&self, s: &mut InstructionSink, strings: Strings, buf: (u32, u32), j: u32) {
        let (ptrs, entry_buf) = (0u32, 1u32);
        let (bytes, bbuf) = buf;
        self.copy(s, Way::Out, entry_buf, bbuf, |s| {
            s.local_get(bytes);
        });
        counted_loop(s, j, Bound::Local(strings.count), |s| {
            // entry_ptrs[j] = bridge_ptrs[j] - bbuf + buf
            elem_addr(s, ptrs, j, 4);
            elem_addr(s, strings.ptrs, j, 4)
                .i32_load(self.env.word(0))
                .local_get(bbuf)
                .i32_sub()
                .local_get(entry_buf)
                .i32_add()
                .i32_store(self.entry_word(0));
        });
    }

    /// As [`Gen::copy_strings`], one string at a time, leaving `MEGABIN_ENTRY=…` out; `j` is a
    /// fresh local.
    fn copy_visible_strings(
        &self,
        s: &mut InstructionSink,
        locals: &mut LocalAlloc,
        strings: Strings,
        j: u32,
    ) {
        let (ptrs, buf) = (0u32, 1u32);
        let [k, off, str_, hidden, len] = locals.i32s();
        counted_loop(s, j, Bound::Local(strings.count), |s| {
            self.load_string(s, strings.ptrs, j, str_);
            self.is_hidden(s, locals, str_, hidden);
            s.local_get(hidden).i32_eqz().if_(BlockType::Empty);
            self.strlen(s, str_, len);
            // entry_buf[off..off+len] = string; entry_ptrs[k] = buf + off
            s.local_get(buf)
                .local_get(off)
                .i32_add()
                .local_get(str_)
                .local_get(len)
                .memory_copy(self.entry, self.env.memory);
            elem_addr(s, ptrs, k, 4)
                .local_get(buf)
                .local_get(off)
                .i32_add()
                .i32_store(self.entry_word(0));
            increment(s, k);
            s.local_get(off).local_get(len).i32_add().local_set(off);
            s.end();
        });
    }
}
