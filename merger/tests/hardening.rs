//! Real-world module shapes the merger must handle (docs/hardening.md): exception handling,
//! the post-MVP features toolchains emit, GC types, overlong LEB128 indices, huge index spaces
//! and huge modules (with a bound on the memory the merge needs), the engine's feature set,
//! foreign imports, and the test-only function exports.

mod support;

use merger::{merge, merge_with, DebugOptions, MergeError, MergeOptions, Merged, Program};
use runtime_check::{Captured, Invocation, Runner, Status};
use support::{hardening_fixture, merge_exporting, program, Harness, Outcome, Rng};
use wasm_encoder::reencode::Reencode;
use wasm_encoder::{
    CodeSection, ConstExpr, DataCountSection, DataSection, ElementSection, Elements, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, Instruction,
    MemorySection, MemoryType, Module, RefType, TableSection, TableType, TypeSection, ValType,
};

// ---------------------------------------------------------------------------------------------
// Peak heap of the current thread, to bound what a merge holds in memory.

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static CURRENT: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn track(delta: isize) {
        let _ = CURRENT.try_with(|c| {
            let v = c.get() + delta;
            c.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    }

    /// Resets the peak to the current level and returns that level.
    pub fn reset() -> isize {
        let now = CURRENT.with(Cell::get);
        PEAK.with(|p| p.set(now));
        now
    }

    /// Highest level since [`reset`].
    pub fn peak() -> isize {
        PEAK.with(Cell::get)
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                track(l.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(l) };
            if !p.is_null() {
                track(l.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            unsafe { System.dealloc(p, l) };
            track(-(l.size() as isize));
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                // Count a moving realloc at its worst: both blocks alive at once.
                track(new as isize);
                track(-(l.size() as isize));
            }
            q
        }
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Traps compare by code (messages carry the entry prefix in function names); errors that are
/// not traps (an uncaught exception) by their first line and whether they name an exception.
fn comparable(c: &Captured) -> (String, String, String) {
    let status = match &c.status {
        Status::Exit(code) => format!("exit {code}"),
        Status::Trap { code, message } => format!(
            "trap {} (exception: {})",
            code.lines().next().unwrap_or(""),
            message.contains("exception")
        ),
    };
    (
        String::from_utf8_lossy(&c.stdout).into_owned(),
        String::from_utf8_lossy(&c.stderr).into_owned(),
        status,
    )
}

// ---------------------------------------------------------------------------------------------
// Module shapes: exceptions, post-MVP features, GC.

#[test]
fn exceptions_features_and_gc_behave_the_same_standalone_and_merged() {
    let names = [
        ("exceptions", "exceptions.wat"),
        ("uncaught", "exceptions_uncaught.wat"),
        ("features", "features.wat"),
        ("gc", "gc.wat"),
    ];
    let wasms: Vec<Vec<u8>> = names.iter().map(|(_, f)| hardening_fixture(f)).collect();
    let programs: Vec<Program> = names
        .iter()
        .zip(&wasms)
        .map(|((n, _), w)| program(n, w))
        .collect();
    let merged = merge(
        &programs,
        &MergeOptions {
            jobs: 2,
            ..Default::default()
        },
    )
    .unwrap();
    merger::check_isolation(&merged.wasm).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    // Tags are an index space: the second program's tags come after the first's.
    let map = &merged.map.entries;
    assert_eq!((map[0].tags.start, map[0].tags.end), (0, 4));
    assert_eq!((map[1].tags.start, map[1].tags.end), (4, 6));

    let runner = Runner::new().unwrap();
    let module = runner.compile(&merged.wasm).unwrap();
    let expected = [
        ("exceptions", "exit 58"),
        ("uncaught", ""),
        ("features", ""),
        ("gc", "exit 53"),
    ];
    for (((name, _), wasm), (_, want)) in names.iter().zip(&wasms).zip(expected) {
        let inv = Invocation {
            args: vec![name.to_string()],
            ..Default::default()
        };
        let standalone = runner
            .run_captured(&runner.compile(wasm).unwrap(), "_start", &inv)
            .unwrap();
        let inside = runner
            .run_captured(&module, &format!("{name}_start"), &inv)
            .unwrap();
        assert_eq!(comparable(&standalone), comparable(&inside), "{name}");
        if !want.is_empty() {
            assert_eq!(comparable(&standalone).2, want, "{name}");
        }
    }
    // The programs really ran: spot-check their output.
    let inv = Invocation::default();
    let out = runner
        .run_captured(&module, "exceptions_start", &inv)
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a=5\nb=1042\nc=7\nd=3\ne=88\nf=9\ng=4\n"
    );
    let out = runner
        .run_captured(&module, "uncaught_start", &inv)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "caught\n");
    assert!(
        matches!(&out.status, Status::Trap { .. }),
        "the second exception escapes: {:?}",
        out.status
    );
    let out = runner
        .run_captured(&module, "features_start", &inv)
        .unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert_eq!(lines[5], "705082704", "100,000 tail calls (sum mod 2^32)");
}

#[test]
fn legacy_exceptions_are_an_unsupported_feature_and_truncation_is_invalid() {
    let reason = |wasm: &[u8]| match merge(&[program("p", wasm)], &MergeOptions::default()) {
        Err(MergeError::Unsupported { reason, .. }) => reason,
        other => panic!("expected Unsupported, got {:?}", other.map(|m| m.map)),
    };
    let legacy = hardening_fixture("legacy_exceptions.wat");
    match reason(&legacy) {
        merger::Unsupported::Feature { feature, message } => {
            assert_eq!(feature, "legacy-exceptions");
            assert!(message.contains("legacy_exceptions"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(reason(&legacy)
        .to_string()
        .starts_with("legacy-exceptions is not enabled in the engine"));
    // A module that is invalid whatever the features stays `Invalid`.
    let mut broken = legacy.clone();
    let n = broken.len();
    broken.truncate(n - 3);
    assert!(matches!(reason(&broken), merger::Unsupported::Invalid(_)));
}

/// The merger validates with exactly the feature set of the runner's engine: every probe is
/// accepted by both or refused by both.
#[test]
fn the_merger_feature_set_matches_the_engine() {
    let engine = runtime_check::new_engine().unwrap();
    let probes: &[(&str, &str, bool)] = &[
        ("mvp", "(module (func))", true),
        (
            "legacy-exceptions",
            "(module (tag) (func try catch 0 end))",
            false,
        ),
        (
            "exceptions",
            "(module (tag) (func (block (try_table (catch_all 0) (throw 0)))))",
            true,
        ),
        (
            "exnref",
            "(module (global (mut exnref) (ref.null exn)))",
            true,
        ),
        (
            "wide-arithmetic",
            "(module (func (param i64 i64 i64 i64) (result i64 i64) local.get 0 local.get 1 local.get 2 local.get 3 i64.add128))",
            false,
        ),
        ("custom-page-sizes", "(module (memory 1 (pagesize 1)))", false),
        ("memory64", "(module (memory i64 1))", true),
        (
            "threads",
            "(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))",
            true,
        ),
        ("gc", "(module (type (struct (field i32))) (func (drop (struct.new_default 0))))", true),
        (
            "function-references",
            "(module (type $t (func)) (func (param (ref $t)) (call_ref $t (local.get 0))))",
            true,
        ),
        (
            "relaxed-simd",
            "(module (func (param v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 0) (local.get 0))))",
            true,
        ),
        ("simd", "(module (func (result v128) (v128.const i64x2 1 2)))", true),
        (
            "extended-const",
            "(module (global i32 (i32.add (i32.const 1) (i32.const 2))))",
            true,
        ),
        (
            "tail-call",
            "(module (func $f (return_call $f)))",
            true,
        ),
        ("multi-memory", "(module (memory 1) (memory 1))", true),
        (
            "stack-switching",
            "(module (type $f (func)) (type $c (cont $f)))",
            false,
        ),
    ];
    let mut parsed = 0;
    for (what, src, expected) in probes {
        let Ok(bytes) = wat::parse_str(src) else {
            continue; // the text format of a proposal may lag behind
        };
        parsed += 1;
        let engine_ok = wasmtime::Module::validate(&engine, &bytes).is_ok();
        let merger_ok = wasmparser::Validator::new_with_features(merger::features())
            .validate_all(&bytes)
            .is_ok();
        assert_eq!(
            engine_ok, merger_ok,
            "{what}: engine {engine_ok}, merger {merger_ok}"
        );
        assert_eq!(engine_ok, *expected, "{what}");
    }
    assert!(parsed >= probes.len() - 2, "most probes parse");
}

#[test]
fn function_exports_are_test_only_and_skip_memory() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "mem") 1)
             (func (export "_start"))
             (func (export "memory") (result i32) (i32.const 1))
             (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#,
    )
    .unwrap();
    let exports = |m: &Merged| -> Vec<String> {
        let mut v = Vec::new();
        for p in wasmparser::Parser::new(0).parse_all(&m.wasm) {
            if let Ok(wasmparser::Payload::ExportSection(r)) = p {
                v.extend(r.into_iter().map(|e| e.unwrap().name.to_string()));
            }
        }
        v
    };
    let plain = merge(&[program("p", &wasm)], &MergeOptions::default()).unwrap();
    assert_eq!(
        exports(&plain),
        [
            "memory",
            "megabin_dispatch",
            "_start",
            "p_start",
            "p.memory"
        ]
    );
    let hooked = merge_exporting(&[program("p", &wasm)]);
    assert_eq!(
        exports(&hooked),
        [
            "memory",
            "megabin_dispatch",
            "_start",
            "p_start",
            "p.memory",
            "p._start",
            "p.add"
        ]
    );
    let h = Harness::new();
    let mut inst = h.instantiate(&h.compile(&hooked.wasm).unwrap()).unwrap();
    assert_eq!(h.call(&mut inst, "p_start", &[]), Outcome::Values(vec![]));
    assert_eq!(
        h.call(
            &mut inst,
            "p.add",
            &[wasmtime::Val::I32(2), wasmtime::Val::I32(40)]
        ),
        Outcome::Values(vec!["i32:42".into()])
    );
}

// ---------------------------------------------------------------------------------------------
// Overlong LEB128 encodings.

/// A WASI command whose every LEB128 (section sizes, counts, type, function, table, memory,
/// global, tag, element and data indices, memargs, constants, block types) takes 5 bytes.
/// Exports `f: (i32) -> i32`, which exercises each index kind and returns a checksum.
fn overlong_module() -> Vec<u8> {
    use support::overlong::*;
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let func = |params: &[u8], results: &[u8]| {
        let mut t = vec![0x60];
        t.extend(u(params.len() as u32));
        t.extend_from_slice(params);
        t.extend(u(results.len() as u32));
        t.extend_from_slice(results);
        t
    };
    // types: 0 [] -> [], 1 [i32] -> [i32], 2 [] -> [i32], 3 [i32] -> []
    section(
        1,
        vec(&[
            func(&[], &[]),
            func(&[0x7f], &[0x7f]),
            func(&[], &[0x7f]),
            func(&[0x7f], &[]),
        ]),
        &mut m,
    );
    // import 0: sched_yield
    section(
        2,
        vec(&[cat(&[
            &name("wasi_snapshot_preview1"),
            &name("sched_yield"),
            &[0x00],
            &u(2),
        ])]),
        &mut m,
    );
    // functions 1 _start, 2 f, 3 g
    section(3, vec(&[u(0), u(1), u(1)]), &mut m);
    // table 0: funcref 4..4
    section(4, vec(&[cat(&[&[0x70, 0x01], &u(4), &u(4)])]), &mut m);
    // memory 0: 1..2 pages
    section(5, vec(&[cat(&[&[0x01], &u(1), &u(2)])]), &mut m);
    // tag 0: [i32]
    section(13, vec(&[cat(&[&[0x00], &u(3)])]), &mut m);
    // global 0: mut i32 = 7
    section(
        6,
        vec(&[cat(&[&[0x7f, 0x01, 0x41], &s(7), &[0x0b]])]),
        &mut m,
    );
    // exports
    section(
        7,
        vec(&[
            cat(&[&name("_start"), &[0x00], &u(1)]),
            cat(&[&name("memory"), &[0x02], &u(0)]),
            cat(&[&name("f"), &[0x00], &u(2)]),
        ]),
        &mut m,
    );
    // element: table 0 at 1 := [g]
    section(
        9,
        vec(&[cat(&[&u(0), &[0x41], &s(1), &[0x0b], &vec(&[u(3)])])]),
        &mut m,
    );
    // data count
    section(12, u(2), &mut m);
    let body = |locals: Vec<u8>, code: Vec<u8>| {
        let mut b = locals;
        b.extend(code);
        let mut out = u(b.len() as u32);
        out.extend(b);
        out
    };
    let start = body(u(0), vec![0x0b]);
    let g = body(
        u(0),
        cat(&[&[0x20], &u(0), &[0x41], &s(3), &[0x6c, 0x0b]]), // local.get 0 * 3
    );
    let add_to_acc = |code: &[u8]| cat(&[code, &[0x20], &u(1), &[0x6a, 0x21], &u(1)]);
    let f_code = cat(&[
        // acc = call_indirect (type 1) (table 0) g(x)  ==> 3x
        &[0x20],
        &u(0),
        &[0x41],
        &s(1),
        &[0x11],
        &u(1),
        &u(0),
        &[0x21],
        &u(1),
        // acc += global 0 (7); global 0 = acc
        &add_to_acc(&cat(&[&[0x23], &u(0)])),
        &[0x20],
        &u(1),
        &[0x24],
        &u(0),
        // sched_yield (import 0) -> errno, added
        &add_to_acc(&cat(&[&[0x10], &u(0)])),
        // acc += i32.load offset=16 (memory 0, explicit memidx) at 0: "WXYZ"
        &add_to_acc(&cat(&[&[0x41], &s(0), &[0x28], &u(0x42), &u(0), &u(16)])),
        // acc += memory.size 0
        &add_to_acc(&cat(&[&[0x3f], &u(0)])),
        // memory.init data 1 (passive "PQRS") to 32, then data.drop 1 and of the active 0
        &[0x41],
        &s(32),
        &[0x41],
        &s(0),
        &[0x41],
        &s(4),
        &[0xfc],
        &u(8),
        &u(1),
        &u(0),
        &[0xfc],
        &u(9),
        &u(1),
        &[0xfc],
        &u(9),
        &u(0),
        &add_to_acc(&cat(&[&[0x41], &s(32), &[0x28], &u(2), &u(0)])),
        // acc += ref.is_null(ref.func 3) (0) + table.size 0 (4)
        &add_to_acc(&cat(&[&[0xd2], &u(3), &[0xd1]])),
        &add_to_acc(&cat(&[&[0xfc], &u(16), &u(0)])),
        // acc += block (type 2) try_table (catch tag 0 -> label 0) throw tag 0 (acc & 0xff)
        &add_to_acc(&cat(&[
            &[0x02],
            &s(2), // block type index 2 as a 5-byte s33
            &[0x1f, 0x40],
            &vec(&[cat(&[&[0x00], &u(0), &u(0)])]),
            &[0x20],
            &u(1),
            &[0x41],
            &s(0xff),
            &[0x71, 0x08],
            &u(0),
            &[0x0b, 0x41],
            &s(-1),
            &[0x0b],
        ])),
        // block block (x & 1) br_table [0 1] 1 end acc += 100 end acc += 1000
        &[0x02, 0x40, 0x02, 0x40, 0x20],
        &u(0),
        &[0x41],
        &s(1),
        &[0x71, 0x0e],
        &vec(&[u(0), u(1)]),
        &u(1),
        &[0x0b],
        &add_to_acc(&cat(&[&[0x41], &s(100)])),
        &[0x0b],
        &add_to_acc(&cat(&[&[0x41], &s(1000)])),
        &[0x20],
        &u(1),
        &[0x0b],
    ]);
    let f = body(vec(&[cat(&[&u(1), &[0x7f]])]), f_code);
    section(10, vec(&[start, f, g]), &mut m);
    // data: active 0 at 0 (20 bytes), passive 1
    section(
        11,
        vec(&[
            cat(&[
                &u(0),
                &[0x41],
                &s(0),
                &[0x0b],
                &name("0123456789abcdefWXYZ"),
            ]),
            cat(&[&u(1), &name("PQRS")]),
        ]),
        &mut m,
    );
    m
}

#[test]
fn overlong_leb128_indices_are_accepted_and_reencoded_remapped() {
    let wasm = overlong_module();
    wasmparser::Validator::new_with_features(merger::features())
        .validate_all(&wasm)
        .expect("the hand-assembled module is valid");
    assert!(
        wasm.windows(5).any(|w| w == [0x80, 0x80, 0x80, 0x80, 0x00]),
        "really overlong"
    );
    // Merged after a program with three tables, a tag and globals: every index of `lebs` moves
    // (its memory too: every program is bridged here, none uses the exported memory).
    let features = hardening_fixture("features.wat");
    let exceptions = hardening_fixture("exceptions.wat");
    let merged = merge_with(
        &[
            program("features", &features),
            program("exceptions", &exceptions),
            program("lebs", &wasm),
        ],
        &MergeOptions::default(),
        &DebugOptions {
            export_functions: true,
            bridge_all: true,
        },
    )
    .unwrap();
    merger::check_isolation(&merged.wasm).unwrap();
    let entry = &merged.map.entries[2];
    assert_eq!(entry.tables.start, 4);
    assert_eq!(entry.tags.start, 4);
    assert_eq!(entry.memory, 3);

    let h = Harness::new();
    let mut alone = h.instantiate(&h.compile(&wasm).unwrap()).unwrap();
    let mut inside = h.instantiate(&h.compile(&merged.wasm).unwrap()).unwrap();
    assert_eq!(h.call(&mut alone, "_start", &[]), Outcome::Values(vec![]));
    assert_eq!(
        h.call(&mut inside, "lebs_start", &[]),
        Outcome::Values(vec![])
    );
    for (i, x) in [0, 1, 2, 77, -5].into_iter().enumerate() {
        let args = [wasmtime::Val::I32(x)];
        let a = h.call(&mut alone, "f", &args);
        let b = h.call(&mut inside, "lebs.f", &args);
        assert_eq!(a, b, "f({x})");
        // The first call drops the passive segment; later calls trap in its memory.init.
        let want = if i == 0 {
            matches!(a, Outcome::Values(_))
        } else {
            a == Outcome::Trap("MemoryOutOfBounds".into())
        };
        assert!(want, "call {i}: f({x}) = {a:?}");
        assert_eq!(
            h.memory(&mut alone, "memory"),
            h.memory(&mut inside, "lebs.memory")
        );
    }

    // The output is canonical: re-encoding it changes nothing in its code section.
    let code = |w: &[u8]| -> Vec<u8> {
        wasmparser::Parser::new(0)
            .parse_all(w)
            .find_map(|p| match p.ok()? {
                wasmparser::Payload::CodeSectionStart { range, .. } => Some(w[range].to_vec()),
                _ => None,
            })
            .unwrap()
    };
    let mut again = wasm_encoder::Module::new();
    wasm_encoder::reencode::RoundtripReencoder
        .parse_core_module(&mut again, wasmparser::Parser::new(0), &merged.wasm)
        .unwrap();
    assert_eq!(code(&again.finish()), code(&merged.wasm));
}

// ---------------------------------------------------------------------------------------------
// Huge index spaces and huge modules.

/// A module with a 500,000-slot table (max = min), `segments` active data segments (a few at
/// computed offsets), some passive ones, `big` large segments of `big_len` pseudo-random bytes,
/// and `funcs` extra functions of ~500 bytes of code each. Exports `get(i)` (call_indirect
/// slot i), `load(addr) -> i64` and `_start`.
///
/// Also returns a twin: the same module with the small active segments replaced by ONE
/// segment holding the image they produce (applied in order, as instantiation does). Wasmtime
/// (with debug assertions, as in tests) takes minutes to compile a module with tens of
/// thousands of data segments, so the standalone side of a comparison runs the twin.
fn huge_module(
    segments: u32,
    big: u32,
    big_len: usize,
    funcs: u32,
    rng: &mut Rng,
) -> (Vec<u8>, Vec<u8>) {
    const SLOTS: u64 = 500_000;
    let mut types = TypeSection::new();
    types.ty().function([], []); // 0
    types.ty().function([ValType::I32], [ValType::I32]); // 1
    types.ty().function([], [ValType::I32]); // 2
    types.ty().function([ValType::I32], [ValType::I64]); // 3
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    // 0 _start, 1 get, 2 load, 3.. returners
    functions.function(0);
    let mut f = Function::new([]);
    f.instruction(&Instruction::End);
    code.function(&f);
    functions.function(1);
    let mut f = Function::new([]);
    f.instructions().local_get(0).call_indirect(0, 2).end();
    code.function(&f);
    functions.function(3);
    let mut f = Function::new([]);
    f.instructions()
        .local_get(0)
        .i64_load(wasm_encoder::MemArg {
            offset: 0,
            align: 0,
            memory_index: 0,
        })
        .end();
    code.function(&f);
    for i in 0..funcs {
        functions.function(2);
        let mut f = Function::new([(1, ValType::I32)]);
        let mut sink = f.instructions();
        sink.i32_const(i as i32).local_set(0);
        for k in 0..60 {
            sink.local_get(0)
                .i32_const(k * 7919 + 1)
                .i32_add()
                .i32_const(13)
                .i32_rotl()
                .local_set(0);
        }
        sink.local_get(0).end();
        code.function(&f);
    }
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: SLOTS,
        maximum: Some(SLOTS),
        shared: false,
    });
    let span = (big as u64 * big_len as u64).max(1 << 20) + (1 << 20);
    let pages = span.div_ceil(65536) + 1;
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: false,
            shared: false,
        },
        &ConstExpr::i32_const(512 * 1024),
    );
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 0);
    exports.export("get", ExportKind::Func, 1);
    exports.export("load", ExportKind::Func, 2);
    exports.export("memory", ExportKind::Memory, 0);
    let mut elements = ElementSection::new();
    let last: Vec<u32> = (0..funcs.min(10)).map(|i| 3 + i).collect();
    elements.active(
        Some(0),
        &ConstExpr::i32_const((SLOTS - 10) as i32),
        Elements::Functions(last.clone().into()),
    );
    elements.active(
        Some(0),
        &ConstExpr::i32_const(0),
        Elements::Functions(last[..1].to_vec().into()),
    );
    let mut data = DataSection::new();
    let mut twin = DataSection::new();
    let mut image = vec![0u8; (1 << 20) + 8];
    let mut count = 0;
    // Many small segments in the first MiB: clusters of nearby segments, gaps of every size,
    // overlaps, and the last three at a computed offset (the global: 512 KiB).
    let mut at = 0u32;
    for i in 0..segments {
        let len = 1 + rng.below(8) as usize;
        let bytes = rng.bytes(len);
        let land = if i >= segments - 3 {
            512 * 1024
        } else {
            at as usize
        };
        image[land..land + len].copy_from_slice(&bytes);
        if i >= segments - 3 {
            data.active(0, &ConstExpr::global_get(0), bytes);
        } else {
            data.active(0, &ConstExpr::i32_const(at as i32), bytes);
        }
        count += 1;
        at =
            (at + match rng.below(10) {
                0 => 5000,
                1 => 0,
                _ => rng.below(24) as u32,
            }) % (1 << 20);
    }
    twin.raw(&active_raw(0, &image));
    let mut twin_count = 1;
    for _ in 0..1000 {
        let len = rng.below(16) as usize;
        let bytes = rng.bytes(len);
        data.passive(bytes.clone());
        twin.passive(bytes);
        count += 1;
        twin_count += 1;
    }
    for b in 0..big {
        let offset = (1 << 20) + b as usize * big_len;
        let seg = active_raw(offset, &rng.bytes(big_len));
        data.raw(&seg);
        twin.raw(&seg);
        count += 1;
        twin_count += 1;
    }
    let module = |data: &DataSection, count: u32| {
        let mut m = Module::new();
        m.section(&types);
        m.section(&functions);
        m.section(&tables);
        m.section(&memories);
        m.section(&globals);
        m.section(&exports);
        m.section(&elements);
        m.section(&DataCountSection { count });
        m.section(&code);
        m.section(data);
        m.finish()
    };
    (module(&data, count), module(&twin, twin_count))
}

