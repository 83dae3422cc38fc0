//! Benchmark workloads, generated from the committed fixtures so anyone can rerun the benches.
//!
//! Shared by the criterion benches (`benches/*.rs`, as `mod common;`) and by the whole-process
//! helper `bench/tool` (included there with `#[path]`). See `docs/benchmarks.md`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ElementSection, Elements, EntityType, ExportKind,
    ExportSection, Function, FunctionSection, ImportSection, MemArg, MemoryType, Module, RefType,
    TableSection, TableType, TypeSection, ValType,
};

/// The fixture programs, in the order the N-program sets take them (`hello` first, so every
/// set holds the original `hello`; `cat` and `bigout` are in every set of N >= 3).
pub const FIXTURES: [&str; 12] = [
    "hello",
    "cat",
    "bigout",
    "wc",
    "envargs",
    "exitcode",
    "fsops",
    "clockrand",
    "memgrow",
    "panic",
    "hello-debug",
    "startsec",
];

/// Set sizes of the start-up and build figures (99 = one full shard).
pub const SET_SIZES: [usize; 4] = [1, 10, 50, 99];
/// Set size that needs several shards.
pub const SHARDED_SET: usize = 300;
/// Copies in the large-program set.
pub const BIG_COPIES: usize = 40;
/// Size of the file `cat` copies in the bridged-I/O figure.
pub const CAT_BYTES: u64 = 256 << 20;
/// Chunk sizes of the write figure, and the bytes written with each.
pub const WRITE_CHUNKS: [usize; 5] = [1, 16, 256, 4096, 65536];

/// Bytes written by the writer with `chunk`-byte writes: 10 MiB, except 1 MiB for 1-byte
/// writes (10 Mi host calls would take tens of seconds per run; the figure is a rate anyway).
pub fn write_total(chunk: usize) -> usize {
    if chunk == 1 {
        1 << 20
    } else {
        10 << 20
    }
}

/// A program of a workload: entry name (`[A-Za-z0-9_]+`, also its file name) and bytes.
#[derive(Clone)]
pub struct Prog {
    pub name: String,
    pub wasm: Vec<u8>,
}

/// The set as merger inputs (entry name and argv[0] alias = the program's name).
#[allow(dead_code)] // not every bench (nor the bench tool) merges in process
pub fn merger_programs(set: &[Prog]) -> Vec<merger::Program<'_>> {
    set.iter()
        .map(|p| merger::Program {
            name: p.name.clone(),
            wasm: &p.wasm,
            aliases: vec![p.name.clone()],
            validated: None,
        })
        .collect()
}

/// The repository root (the benches run from it; `bench/tool` two levels below).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("fixtures/wasm").is_dir() {
        here.to_path_buf()
    } else {
        here.join("../..")
    }
}

