//! Stubs of foreign imports: a program that imports a function of a host module other than
//! WASI preview1 (`env::host_call`, …) can be merged with each such import replaced by a
//! function of the same type that traps when called (`megabin build --stub-foreign-imports`).
//!
//! A stub executes `unreachable`; which import it stands for is told by its name in the name
//! section, `megabin::stub::<module>::<name>` ([`function_name`]), which appears as the
//! innermost frame of the trap's backtrace on any host; megabin's runner turns it back into the
//! import's name ([`import_of`]) for its one-line trap message. Both names are spelled in
//! [`crate::names`].

use wasm_encoder::Function;

pub use crate::names::{stub as function_name, stub_import as import_of, STUB_PREFIX as PREFIX};

/// The stub's body: `unreachable` (its type is the import's; it has no locals).
pub fn function() -> Function {
    let mut f = Function::new([]);
    f.instructions().unreachable().end();
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_round_trip() {
        let n = super::function_name("env", "host_call");
        assert_eq!(n, "megabin::stub::env::host_call");
        assert_eq!(super::import_of(&n), Some("env::host_call"));
        assert_eq!(super::import_of("megabin::bridge_alloc"), None);
    }
}
