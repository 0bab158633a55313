//! The host's settings: command-line flag > environment variable > config file > default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/plughost/plugins";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/plughost";
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The config file (`--config FILE`), TOML. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub plugin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// A file holding the admin bearer token (used when `PLUGHOST_ADMIN_TOKEN` is unset).
    pub admin_token_file: Option<PathBuf>,
    /// How long a plugin call may take before the caller gets 504, in milliseconds.
    pub plugin_call_timeout_ms: Option<u64>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<usize>,
    /// How long a token provider's answer is reused, in milliseconds (0: call it every time).
    pub token_cache_ms: Option<u64>,
    /// `[plugins.<name>]`: each plugin's configuration.
    #[serde(default)]
    pub plugins: BTreeMap<String, toml::Table>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: &'static str, message: String },
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.to_owned(), err })?;
        toml::from_str(&text).map_err(|err| ConfigError::Parse { path: path.to_owned(), message: one_line(&err) })
    }

    /// Reads `path` if given, else an empty config.
    pub fn read_optional(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        path.map(FileConfig::read).transpose().map(Option::unwrap_or_default)
    }
}

/// toml's Display quotes the offending line (which may hold a secret); keep message + position.
fn one_line(err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => format!("{} (at byte {})", err.message(), span.start),
        None => err.message().to_owned(),
    }
}

/// Resolves one setting: flag, then environment variable, then config file, then default.
pub fn pick<T>(flag: Option<T>, env: &str, file: Option<T>, default: impl FnOnce() -> T) -> T
where
    T: From<String>,
{
    flag.or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()).map(T::from)).or(file).unwrap_or_else(default)
}

pub fn parse_listen(value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|err| ConfigError::Invalid {
        setting: "listen",
        message: format!("{value:?} is not an address:port ({err})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let env = "PLUGHOST_TEST_PICK_ORDER";
        // SAFETY: this test alone uses this variable; no other thread reads it.
        unsafe { std::env::set_var(env, "from-env") };
        assert_eq!(pick(Some("flag".to_owned()), env, Some("file".to_owned()), || "default".to_owned()), "flag");
        assert_eq!(pick(None, env, Some("file".to_owned()), || "default".to_owned()), "from-env");
        // SAFETY: as above.
        unsafe { std::env::remove_var(env) };
        assert_eq!(pick(None, env, Some("file".to_owned()), || "default".to_owned()), "file");
        assert_eq!(pick::<String>(None, env, None, || "default".to_owned()), "default");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err();
        assert!(err.message().contains("lisen"), "{}", err.message());
    }
}
