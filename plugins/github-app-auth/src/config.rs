//! Settings: a TOML table with an environment fallback for each key docs/operator.md names
//! (the format is in the crate documentation).
//!
//! Each group (app identity, installation, private key) is taken whole from one place, the
//! table or the environment, so a stray variable cannot mix into a configured group.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jsonwebtoken::EncodingKey;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(600);
/// Default of `min_validity_secs`: while GitHub fails, a cached token is served only while it has
/// at least this long left, so that what it is used for (a clone, a push) can finish.
pub const DEFAULT_MIN_VALIDITY: Duration = Duration::from_secs(60);
/// Default of `retry_deadline_secs`: inside the host's default plugin call timeout (10 s), so a
/// caller gets this plugin's error, not the host's timeout.
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(8);
/// Installation tokens live one hour; a margin at least that long would refresh on every call.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Who the App JWT says it is (`iss`). GitHub recommends the client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppIdentity {
    AppId(u64),
    ClientId(String),
}

/// Which installation to mint tokens for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallationTarget {
    Id(u64),
    /// Discovered with `GET /orgs/{org}/installation`.
    Org(String),
    /// Discovered with `GET /repos/{owner}/{repo}/installation`.
    Repo {
        owner: String,
        repo: String,
    },
}

/// The App's RSA private key, checked at load. `Debug` never shows it.
#[derive(Clone)]
pub struct PrivateKey {
    pem: SecretString,
    key: EncodingKey,
}

impl PrivateKey {
    /// Parses and test-signs `pem`; `setting` names where it came from, for the error.
    pub fn from_pem(pem: &str, setting: &str) -> Result<Self, ConfigError> {
        let not_rsa = || {
            ConfigError::new(
                setting,
                "not an RSA private key in PEM form (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`), \
                 as GitHub's \"Generate a private key\" downloads it",
            )
        };
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| not_rsa())?;
        // Parsing the PEM armour does not parse the key itself; signing does.
        let probe = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&probe, &serde_json::json!({ "probe": true }), &key).map_err(|_| not_rsa())?;
        Ok(PrivateKey { pem: SecretString::from(pem.to_owned()), key })
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }

    pub fn pem(&self) -> &SecretString {
        &self.pem
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([REDACTED])")
    }
}

/// Which certificate authorities the client trusts for `api_url`.
#[derive(Clone, Debug, Default)]
pub enum TlsTrust {
    /// `tls_roots = "builtin"` (the default): Mozilla's roots, compiled into the plugin.
    #[default]
    Builtin,
    /// `tls_roots = "system"`: the operating system's trust store (rustls-platform-verifier;
    /// on Linux the usual CA files, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    System,
    /// `ca_bundle_path`: exactly the CA certificates in this PEM file.
    Bundle(CaBundle),
}

/// The CA certificates of a PEM bundle, read and checked at load.
#[derive(Clone)]
pub struct CaBundle {
    path: PathBuf,
    certs: Vec<ureq::tls::Certificate<'static>>,
}

impl CaBundle {
    /// Reads every certificate in the PEM file at `path`; `setting` names where it came from.
    pub fn load(path: &Path, setting: &str) -> Result<Self, ConfigError> {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::new(setting, format!("cannot read {}: {e}", path.display())))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(ConfigError::new(setting, format!("{}: not valid PEM: {e}", path.display()))),
            }
        }
        if certs.is_empty() {
            return Err(ConfigError::new(setting, format!("{} holds no PEM certificate", path.display())));
        }
        Ok(CaBundle { path: path.to_owned(), certs })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn certs(&self) -> &[ureq::tls::Certificate<'static>] {
        &self.certs
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).field("certificates", &self.certs.len()).finish()
    }
}

/// What the env mutator writes into a workspace's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvSettings {
    /// Variables that receive the token; empty: none.
    pub token_vars: Vec<String>,
    /// Variable that receives the token's `expires_at` (RFC 3339); `None`: none.
    pub expires_at_var: Option<String>,
}

