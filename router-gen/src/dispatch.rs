//! The dispatcher of a megabinary.
//!
//! Static tables live at the start of the bridge memory (an active data segment of memory 0):
//! every program's sha256 digest and every argv[0] alias, each as a sorted array of 12-byte
//! records `{ptr: u32, len: u32, entry: u32}` searched by binary search. Generated functions:
//!
//! - `_start`: picks the program from `MEGABIN_ENTRY=sha256:<64 hex>` in the environment, else
//!   from the basename of argv[0]; unknown → a message on stderr and exit code 127;
//! - `megabin_dispatch(ptr) -> i32`: runs the program whose 32-byte digest is at `ptr` in the
//!   bridge memory, or returns 1 without running anything.

use crate::bridge::BridgeEnv;
use crate::code::LocalAlloc;
use wasm_encoder::{BlockType, Function, InstructionSink, MemArg, ValType};

/// Exit code of `_start` when no program matches (as shells use for "not found").
pub const EXIT_NOT_FOUND: i32 = 127;
/// Name of the environment variable that selects a program by digest.
pub const ENTRY_ENV: &str = "MEGABIN_ENTRY";
/// First bridge address used for static data (address 0 stays unused, like a null page).
const STATIC_BASE: u32 = 64;
/// Bridge address and length of the `MEGABIN_ENTRY=` prefix, the first static string: the
/// environ trampolines leave this variable out of every program's environment.
pub const HIDDEN_ENV_PREFIX: (u32, u32) = (STATIC_BASE, ENTRY_ENV.len() as u32 + 1);

/// What the dispatcher needs to know about one program.
#[derive(Clone, Debug)]
pub struct RouteEntry {
    /// Entry name (used in messages).
    pub name: String,
    /// sha256 of the program file.
    pub digest: [u8; 32],
    /// argv[0] basenames that select this program.
    pub aliases: Vec<String>,
}

/// Function indices of the WASI imports the dispatcher calls.
#[derive(Clone, Copy, Debug)]
pub struct DispatchImports {
    pub fd_write: u32,
    pub proc_exit: u32,
    pub args_sizes_get: u32,
    pub args_get: u32,
    pub environ_sizes_get: u32,
    pub environ_get: u32,
}

/// A generated function: its name (for the name section), signature, body and export name.
#[derive(Debug)]
pub struct GenFunc {
    pub name: String,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    pub body: Function,
    pub export: Option<&'static str>,
}

/// Why a routing table could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Two programs have the same digest (identical programs must be one entry).
    DuplicateDigest(String, String),
    /// Two programs claim the same argv[0] name.
    DuplicateAlias(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::DuplicateDigest(a, b) => {
                write!(f, "entries `{a}` and `{b}` have the same digest")
            }
            RouteError::DuplicateAlias(n) => write!(f, "argv[0] name `{n}` maps to two entries"),
        }
    }
}

impl std::error::Error for RouteError {}

/// The laid-out routing tables and messages.
#[derive(Debug)]
pub struct Router {
    bytes: Vec<u8>,
    digest_table: u32,
    digests: u32,
    alias_table: u32,
    aliases: u32,
    started_msgs: Vec<(u32, u32)>,
    prefix: (u32, u32),
    sha_prefix: (u32, u32),
    bad_env: (u32, u32),
    unknown_digest: (u32, u32),
    no_argv0: (u32, u32),
    unknown_name: (u32, u32),
    newline: (u32, u32),
    entries: u32,
}

struct Static {
    bytes: Vec<u8>,
}

impl Static {
    fn add(&mut self, data: &[u8]) -> (u32, u32) {
        let at = STATIC_BASE + self.bytes.len() as u32;
        self.bytes.extend_from_slice(data);
        (at, data.len() as u32)
    }
    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }
}

impl Router {
    /// Number of functions [`Router::functions`] generates.
    pub const FUNCS: u32 = 7;

