//! The plan: where every input goes in every index space of the merged module, decided before
//! anything is encoded. [`Plan::new`] lays out the WASI imports, the generated functions and
//! each program's functions, tables, globals, tags, segments and types; the emit step
//! ([`crate::emit`]) writes exactly what the plan says.

use crate::consteval;
use crate::error::{internal, MergeError};
use crate::input::{FuncImport, Input};
use crate::reindex::Reindex;
use crate::segments::{self, ActiveData};
use crate::types::TypeInterner;
use crate::Program;
use router_gen::bridge::{self, BridgeEnv};
use router_gen::dispatch::{DispatchImports, GenFunc, RouteEntry, Router};
use router_gen::wasi::{self, WasiFunc};
use wasm_encoder::reencode::Reencode;
use wasm_encoder::ValType;

/// Pages of the exported memory 0, the largest a memory may have.
const MAX_PAGES: u64 = 65536;

/// Initial pages of memory 0: enough for the dispatcher's static data (at least one).
pub(crate) fn bridge_pages(router: &Router) -> u64 {
    (router.scratch_base() as u64).div_ceil(65536).max(1)
}

/// Whether a program can use the exported memory 0 as its own memory (a megabinary instance
/// only ever activates one program): its memory starts at least as large as memory 0 does
/// (`min_pages`, which holds the dispatcher's static data; the input's memory is already
/// known to be defined, 32-bit, unshared, with default pages). If it reads its environment,
/// it does so from a cache ([`EnvironCache`]).
pub(crate) fn shares_memory(input: &Input<'_>, min_pages: u64) -> bool {
    input.memory.initial >= min_pages
}

/// Whether a program on memory 0 can use the shared table (output table 0) as its own table,
/// as it uses memory 0: another instance-wide resource only one program per instance ever
/// activates. It must have exactly one table, a 32-bit `funcref` table starting null, and
/// active element segments whose offsets are known and fit ([`consteval::eager_tables`]) and
/// whose items are `ref.func` or `ref.null`: its start function fills the table with
/// generated `table.set`s ([`shared_table_items`]), which cost nothing at instantiation.
/// (The plan shares the table only between two programs or more: it saves the other
/// programs' tables at every instantiation, and costs the program one `ref.func` per element
/// at its start, where Wasmtime fills a table of its own lazily.)
pub(crate) fn shares_table(input: &Input<'_>) -> bool {
    let [table] = input.tables.as_slice() else {
        return false;
    };
    table.ty.element_type == wasmparser::RefType::FUNCREF
        && !table.ty.table64
        && !table.ty.shared
        && matches!(table.init, wasmparser::TableInit::RefNull)
        && consteval::eager_tables(input)
        && shared_table_items(input).is_some_and(|items| items.len() <= MAX_SHARED_TABLE_ITEMS)
}

/// Most element items a program on the shared table may have: its start writes each with
/// about 10 bytes of code, and a function body is limited to 7,654,321 bytes (CPython 3.12
/// has about 6,000). A program with more keeps a table of its own.
const MAX_SHARED_TABLE_ITEMS: usize = 100_000;

/// What a program's active element segments put in its table, in segment order: the slot and
/// the function (`None` for `ref.null`). `None` when an item is another kind of expression.
pub(crate) fn shared_table_items(input: &Input<'_>) -> Option<Vec<(u32, Option<u32>)>> {
    let globals = consteval::i32_globals(input);
    let mut items = Vec::new();
    for e in &input.elements {
        let wasmparser::ElementKind::Active { offset_expr, .. } = &e.kind else {
            continue;
        };
        let offset = consteval::eval_i32(offset_expr, &globals)? as u32;
        let funcs: Vec<Option<u32>> = match &e.items {
            wasmparser::ElementItems::Functions(fs) => fs
                .clone()
                .into_iter()
                .map(|f| f.ok().map(Some))
                .collect::<Option<_>>()?,
            wasmparser::ElementItems::Expressions(_, xs) => xs
                .clone()
                .into_iter()
                .map(|x| consteval::ref_item(&x.ok()?))
                .collect::<Option<_>>()?,
        };
        items.extend((offset..).zip(funcs));
    }
    Some(items)
}