/// The expiry variable written when `token_vars` names any and `expires_at_var` is not set.
pub const DEFAULT_EXPIRES_AT_VAR: &str = "GITHUB_TOKEN_EXPIRES_AT";

/// The default writes nothing: a token in a workspace's environment goes stale after its hour,
/// and gh then prefers it over the helper's live one (see the crate documentation).
impl Default for EnvSettings {
    fn default() -> Self {
        EnvSettings { token_vars: Vec::new(), expires_at_var: None }
    }
}

/// Down-scoping of minted tokens (the body of the access-token request).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScope {
    pub repositories: Vec<String>,
    pub repository_ids: Vec<u64>,
    pub permissions: BTreeMap<String, String>,
}

/// Validated settings. Build with [`Config::from_toml`] (or fill in by hand in tests).
#[derive(Clone, Debug)]
pub struct Config {
    pub identity: AppIdentity,
    pub installation: InstallationTarget,
    pub private_key: PrivateKey,
    /// Without a trailing slash.
    pub api_url: String,
    /// The CAs trusted for `api_url`.
    pub tls: TlsTrust,
    pub refresh_margin: Duration,
    /// While GitHub fails, a cached token is served only while it has at least this long left.
    pub min_validity: Duration,
    pub scope: TokenScope,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a refresh may take, retries and waits included (each request ends by then too).
    pub retry_deadline: Duration,
    /// First wait between retries; doubles up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub user_agent: String,
    pub env: EnvSettings,
    /// The account (organization or user login) whose repositories this installation serves.
    /// `None`: taken from `installation_org` / `installation_repo`, or learned from GitHub
    /// (`GET /app/installations/{id}`) the first time a scoped request needs it.
    pub owner: Option<String>,
    /// The host its tokens are for, as git names it; `None`: derived from `api_url`
    /// (see [`Config::host`]).
    pub host: Option<String>,
    /// The `[[installations]]` entries after this one (the default), each complete: what an
    /// entry does not set is taken from the top level (app, key, `api_url`, TLS, timeouts).
    pub installations: Vec<Config>,
}

impl Config {
    /// Minimal settings for code that already holds the pieces (tests, benchmarks).
    pub fn new(
        identity: AppIdentity,
        installation: InstallationTarget,
        private_key: PrivateKey,
        api_url: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Config {
            identity,
            installation,
            private_key,
            api_url: parse_api_url(api_url, "api_url")?,
            tls: TlsTrust::default(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            min_validity: DEFAULT_MIN_VALIDITY,
            scope: TokenScope::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            retry_deadline: DEFAULT_RETRY_DEADLINE,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            user_agent: format!("plughost-github-app-auth/{}", env!("CARGO_PKG_VERSION")),
            env: EnvSettings::default(),
            owner: None,
            host: None,
            installations: Vec::new(),
        })
    }

    /// The host this installation's tokens are for: `host` if set, else derived from `api_url`
    /// ([`host_of_api_url`]).
    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| host_of_api_url(&self.api_url))
    }

    /// The owner known from the settings alone (`owner`, `installation_org`, `installation_repo`).
    pub fn configured_owner(&self) -> Option<&str> {
        self.owner.as_deref().or(match &self.installation {
            InstallationTarget::Id(_) => None,
            InstallationTarget::Org(org) => Some(org.as_str()),
            InstallationTarget::Repo { owner, .. } => Some(owner.as_str()),
        })
    }

    /// Reads `toml` (the plugin's table), falling back to `env` for keys it lacks. Relative
    /// `private_key_path`s are resolved against `base_dir` (the config file's folder) if given.
    pub fn from_toml(
        toml: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = toml.parse().map_err(|e: toml::de::Error| {
            // toml's Display quotes the offending line, which may be part of a PEM key.
            let line = e.span().map(|s| toml[..s.start].matches('\n').count() + 1);
            let place = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            ConfigError::new("configuration", format!("not valid TOML{place}: {}", e.message()))
        })?;
        Raw { table, env, installation_from_env: true }.into_config(base_dir)
    }

    /// [`Config::from_toml`] with the process environment.
    pub fn from_toml_with_process_env(toml: &str, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        Config::from_toml(toml, &|name| std::env::var(name).ok(), base_dir)
    }
}

