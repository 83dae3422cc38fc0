//! Parsing and checking one input program.

use crate::error::Unsupported;
use crate::footprint::Validated;
use megabin_format::names;
use router_gen::wasi::{self, WasiFunc};
use wasmparser::{
    CompositeInnerType, Data, Element, Export, ExternalKind, FuncType, FunctionBody, Global,
    Import, MemoryType, NameSectionReader, Operator, Parser, Payload, RecGroup, Table, TagType,
    TypeRef, Validator, WasmFeatures,
};

/// The feature set inputs (and the output) are validated with: exactly what the runner's engine
/// accepts, i.e. Wasmtime 48's default `Config` (`Config::features` in wasmtime's
/// `config.rs`: `WASM3`, plus GC types, exceptions and threads since megabin's wasmtime is built
/// with its `gc` and `threads` features) together with what `runtime_check::engine_config()`
/// switches on (multi-memory, bulk memory, reference types, SIMD, tail calls: all in `WASM3`).
///
/// Not included, so refused as [`Unsupported::Feature`]: legacy exception handling
/// (`try`/`catch`/`rethrow`/`delegate`, which Wasmtime's Cranelift cannot compile), wide
/// arithmetic, custom page sizes, stack switching, shared-everything threads, memory control,
/// custom descriptors, compact imports. Shared memories and 64-bit memories validate but are
/// refused by the merger itself ([`Unsupported::SharedMemory`], [`Unsupported::Memory64`]).
/// `merger/tests/hardening.rs` checks this set against a real engine.
pub fn features() -> WasmFeatures {
    WasmFeatures::WASM3 | WasmFeatures::GC_TYPES | WasmFeatures::EXCEPTIONS | WasmFeatures::THREADS
}

/// Proposals wasmparser knows and the engine does not enable, with the names used in
/// [`Unsupported::Feature`].
const DISABLED_FEATURES: &[(WasmFeatures, &str)] = &[
    (WasmFeatures::LEGACY_EXCEPTIONS, "legacy-exceptions"),
    (WasmFeatures::WIDE_ARITHMETIC, "wide-arithmetic"),
    (WasmFeatures::CUSTOM_PAGE_SIZES, "custom-page-sizes"),
    (WasmFeatures::STACK_SWITCHING, "stack-switching"),
    (
        WasmFeatures::SHARED_EVERYTHING_THREADS,
        "shared-everything-threads",
    ),
    (WasmFeatures::MEMORY_CONTROL, "memory-control"),
    (WasmFeatures::CUSTOM_DESCRIPTORS, "custom-descriptors"),
    (WasmFeatures::COMPACT_IMPORTS, "compact-imports"),
];

/// Validates a module with [`features`]. A module that fails only because it uses proposals
/// the engine does not enable is [`Unsupported::Feature`] (naming the smallest set of them that
/// makes it valid, found by dropping one at a time), custom page sizes alone
/// [`Unsupported::CustomPageSize`]; anything else is [`Unsupported::Invalid`]. The extra
/// validations happen only for modules that fail.
pub fn validate(bytes: &[u8]) -> Result<(), Unsupported> {
    let valid = |f: WasmFeatures| Validator::new_with_features(f).validate_all(bytes);
    let err = match valid(features()) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let message = err.to_string();
    let mut needed: Vec<(WasmFeatures, &str)> = DISABLED_FEATURES.to_vec();
    let with = |set: &[(WasmFeatures, &str)]| set.iter().fold(features(), |acc, (f, _)| acc | *f);
    if valid(with(&needed)).is_err() {
        return Err(Unsupported::Invalid(message));
    }
    let mut i = 0;
    while i < needed.len() {
        let mut fewer = needed.clone();
        fewer.remove(i);
        if valid(with(&fewer)).is_ok() {
            needed = fewer;
        } else {
            i += 1;
        }
    }
    let names: Vec<&str> = needed.iter().map(|(_, n)| *n).collect();
    if names == ["custom-page-sizes"] {
        return Err(Unsupported::CustomPageSize);
    }
    Err(Unsupported::Feature {
        feature: names.join(", "),
        message,
    })
}

