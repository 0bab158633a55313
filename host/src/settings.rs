//! The host's settings: every default, and the one place each setting is resolved.
//!
//! The rules, which every setting below follows:
//!
//! 1. A setting comes from its command-line flag, else its environment variable, else its key in
//!    the config file, else its default. Not every setting has all four (the admin token has no
//!    flag: a command line is visible to every user in `ps`).
//! 2. The environment is read through a lookup function ([`Environment`]), never directly: only
//!    the CLI entry hands it the process environment; tests hand it a map. A variable set to the
//!    empty string counts as unset.
//! 3. The config file is `--config FILE`, else `PLUGHOST_CONFIG`, else none (every key unset).
//!    It is TOML; an unknown key is refused by name. Its errors never quote the file, which may
//!    hold secrets (`one_line`).
//! 4. Every default is a constant of this module (`DEFAULT_*`, and [`INSPECT_PLUGIN_LOG_LEVEL`]
//!    for `plugins check|list`). Other modules receive resolved values; the loader's
//!    [`LoaderConfig::new`] takes its defaults from here.
//! 5. A value that cannot be used is a [`SettingsError`] naming the setting and where the value
//!    came from ([`Origin`]), or the file that could not be read.
//! 6. Host settings are top-level keys of the config file (host tables such as `[isolation]` go
//!    beside them); `[plugins.<name>]` is the plugin's own configuration, handed to it at init.
//!    Host policy never goes to a plugin, and a plugin table never sets host policy.
//! 7. Commands differ in which settings they need (`workspace-token` only the state directory),
//!    and in explicit parameters ([`Loading`]), never in how a setting is resolved.
//!
//! Adding a setting: a field of [`ConfigFile`], a `DEFAULT_*` constant, a [`Layered`] if it also
//! has a flag and a variable, a method of [`Settings`] resolving it, and a test of its parsing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use plughost_sdk::abi::LogLevel;
use plughost_sdk::without_value;
use secrecy::SecretString;
use serde::Deserialize;

use crate::api::AdminToken;
use crate::api::server::ConnectionLimits;
use crate::isolation::{Isolation, Mode, mb, process};
use crate::loader::{LoaderConfig, Purpose, TrustedKey, TrustedKeys};

/// Default of `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default of `--plugin-dir`.
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/plughost/plugins";
/// Default of `--state-dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/plughost";
/// Default of `plugin_call_timeout_ms`: how long a plugin call may take before the caller gets 504.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `max_body_bytes`: the largest request body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default of `token_cache_ms`: how long a token provider's answer is reused.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Default of `header_read_timeout_ms`: how long a connection may take to send a request's head,
/// from its first byte (or from the connection's start, for its first request).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `keep_alive_timeout_ms`: how long a connection may wait idle for its next request.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `max_connections`: connections open at once; further ones wait to be accepted.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Default of `request_timeout_ms`: how long a request may take, body and plugin calls included,
/// before it is answered 503. Longer than [`DEFAULT_CALL_TIMEOUT`], which it must exceed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a plugin's `init` may run before the plugin is refused: init may read files or reach
/// the network.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Plugin events more verbose than this are dropped inside the plugin (`serve`).
pub const DEFAULT_PLUGIN_LOG_LEVEL: LogLevel = LogLevel::Info;
/// The same for `plugins check|list`, whose output is one line per file: plugin chatter would bury it.
pub const INSPECT_PLUGIN_LOG_LEVEL: LogLevel = LogLevel::Warn;
/// Default of `[isolation] mode`: every plugin in its own worker process (see [`crate::isolation`]).
pub const DEFAULT_ISOLATION_MODE: Mode = Mode::Process;
/// Default of `[isolation] memory_limit_mb`: a worker's `RLIMIT_DATA`, generous; it stops a runaway.
pub const DEFAULT_WORKER_MEMORY_LIMIT_MB: u64 = 1024;
/// Default of `[isolation] crash_limit`: deaths within the crash window that quarantine a plugin.
pub const DEFAULT_CRASH_LIMIT: usize = 5;
/// Default of `[isolation] crash_window_secs`.
pub const DEFAULT_CRASH_WINDOW: Duration = Duration::from_secs(60);
/// The longest delay between two restarts of a worker that keeps dying.
pub const DEFAULT_MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);
/// Default of `[isolation] stuck_grace_secs`: how long a call may stay stuck past its deadline
/// before its worker is killed and replaced.
pub const DEFAULT_STUCK_GRACE: Duration = Duration::from_secs(5);
/// The shortest admin token accepted, in bytes (after surrounding whitespace is removed).
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// Default of `store_timeout_ms`: how long a piece of workspace-token store work (issue, revoke,
/// `/readyz`'s check) may take before the caller gets 503.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// Store writes running at once on the blocking pool (they take SQLite's one write lock in turn
/// anyway); more wait, within their deadline, without a thread. A fixed limit.
pub const MAX_STORE_WRITES: usize = 4;
/// The same for the store reads run off the async workers (`/readyz`'s check).
pub const MAX_STORE_READS: usize = 4;
/// In-process plugin calls in flight per plugin (by name, across reloads): a hung plugin pins at
/// most this many threads. A fixed limit.
pub const MAX_IN_PROCESS_CALLS_PER_PLUGIN: usize = 64;
/// In-process plugin calls in flight in all, below tokio's blocking pool (512 threads), so that
/// the host's own blocking work (store, scans, worker restarts) always finds a thread.
pub const MAX_IN_PROCESS_CALLS: usize = 256;
/// Default of `max_plugin_bytes`: a plugin file larger than this is refused without being read.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 256 * 1024 * 1024;
/// A plugin's `<stem>.toml` larger than this is refused (a fixed limit, not a setting).
pub const MAX_PLUGIN_CONFIG_BYTES: u64 = 1024 * 1024;
/// A plugin's `<file>.minisig` larger than this is refused (a fixed limit; minisign's are ~300 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 16 * 1024;
/// The log filter when `RUST_LOG` is unset or invalid.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The variable naming the config file, when `--config` is not given.
pub const ENV_CONFIG: &str = "PLUGHOST_CONFIG";
/// The admin bearer token (beats `admin_token_file`).
pub const ENV_ADMIN_TOKEN: &str = "PLUGHOST_ADMIN_TOKEN";
/// The PostgreSQL workspace token store's URL (beats `store_url`); unset: SQLite in the state
/// directory. No flag: the URL may hold a password, and a command line is visible in `ps`.
pub const ENV_STORE_URL: &str = "PLUGHOST_STORE_URL";
/// `json` switches the logs to JSON lines.
pub const ENV_LOG_FORMAT: &str = "PLUGHOST_LOG_FORMAT";
/// The token provider that serves the GitHub routes (over `github_token_provider` in the file).
pub const ENV_GITHUB_TOKEN_PROVIDER: &str = "PLUGHOST_GITHUB_TOKEN_PROVIDER";
/// `true`/`1`: workspaces with the same scope share one minted token (over `share_scoped_tokens`).
pub const ENV_SHARE_SCOPED_TOKENS: &str = "PLUGHOST_SHARE_SCOPED_TOKENS";

