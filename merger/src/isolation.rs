//! Structural isolation check of a megabinary, derived from the module alone (not from the
//! merge map): starting from each `<name>_start` export, it follows direct calls, `ref.func`
//! the element segments the code initialises and the functions active segments put in the
//! tables the code uses, and collects every memory, table and global
//! the reachable code touches. Each program must touch only its own memory (exported as
//! `<name>.memory`), tables and globals; only its WASI trampolines (`<name>::wasi::<fn>` in the
//! name section) may call imports or touch the bridge memory 0; code shared between programs
//! (the bridge allocator, the message helper) touches only the bridge. An entry whose
//! `<name>.memory` is the exported memory 0 uses it as its own memory (an instance activates
//! one program only, which the dispatcher enforces): its code may touch memory 0 and call WASI
//! imports directly.

use megabin_format::names;
use std::collections::{BTreeMap, BTreeSet};
use wasm_encoder::reencode::{Error, Reencode};
use wasmparser::{ElementItems, ExternalKind, Name, Parser, Payload};

/// What one program's reachable code touches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Functions reachable from its start export (shared helpers included).
    pub functions: BTreeSet<u32>,
    /// Memories its own code touches (0 only through trampolines).
    pub memories: BTreeSet<u32>,
    /// Tables its own code touches.
    pub tables: BTreeSet<u32>,
    /// Globals its own code touches.
    pub globals: BTreeSet<u32>,
}

/// The result of a successful check.
#[derive(Clone, Debug, Default)]
pub struct IsolationReport {
    /// Entry name → what its code touches.
    pub entries: BTreeMap<String, Resources>,
    /// Functions reachable from more than one entry.
    pub shared: BTreeSet<u32>,
}

#[derive(Default)]
struct Refs {
    funcs: BTreeSet<u32>,
    memories: BTreeSet<u32>,
    tables: BTreeSet<u32>,
    globals: BTreeSet<u32>,
    elems: BTreeSet<u32>,
}

impl Reencode for Refs {
    type Error = std::convert::Infallible;
    fn function_index(&mut self, f: u32) -> Result<u32, Error<Self::Error>> {
        self.funcs.insert(f);
        Ok(f)
    }
    fn memory_index(&mut self, m: u32) -> Result<u32, Error<Self::Error>> {
        self.memories.insert(m);
        Ok(m)
    }
    fn table_index(&mut self, t: u32) -> Result<u32, Error<Self::Error>> {
        self.tables.insert(t);
        Ok(t)
    }
    fn global_index(&mut self, g: u32) -> Result<u32, Error<Self::Error>> {
        self.globals.insert(g);
        Ok(g)
    }
    fn element_index(&mut self, e: u32) -> Result<u32, Error<Self::Error>> {
        self.elems.insert(e);
        Ok(e)
    }
}

/// Checks the isolation invariant; returns every violation found, not just the first.
pub fn check_isolation(wasm: &[u8]) -> Result<IsolationReport, Vec<String>> {
    let mut problems = Vec::new();
    // What the module holds: imports, exports, element segments, code references, names.
    let module = Scan::new(wasm)?;
    // Entries: `<name>_start` with a `<name>.memory` beside it.
    let entries = module.entries(&mut problems);
    // Reachability from each entry.
    let reach: BTreeMap<&str, BTreeSet<u32>> = entries
        .iter()
        .map(|(name, &(start, _))| (name.as_str(), module.reachable(start, &mut problems)))
        .collect();
    // Shared code, which may touch only the bridge.
    let shared = module.shared(&reach);
    let bridge_globals = module.check_shared(&shared, &mut problems);
    // What each entry's own code touches.
    let mut report = IsolationReport {
        entries: BTreeMap::new(),
        shared: shared.clone(),
    };
    for (name, &(start, mem)) in &entries {
        if mem == 0 {
            module.check_guarded(name, start, &mut problems);
        }
        let functions = &reach[name.as_str()];
        let owned = Owned {
            name,
            memory: mem,
            shared: &shared,
            bridge_globals: &bridge_globals,
        };
        let res = module.resources(&owned, functions, &mut problems);
        report.entries.insert(name.clone(), res);
    }
    // No two entries share state (but those on memory 0 may share a table created empty).
    let guarded: BTreeSet<&str> = entries
        .iter()
        .filter(|(_, &(_, mem))| mem == 0)
        .map(|(name, _)| name.as_str())
        .collect();
    let empty = module.empty_tables();
    check_disjoint(&report, &guarded, &empty, &mut problems);
    // Memory 0's content at instantiation besides the static data (segment 0) belongs to the
    // program that uses memory 0: no other entry may run there.
    if !module.memory0_data.is_empty() && (entries.len() != 1 || guarded.len() != 1) {
        problems.push(format!(
            "data segments {:?} are active in the exported memory 0, which only a lone entry \
             on memory 0 may have, but the module has {} entries, {} of them on memory 0",
            module.memory0_data,
            entries.len(),
            guarded.len()
        ));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems)
    }
}