const KNOWN_KEYS: &[&str] = &[
    "app_id",
    "client_id",
    "installation_id",
    "installation_org",
    "installation_repo",
    "private_key_path",
    "private_key",
    "api_url",
    "tls_roots",
    "ca_bundle_path",
    "refresh_margin_secs",
    "min_validity_secs",
    "repositories",
    "repository_ids",
    "permissions",
    "connect_timeout_secs",
    "request_timeout_secs",
    "retry_deadline_secs",
    "user_agent",
    "env",
    "owner",
    "host",
    "installations",
];

/// What one `[[installations]]` entry may set; the rest comes from the top level.
const ENTRY_KEYS: &[&str] = &[
    "owner",
    "installation_id",
    "installation_org",
    "installation_repo",
    "app_id",
    "client_id",
    "private_key_path",
    "private_key",
    "api_url",
    "host",
    "tls_roots",
    "ca_bundle_path",
    "repositories",
    "repository_ids",
    "permissions",
];

/// Top-level keys an entry never inherits: they describe the default installation only.
const NOT_INHERITED: &[&str] = &[
    "installations",
    "owner",
    "installation_id",
    "installation_org",
    "installation_repo",
    "host",
    "repositories",
    "repository_ids",
    "permissions",
    "env",
];

/// Settings that go together: an entry setting one of a group inherits none of it.
const GROUPS: &[&[&str]] =
    &[&["app_id", "client_id"], &["private_key_path", "private_key"], &["tls_roots", "ca_bundle_path"]];

/// `https://api.github.com` → `github.com`; `https://ghe.example.com/api/v3` → `ghe.example.com`;
/// `http://127.0.0.1:8787` → `127.0.0.1:8787`: the host as git names it in a credential request
/// (with the port when it is not the scheme's default). An `api.` prefix is dropped only from a
/// URL without a path, GitHub's own layout (`api.github.com`, `api.SUBDOMAIN.ghe.com`).
pub fn host_of_api_url(api_url: &str) -> String {
    let Ok(uri) = api_url.parse::<ureq::http::Uri>() else {
        return api_url.to_owned();
    };
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let bare_path = uri.path().trim_matches('/').is_empty();
    let host = match host.strip_prefix("api.") {
        Some(rest) if bare_path && rest.contains('.') => rest.to_owned(),
        _ => host,
    };
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    };
    match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host,
    }
}

struct Raw<'a> {
    table: toml::Table,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Whether `GITHUB_APP_INSTALLATION_ID` may stand in for the installation (the top level only).
    installation_from_env: bool,
}

