//! The `run`, `verify` and `inspect` commands (the `build` pipeline lives in [`crate::build`]).

pub mod binfmt;
pub mod compile;
pub mod inspect;
pub mod list;
pub mod load;
pub mod lookup;
pub mod provenance;
pub mod run;
pub mod verify;
