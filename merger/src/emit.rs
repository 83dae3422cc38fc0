//! The emit step: writes the module a [`Plan`] describes. Every program's code is re-encoded
//! in parallel ([`program_code`]); the other sections are built in order ([`Sections`]); then
//! the output is allocated once, at its exact size, and the (possibly huge) code and data are
//! copied into it directly ([`write`]): peak memory is the inputs plus about one output.

use crate::error::{internal, MergeError};
use crate::input::{FuncImport, Input};
use crate::map::{EntryMap, MergeMap, ENTRIES_SECTION};
use crate::parallel::parallel_map;
use crate::plan::{Layout, Plan, WasiImports};
use crate::reindex::Reindex;
use crate::segments::ActiveData;
use crate::{DebugOptions, Program};
use megabin_format::names;
use router_gen::bridge;
use router_gen::dispatch::Router;
use router_gen::wasi;
use std::collections::BTreeMap;
use wasm_encoder::reencode::Reencode;
use wasm_encoder::{
    BlockType, ConstExpr, CustomSection, DataCountSection, ElementSection, Elements, Encode,
    EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, InstructionSink, MemorySection, MemoryType, Module, NameMap, NameSection,
    RefType, Section, SectionId, TableSection, TableType, TagSection, ValType,
};

/// Encoded function bodies (locals and instructions, without their size prefix) of one
/// program: trampolines, stubs, its own functions, its start function.
pub(crate) struct ProgramCode {
    bodies: Vec<Vec<u8>>,
}

/// Re-encodes every program's functions against the plan, on up to `jobs` threads.
pub(crate) fn program_code(plan: &Plan<'_>, jobs: usize) -> Result<Vec<ProgramCode>, MergeError> {
    let work: Vec<usize> = (0..plan.inputs.len()).collect();
    let results = parallel_map(&work, jobs, |&k| {
        // Each thread works on its own copy of the maps (they are read-only here).
        let mut r = plan.layouts[k].reindex.clone();
        encode_program(plan, k, &mut r)
    });
    results.into_iter().collect()
}

