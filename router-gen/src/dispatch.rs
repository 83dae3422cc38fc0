//! The dispatcher of a megabinary.
//!
//! Its routing tables and messages are static data at the start of the bridge memory, laid
//! out by this crate's private `layout` module. Generated functions ([`DispatchFunc`]):
//!
//! - `_start`: picks the program from `MEGABIN_ENTRY=sha256:<64 hex>` in the environment, else
//!   from the basename of `argv[0]`; unknown → a message on stderr and exit code 127;
//! - `megabin_dispatch(ptr) -> i32`: runs the program whose 32-byte digest is at `ptr` in the
//!   bridge memory, or returns 1 without running anything.

use crate::code::{
    counted_loop, elem_addr, fetch_strings, load_byte, Bound, LocalAlloc, OnHostError,
};
use crate::layout::{BridgeEnv, Span, StaticLayout, RECORD_SIZE, STATIC_BASE};
use crate::names;
use wasm_encoder::{BlockType, Function, InstructionSink, ValType};

pub use crate::layout::{RouteEntry, RouteError, HIDDEN_ENV_PREFIX};
pub use crate::names::ENTRY_ENV;

/// Exit code of `_start` when no program matches (as shells use for "not found").
pub use megabin_format::exit::NOT_FOUND as EXIT_NOT_FOUND;

/// Function indices of the WASI imports the dispatcher calls.
#[derive(Clone, Copy, Debug)]
pub struct DispatchImports {
    /// `fd_write`, for messages on stderr.
    pub fd_write: u32,
    /// `proc_exit`, to exit with [`EXIT_NOT_FOUND`].
    pub proc_exit: u32,
    /// `args_sizes_get`, for `argv[0]`.
    pub args_sizes_get: u32,
    /// `args_get`, for `argv[0]`.
    pub args_get: u32,
    /// `environ_sizes_get`, for `MEGABIN_ENTRY`.
    pub environ_sizes_get: u32,
    /// `environ_get`, for `MEGABIN_ENTRY`.
    pub environ_get: u32,
}

/// A generated function: its name (for the name section), signature, body and export name.
#[derive(Debug)]
pub struct GenFunc {
    /// Name-section name (`megabin::<name>`).
    pub name: String,
    /// Parameter types.
    pub params: Vec<ValType>,
    /// Result types.
    pub results: Vec<ValType>,
    /// The body.
    pub body: Function,
    /// Export name, if exported.
    pub export: Option<&'static str>,
}

/// The dispatcher's functions, in the order [`Router::functions`] places them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchFunc {
    /// `(ptr, len)`: writes bridge bytes to stderr.
    Message,
    /// `(a, alen, b, blen) -> -1 | 0 | 1`, lexicographic over bytes.
    Memcmp,
    /// `(table, count, key, keylen) -> entry | -1`: binary search of a routing table.
    Search,
    /// `(src, dst) -> ok`: parses 64 hex digits into 32 bytes.
    Unhex,
    /// `(entry)`: runs entry `entry`'s start function.
    RunEntry,
    /// `megabin_dispatch(ptr) -> i32`.
    Dispatch,
    /// `_start`.
    Start,
    /// `(min_pages)`: activates a program whose memory 0 is the exported memory (see
    /// [`DispatchFunc::ActivateShared`]'s generator): refuses a second activation, erases
    /// what the dispatcher left in the exported memory and grows it to `min_pages`.
    ActivateShared,
    /// `()`: activates a bridged program; refuses it after a program that used the exported
    /// memory as its own.
    ActivateBridged,
}

use ValType::I32;

impl DispatchFunc {
    /// Every dispatcher function, in order.
    pub const ALL: [DispatchFunc; 9] = [
        DispatchFunc::Message,
        DispatchFunc::Memcmp,
        DispatchFunc::Search,
        DispatchFunc::Unhex,
        DispatchFunc::RunEntry,
        DispatchFunc::Dispatch,
        DispatchFunc::Start,
        DispatchFunc::ActivateShared,
        DispatchFunc::ActivateBridged,
    ];
    /// How many functions the dispatcher has.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Its index relative to the first dispatcher function.
    pub const fn offset(self) -> u32 {
        self as u32
    }