/// What the check needs to know of a module, from one pass over it.
#[derive(Default)]
struct Scan {
    imported: u32,
    import_names: Vec<String>,
    bodies: Vec<Refs>,
    elem_funcs: Vec<Vec<u32>>,
    /// Functions placed into each table at instantiation by active element segments.
    table_funcs: BTreeMap<u32, BTreeSet<u32>>,
    /// Per table (imported ones first): whether it is created empty (0 slots, null init).
    empty_tables: Vec<bool>,
    /// Active data segments of memory 0 other than segment 0 (the dispatcher's static data).
    memory0_data: Vec<u32>,
    func_exports: BTreeMap<String, u32>,
    mem_exports: BTreeMap<String, u32>,
    names: BTreeMap<u32, String>,
}

fn parse_err(e: wasmparser::BinaryReaderError) -> Vec<String> {
    vec![format!("cannot parse module: {e}")]
}

/// One entry and what is not its own: the shared code and the bridge's globals.
struct Owned<'a> {
    name: &'a str,
    memory: u32,
    shared: &'a BTreeSet<u32>,
    bridge_globals: &'a BTreeSet<u32>,
}

impl Scan {
    fn new(wasm: &[u8]) -> Result<Self, Vec<String>> {
        let mut m = Scan::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(parse_err)? {
                Payload::ImportSection(r) => {
                    for i in r.into_imports() {
                        let i = i.map_err(parse_err)?;
                        match i.ty {
                            wasmparser::TypeRef::Func(_) => {
                                m.imported += 1;
                                m.import_names.push(i.name.to_string());
                            }
                            wasmparser::TypeRef::Table(_) => m.empty_tables.push(false),
                            _ => {}
                        }
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(parse_err)?;
                        let name = e.name.to_string();
                        match e.kind {
                            ExternalKind::Func => m.func_exports.insert(name, e.index),
                            ExternalKind::Memory => m.mem_exports.insert(name, e.index),
                            _ => None,
                        };
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        let t = t.map_err(parse_err)?;
                        let null = matches!(t.init, wasmparser::TableInit::RefNull);
                        m.empty_tables.push(t.ty.initial == 0 && null);
                    }
                }
                Payload::ElementSection(r) => {
                    for e in r {
                        m.element(e.map_err(parse_err)?)?;
                    }
                }
                Payload::DataSection(r) => {
                    for (i, d) in (0u32..).zip(r) {
                        let kind = d.map_err(parse_err)?.kind;
                        if let wasmparser::DataKind::Active {
                            memory_index: 0, ..
                        } = kind
                        {
                            if i > 0 {
                                m.memory0_data.push(i);
                            }
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let mut refs = Refs::default();
                    let mut reader = body.get_operators_reader().map_err(parse_err)?;
                    while !reader.eof() {
                        if let Err(e) = refs.parse_instruction(&mut reader) {
                            return Err(vec![format!("cannot parse code: {e}")]);
                        }
                    }
                    m.bodies.push(refs);
                }
                Payload::CustomSection(c) => m.custom(c),
                _ => {}
            }
        }
        Ok(m)
    }

    fn element(&mut self, e: wasmparser::Element<'_>) -> Result<(), Vec<String>> {
        let mut refs = Refs::default();
        match e.items {
            ElementItems::Functions(fs) => {
                for f in fs {
                    refs.funcs.insert(f.map_err(parse_err)?);
                }
            }
            ElementItems::Expressions(_, es) => {
                for x in es {
                    let _ = refs.const_expr(x.map_err(parse_err)?);
                }
            }
        }
        if let wasmparser::ElementKind::Active { table_index, .. } = e.kind {
            self.table_funcs
                .entry(table_index.unwrap_or(0))
                .or_default()
                .extend(refs.funcs.iter().copied());
        }
        self.elem_funcs.push(refs.funcs.into_iter().collect());
        Ok(())
    }

    fn custom(&mut self, c: wasmparser::CustomSectionReader<'_>) {
        if let wasmparser::KnownCustom::Name(r) = c.as_known() {
            for sub in r.into_iter().flatten() {
                if let Name::Function(map) = sub {
                    for n in map.into_iter().flatten() {
                        self.names.insert(n.index, n.name.to_string());
                    }
                }
            }
        }
    }

    /// Tables created empty: no slots, a null init value, no active element segment.
    fn empty_tables(&self) -> BTreeSet<u32> {
        (0u32..)
            .zip(&self.empty_tables)
            .filter(|&(t, &empty)| empty && !self.table_funcs.contains_key(&t))
            .map(|(t, _)| t)
            .collect()
    }

    fn body(&self, f: u32) -> Option<&Refs> {
        self.bodies.get((f - self.imported) as usize)
    }

    /// Entry name → (start function, memory).
    fn entries(&self, problems: &mut Vec<String>) -> BTreeMap<String, (u32, u32)> {
        let mut entries = BTreeMap::new();
        for (export, &func) in &self.func_exports {
            // Entry names are `[A-Za-z0-9_]+`; other `…_start` exports (e.g. the test-only
            // `<name>.<export>` function exports) are not entry points.
            let entry_name = |n: &&str| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            };
            if let Some(name) = names::entry_of_start_export(export).filter(entry_name) {
                match self.mem_exports.get(&names::memory_export(name)) {
                    Some(&mem) => {
                        entries.insert(name.to_string(), (func, mem));
                    }
                    None => problems.push(format!("export `{export}` has no `{name}.memory`")),
                }
            }
        }
        entries
    }

