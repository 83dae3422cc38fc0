//! Pins the bytes router-gen generates: every trampoline, the allocator, the dispatcher's
//! functions and its static data, for a fixed layout. A refactor must leave the digest alone;
//! a deliberate change of the generated code updates [`PINNED`].

use router_gen::bridge::{self, BridgeEnv};
use router_gen::dispatch::{DispatchImports, RouteEntry, Router};
use router_gen::wasi::{self, WASI_FUNCS};

/// FNV-1a (64-bit) of everything generated, in a fixed order.
const PINNED: u64 = 0x0a6b_3713_8ff9_4b83;

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, data: &[u8]) {
        for &b in (data.len() as u64).to_le_bytes().iter().chain(data) {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn routes() -> Vec<RouteEntry> {
    let entry = |name: &str, seed: u8, aliases: &[&str]| RouteEntry {
        name: name.to_string(),
        digest: std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8)),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    };
    vec![
        entry("sh", 7, &["sh", "ash"]),
        entry("cat", 3, &["cat"]),
        entry("ls", 200, &["ls", "dir", "vdir"]),
    ]
}

#[test]
fn generated_code_is_byte_identical_to_the_pin() {
    let router = Router::new(&routes()).unwrap();
    let n = WASI_FUNCS.len() as u32;
    let env = BridgeEnv {
        memory: 0,
        alloc_func: n,
        cursor_global: 0,
        activated_global: 1,
        scratch_base: router.scratch_base(),
    };
    let index = |name: &str| WASI_FUNCS.iter().position(|f| f.name == name).unwrap() as u32;
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.bytes(&bridge::alloc_function(&env).into_raw_body());
    for (memory, base) in [(1, 100), (5, 1000)] {
        for (i, f) in WASI_FUNCS.iter().enumerate() {
            let (p, r) = bridge::signature(f);
            h.bytes(format!("{}{p:?}{r:?}", f.name).as_bytes());
            let sizes = f
                .sizes_from
                .map(|s| wasi::lookup(s).map(|g| index(g.name)).unwrap());
            let t = bridge::trampoline(f, memory, base + i as u32, sizes, &env);
            h.bytes(&t.into_raw_body());
        }
    }
    h.bytes(router.static_bytes());
    h.bytes(&router.static_base().to_le_bytes());
    h.bytes(&Router::FUNCS.to_le_bytes());
    h.bytes(&Router::MESSAGE.to_le_bytes());
    for k in 0..3 {
        let (p, l) = router.started_message(k);
        h.bytes(&[p.to_le_bytes(), l.to_le_bytes()].concat());
    }
    let imports = DispatchImports {
        fd_write: index("fd_write"),
        proc_exit: index("proc_exit"),
        args_sizes_get: index("args_sizes_get"),
        args_get: index("args_get"),
        environ_sizes_get: index("environ_sizes_get"),
        environ_get: index("environ_get"),
    };
    let funcs = router.functions(n + 1, &imports, &env, &[300, 301, 302]);
    assert_eq!(funcs.len() as u32, Router::FUNCS);
    for f in funcs {
        h.bytes(format!("{} {:?} {:?} {:?}", f.name, f.params, f.results, f.export).as_bytes());
        h.bytes(&f.body.into_raw_body());
    }
    assert_eq!(h.0, PINNED, "generated code changed: {:#x}", h.0);
}