    /// Its name, without the `megabin::` prefix ([`names::internal`]).
    pub fn name(self) -> &'static str {
        match self {
            DispatchFunc::Message => "message",
            DispatchFunc::Memcmp => "memcmp",
            DispatchFunc::Search => "search",
            DispatchFunc::Unhex => "unhex",
            DispatchFunc::RunEntry => "run_entry",
            DispatchFunc::Dispatch => "dispatch",
            DispatchFunc::Start => "start",
            DispatchFunc::ActivateShared => "activate_shared",
            DispatchFunc::ActivateBridged => "activate_bridged",
        }
    }

    /// Its core signature `(params, results)`.
    pub fn signature(self) -> (Vec<ValType>, Vec<ValType>) {
        match self {
            DispatchFunc::Message => (vec![I32, I32], vec![]),
            DispatchFunc::Memcmp | DispatchFunc::Search => (vec![I32; 4], vec![I32]),
            DispatchFunc::Unhex => (vec![I32, I32], vec![I32]),
            DispatchFunc::RunEntry | DispatchFunc::ActivateShared => (vec![I32], vec![]),
            DispatchFunc::Dispatch => (vec![I32], vec![I32]),
            DispatchFunc::Start | DispatchFunc::ActivateBridged => (vec![], vec![]),
        }
    }

    /// Its export name, if exported.
    pub fn export(self) -> Option<&'static str> {
        match self {
            DispatchFunc::Dispatch => Some(names::DISPATCH_EXPORT),
            DispatchFunc::Start => Some(names::START_EXPORT),
            _ => None,
        }
    }
}

/// The laid-out routing tables and messages.
#[derive(Debug)]
pub struct Router {
    layout: StaticLayout,
}

impl Router {
    /// Number of functions [`Router::functions`] generates ([`DispatchFunc::COUNT`]).
    pub const FUNCS: u32 = DispatchFunc::COUNT;

    /// Index of the message function among [`Router::functions`] (`(ptr, len) -> ()`).
    pub const MESSAGE: u32 = DispatchFunc::Message.offset();
    /// Index of [`DispatchFunc::ActivateShared`] among [`Router::functions`].
    pub const ACTIVATE_SHARED: u32 = DispatchFunc::ActivateShared.offset();
    /// Index of [`DispatchFunc::ActivateBridged`] among [`Router::functions`].
    pub const ACTIVATE_BRIDGED: u32 = DispatchFunc::ActivateBridged.offset();

    /// Lays out the routing tables for `entries` (entry `k` is started by the k-th start
    /// function given to [`Router::functions`]).
    pub fn new(entries: &[RouteEntry]) -> Result<Self, RouteError> {
        Ok(Router {
            layout: StaticLayout::new(entries)?,
        })
    }

    /// Bridge address of the static data.
    pub fn static_base(&self) -> u32 {
        STATIC_BASE
    }

    /// The static data (tables and messages), to place at [`Router::static_base`].
    pub fn static_bytes(&self) -> &[u8] {
        &self.layout.bytes
    }

    /// First bridge address free for scratch use.
    pub fn scratch_base(&self) -> u32 {
        self.layout.scratch_base()
    }

    /// `(ptr, len)` in the bridge of the "already started" message of entry `k`.
    pub fn started_message(&self, k: usize) -> (u32, u32) {
        self.layout.msgs.started[k]
    }

    /// Address and length of the message that the arguments and environment reached the
    /// data of a lone program whose data stays active (printed before its start traps).
    pub fn reached_data_message(&self) -> (u32, u32) {
        self.layout.msgs.reached_data
    }

    /// Generates the dispatcher functions ([`DispatchFunc::ALL`]), to be placed at
    /// `first..first + FUNCS`; `starts[k]` is the function index that starts entry `k`.
    pub fn functions(
        &self,
        first: u32,
        imports: &DispatchImports,
        env: &BridgeEnv,
        starts: &[u32],
    ) -> Vec<GenFunc> {
        assert_eq!(starts.len() as u32, self.layout.entries);
        let g = Gen {
            layout: &self.layout,
            first,
            imp: imports,
            env,
        };
        DispatchFunc::ALL
            .iter()
            .map(|&func| g.function(func, starts))
            .collect()
    }
}

