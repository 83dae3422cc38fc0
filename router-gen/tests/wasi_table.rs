//! The WASI table against the engine megabin runs on: every function wasmtime-wasi's preview1
//! linker defines is in [`WASI_FUNCS`] with the same core signature, and nothing else is.

use router_gen::bridge;
use router_gen::wasi::{self, WASI_FUNCS, WASI_MODULE};
use std::collections::BTreeMap;
use wasmtime::{Engine, Extern, Linker, Store, ValType};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::WasiCtxBuilder;

/// A core value type as text, comparable across wasmtime's and wasm-encoder's types.
fn wasmtime_type(t: ValType) -> String {
    match t {
        ValType::I32 => "i32".into(),
        ValType::I64 => "i64".into(),
        other => format!("{other:?}"),
    }
}

fn encoder_type(t: wasm_encoder::ValType) -> String {
    match t {
        wasm_encoder::ValType::I32 => "i32".into(),
        wasm_encoder::ValType::I64 => "i64".into(),
        other => format!("{other:?}"),
    }
}

type Signature = (Vec<String>, Vec<String>);

/// Every function wasmtime-wasi's preview1 linker defines in [`WASI_MODULE`], by name.
fn linker_functions() -> BTreeMap<String, Signature> {
    let engine = Engine::default();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |cx| cx).unwrap();
    let mut store = Store::new(&engine, WasiCtxBuilder::new().build_p1());
    let defs: Vec<(&str, &str, Extern)> = linker.iter(&mut store).collect();
    let mut funcs = BTreeMap::new();
    for (module, name, item) in defs {
        if module != WASI_MODULE {
            continue;
        }
        let Extern::Func(f) = item else {
            panic!("{module}::{name} is not a function")
        };
        let ty = f.ty(&store);
        let sig = (
            ty.params().map(wasmtime_type).collect(),
            ty.results().map(wasmtime_type).collect(),
        );
        funcs.insert(name.to_string(), sig);
    }
    funcs
}

#[test]
fn table_matches_wasmtime_wasi_preview1() {
    let host = linker_functions();
    assert!(
        !host.is_empty(),
        "the linker defines no {WASI_MODULE} function"
    );
    for f in WASI_FUNCS {
        let (params, results) = bridge::signature(f);
        let ours: Signature = (
            params.into_iter().map(encoder_type).collect(),
            results.into_iter().map(encoder_type).collect(),
        );
        match host.get(f.name) {
            Some(theirs) => assert_eq!(&ours, theirs, "signature of {}", f.name),
            None => panic!("{} is in the table but not in wasmtime-wasi", f.name),
        }
    }
    let missing: Vec<&String> = host.keys().filter(|n| wasi::lookup(n).is_none()).collect();
    assert!(missing.is_empty(), "not in the table: {missing:?}");
    assert_eq!(host.len(), WASI_FUNCS.len());
}