/// Longest GC array a constant expression evaluated at instantiation may allocate.
pub const MAX_CONST_ARRAY: u32 = 1 << 16;
/// Total array elements all such constant expressions of a program may allocate.
pub const MAX_CONST_ARRAY_TOTAL: u64 = 1 << 22;

/// One function import of a program, in import order.
#[derive(Debug, Clone, Copy)]
pub enum FuncImport<'a> {
    /// A WASI preview1 function: reached through a trampoline.
    Wasi(&'static WasiFunc),
    /// A function of another host module (`module::name`), replaced by a stub that traps when
    /// called (only with [`crate::MergeOptions::stub_foreign_imports`]; see
    /// [`router_gen::stub`]).
    Stubbed {
        module: &'a str,
        name: &'a str,
        /// The import's type index in the program.
        ty: u32,
    },
}

impl FuncImport<'_> {
    /// The WASI function, when this is a WASI import.
    pub fn wasi(&self) -> Option<&'static WasiFunc> {
        match self {
            FuncImport::Wasi(f) => Some(f),
            FuncImport::Stubbed { .. } => None,
        }
    }
}

/// A parsed, validated input module. Borrowed readers point into the input bytes.
pub struct Input<'a> {
    pub rec_groups: Vec<RecGroup>,
    /// Function type of every type index that is a function type.
    pub func_types: Vec<Option<FuncType>>,
    /// Function imports, in import order: WASI, or stubbed foreign functions.
    pub imports: Vec<FuncImport<'a>>,
    /// Type index of each defined function.
    pub functions: Vec<u32>,
    pub tables: Vec<Table<'a>>,
    pub memory: MemoryType,
    pub tags: Vec<TagType>,
    pub globals: Vec<Global<'a>>,
    pub exports: Vec<Export<'a>>,
    pub start: Option<u32>,
    /// Function index of `_start`.
    pub entry: u32,
    pub elements: Vec<Element<'a>>,
    pub data: Vec<Data<'a>>,
    pub code: Vec<FunctionBody<'a>>,
    pub names: Option<NameSectionReader<'a>>,
}

