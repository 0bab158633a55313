//! git's credential protocol: `key=value` lines ending with a blank line (gitcredentials(7)).

use std::io::{self, BufRead, Read, Write};

use crate::secret::Secret;

/// Longest request accepted; git sends a few hundred bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Longest line accepted (a `wwwauth[]` header or a long `path` fit many times over).
pub const MAX_LINE: usize = 16 * 1024;

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
    /// Reads attributes up to a blank line or end of input. Never reads more than
    /// [`MAX_REQUEST`] bytes, nor more than [`MAX_LINE`] for one line: git's input is trusted
    /// to be git's, but a stuck or hostile writer must not make the helper grow without bound.
    pub fn read(input: impl BufRead) -> io::Result<Self> {
        let mut request = Self::default();
        let mut input = input.take(MAX_REQUEST as u64);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut input).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
            // A line without its newline is the end of input, or a limit reached.
            let cut = !line.ends_with(b"\n");
            if cut && line.len() > MAX_LINE {
                return Err(too_long(format!("credential request has a line longer than {} KiB", MAX_LINE / 1024)));
            }
            if cut && input.limit() == 0 {
                return Err(too_long(format!("credential request longer than {} KiB", MAX_REQUEST / 1024)));
            }
            if read == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\n').unwrap_or(&line);
            let line = line.strip_suffix('\r').unwrap_or(line);
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

fn too_long(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
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
        let many: Vec<u8> = b"wwwauth[]=Basic realm=x\n".repeat(MAX_REQUEST / 10);
        let err = Request::read(&many[..]).unwrap_err();
        assert_eq!(err.to_string(), "credential request longer than 64 KiB");
    }

    #[test]
    fn refuses_a_long_line_but_not_a_long_request() {
        let mut long = b"protocol=https\npath=".to_vec();
        long.extend(vec![b'a'; MAX_LINE]);
        long.extend(b"\nhost=github.com\n");
        let err = Request::read(&long[..]).unwrap_err();
        assert_eq!(err.to_string(), "credential request has a line longer than 16 KiB");
        let lines = b"wwwauth[]=Basic realm=x\n".repeat(MAX_LINE / 10);
        let mut ok = lines.clone();
        ok.extend(b"host=github.com\n\n");
        assert_eq!(Request::read(&ok[..]).unwrap().host.as_deref(), Some("github.com"));
    }

    #[test]
    fn stops_reading_an_endless_line_at_the_limit() {
        let mut endless = io::BufReader::new(io::repeat(b'a'));
        let err = Request::read(&mut endless).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn writes_expiry() {
        let mut out = Vec::new();
        write_credential(&mut out, &Secret::new("ghs_x").unwrap(), Some(42)).unwrap();
        assert_eq!(out, b"username=x-access-token\npassword=ghs_x\npassword_expiry_utc=42\n\n");
    }
}
