//! Parsing and checking one input program.

use crate::error::Unsupported;
use router_gen::wasi::{self, WasiFunc};
use wasmparser::{
    CompositeInnerType, Data, Element, Export, ExternalKind, FuncType, FunctionBody, Global,
    MemoryType, NameSectionReader, Parser, Payload, RecGroup, Table, TagType, TypeRef, Validator,
    WasmFeatures,
};

/// The feature set inputs are validated with: wasmparser's defaults (those of the engine that
/// runs the output), without shared-everything threads and other proposals megabin cannot
/// bridge.
pub fn features() -> WasmFeatures {
    WasmFeatures::default()
}

/// One WASI import of a program: which preview1 function, and its index among the program's
/// function imports.
#[derive(Debug, Clone, Copy)]
pub struct WasiImport {
    pub func: &'static WasiFunc,
}

/// A parsed, validated input module. Borrowed readers point into the input bytes.
pub struct Input<'a> {
    pub rec_groups: Vec<RecGroup>,
    /// Function type of every type index that is a function type.
    pub func_types: Vec<Option<FuncType>>,
    /// Function imports, in import order (all WASI).
    pub imports: Vec<WasiImport>,
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
    /// Validates `bytes` and collects what the merge needs; refuses what megabin cannot merge.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Unsupported> {
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0] {
            return Err(Unsupported::Component);
        }
        let invalid = |e: wasmparser::BinaryReaderError| Unsupported::Invalid(e.to_string());
        Validator::new_with_features(features())
            .validate_all(bytes)
            .map_err(invalid)?;

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
        let mut memories = Vec::new();
        let mut foreign = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(invalid)? {
                Payload::TypeSection(r) => {
                    for group in r {
                        let group = group.map_err(invalid)?;
                        for ty in group.types() {
                            input.func_types.push(match &ty.composite_type.inner {
                                CompositeInnerType::Func(f) => Some(f.clone()),
                                _ => None,
                            });
                        }
                        input.rec_groups.push(group);
                    }
                }
                Payload::ImportSection(r) => {
                    for import in r.into_imports() {
                        let import = import.map_err(invalid)?;
                        let what = format!("{}::{}", import.module, import.name);
                        match import.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty)
                                if import.module == wasi::WASI_MODULE =>
                            {
                                let func = wasi::lookup(import.name).ok_or_else(|| {
                                    Unsupported::UnknownWasiFunction(import.name.to_string())
                                })?;
                                let (params, results) = router_gen::bridge::signature(func);
                                let declared = input.func_types.get(ty as usize).cloned().flatten();
                                let matches = declared.is_some_and(|d| {
                                    same_types(d.params(), &params)
                                        && same_types(d.results(), &results)
                                });
                                if !matches {
                                    return Err(Unsupported::WasiSignature(
                                        import.name.to_string(),
                                    ));
                                }
                                input.imports.push(WasiImport { func });
                            }
                            TypeRef::Memory(_) => foreign.push(format!("{what} (memory)")),
                            TypeRef::Table(_) => foreign.push(format!("{what} (table)")),
                            TypeRef::Global(_) => foreign.push(format!("{what} (global)")),
                            TypeRef::Tag(_) => foreign.push(format!("{what} (tag)")),
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => foreign.push(what),
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    for f in r {
                        input.functions.push(f.map_err(invalid)?);
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        let t = t.map_err(invalid)?;
                        if t.ty.table64 {
                            return Err(Unsupported::Memory64);
                        }
                        input.tables.push(t);
                    }
                }
                Payload::MemorySection(r) => {
                    for m in r {
                        memories.push(m.map_err(invalid)?);
                    }
                }
                Payload::TagSection(r) => {
                    for t in r {
                        input.tags.push(t.map_err(invalid)?);
                    }
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        input.globals.push(g.map_err(invalid)?);
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        input.exports.push(e.map_err(invalid)?);
                    }
                }
                Payload::StartSection { func, .. } => input.start = Some(func),
                Payload::ElementSection(r) => {
                    for e in r {
                        input.elements.push(e.map_err(invalid)?);
                    }
                }
                Payload::DataSection(r) => {
                    for d in r {
                        input.data.push(d.map_err(invalid)?);
                    }
                }
                Payload::CodeSectionEntry(body) => input.code.push(body),
                Payload::CustomSection(c) => {
                    if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                        input.names = Some(names);
                    }
                }
                _ => {}
            }
        }
        if !foreign.is_empty() {
            return Err(Unsupported::ForeignImports(foreign));
        }
        if memories.len() != 1 {
            return Err(Unsupported::MemoryCount(memories.len()));
        }
        let memory = memories[0];
        if memory.shared {
            return Err(Unsupported::SharedMemory);
        }
        if memory.memory64 {
            return Err(Unsupported::Memory64);
        }
        if memory.page_size_log2.is_some() {
            return Err(Unsupported::CustomPageSize);
        }
        input.memory = memory;
        let start = input
            .exports
            .iter()
            .find(|e| e.name == "_start")
            .ok_or(Unsupported::NoStart)?;
        if start.kind != ExternalKind::Func {
            return Err(Unsupported::BadStart);
        }
        input.entry = start.index;
        let ty = input.func_type_of(start.index);
        if !ty.is_some_and(|t| t.params().is_empty() && t.results().is_empty()) {
            return Err(Unsupported::BadStart);
        }
        Ok(input)
    }

    /// Number of imported functions (all WASI).
    pub fn num_imported_funcs(&self) -> u32 {
        self.imports.len() as u32
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
