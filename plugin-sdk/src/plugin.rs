//! The vendor-facing traits: plain, safe Rust with no ABI types in sight.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
#[derive(Clone)]
pub struct Token {
    pub secret: Secret,
    pub expires_at: SystemTime,
}

impl Token {
    pub fn new(secret: impl Into<String>, expires_at: SystemTime) -> Self {
        Token { secret: Secret::new(secret), expires_at }
    }

    /// The secret, for the one place that has to hand it on.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &self.secret)
            .field("expires_at", &humanize(self.expires_at))
            .finish()
    }
}

fn humanize(t: SystemTime) -> String {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => format!("{}s since epoch", d.as_secs()),
        Err(_) => "before the epoch".to_owned(),
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
}
