//! The emulator's mutable state, shared by the server and the [`EmulatorHandle`](crate::EmulatorHandle).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use jsonwebtoken::DecodingKey;
use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::config::{AppConfig, EmulatorConfig, InstallationConfig};
use crate::faults::{Fault, FaultQueue};
use crate::server::Attempt;

pub(crate) struct App {
    pub config: AppConfig,
    pub key: DecodingKey,
}

/// A minted installation token, as the emulator remembers it.
#[derive(Clone, Debug)]
pub(crate) struct TokenRecord {
    pub installation_id: u64,
    /// On the emulator's (skewed) clock.
    pub expires_at: SystemTime,
    pub permissions: BTreeMap<String, String>,
    /// `None`: every repository of the installation.
    pub repositories: Option<Vec<String>>,
    pub revoked: bool,
}

/// Which of GitHub's rate limits is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateLimitKind {
    Primary,
    Secondary,
}

/// A rate limit in force: every GitHub-route request is refused until `until`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateLimitWindow {
    pub kind: RateLimitKind,
    pub status: u16,
    /// On the emulator's (skewed) clock.
    pub until: SystemTime,
}

pub(crate) struct Shared {
    /// `http` or `https` (TLS mode).
    pub scheme: &'static str,
    pub apps: Vec<App>,
    pub installations: Vec<InstallationConfig>,
    pub jwt_leeway: Duration,
    skew_ms: AtomicI64,
    token_ttl_ms: AtomicU64,
    mints: AtomicU64,
    requests: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<FaultQueue>,
    rate_limit: Mutex<Option<RateLimitWindow>>,
    attempts: Mutex<Vec<Attempt>>,
    tokens: Mutex<HashMap<String, TokenRecord>>,
    /// Files written through the contents API, by repository id and path.
    files: Mutex<HashMap<(u64, String), Vec<u8>>>,
}