/// A setting that can be given as a flag, an environment variable and a config-file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layered {
    pub flag: &'static str,
    pub env: &'static str,
    pub key: &'static str,
}

pub const LISTEN: Layered = Layered { flag: "--listen", env: "PLUGHOST_LISTEN", key: "listen" };
pub const PLUGIN_DIR: Layered = Layered { flag: "--plugin-dir", env: "PLUGHOST_PLUGIN_DIR", key: "plugin_dir" };
pub const STATE_DIR: Layered = Layered { flag: "--state-dir", env: "PLUGHOST_STATE_DIR", key: "state_dir" };

impl Layered {
    /// The `--help` text of its flag, so the variable and the default shown are the ones used.
    pub fn help(&self, what: &str, default: &str) -> String {
        format!("{what} [env: {}] [default: {default}]", self.env)
    }
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File { key: &'static str, path: PathBuf },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Env(var) => f.write_str(var),
            Origin::File { key, path } => write!(f, "{key} in {}", path.display()),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// Why the settings cannot be used. Each message names the setting or the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("cannot read config file {}: {err}", path.display())]
    ReadConfigFile { path: PathBuf, err: std::io::Error },
    #[error("config file {}: {message}", path.display())]
    ParseConfigFile { path: PathBuf, message: String },
    #[error("{origin}: {value:?} is not an address:port ({err})")]
    Listen { origin: Origin, value: String, err: AddrParseError },
    #[error("cannot read the admin token file {}: {err}", path.display())]
    ReadAdminTokenFile { path: PathBuf, err: std::io::Error },
    #[error("the admin token file {} is empty", path.display())]
    EmptyAdminTokenFile { path: PathBuf },
    #[error(
        "the admin token file {} is open to group or others (mode {mode:o}); \
         it must be private to its owner (chmod 600)",
        path.display()
    )]
    AdminTokenFileNotPrivate { path: PathBuf, mode: u32 },
    #[error("{}: the admin token is {length} bytes; at least {} are required", ENV_ADMIN_TOKEN, MIN_ADMIN_TOKEN_BYTES)]
    ShortAdminToken { length: usize },
    #[error("the admin token in {} is {length} bytes; at least {} are required", path.display(), MIN_ADMIN_TOKEN_BYTES)]
    ShortAdminTokenInFile { path: PathBuf, length: usize },
    #[error("{origin}: must be at least 1")]
    Zero { origin: Origin },
    /// The value is not quoted: it may hold a password.
    #[error("{origin}: not a postgres:// or postgresql:// URL")]
    StoreUrl { origin: Origin },
    #[error(
        "{origin} ({request:?}) must be longer than plugin_call_timeout_ms ({call:?}): \
         a request waits for its plugin calls"
    )]
    RequestTimeoutTooShort { origin: Origin, request: Duration, call: Duration },
    /// Entry `entry` (from 1) of `trusted_keys`.
    #[error(
        "{origin}: entry {entry} is not a minisign public key (expected its RW... line, or the absolute path of \
         its .pub file)"
    )]
    NotATrustedKey { origin: Origin, entry: usize },
    #[error("{origin}: entry {entry}: cannot read {}: {err}", path.display())]
    ReadTrustedKeyFile { origin: Origin, entry: usize, path: PathBuf, err: std::io::Error },
    #[error("{origin}: {value:?} is not true or false")]
    NotABool { origin: Origin, value: String },
}

/// The environment, as a lookup function (rule 2).
#[derive(Clone, Copy)]
pub struct Environment<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Environment<'a> {
    /// The CLI passes `&|name| std::env::var(name).ok()`; tests pass a map.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Environment<'a> {
        Environment { lookup }
    }

    /// The value of `name`; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }
}

impl fmt::Debug for Environment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Environment(..)")
    }
}

/// The flags a command was given; `None`: not given. Commands without a flag leave it `None`.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub plugin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

/// The config file (`--config FILE`), TOML. Every key is optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    listen: Option<String>,
    plugin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    /// A file whose first line is the admin bearer token (used when `PLUGHOST_ADMIN_TOKEN` is unset).
    admin_token_file: Option<PathBuf>,
    /// How long a plugin call may take before the caller gets 504, in milliseconds.
    plugin_call_timeout_ms: Option<u64>,
    /// Largest request body accepted, in bytes.
    max_body_bytes: Option<usize>,
    /// How long a token provider's answer is reused, in milliseconds (0: call it every time).
    token_cache_ms: Option<u64>,
    /// How long a connection may take to send a request head, in milliseconds.
    header_read_timeout_ms: Option<u64>,
    /// How long a keep-alive connection may wait idle for its next request, in milliseconds.
    keep_alive_timeout_ms: Option<u64>,
    /// Connections open at once.
    max_connections: Option<u32>,
    /// How long a whole request may take, in milliseconds.
    request_timeout_ms: Option<u64>,
    /// Largest plugin file loaded, in bytes.
    max_plugin_bytes: Option<u64>,
    /// How long store work may take before the caller gets 503, in milliseconds.
    store_timeout_ms: Option<u64>,
    /// `postgres://...`: the workspace token store on PostgreSQL (unset: SQLite in the state
    /// directory). May hold a password: never shown.
    store_url: Option<String>,
    /// Minisign public keys plugins must be signed with: each the key's base64 line (`RW...`)
    /// or the absolute path of its `.pub` file.
    trusted_keys: Option<Vec<String>>,
    /// The token provider (plugin name) that serves the GitHub routes; unset: the one declaring
    /// GitHub at the host asked about.
    github_token_provider: Option<String>,
    /// Workspaces with the same scope share one minted GitHub token (default: one per workspace).
    share_scoped_tokens: Option<bool>,
    /// `[isolation]`: where plugins run, host policy (rule 6).
    #[serde(default)]
    isolation: IsolationFile,
    /// `[plugins.<name>]`: each plugin's own configuration (rule 6).
    #[serde(default)]
    plugins: BTreeMap<String, toml::Table>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, SettingsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| SettingsError::ReadConfigFile { path: path.to_owned(), err })?;
        ConfigFile::parse(&text, path)
    }

    /// Parses `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, SettingsError> {
        toml::from_str(text)
            .map_err(|err| SettingsError::ParseConfigFile { path: path.to_owned(), message: one_line(&err) })
    }

    /// `[plugins.<name>]`, if the file has it.
    pub(crate) fn plugin_table(&self, name: &str) -> Option<&toml::Table> {
        self.plugins.get(name)
    }
}