impl Raw<'_> {
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        // serde's message would quote the value, which may be a secret in the wrong place.
        value
            .clone()
            .try_into::<T>()
            .map(Some)
            .map_err(|e| ConfigError::new(key, plughost_sdk::without_value(e.message())))
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// The default installation (the top level's, else the first entry's) with the others in
    /// [`Config::installations`].
    fn into_config(self, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(unknown) = self.table.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::new(
                unknown.as_str(),
                format!("unknown setting; known: {}", KNOWN_KEYS.join(", ")),
            ));
        }
        let entries = self.get::<Vec<toml::Table>>("installations")?.unwrap_or_default();
        let top_level_installation = ["installation_id", "installation_org", "installation_repo", "owner"]
            .iter()
            .any(|k| self.table.contains_key(*k))
            || self.env("GITHUB_APP_INSTALLATION_ID").is_some();
        let mut configs = Vec::new();
        if top_level_installation || entries.is_empty() {
            configs.push(self.one_installation(base_dir)?);
        }
        for (i, entry) in entries.into_iter().enumerate() {
            let in_entry = |e: ConfigError| ConfigError::new(format!("installations[{i}].{}", e.setting), e.problem);
            let table = self.entry_table(entry).map_err(in_entry)?;
            let raw = Raw { table, env: self.env, installation_from_env: false };
            let config = raw.one_installation(base_dir).map_err(in_entry)?;
            if config.configured_owner().is_none() {
                return Err(in_entry(ConfigError::new(
                    "owner",
                    "missing: an installation given by installation_id needs the owner (organization or user) whose repositories it serves",
                )));
            }
            let key = |c: &Config| c.configured_owner().map(|o| (c.host(), o.to_ascii_lowercase()));
            if let Some((host, owner)) = key(&config).filter(|k| configs.iter().any(|c| key(c).as_ref() == Some(k))) {
                return Err(in_entry(ConfigError::new(
                    "owner",
                    format!("{owner} on {host} is already served by an earlier installation"),
                )));
            }
            configs.push(config);
        }
        let mut default = configs.remove(0);
        default.installations = configs;
        Ok(default)
    }

    /// An entry's own keys over what it inherits from the top level.
    fn entry_table(&self, entry: toml::Table) -> Result<toml::Table, ConfigError> {
        if let Some(unknown) = entry.keys().find(|k| !ENTRY_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::new(
                unknown.as_str(),
                format!("not a setting of an installation; known: {}", ENTRY_KEYS.join(", ")),
            ));
        }
        let mut table = self.table.clone();
        table.retain(|k, _| !NOT_INHERITED.contains(&k));
        for group in GROUPS {
            if group.iter().any(|k| entry.contains_key(*k)) {
                table.retain(|k, _| !group.contains(&k));
            }
        }
        table.extend(entry);
        Ok(table)
    }

    /// One installation's settings from this table (and the environment).
    fn one_installation(&self, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let identity = self.identity()?;
        let installation = self.installation()?;
        let private_key = self.private_key(base_dir)?;
        let api_url = match self.get::<String>("api_url")? {
            Some(url) => parse_api_url(&url, "api_url")?,
            None => match self.env("GITHUB_API_URL") {
                Some(url) => parse_api_url(&url, "GITHUB_API_URL")?,
                None => DEFAULT_API_URL.to_owned(),
            },
        };
        let mut config = Config::new(identity, installation, private_key, &api_url)?;
        config.tls = self.tls_trust(base_dir)?;

        if let Some(margin) = self.get::<u64>("refresh_margin_secs")? {
            if Duration::from_secs(margin) >= TOKEN_LIFETIME {
                return Err(ConfigError::new(
                    "refresh_margin_secs",
                    format!("{margin} is not below the 3600 s lifetime of installation tokens"),
                ));
            }
            config.refresh_margin = Duration::from_secs(margin);
        }
        let min_validity = match self.get::<u64>("min_validity_secs")? {
            Some(secs) => Some(("min_validity_secs", secs)),
            None => match self.env("GITHUB_APP_MIN_VALIDITY_SECS") {
                Some(v) => Some((
                    "GITHUB_APP_MIN_VALIDITY_SECS",
                    v.trim().parse().map_err(|_| {
                        ConfigError::new("GITHUB_APP_MIN_VALIDITY_SECS", "expected a whole number of seconds")
                    })?,
                )),
                None => None,
            },
        };
        if let Some((setting, secs)) = min_validity {
            if secs == 0 || Duration::from_secs(secs) >= TOKEN_LIFETIME {
                return Err(ConfigError::new(
                    setting,
                    format!("{secs} is not between 1 and the 3600 s lifetime of installation tokens"),
                ));
            }
            config.min_validity = Duration::from_secs(secs);
        }
        for (key, slot) in [
            ("connect_timeout_secs", &mut config.connect_timeout),
            ("request_timeout_secs", &mut config.request_timeout),
            ("retry_deadline_secs", &mut config.retry_deadline),
        ] {
            if let Some(secs) = self.get::<u64>(key)? {
                if secs == 0 {
                    return Err(ConfigError::new(key, "must be at least 1"));
                }
                *slot = Duration::from_secs(secs);
            }
        }
        if let Some(agent) = self.get::<String>("user_agent")? {
            if agent.trim().is_empty() {
                return Err(ConfigError::new("user_agent", "must not be empty: GitHub refuses requests without one"));
            }
            config.user_agent = agent;
        }

        config.scope.repositories = self.get("repositories")?.unwrap_or_default();
        config.scope.repository_ids = self.get("repository_ids")?.unwrap_or_default();
        if config.scope.repositories.len() + config.scope.repository_ids.len() > 500 {
            return Err(ConfigError::new("repositories", "GitHub scopes a token to at most 500 repositories"));
        }
        config.scope.permissions = self.get("permissions")?.unwrap_or_default();
        if let Some(name) = config
            .scope
            .permissions
            .iter()
            .find(|(_, l)| !matches!(l.as_str(), "read" | "write" | "admin"))
            .map(|(n, _)| n)
        {
            return Err(ConfigError::new(format!("permissions.{name}"), "not one of \"read\", \"write\", \"admin\""));
        }

        if let Some(env) = self.get::<RawEnv>("env")? {
            config.env = env.validate()?;
        }
        config.owner = match self.get::<String>("owner")? {
            Some(owner) => Some(account_login(&owner, "owner")?),
            None => None,
        };
        if let (Some(owner), Some(named)) = (
            &config.owner,
            match &config.installation {
                InstallationTarget::Org(org) => Some(("installation_org", org)),
                InstallationTarget::Repo { owner, .. } => Some(("installation_repo", owner)),
                InstallationTarget::Id(_) => None,
            },
        ) {
            if !owner.eq_ignore_ascii_case(named.1) {
                return Err(ConfigError::new("owner", format!("names another account than {}", named.0)));
            }
        }
        if let Some(host) = self.get::<String>("host")? {
            let host = host.trim().to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', '@', ' ']) {
                return Err(ConfigError::new(
                    "host",
                    "expected a host as git names it, like \"ghe.example.com\" or \"ghe.example.com:8443\"",
                ));
            }
            config.host = Some(host);
        }
        Ok(config)
    }

    /// `ca_bundle_path` (`GITHUB_APP_CA_BUNDLE_PATH`) or `tls_roots` (`GITHUB_APP_TLS_ROOTS`).
    fn tls_trust(&self, base_dir: Option<&Path>) -> Result<TlsTrust, ConfigError> {
        let roots = match self.get::<String>("tls_roots")? {
            Some(value) => Some(("tls_roots", value)),
            None => self.env("GITHUB_APP_TLS_ROOTS").map(|v| ("GITHUB_APP_TLS_ROOTS", v)),
        };
        let roots = match roots {
            None => None,
            Some((_, value)) if value.trim() == "builtin" => Some(TlsTrust::Builtin),
            Some((_, value)) if value.trim() == "system" => Some(TlsTrust::System),
            Some((setting, value)) => {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "{value:?} is not \"builtin\" (the roots built into the plugin) or \"system\" (the operating system's trust store)"
                    ),
                ));
            }
        };
        let bundle = match self.get::<PathBuf>("ca_bundle_path")? {
            Some(path) => Some(("ca_bundle_path", resolve(&path, base_dir))),
            None => self.env("GITHUB_APP_CA_BUNDLE_PATH").map(|p| ("GITHUB_APP_CA_BUNDLE_PATH", PathBuf::from(p))),
        };
        match (bundle, roots) {
            (Some((setting, _)), Some(TlsTrust::System)) => Err(ConfigError::new(
                setting,
                "set either a CA bundle or tls_roots = \"system\", not both: the bundle replaces the other roots",
            )),
            (Some((setting, path)), _) => Ok(TlsTrust::Bundle(CaBundle::load(&path, setting)?)),
            (None, roots) => Ok(roots.unwrap_or_default()),
        }
    }

    fn identity(&self) -> Result<AppIdentity, ConfigError> {
        let app_id = self.get::<NumberOrString>("app_id")?;
        let client_id = self.get::<String>("client_id")?;
        // Both may be given; the client id is GitHub's recommended issuer.
        if let Some(client_id) = client_id {
            return client_identity(&client_id, "client_id");
        }
        if let Some(app_id) = app_id {
            return Ok(AppIdentity::AppId(app_id.parse_id("app_id")?));
        }
        if let Some(client_id) = self.env("GITHUB_APP_CLIENT_ID") {
            return client_identity(&client_id, "GITHUB_APP_CLIENT_ID");
        }
        if let Some(app_id) = self.env("GITHUB_APP_ID") {
            return Ok(AppIdentity::AppId(NumberOrString::Text(app_id).parse_id("GITHUB_APP_ID")?));
        }
        Err(ConfigError::new("app_id", "missing: set app_id or client_id (or GITHUB_APP_ID / GITHUB_APP_CLIENT_ID)"))
    }

    fn installation(&self) -> Result<InstallationTarget, ConfigError> {
        let id = self.get::<NumberOrString>("installation_id")?;
        let org = self.get::<String>("installation_org")?;
        let repo = self.get::<String>("installation_repo")?;
        let given = [id.is_some(), org.is_some(), repo.is_some()].iter().filter(|g| **g).count();
        if given > 1 {
            return Err(ConfigError::new(
                "installation_id",
                "set only one of installation_id, installation_org, installation_repo",
            ));
        }
        if let Some(id) = id {
            return Ok(InstallationTarget::Id(id.parse_id("installation_id")?));
        }
        if let Some(org) = org {
            return Ok(InstallationTarget::Org(account_login(&org, "installation_org")?));
        }
        if let Some(repo) = repo {
            return match repo.trim().split_once('/') {
                Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Ok(InstallationTarget::Repo { owner: owner.to_owned(), repo: name.to_owned() })
                }
                _ => Err(ConfigError::new("installation_repo", "expected \"owner/repository\"")),
            };
        }
        if let Some(owner) = self.get::<String>("owner")? {
            // An owner alone: its installation is discovered, as with installation_org.
            return Ok(InstallationTarget::Org(account_login(&owner, "owner")?));
        }
        if self.installation_from_env {
            if let Some(id) = self.env("GITHUB_APP_INSTALLATION_ID") {
                return Ok(InstallationTarget::Id(NumberOrString::Text(id).parse_id("GITHUB_APP_INSTALLATION_ID")?));
            }
            return Err(ConfigError::new(
                "installation_id",
                "missing: set installation_id, installation_org or installation_repo (or GITHUB_APP_INSTALLATION_ID)",
            ));
        }
        Err(ConfigError::new("owner", "missing: set owner, and installation_id if it is known"))
    }

    fn private_key(&self, base_dir: Option<&Path>) -> Result<PrivateKey, ConfigError> {
        let path = self.get::<PathBuf>("private_key_path")?;
        let inline = self.get::<String>("private_key")?;
        match (path, inline) {
            (Some(_), Some(_)) => {
                Err(ConfigError::new("private_key", "set either private_key or private_key_path, not both"))
            }
            (Some(path), None) => read_key_file(&path, base_dir, "private_key_path"),
            (None, Some(pem)) => PrivateKey::from_pem(&pem, "private_key"),
            (None, None) => {
                if let Some(path) = self.env("GITHUB_APP_PRIVATE_KEY_PATH") {
                    read_key_file(Path::new(&path), None, "GITHUB_APP_PRIVATE_KEY_PATH")
                } else if let Some(pem) = self.env("GITHUB_APP_PRIVATE_KEY") {
                    // CI systems often store multi-line secrets with literal `\n`.
                    let pem = if pem.contains('\n') { pem } else { pem.replace("\\n", "\n") };
                    PrivateKey::from_pem(&pem, "GITHUB_APP_PRIVATE_KEY")
                } else {
                    Err(ConfigError::new(
                        "private_key_path",
                        "missing: set private_key_path or private_key (or GITHUB_APP_PRIVATE_KEY_PATH / GITHUB_APP_PRIVATE_KEY)",
                    ))
                }
            }
        }
    }
}