/// The bytes of fixture `name`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = repo_root()
        .join("fixtures/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn leb(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `wasm` with a custom section appended (valid anywhere after the header).
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Copy `i` of `wasm`: the same program with a distinct digest (an appended custom section,
/// which the merger drops).
pub fn distinct_copy(wasm: &[u8], i: usize) -> Vec<u8> {
    with_custom_section(wasm, "megabin-bench", format!("copy {i}").as_bytes())
}

fn entry_name(fixture: &str) -> String {
    fixture.replace('-', "_")
}

/// The N-program set: the original fixtures first (up to 12), then distinct copies of them
/// in turn (`<fixture>_<i>`). No two programs have the same bytes.
pub fn program_set(n: usize) -> Vec<Prog> {
    let originals: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    (0..n)
        .map(|i| {
            let k = i % FIXTURES.len();
            if i < FIXTURES.len() {
                Prog {
                    name: entry_name(FIXTURES[k]),
                    wasm: originals[k].clone(),
                }
            } else {
                Prog {
                    name: format!("{}_{i}", entry_name(FIXTURES[k])),
                    wasm: distinct_copy(&originals[k], i),
                }
            }
        })
        .collect()
}

/// Functions of the synthesised large program.
const BIG_FUNCTIONS: u32 = 6000;
/// Bytes of data (in 64 contiguous active segments) of the synthesised large program.
const BIG_DATA: usize = 1 << 20;
/// What the large program prints.
pub const BIG_MESSAGE: &[u8] = b"megabin bench: large program ok\n";

/// A synthesised WASI command of about 2.9 MiB (no big Rust program is among the fixtures):
/// 6000 functions of ~300 bytes of integer code each (reached through a table), 1 MiB of
/// pseudo-random data in 64 active segments, a 32-page memory; `_start` calls every 97th
/// function through `call_indirect`, then prints [`BIG_MESSAGE`] with `fd_write`. Made with
/// wasm-encoder; deterministic.
pub fn big_program() -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function(
        [ValType::I32, ValType::I32, ValType::I32, ValType::I32],
        [ValType::I32],
    ); // 0 fd_write
    types.ty().function([ValType::I32], []); // 1 proc_exit
    types.ty().function([], []); // 2 _start
    types.ty().function([ValType::I32], [ValType::I32]); // 3 workers
    let mut imports = ImportSection::new();
    imports.import(
        "wasi_snapshot_preview1",
        "fd_write",
        EntityType::Function(0),
    );
    imports.import(
        "wasi_snapshot_preview1",
        "proc_exit",
        EntityType::Function(1),
    );
    let first = 2u32;
    let start = first + BIG_FUNCTIONS;
    let mut funcs = FunctionSection::new();
    for _ in 0..BIG_FUNCTIONS {
        funcs.function(3);
    }
    funcs.function(2);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: BIG_FUNCTIONS as u64,
        maximum: Some(BIG_FUNCTIONS as u64),
        shared: false,
    });
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(MemoryType {
        minimum: 32,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("_start", ExportKind::Func, start);
    let mut elements = ElementSection::new();
    let indices: Vec<u32> = (first..start).collect();
    elements.active(
        None,
        &ConstExpr::i32_const(0),
        Elements::Functions(indices.into()),
    );

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut code = CodeSection::new();
    let mem = |offset: u64| MemArg {
        offset,
        align: 2,
        memory_index: 0,
    };
    for _ in 0..BIG_FUNCTIONS {
        let mut f = Function::new([(1, ValType::I32), (1, ValType::I64)]);
        let mut s = f.instructions();
        s.local_get(0)
            .i32_const(next() as i32 | 1)
            .i32_mul()
            .i32_const(next() as i32)
            .i32_add()
            .local_set(1);
        for _ in 0..16 {
            s.local_get(1)
                .i32_const((next() % 31 + 1) as i32)
                .i32_rotl()
                .local_get(0)
                .i32_xor()
                .i32_const(next() as i32)
                .i32_add()
                .local_set(1);
        }
        s.local_get(1)
            .i32_const((BIG_DATA as i32 - 4) & !3)
            .i32_and()
            .i32_load(mem(65536))
            .local_get(1)
            .i32_add()
            .i64_extend_i32_u()
            .i64_const(next() as i64)
            .i64_mul()
            .local_tee(2)
            .i64_const(32)
            .i64_shr_u()
            .local_get(2)
            .i64_xor()
            .i32_wrap_i64()
            .end();
        code.function(&f);
    }
    // _start: acc = f_k(acc) for k = 0, 97, 194, ...; store acc; print the message.
    let mut f = Function::new([(2, ValType::I32)]);
    let mut s = f.instructions();
    s.i32_const(0).local_set(1); // k
    s.block(wasm_encoder::BlockType::Empty)
        .loop_(wasm_encoder::BlockType::Empty)
        .local_get(1)
        .i32_const(BIG_FUNCTIONS as i32)
        .i32_ge_u()
        .br_if(1)
        .local_get(0)
        .local_get(1)
        .call_indirect(0, 3)
        .local_set(0)
        .local_get(1)
        .i32_const(97)
        .i32_add()
        .local_set(1)
        .br(0)
        .end()
        .end();
    s.i32_const(32).local_get(0).i32_store(mem(0));
    // iovec at 0: {ptr 256, len}; nwritten at 8.
    s.i32_const(0).i32_const(256).i32_store(mem(0));
    s.i32_const(4)
        .i32_const(BIG_MESSAGE.len() as i32)
        .i32_store(mem(0));
    s.i32_const(1)
        .i32_const(0)
        .i32_const(1)
        .i32_const(8)
        .call(0)
        .drop()
        .end();
    code.function(&f);

    let mut data = DataSection::new();
    data.active(0, &ConstExpr::i32_const(256), BIG_MESSAGE.iter().copied());
    let seg = BIG_DATA / 64;
    for k in 0..64 {
        let bytes: Vec<u8> = (0..seg / 8).flat_map(|_| next().to_le_bytes()).collect();
        data.active(0, &ConstExpr::i32_const((65536 + k * seg) as i32), bytes);
    }

    let mut m = Module::new();
    m.section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&tables)
        .section(&memories)
        .section(&exports)
        .section(&elements)
        .section(&code)
        .section(&data);
    m.finish()
}