/// Least room, in bytes, between the end of the dispatcher's static data and a lone program's
/// lowest data address for its data segments to stay active: the dispatcher's scratch (the
/// arguments and environment of `_start`) must fit below them.
const MIN_SCRATCH_ROOM: u64 = 256 * 1024;

/// For a megabinary whose only program uses memory 0: the lowest address its (coalesced)
/// active data segments write, when they can stay active segments of memory 0, applied at
/// instantiation as standalone, so that Wasmtime maps them copy-on-write (a memory image)
/// instead of each instance copying them at activation. That needs every offset known, every
/// segment inside the program's initial memory, and the lowest one at least
/// [`MIN_SCRATCH_ROOM`] bytes above the dispatcher's static data (which stays where it is).
pub(crate) fn active_data_floor(input: &Input<'_>, l: &Layout<'_>, router: &Router) -> Option<u32> {
    let spans = l.active.iter().map(|a| match a {
        ActiveData::Const { offset, .. } | ActiveData::Joined { offset, .. } => {
            Some((u64::from(*offset), *offset as u64 + a.len() as u64))
        }
        ActiveData::Expr { .. } => None,
    });
    let spans: Vec<(u64, u64)> = spans.collect::<Option<_>>()?;
    let floor = spans.iter().map(|&(start, _)| start).min()?;
    let end = spans.iter().map(|&(_, end)| end).max()?;
    let room = u64::from(router.scratch_base()) + MIN_SCRATCH_ROOM;
    (floor >= room && end <= input.memory.initial * 65536).then_some(floor as u32)
}

/// Whether a program reads its environment (imports `environ_get` or `environ_sizes_get`).
pub(crate) fn reads_environ(input: &Input<'_>) -> bool {
    input
        .imports
        .iter()
        .filter_map(FuncImport::wasi)
        .any(|f| matches!(f.role, wasi::Role::EnvironGet | wasi::Role::EnvironSizesGet))
}

/// The environment cache of the programs on memory 0 that read their environment
/// ([`bridge::stash_environ`]): a private memory and three generated functions, placed after
/// the dispatcher's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EnvironCache {
    /// The private memory holding the filtered environment (after every other memory).
    pub memory: u32,
    /// `megabin::stash_environ`; `environ_sizes_get` and `environ_get` follow it.
    pub stash: u32,
}

impl EnvironCache {
    /// The cached `environ_sizes_get`.
    pub fn sizes_get(&self) -> u32 {
        self.stash + 1
    }
    /// The cached `environ_get`.
    pub fn get(&self) -> u32 {
        self.stash + 2
    }
}

/// WASI functions the dispatcher calls: imported whatever the programs use.
const DISPATCHER_IMPORTS: [&str; 6] = [
    "fd_write",
    "proc_exit",
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
];

/// The merged module's layout. Function index space: the WASI imports, the bridge allocator,
/// the dispatcher's functions, then each program's [`Layout`] in input order.
pub(crate) struct Plan<'a> {
    /// The parsed inputs, in program order.
    pub inputs: Vec<Input<'a>>,
    /// sha256 of each program's bytes.
    pub digests: Vec<[u8; 32]>,
    /// The dispatcher: its routing tables and static data.
    pub router: Router,
    /// The imported WASI functions.
    pub imports: WasiImports,
    /// Where the bridge's shared helpers are (memory 0, its allocator, its cursor global).
    pub env: BridgeEnv,
    /// The output's types; complete once the plan is made.
    pub types: TypeInterner,
    /// The generated functions that precede the programs' functions.
    pub generated: Generated,
    /// Each program's place, in program order.
    pub layouts: Vec<Layout<'a>>,
    /// The environment cache, when a program on memory 0 reads its environment.
    pub environ: Option<EnvironCache>,
}

/// The bridge allocator and the dispatcher's functions, with their types.
pub(crate) struct Generated {
    /// Type of the bridge allocator.
    pub alloc_type: u32,
    /// Type `[] -> []` of every `<name>_start`.
    pub start_type: u32,
    /// Type `[i32] -> [i32]` of the checked `memory.grow` functions.
    pub grow_type: u32,
    /// Type `[funcref i32] -> [i32]` of the checked `table.grow` functions, when there are.
    pub table_grow_type: Option<u32>,
    /// The dispatcher's functions, from `env.alloc_func + 1`, and their types.
    pub dispatch: Vec<(GenFunc, u32)>,
}

