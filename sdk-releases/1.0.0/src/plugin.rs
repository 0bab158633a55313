//! The vendor-facing traits: plain, safe Rust with no ABI types in sight.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

/// A plugin: built once from its configuration when the host loads it.
///
/// Which capabilities it provides is declared in [`export_plugin!`](crate::export_plugin).
/// Implementations must be thread-safe: the host calls them from many threads at once.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Builds the plugin. Return an error naming the setting when the configuration is wrong:
    /// the host refuses the plugin with that message.
    fn init(ctx: InitContext) -> Result<Self, Error>;
}

/// Writes variables into the environment of a workspace before it boots.
pub trait EnvMutator: Send + Sync + 'static {
    /// Edits `env` in place. An error stops the provisioning chain and discards every edit.
    fn mutate_env(&self, workspace_id: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error>;
}

/// Hands out live credentials.
pub trait TokenProvider: Send + Sync + 'static {
    /// The current token. Must never return an expired one: refresh, or fail.
    fn token(&self) -> Result<Token, Error>;
}

/// A string that cannot be printed by accident: `Debug` shows `[REDACTED]` and there is no
/// `Display`. Handing it to the host moves the buffer, without a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret, for the one place that has to hand it on.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Gives the buffer up, for the one place that has to hand it on.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// A credential and its expiry. Its `Debug` output never shows the secret.
///
/// The expiry is kept in whole Unix seconds (rounded down), the form it crosses the ABI in:
/// converted once when the token is made, not on every call that hands it on.
#[derive(Clone)]
pub struct Token {
    secret: Secret,
    expires_at_unix: i64,
}

impl Token {
    pub fn new(secret: impl Into<String>, expires_at: SystemTime) -> Self {
        Token::from_unix(secret, unix_seconds(expires_at))
    }

    /// A token expiring at `expires_at_unix` seconds since the Unix epoch.
    pub fn from_unix(secret: impl Into<String>, expires_at_unix: i64) -> Self {
        Token { secret: Secret::new(secret), expires_at_unix }
    }

    /// The secret, for the one place that has to hand it on.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn expires_at(&self) -> SystemTime {
        match u64::try_from(self.expires_at_unix) {
            Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
            Err(_) => UNIX_EPOCH - Duration::from_secs(self.expires_at_unix.unsigned_abs()),
        }
    }

    pub fn expires_at_unix(&self) -> i64 {
        self.expires_at_unix
    }

    /// The buffer and the expiry, for the hand-over to the host.
    pub(crate) fn into_parts(self) -> (String, i64) {
        (self.secret.into_exposed(), self.expires_at_unix)
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before the epoch: round towards the past, like the positive case.
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -secs - i64::from(d.subsec_nanos() > 0)
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("secret", &self.secret).field("expires_at_unix", &self.expires_at_unix).finish()
    }
}

/// An error a plugin reports to the host: a message an operator can act on.
///
/// Converts from any `std::error::Error`, keeping its chain of causes in the message.
pub struct Error {
    message: String,
}

impl Error {
    pub fn msg(message: impl fmt::Display) -> Self {
        Error { message: message.to_string() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_message(self) -> String {
        self.message
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(err: E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

/// What a plugin gets at init.
pub struct InitContext {
    pub(crate) config_toml: String,
    pub(crate) plugin_file: PathBuf,
}

impl InitContext {
    /// Context for unit tests of a plugin: `config_toml` is what the host would pass.
    pub fn for_tests(config_toml: &str) -> Self {
        InitContext { config_toml: config_toml.to_owned(), plugin_file: PathBuf::from("<test>") }
    }

    /// The plugin's configuration, deserialised. Unknown or missing keys give an error naming the key.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        toml::from_str(&self.config_toml).map_err(|e| {
            // toml's Display quotes the offending line, which may hold a secret (a PEM key):
            // name the key instead.
            let key = e.span().and_then(|span| {
                let line_start = self.config_toml[..span.start].rfind('\n').map_or(0, |i| i + 1);
                let line = self.config_toml[line_start..].lines().next()?;
                let key = line.split('=').next()?.trim();
                (!key.is_empty() && key.len() < 80).then(|| key.to_owned())
            });
            match key {
                Some(key) => Error::msg(format!("invalid configuration: {key}: {}", e.message())),
                None => Error::msg(format!("invalid configuration: {}", e.message())),
            }
        })
    }

    /// The raw TOML configuration.
    pub fn config_toml(&self) -> &str {
        &self.config_toml
    }

    /// The file the host loaded this plugin from.
    pub fn plugin_file(&self) -> &Path {
        &self.plugin_file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let token = Token::new("ghs_supersecretvalue", SystemTime::UNIX_EPOCH);
        let printed = format!("{token:?} {:?} {:#?}", token.secret, token);
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
    }

    #[test]
    fn expiry_is_whole_unix_seconds_rounded_down() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
        let token = Token::new("x", at);
        assert_eq!(token.expires_at_unix(), 1_700_000_000);
        assert_eq!(token.expires_at(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let before = Token::new("x", UNIX_EPOCH - Duration::from_millis(1500));
        assert_eq!(before.expires_at_unix(), -2);
    }
}
