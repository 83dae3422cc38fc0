//! The `run`, `verify` and `inspect` commands, the parsers of `run`'s options (`args`), completions and man pages (`docs`) (the `build` pipeline lives in [`crate::build`]).

pub mod args;
pub mod docs;
pub mod inspect;
pub mod run;
pub mod verify;