/// A poisoned lock only means another request panicked mid-update of a counter or map whose
/// every state is valid, so carrying on is right for an emulator.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Result<Self, String> {
        let apps = config
            .apps
            .iter()
            .map(|app| {
                DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes())
                    .map(|key| App { config: app.clone(), key })
                    .map_err(|e| format!("app {}: public key is not an RSA PEM key: {e}", app.id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, inst) in config.installations.iter().enumerate() {
            if !apps.iter().any(|a| a.config.id == inst.app_id) {
                return Err(format!("installation {}: no app with id {}", inst.id, inst.app_id));
            }
            let earlier = &config.installations[..i];
            if earlier.iter().any(|e| e.id == inst.id) {
                return Err(format!("installation {}: the id is used twice", inst.id));
            }
            // GitHub installs an App at most once per account.
            if earlier.iter().any(|e| e.app_id == inst.app_id && e.account.eq_ignore_ascii_case(&inst.account)) {
                return Err(format!(
                    "installation {}: app {} is already installed on {}",
                    inst.id, inst.app_id, inst.account
                ));
            }
            let repo_ids = earlier.iter().flat_map(|e| &e.repositories).map(|r| r.id).collect::<Vec<_>>();
            if let Some(r) = inst.repositories.iter().find(|r| repo_ids.contains(&r.id)) {
                return Err(format!(
                    "installation {}: repository id {} is used by another installation",
                    inst.id, r.id
                ));
            }
        }
        Ok(Shared {
            scheme: if config.tls.is_some() { "https" } else { "http" },
            apps,
            installations: config.installations.clone(),
            jwt_leeway: config.jwt_leeway,
            skew_ms: AtomicI64::new(config.clock_skew_secs.saturating_mul(1000)),
            token_ttl_ms: AtomicU64::new(duration_ms(config.token_ttl)),
            mints: AtomicU64::new(0),
            requests: Mutex::default(),
            faults: Mutex::default(),
            rate_limit: Mutex::default(),
            attempts: Mutex::default(),
            tokens: Mutex::default(),
            files: Mutex::default(),
        })
    }

    /// The emulator's clock: the machine's, shifted by the configured skew.
    pub fn now(&self) -> SystemTime {
        let skew = self.skew_ms.load(Ordering::Relaxed);
        let real = SystemTime::now();
        if skew >= 0 {
            real + Duration::from_millis(skew.unsigned_abs())
        } else {
            real - Duration::from_millis(skew.unsigned_abs())
        }
    }

    pub fn set_skew_secs(&self, secs: i64) {
        self.skew_ms.store(secs.saturating_mul(1000), Ordering::Relaxed);
    }

    pub fn skew_secs(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed) / 1000
    }

    pub fn set_token_ttl(&self, ttl: Duration) {
        self.token_ttl_ms.store(duration_ms(ttl), Ordering::Relaxed);
    }

    pub fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    pub fn record_request(&self, route: &str) {
        *lock(&self.requests).entry(route.to_owned()).or_default() += 1;
    }

    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.requests).clone()
    }

    pub fn record_attempt(&self, attempt: Attempt) {
        lock(&self.attempts).push(attempt);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.attempts).clone()
    }

    /// Puts a rate limit in force until `until` (emulator's clock).
    pub fn start_rate_limit(&self, kind: RateLimitKind, status: u16, until: SystemTime) -> RateLimitWindow {
        let window = RateLimitWindow { kind, status, until };
        *lock(&self.rate_limit) = Some(window);
        window
    }

    /// The rate limit in force now, if any (an ended one is forgotten).
    pub fn rate_limit_in_force(&self) -> Option<RateLimitWindow> {
        let mut current = lock(&self.rate_limit);
        if current.is_some_and(|w| self.now() >= w.until) {
            *current = None;
        }
        *current
    }

    /// Ends any rate limit in force, as if its time had passed.
    pub fn clear_rate_limit(&self) {
        *lock(&self.rate_limit) = None;
    }

    pub fn push_fault(&self, fault: Fault, count: u32) {
        lock(&self.faults).push(fault, count);
    }

    pub fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop()
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    pub fn pending_faults(&self) -> u64 {
        lock(&self.faults).pending()
    }

    pub fn app_by_issuer(&self, iss: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.config.id.to_string() == iss || a.config.client_id == iss)
    }

    pub fn installation(&self, id: u64) -> Option<&InstallationConfig> {
        self.installations.iter().find(|i| i.id == id)
    }

    /// Mints and records a token; returns it with its expiry on the emulator's clock.
    pub fn mint(
        &self,
        installation_id: u64,
        permissions: BTreeMap<String, String>,
        repositories: Option<Vec<String>>,
    ) -> (String, SystemTime) {
        let ttl = Duration::from_millis(self.token_ttl_ms.load(Ordering::Relaxed));
        // GitHub reports whole seconds; expire exactly at the reported second so clients that
        // trust `expires_at` are never surprised.
        let expires_at = truncate_to_secs(self.now() + ttl);
        let token = new_token();
        let record = TokenRecord { installation_id, expires_at, permissions, repositories, revoked: false };
        lock(&self.tokens).insert(token.clone(), record);
        self.mints.fetch_add(1, Ordering::Relaxed);
        (token, expires_at)
    }

    pub fn token(&self, token: &str) -> Option<TokenRecord> {
        lock(&self.tokens).get(token).cloned()
    }

    /// A token that exists, is not revoked and has not expired on the emulator's clock.
    pub fn live_token(&self, token: &str) -> Option<TokenRecord> {
        self.token(token).filter(|r| !r.revoked && self.now() < r.expires_at)
    }

    pub fn file(&self, repo_id: u64, path: &str) -> Option<Vec<u8>> {
        lock(&self.files).get(&(repo_id, path.to_owned())).cloned()
    }

    /// Writes a file; `true` if it is new.
    pub fn put_file(&self, repo_id: u64, path: &str, content: Vec<u8>) -> bool {
        lock(&self.files).insert((repo_id, path.to_owned()), content).is_none()
    }

    pub fn revoke(&self, token: &str) -> bool {
        let now = self.now();
        match lock(&self.tokens).get_mut(token) {
            Some(r) if !r.revoked && now < r.expires_at => {
                r.revoked = true;
                true
            }
            _ => false,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// A token shaped like GitHub's newer installation tokens: `ghs_`, then about 520 characters
/// in dot-separated segments, so clients that assume 40 characters or no dots break here first.
fn new_token() -> String {
    let mut rng = rand::thread_rng();
    let mut segment =
        |len: usize| -> String { (&mut rng).sample_iter(&Alphanumeric).take(len).map(char::from).collect() };
    format!("ghs_{}.{}.{}", segment(36), segment(180), segment(300))
}