impl<'a> Input<'a> {
    /// Validates `bytes` and collects what the merge needs; refuses what megabin cannot merge,
    /// including any import that is not a WASI preview1 function, except that with
    /// `stub_foreign`, function imports of other modules are accepted as
    /// [`FuncImport::Stubbed`] (foreign memories, tables, globals and tags are still refused).
    /// `proof`: the sha256 of `bytes` and the [`Validated`] proof the caller holds, if any;
    /// bytes proven valid are not validated again.
    pub fn parse(
        bytes: &'a [u8],
        stub_foreign: bool,
        proof: Option<(&[u8; 32], Validated)>,
    ) -> Result<Self, Unsupported> {
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0] {
            return Err(Unsupported::Component);
        }
        if !proof.is_some_and(|(digest, v)| v.is_for(digest)) {
            validate(bytes)?;
        }
        let mut input = Input {
            rec_groups: Vec::new(),
            func_types: Vec::new(),
            imports: Vec::new(),
            functions: Vec::new(),
            tables: Vec::new(),
            memory: MemoryType {
                memory64: false,
                shared: false,
                initial: 0,
                maximum: None,
                page_size_log2: None,
            },
            tags: Vec::new(),
            globals: Vec::new(),
            exports: Vec::new(),
            start: None,
            entry: 0,
            elements: Vec::new(),
            data: Vec::new(),
            code: Vec::new(),
            names: None,
        };
        let mut sections = Sections {
            stub_foreign,
            memories: Vec::new(),
            foreign: Vec::new(),
        };
        for payload in Parser::new(0).parse_all(bytes) {
            input.payload(payload.map_err(invalid)?, &mut sections)?;
        }
        if !sections.foreign.is_empty() {
            return Err(Unsupported::ForeignImports(sections.foreign));
        }
        input.check_const_allocations()?;
        input.memory = one_memory(&sections.memories)?;
        input.entry = input.find_entry()?;
        Ok(input)
    }

    /// Collects one section's contents.
    fn payload(&mut self, payload: Payload<'a>, s: &mut Sections) -> Result<(), Unsupported> {
        match payload {
            Payload::TypeSection(r) => {
                for group in r {
                    let group = group.map_err(invalid)?;
                    for ty in group.types() {
                        self.func_types.push(match &ty.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f.clone()),
                            _ => None,
                        });
                    }
                    self.rec_groups.push(group);
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    self.import(import.map_err(invalid)?, s)?;
                }
            }
            Payload::FunctionSection(r) => collect(r, &mut self.functions)?,
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.map_err(invalid)?;
                    if t.ty.table64 {
                        return Err(Unsupported::Memory64);
                    }
                    self.tables.push(t);
                }
            }
            Payload::MemorySection(r) => collect(r, &mut s.memories)?,
            Payload::TagSection(r) => collect(r, &mut self.tags)?,
            Payload::GlobalSection(r) => collect(r, &mut self.globals)?,
            Payload::ExportSection(r) => collect(r, &mut self.exports)?,
            Payload::StartSection { func, .. } => self.start = Some(func),
            Payload::ElementSection(r) => collect(r, &mut self.elements)?,
            Payload::DataSection(r) => collect(r, &mut self.data)?,
            Payload::CodeSectionEntry(body) => self.code.push(body),
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    self.names = Some(names);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes one import: a WASI function (checked against its preview1 signature), a stubbed
    /// foreign function, or something foreign, listed in `s.foreign`.
    fn import(&mut self, import: Import<'a>, s: &mut Sections) -> Result<(), Unsupported> {
        let what = format!("{}::{}", import.module, import.name);
        match import.ty {
            TypeRef::Func(ty) | TypeRef::FuncExact(ty) if import.module == wasi::WASI_MODULE => {
                let func = wasi::lookup(import.name)
                    .ok_or_else(|| Unsupported::UnknownWasiFunction(import.name.to_string()))?;
                let (params, results) = router_gen::bridge::signature(func);
                let declared = self.func_types.get(ty as usize).cloned().flatten();
                let matches = declared.is_some_and(|d| {
                    same_types(d.params(), &params) && same_types(d.results(), &results)
                });
                if !matches {
                    return Err(Unsupported::WasiSignature(import.name.to_string()));
                }
                self.imports.push(FuncImport::Wasi(func));
            }
            TypeRef::Memory(_) => s.foreign.push(format!("{what} (memory)")),
            TypeRef::Table(_) => s.foreign.push(format!("{what} (table)")),
            TypeRef::Global(_) => s.foreign.push(format!("{what} (global)")),
            TypeRef::Tag(_) => s.foreign.push(format!("{what} (tag)")),
            TypeRef::Func(ty) | TypeRef::FuncExact(ty) if s.stub_foreign => {
                self.imports.push(FuncImport::Stubbed {
                    module: import.module,
                    name: import.name,
                    ty,
                })
            }
            TypeRef::Func(_) | TypeRef::FuncExact(_) => s.foreign.push(what),
        }
        Ok(())
    }

    /// The function index of `_start`, which must be a `[] -> []` function.
    fn find_entry(&self) -> Result<u32, Unsupported> {
        let start = self
            .exports
            .iter()
            .find(|e| e.name == names::START_EXPORT)
            .ok_or(Unsupported::NoStart)?;
        if start.kind != ExternalKind::Func {
            return Err(Unsupported::BadStart);
        }
        let ty = self.func_type_of(start.index);
        if !ty.is_some_and(|t| t.params().is_empty() && t.results().is_empty()) {
            return Err(Unsupported::BadStart);
        }
        Ok(start.index)
    }

    /// Refuses GC array allocations in the constant expressions evaluated at instantiation
    /// (globals, table initial values, element segment items) unless their length is a literal
    /// of at most [`MAX_CONST_ARRAY`] elements, and [`MAX_CONST_ARRAY_TOTAL`] in all: see
    /// [`Unsupported::ConstAllocation`]. (Nothing else a constant expression can do traps.)
    fn check_const_allocations(&self) -> Result<(), Unsupported> {
        let mut exprs: Vec<wasmparser::ConstExpr<'a>> = Vec::new();
        exprs.extend(self.globals.iter().map(|g| g.init_expr.clone()));
        for t in &self.tables {
            if let wasmparser::TableInit::Expr(e) = &t.init {
                exprs.push(e.clone());
            }
        }
        for e in &self.elements {
            if let wasmparser::ElementItems::Expressions(_, items) = &e.items {
                for item in items.clone() {
                    exprs.push(item.map_err(|e| Unsupported::Invalid(e.to_string()))?);
                }
            }
        }
        let mut total = 0u64;
        for expr in exprs {
            let mut reader = expr.get_operators_reader();
            let mut literal: Option<u32> = None;
            while !reader.eof() {
                let op = reader
                    .read()
                    .map_err(|e| Unsupported::Invalid(e.to_string()))?;
                if let Operator::ArrayNew { .. } | Operator::ArrayNewDefault { .. } = op {
                    match literal {
                        Some(n) if n <= MAX_CONST_ARRAY => total += u64::from(n),
                        Some(n) => {
                            return Err(Unsupported::ConstAllocation(format!(
                                "an array of {n} elements (more than {MAX_CONST_ARRAY})"
                            )))
                        }
                        None => {
                            return Err(Unsupported::ConstAllocation(
                                "an array of computed length".into(),
                            ))
                        }
                    }
                    if total > MAX_CONST_ARRAY_TOTAL {
                        return Err(Unsupported::ConstAllocation(format!(
                            "arrays of more than {MAX_CONST_ARRAY_TOTAL} elements in all"
                        )));
                    }
                }
                literal = match op {
                    Operator::I32Const { value } => Some(value as u32),
                    _ => None,
                };
            }
        }
        Ok(())
    }

    /// Number of imported functions (WASI and stubbed).
    pub fn num_imported_funcs(&self) -> u32 {
        self.imports.len() as u32
    }

    /// The stubbed foreign function imports, in import order, as `module::name`.
    pub fn stubbed_imports(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter_map(|i| match i {
                FuncImport::Stubbed { module, name, .. } => Some(format!("{module}::{name}")),
                FuncImport::Wasi(_) => None,
            })
            .collect()
    }

    fn func_type_of(&self, func: u32) -> Option<&FuncType> {
        let n = self.num_imported_funcs();
        if func < n {
            return None; // `_start` is never an import of a valid command in practice
        }
        let ty = *self.functions.get((func - n) as usize)?;
        self.func_types.get(ty as usize)?.as_ref()
    }
}