struct Gen<'a> {
    layout: &'a StaticLayout,
    first: u32,
    imp: &'a DispatchImports,
    env: &'a BridgeEnv,
}

impl Gen<'_> {
    fn function(&self, func: DispatchFunc, starts: &[u32]) -> GenFunc {
        let (params, results) = func.signature();
        let mut locals = LocalAlloc::new(params.len() as u32);
        let mut body = Vec::new();
        let s = &mut InstructionSink::new(&mut body);
        let l = &mut locals;
        match func {
            DispatchFunc::Message => self.message(s, l),
            DispatchFunc::Memcmp => self.memcmp(s, l),
            DispatchFunc::Search => self.search(s, l),
            DispatchFunc::Unhex => self.unhex(s, l),
            DispatchFunc::RunEntry => run_entry(s, starts),
            DispatchFunc::Dispatch => self.dispatch(s, l),
            DispatchFunc::Start => self.start(s, l),
            DispatchFunc::ActivateShared => self.activate_shared(s),
            DispatchFunc::ActivateBridged => self.activate_bridged(s),
        }
        GenFunc {
            name: names::internal(func.name()),
            params,
            results,
            body: locals.finish(body),
            export: func.export(),
        }
    }

    /// The function index of `func`.
    fn f(&self, func: DispatchFunc) -> u32 {
        self.first + func.offset()
    }

    /// Writes `(ptr, len)` of the bridge to stderr.
    fn message(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        let iov = l.add(I32);
        s.i64_const(16).call(self.env.alloc_func).local_set(iov);
        s.local_get(iov).local_get(0).i32_store(self.env.word(0));
        s.local_get(iov).local_get(1).i32_store(self.env.word(4));
        s.i32_const(2)
            .local_get(iov)
            .i32_const(1)
            .local_get(iov)
            .i32_const(8)
            .i32_add()
            .call(self.imp.fd_write)
            .drop()
            .end();
    }

    /// `(a, alen, b, blen) -> -1 | 0 | 1`, lexicographic over bytes.
    fn memcmp(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        let (a, alen, b, blen) = (0, 1, 2, 3);
        let [i, n, x, y] = l.i32s();
        s.local_get(alen)
            .local_get(blen)
            .local_get(alen)
            .local_get(blen)
            .i32_lt_u()
            .select()
            .local_set(n);
        counted_loop(s, i, Bound::Local(n), |s| {
            load_byte(s, self.env, a, i).local_set(x);
            load_byte(s, self.env, b, i).local_set(y);
            s.local_get(x).local_get(y).i32_ne().if_(BlockType::Empty);
            s.i32_const(-1)
                .i32_const(1)
                .local_get(x)
                .local_get(y)
                .i32_lt_u()
                .select()
                .return_()
                .end();
        });
        // equal prefix: the shorter sorts first
        s.local_get(alen)
            .local_get(blen)
            .i32_gt_u()
            .local_get(alen)
            .local_get(blen)
            .i32_lt_u()
            .i32_sub()
            .end();
    }

    /// `(table, count, key, keylen) -> entry | -1`: binary search over the records.
    fn search(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        let (table, count, key, keylen) = (0, 1, 2, 3);
        let [lo, hi, mid, rec, c] = l.i32s();
        s.local_get(count).local_set(hi);
        s.block(BlockType::Empty).loop_(BlockType::Empty);
        s.local_get(lo).local_get(hi).i32_ge_u().br_if(1);
        s.local_get(lo)
            .local_get(hi)
            .i32_add()
            .i32_const(1)
            .i32_shr_u()
            .local_tee(mid)
            .i32_const(RECORD_SIZE as i32)
            .i32_mul()
            .local_get(table)
            .i32_add()
            .local_set(rec);
        s.local_get(rec)
            .i32_load(self.env.word(0))
            .local_get(rec)
            .i32_load(self.env.word(4))
            .local_get(key)
            .local_get(keylen)
            .call(self.f(DispatchFunc::Memcmp))
            .local_tee(c)
            .i32_eqz()
            .if_(BlockType::Empty)
            .local_get(rec)
            .i32_load(self.env.word(8))
            .return_()
            .end();
        s.local_get(c).i32_const(0).i32_lt_s().if_(BlockType::Empty);
        s.local_get(mid).i32_const(1).i32_add().local_set(lo);
        s.else_().local_get(mid).local_set(hi).end();
        s.br(0).end().end();
        s.i32_const(-1).end();
    }

    /// `(src, dst) -> ok`: parses 64 hex digits at `src` into 32 bytes at `dst`.
    fn unhex(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        let (src, dst) = (0, 1);
        let [i, c, v, acc] = l.i32s();
        counted_loop(s, i, Bound::Const(64), |s| {
            load_byte(s, self.env, src, i).local_set(c);
            // digit?
            s.local_get(c)
                .i32_const(48)
                .i32_sub()
                .local_tee(v)
                .i32_const(10)
                .i32_ge_u();
            s.if_(BlockType::Empty);
            s.local_get(c)
                .i32_const(32)
                .i32_or()
                .i32_const(97)
                .i32_sub()
                .local_tee(v)
                .i32_const(6)
                .i32_ge_u()
                .if_(BlockType::Empty)
                .i32_const(0)
                .return_()
                .end();
            s.local_get(v).i32_const(10).i32_add().local_set(v);
            s.end();
            s.local_get(i).i32_const(1).i32_and().if_(BlockType::Empty);
            s.local_get(dst)
                .local_get(i)
                .i32_const(1)
                .i32_shr_u()
                .i32_add()
                .local_get(acc)
                .i32_const(4)
                .i32_shl()
                .local_get(v)
                .i32_or()
                .i32_store8(self.env.byte(0));
            s.else_().local_get(v).local_set(acc).end();
        });
        s.i32_const(1).end();
    }

    /// `megabin_dispatch(ptr) -> i32`. The host's digest is erased once found: the program
    /// may use the exported memory as its own. A digest not within the first [`STATIC_BASE`]
    /// bytes (the host's) is refused with 2: it could lie in a program's data, which erasing
    /// it would change.
    fn dispatch(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        self.refuse_after_shared(s);
        s.local_get(0)
            .i32_const(STATIC_BASE as i32 - 32)
            .i32_gt_u()
            .if_(BlockType::Empty)
            .i32_const(2)
            .return_()
            .end();
        let id = l.add(I32);
        self.search_digest(s, 0, id);
        s.i32_const(1).return_().end();
        s.local_get(0)
            .i32_const(0)
            .i32_const(32)
            .memory_fill(self.env.memory);
        s.local_get(id)
            .call(self.f(DispatchFunc::RunEntry))
            .i32_const(0)
            .end();
    }

    /// Searches the digest table for the 32 bytes at local `key` into local `id` and opens an
    /// `if` taken when it is not found.
    fn search_digest(&self, s: &mut InstructionSink, key: u32, id: u32) {
        s.i32_const(self.layout.digests.at as i32)
            .i32_const(self.layout.digests.len as i32)
            .local_get(key)
            .i32_const(32)
            .call(self.f(DispatchFunc::Search))
            .local_tee(id)
            .i32_const(0)
            .i32_lt_s()
            .if_(BlockType::Empty);
    }

    /// With a bridge string's address pushed: compares its first bytes with the static
    /// `prefix` (`memcmp`, 0 when equal).
    fn compare_prefix<'a, 'b>(
        &self,
        s: &'a mut InstructionSink<'b>,
        (ptr, len): Span,
    ) -> &'a mut InstructionSink<'b> {
        s.i32_const(len as i32)
            .i32_const(ptr as i32)
            .i32_const(len as i32)
            .call(self.f(DispatchFunc::Memcmp))
    }

    fn say(&self, s: &mut InstructionSink, (ptr, len): Span) {
        s.i32_const(ptr as i32)
            .i32_const(len as i32)
            .call(self.f(DispatchFunc::Message));
    }

    fn fail(&self, s: &mut InstructionSink, msg: Span) {
        self.say(s, msg);
        s.i32_const(EXIT_NOT_FOUND)
            .call(self.imp.proc_exit)
            .unreachable();
    }

    /// `_start`: select by `MEGABIN_ENTRY`, else by `argv[0]`'s basename.
    fn start(&self, s: &mut InstructionSink, l: &mut LocalAlloc) {
        self.refuse_after_shared(s);
        s.i32_const(self.env.scratch_base as i32)
            .global_set(self.env.cursor_global);
        let environ = (self.imp.environ_sizes_get, self.imp.environ_get);
        let env = fetch_strings(s, l, self.env, environ, OnHostError::NoStrings);
        let [i, str_, dig, id] = l.i32s();
        s.i64_const(32).call(self.env.alloc_func).local_set(dig);
        counted_loop(s, i, Bound::Local(env.count), |s| {
            elem_addr(s, env.ptrs, i, 4)
                .i32_load(self.env.word(0))
                .local_set(str_);
            let prefix = self.layout.entry_prefix;
            s.local_get(str_);
            self.compare_prefix(s, prefix)
                .i32_eqz()
                .if_(BlockType::Empty);
            s.local_get(str_).i32_const(prefix.1 as i32).i32_add();
            self.run_by_digest_value(s, str_, dig, id);
            s.end();
        });
        self.run_by_argv0(s, l, i, str_, id);
    }

    /// With the address of a `MEGABIN_ENTRY` value pushed: stores it in `str_`, and runs the
    /// program it names (`sha256:` + 64 hex digits + NUL, parsed into `dig`) or fails.
    fn run_by_digest_value(&self, s: &mut InstructionSink, str_: u32, dig: u32, id: u32) {
        let sl = self.layout.sha_prefix.1;
        s.local_tee(str_);
        self.compare_prefix(s, self.layout.sha_prefix)
            .if_(BlockType::Empty);
        self.fail(s, self.layout.msgs.bad_env);
        s.end();
        s.local_get(str_)
            .i32_const(sl as i32)
            .i32_add()
            .local_get(dig)
            .call(self.f(DispatchFunc::Unhex))
            .i32_eqz()
            .if_(BlockType::Empty);
        self.fail(s, self.layout.msgs.bad_env);
        s.end();
        s.local_get(str_)
            .i32_load8_u(self.env.byte(sl as u64 + 64))
            .if_(BlockType::Empty);
        self.fail(s, self.layout.msgs.bad_env);
        s.end();
        self.search_digest(s, dig, id);
        self.fail(s, self.layout.msgs.unknown_digest);
        s.end();
        s.local_get(id)
            .call(self.f(DispatchFunc::RunEntry))
            .return_();
    }

    /// The end of `_start`: runs the program named by `argv[0]`'s basename, or fails. `i`, `str_`
    /// and `id` are scratch locals.
    fn run_by_argv0(
        &self,
        s: &mut InstructionSink,
        l: &mut LocalAlloc,
        i: u32,
        str_: u32,
        id: u32,
    ) {
        let args = (self.imp.args_sizes_get, self.imp.args_get);
        let argv = fetch_strings(s, l, self.env, args, OnHostError::NoStrings);
        s.local_get(argv.count).i32_eqz().if_(BlockType::Empty);
        self.fail(s, self.layout.msgs.no_argv0);
        s.end();
        let [base, len] = l.i32s();
        s.local_get(argv.ptrs)
            .i32_load(self.env.word(0))
            .local_tee(str_)
            .local_set(base);
        s.i32_const(0).local_set(len);
        s.block(BlockType::Empty).loop_(BlockType::Empty);
        load_byte(s, self.env, str_, len).local_tee(i);
        s.i32_eqz().br_if(1);
        s.local_get(len).i32_const(1).i32_add().local_set(len);
        s.local_get(i)
            .i32_const(b'/' as i32)
            .i32_eq()
            .if_(BlockType::Empty);
        s.local_get(str_).local_get(len).i32_add().local_set(base);
        s.end();
        s.br(0).end().end();
        // basename length = str + len - base
        s.local_get(str_)
            .local_get(len)
            .i32_add()
            .local_get(base)
            .i32_sub()
            .local_set(len);
        s.i32_const(self.layout.aliases.at as i32)
            .i32_const(self.layout.aliases.len as i32)
            .local_get(base)
            .local_get(len)
            .call(self.f(DispatchFunc::Search))
            .local_tee(id)
            .i32_const(0)
            .i32_lt_s()
            .if_(BlockType::Empty);
        self.say(s, self.layout.msgs.unknown_name);
        s.local_get(base)
            .local_get(len)
            .call(self.f(DispatchFunc::Message));
        self.fail(s, self.layout.msgs.newline);
        s.end();
        s.local_get(id).call(self.f(DispatchFunc::RunEntry)).end();
    }
}

