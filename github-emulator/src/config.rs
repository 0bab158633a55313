//! What the emulator knows: Apps, their installations and the repositories those can reach.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::tls::TestCa;

/// App id of the App that [`EmulatorConfig::with_test_app`] configures.
pub const TEST_APP_ID: u64 = 1001;
/// Client id of that App (GitHub's recommended JWT issuer).
pub const TEST_CLIENT_ID: &str = "Iv23liEmulatorTest01";
/// Installation id of that App's one installation, on [`TEST_ORG`].
pub const TEST_INSTALLATION_ID: u64 = 424242;
/// Organization that installation belongs to; its repositories are `widgets`, `gadgets`, `docs`.
pub const TEST_ORG: &str = "acme";

/// Everything the emulator serves. Build it with [`EmulatorConfig::with_test_app`] or by hand.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Where to listen; default `127.0.0.1:0` (a free port, see `EmulatorHandle::base_url`).
    pub listen: SocketAddr,
    pub apps: Vec<AppConfig>,
    pub installations: Vec<InstallationConfig>,
    /// Lifetime of minted installation tokens; GitHub's is one hour.
    pub token_ttl: Duration,
    /// Initial offset of the emulator's clock from the machine's, in seconds (may be negative).
    pub clock_skew_secs: i64,
    /// How far `iat` may lie in the emulator's future and `exp - iat` may exceed 10 minutes.
    pub jwt_leeway: Duration,
    /// Serve https with this CA's server certificate (for `localhost`, `127.0.0.1`, `::1`)
    /// instead of plain http.
    pub tls: Option<TestCa>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            apps: Vec::new(),
            installations: Vec::new(),
            token_ttl: Duration::from_secs(3600),
            clock_skew_secs: 0,
            jwt_leeway: Duration::from_secs(30),
            tls: None,
        }
    }
}

impl EmulatorConfig {
    /// One App ([`TEST_APP_ID`], [`TEST_CLIENT_ID`]) verified with `public_key_pem`, installed
    /// once ([`TEST_INSTALLATION_ID`]) on the organization [`TEST_ORG`] with the repositories
    /// `widgets`, `gadgets` and `docs`, permissions `contents: write`, `metadata: read`,
    /// `pull_requests: write`.
    pub fn with_test_app(public_key_pem: &str) -> Self {
        let app = AppConfig::new(TEST_APP_ID, TEST_CLIENT_ID, public_key_pem);
        let installation = InstallationConfig::new(TEST_INSTALLATION_ID, TEST_APP_ID, TEST_ORG)
            .with_repos(["widgets", "gadgets", "docs"])
            .with_permissions([("contents", "write"), ("metadata", "read"), ("pull_requests", "write")]);
        EmulatorConfig { apps: vec![app], installations: vec![installation], ..Default::default() }
    }

    /// Adds an installation (of an App already configured), e.g. on a second organization with
    /// repositories of its own: tokens of one installation never reach another's repositories.
    pub fn with_installation(mut self, installation: InstallationConfig) -> Self {
        self.installations.push(installation);
        self
    }

    /// Adds an App, verified with `public_key_pem` (e.g. a second App beside the test App).
    pub fn with_app(mut self, app: AppConfig) -> Self {
        self.apps.push(app);
        self
    }

    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Serves https with `ca`'s server certificate; clients trust it through [`TestCa::ca_pem`].
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.clone());
        self
    }

    pub fn clock_skew_secs(mut self, skew: i64) -> Self {
        self.clock_skew_secs = skew;
        self
    }
}

/// A GitHub App: the emulator checks JWTs whose `iss` is its id or client id against its key.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub id: u64,
    pub client_id: String,
    pub slug: String,
    /// RSA public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub public_key_pem: String,
}

impl AppConfig {
    pub fn new(id: u64, client_id: &str, public_key_pem: &str) -> Self {
        AppConfig {
            id,
            client_id: client_id.to_owned(),
            slug: format!("emulated-app-{id}"),
            public_key_pem: public_key_pem.to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountType {
    Organization,
    User,
}

impl AccountType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccountType::Organization => "Organization",
            AccountType::User => "User",
        }
    }
}

/// An installation of an App on an account, with the repositories it can reach.
#[derive(Clone, Debug)]
pub struct InstallationConfig {
    pub id: u64,
    pub app_id: u64,
    pub account: String,
    pub account_id: u64,
    pub account_type: AccountType,
    pub repositories: Vec<RepoConfig>,
    /// Permission name to level (`read`, `write`, `admin`).
    pub permissions: BTreeMap<String, String>,
    /// `true` answers `repository_selection: "all"`, `false` `"selected"`.
    pub all_repositories: bool,
}

impl InstallationConfig {
    pub fn new(id: u64, app_id: u64, account: &str) -> Self {
        InstallationConfig {
            id,
            app_id,
            account: account.to_owned(),
            account_id: id + 9_000_000,
            account_type: AccountType::Organization,
            repositories: Vec::new(),
            permissions: BTreeMap::from([("metadata".to_owned(), "read".to_owned())]),
            all_repositories: true,
        }
    }

    /// Adds repositories by name, with ids derived from the installation id (stable across runs).
    pub fn with_repos<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for name in names {
            let id = self.id * 1000 + self.repositories.len() as u64 + 1;
            self.repositories.push(RepoConfig { id, name: name.to_owned() });
        }
        self
    }

    pub fn with_permissions<'a>(mut self, perms: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.permissions = perms.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        self
    }

    pub(crate) fn repository_selection(&self) -> &'static str {
        if self.all_repositories { "all" } else { "selected" }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    pub id: u64,
    /// The name without the owner: the owner is the installation's account.
    pub name: String,
}
