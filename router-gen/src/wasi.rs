//! The one table of WASI preview1 (`wasi_snapshot_preview1`) functions.
//!
//! Every function is described by the kinds of its core-wasm parameters ([`Param`]) and, for
//! the few special cases, a [`Role`]; the bridge generator derives each trampoline from this
//! description alone, so adding a function means adding a row here, nothing else.
//! `tests/wasi_table.rs` checks every row against wasmtime-wasi's preview1 linker.

/// The import module name of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// How many bytes the host writes through an output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    /// The whole buffer (`random_get`, `fd_prestat_dir_name`).
    All,
    /// The `u32` written through the out parameter at this parameter index (`bufused`, `nread`).
    Param(usize),
}

/// The role of one core parameter of a WASI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A plain `i32` value, passed through.
    I32,
    /// A plain `i64` value, passed through.
    I64,
    /// A length or count (`i32`) that another parameter refers to; passed through.
    Len,
    /// Pointer to bytes the host reads.
    InBytes {
        /// Index of the length parameter.
        len: usize,
    },
    /// Pointer to a buffer the host writes.
    OutBytes {
        /// Index of the capacity parameter.
        len: usize,
        /// How much of the buffer the host writes.
        used: Used,
    },
    /// Pointer to a buffer the host may write only partly: copied in before the call and
    /// wholly back on success, so bytes the host leaves alone keep their value.
    InOutBytes {
        /// Index of the length parameter.
        len: usize,
    },
    /// Pointer to a fixed-size value the host writes on success (out-scalars and structs).
    /// It is copied in first so that bytes the host leaves alone (padding) keep their value.
    Out {
        /// Size of the value in bytes.
        size: u32,
    },
    /// Pointer to an array of `ciovec`s (8 bytes each) whose buffers the host reads.
    InIovs {
        /// Index of the element-count parameter.
        count: usize,
    },
    /// Pointer to an array of `iovec`s whose buffers the host fills in order.
    OutIovs {
        /// Index of the element-count parameter.
        count: usize,
        /// Index of the out-parameter through which the host writes the byte count.
        used: usize,
    },
    /// Pointer to fixed-size records the host reads (`poll_oneoff` subscriptions).
    InArray {
        /// Size of one record in bytes.
        elem: u32,
        /// Index of the record-count parameter.
        count: usize,
    },
    /// Pointer to fixed-size records the host writes (`poll_oneoff` events).
    OutArray {
        /// Size of one record in bytes.
        elem: u32,
        /// Index of the parameter giving how many records the caller's array holds.
        count: usize,
        /// Index of the out-parameter through which the host writes how many it wrote.
        used: usize,
    },
    /// The pointer array of `args_get` / `environ_get`: filled with pointers into the string
    /// buffer, which the trampoline rebases into the caller's memory.
    PtrArray,
    /// The string buffer of `args_get` / `environ_get`.
    StrBuf,
}

impl Param {
    /// The core value type of this parameter (`true` for `i64`).
    pub fn is_i64(self) -> bool {
        matches!(self, Param::I64)
    }
}

/// What a WASI function's trampoline does beyond bridging each parameter by its [`Param`]
/// kind: the special cases, named once here instead of by function name elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every parameter is bridged by its kind; returns an errno. Iovec reads and writes
    /// ([`Param::OutIovs`], [`Param::InIovs`]) and `poll_oneoff`'s records
    /// ([`Param::InArray`], [`Param::OutArray`]) are parameter kinds of plain functions.
    Plain,
    /// `proc_exit`: returns nothing, and never returns at all.
    ProcExit,
    /// `args_get`: the strings are fetched with `args_sizes_get` and rebased into the caller.
    ArgsGet,
    /// `environ_get`: as `args_get` (with `environ_sizes_get`), leaving the dispatcher's
    /// `MEGABIN_ENTRY` variable out.
    EnvironGet,
    /// `environ_sizes_get`: the sizes without `MEGABIN_ENTRY`, counted by calling
    /// `environ_get`.
    EnvironSizesGet,
}

