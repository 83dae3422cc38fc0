//! [`Digest`]: the sha256 of a file's bytes, written `sha256:<64 lowercase hex digits>`.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// The sha256 of some bytes: what identifies a program, a megabinary or an artifact.
/// Text form (`Display`, `FromStr`, serde): `sha256:` and 64 hex digits (written lowercase;
/// either case is read).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

/// Text that is not a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// No `sha256:` prefix.
    Prefix,
    /// Not exactly 64 hex digits after the prefix.
    Hex,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestError::Prefix => "a digest must start with `sha256:`",
            DigestError::Hex => "a digest must have 64 hex digits after `sha256:`",
        })
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// The text prefix.
    pub const PREFIX: &'static str = "sha256:";

    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the prefix.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decodes an even number of hex digits (either case) into bytes; `None` for anything else.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let b = hex.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Digest::PREFIX, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let hex = s.strip_prefix(Digest::PREFIX).ok_or(DigestError::Prefix)?;
        if hex.len() != 64 {
            return Err(DigestError::Hex);
        }
        let bytes = decode_hex(hex).ok_or(DigestError::Hex)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(Digest(out))
    }
}

impl From<[u8; 32]> for Digest {
    fn from(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let d = Digest::of(b"hello");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(text.parse::<Digest>(), Ok(d));
        assert_eq!(
            text.to_uppercase().replace("SHA256", "sha256").parse(),
            Ok(d)
        );
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!("2cf2".parse::<Digest>(), Err(DigestError::Prefix));
        assert_eq!("sha256:2cf2".parse::<Digest>(), Err(DigestError::Hex));
        let not_hex = format!("sha256:{}", "g".repeat(64));
        assert_eq!(not_hex.parse::<Digest>(), Err(DigestError::Hex));
        let plus = format!("sha256:+{}", "0".repeat(63));
        assert_eq!(
            plus.parse::<Digest>(),
            Err(DigestError::Hex),
            "no sign accepted"
        );
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
        assert_eq!(decode_hex("0aFf"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0"), None);
    }
}
