//! git's credential protocol: `key=value` lines ending with a blank line (gitcredentials(7)).

use std::io::{self, BufRead, Write};

use crate::secret::Secret;

/// Longest request accepted, in bytes up to and including the blank line; git sends a few hundred.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The attributes of one request from git that the helper looks at; the rest are ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// `protocol`, e.g. `https`.
    pub protocol: Option<String>,
    /// `host`, with `:port` when not the default.
    pub host: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `password` (for `erase`, the rejected one). Kept as a plain string because git
    /// may send anything; it is only ever compared, never printed.
    pub password: Option<RedactedString>,
}

/// A string whose `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RedactedString(pub String);

impl std::fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Request {
    /// Reads attributes up to a blank line or end of input. A request longer than [`MAX_REQUEST`]
    /// is an error, and no more than that is ever read (not even one endless line).
    pub fn read(input: impl BufRead) -> io::Result<Self> {
        let mut request = Self::default();
        let mut total = 0;
        for line in input.take(MAX_REQUEST as u64 + 1).split(b'\n') {
            let line = line?;
            total += line.len() + 1;
            if total > MAX_REQUEST {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "credential request longer than 64 KiB"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                break;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.to_owned();
            match key {
                "protocol" => request.protocol = Some(value),
                "host" => request.host = Some(value),
                "username" => request.username = Some(value),
                "password" => request.password = Some(RedactedString(value)),
                _ => {}
            }
        }
        Ok(request)
    }
}

/// Writes the answer to `get`: the username, the token and, when known, its expiry so
/// that git (2.40+) never reuses it after that moment.
pub fn write_credential(mut out: impl Write, token: &Secret, expires_at: Option<u64>) -> io::Result<()> {
    let mut text = format!("username={USERNAME}\npassword={}\n", token.expose());
    if let Some(at) = expires_at {
        text.push_str(&format!("password_expiry_utc={at}\n"));
    }
    text.push('\n');
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The username GitHub expects with an installation token.
pub const USERNAME: &str = "x-access-token";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_until_blank_line() {
        let input = b"protocol=https\nhost=github.com\nwwwauth[]=Basic realm=x\npassword=a=b\n\nhost=evil\n";
        let r = Request::read(&input[..]).unwrap();
        assert_eq!(r.protocol.as_deref(), Some("https"));
        assert_eq!(r.host.as_deref(), Some("github.com"));
        assert_eq!(r.password.as_ref().map(|p| p.0.as_str()), Some("a=b"));
        assert!(!format!("{r:?}").contains("a=b"));
    }

    #[test]
    fn reads_without_trailing_blank_line_and_crlf() {
        let r = Request::read(&b"protocol=https\r\nhost=github.com"[..]).unwrap();
        assert_eq!(r.host.as_deref(), Some("github.com"));
        assert_eq!(r.protocol.as_deref(), Some("https"));
    }

    #[test]
    fn refuses_huge_input() {
        let big = vec![b'a'; MAX_REQUEST + 10];
        assert!(Request::read(&big[..]).is_err());
    }

    #[test]
    fn stops_reading_an_endless_line_at_the_limit() {
        let mut endless = io::BufReader::new(io::repeat(b'a'));
        let err = Request::read(&mut endless).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn accepts_a_request_of_exactly_the_limit() {
        let padding = "x".repeat(MAX_REQUEST - "host=\n\n".len());
        let input = format!("host={padding}\n\n");
        assert_eq!(Request::read(input.as_bytes()).unwrap().host.as_deref(), Some(padding.as_str()));
        let input = format!("host={padding}x\n\n");
        assert!(Request::read(input.as_bytes()).is_err());
    }

    #[test]
    fn writes_expiry() {
        let mut out = Vec::new();
        write_credential(&mut out, &Secret::new("ghs_x").unwrap(), Some(42)).unwrap();
        assert_eq!(out, b"username=x-access-token\npassword=ghs_x\npassword_expiry_utc=42\n\n");
    }
}