/// One program's place in the output index spaces.
pub(crate) struct Layout<'a> {
    /// Its memory: 0 (the exported memory) when [`Layout::shared`], else its own.
    pub memory: u32,
    /// The program uses the exported memory 0 as its own memory ([`shares_memory`]): no
    /// trampolines, its WASI imports are called directly.
    pub shared: bool,
    /// With [`Layout::shared`] and a declared maximum below memory 0's: the function that
    /// stands for the program's `memory.grow` (`(delta) -> old | -1`), after its start function.
    pub grow_func: Option<u32>,
    /// With [`Layout::shared`]: the program reads its environment, from the cache.
    pub environ: bool,
    /// The program uses the shared table (table 0) as its only table ([`shares_table`]).
    pub shared_table: bool,
    /// With [`Layout::shared_table`] and a declared maximum: the function that stands for the
    /// program's `table.grow` (`(init, delta) -> old | -1`), after its start function (and
    /// its checked `memory.grow`).
    pub table_grow_func: Option<u32>,
    pub func_base: u32,
    /// Distinct WASI functions imported, in first-import order: one trampoline each.
    pub trampolines: Vec<&'static WasiFunc>,
    /// First stub of a foreign import (they follow the trampolines, one per stubbed import).
    pub stub_base: u32,
    pub defined_base: u32,
    pub start_func: u32,
    pub table_base: u32,
    pub started_global: u32,
    pub global_base: u32,
    pub tag_base: u32,
    pub elem_base: u32,
    pub data_base: u32,
    pub passive_data: u32,
    pub active: Vec<ActiveData<'a>>,
    /// Tables at their original size with active element segments, applied at instantiation
    /// ([`consteval::eager_tables`]); otherwise empty tables filled by `<name>_start`.
    pub eager_tables: bool,
    /// The program's index maps (input index → output index), types included.
    pub reindex: Reindex,
    /// With a lone program on memory 0 whose data segments stay active ([`active_data_floor`]):
    /// the lowest address they write, below which the dispatcher's scratch must stay.
    pub data_floor: Option<u32>,
}

impl Layout<'_> {
    /// One past the program's last function (its start function and checked grows).
    pub fn end_func(&self) -> u32 {
        self.start_func
            + 1
            + self.grow_func.is_some() as u32
            + self.table_grow_func.is_some() as u32
    }
}

