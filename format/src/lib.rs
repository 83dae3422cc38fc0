//! The vocabulary every megabin crate shares, in one leaf crate: the [`Digest`] of a file
//! (`sha256:<hex>` in text), the naming conventions of a megabinary ([`names`]), the format
//! version written into manifests and merge maps ([`FORMAT`]) and the documented exit codes
//! ([`exit`]). It depends on nothing of megabin's, so the merger, the code generator, the
//! runtime and the CLI agree on these by construction.
#![warn(missing_docs)]

mod digest;
pub mod exit;
pub mod names;

pub use digest::{decode_hex, Digest, DigestError};

/// Format tag of manifests and of the merge map embedded in every megabinary.
pub const FORMAT: &str = "megabin/1";