/// A relative path from the table is relative to the config file's folder.
fn resolve(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

fn read_key_file(path: &Path, base_dir: Option<&Path>, setting: &str) -> Result<PrivateKey, ConfigError> {
    let path = resolve(path, base_dir);
    let pem = read_private(&path).map_err(|problem| ConfigError::new(setting, problem))?;
    PrivateKey::from_pem(&pem, setting)
        .map_err(|e| ConfigError::new(setting, format!("{}: {}", path.display(), e.problem)))
}

/// The key file's text, refused unless private to its owner (as ssh refuses a private key): the
/// mode is read from the file opened, not looked up again by path.
fn read_private(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    let mode = file.metadata().map_err(cannot_read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is open to group or others (mode {mode:o}); it must be private to its owner (chmod 600)",
            path.display()
        ));
    }
    let mut pem = String::new();
    file.read_to_string(&mut pem).map_err(cannot_read)?;
    Ok(pem)
}

/// An organization or user login, like `acme`.
fn account_login(login: &str, setting: &str) -> Result<String, ConfigError> {
    let login = login.trim();
    if login.is_empty() || !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ConfigError::new(setting, "expected an organization or user login, like \"acme\""));
    }
    Ok(login.to_owned())
}

fn client_identity(client_id: &str, setting: &str) -> Result<AppIdentity, ConfigError> {
    let client_id = client_id.trim();
    if client_id.is_empty() || !client_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(
            setting,
            "expected a client id like \"Iv23liABCDEF12345678\" (letters and digits)",
        ));
    }
    Ok(AppIdentity::ClientId(client_id.to_owned()))
}