impl Role {
    /// The companion import the trampoline also calls ([`WasiFunc::sizes_from`]).
    pub const fn companion(self) -> Option<&'static str> {
        match self {
            Role::ArgsGet => Some("args_sizes_get"),
            Role::EnvironGet => Some("environ_sizes_get"),
            Role::EnvironSizesGet => Some("environ_get"),
            Role::Plain | Role::ProcExit => None,
        }
    }

    /// Whether the function returns an errno (all but `proc_exit`).
    pub const fn returns_errno(self) -> bool {
        !matches!(self, Role::ProcExit)
    }
}

/// One WASI preview1 function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasiFunc {
    /// Import field name, e.g. `fd_write`.
    pub name: &'static str,
    /// Parameter kinds, in order.
    pub params: &'static [Param],
    /// Its special case, if any.
    pub role: Role,
    /// `false` only for `proc_exit` ([`Role::returns_errno`]).
    pub returns_errno: bool,
    /// The companion import the trampoline also calls ([`Role::companion`]): for `args_get` /
    /// `environ_get` the matching `*_sizes_get`; for `environ_sizes_get`, `environ_get` (to
    /// leave the dispatcher's `MEGABIN_ENTRY` variable out of the sizes).
    pub sizes_from: Option<&'static str>,
}

use Param::*;

macro_rules! wasi {
    ($($name:ident ( $($p:expr),* $(,)? ) $(as $role:ident)? ;)*) => {
        /// Every WASI preview1 function, sorted by name.
        pub const WASI_FUNCS: &[WasiFunc] = &[
            $(WasiFunc {
                name: stringify!($name),
                params: &[$($p),*],
                role: wasi!(@role $($role)?),
                returns_errno: wasi!(@role $($role)?).returns_errno(),
                sizes_from: wasi!(@role $($role)?).companion(),
            },)*
        ];
    };
    (@role) => { Role::Plain };
    (@role $role:ident) => { Role::$role };
}

wasi! {
    args_get(PtrArray, StrBuf) as ArgsGet;
    args_sizes_get(Out { size: 4 }, Out { size: 4 });
    clock_res_get(I32, Out { size: 8 });
    clock_time_get(I32, I64, Out { size: 8 });
    environ_get(PtrArray, StrBuf) as EnvironGet;
    environ_sizes_get(Out { size: 4 }, Out { size: 4 }) as EnvironSizesGet;
    fd_advise(I32, I64, I64, I32);
    fd_allocate(I32, I64, I64);
    fd_close(I32);
    fd_datasync(I32);
    fd_fdstat_get(I32, Out { size: 24 });
    fd_fdstat_set_flags(I32, I32);
    fd_fdstat_set_rights(I32, I64, I64);
    fd_filestat_get(I32, Out { size: 64 });
    fd_filestat_set_size(I32, I64);
    fd_filestat_set_times(I32, I64, I64, I32);
    fd_pread(I32, OutIovs { count: 2, used: 4 }, Len, I64, Out { size: 4 });
    fd_prestat_dir_name(I32, InOutBytes { len: 2 }, Len);
    fd_prestat_get(I32, Out { size: 8 });
    fd_pwrite(I32, InIovs { count: 2 }, Len, I64, Out { size: 4 });
    fd_read(I32, OutIovs { count: 2, used: 3 }, Len, Out { size: 4 });
    fd_readdir(I32, OutBytes { len: 2, used: Used::Param(4) }, Len, I64, Out { size: 4 });
    fd_renumber(I32, I32);
    fd_seek(I32, I64, I32, Out { size: 8 });
    fd_sync(I32);
    fd_tell(I32, Out { size: 8 });
    fd_write(I32, InIovs { count: 2 }, Len, Out { size: 4 });
    path_create_directory(I32, InBytes { len: 2 }, Len);
    path_filestat_get(I32, I32, InBytes { len: 3 }, Len, Out { size: 64 });
    path_filestat_set_times(I32, I32, InBytes { len: 3 }, Len, I64, I64, I32);
    path_link(I32, I32, InBytes { len: 3 }, Len, I32, InBytes { len: 6 }, Len);
    path_open(I32, I32, InBytes { len: 3 }, Len, I32, I64, I64, I32, Out { size: 4 });
    path_readlink(I32, InBytes { len: 2 }, Len, OutBytes { len: 4, used: Used::Param(5) }, Len, Out { size: 4 });
    path_remove_directory(I32, InBytes { len: 2 }, Len);
    path_rename(I32, InBytes { len: 2 }, Len, I32, InBytes { len: 5 }, Len);
    path_symlink(InBytes { len: 1 }, Len, I32, InBytes { len: 4 }, Len);
    path_unlink_file(I32, InBytes { len: 2 }, Len);
    poll_oneoff(InArray { elem: 48, count: 2 }, OutArray { elem: 32, count: 2, used: 3 }, Len, Out { size: 4 });
    proc_exit(I32) as ProcExit;
    proc_raise(I32);
    random_get(OutBytes { len: 1, used: Used::All }, Len);
    sched_yield();
    sock_accept(I32, I32, Out { size: 4 });
    sock_recv(I32, OutIovs { count: 2, used: 4 }, Len, I32, Out { size: 4 }, Out { size: 2 });
    sock_send(I32, InIovs { count: 2 }, Len, I32, Out { size: 4 });
    sock_shutdown(I32, I32);
}