/// The plugin tables may hold secrets (a private key): `Debug` names the plugins only.
impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("listen", &self.listen)
            .field("plugin_dir", &self.plugin_dir)
            .field("state_dir", &self.state_dir)
            .field("admin_token_file", &self.admin_token_file)
            .field("plugin_call_timeout_ms", &self.plugin_call_timeout_ms)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("token_cache_ms", &self.token_cache_ms)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("keep_alive_timeout_ms", &self.keep_alive_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_plugin_bytes", &self.max_plugin_bytes)
            .field("store_timeout_ms", &self.store_timeout_ms)
            .field("store_url", &self.store_url.as_ref().map(|_| "[REDACTED]"))
            .field("trusted_keys", &self.trusted_keys)
            .field("github_token_provider", &self.github_token_provider)
            .field("share_scoped_tokens", &self.share_scoped_tokens)
            .field("plugins", &self.plugins.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// toml's Display quotes the offending line, and serde's messages quote the offending value
/// (`invalid type: string "...", expected u64`): either may be a secret pasted in the wrong place.
/// Keep the message without the value ([`plughost_sdk::without_value`]), on one line, and the
/// position. For every TOML file the host reads: the config file and plugin sidecars.
pub(crate) fn one_line(err: &toml::de::Error) -> String {
    let message = without_value(err.message()).replace('\n', "; ");
    match err.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message,
    }
}

/// Why plugins are loaded. What differs between commands, as an explicit parameter (rule 7).
#[derive(Debug, Clone, Copy)]
pub enum Loading<'a> {
    /// `serve`: copies in `<state_dir>/plugin-cache`, plugin events up to [`DEFAULT_PLUGIN_LOG_LEVEL`].
    Serve,
    /// `plugins check|list`: copies in a scratch state directory (inspecting must not touch a
    /// running host's cache), plugin events up to [`INSPECT_PLUGIN_LOG_LEVEL`].
    Inspect { scratch_state_dir: &'a Path },
}

/// What `serve` runs with, resolved.
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// `None`: no admin token configured, every admin route answers 401.
    pub admin_token: Option<AdminToken>,
    pub plugin_call_timeout: Duration,
    pub max_body_bytes: usize,
    pub token_cache_ttl: Duration,
    /// Connection limits and timeouts of the HTTP server.
    pub connections: ConnectionLimits,
    /// How long a whole request may take.
    pub request_timeout: Duration,
    pub store_timeout: Duration,
    /// Workspaces with the same scope share one minted GitHub token.
    pub share_scoped_tokens: bool,
    /// `Some`: the workspace token store is on PostgreSQL at this URL.
    pub store_url: Option<SecretString>,
    /// The plugin directory, the plugin tables and how plugins are loaded.
    pub loader: LoaderConfig,
}

/// The flags, the environment and the config file of one command; each method resolves one
/// setting from them (rule 1).
#[derive(Debug)]
pub struct Settings<'a> {
    flags: Flags,
    env: Environment<'a>,
    /// The config file read, if any, and its contents (all unset without one).
    config_path: Option<PathBuf>,
    file: ConfigFile,
}