/// Ids may be written as numbers or strings (environment variables are strings anyway).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(i64),
    Text(String),
}

impl NumberOrString {
    fn parse_id(self, setting: &str) -> Result<u64, ConfigError> {
        let bad = || ConfigError::new(setting, "expected a positive integer id");
        let id = match self {
            NumberOrString::Number(n) => u64::try_from(n).map_err(|_| bad())?,
            NumberOrString::Text(s) => s.trim().parse::<u64>().map_err(|_| bad())?,
        };
        if id == 0 { Err(bad()) } else { Ok(id) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    token_vars: Option<Vec<String>>,
    expires_at_var: Option<String>,
}

impl RawEnv {
    fn validate(self) -> Result<EnvSettings, ConfigError> {
        let token_vars = self.token_vars.unwrap_or_default();
        if let Some(bad) = token_vars.iter().position(|v| !is_env_name(v)) {
            return Err(ConfigError::new(
                "env.token_vars",
                format!("entry {} is not a valid environment variable name", bad + 1),
            ));
        }
        let expires_at_var = match self.expires_at_var {
            // The expiry goes with a token; with no token variable there is nothing to date.
            None if token_vars.is_empty() => None,
            None => Some(DEFAULT_EXPIRES_AT_VAR.to_owned()),
            Some(v) if v.is_empty() => None,
            Some(v) if is_env_name(&v) => Some(v),
            Some(_) => {
                return Err(ConfigError::new("env.expires_at_var", "not a valid environment variable name"));
            }
        };
        Ok(EnvSettings { token_vars, expires_at_var })
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Accepts `http(s)://host[:port][/path]`, no query or fragment; returns it without a trailing slash.
fn parse_api_url(raw: &str, setting: &str) -> Result<String, ConfigError> {
    // The URL is not quoted: one with credentials in it is refused below, and must not be printed.
    let bad = |why: &str| ConfigError::new(setting, format!("not a usable API URL: {why}"));
    let uri: ureq::http::Uri = raw.trim().parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(bad("expected http:// or https://")),
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() || raw.contains('#') {
        return Err(bad("no query or fragment allowed"));
    }
    if raw.contains('@') {
        return Err(bad("credentials do not belong in the URL"));
    }
    Ok(raw.trim().trim_end_matches('/').to_owned())
}

/// `expires_at` for humans and environment variables.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
