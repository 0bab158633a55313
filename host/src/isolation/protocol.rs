//! The wire protocol between the host and a plugin worker process.
//!
//! One `socketpair(2)` per worker, both directions on it. A frame is a 4-byte little-endian
//! length followed by that many bytes of a [postcard]-encoded message. Calls carry an id and
//! are answered in any order, so a slow call never holds up the calls behind it.
//!
//! The conversation:
//! 1. the worker opens the library it was started with and sends [`FromWorker::Opened`] (or
//!    [`FromWorker::OpenFailed`]): the static initialisers have run by then;
//! 2. the host sends [`ToWorker::Init`]; the worker answers [`FromWorker::Initialized`] (or
//!    [`FromWorker::InitFailed`]);
//! 3. the host sends [`ToWorker::Call`]s; each gets one [`FromWorker::Reply`] with its id.
//!
//! [`FromWorker::Log`] may come at any time after step 1. End of file on the socket means the
//! other side is gone: the worker exits, the host treats the worker as crashed.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Frames larger than this are refused: a length this large means a broken peer.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Host to worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Init { config_toml: String, plugin_file: String, max_log_level: u8 },
    Call { id: u64, call: Call },
}

/// A call into the plugin.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    Token,
    MutateEnv {
        workspace_id: String,
        env: BTreeMap<String, String>,
    },
    /// SDK 1.1: a token limited to a scope.
    ScopedToken {
        scope: WireScope,
    },
    /// SDK 1.1: revoke a token the provider handed out.
    Revoke {
        secret: WireSecret,
    },
}

/// A token scope on the wire (the SDK's `TokenScope`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireScope {
    pub workspace_id: String,
    pub host: String,
    pub repositories: Vec<String>,
    pub repository_ids: Vec<u64>,
    pub permissions: BTreeMap<String, String>,
}

impl WireScope {
    pub fn to_sdk(&self) -> plughost_sdk::TokenScope {
        plughost_sdk::TokenScope {
            workspace_id: self.workspace_id.clone(),
            host: self.host.clone(),
            repositories: self.repositories.clone(),
            repository_ids: self.repository_ids.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

/// A secret on the wire. `Debug` never shows it.
#[derive(Serialize, Deserialize)]
pub struct WireSecret(pub String);

impl fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireSecret([REDACTED])")
    }
}

/// Why a scoped token was not made, as the plugin said.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireScopeError {
    Refused(String),
    Failed(String),
}

/// Worker to host.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    Opened {
        name: String,
        version: String,
        sdk_version: String,
    },
    /// The one-line reason the library could not be opened as a plugin.
    OpenFailed {
        error: String,
    },
    Initialized {
        env_mutator: bool,
        token_provider: bool,
        /// What its tokens are for, `(kind, host)` (SDK 1.1; empty before).
        audiences: Vec<(String, String)>,
        /// SDK 1.1: it serves scoped tokens and revocation.
        scoped_token_provider: bool,
    },
    InitFailed {
        error: String,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    Log {
        level: u8,
        target: String,
        message: String,
    },
}

/// A call's outcome, as the plugin gave it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Token(Result<WireToken, String>),
    Env(Result<BTreeMap<String, String>, String>),
    ScopedToken(Result<WireToken, WireScopeError>),
    Revoked(Result<(), String>),
    /// The plugin does not provide the capability called.
    NotProvided,
}

/// A token on the wire. `Debug` never shows the secret.
#[derive(Serialize, Deserialize)]
pub struct WireToken {
    pub secret: String,
    /// Seconds since the Unix epoch, as the plugin gave it.
    pub expires_at: i64,
}

impl fmt::Debug for WireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireToken").field("secret", &"[REDACTED]").field("expires_at", &self.expires_at).finish()
    }
}

/// Encodes `message` as one frame (length prefix included).
pub fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 4];
    let frame = postcard::to_extend(message, std::mem::take(&mut frame))
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("cannot encode a message: {err}")))?;
    let len = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "message too large"))?;
    let mut frame = frame;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Decodes a frame's body (without its length prefix).
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("malformed message: {err}")))
}

/// The body length announced by a frame header.
pub fn frame_len(header: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes exceeds the limit")));
    }
    Ok(len)
}

/// Writes one message (blocking).
pub fn write_message<T: Serialize>(to: &mut impl Write, message: &T) -> io::Result<()> {
    to.write_all(&encode(message)?)
}

/// Reads one message (blocking); `Ok(None)` on a clean end of file before a frame starts.
pub fn read_message<T: for<'de> Deserialize<'de>>(from: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<T>> {
    let mut header = [0u8; 4];
    match from.read_exact(&mut header) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    buf.resize(frame_len(header)?, 0);
    from.read_exact(buf)?;
    decode(buf).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_frames() {
        let mut wire = Vec::new();
        let env = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        write_message(&mut wire, &ToWorker::Call { id: 7, call: Call::MutateEnv { workspace_id: "ws".into(), env } })
            .unwrap();
        write_message(&mut wire, &ToWorker::Call { id: 8, call: Call::Token }).unwrap();
        let mut reader = wire.as_slice();
        let mut buf = Vec::new();
        match read_message::<ToWorker>(&mut reader, &mut buf).unwrap() {
            Some(ToWorker::Call { id: 7, call: Call::MutateEnv { workspace_id, env } }) => {
                assert_eq!(workspace_id, "ws");
                assert_eq!(env["A"], "1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_message::<ToWorker>(&mut reader, &mut buf).unwrap(), Some(ToWorker::Call { id: 8, .. })));
        assert!(read_message::<ToWorker>(&mut reader, &mut buf).unwrap().is_none());
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let mut huge = Vec::from((MAX_FRAME as u32 + 1).to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        assert!(read_message::<FromWorker>(&mut huge.as_slice(), &mut Vec::new()).is_err());
        let garbage = [3u8, 0, 0, 0, 0xff, 0xff, 0xff];
        assert!(read_message::<FromWorker>(&mut garbage.as_slice(), &mut Vec::new()).is_err());
    }

    #[test]
    fn tokens_do_not_print() {
        let token = WireToken { secret: "ghs_secretvalue".into(), expires_at: 1 };
        assert!(!format!("{token:?}").contains("secretvalue"));
        let call = Call::Revoke { secret: WireSecret("ghs_secretvalue".into()) };
        assert!(!format!("{call:?}").contains("secretvalue"));
    }

    #[test]
    fn scoped_calls_round_trip() {
        let scope = WireScope {
            workspace_id: "ws".into(),
            host: "github.com".into(),
            repositories: vec!["o/r".into()],
            repository_ids: vec![7],
            permissions: BTreeMap::from([("contents".to_owned(), "read".to_owned())]),
        };
        let mut wire = Vec::new();
        write_message(&mut wire, &ToWorker::Call { id: 1, call: Call::ScopedToken { scope: scope.clone() } }).unwrap();
        match read_message::<ToWorker>(&mut wire.as_slice(), &mut Vec::new()).unwrap() {
            Some(ToWorker::Call { id: 1, call: Call::ScopedToken { scope: got } }) => assert_eq!(got, scope),
            other => panic!("{other:?}"),
        }
    }
}