/// An active data segment of memory 0 at `offset`, encoded (bulk copy: fast in debug builds).
fn active_raw(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut seg = vec![0x00];
    wasm_encoder::Encode::encode(&ConstExpr::i32_const(offset as i32), &mut seg);
    wasm_encoder::Encode::encode(&(bytes.len() as u32), &mut seg);
    seg.extend_from_slice(bytes);
    seg
}

/// Runs `_start`, then `get` and `load` on a few inputs, standalone (the twin) and merged, and
/// compares results and the whole memory.
fn compare_huge(wasm: &[u8], merged: &Merged, name: &str, probes: &[i32]) {
    let mut h = Harness::new();
    h.fuel = u64::MAX / 4; // activation is linear in the number of segments
    h.ticks = u64::MAX / 4;
    let mut alone = h.instantiate(&h.compile(wasm).unwrap()).unwrap();
    let mut inside = h.instantiate(&h.compile(&merged.wasm).unwrap()).unwrap();
    assert_eq!(h.call(&mut alone, "_start", &[]), Outcome::Values(vec![]));
    assert_eq!(
        h.call(&mut inside, &format!("{name}_start"), &[]),
        Outcome::Values(vec![])
    );
    for &p in probes {
        for f in ["get", "load"] {
            let args = [wasmtime::Val::I32(p)];
            let a = h.call(&mut alone, f, &args);
            let b = h.call(&mut inside, &format!("{name}.{f}"), &args);
            assert_eq!(a, b, "{f}({p})");
        }
    }
    let (a, b) = (
        h.memory(&mut alone, "memory"),
        h.memory(&mut inside, &format!("{name}.memory")),
    );
    assert_eq!(a.len(), b.len());
    assert!(a == b, "memory contents differ");
}