impl<'a> Plan<'a> {
    /// Plans the merge of `programs`, already parsed into `inputs`.
    pub fn new(
        programs: &[Program<'_>],
        digests: Vec<[u8; 32]>,
        inputs: Vec<Input<'a>>,
        bridge_all: bool,
    ) -> Result<Self, MergeError> {
        // Route: the dispatcher's tables, from each program's digest and argv[0] names.
        let router = route(programs, &digests)?;
        // Imports: every WASI function used by a program or the dispatcher, sorted by name.
        let mut types = TypeInterner::default();
        let imports = WasiImports::new(&inputs, &mut types);
        let n_imports = imports.len();
        let env = BridgeEnv {
            memory: 0,
            alloc_func: n_imports,
            cursor_global: 0,
            activated_global: 1,
            scratch_base: router.scratch_base(),
        };
        // Layout: each program's place in every index space, after the generated functions.
        let shared_min = (!bridge_all).then(|| bridge_pages(&router));
        let shared: Vec<bool> = inputs
            .iter()
            .map(|i| shared_min.is_some_and(|min| shares_memory(i, min)))
            .collect();
        let cache = inputs
            .iter()
            .zip(&shared)
            .any(|(i, &s)| s && reads_environ(i));
        let bridged = shared.iter().filter(|&&s| !s).count() as u32;
        let environ = cache.then_some(EnvironCache {
            memory: 1 + bridged,
            stash: n_imports + 1 + Router::FUNCS,
        });
        let helpers = if cache { bridge::ENVIRON_HELPERS } else { 0 };
        let first_func = n_imports + 1 + Router::FUNCS + helpers;
        // One table for all only where it replaces several: a lone program keeps its own,
        // filled lazily by Wasmtime instead of by its start.
        let mut shared_table: Vec<bool> = inputs
            .iter()
            .zip(&shared)
            .map(|(i, &s)| s && shares_table(i))
            .collect();
        if shared_table.iter().filter(|&&s| s).count() < 2 {
            shared_table.fill(false);
        }
        let mut layouts = lay_out(&inputs, first_func, &shared, &shared_table);
        if let ([input], [l]) = (inputs.as_slice(), layouts.as_mut_slice()) {
            if l.shared {
                l.data_floor = active_data_floor(input, l, &router);
            }
        }
        // Types and index maps of every program (sequential: the interner is shared).
        for (input, layout) in inputs.iter().zip(&mut layouts) {
            index_maps(input, layout, &imports, environ, &mut types)?;
        }
        // Generated functions: the bridge allocator and the dispatcher, and their types.
        let starts: Vec<u32> = layouts.iter().map(|l| l.start_func).collect();
        let table_grows = layouts.iter().any(|l| l.table_grow_func.is_some());
        let generated = Generated::new(&router, &imports, &env, &starts, table_grows, &mut types);
        Ok(Plan {
            inputs,
            digests,
            router,
            imports,
            env,
            types,
            generated,
            layouts,
            environ,
        })
    }

    /// Initial pages of memory 0: the smallest initial memory of the programs that use it
    /// (at least [`bridge_pages`], [`shares_memory`]), so that their activation need not grow
    /// it (a `memory.grow` costs every run two page-protection changes); the dispatcher's
    /// [`bridge_pages`] when no program uses it. A lone program's data segments that stay
    /// active there ([`Layout::data_floor`]) thus fit at instantiation.
    pub fn memory0_pages(&self) -> u64 {
        self.inputs
            .iter()
            .zip(&self.layouts)
            .filter(|(_, l)| l.shared)
            .map(|(input, _)| input.memory.initial)
            .min()
            .unwrap_or_else(|| bridge_pages(&self.router))
    }

    /// Number of data segments: the dispatcher's static data, then every program's.
    pub fn data_count(&self) -> u32 {
        1 + self
            .layouts
            .iter()
            .map(|l| l.passive_data + l.active.len() as u32)
            .sum::<u32>()
    }
}

impl Generated {
    /// The dispatcher's functions, which start the programs at `starts`; their types, after
    /// the allocator's and `[] -> []`, join the type section.
    fn new(
        router: &Router,
        imports: &WasiImports,
        env: &BridgeEnv,
        starts: &[u32],
        table_grows: bool,
        types: &mut TypeInterner,
    ) -> Self {
        let (p, r) = bridge::alloc_signature();
        let alloc_type = types.func(&p, &r);
        let dispatch_imports = DispatchImports {
            fd_write: imports.index("fd_write"),
            proc_exit: imports.index("proc_exit"),
            args_sizes_get: imports.index("args_sizes_get"),
            args_get: imports.index("args_get"),
            environ_sizes_get: imports.index("environ_sizes_get"),
            environ_get: imports.index("environ_get"),
        };
        let funcs = router.functions(env.alloc_func + 1, &dispatch_imports, env, starts);
        let start_type = types.func(&[], &[]);
        let grow_type = types.func(&[ValType::I32], &[ValType::I32]);
        let table_grow_type =
            table_grows.then(|| types.func(&[ValType::FUNCREF, ValType::I32], &[ValType::I32]));
        let dispatch = funcs
            .into_iter()
            .map(|f| {
                let ty = types.func(&f.params, &f.results);
                (f, ty)
            })
            .collect();
        Generated {
            alloc_type,
            start_type,
            grow_type,
            table_grow_type,
            dispatch,
        }
    }
}

/// Imported WASI functions, sorted by name, with their type: import `i` is function `i`.
pub(crate) struct WasiImports(Vec<(&'static str, u32)>);

impl WasiImports {
    /// Every WASI function a program or the dispatcher uses, sorted by name, with its type.
    fn new(inputs: &[Input<'_>], types: &mut TypeInterner) -> Self {
        let mut used: Vec<&'static str> = DISPATCHER_IMPORTS.to_vec();
        for input in inputs {
            used.extend(
                input
                    .imports
                    .iter()
                    .filter_map(|i| i.wasi().map(|f| f.name)),
            );
        }
        used.sort_unstable();
        used.dedup();
        let imports = used
            .into_iter()
            .map(|name| {
                let (p, r) = bridge::signature(wasi::lookup(name).expect("known"));
                (name, types.func(&p, &r))
            })
            .collect();
        WasiImports(imports)
    }

    /// Number of imports.
    pub fn len(&self) -> u32 {
        self.0.len() as u32
    }

    /// The imports in index order: name and type.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0.iter().copied()
    }

    /// The function index of an imported WASI function.
    pub fn index(&self, name: &str) -> u32 {
        self.0
            .binary_search_by_key(&name, |(n, _)| n)
            .expect("imported") as u32
    }

    /// The type of an imported WASI function (and of its trampolines).
    pub fn ty(&self, name: &str) -> u32 {
        self.0[self.index(name) as usize].1
    }
}

/// The dispatcher that selects the programs by their `digests` and `argv[0]` names.
fn route(programs: &[Program<'_>], digests: &[[u8; 32]]) -> Result<Router, MergeError> {
    let routes: Vec<RouteEntry> = programs
        .iter()
        .zip(digests)
        .map(|(p, d)| RouteEntry {
            name: p.name.clone(),
            digest: *d,
            aliases: p.aliases.clone(),
        })
        .collect();
    Router::new(&routes).map_err(|e| MergeError::Route(e.to_string()))
}

/// Lays the programs out one after the other in every index space, their functions from
/// `first_func`. Memory 0, globals 0 and 1 and data segment 0 are the bridge's. Programs
/// marked `shared` use memory 0 as theirs ([`shares_memory`]); the others get the next memory.
/// Programs marked in `shared_table` use table 0 as theirs ([`shares_table`]); when there is
/// one, the other programs' tables follow it.
fn lay_out<'a>(
    inputs: &[Input<'a>],
    first_func: u32,
    shared: &[bool],
    shared_table: &[bool],
) -> Vec<Layout<'a>> {
    let mut layouts = Vec::with_capacity(inputs.len());
    let first_table = shared_table.iter().any(|&s| s) as u32;
    let (mut func, mut table, mut global, mut tag, mut elem, mut data, mut memory) =
        (first_func, first_table, 2u32, 0u32, 0u32, 1u32, 1u32);
    for ((input, &shared), &shared_table) in inputs.iter().zip(shared).zip(shared_table) {
        let trampolines = if shared {
            Vec::new()
        } else {
            trampolines(input)
        };
        let stubs = stub_count(input) as u32;
        let (passive, active) = split_data(input);
        let active = segments::coalesce(active);
        let stub_base = func + trampolines.len() as u32;
        let start_func = stub_base + stubs + input.functions.len() as u32;
        let checked_grow = shared && input.memory.maximum.is_some_and(|m| m < MAX_PAGES);
        let checked_table_grow = shared_table && input.tables[0].ty.maximum.is_some();
        let after_start = start_func + 1 + checked_grow as u32;
        let l = Layout {
            memory: if shared { 0 } else { memory },
            shared,
            grow_func: checked_grow.then_some(start_func + 1),
            environ: shared && reads_environ(input),
            shared_table,
            table_grow_func: checked_table_grow.then_some(after_start),
            func_base: func,
            stub_base,
            defined_base: stub_base + stubs,
            start_func,
            trampolines,
            table_base: if shared_table { 0 } else { table },
            started_global: global,
            global_base: global + 1,
            tag_base: tag,
            elem_base: elem,
            data_base: data,
            passive_data: passive as u32,
            active,
            eager_tables: consteval::eager_tables(input),
            reindex: Reindex::default(),
            data_floor: None,
        };
        func = l.end_func();
        memory += !shared as u32;
        table += if shared_table {
            0
        } else {
            input.tables.len() as u32
        };
        global += 1 + input.globals.len() as u32;
        tag += input.tags.len() as u32;
        elem += input.elements.len() as u32;
        data += passive as u32 + l.active.len() as u32;
        layouts.push(l);
    }
    layouts
}

/// Fills `l.reindex`: the program's rec groups join the output types, its functions map to
/// their trampolines, stubs and defined functions, its data segments to the output's.
fn index_maps(
    input: &Input<'_>,
    l: &mut Layout<'_>,
    imports: &WasiImports,
    environ: Option<EnvironCache>,
    types: &mut TypeInterner,
) -> Result<(), MergeError> {
    let mut r = Reindex {
        memory: l.memory,
        grow_func: l.grow_func,
        table_grow_func: l.table_grow_func,
        shared_table: l.shared_table,
        table_base: l.table_base,
        global_base: l.global_base,
        tag_base: l.tag_base,
        elem_base: l.elem_base,
        eager_tables: l.eager_tables,
        ..Default::default()
    };
    for group in &input.rec_groups {
        let explicit = group.is_explicit_rec_group();
        let n = group.types().len() as u32;
        let first = r.types.len();
        // Assume the group lands at the end; internal references then resolve.
        r.types.extend(types.len()..types.len() + n);
        r.touched_type = false;
        let subtypes = group
            .clone()
            .into_types()
            .map(|t| r.sub_type(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let at = types.group(explicit, subtypes, !r.touched_type);
        for (j, t) in r.types[first..].iter_mut().enumerate() {
            *t = at + j as u32;
        }
    }
    r.funcs = function_map(input, l, imports, environ);
    r.data = data_map(input, l);
    l.reindex = r;
    Ok(())
}

/// Input function index → output function index: imports go to their trampoline (to the
/// import itself when the program shares memory 0) or stub.
fn function_map(
    input: &Input<'_>,
    l: &Layout<'_>,
    imports: &WasiImports,
    environ: Option<EnvironCache>,
) -> Vec<u32> {
    let mut next_stub = l.stub_base;
    input
        .imports
        .iter()
        .map(|i| match i {
            FuncImport::Wasi(func) if l.shared => match (func.role, environ) {
                (wasi::Role::EnvironSizesGet, Some(c)) => c.sizes_get(),
                (wasi::Role::EnvironGet, Some(c)) => c.get(),
                _ => imports.index(func.name),
            },
            FuncImport::Wasi(func) => {
                l.func_base
                    + l.trampolines
                        .iter()
                        .position(|t| t.name == func.name)
                        .expect("has trampoline") as u32
            }
            FuncImport::Stubbed { .. } => {
                next_stub += 1;
                next_stub - 1
            }
        })
        .chain((0..input.functions.len() as u32).map(|j| l.defined_base + j))
        .collect()
}

/// Input data index → output data index. Active segments are dropped after instantiation;
/// references to them (legal in `data.drop`, or a zero-length `memory.init`) go to a segment
/// the start function drops.
fn data_map(input: &Input<'_>, l: &Layout<'_>) -> Vec<u32> {
    let mut next_passive = l.data_base;
    let dropped = l.data_base + l.passive_data;
    input
        .data
        .iter()
        .map(|d| match d.kind {
            wasmparser::DataKind::Passive => {
                next_passive += 1;
                next_passive - 1
            }
            wasmparser::DataKind::Active { .. } => dropped,
        })
        .collect()
}

/// Counts passive data segments and collects the active ones in order.
pub(crate) fn split_data<'a>(
    input: &Input<'a>,
) -> (u64, Vec<(wasmparser::ConstExpr<'a>, &'a [u8])>) {
    let mut passive = 0;
    let mut active = Vec::new();
    for d in &input.data {
        match &d.kind {
            wasmparser::DataKind::Passive => passive += 1,
            wasmparser::DataKind::Active { offset_expr, .. } => {
                active.push((offset_expr.clone(), d.data))
            }
        }
    }
    (passive, active)
}

/// The distinct WASI functions a program imports, in first-import order: one trampoline each.
pub(crate) fn trampolines(input: &Input<'_>) -> Vec<&'static WasiFunc> {
    let mut trampolines: Vec<&'static WasiFunc> = Vec::new();
    for func in input.imports.iter().filter_map(FuncImport::wasi) {
        if !trampolines.iter().any(|t| t.name == func.name) {
            trampolines.push(func);
        }
    }
    trampolines
}

/// Number of foreign function imports a program has (one trapping stub each).
pub(crate) fn stub_count(input: &Input<'_>) -> usize {
    input.imports.iter().filter(|i| i.wasi().is_none()).count()
}