impl<'a> Settings<'a> {
    /// Reads the config file (rule 3); other settings are resolved when asked for.
    pub fn load(flags: Flags, env: Environment<'a>) -> Result<Settings<'a>, SettingsError> {
        let config_path = flags.config.clone().or_else(|| env.get(ENV_CONFIG).map(PathBuf::from));
        let file = config_path.as_deref().map(ConfigFile::read).transpose()?.unwrap_or_default();
        Ok(Settings { flags, env, config_path, file })
    }

    /// The config file read, if any.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// Everything `serve` needs; the first unusable setting is the error.
    pub fn serve(&self) -> Result<ServeSettings, SettingsError> {
        Ok(ServeSettings {
            listen: self.listen()?,
            state_dir: self.state_dir(),
            admin_token: self.admin_token()?,
            plugin_call_timeout: self.plugin_call_timeout(),
            max_body_bytes: self.max_body_bytes(),
            token_cache_ttl: self.token_cache_ttl(),
            connections: self.connection_limits()?,
            request_timeout: self.request_timeout()?,
            store_timeout: self.store_timeout(),
            share_scoped_tokens: self.share_scoped_tokens()?,
            store_url: self.store_url()?,
            loader: self.loader_config(Loading::Serve)?,
        })
    }

    /// `--listen`, `PLUGHOST_LISTEN`, `listen`, [`DEFAULT_LISTEN`]; port 0 picks a free port.
    pub fn listen(&self) -> Result<SocketAddr, SettingsError> {
        let (value, origin) = self
            .pick(&LISTEN, &self.flags.listen, &self.file.listen)
            .unwrap_or_else(|| (DEFAULT_LISTEN.to_owned(), Origin::Default));
        value.parse().map_err(|err| SettingsError::Listen { origin, value, err })
    }

    /// `--plugin-dir`, `PLUGHOST_PLUGIN_DIR`, `plugin_dir`, [`DEFAULT_PLUGIN_DIR`].
    pub fn plugin_dir(&self) -> PathBuf {
        self.pick(&PLUGIN_DIR, &self.flags.plugin_dir, &self.file.plugin_dir)
            .map_or_else(|| PathBuf::from(DEFAULT_PLUGIN_DIR), |(dir, _)| dir)
    }

    /// `--state-dir`, `PLUGHOST_STATE_DIR`, `state_dir`, [`DEFAULT_STATE_DIR`].
    pub fn state_dir(&self) -> PathBuf {
        self.pick(&STATE_DIR, &self.flags.state_dir, &self.file.state_dir)
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), |(dir, _)| dir)
    }

    /// `PLUGHOST_ADMIN_TOKEN`, else the first line of `admin_token_file`, else none. Surrounding
    /// whitespace is not part of the token; a variable of whitespace only counts as unset. A
    /// token shorter than [`MIN_ADMIN_TOKEN_BYTES`] is refused, and so is a token file that
    /// group or others may open in any way (as ssh refuses a private key): whoever can read it
    /// is admin, whoever can write it chooses the admin token.
    pub fn admin_token(&self) -> Result<Option<AdminToken>, SettingsError> {
        if let Some(token) = self.env.get(ENV_ADMIN_TOKEN).filter(|t| !t.trim().is_empty()) {
            let token = token.trim();
            if token.len() < MIN_ADMIN_TOKEN_BYTES {
                return Err(SettingsError::ShortAdminToken { length: token.len() });
            }
            return Ok(Some(AdminToken::new(SecretString::from(token.to_owned()))));
        }
        let Some(path) = &self.file.admin_token_file else { return Ok(None) };
        let text = read_private_file(path)?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(SettingsError::EmptyAdminTokenFile { path: path.clone() });
        }
        if token.len() < MIN_ADMIN_TOKEN_BYTES {
            return Err(SettingsError::ShortAdminTokenInFile { path: path.clone(), length: token.len() });
        }
        Ok(Some(AdminToken::new(SecretString::from(token.to_owned()))))
    }

    /// `plugin_call_timeout_ms`, [`DEFAULT_CALL_TIMEOUT`].
    pub fn plugin_call_timeout(&self) -> Duration {
        self.file.plugin_call_timeout_ms.map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis)
    }

    /// `max_body_bytes`, [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(&self) -> usize {
        self.file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }

    /// `token_cache_ms`, [`DEFAULT_TOKEN_CACHE_TTL`]; 0 calls the provider every time.
    pub fn token_cache_ttl(&self) -> Duration {
        self.file.token_cache_ms.map_or(DEFAULT_TOKEN_CACHE_TTL, Duration::from_millis)
    }

    /// `header_read_timeout_ms`, `keep_alive_timeout_ms` and `max_connections`, over
    /// [`DEFAULT_HEADER_READ_TIMEOUT`], [`DEFAULT_KEEP_ALIVE_TIMEOUT`] and
    /// [`DEFAULT_MAX_CONNECTIONS`]; none may be 0 (a limit, never "unlimited").
    pub fn connection_limits(&self) -> Result<ConnectionLimits, SettingsError> {
        let header_read_timeout = self.nonzero_millis("header_read_timeout_ms", self.file.header_read_timeout_ms)?;
        let keep_alive_timeout = self.nonzero_millis("keep_alive_timeout_ms", self.file.keep_alive_timeout_ms)?;
        let max_connections = match self.file.max_connections {
            Some(0) => return Err(SettingsError::Zero { origin: self.file_origin("max_connections") }),
            Some(max) => max,
            None => DEFAULT_MAX_CONNECTIONS,
        };
        Ok(ConnectionLimits {
            header_read_timeout: header_read_timeout.unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
            keep_alive_timeout: keep_alive_timeout.unwrap_or(DEFAULT_KEEP_ALIVE_TIMEOUT),
            max_connections,
        })
    }

    /// `request_timeout_ms`, [`DEFAULT_REQUEST_TIMEOUT`]; it must exceed the plugin call timeout,
    /// or a slow plugin call would be cut off by the request timeout instead of answering 504.
    pub fn request_timeout(&self) -> Result<Duration, SettingsError> {
        let (request, origin) = match self.nonzero_millis("request_timeout_ms", self.file.request_timeout_ms)? {
            Some(request) => (request, self.file_origin("request_timeout_ms")),
            None => (DEFAULT_REQUEST_TIMEOUT, Origin::Default),
        };
        let call = self.plugin_call_timeout();
        if request <= call {
            return Err(SettingsError::RequestTimeoutTooShort { origin, request, call });
        }
        Ok(request)
    }

    /// A config-file duration in milliseconds that may not be 0.
    fn nonzero_millis(&self, key: &'static str, value: Option<u64>) -> Result<Option<Duration>, SettingsError> {
        match value {
            Some(0) => Err(SettingsError::Zero { origin: self.file_origin(key) }),
            value => Ok(value.map(Duration::from_millis)),
        }
    }

    fn file_origin(&self, key: &'static str) -> Origin {
        Origin::File { key, path: self.config_path.clone().unwrap_or_default() }
    }

    /// `PLUGHOST_STORE_URL`, `store_url`, else none (SQLite in the state directory). Only the
    /// scheme is checked here; the store parses the rest. Errors never quote the value.
    pub fn store_url(&self) -> Result<Option<SecretString>, SettingsError> {
        let (url, origin) = match (self.env.get(ENV_STORE_URL), &self.file.store_url) {
            (Some(url), _) => (url, Origin::Env(ENV_STORE_URL)),
            (None, Some(url)) if !url.is_empty() => (url.clone(), self.file_origin("store_url")),
            (None, _) => return Ok(None),
        };
        let url = SecretString::from(url);
        let scheme_ok = ["postgres://", "postgresql://"].iter().any(|scheme| {
            let value = secrecy::ExposeSecret::expose_secret(&url);
            value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme)
        });
        if !scheme_ok {
            return Err(SettingsError::StoreUrl { origin });
        }
        Ok(Some(url))
    }

    /// `store_timeout_ms`, [`DEFAULT_STORE_TIMEOUT`].
    pub fn store_timeout(&self) -> Duration {
        self.file.store_timeout_ms.map_or(DEFAULT_STORE_TIMEOUT, Duration::from_millis)
    }

    /// `PLUGHOST_GITHUB_TOKEN_PROVIDER`, `github_token_provider`, none.
    pub fn github_token_provider(&self) -> Option<String> {
        self.env.get(ENV_GITHUB_TOKEN_PROVIDER).or_else(|| self.file.github_token_provider.clone())
    }

    /// `PLUGHOST_SHARE_SCOPED_TOKENS` (`true`/`false`/`1`/`0`), `share_scoped_tokens`, false.
    pub fn share_scoped_tokens(&self) -> Result<bool, SettingsError> {
        match self.env.get(ENV_SHARE_SCOPED_TOKENS) {
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(SettingsError::NotABool { origin: Origin::Env(ENV_SHARE_SCOPED_TOKENS), value }),
            },
            None => Ok(self.file.share_scoped_tokens.unwrap_or(false)),
        }
    }

    /// `max_plugin_bytes`, [`DEFAULT_MAX_PLUGIN_BYTES`].
    pub fn max_plugin_bytes(&self) -> u64 {
        self.file.max_plugin_bytes.unwrap_or(DEFAULT_MAX_PLUGIN_BYTES)
    }

    /// `trusted_keys`, none by default (signatures not required). A key file is read now: one
    /// that cannot be read, or an entry that is no key, is an error naming the entry.
    pub fn trusted_keys(&self) -> Result<TrustedKeys, SettingsError> {
        let origin = || Origin::File { key: "trusted_keys", path: self.config_path.clone().unwrap_or_default() };
        let mut keys = Vec::new();
        for (index, entry) in self.file.trusted_keys.iter().flatten().enumerate() {
            let entry_number = index + 1;
            let text = if entry.starts_with('/') {
                let path = PathBuf::from(entry);
                std::fs::read_to_string(&path).map_err(|err| SettingsError::ReadTrustedKeyFile {
                    origin: origin(),
                    entry: entry_number,
                    path,
                    err,
                })?
            } else {
                entry.clone()
            };
            let key = TrustedKey::parse(&text)
                .ok_or_else(|| SettingsError::NotATrustedKey { origin: origin(), entry: entry_number })?;
            keys.push(key);
        }
        Ok(TrustedKeys(keys))
    }

    /// The loader's configuration: the plugin directory and the `[plugins.<name>]` tables, with
    /// the state directory and plugin log level `loading` asks for.
    pub fn loader_config(&self, loading: Loading<'_>) -> Result<LoaderConfig, SettingsError> {
        let (state_dir, max_log_level) = match loading {
            Loading::Serve => (self.state_dir(), DEFAULT_PLUGIN_LOG_LEVEL),
            Loading::Inspect { scratch_state_dir } => (scratch_state_dir.to_owned(), INSPECT_PLUGIN_LOG_LEVEL),
        };
        let purpose = match loading {
            Loading::Serve => Purpose::Serve,
            Loading::Inspect { .. } => Purpose::Inspect,
        };
        Ok(LoaderConfig {
            plugin_configs: self.file.plugins.clone(),
            max_log_level,
            isolation: self.isolation(),
            purpose,
            max_plugin_bytes: self.max_plugin_bytes(),
            trusted_keys: self.trusted_keys()?,
            github_token_provider: self.github_token_provider(),
            ..LoaderConfig::new(self.plugin_dir(), state_dir)
        })
    }

    /// `[isolation]` over the defaults; workers run this very binary.
    pub fn isolation(&self) -> Isolation {
        let file = &self.file.isolation;
        let defaults = Isolation::new(process::current_program());
        Isolation {
            default_mode: file.mode.unwrap_or(defaults.default_mode),
            memory_limit: file.memory_limit_mb.map_or(defaults.memory_limit, mb),
            plugins: file.plugins.clone(),
            crash_limit: file.crash_limit.unwrap_or(defaults.crash_limit).max(1),
            crash_window: file.crash_window_secs.map_or(defaults.crash_window, Duration::from_secs),
            stuck_grace: file.stuck_grace_secs.map_or(defaults.stuck_grace, Duration::from_secs),
            ..defaults
        }
    }

    /// The first of flag, variable and config-file key that is given, and where it came from.
    fn pick<T>(&self, setting: &Layered, flag: &Option<T>, file: &Option<T>) -> Option<(T, Origin)>
    where
        T: Clone + From<String>,
    {
        let path = || self.config_path.clone().unwrap_or_default();
        flag.clone()
            .map(|value| (value, Origin::Flag(setting.flag)))
            .or_else(|| self.env.get(setting.env).map(|value| (T::from(value), Origin::Env(setting.env))))
            .or_else(|| file.clone().map(|value| (value, Origin::File { key: setting.key, path: path() })))
    }
}

