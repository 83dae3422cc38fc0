//! The merge itself: index-space layout, per-program re-encoding, and assembly.

use crate::consteval;
use crate::error::{MergeError, Unsupported};
use crate::input::{FuncImport, Input};
use crate::limits::{self, Footprint};
use crate::reindex::Reindex;
use crate::segments::{self, ActiveData};
use crate::types::TypeInterner;
use crate::{DebugOptions, EntryMap, MergeMap, MergeOptions, Merged, Program};
use router_gen::bridge::{self, BridgeEnv};
use router_gen::dispatch::{DispatchImports, RouteEntry, Router};
use router_gen::wasi::{self, WasiFunc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use wasm_encoder::reencode::Reencode;
use wasm_encoder::{
    ConstExpr, CustomSection, DataCountSection, ElementSection, Elements, Encode, EntityType,
    ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType, ImportSection,
    MemorySection, MemoryType, Module, NameMap, NameSection, Section, TableSection, TableType,
    TagSection, ValType,
};

/// Name of the custom section that describes the entries (JSON, see docs/format.md).
pub const ENTRIES_SECTION: &str = "megabin.entries";

/// Per-program layout in the output index spaces.
struct Layout<'a> {
    memory: u32,
    func_base: u32,
    /// Distinct WASI functions imported, in first-import order: one trampoline each.
    trampolines: Vec<&'static WasiFunc>,
    /// First stub of a foreign import (they follow the trampolines, one per stubbed import).
    stub_base: u32,
    defined_base: u32,
    start_func: u32,
    table_base: u32,
    started_global: u32,
    global_base: u32,
    tag_base: u32,
    elem_base: u32,
    data_base: u32,
    passive_data: u32,
    active: Vec<ActiveData<'a>>,
    /// Tables at their original size with active element segments, applied at instantiation
    /// ([`consteval::eager_tables`]); otherwise empty tables filled by `<name>_start`.
    eager_tables: bool,
}