/// Looks a preview1 function up by its import name.
pub fn lookup(name: &str) -> Option<&'static WasiFunc> {
    WASI_FUNCS
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| &WASI_FUNCS[i])
}

impl WasiFunc {
    /// Whether each core parameter is `i64` (otherwise `i32`).
    pub fn param_is_i64(&self) -> impl Iterator<Item = bool> + '_ {
        self.params.iter().map(|p| p.is_i64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_complete_and_consistent() {
        assert_eq!(WASI_FUNCS.len(), 46);
        for w in WASI_FUNCS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for f in WASI_FUNCS {
            for p in f.params {
                let refs: &[usize] = match *p {
                    InBytes { len } | OutBytes { len, .. } | InOutBytes { len } => &[len],
                    InIovs { count } | InArray { count, .. } => &[count],
                    OutIovs { count, used } | OutArray { count, used, .. } => &[count, used],
                    _ => &[],
                };
                for &r in refs {
                    let target = f.params[r];
                    assert!(
                        matches!(target, Len | Out { size: 4 }),
                        "{}: parameter {r} must be a length or a u32 out-param",
                        f.name
                    );
                }
                if let OutBytes {
                    used: Used::Param(u),
                    ..
                } = *p
                {
                    assert_eq!(f.params[u], Out { size: 4 }, "{}", f.name);
                }
            }
            assert_eq!(
                f.params.contains(&PtrArray),
                matches!(f.role, Role::ArgsGet | Role::EnvironGet),
                "{}",
                f.name
            );
            assert_eq!(f.sizes_from, f.role.companion());
            assert_eq!(f.returns_errno, f.role.returns_errno());
            if let Some(companion) = f.sizes_from {
                assert!(lookup(companion).is_some(), "{}", f.name);
            }
        }
        assert_eq!(lookup("fd_write").unwrap().params.len(), 4);
        assert!(lookup("fd_nonsense").is_none());
        assert!(!lookup("proc_exit").unwrap().returns_errno);
    }

    #[test]
    fn each_special_case_has_its_one_function() {
        let with = |role: Role| -> Vec<&str> {
            let funcs = WASI_FUNCS.iter().filter(|f| f.role == role);
            funcs.map(|f| f.name).collect()
        };
        assert_eq!(with(Role::ProcExit), ["proc_exit"]);
        assert_eq!(with(Role::ArgsGet), ["args_get"]);
        assert_eq!(with(Role::EnvironGet), ["environ_get"]);
        assert_eq!(with(Role::EnvironSizesGet), ["environ_sizes_get"]);
        assert_eq!(
            lookup("args_get").unwrap().sizes_from,
            Some("args_sizes_get")
        );
    }
}