#[test]
fn a_500k_slot_table_and_50k_data_segments_merge_and_run_identically() {
    let mut rng = Rng(1);
    let (wasm, twin) = huge_module(50_000, 0, 0, 12, &mut rng);
    let other = hardening_fixture("features.wat");
    let started = std::time::Instant::now();
    let merged = merge_exporting(&[program("small", &other), program("huge", &wasm)]);
    let took = started.elapsed();
    let entry = &merged.map.entries[1];
    let segments = entry.data.end - entry.data.start;
    assert!(
        segments < 10_000,
        "50,000 small segments coalesce: {segments} left"
    );
    assert!(
        took.as_secs() < 20,
        "merging 50k segments took {took:?}: quadratic?"
    );
    compare_huge(
        &twin,
        &merged,
        "huge",
        &[
            0, 5, 499_990, 499_995, 499_999, 500_000, 4096, 524_288, 1_048_570,
        ],
    );
}

#[test]
fn a_module_over_50_mib_with_16_mib_segments_merges_with_one_copy_of_its_data() {
    let mut rng = Rng(2);
    // 3 segments of 17 MiB (one > 16 MiB on its own) + ~1 MB of code: > 50 MiB.
    let (wasm, twin) = huge_module(2_000, 3, 17 << 20, 2_000, &mut rng);
    assert!(wasm.len() > 50 << 20, "{} bytes", wasm.len());
    let small = hardening_fixture("gc.wat");
    let programs = [program("small", &small), program("big", &wasm)];
    let before = counting::reset();
    let merged = merge_with(
        &programs,
        &MergeOptions {
            jobs: 1,
            ..Default::default()
        },
        &DebugOptions {
            export_functions: true,
            ..Default::default()
        },
    )
    .unwrap();
    let peak = (counting::peak() - before) as usize;
    eprintln!(
        "merge of a {} MiB program: peak heap {} MiB, output {} MiB",
        wasm.len() >> 20,
        peak >> 20,
        merged.wasm.len() >> 20
    );
    // The merge holds the output (about the input's size) and little else: no second copy of
    // the data (the data and code sections are written straight into the output).
    assert!(
        peak < merged.wasm.len() + (12 << 20),
        "peak heap during merge {} MiB for a {} MiB output",
        peak >> 20,
        merged.wasm.len() >> 20
    );
    let top = 1 << 20;
    drop(wasm);
    compare_huge(
        &twin,
        &merged,
        "big",
        &[
            0,
            499_999,
            top,
            top + (17 << 20) - 8,
            top + 3 * (17 << 20) - 8,
        ],
    );
}