    /// An entry on the exported memory (memory 0) shares it with every other such entry and
    /// the dispatcher; that is isolated only because its start calls the dispatcher's
    /// `activate_shared` (the function at its fixed index, `docs/format.md` section 2a, named
    /// so when the module has names), which refuses a second activation and clears the
    /// memory. An entry whose start does not call it is reported.
    fn check_guarded(&self, name: &str, start: u32, problems: &mut Vec<String>) {
        let guard = self.imported + 1 + router_gen::dispatch::Router::ACTIVATE_SHARED;
        let named = self
            .names
            .get(&guard)
            .is_none_or(|n| n == "megabin::activate_shared");
        let calls = self.body(start).is_some_and(|r| r.funcs.contains(&guard));
        if !(named && calls) {
            problems.push(format!(
                "{name}: uses the exported memory (memory 0) but its start does not call \
                 megabin::activate_shared (function {guard}): nothing refuses a second program \
                 or clears the memory"
            ));
        }
    }

    /// Functions reachable from `start`: calls, `ref.func`, the element segments the code
    /// uses and the functions active segments put in the tables it uses.
    fn reachable(&self, start: u32, problems: &mut Vec<String>) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(f) = todo.pop() {
            if !seen.insert(f) || f < self.imported {
                continue;
            }
            let Some(refs) = self.body(f) else {
                problems.push(format!("function {f} does not exist"));
                continue;
            };
            todo.extend(refs.funcs.iter().copied());
            for e in &refs.elems {
                if let Some(fs) = self.elem_funcs.get(*e as usize) {
                    todo.extend(fs.iter().copied());
                }
            }
            for t in &refs.tables {
                if let Some(fs) = self.table_funcs.get(t) {
                    todo.extend(fs.iter().copied());
                }
            }
        }
        seen
    }

    /// Shared code: reachable from several programs, or a megabin helper (`megabin::*`; entry
    /// names `megabin` and `wasi` are reserved, so no program function carries that prefix).
    fn shared(&self, reach: &BTreeMap<&str, BTreeSet<u32>>) -> BTreeSet<u32> {
        let mut count: BTreeMap<u32, usize> = BTreeMap::new();
        for set in reach.values() {
            for &f in set {
                *count.entry(f).or_default() += 1;
            }
        }
        let helper = |f: &u32| {
            self.names
                .get(f)
                .is_some_and(|n| n.starts_with(names::INTERNAL_PREFIX))
        };
        count
            .into_iter()
            .filter(|&(f, n)| f >= self.imported && (n > 1 || helper(&f)))
            .map(|(f, _)| f)
            .collect()
    }

    /// Checks that shared code touches only the bridge (memory 0 and memories no entry owns,
    /// such as the environment cache); returns the globals it uses.
    fn check_shared(&self, shared: &BTreeSet<u32>, problems: &mut Vec<String>) -> BTreeSet<u32> {
        let mut bridge_globals = BTreeSet::new();
        let owned: BTreeSet<u32> = self
            .mem_exports
            .iter()
            .filter(|(name, _)| name.as_str() != names::BRIDGE_MEMORY_EXPORT)
            .map(|(_, &m)| m)
            .filter(|&m| m != 0)
            .collect();
        for &f in shared {
            let r = self.body(f).expect("reachable functions exist");
            if r.memories.iter().any(|m| owned.contains(m)) || !r.tables.is_empty() {
                problems.push(format!(
                    "function {f} ({}) is shared between programs but touches program state",
                    self.names.get(&f).map(String::as_str).unwrap_or("?")
                ));
            }
            bridge_globals.extend(r.globals.iter().copied());
        }
        bridge_globals
    }

    /// What an entry's own code (`functions` less the shared ones) touches; its functions may
    /// call WASI imports and touch the bridge memory only as its trampolines.
    fn resources(
        &self,
        entry: &Owned<'_>,
        functions: &BTreeSet<u32>,
        problems: &mut Vec<String>,
    ) -> Resources {
        let mut res = Resources {
            functions: functions.clone(),
            ..Default::default()
        };
        for &f in functions {
            if f < self.imported || entry.shared.contains(&f) {
                continue;
            }
            let r = self.body(f).expect("reachable functions exist");
            let fname = self
                .names
                .get(&f)
                .cloned()
                .unwrap_or_else(|| format!("#{f}"));
            let shared = entry.memory == 0;
            let trampoline_of = if shared {
                None
            } else {
                self.check_imports(entry.name, f, &fname, r, problems)
            };
            for &m in &r.memories {
                let name = entry.name;
                if m == 0 && trampoline_of.is_none() && !shared {
                    problems.push(format!(
                        "{name}: function {f} ({fname}) touches the bridge memory outside a trampoline"
                    ));
                } else if m != 0 && m != entry.memory {
                    problems.push(format!(
                        "{name}: function {f} ({fname}) touches memory {m}, not its own memory {}",
                        entry.memory
                    ));
                }
            }
            res.memories.extend(r.memories.iter().copied());
            res.tables.extend(r.tables.iter().copied());
            let own_globals = r
                .globals
                .iter()
                .filter(|g| !entry.bridge_globals.contains(g));
            res.globals.extend(own_globals.copied());
        }
        res
    }

    /// Checks that function `f` of entry `name` calls WASI imports only as a trampoline;
    /// returns the WASI function it is the trampoline of, if it is one.
    fn check_imports(
        &self,
        name: &str,
        f: u32,
        fname: &str,
        r: &Refs,
        problems: &mut Vec<String>,
    ) -> Option<String> {
        let calls_import: Vec<u32> = r
            .funcs
            .iter()
            .copied()
            .filter(|&c| c < self.imported)
            .collect();
        // A trampoline is named `<entry>::wasi::<fn>` AND calls the import `<fn>`; a
        // program function merely named like one is treated as program code.
        let trampoline_of = names::trampoline_of(name, fname)
            .filter(|f| {
                calls_import
                    .iter()
                    .any(|&c| self.import_names[c as usize] == *f)
            })
            .map(str::to_string);
        for c in &calls_import {
            // A trampoline calls its own import and, for a few, its companion import.
            let callee = self.import_names[*c as usize].as_str();
            let ok = trampoline_of.as_deref().is_some_and(|t| {
                t == callee
                    || router_gen::wasi::lookup(t).and_then(|f| f.sizes_from) == Some(callee)
            });
            if !ok {
                problems.push(format!(
                    "{name}: function {f} ({fname}) calls WASI import `{callee}` directly, not through its trampoline"
                ));
            }
        }
        trampoline_of
    }
}

