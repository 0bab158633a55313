//! Everything the helper reads from its environment, read once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

/// Default for `PLUGHOST_CREDENTIAL_MARGIN_SECS`: a cached token with less than this left is refetched.
pub const DEFAULT_MARGIN_SECS: u64 = 300;
/// Default for `PLUGHOST_CREDENTIAL_TIMEOUT_SECS`: the whole HTTP exchange with plughost.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Connecting to plughost never takes longer than this (capped by the overall timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default for `PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS`: the refresher's longest wait after failures.
pub const DEFAULT_BACKOFF_MAX_SECS: u64 = 60;
/// Default for `CONFIGS_DIR`, as in existing workspace images.
pub const DEFAULT_CONFIGS_DIR: &str = "/configs";

/// A host the helper answers for, as git sends the `host` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Lower-case host, with `:port` when git would send one.
    pub host: String,
    /// Plain `http` is answered too. Only for entries written `http://host` in
    /// `PLUGHOST_CREDENTIAL_HOSTS`: a token never goes over cleartext by default.
    pub allow_http: bool,
}

/// A fallback token from the environment, with the variable it came from.
#[derive(Debug, Clone)]
pub struct EnvToken {
    /// `GH_TOKEN` or `GITHUB_TOKEN`.
    pub var: &'static str,
    /// Its value.
    pub token: Secret,
}

/// Which certificate authorities the helper trusts for an `https://` `PLATFORM_URL`.
#[derive(Debug, Clone, Default)]
pub enum TlsTrust {
    /// The default, `PLUGHOST_TLS_ROOTS=builtin`: Mozilla's roots, compiled in.
    #[default]
    Builtin,
    /// `PLUGHOST_TLS_ROOTS=system`: the operating system's trust store (on Linux its CA files,
    /// or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    System,
    /// `PLUGHOST_CA_BUNDLE`: exactly the CA certificates of this PEM file.
    Bundle(CaBundle),
}

/// The certificates of `PLUGHOST_CA_BUNDLE`, read once.
#[derive(Clone)]
pub struct CaBundle {
    /// The file.
    pub path: PathBuf,
    certs: Vec<ureq::tls::Certificate<'static>>,
}

impl CaBundle {
    fn load(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| format!("not valid PEM: {e}"))? {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            return Err("it holds no PEM certificate".to_owned());
        }
        Ok(Self { path: path.to_owned(), certs })
    }

    /// The certificates.
    pub fn certs(&self) -> &[ureq::tls::Certificate<'static>] {
        &self.certs
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).field("certificates", &self.certs.len()).finish()
    }
}

/// `PLUGHOST_PLATFORM_PROXY`: the only proxy the request to plughost ever goes through.
#[derive(Clone)]
pub struct PlatformProxy(pub ureq::Proxy);

impl fmt::Debug for PlatformProxy {
    /// Without the credentials the URL may carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlatformProxy({:?}://{}:{})", self.0.protocol(), self.0.host(), self.0.port())
    }
}

/// The helper's configuration; see the crate documentation for each variable.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PLATFORM_URL` without trailing slashes; `None` when unset or empty.
    pub platform_url: Option<String>,
    /// `WORKSPACE_ID`; `None` selects the admin route.
    pub workspace_id: Option<String>,
    /// `CONFIGS_DIR`; the bearer token is `<configs_dir>/.auth_token`.
    pub configs_dir: PathBuf,
    /// `PLUGHOST_CREDENTIAL_HOSTS`.
    pub hosts: Vec<HostRule>,
    /// `PLUGHOST_CREDENTIAL_MARGIN_SECS`.
    pub margin_secs: u64,
    /// `PLUGHOST_CREDENTIAL_CACHE_DIR`, else `$XDG_CACHE_HOME/plughost-credential`, else `~/.cache/plughost-credential`.
    pub cache_dir: Option<PathBuf>,
    /// `PLUGHOST_CREDENTIAL_TIMEOUT_SECS`: the whole request to plughost.
    pub request_timeout: Duration,
    /// `PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS`.
    pub backoff_max: Duration,
    /// `GH_TOKEN` then `GITHUB_TOKEN`, when set and well-formed.
    pub env_tokens: Vec<EnvToken>,
    /// `$GH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/gh`, else `~/.config/gh` (gh's own lookup order).
    pub gh_config_dir: Option<PathBuf>,
    /// `PLUGHOST_CA_BUNDLE` or `PLUGHOST_TLS_ROOTS`.
    pub tls: TlsTrust,
    /// `PLUGHOST_PLATFORM_PROXY`; `None`: always a direct connection.
    pub platform_proxy: Option<PlatformProxy>,
    /// `PLUGHOST_GH_PATH`: the real gh the wrapper runs; `None`: the first other `gh` on `PATH`.
    pub gh_path: Option<PathBuf>,
    /// `PLUGHOST_GH_WRAPPER_DIR`: where `install` puts the `gh` wrapper; `None`: beside this
    /// program on `PATH`.
    pub gh_wrapper_dir: Option<PathBuf>,
}