#[test]
fn spread_out_tiny_segments_do_not_blow_up_the_output() {
    // 20,000 one-byte segments 4 KiB apart: 20 KB of data. Filling every gap with zeros would
    // make an 80 MB module; the fill budget keeps it at most twice the data plus 64 KiB.
    let mut data = DataSection::new();
    for i in 0..20_000u32 {
        data.active(0, &ConstExpr::i32_const((i * 4097) as i32), [i as u8]);
    }
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 20_000 * 4097 / 65536 + 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 0);
    exports.export("memory", ExportKind::Memory, 0);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::End);
    code.function(&f);
    let mut m = Module::new();
    m.section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exports)
        .section(&code)
        .section(&data);
    let wasm = m.finish();
    let merged = merge_exporting(&[program("spread", &wasm)]);
    let mut h = Harness::new();
    h.fuel = u64::MAX / 4;
    h.ticks = u64::MAX / 4;
    // Kept apart, a segment costs ~25 bytes (its header and its memory.init in the start
    // function) against ~9 in the input; joining every gap would cost 80 MB.
    assert!(
        merged.wasm.len() < 4 * wasm.len(),
        "{} bytes from {}",
        merged.wasm.len(),
        wasm.len()
    );
    let mut inside = h.instantiate(&h.compile(&merged.wasm).unwrap()).unwrap();
    assert_eq!(
        h.call(&mut inside, "spread_start", &[]),
        Outcome::Values(vec![])
    );
    let mut expected = vec![0u8; (20_000 * 4097 / 65536 + 1) * 65536];
    for i in 0..20_000usize {
        expected[i * 4097] = i as u8;
    }
    assert!(expected == h.memory(&mut inside, "spread.memory"));
}