/// Reports every pair of entries whose code touches the same memory, table or global. Memory 0
/// is the bridge's; two entries on it (`guarded`: each start calls `activate_shared`, so an
/// instance activates at most one of them) may also share a table created `empty` (nothing
/// of another program is in it before the one activated fills it).
fn check_disjoint(
    report: &IsolationReport,
    guarded: &BTreeSet<&str>,
    empty: &BTreeSet<u32>,
    problems: &mut Vec<String>,
) {
    let list: Vec<(&String, &Resources)> = report.entries.iter().collect();
    for (i, (a, ra)) in list.iter().enumerate() {
        for (b, rb) in &list[i + 1..] {
            let mems: Vec<_> = ra
                .memories
                .intersection(&rb.memories)
                .filter(|&&m| m != 0)
                .collect();
            let both_guarded = guarded.contains(a.as_str()) && guarded.contains(b.as_str());
            let tables: Vec<_> = ra
                .tables
                .intersection(&rb.tables)
                .filter(|t| !(both_guarded && empty.contains(t)))
                .collect();
            let globals: Vec<_> = ra.globals.intersection(&rb.globals).collect();
            if !mems.is_empty() || !tables.is_empty() || !globals.is_empty() {
                problems.push(format!(
                    "{a} and {b} share state: memories {mems:?}, tables {tables:?}, globals {globals:?}"
                ));
            }
        }
    }
}