/// A variable that is set but unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A number was expected.
    #[error("{var}={value:?} is not a whole number of seconds")]
    NotSeconds {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `PLUGHOST_CREDENTIAL_HOSTS` has an entry that is not a host.
    #[error(
        "PLUGHOST_CREDENTIAL_HOSTS entry {entry:?} is not a host (expected e.g. github.com, ghe.example.com:8443 or http://127.0.0.1:3000)"
    )]
    BadHost {
        /// The offending entry.
        entry: String,
    },
    /// `PLATFORM_URL` is not an http(s) URL.
    #[error("PLATFORM_URL={value:?} is not an http:// or https:// URL")]
    BadPlatformUrl {
        /// Its value.
        value: String,
    },
    /// `PLATFORM_URL` is plain http to another machine, without the opt-in.
    #[error(
        "PLATFORM_URL={value:?} would send the workspace's bearer token unencrypted to another machine: use https:// \
         (plain http is accepted for this machine only), or set PLUGHOST_PLATFORM_ALLOW_HTTP=1 if the network path is trusted"
    )]
    InsecurePlatformUrl {
        /// Its value.
        value: String,
    },
    /// `PLUGHOST_CA_BUNDLE` cannot be used.
    #[error("PLUGHOST_CA_BUNDLE={path}: {reason}")]
    BadCaBundle {
        /// The file named.
        path: String,
        /// Why.
        reason: String,
    },
    /// `PLUGHOST_TLS_ROOTS` is not a known value, or clashes with `PLUGHOST_CA_BUNDLE`.
    #[error("PLUGHOST_TLS_ROOTS={value:?}: {reason}")]
    BadTlsRoots {
        /// Its value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// `PLUGHOST_PLATFORM_PROXY` is not a proxy URL (not quoted: it may hold a password).
    #[error("PLUGHOST_PLATFORM_PROXY is not a proxy URL (expected e.g. http://proxy.example:3128): {reason}")]
    BadProxy {
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let seconds = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| ConfigError::NotSeconds { var, value }),
            }
        };

        let platform_url = match get("PLATFORM_URL") {
            None => None,
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(ConfigError::BadPlatformUrl { value: url });
                }
                let allow_http =
                    get("PLUGHOST_PLATFORM_ALLOW_HTTP").is_some_and(|v| matches!(v.as_str(), "1" | "true"));
                if lower.starts_with("http://") && !allow_http && !is_loopback_url(&url) {
                    return Err(ConfigError::InsecurePlatformUrl { value: url });
                }
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        let hosts = parse_hosts(get("PLUGHOST_CREDENTIAL_HOSTS").as_deref().unwrap_or("github.com"))?;
        let home = get("HOME").map(PathBuf::from);
        let cache_dir = get("PLUGHOST_CREDENTIAL_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| get("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("plughost-credential")))
            .or_else(|| home.as_ref().map(|h| h.join(".cache/plughost-credential")));
        let gh_config_dir = get("GH_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| get("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("gh")))
            .or_else(|| home.as_ref().map(|h| h.join(".config/gh")));
        let env_tokens = ["GH_TOKEN", "GITHUB_TOKEN"]
            .into_iter()
            .filter_map(|var| Some(EnvToken { var, token: Secret::new(get(var)?).ok()? }))
            .collect();
        let timeout = seconds("PLUGHOST_CREDENTIAL_TIMEOUT_SECS", DEFAULT_TIMEOUT_SECS)?.max(1);
        let roots = get("PLUGHOST_TLS_ROOTS");
        let tls = match (get("PLUGHOST_CA_BUNDLE"), roots.as_deref()) {
            (Some(_), Some("system")) => {
                return Err(ConfigError::BadTlsRoots {
                    value: "system".into(),
                    reason: "set either it or PLUGHOST_CA_BUNDLE, not both: the bundle replaces the other roots",
                });
            }
            (Some(path), None | Some("builtin")) => TlsTrust::Bundle(
                CaBundle::load(Path::new(&path)).map_err(|reason| ConfigError::BadCaBundle { path, reason })?,
            ),
            (_, None | Some("builtin")) => TlsTrust::Builtin,
            (None, Some("system")) => TlsTrust::System,
            (_, Some(other)) => {
                return Err(ConfigError::BadTlsRoots {
                    value: other.to_owned(),
                    reason: "expected builtin (the roots compiled in) or system (the operating system's trust store)",
                });
            }
        };
        let platform_proxy = match get("PLUGHOST_PLATFORM_PROXY") {
            None => None,
            Some(url) => Some(PlatformProxy(
                ureq::Proxy::new(&url).map_err(|e| ConfigError::BadProxy { reason: e.to_string() })?,
            )),
        };

        Ok(Self {
            platform_url,
            workspace_id: get("WORKSPACE_ID"),
            configs_dir: get("CONFIGS_DIR").map_or_else(|| PathBuf::from(DEFAULT_CONFIGS_DIR), PathBuf::from),
            hosts,
            margin_secs: seconds("PLUGHOST_CREDENTIAL_MARGIN_SECS", DEFAULT_MARGIN_SECS)?,
            cache_dir,
            request_timeout: Duration::from_secs(timeout),
            backoff_max: Duration::from_secs(
                seconds("PLUGHOST_CREDENTIAL_BACKOFF_MAX_SECS", DEFAULT_BACKOFF_MAX_SECS)?.max(1),
            ),
            env_tokens,
            gh_config_dir,
            tls,
            platform_proxy,
            gh_path: get("PLUGHOST_GH_PATH").map(PathBuf::from),
            gh_wrapper_dir: get("PLUGHOST_GH_WRAPPER_DIR").map(PathBuf::from),
        })
    }

    /// The rule for `host` if the helper answers `protocol://host`.
    pub fn rule_for(&self, protocol: &str, host: &str) -> Option<&HostRule> {
        let host = host.to_ascii_lowercase();
        let rule = self.hosts.iter().find(|r| r.host == host)?;
        match protocol.to_ascii_lowercase().as_str() {
            "https" => Some(rule),
            "http" if rule.allow_http => Some(rule),
            _ => None,
        }
    }

    /// The token endpoint for git host `host`: the workspace route when `WORKSPACE_ID` is set,
    /// else the admin route, with `?host=` naming the git host so that plughost answers with the
    /// provider declared for GitHub at that host (a host that predates the parameter ignores it).
    pub fn token_endpoint(&self, host: &str) -> Option<String> {
        let base = self.platform_url.as_deref()?;
        let host = percent_encode_segment(&host.to_ascii_lowercase());
        Some(match &self.workspace_id {
            Some(id) => {
                format!("{base}/workspaces/{}/github-installation-token?host={host}", percent_encode_segment(id))
            }
            None => format!("{base}/admin/github-installation-token?host={host}"),
        })
    }

    /// Where the bearer token for the endpoint lives.
    pub fn auth_token_path(&self) -> PathBuf {
        self.configs_dir.join(".auth_token")
    }
}