/// The text of the admin token file, whose mode is read from the file opened (not looked up
/// again by path), and refused unless private to its owner.
fn read_private_file(path: &Path) -> Result<String, SettingsError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let read_error = |err| SettingsError::ReadAdminTokenFile { path: path.to_owned(), err };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SettingsError::AdminTokenFileNotPrivate { path: path.to_owned(), mode });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(text)
}

/// `[isolation]` of the config file: host policy, kept apart from the plugins' own configuration
/// (`[plugins.<name>]`), which a plugin receives; this it never sees.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationFile {
    /// Mode of every plugin without its own: `process` or `in-process`.
    pub mode: Option<Mode>,
    pub memory_limit_mb: Option<u64>,
    /// Deaths within `crash_window_secs` that quarantine a plugin.
    pub crash_limit: Option<usize>,
    pub crash_window_secs: Option<u64>,
    /// Seconds a call may stay stuck past its deadline before its worker is killed.
    pub stuck_grace_secs: Option<u64>,
    /// `[isolation.plugins.<plugin-name>]`: one plugin's mode and memory limit.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginIsolationFile>,
}

/// `[isolation.plugins.<plugin-name>]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginIsolationFile {
    pub mode: Option<Mode>,
    pub memory_limit_mb: Option<u64>,
}

