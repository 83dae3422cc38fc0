//! The `run`, `verify` and `inspect` commands (the `build` pipeline lives in [`crate::build`]).

pub mod inspect;
pub mod provenance;
pub mod run;
pub mod verify;
