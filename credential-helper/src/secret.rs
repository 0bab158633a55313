//! Secrets that cannot be printed by accident.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer credential: a GitHub installation token or the workspace's plughost token.
///
/// `Debug` and `Display` print `<redacted>`; the value is reachable only through
/// [`Secret::expose`], so every place that writes a token out is greppable.
#[derive(Clone)]
pub struct Secret(String);

/// Why a string cannot be used as a credential.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSecret {
    /// Empty (or only whitespace) after trimming.
    #[error("the value is empty")]
    Empty,
    /// Contains whitespace or a control character: it would break git's line protocol or an HTTP header.
    #[error("the value contains whitespace or a control character")]
    BadCharacter,
    /// Longer than any token plughost or GitHub issues.
    #[error("the value is longer than {max} bytes", max = Secret::MAX_LEN)]
    TooLong,
}

impl Secret {
    /// Longest accepted value; GitHub's newer tokens are about 520 characters.
    pub const MAX_LEN: usize = 8192;

    /// Accepts a trimmed, non-empty value without whitespace or control characters.
    ///
    /// The check matters for git's protocol: a newline inside a token would let a
    /// server inject extra `key=value` lines into what git reads.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidSecret> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(InvalidSecret::TooLong);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidSecret::BadCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The value itself: only for git's stdout, an `Authorization` header, the cache file or gh's hosts file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lower-case hex SHA-256 of the value: what the helper remembers about tokens it must not keep.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }

    /// Compares with a candidate in constant time (for the password git hands to `erase`).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("ghs_abc.def_123").unwrap();
        assert!(!format!("{s:?}").contains("ghs_"));
        assert!(!format!("{s}").contains("ghs_"));
        assert_eq!(s.expose(), "ghs_abc.def_123");
    }

    #[test]
    fn rejects_values_that_would_break_the_line_protocol() {
        assert_eq!(Secret::new("  ").unwrap_err(), InvalidSecret::Empty);
        assert_eq!(Secret::new("a\nquit=1").unwrap_err(), InvalidSecret::BadCharacter);
        assert_eq!(Secret::new("a b").unwrap_err(), InvalidSecret::BadCharacter);
        assert_eq!(Secret::new("x".repeat(9000)).unwrap_err(), InvalidSecret::TooLong);
        assert_eq!(Secret::new(" tok\n").unwrap().expose(), "tok");
    }

    #[test]
    fn matches_only_the_same_value() {
        let s = Secret::new("ghs_one").unwrap();
        assert!(s.matches("ghs_one"));
        assert!(!s.matches("ghs_two"));
        assert!(!s.matches("ghs_on"));
        assert_eq!(s.sha256_hex().len(), 64);
    }
}