/// How the logs are written (`PLUGHOST_LOG_FORMAT`); `RUST_LOG` filters them, as everywhere in
/// the tracing ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `PLUGHOST_LOG_FORMAT=json` (any case): JSON lines; anything else: text.
    pub fn from_env(env: Environment<'_>) -> LogFormat {
        match env.get(ENV_LOG_FORMAT) {
            Some(format) if format.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A fake environment: the process environment is never read or written by these tests.
    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Settings from `flags`, the variables `env` and a config file holding `toml`.
    fn settings<'a>(flags: Flags, env: &'a dyn Fn(&str) -> Option<String>, toml: &str) -> Settings<'a> {
        let path = PathBuf::from("/etc/plughost/plughost.toml");
        let file = ConfigFile::parse(toml, &path).unwrap();
        Settings { flags, env: Environment::new(env), config_path: Some(path), file }
    }

    fn file_origin(key: &'static str) -> Origin {
        Origin::File { key, path: PathBuf::from("/etc/plughost/plughost.toml") }
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let env = lookup(&[
            ("PLUGHOST_LISTEN", "127.0.0.2:2"),
            ("PLUGHOST_PLUGIN_DIR", "/env/plugins"),
            ("PLUGHOST_STATE_DIR", "/env/state"),
        ]);
        let file = "listen = \"127.0.0.3:3\"\nplugin_dir = \"/file/plugins\"\nstate_dir = \"/file/state\"\n";
        let flags = Flags {
            config: None,
            listen: Some("127.0.0.1:1".to_owned()),
            plugin_dir: Some("/flag/plugins".into()),
            state_dir: Some("/flag/state".into()),
        };

        let all = settings(flags, &env, file);
        assert_eq!(all.listen().unwrap(), "127.0.0.1:1".parse().unwrap());
        assert_eq!(all.plugin_dir(), Path::new("/flag/plugins"));
        assert_eq!(all.state_dir(), Path::new("/flag/state"));

        let no_flags = settings(Flags::default(), &env, file);
        assert_eq!(no_flags.listen().unwrap(), "127.0.0.2:2".parse().unwrap());
        assert_eq!(no_flags.plugin_dir(), Path::new("/env/plugins"));
        assert_eq!(no_flags.state_dir(), Path::new("/env/state"));

        let file_only = settings(Flags::default(), &no_env, file);
        assert_eq!(file_only.listen().unwrap(), "127.0.0.3:3".parse().unwrap());
        assert_eq!(file_only.plugin_dir(), Path::new("/file/plugins"));
        assert_eq!(file_only.state_dir(), Path::new("/file/state"));

        let defaults = settings(Flags::default(), &no_env, "");
        assert_eq!(defaults.listen().unwrap(), DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(defaults.plugin_dir(), Path::new(DEFAULT_PLUGIN_DIR));
        assert_eq!(defaults.state_dir(), Path::new(DEFAULT_STATE_DIR));
    }

    #[test]
    fn pick_says_where_a_value_came_from() {
        let env = lookup(&[("PLUGHOST_STATE_DIR", "/env/state")]);
        let s = settings(Flags::default(), &env, "plugin_dir = \"/file/plugins\"\n");
        let flag = Some(PathBuf::from("/flag"));
        assert_eq!(s.pick(&STATE_DIR, &flag, &None).unwrap().1, Origin::Flag("--state-dir"));
        assert_eq!(s.pick(&STATE_DIR, &None, &s.file.state_dir).unwrap().1, Origin::Env("PLUGHOST_STATE_DIR"));
        assert_eq!(s.pick(&PLUGIN_DIR, &None, &s.file.plugin_dir).unwrap().1, file_origin("plugin_dir"));
        assert_eq!(s.pick(&LISTEN, &None, &s.file.listen), None);
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let env = lookup(&[("PLUGHOST_LISTEN", ""), ("PLUGHOST_STATE_DIR", ""), ("PLUGHOST_ADMIN_TOKEN", "")]);
        let s = settings(Flags::default(), &env, "listen = \"127.0.0.3:3\"\n");
        assert_eq!(s.listen().unwrap(), "127.0.0.3:3".parse().unwrap());
        assert_eq!(s.state_dir(), Path::new(DEFAULT_STATE_DIR));
        assert!(s.admin_token().unwrap().is_none());
    }

    #[test]
    fn a_bad_listen_address_names_where_it_came_from() {
        let env = lookup(&[("PLUGHOST_LISTEN", "nowhere")]);
        let flags = Flags { listen: Some("localhost".to_owned()), ..Flags::default() };
        let cases = [
            (settings(flags, &no_env, ""), "--listen: \"localhost\" is not an address:port"),
            (settings(Flags::default(), &env, ""), "PLUGHOST_LISTEN: \"nowhere\" is not an address:port"),
            (
                settings(Flags::default(), &no_env, "listen = \":80\"\n"),
                "listen in /etc/plughost/plughost.toml: \":80\" is not an address:port",
            ),
        ];
        for (s, expected) in cases {
            let err = s.listen().unwrap_err();
            assert!(matches!(err, SettingsError::Listen { .. }), "{err:?}");
            assert!(err.to_string().starts_with(expected), "{err}");
        }
    }

    #[test]
    fn file_only_settings_parse_from_milliseconds_and_bytes() {
        let s = settings(
            Flags::default(),
            &no_env,
            "plugin_call_timeout_ms = 1500\nmax_body_bytes = 1024\ntoken_cache_ms = 0\nmax_plugin_bytes = 4096\n\
             store_timeout_ms = 250\n",
        );
        assert_eq!(s.plugin_call_timeout(), Duration::from_millis(1500));
        assert_eq!(s.max_body_bytes(), 1024);
        assert_eq!(s.token_cache_ttl(), Duration::ZERO);
        assert_eq!(s.max_plugin_bytes(), 4096);
        assert_eq!(s.store_timeout(), Duration::from_millis(250));
        assert_eq!(s.loader_config(Loading::Serve).unwrap().max_plugin_bytes, 4096);

        let defaults = settings(Flags::default(), &no_env, "");
        assert_eq!(defaults.plugin_call_timeout(), DEFAULT_CALL_TIMEOUT);
        assert_eq!(defaults.max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
        assert_eq!(defaults.token_cache_ttl(), DEFAULT_TOKEN_CACHE_TTL);
        assert_eq!(defaults.max_plugin_bytes(), DEFAULT_MAX_PLUGIN_BYTES);
        assert_eq!(defaults.store_timeout(), DEFAULT_STORE_TIMEOUT);
    }

    #[test]
    fn http_limits_parse_from_the_file_and_refuse_zero() {
        let s = settings(
            Flags::default(),
            &no_env,
            "header_read_timeout_ms = 500\nkeep_alive_timeout_ms = 2500\n\
             max_connections = 7\nrequest_timeout_ms = 11000\n",
        );
        let limits = s.connection_limits().unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_millis(500));
        assert_eq!(limits.keep_alive_timeout, Duration::from_millis(2500));
        assert_eq!(limits.max_connections, 7);
        assert_eq!(s.request_timeout().unwrap(), Duration::from_secs(11));

        let defaults = settings(Flags::default(), &no_env, "");
        assert_eq!(defaults.connection_limits().unwrap(), ConnectionLimits::default());
        assert_eq!(
            ConnectionLimits::default(),
            ConnectionLimits {
                header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
                keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            }
        );
        assert_eq!(defaults.request_timeout().unwrap(), DEFAULT_REQUEST_TIMEOUT);

        for key in ["header_read_timeout_ms", "keep_alive_timeout_ms", "max_connections"] {
            let err = settings(Flags::default(), &no_env, &format!("{key} = 0\n")).connection_limits().unwrap_err();
            assert!(matches!(&err, SettingsError::Zero { origin } if *origin == file_origin(key)), "{err:?}");
            assert_eq!(err.to_string(), format!("{key} in /etc/plughost/plughost.toml: must be at least 1"));
        }
        let err = settings(Flags::default(), &no_env, "request_timeout_ms = 0\n").request_timeout().unwrap_err();
        assert!(matches!(err, SettingsError::Zero { .. }), "{err:?}");
    }

    #[test]
    fn store_url_env_beats_file_is_checked_and_never_shown() {
        use secrecy::ExposeSecret as _;
        let file = "store_url = \"postgres://u:file-secret@db/file\"\n";
        let env = lookup(&[("PLUGHOST_STORE_URL", "postgresql://u:env-secret@db/env")]);
        let from_env = settings(Flags::default(), &env, file).store_url().unwrap().unwrap();
        assert_eq!(from_env.expose_secret(), "postgresql://u:env-secret@db/env");
        let from_file = settings(Flags::default(), &no_env, file);
        assert_eq!(from_file.store_url().unwrap().unwrap().expose_secret(), "postgres://u:file-secret@db/file");
        assert!(!format!("{from_file:?}").contains("file-secret"), "Debug redacts store_url");
        assert!(settings(Flags::default(), &no_env, "").store_url().unwrap().is_none(), "default: SQLite");

        let bad = lookup(&[("PLUGHOST_STORE_URL", "mysql://u:env-secret@db/env")]);
        let err = settings(Flags::default(), &bad, "").store_url().unwrap_err();
        assert_eq!(err.to_string(), "PLUGHOST_STORE_URL: not a postgres:// or postgresql:// URL");
        let err = settings(Flags::default(), &no_env, "store_url = \"file-secret\"\n").store_url().unwrap_err();
        assert!(matches!(&err, SettingsError::StoreUrl { origin } if *origin == file_origin("store_url")), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("secret"));
        let serve = settings(Flags::default(), &env, "").serve().unwrap();
        assert!(serve.store_url.is_some());
    }

    #[test]
    fn the_request_timeout_must_exceed_the_plugin_call_timeout() {
        let s = settings(Flags::default(), &no_env, "request_timeout_ms = 2000\nplugin_call_timeout_ms = 2000\n");
        let err = s.request_timeout().unwrap_err();
        assert!(matches!(err, SettingsError::RequestTimeoutTooShort { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "request_timeout_ms in /etc/plughost/plughost.toml (2s) must be longer than plugin_call_timeout_ms (2s): \
             a request waits for its plugin calls"
        );
        let err =
            settings(Flags::default(), &no_env, "plugin_call_timeout_ms = 45000\n").request_timeout().unwrap_err();
        assert!(err.to_string().starts_with("the default (30s) must be longer than plugin_call_timeout_ms (45s)"));
        assert!(DEFAULT_REQUEST_TIMEOUT > DEFAULT_CALL_TIMEOUT);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = ConfigFile::parse("lisen = \"x\"", Path::new("/etc/plughost.toml")).unwrap_err();
        assert!(matches!(err, SettingsError::ParseConfigFile { .. }));
        let message = err.to_string();
        assert!(message.starts_with("config file /etc/plughost.toml: ") && message.contains("lisen"), "{message}");
    }

    #[test]
    fn config_file_errors_never_quote_values() {
        for (toml, kept) in [
            ("listen = \"127.0.0.1:1\"\nadmin_token = \"hunter2-secret\"\n", "unknown field `admin_token`"),
            ("plugin_call_timeout_ms = \"hunter2-secret\"\n", "invalid type: string, expected u64 (at byte 25)"),
            ("listen = 20\n", "invalid type: integer, expected a string"),
            ("[plugins.github-app-auth]\nprivate_key = \"hunter2-secret\n", "(at byte"),
            ("hunter2-secret\n", "(at byte"),
        ] {
            let err = ConfigFile::parse(toml, Path::new("/etc/plughost.toml")).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(err.contains(kept), "{err}");
        }
    }

    #[test]
    fn the_config_file_comes_from_the_flag_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let from_flag = dir.path().join("flag.toml");
        let from_env = dir.path().join("env.toml");
        std::fs::write(&from_flag, "state_dir = \"/from/flag/file\"\n").unwrap();
        std::fs::write(&from_env, "state_dir = \"/from/env/file\"\n").unwrap();
        let env_path = from_env.display().to_string();
        let env = lookup(&[("PLUGHOST_CONFIG", &env_path)]);
        let env = Environment::new(&env);

        let flagged = Settings::load(Flags { config: Some(from_flag.clone()), ..Flags::default() }, env).unwrap();
        assert_eq!(flagged.config_file(), Some(from_flag.as_path()));
        assert_eq!(flagged.state_dir(), Path::new("/from/flag/file"));
        let from_variable = Settings::load(Flags::default(), env).unwrap();
        assert_eq!(from_variable.state_dir(), Path::new("/from/env/file"));
        let none = Settings::load(Flags::default(), Environment::new(&no_env)).unwrap();
        assert_eq!(none.config_file(), None);
        assert_eq!(none.state_dir(), Path::new(DEFAULT_STATE_DIR));

        let missing = dir.path().join("missing.toml");
        let err = Settings::load(Flags { config: Some(missing.clone()), ..Flags::default() }, env).unwrap_err();
        assert!(matches!(&err, SettingsError::ReadConfigFile { path, .. } if *path == missing), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot read config file {}: ", missing.display())), "{err}");
    }

    #[test]
    fn the_admin_token_comes_from_the_environment_else_the_first_line_of_its_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, "  from-file-0123456789  \nsecond line\n").unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = format!("admin_token_file = {:?}\n", token_file.display().to_string());

        let env = lookup(&[("PLUGHOST_ADMIN_TOKEN", " from-env-0123456789\n")]);
        let token = settings(Flags::default(), &env, &file).admin_token().unwrap().expect("a token");
        assert!(token.matches("from-env-0123456789"));
        let blank = lookup(&[("PLUGHOST_ADMIN_TOKEN", "  ")]);
        let token = settings(Flags::default(), &blank, &file).admin_token().unwrap().expect("a token");
        assert!(token.matches("from-file-0123456789"));
        assert!(settings(Flags::default(), &no_env, "").admin_token().unwrap().is_none());

        std::fs::write(&token_file, "\nsecond line\n").unwrap();
        let err = settings(Flags::default(), &no_env, &file).admin_token().unwrap_err();
        assert!(matches!(&err, SettingsError::EmptyAdminTokenFile { path } if *path == token_file), "{err:?}");

        let missing = dir.path().join("missing");
        let file = format!("admin_token_file = {:?}\n", missing.display().to_string());
        let err = settings(Flags::default(), &no_env, &file).admin_token().unwrap_err();
        assert!(matches!(&err, SettingsError::ReadAdminTokenFile { path, .. } if *path == missing), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot read the admin token file {}", missing.display())));
    }

    #[test]
    fn admin_tokens_are_long_enough_and_their_file_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin-token");
        let file = format!("admin_token_file = {:?}\n", token_file.display().to_string());
        let exactly = "x".repeat(MIN_ADMIN_TOKEN_BYTES);

        let env = lookup(&[("PLUGHOST_ADMIN_TOKEN", &exactly[1..])]);
        let err = settings(Flags::default(), &env, "").admin_token().unwrap_err();
        assert!(matches!(err, SettingsError::ShortAdminToken { length: 15 }), "{err:?}");
        assert_eq!(err.to_string(), "PLUGHOST_ADMIN_TOKEN: the admin token is 15 bytes; at least 16 are required");
        let env = lookup(&[("PLUGHOST_ADMIN_TOKEN", &exactly)]);
        assert!(settings(Flags::default(), &env, "").admin_token().unwrap().is_some());

        std::fs::write(&token_file, format!("{}\n", &exactly[1..])).unwrap();
        for mode in [0o400, 0o600, 0o700] {
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = settings(Flags::default(), &no_env, &file).admin_token().unwrap_err();
            assert!(matches!(&err, SettingsError::ShortAdminTokenInFile { length: 15, .. }), "{mode:o}: {err:?}");
        }
        for mode in [0o640, 0o604, 0o620, 0o602, 0o610, 0o644, 0o666] {
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = settings(Flags::default(), &no_env, &file).admin_token().unwrap_err();
            let SettingsError::AdminTokenFileNotPrivate { path, mode: found } = &err else {
                panic!("{mode:o}: {err:?}")
            };
            assert_eq!((path, *found), (&token_file, mode));
        }
    }

    #[test]
    fn plugins_get_their_own_table_and_never_host_settings() {
        let toml = "plugin_dir = \"/file/plugins\"\nadmin_token_file = \"/secret\"\n\
                    [plugins.static-env]\noverwrite = true\n[plugins.static-env.vars]\nTZ = \"UTC\"\n";
        let s = settings(Flags::default(), &no_env, toml);
        let serve = s.loader_config(Loading::Serve).unwrap();
        assert_eq!(serve.plugin_dir, Path::new("/file/plugins"));
        assert_eq!(serve.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(serve.max_log_level, DEFAULT_PLUGIN_LOG_LEVEL);
        assert_eq!(serve.init_timeout, DEFAULT_INIT_TIMEOUT);
        assert_eq!(serve.plugin_configs.keys().collect::<Vec<_>>(), ["static-env"]);
        let table = &serve.plugin_configs["static-env"];
        assert_eq!(table.keys().collect::<Vec<_>>(), ["overwrite", "vars"]);

        let scratch = Path::new("/tmp/scratch");
        let inspect = s.loader_config(Loading::Inspect { scratch_state_dir: scratch }).unwrap();
        assert_eq!(inspect.plugin_dir, serve.plugin_dir, "what serve would load");
        assert_eq!(inspect.plugin_configs, serve.plugin_configs, "as serve would configure it");
        assert_eq!(inspect.state_dir, scratch);
        assert_eq!(inspect.max_log_level, INSPECT_PLUGIN_LOG_LEVEL);
    }

    #[test]
    fn serve_resolves_everything_and_stops_at_the_first_bad_setting() {
        let env = lookup(&[("PLUGHOST_ADMIN_TOKEN", "admin-token-0123456789")]);
        let s = settings(Flags::default(), &env, "token_cache_ms = 250\n");
        let serve = s.serve().unwrap();
        assert_eq!(serve.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(serve.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert_eq!(serve.loader.state_dir, serve.state_dir);
        assert_eq!(serve.loader.plugin_dir, Path::new(DEFAULT_PLUGIN_DIR));
        assert!(serve.admin_token.is_some());
        assert_eq!(serve.token_cache_ttl, Duration::from_millis(250));

        let bad = lookup(&[("PLUGHOST_LISTEN", "nowhere")]);
        let err = settings(Flags::default(), &bad, "admin_token_file = \"/no/such/file\"\n").serve().err().unwrap();
        assert!(matches!(err, SettingsError::Listen { .. }), "the listen address is checked first: {err:?}");
    }

    #[test]
    fn trusted_keys_are_inline_keys_or_key_files_and_a_bad_entry_is_named() {
        const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        let dir = tempfile::tempdir().unwrap();
        let pub_file = dir.path().join("vendor.pub");
        std::fs::write(&pub_file, format!("untrusted comment: minisign public key E7620F1842B4E81F\n{KEY}\n")).unwrap();
        let toml = format!("trusted_keys = [{KEY:?}, {:?}]\n", pub_file.display().to_string());
        let keys = settings(Flags::default(), &no_env, &toml).trusted_keys().unwrap();
        assert_eq!(keys.0.iter().map(|k| k.id.to_string()).collect::<Vec<_>>(), ["E7620F1842B4E81F"; 2]);
        assert!(settings(Flags::default(), &no_env, "").trusted_keys().unwrap().is_empty());

        let err = settings(Flags::default(), &no_env, "trusted_keys = [\"RWQ\"]\n").trusted_keys().unwrap_err();
        assert!(matches!(err, SettingsError::NotATrustedKey { entry: 1, .. }), "{err:?}");
        assert!(err.to_string().starts_with("trusted_keys in /etc/plughost/plughost.toml: entry 1 is not"), "{err}");
        let missing = format!("trusted_keys = [{KEY:?}, \"/no/such.pub\"]\n");
        let err = settings(Flags::default(), &no_env, &missing).serve().err().unwrap();
        assert!(matches!(err, SettingsError::ReadTrustedKeyFile { entry: 2, .. }), "{err:?}");
    }

    #[test]
    fn log_format_is_json_only_when_asked() {
        for (value, expected) in [("json", LogFormat::Json), ("JSON", LogFormat::Json), ("text", LogFormat::Text)] {
            let env = lookup(&[("PLUGHOST_LOG_FORMAT", value)]);
            assert_eq!(LogFormat::from_env(Environment::new(&env)), expected, "{value}");
        }
        assert_eq!(LogFormat::from_env(Environment::new(&no_env)), LogFormat::Text);
    }

    #[test]
    fn help_shows_the_variable_and_default_in_use() {
        assert_eq!(
            STATE_DIR.help("State directory", DEFAULT_STATE_DIR),
            "State directory [env: PLUGHOST_STATE_DIR] [default: /var/lib/plughost]"
        );
    }
}
