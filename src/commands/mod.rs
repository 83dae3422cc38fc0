//! The `run`, `verify` and `inspect` commands (the `build` pipeline lives in [`crate::build`]).

pub mod compile;
pub mod inspect;
pub mod load;
pub mod run;
pub mod verify;
