//! The `run`, `verify` and `inspect` commands, the parsers of `run`'s options (`args`), completions and man pages (`docs`) (the `build` pipeline lives in [`crate::build`]).

pub mod args;
pub mod binfmt;
pub mod compile;
pub mod docs;
pub mod inspect;
pub mod list;
pub mod load;
pub mod lookup;
pub mod provenance;
pub mod run;
pub mod verify;