/// The large-program set: [`BIG_COPIES`] distinct copies of [`big_program`].
pub fn big_set() -> Vec<Prog> {
    let big = big_program();
    (0..BIG_COPIES)
        .map(|i| Prog {
            name: format!("big_{i}"),
            wasm: distinct_copy(&big, i),
        })
        .collect()
}

/// A WASI command writing [`write_total`]`(chunk)` bytes (`x`) to stdout in `chunk`-byte
/// `fd_write` calls; traps if a write fails.
pub fn writer_program(chunk: usize) -> Vec<u8> {
    let count = write_total(chunk) / chunk;
    let pages = (1024 + chunk).div_ceil(65536);
    wat::parse_str(format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (func (export "_start") (local $n i32)
    (memory.fill (i32.const 1024) (i32.const 120) (i32.const {chunk}))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const {chunk}))
    (local.set $n (i32.const {count}))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
          (then unreachable))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))))"#
    ))
    .expect("writer WAT is valid")
}

/// The programs of the bridged-I/O megabinary: `cat`, `bigout`, one writer per chunk size,
/// then distinct fixture copies up to 99 entries (a full shard, the worst case).
pub fn io_set() -> Vec<Prog> {
    let mut set = vec![
        Prog {
            name: "cat".into(),
            wasm: fixture("cat"),
        },
        Prog {
            name: "bigout".into(),
            wasm: fixture("bigout"),
        },
    ];
    for c in WRITE_CHUNKS {
        set.push(Prog {
            name: format!("write_{c}"),
            wasm: writer_program(c),
        });
    }
    let originals: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f)).collect();
    let mut i = 0;
    while set.len() < 99 {
        let k = i % FIXTURES.len();
        set.push(Prog {
            name: format!("{}_{}", entry_name(FIXTURES[k]), 1000 + i),
            wasm: distinct_copy(&originals[k], 1000 + i),
        });
        i += 1;
    }
    set
}

/// Writes `programs` as `<root>/usr/bin/<name>` (mode 0755), replacing `root`.
pub fn write_rootfs(root: &Path, programs: &[Prog]) -> std::io::Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    let bin = root.join("usr/bin");
    std::fs::create_dir_all(&bin)?;
    for p in programs {
        let path = bin.join(&p.name);
        std::fs::write(&path, &p.wasm)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// Byte `i` of the text the I/O figures use (the `bigout` stream: 64-byte lines).
pub fn text_byte(i: u64) -> u8 {
    if i % 64 == 63 {
        b'\n'
    } else {
        b'a' + (((i / 64) * 7 + i % 64) % 26) as u8
    }
}

/// Makes `path` a file of `size` bytes of [`text_byte`] unless it already has that size.
pub fn ensure_text_file(path: &Path, size: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(size) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let block: Vec<u8> = (0..(1u64 << 20)).map(text_byte).collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        std::io::Write::write_all(&mut f, &block[..n])?;
        left -= n as u64;
    }
    std::io::Write::flush(&mut f)
}

/// Σ sizes of `programs`.
pub fn total_bytes(programs: &[Prog]) -> u64 {
    programs.iter().map(|p| p.wasm.len() as u64).sum()
}

/// Median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}
