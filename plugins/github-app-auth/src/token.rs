//! The installation token: a secret that prints as `[REDACTED]`, with its expiry both as GitHub
//! reported it and as an instant on this machine's monotonic clock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};

/// An installation access token. Cheap to clone (shared, the secret is not copied);
/// `Debug` and `Display` never show the secret.
#[derive(Clone)]
pub struct InstallationToken(Arc<Inner>);

struct Inner {
    secret: SecretString,
    expires_at: SystemTime,
    valid_until: Instant,
    permissions: BTreeMap<String, String>,
    repository_selection: String,
    /// `(id, name)` of the repositories GitHub listed for a token limited to some.
    repositories: Option<Vec<(u64, String)>>,
}

impl InstallationToken {
    pub(crate) fn new(
        secret: String,
        expires_at: SystemTime,
        valid_until: Instant,
        permissions: BTreeMap<String, String>,
        repository_selection: String,
    ) -> Self {
        InstallationToken(Arc::new(Inner {
            secret: SecretString::from(secret),
            expires_at,
            valid_until,
            permissions,
            repository_selection,
            repositories: None,
        }))
    }

    /// The same token with the repositories GitHub listed in its answer (a fresh token only).
    pub(crate) fn with_repositories(self, repositories: Option<Vec<(u64, String)>>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.repositories = repositories;
                InstallationToken(Arc::new(inner))
            }
            Err(shared) => InstallationToken(shared),
        }
    }

    /// `(id, name)` of the repositories GitHub said the token reaches, when it listed them
    /// (it does for a token limited to some).
    pub fn repositories(&self) -> Option<&[(u64, String)]> {
        self.0.repositories.as_deref()
    }

    /// The token, for the one place that hands it on.
    pub fn expose(&self) -> &str {
        self.0.secret.expose_secret()
    }

    pub fn secret(&self) -> &SecretString {
        &self.0.secret
    }

    /// Expiry as GitHub reported it (`expires_at`, on GitHub's clock).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// Expiry on this machine's monotonic clock, corrected for the difference between GitHub's
    /// clock and ours and rounded down: the token is certainly valid before it.
    pub fn valid_until(&self) -> Instant {
        self.0.valid_until
    }

    /// Expiry on this machine's wall clock (whole seconds, rounded down): what a host or git
    /// (`password_expiry_utc`) on this machine should compare with its own clock. Differs from
    /// [`expires_at`](Self::expires_at) when GitHub's clock is off from ours.
    pub fn expires_at_local(&self) -> SystemTime {
        let at = SystemTime::now() + self.remaining();
        match at.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
            Err(_) => at,
        }
    }

    /// How long the token is still certainly valid.
    pub fn remaining(&self) -> Duration {
        self.0.valid_until.saturating_duration_since(Instant::now())
    }

    pub fn permissions(&self) -> &BTreeMap<String, String> {
        &self.0.permissions
    }

    /// `all` or `selected`.
    pub fn repository_selection(&self) -> &str {
        &self.0.repository_selection
    }
}

impl fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationToken")
            .field("secret", &"[REDACTED]")
            .field("expires_at", &humantime::format_rfc3339_seconds(self.0.expires_at))
            .field("remaining", &self.remaining())
            .field("permissions", &self.0.permissions)
            .field("repository_selection", &self.0.repository_selection)
            .finish()
    }
}

impl fmt::Display for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "installation token [REDACTED], expires {}", humantime::format_rfc3339_seconds(self.0.expires_at))
    }
}