fn encode_program(plan: &Plan<'_>, k: usize, r: &mut Reindex) -> Result<ProgramCode, MergeError> {
    let (input, l) = (&plan.inputs[k], &plan.layouts[k]);
    let mut bodies = Vec::with_capacity(input.imports.len() + input.code.len() + 1);
    let mut push = |f: Function| bodies.push(f.into_raw_body());
    for t in &l.trampolines {
        let sizes = t.sizes_from.map(|name| plan.imports.index(name));
        push(bridge::trampoline(
            t,
            l.memory,
            plan.imports.index(t.name),
            sizes,
            &plan.env,
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
    push(start_function(plan, k, r)?);
    if l.grow_func.is_some() {
        let max = input.memory.maximum.expect("a checked grow has a maximum");
        push(checked_grow(max as u32, Grows::Memory));
    }
    if l.table_grow_func.is_some() {
        let max = input.tables[0]
            .ty
            .maximum
            .expect("a checked grow has a maximum");
        push(checked_grow(max as u32, Grows::Table));
    }
    Ok(ProgramCode { bodies })
}

/// What a checked grow function grows: memory 0 or the shared table 0.
#[derive(Clone, Copy, PartialEq)]
enum Grows {
    Memory,
    Table,
}

/// The function standing for a program's `memory.grow` of memory 0 (`(delta) -> old | -1`)
/// or `table.grow` of the shared table 0 (`(init, delta) -> old | -1`): it refuses to grow
/// beyond the program's declared maximum `max` (the shared one may grow further), as
/// standalone.
fn checked_grow(max: u32, grows: Grows) -> Function {
    let delta = (grows == Grows::Table) as u32;
    let mut f = Function::new([]);
    let mut sink = f.instructions();
    sink.local_get(delta).i32_const(max as i32);
    match grows {
        Grows::Memory => sink.memory_size(0),
        Grows::Table => sink.table_size(0),
    };
    sink.i32_sub()
        .i32_gt_u()
        .if_(BlockType::Result(ValType::I32))
        .i32_const(-1)
        .else_();
    match grows {
        Grows::Memory => sink.local_get(delta).memory_grow(0),
        Grows::Table => sink.local_get(0).local_get(delta).table_grow(0),
    };
    sink.end().end();
    f
}

/// `<name>_start`: activate the program (memory, tables, segments), run its start function
/// and `_start`. A second call traps after a message on stderr. A program sharing memory 0
/// is activated by the dispatcher's `activate_shared` (any second activation traps), a
/// bridged one also tells `activate_bridged`.
fn start_function(plan: &Plan<'_>, k: usize, r: &mut Reindex) -> Result<Function, MergeError> {
    let (input, l) = (&plan.inputs[k], &plan.layouts[k]);
    let mut body = Vec::new();
    let (msg_ptr, msg_len) = plan.router.started_message(k);
    let helper = |offset: u32| plan.env.alloc_func + 1 + offset;
    let min = input.memory.initial;
    if l.shared {
        if l.environ {
            let cache = plan
                .environ
                .expect("a cache for programs that read environ");
            // After a program on the exported memory, the stash must not even read: its
            // scratch is that program's memory (activation would refuse the start anyway).
            InstructionSink::new(&mut body)
                .global_get(plan.env.activated_global)
                .i32_const(2)
                .i32_eq()
                .if_(BlockType::Empty)
                .unreachable()
                .end()
                .call(cache.stash);
        }
        if let Some(floor) = l.data_floor {
            // The program's data is in place already: the dispatcher's scratch (erased by the
            // activation) must have stayed below it.
            let (ptr, len) = plan.router.reached_data_message();
            InstructionSink::new(&mut body)
                .global_get(plan.env.cursor_global)
                .i32_const(floor as i32)
                .i32_gt_u()
                .if_(BlockType::Empty)
                .i32_const(ptr as i32)
                .i32_const(len as i32)
                .call(helper(Router::MESSAGE))
                .unreachable()
                .end();
        }
        InstructionSink::new(&mut body)
            .i32_const(min as i32)
            .call(helper(Router::ACTIVATE_SHARED));
    } else {
        // Activation first: after a program on the exported memory it traps before the
        // "already started" message is read from what is now that program's memory.
        InstructionSink::new(&mut body)
            .call(helper(Router::ACTIVATE_BRIDGED))
            .global_get(l.started_global)
            .if_(BlockType::Empty)
            .i32_const(msg_ptr as i32)
            .i32_const(msg_len as i32)
            .call(helper(Router::MESSAGE))
            .unreachable()
            .end()
            .i32_const(1)
            .global_set(l.started_global);
    }
    if min > 0 && !l.shared {
        InstructionSink::new(&mut body)
            .i32_const(min as i32)
            .memory_grow(l.memory);
        trap_if_grow_failed(&mut body);
    }
    let mut start = StartBody { input, l, r, body };
    if l.shared_table {
        start.fill_shared_table();
    } else if !l.eager_tables {
        start.grow_tables()?;
        start.apply_elements()?;
    }
    if l.data_floor.is_none() {
        start.apply_data()?;
    }
    let StartBody { r, mut body, .. } = start;
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

/// Traps when the `memory.grow` or `table.grow` just emitted returned -1.
fn trap_if_grow_failed(body: &mut Vec<u8>) {
    InstructionSink::new(body)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
}

/// The body of a program's start function being written, with what it is written from.
struct StartBody<'p, 'a> {
    input: &'p Input<'a>,
    l: &'p Layout<'a>,
    r: &'p mut Reindex,
    body: Vec<u8>,
}

impl StartBody<'_, '_> {
    fn sink(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.body)
    }

    /// Grows the program's (empty) tables to their initial size, with their initial value.
    fn grow_tables(&mut self) -> Result<(), MergeError> {
        let (input, l) = (self.input, self.l);
        for (t, table) in input.tables.iter().enumerate() {
            if table.ty.initial == 0 {
                continue;
            }
            match &table.init {
                wasmparser::TableInit::RefNull => {
                    let ty = self.r.ref_type(table.ty.element_type).map_err(internal)?;
                    self.sink().ref_null(ty.heap_type);
                }
                wasmparser::TableInit::Expr(e) => self.inline_expr(e)?,
            }
            self.sink()
                .i32_const(table.ty.initial as i32)
                .table_grow(l.table_base + t as u32);
            trap_if_grow_failed(&mut self.body);
        }
        Ok(())
    }

    /// Grows the shared table 0 (empty until now: only one program per instance activates)
    /// to the program's initial size and sets what its active element segments put there,
    /// one `table.set` per function, as instantiating it standalone would.
    fn fill_shared_table(&mut self) {
        let initial = self.input.tables[0].ty.initial;
        if initial > 0 {
            self.sink()
                .ref_null(wasm_encoder::HeapType::FUNC)
                .i32_const(initial as i32)
                .table_grow(0);
            trap_if_grow_failed(&mut self.body);
        }
        let items = crate::plan::shared_table_items(self.input).expect("planned");
        for (slot, func) in items {
            match func {
                Some(f) => {
                    let f = self.r.funcs[f as usize];
                    self.sink().i32_const(slot as i32).ref_func(f).table_set(0);
                }
                // The slot may hold a function an earlier segment put there.
                None => {
                    self.sink()
                        .i32_const(slot as i32)
                        .ref_null(wasm_encoder::HeapType::FUNC)
                        .table_set(0);
                }
            }
        }
    }

    /// Applies the program's active element segments (made passive) and drops them.
    fn apply_elements(&mut self) -> Result<(), MergeError> {
        let (input, l) = (self.input, self.l);
        for (j, e) in input.elements.iter().enumerate() {
            if let wasmparser::ElementKind::Active {
                table_index,
                offset_expr,
            } = &e.kind
            {
                let count = match &e.items {
                    wasmparser::ElementItems::Functions(f) => f.count(),
                    wasmparser::ElementItems::Expressions(_, x) => x.count(),
                };
                self.inline_expr(offset_expr)?;
                let seg = l.elem_base + j as u32;
                self.sink()
                    .i32_const(0)
                    .i32_const(count as i32)
                    .table_init(l.table_base + table_index.unwrap_or(0), seg)
                    .elem_drop(seg);
            }
        }
        Ok(())
    }

    /// Applies the program's (coalesced) active data segments, made passive, and drops them.
    fn apply_data(&mut self) -> Result<(), MergeError> {
        let l = self.l;
        for (j, a) in l.active.iter().enumerate() {
            let seg = l.data_base + l.passive_data + j as u32;
            match a {
                ActiveData::Const { offset, .. } | ActiveData::Joined { offset, .. } => {
                    self.sink().i32_const(*offset as i32);
                }
                ActiveData::Expr { offset, .. } => self.inline_expr(offset)?,
            }
            self.sink()
                .i32_const(0)
                .i32_const(a.len() as i32)
                .memory_init(l.memory, seg)
                .data_drop(seg);
        }
        Ok(())
    }

    /// Appends a constant expression's instructions (without its `end`).
    fn inline_expr(&mut self, expr: &wasmparser::ConstExpr<'_>) -> Result<(), MergeError> {
        let mut bytes = Vec::new();
        self.r
            .const_expr(expr.clone())
            .map_err(internal)?
            .encode(&mut bytes);
        bytes.pop(); // the trailing `end`
        self.body.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Every section but code and data, and the merge map, built in index order.
pub(crate) struct Sections {
    functions: FunctionSection,
    /// Bodies of the generated functions (the bridge allocator, the dispatcher).
    generated: Vec<Vec<u8>>,
    function_names: NameMapBuilder,
    memories: MemorySection,
    memory_names: NameMap,
    tables: TableSection,
    table_names: NameMap,
    tags: TagSection,
    globals: GlobalSection,
    global_names: NameMap,
    exports: ExportSection,
    elements: ElementSection,
    /// Functions the programs export: declared, so that `ref.func` may name them.
    declared: Vec<u32>,
    entries: Vec<EntryMap>,
}

impl Sections {
    /// Builds the sections: the bridge's own parts, then each program's.
    pub fn build(
        plan: &mut Plan<'_>,
        programs: &[Program<'_>],
        debug: &DebugOptions,
    ) -> Result<Self, MergeError> {
        let mut s = Sections::bridge(plan);
        let environ = plan.environ;
        let Plan {
            inputs,
            layouts,
            digests,
            generated,
            imports,
            ..
        } = plan;
        for (k, (input, l)) in inputs.iter().zip(layouts.iter_mut()).enumerate() {
            let name = &programs[k].name;
            let types = (
                generated.start_type,
                generated.grow_type,
                generated.table_grow_type,
            );
            s.program_functions(input, l, name, imports, types);
            s.program_names(input, l, name);
            s.program_storage(input, l, name)?;
            s.program_exports(input, l, name, debug);
            s.entries
                .push(entry_map(input, l, &programs[k], digests[k]));
        }
        if let Some(c) = environ {
            s.memories.memory(memory_type(0, Some(65536)));
            s.memory_names.append(c.memory, names::ENVIRON_MEMORY);
        }
        s.declared.sort_unstable();
        s.declared.dedup();
        if !s.declared.is_empty() {
            let declared = std::mem::take(&mut s.declared);
            s.elements.declared(Elements::Functions(declared.into()));
        }
        Ok(s)
    }

    /// The WASI import names, the bridge allocator, the dispatcher and its exports, the bridge
    /// memory and the allocator's cursor global.
    fn bridge(plan: &Plan<'_>) -> Self {
        let mut s = Sections {
            functions: FunctionSection::new(),
            generated: Vec::new(),
            function_names: NameMapBuilder::default(),
            memories: MemorySection::new(),
            memory_names: NameMap::new(),
            tables: TableSection::new(),
            table_names: NameMap::new(),
            tags: TagSection::new(),
            globals: GlobalSection::new(),
            global_names: NameMap::new(),
            exports: ExportSection::new(),
            elements: ElementSection::new(),
            declared: Vec::new(),
            entries: Vec::new(),
        };
        for (i, (name, _)) in plan.imports.iter().enumerate() {
            s.function_names.func(i as u32, names::wasi_import(name));
        }
        s.functions.function(plan.generated.alloc_type);
        s.generated
            .push(bridge::alloc_function(&plan.env).into_raw_body());
        let alloc = plan.env.alloc_func;
        s.function_names.func(alloc, names::BRIDGE_ALLOC.into());
        s.exports
            .export(names::BRIDGE_MEMORY_EXPORT, ExportKind::Memory, 0);
        for (j, (f, ty)) in plan.generated.dispatch.iter().enumerate() {
            let idx = alloc + 1 + j as u32;
            s.functions.function(*ty);
            s.generated.push(f.body.clone().into_raw_body());
            s.function_names.func(idx, f.name.clone());
            if let Some(e) = f.export {
                s.exports.export(e, ExportKind::Func, idx);
            }
        }
        if let Some(c) = plan.environ {
            let (sizes, get) = (
                plan.imports.index("environ_sizes_get"),
                plan.imports.index("environ_get"),
            );
            let helpers = [
                (
                    plan.generated.start_type,
                    bridge::stash_environ(&plan.env, c.memory, sizes, get),
                    "stash_environ",
                ),
                (
                    plan.imports.ty("environ_sizes_get"),
                    bridge::environ_sizes_cached(&plan.env, c.memory),
                    "environ_sizes_get",
                ),
                (
                    plan.imports.ty("environ_get"),
                    bridge::environ_get_cached(&plan.env, c.memory),
                    "environ_get",
                ),
            ];
            for (j, (ty, body, name)) in helpers.into_iter().enumerate() {
                s.functions.function(ty);
                s.generated.push(body.into_raw_body());
                s.function_names
                    .func(c.stash + j as u32, names::internal(name));
            }
        }
        if plan.layouts.iter().any(|l| l.shared_table) {
            s.tables.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 0,
                maximum: None,
                shared: false,
            });
            s.table_names.append(0, names::SHARED_TABLE);
        }
        s.memories
            .memory(memory_type(plan.memory0_pages(), Some(65536)));
        s.memory_names.append(0, names::BRIDGE_MEMORY);
        let cursor = ConstExpr::i32_const(plan.router.scratch_base() as i32);
        s.globals.global(flag_type(), &cursor);
        s.global_names.append(0, names::CURSOR_GLOBAL);
        s.globals.global(flag_type(), &ConstExpr::i32_const(0));
        s.global_names.append(1, names::ACTIVATED_GLOBAL);
        s
    }

    /// The program's trampolines, stubs, own functions and start function, with their names.
    fn program_functions(
        &mut self,
        input: &Input<'_>,
        l: &Layout<'_>,
        name: &str,
        imports: &WasiImports,
        (start, grow, table_grow): (u32, u32, Option<u32>),
    ) {
        for (j, t) in l.trampolines.iter().enumerate() {
            self.functions.function(imports.ty(t.name));
            self.function_names
                .func(l.func_base + j as u32, names::trampoline(name, t.name));
        }
        let mut stub = l.stub_base;
        for i in &input.imports {
            if let FuncImport::Stubbed { module, name, ty } = i {
                self.functions.function(l.reindex.types[*ty as usize]);
                self.function_names
                    .func(stub, router_gen::stub::function_name(module, name));
                stub += 1;
            }
        }
        for &ty in &input.functions {
            self.functions.function(l.reindex.types[ty as usize]);
        }
        self.functions.function(start);
        self.function_names
            .func(l.start_func, names::start_function(name));
        if let Some(f) = l.grow_func {
            self.functions.function(grow);
            self.function_names.func(f, names::checked_grow(name));
        }
        if let Some(f) = l.table_grow_func {
            self.functions
                .function(table_grow.expect("planned with the checked table grows"));
            self.function_names.func(f, names::checked_table_grow(name));
        }
    }

    /// The names the input gives its own functions (its name section), and its memory's name.
    fn program_names(&mut self, input: &Input<'_>, l: &Layout<'_>, name: &str) {
        if let Some(n) = &input.names {
            for sub in n.clone() {
                if let Ok(wasmparser::Name::Function(map)) = sub {
                    for naming in map.into_iter().flatten() {
                        if naming.index >= input.num_imported_funcs() {
                            if let Some(&idx) = l.reindex.funcs.get(naming.index as usize) {
                                self.function_names
                                    .func(idx, input_function_name(name, naming.name));
                            }
                        }
                    }
                }
            }
        }
        for e in &input.exports {
            if e.kind == wasmparser::ExternalKind::Func {
                self.declared.push(l.reindex.funcs[e.index as usize]);
            }
        }
    }

    /// The program's memory (empty until it starts), tables, tags, "started" flag, globals and
    /// element segments.
    fn program_storage(
        &mut self,
        input: &Input<'_>,
        l: &mut Layout<'_>,
        name: &str,
    ) -> Result<(), MergeError> {
        let r = &mut l.reindex;
        if !l.shared {
            self.memories.memory(memory_type(0, input.memory.maximum));
            self.memory_names
                .append(l.memory, &names::memory_name(name));
        }
        for t in input.tables.iter().filter(|_| !l.shared_table) {
            r.parse_table(&mut self.tables, t.clone())
                .map_err(internal)?;
        }
        for t in &input.tags {
            self.tags.tag(r.tag_type(*t).map_err(internal)?);
        }
        self.global_names
            .append(l.started_global, &format!("{name}::started"));
        self.globals.global(flag_type(), &ConstExpr::i32_const(0));
        for g in &input.globals {
            r.parse_global(&mut self.globals, g.clone())
                .map_err(internal)?;
        }
        for e in &input.elements {
            r.parse_element(&mut self.elements, e.clone())
                .map_err(internal)?;
        }
        Ok(())
    }

    /// `<name>_start`, `<name>.memory`, and with [`DebugOptions::export_functions`] the
    /// input's function exports.
    fn program_exports(
        &mut self,
        input: &Input<'_>,
        l: &Layout<'_>,
        name: &str,
        debug: &DebugOptions,
    ) {
        self.exports
            .export(&names::start_export(name), ExportKind::Func, l.start_func);
        self.exports
            .export(&names::memory_export(name), ExportKind::Memory, l.memory);
        if debug.export_functions {
            for e in &input.exports {
                if e.kind == wasmparser::ExternalKind::Func && e.name != names::BRIDGE_MEMORY_EXPORT
                {
                    self.exports.export(
                        &names::function_export(name, e.name),
                        ExportKind::Func,
                        l.reindex.funcs[e.index as usize],
                    );
                }
            }
        }
    }

    /// The merge map (taken out of the sections).
    pub fn take_map(&mut self) -> MergeMap {
        MergeMap {
            format: crate::FORMAT.to_string(),
            entries: std::mem::take(&mut self.entries),
        }
    }
}

/// One program's entry in the merge map.
fn entry_map(input: &Input<'_>, l: &Layout<'_>, p: &Program<'_>, digest: [u8; 32]) -> EntryMap {
    let code_bytes: usize = input.code.iter().map(|b| b.range().len()).sum();
    EntryMap {
        name: p.name.clone(),
        digest: megabin_format::Digest(digest),
        aliases: p.aliases.clone(),
        start_export: names::start_export(&p.name),
        memory: l.memory,
        functions: l.func_base..l.end_func(),
        trampolines: l.func_base..l.stub_base,
        tables: l.table_base..l.table_base + input.tables.len() as u32,
        globals: l.started_global..l.global_base + input.globals.len() as u32,
        tags: l.tag_base..l.tag_base + input.tags.len() as u32,
        elements: l.elem_base..l.elem_base + input.elements.len() as u32,
        data: l.data_base..l.data_base + l.passive_data + l.active.len() as u32,
        code_bytes: code_bytes as u64,
        data_bytes: input.data.iter().map(|d| d.data.len() as u64).sum(),
        stubbed_imports: input.stubbed_imports(),
    }
}

/// A 32-bit, unshared memory with default pages.
fn memory_type(minimum: u64, maximum: Option<u64>) -> MemoryType {
    MemoryType {
        minimum,
        maximum,
        memory64: false,
        shared: false,
        page_size_log2: None,
    }
}

/// A mutable `i32` global (the allocator's cursor, a program's "started" flag).
fn flag_type() -> GlobalType {
    GlobalType {
        val_type: ValType::I32,
        mutable: true,
        shared: false,
    }
}

/// Writes the module: the sections before code, the code section, the data section, then the
/// name and entries sections. Code and data go straight from the inputs into the output.
pub(crate) fn write(
    plan: &Plan<'_>,
    s: Sections,
    map: &MergeMap,
    code: Vec<ProgramCode>,
) -> Result<Vec<u8>, MergeError> {
    let data_count = plan.data_count();
    let head = head(plan, &s, data_count);
    let tail = tail(&s, map)?;
    let program_code: Vec<Vec<Vec<u8>>> = code.into_iter().map(|c| c.bodies).collect();
    let code_size = code_section_size(&s.generated, &program_code);
    let data_size = data_section_size(plan, data_count);
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
    write_code_section(&mut wasm, code_size, s.generated, program_code);
    write_data_section(&mut wasm, data_size, plan, data_count);
    wasm.extend_from_slice(&tail);
    debug_assert_eq!(wasm.len(), total, "output size");
    Ok(wasm)
}

/// The sections before the code section, encoded.
fn head(plan: &Plan<'_>, s: &Sections, data_count: u32) -> Vec<u8> {
    let mut imports = ImportSection::new();
    for (name, ty) in plan.imports.iter() {
        imports.import(wasi::WASI_MODULE, name, EntityType::Function(ty));
    }
    let mut module = Module::new();
    module.section(&plan.types.section());
    module.section(&imports);
    module.section(&s.functions);
    module.section(&s.tables);
    module.section(&s.memories);
    if !s.tags.is_empty() {
        module.section(&s.tags);
    }
    module.section(&s.globals);
    module.section(&s.exports);
    module.section(&s.elements);
    module.section(&DataCountSection { count: data_count });
    module.finish()
}

/// The name section and the entries section, encoded.
fn tail(s: &Sections, map: &MergeMap) -> Result<Vec<u8>, MergeError> {
    let mut names = NameSection::new();
    names.module("megabin");
    names.functions(&s.function_names.finish());
    if !s.table_names.is_empty() {
        names.tables(&s.table_names);
    }
    names.memories(&s.memory_names);
    names.globals(&s.global_names);
    let mut tail = Vec::new();
    append_section(&mut tail, &names);
    let json = serde_json::to_vec(map).map_err(|e| MergeError::Internal(e.to_string()))?;
    append_section(
        &mut tail,
        &CustomSection {
            name: ENTRIES_SECTION.into(),
            data: json.into(),
        },
    );
    Ok(tail)
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
fn section_header(wasm: &mut Vec<u8>, id: SectionId, size: usize) {
    wasm.push(id as u8);
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
    section_header(wasm, SectionId::Code, size);
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

fn data_section_size(plan: &Plan<'_>, count: u32) -> usize {
    let passive = |len: usize| 1 + leb_len(len as u64) + len;
    let mut size = leb_len(count as u64) + static_segment(&plan.router).len();
    for (input, l) in plan.inputs.iter().zip(&plan.layouts) {
        for d in &input.data {
            if let wasmparser::DataKind::Passive = d.kind {
                size += passive(d.data.len());
            }
        }
        size += l
            .active
            .iter()
            .map(|a| segment_header(l, a).len() + leb_len(a.len() as u64) + a.len())
            .sum::<usize>();
    }
    size
}

/// The start of an output segment for one of a program's coalesced active segments: passive
/// (applied by its start function), or active in memory 0 at its offset when the program's
/// data stays active ([`Layout::data_floor`]).
fn segment_header(l: &Layout<'_>, a: &ActiveData<'_>) -> Vec<u8> {
    match (l.data_floor, a) {
        (Some(_), ActiveData::Const { offset, .. } | ActiveData::Joined { offset, .. }) => {
            let mut header = vec![0u8]; // active, memory 0
            ConstExpr::i32_const(*offset as i32).encode(&mut header);
            header
        }
        _ => vec![1u8], // passive
    }
}

/// Writes the data section (payload `size` bytes): segment 0, then per program its passive
/// segments and its coalesced active segments (made passive). Each byte is copied once, from
/// the input into the output.
fn write_data_section(wasm: &mut Vec<u8>, size: usize, plan: &Plan<'_>, count: u32) {
    section_header(wasm, SectionId::Data, size);
    let start = wasm.len();
    count.encode(wasm);
    wasm.extend_from_slice(&static_segment(&plan.router));
    for (input, l) in plan.inputs.iter().zip(&plan.layouts) {
        for d in &input.data {
            if let wasmparser::DataKind::Passive = d.kind {
                wasm.push(1);
                d.data.encode(wasm);
            }
        }
        for a in &l.active {
            wasm.extend_from_slice(&segment_header(l, a));
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
    if name.starts_with(names::INTERNAL_PREFIX) || name.starts_with(names::WASI_IMPORT_PREFIX) {
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
    fn finish(&self) -> NameMap {
        let mut m = NameMap::new();
        for (i, n) in &self.names {
            m.append(*i, n);
        }
        m
    }
}