    /// Lays out the routing tables for `entries` (entry `k` is started by the k-th start
    /// function given to [`Router::functions`]).
    pub fn new(entries: &[RouteEntry]) -> Result<Self, RouteError> {
        let mut st = Static { bytes: Vec::new() };
        let msg = |st: &mut Static, s: &str| st.add(s.as_bytes());
        let prefix = msg(&mut st, &format!("{ENTRY_ENV}="));
        assert_eq!(
            prefix, HIDDEN_ENV_PREFIX,
            "the bridge relies on this address"
        );
        let sha_prefix = msg(&mut st, "sha256:");
        let bad_env = msg(
            &mut st,
            &format!("megabin: {ENTRY_ENV} must be sha256:<64 hex digits>\n"),
        );
        let unknown_digest = msg(
            &mut st,
            &format!("megabin: {ENTRY_ENV} names no program of this megabinary\n"),
        );
        let no_argv0 = msg(
            &mut st,
            &format!("megabin: no argv[0] and no {ENTRY_ENV}: cannot tell which program to run\n"),
        );
        let unknown_name = msg(&mut st, "megabin: no program of this megabinary is called ");
        let newline = msg(&mut st, "\n");
        let started_msgs = entries
            .iter()
            .map(|e| {
                msg(
                    &mut st,
                    &format!("megabin: program `{}` was already started in this instance; create a fresh instance per run\n", e.name),
                )
            })
            .collect();

        let mut digests: Vec<(Vec<u8>, u32)> = entries
            .iter()
            .enumerate()
            .map(|(k, e)| (e.digest.to_vec(), k as u32))
            .collect();
        digests.sort();
        for w in digests.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(RouteError::DuplicateDigest(
                    entries[w[0].1 as usize].name.clone(),
                    entries[w[1].1 as usize].name.clone(),
                ));
            }
        }
        let mut aliases: Vec<(Vec<u8>, u32)> = entries
            .iter()
            .enumerate()
            .flat_map(|(k, e)| {
                e.aliases
                    .iter()
                    .map(move |a| (a.as_bytes().to_vec(), k as u32))
            })
            .collect();
        aliases.sort();
        aliases.dedup();
        for w in aliases.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(RouteError::DuplicateAlias(
                    String::from_utf8_lossy(&w[0].0).into_owned(),
                ));
            }
        }
        let table = |st: &mut Static, rows: &[(Vec<u8>, u32)]| {
            let strings: Vec<(u32, u32)> = rows.iter().map(|(s, _)| st.add(s)).collect();
            st.align(4);
            let at = STATIC_BASE + st.bytes.len() as u32;
            for ((ptr, len), (_, k)) in strings.iter().zip(rows) {
                for v in [*ptr, *len, *k] {
                    st.bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            at
        };
        let digest_table = table(&mut st, &digests);
        let alias_table = table(&mut st, &aliases);
        st.align(8);
        Ok(Router {
            bytes: st.bytes,
            digest_table,
            digests: digests.len() as u32,
            alias_table,
            aliases: aliases.len() as u32,
            started_msgs,
            prefix,
            sha_prefix,
            bad_env,
            unknown_digest,
            no_argv0,
            unknown_name,
            newline,
            entries: entries.len() as u32,
        })
    }

    /// Bridge address of the static data.
    pub fn static_base(&self) -> u32 {
        STATIC_BASE
    }

    /// The static data (tables and messages), to place at [`Router::static_base`].
    pub fn static_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// First bridge address free for scratch use.
    pub fn scratch_base(&self) -> u32 {
        STATIC_BASE + self.bytes.len() as u32
    }

    /// Index of the message function among [`Router::functions`] (`(ptr, len) -> ()`).
    pub const MESSAGE: u32 = 0;

    /// `(ptr, len)` in the bridge of the "already started" message of entry `k`.
    pub fn started_message(&self, k: usize) -> (u32, u32) {
        self.started_msgs[k]
    }

    /// Generates the dispatcher functions, to be placed at `first..first + FUNCS`;
    /// `starts[k]` is the function index that starts entry `k`.
    pub fn functions(
        &self,
        first: u32,
        imports: &DispatchImports,
        env: &BridgeEnv,
        starts: &[u32],
    ) -> Vec<GenFunc> {
        assert_eq!(starts.len() as u32, self.entries);
        let g = Gen {
            r: self,
            first,
            imp: imports,
            env,
        };
        vec![
            g.message(),
            g.memcmp(),
            g.search(),
            g.unhex(),
            g.run_entry(starts),
            g.dispatch(),
            g.start(),
        ]
    }
}

const MEMCMP: u32 = 1;
const SEARCH: u32 = 2;
const UNHEX: u32 = 3;
const RUN_ENTRY: u32 = 4;