/// What parsing collects besides the [`Input`] itself.
struct Sections {
    /// Accept foreign function imports as stubs.
    stub_foreign: bool,
    memories: Vec<MemoryType>,
    /// Foreign imports, as `module::name` (with their kind unless a function).
    foreign: Vec<String>,
}

fn invalid(e: wasmparser::BinaryReaderError) -> Unsupported {
    Unsupported::Invalid(e.to_string())
}

/// Appends every item of a section.
fn collect<'a, T: wasmparser::FromReader<'a>>(
    reader: wasmparser::SectionLimited<'a, T>,
    out: &mut Vec<T>,
) -> Result<(), Unsupported> {
    for item in reader {
        out.push(item.map_err(invalid)?);
    }
    Ok(())
}

/// The module's one memory: unshared, 32-bit, default pages.
fn one_memory(memories: &[MemoryType]) -> Result<MemoryType, Unsupported> {
    let [memory] = memories else {
        return Err(Unsupported::MemoryCount(memories.len()));
    };
    if memory.shared {
        return Err(Unsupported::SharedMemory);
    }
    if memory.memory64 {
        return Err(Unsupported::Memory64);
    }
    if memory.page_size_log2.is_some() {
        return Err(Unsupported::CustomPageSize);
    }
    Ok(*memory)
}

fn same_types(a: &[wasmparser::ValType], b: &[wasm_encoder::ValType]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            matches!(
                (x, y),
                (wasmparser::ValType::I32, wasm_encoder::ValType::I32)
                    | (wasmparser::ValType::I64, wasm_encoder::ValType::I64)
            )
        })
}