#[test]
fn repeated_wasi_imports_share_one_trampoline() {
    // An import-only WASI program whose imports come in an unusual order and repeat.
    let wasm = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "sched_yield" (func $a (result i32)))
             (import "wasi_snapshot_preview1" "proc_exit" (func $x (param i32)))
             (import "wasi_snapshot_preview1" "sched_yield" (func $b (result i32)))
             (memory (export "memory") 1)
             (func (export "_start"))
             (func (export "f") (result i32) (i32.add (call $a) (call $b))))"#,
    )
    .unwrap();
    let merged = merge_exporting(&[program("p", &wasm)]);
    let h = Harness::new();
    let mut inst = h.instantiate(&h.compile(&merged.wasm).unwrap()).unwrap();
    h.call(&mut inst, "p_start", &[]);
    assert_eq!(
        h.call(&mut inst, "p.f", &[]),
        Outcome::Values(vec!["i32:0".into()])
    );
}

#[test]
fn inputs_larger_than_a_module_are_refused_without_being_parsed() {
    // 1 GiB + 1 of zeros (calloc'd: never touched). Parsing it would fail slowly; the size
    // alone refuses it.
    let huge = vec![0u8; (1 << 30) + 1];
    let started = std::time::Instant::now();
    let print = merger::Footprint::of(&huge).expect("not parsed, so not refused as invalid");
    assert!(merger::fits(&[print]).is_err());
    match merge(&[program("huge", &huge)], &MergeOptions::default()) {
        Err(MergeError::TooLarge(e)) => assert_eq!(e.what, "bytes"),
        other => panic!("{:?}", other.map(|m| m.map)),
    }
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

/// Regression (differential test, seeds 15 and 51): a table's initial value allocating a huge
/// GC array made the whole merged module fail to instantiate.
/// Small literal arrays and structs in constant expressions are accepted (the refused
/// allocations are cases in `bad-input/`).
#[test]
fn small_constant_allocations_are_accepted() {
    let ok = wat::parse_str(
        r#"(module (type $a (array i8)) (type $s (struct (field i32))) (memory 1)
        (global (ref $a) (array.new_default $a (i32.const 16)))
        (global (ref $s) (struct.new $s (i32.const 1)))
        (func (export "_start")))"#,
    )
    .unwrap();
    merge(&[program("p", &ok)], &MergeOptions::default()).unwrap();
}