impl Gen<'_> {
    /// `(min_pages)`: activation of a program whose memory 0 is the exported memory. Refuses
    /// (traps) when any program was activated before in this instance (after a bridged one
    /// with a message; after a program that used the exported memory there is no message left
    /// to print, it was that program's memory), and when the dispatcher's scratch grew the
    /// memory past `min_pages`. Then erases everything the module and the host wrote there
    /// (the static data, the scratch, below the cursor; the host's digest is erased by
    /// `megabin_dispatch`) and grows it to `min_pages`: the program sees the memory it would
    /// see standalone.
    fn activate_shared(&self, s: &mut InstructionSink) {
        let (mem, act) = (self.env.memory, self.env.activated_global);
        s.global_get(act).if_(BlockType::Empty);
        s.global_get(act)
            .i32_const(1)
            .i32_eq()
            .if_(BlockType::Empty);
        self.say(s, self.layout.msgs.another_started);
        s.end().unreachable().end();
        s.i32_const(2).global_set(act);
        s.memory_size(mem)
            .local_get(0)
            .i32_gt_u()
            .if_(BlockType::Empty);
        self.say(s, self.layout.msgs.too_small);
        s.unreachable().end();
        s.i32_const(0)
            .i32_const(0)
            .global_get(self.env.cursor_global)
            .memory_fill(mem);
        s.local_get(0)
            .memory_size(mem)
            .i32_sub()
            .memory_grow(mem)
            .i32_const(-1)
            .i32_eq()
            .if_(BlockType::Empty)
            .unreachable()
            .end();
        s.end();
    }

    /// `()`: activation of a bridged program: refused (trap) after a program that used the
    /// exported memory as its own (the bridge's static data is gone).
    fn activate_bridged(&self, s: &mut InstructionSink) {
        self.refuse_after_shared(s);
        s.i32_const(1).global_set(self.env.activated_global).end();
    }

    /// Traps when a program that used the exported memory as its own was activated in this
    /// instance: the dispatcher's static data (digests, names, messages) is that program's
    /// memory now, so nothing may read it; there is no message to print either.
    fn refuse_after_shared(&self, s: &mut InstructionSink) {
        s.global_get(self.env.activated_global)
            .i32_const(2)
            .i32_eq()
            .if_(BlockType::Empty)
            .unreachable()
            .end();
    }
}

/// `(entry)`: calls the start function of entry `entry` through a `br_table` (O(1)).
fn run_entry(s: &mut InstructionSink, starts: &[u32]) {
    let n = starts.len() as u32;
    for _ in 0..=n {
        s.block(BlockType::Empty);
    }
    s.local_get(0).br_table(0..n, n);
    for &start in starts {
        s.end().call(start).return_();
    }
    s.end().end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_in_enum_order() {
        for (k, f) in DispatchFunc::ALL.iter().enumerate() {
            assert_eq!(f.offset(), k as u32, "{f:?}");
        }
        assert_eq!(Router::FUNCS, 9);
        assert_eq!(Router::MESSAGE, 0);
    }
}