pub(crate) fn merge(
    programs: &[Program<'_>],
    options: &MergeOptions,
    debug: &DebugOptions,
) -> Result<Merged, MergeError> {
    let jobs = options.jobs;
    if programs.is_empty() {
        return Err(MergeError::Empty);
    }
    check_names(programs)?;
    // Refuse oversized inputs before spending time validating them.
    let sizes = programs.iter().fold(Footprint::base(), |acc, p| {
        acc.plus(Footprint::oversized(p.wasm.len()))
    });
    if sizes.bytes > limits::MAX_MODULE_BYTES {
        sizes.check().map_err(MergeError::TooLarge)?;
    }
    let inputs = parse_all(programs, jobs, options.stub_foreign_imports)?;
    let total = inputs
        .iter()
        .zip(programs)
        .fold(Footprint::base(), |acc, (i, p)| {
            acc.plus(Footprint::of_input(i, p.wasm.len()))
        });
    total.check().map_err(MergeError::TooLarge)?;

    let digests: Vec<[u8; 32]> = programs
        .iter()
        .map(|p| Sha256::digest(p.wasm).into())
        .collect();
    let routes: Vec<RouteEntry> = programs
        .iter()
        .zip(&digests)
        .map(|(p, d)| RouteEntry {
            name: p.name.clone(),
            digest: *d,
            aliases: p.aliases.clone(),
        })
        .collect();
    let router = Router::new(&routes).map_err(|e| MergeError::Route(e.to_string()))?;

    // --- imports: every WASI function used by a program or the dispatcher, sorted by name.
    let mut used: Vec<&'static str> = vec![
        "fd_write",
        "proc_exit",
        "args_sizes_get",
        "args_get",
        "environ_sizes_get",
        "environ_get",
    ];
    for input in &inputs {
        used.extend(
            input
                .imports
                .iter()
                .filter_map(|i| i.wasi().map(|f| f.name)),
        );
    }
    used.sort_unstable();
    used.dedup();
    let import_index = |name: &str| used.binary_search(&name).expect("imported") as u32;
    let mut types = TypeInterner::default();
    let mut imports = ImportSection::new();
    for name in &used {
        let func = wasi::lookup(name).expect("known");
        let (p, r) = bridge::signature(func);
        imports.import(
            wasi::WASI_MODULE,
            name,
            EntityType::Function(types.func(&p, &r)),
        );
    }
    let n_imports = used.len() as u32;
    let alloc_func = n_imports;
    let dispatch_first = n_imports + 1;
    let env = BridgeEnv {
        memory: 0,
        alloc_func,
        cursor_global: 0,
        scratch_base: router.scratch_base(),
    };

    // --- layout of every program in every index space.
    let mut layouts = Vec::with_capacity(inputs.len());
    let (mut func, mut table, mut global, mut tag, mut elem, mut data) =
        (dispatch_first + Router::FUNCS, 0u32, 1u32, 0u32, 0u32, 1u32);
    for (k, input) in inputs.iter().enumerate() {
        let mut trampolines: Vec<&'static WasiFunc> = Vec::new();
        for func in input.imports.iter().filter_map(FuncImport::wasi) {
            if !trampolines.iter().any(|t| t.name == func.name) {
                trampolines.push(func);
            }
        }
        let stubs = input.imports.len() as u32
            - input.imports.iter().filter(|i| i.wasi().is_some()).count() as u32;
        let (passive, active) = limits::split_data(input);
        let active = segments::coalesce(active);
        let stub_base = func + trampolines.len() as u32;
        let l = Layout {
            memory: 1 + k as u32,
            func_base: func,
            stub_base,
            defined_base: stub_base + stubs,
            start_func: stub_base + stubs + input.functions.len() as u32,
            trampolines,
            table_base: table,
            started_global: global,
            global_base: global + 1,
            tag_base: tag,
            elem_base: elem,
            data_base: data,
            passive_data: passive as u32,
            active,
            eager_tables: consteval::eager_tables(input),
        };
        func = l.start_func + 1;
        table += input.tables.len() as u32;
        global += 1 + input.globals.len() as u32;
        tag += input.tags.len() as u32;
        elem += input.elements.len() as u32;
        data += passive as u32 + l.active.len() as u32;
        layouts.push(l);
    }
    let starts: Vec<u32> = layouts.iter().map(|l| l.start_func).collect();

    // --- types of every program (sequential: the interner is shared).
    let mut reindexes = Vec::with_capacity(inputs.len());
    for (input, l) in inputs.iter().zip(&layouts) {
        let mut r = Reindex {
            memory: l.memory,
            table_base: l.table_base,
            global_base: l.global_base,
            tag_base: l.tag_base,
            elem_base: l.elem_base,
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
                .map_err(|e| MergeError::Internal(e.to_string()))?;
            let at = types.group(explicit, subtypes, !r.touched_type);
            for (j, t) in r.types[first..].iter_mut().enumerate() {
                *t = at + j as u32;
            }
        }
        let mut next_stub = l.stub_base;
        r.funcs = input
            .imports
            .iter()
            .map(|i| match i {
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
            .collect();
        let mut data_map = Vec::with_capacity(input.data.len());
        let mut next_passive = l.data_base;
        // Active segments are dropped after instantiation; references to them (legal in
        // `data.drop`, or a zero-length `memory.init`) go to a segment the start function drops.
        let dropped = l.data_base + l.passive_data;
        for d in &input.data {
            match d.kind {
                wasmparser::DataKind::Passive => {
                    data_map.push(next_passive);
                    next_passive += 1;
                }
                wasmparser::DataKind::Active { .. } => data_map.push(dropped),
            }
        }
        r.data = data_map;
        reindexes.push(r);
    }
    let func_type_of =
        |types: &mut TypeInterner, (p, r): (Vec<ValType>, Vec<ValType>)| types.func(&p, &r);
    let alloc_type = func_type_of(&mut types, bridge::alloc_signature());
    let dispatch_imports = DispatchImports {
        fd_write: import_index("fd_write"),
        proc_exit: import_index("proc_exit"),
        args_sizes_get: import_index("args_sizes_get"),
        args_get: import_index("args_get"),
        environ_sizes_get: import_index("environ_sizes_get"),
        environ_get: import_index("environ_get"),
    };
    let dispatch_funcs = router.functions(dispatch_first, &dispatch_imports, &env, &starts);
    let start_type = types.func(&[], &[]);

    // --- per-program code, in parallel.
    let code = encode_programs(
        &inputs,
        &layouts,
        &mut reindexes,
        &router,
        &env,
        &import_index,
        jobs,
    )?;

    // --- assemble. The code and data sections are written straight into the output (see
    // `write_code_section`, `write_data_section`): no intermediate copy of code or data.
    let mut functions = FunctionSection::new();
    let mut code_bodies: Vec<Vec<u8>> = Vec::new();
    let mut names = NameMapBuilder::default();
    for (i, name) in used.iter().enumerate() {
        names.func(i as u32, format!("wasi::{name}"));
    }
    functions.function(alloc_type);
    code_bodies.push(raw_body(&bridge::alloc_function(&env)));
    names.func(alloc_func, "megabin::bridge_alloc".into());
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    for (j, f) in dispatch_funcs.iter().enumerate() {
        let idx = dispatch_first + j as u32;
        functions.function(types.func(&f.params, &f.results));
        code_bodies.push(raw_body(&f.body));
        names.func(idx, f.name.clone());
        if let Some(e) = f.export {
            exports.export(e, ExportKind::Func, idx);
        }
    }

    let mut memories = MemorySection::new();
    let bridge_pages = (router.scratch_base() as u64).div_ceil(65536).max(1);
    memories.memory(MemoryType {
        minimum: bridge_pages,
        maximum: Some(65536),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut tables = TableSection::new();
    let mut tags = TagSection::new();
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(router.scratch_base() as i32),
    );
    let mut elements = ElementSection::new();
    let mut declared: Vec<u32> = Vec::new();
    let mut entry_maps = Vec::new();
    let mut memory_names = NameMap::new();
    memory_names.append(0, "megabin::bridge");
    let mut global_names = NameMap::new();
    global_names.append(0, "megabin::cursor");

    let mut program_code = Vec::with_capacity(code.len());
    for (k, ((input, l), (p, out))) in inputs
        .iter()
        .zip(&layouts)
        .zip(programs.iter().zip(code))
        .enumerate()
    {
        let r = &mut reindexes[k];
        let name = &p.name;
        for (j, t) in l.trampolines.iter().enumerate() {
            let (pp, rr) = bridge::signature(t);
            functions.function(types.func(&pp, &rr));
            names.func(l.func_base + j as u32, format!("{name}::wasi::{}", t.name));
        }
        let mut stub = l.stub_base;
        for i in &input.imports {
            if let FuncImport::Stubbed { module, name, ty } = i {
                functions.function(r.types[*ty as usize]);
                names.func(stub, router_gen::stub::function_name(module, name));
                stub += 1;
            }
        }
        for &ty in &input.functions {
            functions.function(r.types[ty as usize]);
        }
        functions.function(start_type);
        names.func(l.start_func, format!("{name}::start"));
        program_code.push(out.bodies);
        if let Some(n) = &input.names {
            for sub in n.clone() {
                if let Ok(wasmparser::Name::Function(map)) = sub {
                    for naming in map.into_iter().flatten() {
                        if naming.index >= input.num_imported_funcs() {
                            if let Some(&idx) = r.funcs.get(naming.index as usize) {
                                names.func(idx, input_function_name(name, naming.name));
                            }
                        }
                    }
                }
            }
        }
        for e in &input.exports {
            if e.kind == wasmparser::ExternalKind::Func {
                declared.push(r.funcs[e.index as usize]);
            }
        }

        memories.memory(MemoryType {
            minimum: 0,
            maximum: input.memory.maximum,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        memory_names.append(l.memory, &format!("{name}::memory"));
        for t in &input.tables {
            let ty = TableType {
                element_type: r.ref_type(t.ty.element_type).map_err(internal)?,
                table64: false,
                minimum: if l.eager_tables { t.ty.initial } else { 0 },
                maximum: t.ty.maximum,
                shared: false,
            };
            match &t.init {
                wasmparser::TableInit::RefNull => tables.table(ty),
                wasmparser::TableInit::Expr(e) => {
                    tables.table_with_init(ty, &r.const_expr(e.clone()).map_err(internal)?)
                }
            };
        }
        for t in &input.tags {
            tags.tag(r.tag_type(*t).map_err(internal)?);
        }
        global_names.append(l.started_global, &format!("{name}::started"));
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
        for g in &input.globals {
            globals.global(
                r.global_type(g.ty).map_err(internal)?,
                &r.const_expr(g.init_expr.clone()).map_err(internal)?,
            );
        }
        for e in &input.elements {
            let items = match e.items.clone() {
                wasmparser::ElementItems::Functions(fs) => Elements::Functions(
                    fs.into_iter()
                        .map(|f| f.map(|f| r.funcs[f as usize]))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| internal(e.into()))?
                        .into(),
                ),
                wasmparser::ElementItems::Expressions(ty, es) => Elements::Expressions(
                    r.ref_type(ty).map_err(internal)?,
                    es.into_iter()
                        .map(|e| {
                            e.map_err(|e| internal(e.into()))
                                .and_then(|e| r.const_expr(e).map_err(internal))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .into(),
                ),
            };
            match &e.kind {
                wasmparser::ElementKind::Declared => elements.declared(items),
                wasmparser::ElementKind::Active {
                    table_index,
                    offset_expr,
                } if l.eager_tables => elements.active(
                    Some(l.table_base + table_index.unwrap_or(0)),
                    &r.const_expr(offset_expr.clone()).map_err(internal)?,
                    items,
                ),
                _ => elements.passive(items),
            };
        }
        let start_export = format!("{name}_start");
        exports.export(&start_export, ExportKind::Func, l.start_func);
        exports.export(&format!("{name}.memory"), ExportKind::Memory, l.memory);
        if debug.export_functions {
            for e in &input.exports {
                if e.kind == wasmparser::ExternalKind::Func && e.name != "memory" {
                    exports.export(
                        &format!("{name}.{}", e.name),
                        ExportKind::Func,
                        r.funcs[e.index as usize],
                    );
                }
            }
        }
        let code_bytes: usize = input.code.iter().map(|b| b.range().len()).sum();
        entry_maps.push(EntryMap {
            name: name.clone(),
            digest: digests[k],
            aliases: routes[k].aliases.clone(),
            start_export,
            memory: l.memory,
            functions: l.func_base..l.start_func + 1,
            trampolines: l.func_base..l.stub_base,
            tables: l.table_base..l.table_base + input.tables.len() as u32,
            globals: l.started_global..l.global_base + input.globals.len() as u32,
            tags: l.tag_base..l.tag_base + input.tags.len() as u32,
            elements: l.elem_base..l.elem_base + input.elements.len() as u32,
            data: l.data_base..l.data_base + l.passive_data + l.active.len() as u32,
            code_bytes: code_bytes as u64,
            data_bytes: input.data.iter().map(|d| d.data.len() as u64).sum(),
            stubbed_imports: input.stubbed_imports(),
        });
    }
    declared.sort_unstable();
    declared.dedup();
    if !declared.is_empty() {
        elements.declared(Elements::Functions(declared.into()));
    }

    let map = MergeMap {
        format: crate::FORMAT.to_string(),
        entries: entry_maps,
    };
    let mut module = Module::new();
    module.section(&types.section());
    module.section(&imports);
    module.section(&functions);
    module.section(&tables);
    module.section(&memories);
    if !tags.is_empty() {
        module.section(&tags);
    }
    module.section(&globals);
    module.section(&exports);
    module.section(&elements);
    let data_count = 1 + layouts
        .iter()
        .map(|l| l.passive_data + l.active.len() as u32)
        .sum::<u32>();
    module.section(&DataCountSection { count: data_count });
    let head = module.finish();
    let mut name_section = NameSection::new();
    name_section.module("megabin");
    name_section.functions(&names.finish());
    name_section.memories(&memory_names);
    name_section.globals(&global_names);
    let mut tail = Vec::new();
    append_section(&mut tail, &name_section);
    let json = serde_json::to_vec(&map).map_err(|e| MergeError::Internal(e.to_string()))?;
    append_section(
        &mut tail,
        &CustomSection {
            name: ENTRIES_SECTION.into(),
            data: json.into(),
        },
    );
    // The output is allocated once, at its exact size, and the (possibly huge) code and data
    // are copied into it directly: peak memory is the inputs plus about one output.
    let code_size = code_section_size(&code_bodies, &program_code);
    let data_size = data_section_size(&router, &inputs, &layouts, data_count);
    let total = head.len()
        + 1
        + leb_len(code_size as u64)
        + code_size
        + 1
        + leb_len(data_size as u64)
        + data_size
        + tail.len();
    let mut wasm = Vec::with_capacity(total);
    wasm.extend_from_slice(&head);
    drop(head);
    write_code_section(&mut wasm, code_size, code_bodies, program_code);
    write_data_section(&mut wasm, data_size, &router, &inputs, &layouts, data_count);
    wasm.extend_from_slice(&tail);
    debug_assert_eq!(wasm.len(), total, "output size");
    wasmparser::Validator::new_with_features(crate::input::features())
        .validate_all(&wasm)
        .map_err(|e| MergeError::Internal(e.to_string()))?;
    Ok(Merged { wasm, map })
}

fn internal(e: wasm_encoder::reencode::Error<std::convert::Infallible>) -> MergeError {
    MergeError::Internal(e.to_string())
}

/// A function's body (locals and instructions) without its size prefix.
fn raw_body(f: &Function) -> Vec<u8> {
    f.clone().into_raw_body()
}

fn append_section(wasm: &mut Vec<u8>, section: &impl Section) {
    wasm.push(section.id());
    section.encode(wasm);
}

fn leb_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends a section header (id and payload size) whose payload the caller writes next.
/// Sizes fit: the module is at most 1 GiB (checked by the footprint before merging).
fn section_header(wasm: &mut Vec<u8>, id: u8, size: usize) {
    wasm.push(id);
    (size as u32).encode(wasm);
}

fn code_section_size(generated: &[Vec<u8>], programs: &[Vec<Vec<u8>>]) -> usize {
    let all = || generated.iter().chain(programs.iter().flatten());
    leb_len(all().count() as u64)
        + all()
            .map(|b| leb_len(b.len() as u64) + b.len())
            .sum::<usize>()
}

/// Writes the code section (payload `size` bytes): the generated functions, then each
/// program's bodies, freeing each body once written.
fn write_code_section(
    wasm: &mut Vec<u8>,
    size: usize,
    generated: Vec<Vec<u8>>,
    programs: Vec<Vec<Vec<u8>>>,
) {
    let count = generated.len() + programs.iter().map(Vec::len).sum::<usize>();
    section_header(wasm, 10, size);
    let start = wasm.len();
    (count as u32).encode(wasm);
    for body in generated.into_iter().chain(programs.into_iter().flatten()) {
        body.as_slice().encode(wasm);
    }
    debug_assert_eq!(wasm.len() - start, size, "code section size");
}

/// Data segment 0: the dispatcher's static data, active in memory 0.
fn static_segment(router: &Router) -> Vec<u8> {
    let mut segment0 = vec![0u8]; // active, memory 0
    ConstExpr::i32_const(router.static_base() as i32).encode(&mut segment0);
    router.static_bytes().encode(&mut segment0);
    segment0
}

fn data_section_size(
    router: &Router,
    inputs: &[Input<'_>],
    layouts: &[Layout<'_>],
    count: u32,
) -> usize {
    let passive = |len: usize| 1 + leb_len(len as u64) + len;
    let mut size = leb_len(count as u64) + static_segment(router).len();
    for (input, l) in inputs.iter().zip(layouts) {
        for d in &input.data {
            if let wasmparser::DataKind::Passive = d.kind {
                size += passive(d.data.len());
            }
        }
        size += l.active.iter().map(|a| passive(a.len())).sum::<usize>();
    }
    size
}

/// Writes the data section (payload `size` bytes): segment 0, then per program its passive
/// segments and its coalesced active segments (made passive). Each byte is copied once, from
/// the input into the output.
fn write_data_section(
    wasm: &mut Vec<u8>,
    size: usize,
    router: &Router,
    inputs: &[Input<'_>],
    layouts: &[Layout<'_>],
    count: u32,
) {
    section_header(wasm, 11, size);
    let start = wasm.len();
    count.encode(wasm);
    wasm.extend_from_slice(&static_segment(router));
    for (input, l) in inputs.iter().zip(layouts) {
        for d in &input.data {
            if let wasmparser::DataKind::Passive = d.kind {
                wasm.push(1);
                d.data.encode(wasm);
            }
        }
        for a in &l.active {
            wasm.push(1);
            (a.len() as u32).encode(wasm);
            a.write_to(wasm);
        }
    }
    debug_assert_eq!(wasm.len() - start, size, "data section size");
}

/// The name-section name of an input's function: its own name, unprefixed (prefixing every
/// name with `<entry>::` grew the name section by ~15 % and the megabinary past the sum of its
/// inputs; a trap's backtrace still names the program through its `<entry>::start` frame).
/// Names that look like megabin's own (`megabin::…`, `wasi::…`) are prefixed, so they cannot
/// be taken for generated code.
fn input_function_name(entry: &str, name: &str) -> String {
    if name.starts_with("megabin::") || name.starts_with("wasi::") {
        format!("{entry}::{name}")
    } else {
        name.to_string()
    }
}

/// Function names in index order (the name section wants them sorted).
#[derive(Default)]
struct NameMapBuilder {
    names: BTreeMap<u32, String>,
}

impl NameMapBuilder {
    fn func(&mut self, idx: u32, name: String) {
        self.names.insert(idx, name);
    }
    fn finish(self) -> NameMap {
        let mut m = NameMap::new();
        for (i, n) in &self.names {
            m.append(*i, n);
        }
        m
    }
}

/// Entry names that would be ambiguous in export or function names.
pub const RESERVED_NAMES: &[&str] = &["memory", "megabin_dispatch", "megabin", "wasi"];

fn check_names(programs: &[Program<'_>]) -> Result<(), MergeError> {
    let mut seen = std::collections::HashSet::new();
    for p in programs {
        let ok = !p.name.is_empty()
            && p.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !RESERVED_NAMES.contains(&p.name.as_str())
            && seen.insert(p.name.as_str());
        if !ok {
            return Err(MergeError::BadName(p.name.clone()));
        }
    }
    Ok(())
}

fn parse_all<'a>(
    programs: &[Program<'a>],
    jobs: usize,
    stub_foreign: bool,
) -> Result<Vec<Input<'a>>, MergeError> {
    let results = parallel_map(programs, jobs, |p| Input::parse(p.wasm, stub_foreign));
    results
        .into_iter()
        .zip(programs)
        .map(|(r, p)| {
            r.map_err(|reason: Unsupported| MergeError::Unsupported {
                entry: p.name.clone(),
                reason,
            })
        })
        .collect()
}

/// Runs `f` over `items` on up to `jobs` threads; results keep the input order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut out);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

/// Encoded function bodies of one program: trampolines, stubs, its own functions, its start.
struct ProgramCode {
    bodies: Vec<Vec<u8>>,
}

fn encode_programs(
    inputs: &[Input<'_>],
    layouts: &[Layout<'_>],
    reindexes: &mut [Reindex],
    router: &Router,
    env: &BridgeEnv,
    import_index: &(dyn Fn(&str) -> u32 + Sync),
    jobs: usize,
) -> Result<Vec<ProgramCode>, MergeError> {
    let work: Vec<usize> = (0..inputs.len()).collect();
    let reindexes: &[Reindex] = reindexes;
    let results = parallel_map(&work, jobs, |&k| {
        let (input, l) = (&inputs[k], &layouts[k]);
        // Each thread works on its own copy of the maps (they are read-only here).
        let mut r = Reindex {
            types: reindexes[k].types.clone(),
            funcs: reindexes[k].funcs.clone(),
            data: reindexes[k].data.clone(),
            memory: l.memory,
            table_base: l.table_base,
            global_base: l.global_base,
            tag_base: l.tag_base,
            elem_base: l.elem_base,
            touched_type: false,
        };
        encode_program(input, l, &mut r, router, k, env, import_index)
    });
    results.into_iter().collect()
}

fn encode_program(
    input: &Input<'_>,
    l: &Layout<'_>,
    r: &mut Reindex,
    router: &Router,
    k: usize,
    env: &BridgeEnv,
    import_index: &(dyn Fn(&str) -> u32 + Sync),
) -> Result<ProgramCode, MergeError> {
    let mut bodies = Vec::with_capacity(input.imports.len() + input.code.len() + 1);
    let mut push = |f: Function| bodies.push(f.into_raw_body());
    for t in &l.trampolines {
        let sizes = t.sizes_from.map(import_index);
        push(bridge::trampoline(
            t,
            l.memory,
            import_index(t.name),
            sizes,
            env,
        ));
    }
    for _ in input.imports.iter().filter(|i| i.wasi().is_none()) {
        push(router_gen::stub::function());
    }
    for body in &input.code {
        let mut f = r.new_function_with_parsed_locals(body).map_err(internal)?;
        let mut reader = body
            .get_operators_reader()
            .map_err(|e| internal(e.into()))?;
        while !reader.eof() {
            f.instruction(&r.parse_instruction(&mut reader).map_err(internal)?);
        }
        push(f);
    }
    push(start_function(input, l, r, router, k, env)?);
    Ok(ProgramCode { bodies })
}

/// Appends a constant expression's instructions (without its `end`) to `body`.
fn inline_expr(
    r: &mut Reindex,
    expr: &wasmparser::ConstExpr<'_>,
    body: &mut Vec<u8>,
) -> Result<(), MergeError> {
    let mut bytes = Vec::new();
    r.const_expr(expr.clone())
        .map_err(internal)?
        .encode(&mut bytes);
    bytes.pop(); // the trailing `end`
    body.extend_from_slice(&bytes);
    Ok(())
}

/// `<name>_start`: activate the program (memory, tables, segments), run its start function
/// and `_start`. A second call traps after a message on stderr.
fn start_function(
    input: &Input<'_>,
    l: &Layout<'_>,
    r: &mut Reindex,
    router: &Router,
    k: usize,
    env: &BridgeEnv,
) -> Result<Function, MergeError> {
    use wasm_encoder::{BlockType, InstructionSink};
    let mut body = Vec::new();
    let (msg_ptr, msg_len) = router.started_message(k);
    let message_func = env.alloc_func + 1 + Router::MESSAGE;
    InstructionSink::new(&mut body)
        .global_get(l.started_global)
        .if_(BlockType::Empty)
        .i32_const(msg_ptr as i32)
        .i32_const(msg_len as i32)
        .call(message_func)
        .unreachable()
        .end()
        .i32_const(1)
        .global_set(l.started_global);
    let min = input.memory.initial;
    if min > 0 {
        InstructionSink::new(&mut body)
            .i32_const(min as i32)
            .memory_grow(l.memory)
            .i32_const(-1)
            .i32_eq()
            .if_(BlockType::Empty)
            .unreachable()
            .end();
    }
    for (t, table) in input.tables.iter().enumerate() {
        if table.ty.initial == 0 || l.eager_tables {
            continue;
        }
        match &table.init {
            wasmparser::TableInit::RefNull => {
                let ty = r.ref_type(table.ty.element_type).map_err(internal)?;
                InstructionSink::new(&mut body).ref_null(ty.heap_type);
            }
            wasmparser::TableInit::Expr(e) => inline_expr(r, e, &mut body)?,
        }
        InstructionSink::new(&mut body)
            .i32_const(table.ty.initial as i32)
            .table_grow(l.table_base + t as u32)
            .i32_const(-1)
            .i32_eq()
            .if_(BlockType::Empty)
            .unreachable()
            .end();
    }
    for (j, e) in input.elements.iter().enumerate() {
        if let wasmparser::ElementKind::Active {
            table_index,
            offset_expr,
        } = &e.kind
        {
            if l.eager_tables {
                continue;
            }
            let count = match &e.items {
                wasmparser::ElementItems::Functions(f) => f.count(),
                wasmparser::ElementItems::Expressions(_, x) => x.count(),
            };
            inline_expr(r, offset_expr, &mut body)?;
            let seg = l.elem_base + j as u32;
            InstructionSink::new(&mut body)
                .i32_const(0)
                .i32_const(count as i32)
                .table_init(l.table_base + table_index.unwrap_or(0), seg)
                .elem_drop(seg);
        }
    }
    for (j, a) in l.active.iter().enumerate() {
        let seg = l.data_base + l.passive_data + j as u32;
        match a {
            ActiveData::Const { offset, .. } | ActiveData::Joined { offset, .. } => {
                InstructionSink::new(&mut body).i32_const(*offset as i32);
            }
            ActiveData::Expr { offset, .. } => inline_expr(r, offset, &mut body)?,
        }
        InstructionSink::new(&mut body)
            .i32_const(0)
            .i32_const(a.len() as i32)
            .memory_init(l.memory, seg)
            .data_drop(seg);
    }
    if let Some(s) = input.start {
        InstructionSink::new(&mut body).call(r.funcs[s as usize]);
    }
    InstructionSink::new(&mut body)
        .call(r.funcs[input.entry as usize])
        .end();
    let mut f = Function::new([]);
    f.raw(body);
    Ok(f)
}