struct Gen<'a> {
    r: &'a Router,
    first: u32,
    imp: &'a DispatchImports,
    env: &'a BridgeEnv,
}

use ValType::I32;

fn build(
    name: &str,
    params: Vec<ValType>,
    results: Vec<ValType>,
    export: Option<&'static str>,
    gen: impl FnOnce(&mut InstructionSink, &mut LocalAlloc),
) -> GenFunc {
    let mut locals = LocalAlloc::new(params.len() as u32);
    let mut body = Vec::new();
    gen(&mut InstructionSink::new(&mut body), &mut locals);
    GenFunc {
        name: format!("megabin::{name}"),
        params,
        results,
        body: locals.finish(body),
        export,
    }
}

impl Gen<'_> {
    fn m(&self, offset: u64, align: u32) -> MemArg {
        MemArg {
            offset,
            align,
            memory_index: self.env.memory,
        }
    }
    fn f(&self, k: u32) -> u32 {
        self.first + k
    }

    /// Writes `(ptr, len)` of the bridge to stderr.
    fn message(&self) -> GenFunc {
        build("message", vec![I32, I32], vec![], None, |s, l| {
            let iov = l.add(I32);
            s.i64_const(16).call(self.env.alloc_func).local_set(iov);
            s.local_get(iov).local_get(0).i32_store(self.m(0, 2));
            s.local_get(iov).local_get(1).i32_store(self.m(4, 2));
            s.i32_const(2)
                .local_get(iov)
                .i32_const(1)
                .local_get(iov)
                .i32_const(8)
                .i32_add()
                .call(self.imp.fd_write)
                .drop()
                .end();
        })
    }

    /// `(a, alen, b, blen) -> -1 | 0 | 1`, lexicographic over bytes.
    fn memcmp(&self) -> GenFunc {
        build("memcmp", vec![I32; 4], vec![I32], None, |s, l| {
            let (a, alen, b, blen) = (0, 1, 2, 3);
            let (i, n, x, y) = (l.add(I32), l.add(I32), l.add(I32), l.add(I32));
            s.local_get(alen)
                .local_get(blen)
                .local_get(alen)
                .local_get(blen)
                .i32_lt_u()
                .select()
                .local_set(n);
            s.block(BlockType::Empty).loop_(BlockType::Empty);
            s.local_get(i).local_get(n).i32_ge_u().br_if(1);
            s.local_get(a)
                .local_get(i)
                .i32_add()
                .i32_load8_u(self.m(0, 0))
                .local_set(x);
            s.local_get(b)
                .local_get(i)
                .i32_add()
                .i32_load8_u(self.m(0, 0))
                .local_set(y);
            s.local_get(x).local_get(y).i32_ne().if_(BlockType::Empty);
            s.i32_const(-1)
                .i32_const(1)
                .local_get(x)
                .local_get(y)
                .i32_lt_u()
                .select()
                .return_()
                .end();
            s.local_get(i).i32_const(1).i32_add().local_set(i).br(0);
            s.end().end();
            // equal prefix: the shorter sorts first
            s.local_get(alen)
                .local_get(blen)
                .i32_gt_u()
                .local_get(alen)
                .local_get(blen)
                .i32_lt_u()
                .i32_sub()
                .end();
        })
    }

    /// `(table, count, key, keylen) -> entry | -1`: binary search over 12-byte records.
    fn search(&self) -> GenFunc {
        build("search", vec![I32; 4], vec![I32], None, |s, l| {
            let (table, count, key, keylen) = (0, 1, 2, 3);
            let (lo, hi, mid, rec, c) =
                (l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32));
            s.local_get(count).local_set(hi);
            s.block(BlockType::Empty).loop_(BlockType::Empty);
            s.local_get(lo).local_get(hi).i32_ge_u().br_if(1);
            s.local_get(lo)
                .local_get(hi)
                .i32_add()
                .i32_const(1)
                .i32_shr_u()
                .local_tee(mid)
                .i32_const(12)
                .i32_mul()
                .local_get(table)
                .i32_add()
                .local_set(rec);
            s.local_get(rec)
                .i32_load(self.m(0, 2))
                .local_get(rec)
                .i32_load(self.m(4, 2))
                .local_get(key)
                .local_get(keylen)
                .call(self.f(MEMCMP))
                .local_tee(c)
                .i32_eqz()
                .if_(BlockType::Empty)
                .local_get(rec)
                .i32_load(self.m(8, 2))
                .return_()
                .end();
            s.local_get(c).i32_const(0).i32_lt_s().if_(BlockType::Empty);
            s.local_get(mid).i32_const(1).i32_add().local_set(lo);
            s.else_().local_get(mid).local_set(hi).end();
            s.br(0).end().end();
            s.i32_const(-1).end();
        })
    }

    /// `(src, dst) -> ok`: parses 64 hex digits at `src` into 32 bytes at `dst`.
    fn unhex(&self) -> GenFunc {
        build("unhex", vec![I32, I32], vec![I32], None, |s, l| {
            let (src, dst) = (0, 1);
            let (i, c, v, acc) = (l.add(I32), l.add(I32), l.add(I32), l.add(I32));
            s.block(BlockType::Empty).loop_(BlockType::Empty);
            s.local_get(i).i32_const(64).i32_ge_u().br_if(1);
            s.local_get(src)
                .local_get(i)
                .i32_add()
                .i32_load8_u(self.m(0, 0))
                .local_set(c);
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
                .i32_store8(self.m(0, 0));
            s.else_().local_get(v).local_set(acc).end();
            s.local_get(i).i32_const(1).i32_add().local_set(i).br(0);
            s.end().end();
            s.i32_const(1).end();
        })
    }

    /// `(entry)`: calls the start function of entry `entry` through a `br_table` (O(1)).
    fn run_entry(&self, starts: &[u32]) -> GenFunc {
        build("run_entry", vec![I32], vec![], None, |s, _| {
            let n = starts.len() as u32;
            for _ in 0..=n {
                s.block(BlockType::Empty);
            }
            s.local_get(0).br_table(0..n, n);
            for &start in starts {
                s.end().call(start).return_();
            }
            s.end().end();
        })
    }

    /// `megabin_dispatch(ptr) -> i32`.
    fn dispatch(&self) -> GenFunc {
        build(
            "dispatch",
            vec![I32],
            vec![I32],
            Some("megabin_dispatch"),
            |s, l| {
                let id = l.add(I32);
                s.i32_const(self.r.digest_table as i32)
                    .i32_const(self.r.digests as i32)
                    .local_get(0)
                    .i32_const(32)
                    .call(self.f(SEARCH))
                    .local_tee(id)
                    .i32_const(0)
                    .i32_lt_s()
                    .if_(BlockType::Empty)
                    .i32_const(1)
                    .return_()
                    .end();
                s.local_get(id).call(self.f(RUN_ENTRY)).i32_const(0).end();
            },
        )
    }

    fn say(&self, s: &mut InstructionSink, (ptr, len): (u32, u32)) {
        s.i32_const(ptr as i32)
            .i32_const(len as i32)
            .call(self.f(Router::MESSAGE));
    }

    fn fail(&self, s: &mut InstructionSink, msg: (u32, u32)) {
        self.say(s, msg);
        s.i32_const(EXIT_NOT_FOUND)
            .call(self.imp.proc_exit)
            .unreachable();
    }

    /// Fetches args or environ into bridge scratch; leaves `count` and `arr` locals set;
    /// returns false (falls through with count 0) when the host reports an error.
    fn fetch_strings(
        &self,
        s: &mut InstructionSink,
        l: &mut LocalAlloc,
        sizes: u32,
        get: u32,
    ) -> (u32, u32) {
        let (sz, count, arr) = (l.add(I32), l.add(I32), l.add(I32));
        s.i64_const(8).call(self.env.alloc_func).local_set(sz);
        s.local_get(sz)
            .local_get(sz)
            .i32_const(4)
            .i32_add()
            .call(sizes)
            .i32_eqz()
            .if_(BlockType::Empty);
        s.local_get(sz).i32_load(self.m(0, 2)).local_set(count);
        s.local_get(count)
            .i64_extend_i32_u()
            .i64_const(4)
            .i64_mul()
            .call(self.env.alloc_func)
            .local_set(arr);
        s.local_get(arr)
            .local_get(sz)
            .i32_load(self.m(4, 2))
            .i64_extend_i32_u()
            .call(self.env.alloc_func)
            .call(get)
            .if_(BlockType::Empty)
            .i32_const(0)
            .local_set(count)
            .end();
        s.end();
        (count, arr)
    }

    /// `_start`: select by `MEGABIN_ENTRY`, else by argv[0]'s basename.
    fn start(&self) -> GenFunc {
        build("start", vec![], vec![], Some("_start"), |s, l| {
            s.i32_const(self.env.scratch_base as i32)
                .global_set(self.env.cursor_global);
            let (count, arr) =
                self.fetch_strings(s, l, self.imp.environ_sizes_get, self.imp.environ_get);
            let (i, str_, dig, id) = (l.add(I32), l.add(I32), l.add(I32), l.add(I32));
            s.i64_const(32).call(self.env.alloc_func).local_set(dig);
            s.block(BlockType::Empty).loop_(BlockType::Empty);
            s.local_get(i).local_get(count).i32_ge_u().br_if(1);
            s.local_get(arr)
                .local_get(i)
                .i32_const(4)
                .i32_mul()
                .i32_add()
                .i32_load(self.m(0, 2))
                .local_set(str_);
            let (pp, pl) = self.r.prefix;
            s.local_get(str_)
                .i32_const(pl as i32)
                .i32_const(pp as i32)
                .i32_const(pl as i32)
                .call(self.f(MEMCMP))
                .i32_eqz()
                .if_(BlockType::Empty);
            {
                // value must be "sha256:" + 64 hex digits + NUL
                let (sp, sl) = self.r.sha_prefix;
                s.local_get(str_)
                    .i32_const(pl as i32)
                    .i32_add()
                    .local_tee(str_)
                    .i32_const(sl as i32)
                    .i32_const(sp as i32)
                    .i32_const(sl as i32)
                    .call(self.f(MEMCMP))
                    .if_(BlockType::Empty);
                self.fail(s, self.r.bad_env);
                s.end();
                s.local_get(str_)
                    .i32_const(sl as i32)
                    .i32_add()
                    .local_get(dig)
                    .call(self.f(UNHEX))
                    .i32_eqz()
                    .if_(BlockType::Empty);
                self.fail(s, self.r.bad_env);
                s.end();
                s.local_get(str_)
                    .i32_load8_u(self.m(sl as u64 + 64, 0))
                    .if_(BlockType::Empty);
                self.fail(s, self.r.bad_env);
                s.end();
                s.i32_const(self.r.digest_table as i32)
                    .i32_const(self.r.digests as i32)
                    .local_get(dig)
                    .i32_const(32)
                    .call(self.f(SEARCH))
                    .local_tee(id)
                    .i32_const(0)
                    .i32_lt_s()
                    .if_(BlockType::Empty);
                self.fail(s, self.r.unknown_digest);
                s.end();
                s.local_get(id).call(self.f(RUN_ENTRY)).return_();
            }
            s.end();
            s.local_get(i).i32_const(1).i32_add().local_set(i).br(0);
            s.end().end();

            // argv[0]
            let (argc, argv) = self.fetch_strings(s, l, self.imp.args_sizes_get, self.imp.args_get);
            s.local_get(argc).i32_eqz().if_(BlockType::Empty);
            self.fail(s, self.r.no_argv0);
            s.end();
            let (base, len) = (l.add(I32), l.add(I32));
            s.local_get(argv)
                .i32_load(self.m(0, 2))
                .local_tee(str_)
                .local_set(base);
            s.i32_const(0).local_set(len);
            s.block(BlockType::Empty).loop_(BlockType::Empty);
            s.local_get(str_)
                .local_get(len)
                .i32_add()
                .i32_load8_u(self.m(0, 0))
                .local_tee(i);
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
            s.i32_const(self.r.alias_table as i32)
                .i32_const(self.r.aliases as i32)
                .local_get(base)
                .local_get(len)
                .call(self.f(SEARCH))
                .local_tee(id)
                .i32_const(0)
                .i32_lt_s()
                .if_(BlockType::Empty);
            self.say(s, self.r.unknown_name);
            s.local_get(base)
                .local_get(len)
                .call(self.f(Router::MESSAGE));
            self.fail(s, self.r.newline);
            s.end();
            s.local_get(id).call(self.f(RUN_ENTRY)).end();
        })
    }
}