/// Whether `url`'s host is this machine: `localhost` (and `*.localhost`) or a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn parse_hosts(list: &str) -> Result<Vec<HostRule>, ConfigError> {
    let mut rules: Vec<HostRule> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let lower = entry.to_ascii_lowercase();
        let (allow_http, host) = if let Some(rest) = lower.strip_prefix("http://") {
            (true, rest)
        } else {
            (false, lower.strip_prefix("https://").unwrap_or(&lower))
        };
        let host = host.trim_end_matches('/');
        let valid = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
        if !valid {
            return Err(ConfigError::BadHost { entry: entry.to_owned() });
        }
        match rules.iter_mut().find(|r| r.host == host) {
            Some(existing) => existing.allow_http |= allow_http,
            None => rules.push(HostRule { host: host.to_owned(), allow_http }),
        }
    }
    Ok(rules)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a path segment or a query value.
fn percent_encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("HOME", "/home/a")]).unwrap();
        assert_eq!(c.hosts, vec![HostRule { host: "github.com".into(), allow_http: false }]);
        assert_eq!(c.margin_secs, 300);
        assert_eq!(c.cache_dir, Some(PathBuf::from("/home/a/.cache/plughost-credential")));
        assert_eq!(c.gh_config_dir, Some(PathBuf::from("/home/a/.config/gh")));
        assert_eq!(c.auth_token_path(), PathBuf::from("/configs/.auth_token"));
        assert!(c.token_endpoint("github.com").is_none());
    }

    #[test]
    fn endpoints() {
        let c = config(&[("PLATFORM_URL", "https://platform:8080/"), ("WORKSPACE_ID", "ws 1/x")]).unwrap();
        assert_eq!(
            c.token_endpoint("github.com").unwrap(),
            "https://platform:8080/workspaces/ws%201%2Fx/github-installation-token?host=github.com"
        );
        let c = config(&[("PLATFORM_URL", "https://p")]).unwrap();
        assert_eq!(
            c.token_endpoint("GHE.example.com:8443").unwrap(),
            "https://p/admin/github-installation-token?host=ghe.example.com%3A8443"
        );
        assert_eq!(
            c.token_endpoint("[::1]:3000").unwrap(),
            "https://p/admin/github-installation-token?host=%5B%3A%3A1%5D%3A3000"
        );
        assert!(config(&[("PLATFORM_URL", "platform:8080")]).is_err());
    }

    #[test]
    fn plain_http_only_to_this_machine_unless_allowed() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80/x",
            "http://127.1.2.3",
            "http://a.localhost",
        ] {
            assert!(config(&[("PLATFORM_URL", local)]).is_ok(), "{local}");
        }
        for remote in ["http://platform:8080", "http://10.0.0.1", "http://localhost.example.com", "HTTP://p"] {
            let err = config(&[("PLATFORM_URL", remote)]).unwrap_err().to_string();
            assert!(err.contains("PLUGHOST_PLATFORM_ALLOW_HTTP=1"), "{remote}: {err}");
            assert!(config(&[("PLATFORM_URL", remote), ("PLUGHOST_PLATFORM_ALLOW_HTTP", "1")]).is_ok(), "{remote}");
        }
        assert!(config(&[("PLATFORM_URL", "https://platform:8443")]).is_ok());
    }

    #[test]
    fn hosts_and_protocols() {
        let c = config(&[("PLUGHOST_CREDENTIAL_HOSTS", " GHE.example.com:8443, http://127.0.0.1:9000 ,github.com,")])
            .unwrap();
        assert!(c.rule_for("https", "ghe.example.com:8443").is_some());
        assert!(c.rule_for("http", "ghe.example.com:8443").is_none());
        assert!(c.rule_for("http", "127.0.0.1:9000").is_some());
        assert!(c.rule_for("https", "127.0.0.1:9000").is_some());
        assert!(c.rule_for("https", "GitHub.com").is_some());
        assert!(c.rule_for("ssh", "github.com").is_none());
        assert!(c.rule_for("https", "gitlab.com").is_none());
        assert!(config(&[("PLUGHOST_CREDENTIAL_HOSTS", "git hub.com")]).is_err());
        assert!(config(&[("PLUGHOST_CREDENTIAL_MARGIN_SECS", "5m")]).is_err());
    }

    #[test]
    fn cache_dir_precedence() {
        let c = config(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]).unwrap();
        assert_eq!(c.cache_dir, Some(PathBuf::from("/x/plughost-credential")));
        let c = config(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x"), ("PLUGHOST_CREDENTIAL_CACHE_DIR", "/c")]).unwrap();
        assert_eq!(c.cache_dir, Some(PathBuf::from("/c")));
    }

    #[test]
    fn env_tokens_in_order_and_redacted() {
        let c = config(&[("GITHUB_TOKEN", "ghs_b"), ("GH_TOKEN", "ghs_a")]).unwrap();
        let vars: Vec<_> = c.env_tokens.iter().map(|t| t.var).collect();
        assert_eq!(vars, ["GH_TOKEN", "GITHUB_TOKEN"]);
        assert!(!format!("{c:?}").contains("ghs_a"));
    }
}
