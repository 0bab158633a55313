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

    /// What the tokens are for (SDK 1.1), read once after `init`. The host serves its GitHub
    /// routes only from a provider that declares [`Audience::github`] for the host asked about
    /// (or one an operator names), never by load order. The default declares nothing.
    fn audiences(&self) -> Vec<Audience> {
        Vec::new()
    }
}

/// What a provider's tokens are for: a kind of service, at a host (SDK 1.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Audience {
    /// The kind of service, lower case: `github` for GitHub and GitHub Enterprise Server.
    pub kind: String,
    /// The host the tokens are used at, as git names it (`github.com`, `ghe.example.com:8443`).
    pub host: String,
}

impl Audience {
    /// The kind of [`Audience::github`].
    pub const GITHUB: &'static str = "github";

    /// Tokens for GitHub (or GitHub Enterprise Server) at `host`.
    pub fn github(host: impl Into<String>) -> Self {
        Audience { kind: Self::GITHUB.to_owned(), host: host.into() }
    }
}

/// A request for a token limited to a scope, made for one workspace (SDK 1.1).
///
/// Empty lists mean "not limited by this": a scope with no repositories covers every repository
/// the provider's grant covers, and no permissions means every permission it has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScope {
    /// The workspace the token is for (for logs and the provider's own bookkeeping).
    pub workspace_id: String,
    /// The audience host the token is for; empty means the provider's default.
    pub host: String,
    /// Repositories by full name, `owner/name`.
    pub repositories: Vec<String>,
    /// Repositories by numeric id.
    pub repository_ids: Vec<u64>,
    /// Permission name to level (`read`, `write`, `admin`), as GitHub names them.
    pub permissions: std::collections::BTreeMap<String, String>,
}

/// Why a scoped token was not made.
#[derive(Debug)]
pub enum ScopeError {
    /// The scope asks for something the provider cannot grant; the message names the repository
    /// or permission. The host answers 422 with it: the request, not the provider, is wrong.
    Refused(String),
    /// Minting failed (upstream down, misconfigured, ...), as [`TokenProvider::token`] fails.
    Failed(Error),
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Refused(why) => write!(f, "scope cannot be granted: {why}"),
            ScopeError::Failed(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl From<Error> for ScopeError {
    fn from(err: Error) -> Self {
        ScopeError::Failed(err)
    }
}

/// Hands out tokens limited to a scope, and revokes them (SDK 1.1, capability
/// `scoped_token_provider`). A provider that cannot limit a token to what was asked must refuse:
/// never return a wider token than the scope.
pub trait ScopedTokenProvider: TokenProvider {
    /// A token limited to `scope`. The host caches it per scope; do not cache here as well.
    fn scoped_token(&self, scope: &TokenScope) -> Result<Token, ScopeError>;

    /// Revokes a token this provider handed out, so that it stops working at once.
    fn revoke(&self, token: &Secret) -> Result<(), Error>;
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

    /// The plugin's configuration, deserialised. An error names the key (`retry.attempts`, `hosts[2]`)
    /// and the line, and never quotes a value: the configuration may hold secrets (a private key).
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let text = &self.config_toml;
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|err| {
            // The path is empty when the text is not TOML: toml's message then says what is wrong
            // with the syntax, and the line says where.
            let path = err.path().iter().next().map(|_| format!("{}: ", err.path()));
            let err = err.into_inner();
            let message = crate::redact::without_value(err.message()).replace('\n', "; ");
            let line = err.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                format!(" (line {})", before.iter().filter(|&&b| b == b'\n').count() + 1)
            });
            Error::msg(format!(
                "invalid configuration: {}{message}{}",
                path.unwrap_or_default(),
                line.unwrap_or_default()
            ))
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        delay_ms: Option<u64>,
        names: Option<Vec<String>>,
        mode: Option<SampleMode>,
        nested: Option<BTreeMap<String, u64>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum SampleMode {
        Fast,
    }

    #[test]
    fn config_errors_never_quote_a_value_of_any_type() {
        for (toml, expected) in [
            ("delay_ms = \"hunter2\"", "invalid configuration: delay_ms: invalid type: string, expected u64"),
            ("mode = \"hunter2\"", "invalid configuration: mode: unknown variant, expected `fast`"),
            (
                "names = [\n  \"ok\",\n  7,\n]",
                "invalid configuration: names[1]: invalid type: integer, expected a string",
            ),
            (
                "[nested]\nhunter2 = \"hunter2\"",
                "invalid configuration: nested.hunter2: invalid type: string, expected u64",
            ),
            ("delay_ms = -7", "invalid configuration: delay_ms: invalid value: integer, expected u64"),
            ("hunter = 1", "invalid configuration: hunter: unknown field `hunter`"),
        ] {
            let err = InitContext::for_tests(toml).config::<Sample>().unwrap_err().to_string();
            assert!(err.starts_with(expected), "{toml:?}: {err}");
            assert!(!err.contains('\n'), "{err:?}");
            if !toml.starts_with("[nested]") && !toml.starts_with("hunter") {
                assert!(!err.contains("hunter2") && !err.contains('7'), "{toml:?}: {err}");
            }
        }
    }

    #[test]
    fn secrets_never_print() {
        let token = Token::new("ghs_supersecretvalue", SystemTime::UNIX_EPOCH);
        let printed = format!("{token:?} {:?} {:#?}", token.secret, token);
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
    }

    /// Found by the `plugin_config` fuzz target: the "key" named was the text before `=` on the
    /// error's line, which inside a multi-line value is a line of the value (a private key), and
    /// serde's messages quoted the value itself.
    #[test]
    fn config_errors_name_the_key_and_never_quote_a_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Config {
            app_id: u64,
            private_key: Option<String>,
            #[serde(default)]
            hosts: Vec<String>,
            retry: Option<Retry>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Retry {
            attempts: u8,
        }
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n";
        for (toml, expected) in [
            (
                "app_id = \"hunter2-secret\"\n",
                "invalid configuration: app_id: invalid type: string, expected u64 (line 1)",
            ),
            (
                "app_id = 1\nhosts = [\n  \"github.com\",\n  \"hunter2-secret\",\n  42,\n]\n",
                "invalid configuration: hosts[2]: invalid type: integer, expected a string (line 5)",
            ),
            (
                "app_id = 1\n[retry]\nattempts = 1234567890123\n",
                "invalid configuration: retry.attempts: invalid value: integer, expected u8 (line 3)",
            ),
            (
                &format!("app_id = 1\nprivate_key = \"\"\"\n{pem}\"\"\"\nprivate_key = \"\"\"\n{pem}"),
                "invalid configuration: ",
            ),
            (&format!("app_id = 1\nprivate_key = \"\"\"\n{pem}\\q\n\"\"\"\n"), "invalid configuration: "),
            (&format!("app_id = 1\n{pem}"), "invalid configuration: "),
        ] {
            let err = InitContext::for_tests(toml).config::<Config>().unwrap_err();
            let message = err.message();
            for secret in ["hunter2", "1234567890123", "MIIEow", "BEGIN RSA"] {
                assert!(!message.contains(secret), "{message}");
            }
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(message.starts_with(expected), "{message}");
        }
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
