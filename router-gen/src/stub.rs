//! Stubs of foreign imports: a program that imports a function of a host module other than
//! WASI preview1 (`env::host_call`, …) can be merged with each such import replaced by a
//! function of the same type that traps when called (`megabin build --stub-foreign-imports`).
//!
//! A stub executes `unreachable`; which import it stands for is told by its name in the name
//! section, `megabin::stub::<module>::<name>` ([`function_name`]), which appears as the
//! innermost frame of the trap's backtrace on any host; megabin's runner turns it back into the
//! import's name ([`import_of`]) for its one-line trap message.

use wasm_encoder::Function;

/// Prefix of the name-section names of stubs. The merger renames input functions whose names
/// start with `megabin::`, so only a stub can carry it.
pub const PREFIX: &str = "megabin::stub::";

/// The name-section name of the stub of `module::name`.
pub fn function_name(module: &str, name: &str) -> String {
    format!("{PREFIX}{module}::{name}")
}

/// The import (`module::name`) a function named `func_name` stands for, if it is a stub.
pub fn import_of(func_name: &str) -> Option<&str> {
    func_name.strip_prefix(PREFIX)
}

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
