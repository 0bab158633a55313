//! Talking to GitHub: one blocking request per call, no retries here except the one re-sign
//! after a 401 (clock skew recovery). Retrying and caching are the cache's business.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{Config, InstallationTarget, TlsTrust, TokenScope};
use crate::error::{Error, RetryAt};
use crate::jwt::AppJwtSigner;
use crate::token::InstallationToken;

const API_VERSION: &str = "2022-11-28";
/// Longest GitHub message quoted in an error.
const MAX_MESSAGE: usize = 300;
/// How long to wait after a rate limit that names no time: GitHub asks for at least a minute.
const UNNAMED_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A GitHub App client for one installation.
pub struct GitHubClient {
    agent: ureq::Agent,
    api_url: String,
    signer: AppJwtSigner,
    target: InstallationTarget,
    installation_id: OnceLock<u64>,
    scope: TokenScope,
    /// GitHub's clock minus ours in milliseconds, learned from `Date` when a JWT is refused.
    clock_offset_ms: AtomicI64,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// What to suggest when the TLS handshake fails.
    tls_hint: String,
}

/// A response, reduced to what the client looks at.
struct Reply {
    status: u16,
    /// GitHub's clock when it answered.
    date: Option<SystemTime>,
    received: Instant,
    /// A rate limit, with how long GitHub asked us to wait from `received`.
    rate_limit_wait: Option<Duration>,
    body: String,
}

impl GitHubClient {
    pub fn new(config: &Config) -> Self {
        use ureq::tls::{RootCerts, TlsConfig};
        let (roots, tls_hint) = match &config.tls {
            TlsTrust::Builtin => (
                RootCerts::WebPki,
                "if the server's certificate comes from a private CA (e.g. GitHub Enterprise Server behind a \
                 corporate CA), set ca_bundle_path to that CA's PEM bundle, or tls_roots = \"system\" to trust \
                 the operating system's trust store"
                    .to_owned(),
            ),
            TlsTrust::System => (
                RootCerts::PlatformVerifier,
                "the operating system's trust store (tls_roots = \"system\") does not accept the server's \
                 certificate: add its CA there, or set ca_bundle_path to that CA's PEM bundle"
                    .to_owned(),
            ),
            TlsTrust::Bundle(bundle) => (
                RootCerts::new_with_certs(bundle.certs()),
                format!(
                    "the CA bundle {} (ca_bundle_path) does not hold the CA that signed the server's certificate",
                    bundle.path().display()
                ),
            ),
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            .user_agent(config.user_agent.as_str())
            .build()
            .into();
        let installation_id = OnceLock::new();
        if let InstallationTarget::Id(id) = config.installation {
            let _ = installation_id.set(id);
        }
        GitHubClient {
            agent,
            api_url: config.api_url.clone(),
            signer: AppJwtSigner::new(&config.identity, config.private_key.clone()),
            target: config.installation.clone(),
            installation_id,
            scope: config.scope.clone(),
            clock_offset_ms: AtomicI64::new(0),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            tls_hint,
        }
    }

    /// GitHub's clock as far as we know it: ours plus the offset last learned from `Date`.
    fn github_now(&self) -> SystemTime {
        shift(SystemTime::now(), self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// How far GitHub's clock is ahead of ours (negative: behind), as last learned.
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed) / 1000
    }

    /// The installation id, discovering it from the org or repository on first use.
    pub fn installation_id(&self) -> Result<u64, Error> {
        self.discover_installation_id(None)
    }

    fn discover_installation_id(&self, deadline: Option<Instant>) -> Result<u64, Error> {
        if let Some(id) = self.installation_id.get() {
            return Ok(*id);
        }
        let (path, what) = match &self.target {
            InstallationTarget::Id(id) => return Ok(*id),
            InstallationTarget::Org(org) => {
                (format!("/orgs/{org}/installation"), format!("installation of this App on {org}"))
            }
            InstallationTarget::Repo { owner, repo } => {
                (format!("/repos/{owner}/{repo}/installation"), format!("installation of this App on {owner}/{repo}"))
            }
        };
        let url = format!("{}{path}", self.api_url);
        let reply = self.with_jwt("GET", &url, None, deadline)?;
        if reply.status != 200 {
            return Err(status_error(&reply, &url, &what));
        }
        let id = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| Error::InvalidResponse {
                url: url.clone(),
                reason: "no numeric \"id\" in the installation".into(),
            })?;
        Ok(*self.installation_id.get_or_init(|| id))
    }

    /// Mints a new installation token: `POST /app/installations/{id}/access_tokens`.
    pub fn mint(&self) -> Result<InstallationToken, Error> {
        self.mint_before(None)
    }

    /// [`mint`](Self::mint), every request ending by `deadline` at the latest (a timeout then).
    pub fn mint_before(&self, deadline: Option<Instant>) -> Result<InstallationToken, Error> {
        self.mint_scoped(&self.scope, deadline)
    }

    /// Mints a token limited to `scope` (`repositories` are names without the owner, as GitHub
    /// wants them). GitHub's 422 for a scope it cannot grant comes back as
    /// [`Error::Unprocessable`], with GitHub's message.
    pub fn mint_scoped(&self, scope: &TokenScope, deadline: Option<Instant>) -> Result<InstallationToken, Error> {
        let id = self.discover_installation_id(deadline)?;
        let url = format!("{}/app/installations/{id}/access_tokens", self.api_url);
        let body = scope_body(scope);
        let reply = self.with_jwt("POST", &url, body.as_ref(), deadline)?;
        if reply.status != 201 {
            return Err(status_error(&reply, &url, &format!("installation {id}")));
        }
        self.parse_token(&reply, &url)
    }

    /// The API root, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The installation's account and granted permissions: `GET /app/installations/{id}`.
    pub fn installation_account(&self, deadline: Option<Instant>) -> Result<InstallationAccount, Error> {
        let id = self.discover_installation_id(deadline)?;
        let url = format!("{}/app/installations/{id}", self.api_url);
        let reply = self.with_jwt("GET", &url, None, deadline)?;
        if reply.status != 200 {
            return Err(status_error(&reply, &url, &format!("installation {id}")));
        }
        let body: Value = serde_json::from_str(&reply.body)
            .map_err(|_| Error::InvalidResponse { url: url.clone(), reason: "the body is not JSON".into() })?;
        let login = body
            .pointer("/account/login")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidResponse { url: url.clone(), reason: "no \"account.login\"".into() })?;
        Ok(InstallationAccount { login: login.to_owned(), permissions: string_map(body.get("permissions")) })
    }

    /// Every repository `token` reaches, as `(id, name)`: `GET /installation/repositories`,
    /// page by page (at most `max_pages` of 100).
    pub fn repositories_of(&self, token: &InstallationToken, max_pages: u32) -> Result<Vec<(u64, String)>, Error> {
        let mut found = Vec::new();
        for page in 1..=max_pages {
            let url = format!("{}/installation/repositories?per_page=100&page={page}", self.api_url);
            let reply = self.send("GET", &url, &format!("token {}", token.expose()), None, None)?;
            if reply.status != 200 {
                return Err(status_error(&reply, &url, "the installation's repositories"));
            }
            let body: Value = serde_json::from_str(&reply.body)
                .map_err(|_| Error::InvalidResponse { url: url.clone(), reason: "the body is not JSON".into() })?;
            let repos = body.get("repositories").and_then(Value::as_array).cloned().unwrap_or_default();
            found.extend(
                repos.iter().filter_map(|r| Some((r.get("id")?.as_u64()?, r.get("name")?.as_str()?.to_owned()))),
            );
            let total = body.get("total_count").and_then(Value::as_u64).unwrap_or(0);
            if repos.is_empty() || found.len() as u64 >= total {
                break;
            }
        }
        Ok(found)
    }

    /// `DELETE /installation/token`, authenticated by the token itself. GitHub answers 204; a
    /// 401 means the token no longer works (revoked before, or expired), which is what revoking
    /// is for: both are `Ok`, told apart by [`Revoked`].
    pub fn revoke(&self, token: &str) -> Result<Revoked, Error> {
        let url = format!("{}/installation/token", self.api_url);
        let reply = self.send("DELETE", &url, &format!("token {token}"), None, None)?;
        match reply.status {
            204 => Ok(Revoked::Now),
            401 if reply.rate_limit_wait.is_none() => Ok(Revoked::AlreadyDead),
            _ => Err(status_error(&reply, &url, "the installation token")),
        }
    }
}

/// What [`GitHubClient::installation_account`] learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallationAccount {
    /// The organization or user the installation belongs to.
    pub login: String,
    /// Permission name to level, as granted to the installation.
    pub permissions: BTreeMap<String, String>,
}

/// How a revocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// GitHub answered 204: the token stopped working now.
    Now,
    /// GitHub answered 401: the token had already stopped working (revoked or expired).
    AlreadyDead,
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// The body of a token request; `None` for an unlimited one.
fn scope_body(scope: &TokenScope) -> Option<Value> {
    if scope.repositories.is_empty() && scope.repository_ids.is_empty() && scope.permissions.is_empty() {
        return None;
    }
    let mut body = serde_json::Map::new();
    if !scope.repositories.is_empty() {
        body.insert("repositories".into(), Value::from(scope.repositories.clone()));
    }
    if !scope.repository_ids.is_empty() {
        body.insert("repository_ids".into(), Value::from(scope.repository_ids.clone()));
    }
    if !scope.permissions.is_empty() {
        let perms = scope.permissions.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        body.insert("permissions".into(), Value::Object(perms));
    }
    Some(Value::Object(body))
}

impl GitHubClient {
    /// Sends with a fresh App JWT; on 401, learns GitHub's clock from `Date` and re-signs once.
    fn with_jwt(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        deadline: Option<Instant>,
    ) -> Result<Reply, Error> {
        let jwt = self.signer.sign(self.github_now())?;
        let reply = self.send(method, url, &bearer(&jwt), body, deadline)?;
        if reply.status != 401 {
            return Ok(reply);
        }
        if let Some(github_now) = reply.date {
            let offset = offset_ms(github_now, SystemTime::now());
            self.clock_offset_ms.store(offset, Ordering::Relaxed);
            if offset.abs() > 30_000 {
                tracing::warn!(
                    offset_secs = offset / 1000,
                    "GitHub's clock differs from ours; signing JWTs with GitHub's time"
                );
            }
        }
        let jwt = self.signer.sign(self.github_now())?;
        self.send(method, url, &bearer(&jwt), body, deadline)
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        authorization: &str,
        body: Option<&Value>,
        deadline: Option<Instant>,
    ) -> Result<Reply, Error> {
        // Each request ends by the caller's deadline, so a slow GitHub cannot hold a caller
        // past it (and past the host's call timeout behind it).
        let timeout = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(self.request_timeout),
            None => self.request_timeout,
        };
        let timed_out = || Error::Timeout { url: url.to_owned(), connect: self.connect_timeout, request: timeout };
        if timeout.is_zero() {
            return Err(timed_out());
        }
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header("Authorization", authorization);
        let request_error = |e: ureq::http::Error| Error::Transport { url: url.to_owned(), reason: e.to_string() };
        let result = match body {
            Some(body) => {
                let request =
                    builder.header("Content-Type", "application/json").body(body.to_string()).map_err(request_error)?;
                self.agent.run(self.agent.configure_request(request).timeout_global(Some(timeout)).build())
            }
            None => {
                let request = builder.body(()).map_err(request_error)?;
                self.agent.run(self.agent.configure_request(request).timeout_global(Some(timeout)).build())
            }
        };
        let mut response = result.map_err(|e| self.transport_error(url, e, timeout))?;
        let received = Instant::now();
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned());
        let date = header("date").and_then(|d| httpdate::parse_http_date(&d).ok());
        let status = response.status().as_u16();
        let retry_after = header("retry-after");
        let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0");
        let reset = header("x-ratelimit-reset").and_then(|r| r.parse::<u64>().ok());
        let body = response.body_mut().read_to_string().map_err(|e| self.transport_error(url, e, timeout))?;
        let rate_limited = status == 429
            || (status == 403
                && (exhausted
                    || retry_after.is_some()
                    || github_message(&body).to_ascii_lowercase().contains("rate limit")));
        let rate_limit_wait = rate_limited.then(|| {
            // GitHub's rules, in its order: Retry-After; else the reset when none are left
            // (epoch seconds on GitHub's clock, so measured from its Date); else a minute.
            let github_now = date.unwrap_or_else(|| self.github_now());
            let after = retry_after.as_deref().and_then(|v| match v.parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => httpdate::parse_http_date(v).ok().map(|at| at.duration_since(github_now).unwrap_or_default()),
            });
            let until_reset = || {
                let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(reset?);
                Some(reset.duration_since(github_now).unwrap_or_default())
            };
            after.or_else(|| exhausted.then(until_reset).flatten()).unwrap_or(UNNAMED_RATE_LIMIT_WAIT)
        });
        Ok(Reply { status, date, received, rate_limit_wait, body })
    }

    fn transport_error(&self, url: &str, err: ureq::Error, timeout: Duration) -> Error {
        let timed_out = match &err {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(io) => matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock),
            _ => false,
        };
        if timed_out {
            Error::Timeout { url: url.to_owned(), connect: self.connect_timeout, request: timeout }
        } else if let Some(reason) = tls_failure(&err) {
            Error::Tls { url: url.to_owned(), reason, hint: self.tls_hint.clone() }
        } else {
            Error::Transport { url: url.to_owned(), reason: err.to_string() }
        }
    }

    /// Reads the 201 body. Its fields are picked by hand: a parser's error message could quote
    /// the token.
    fn parse_token(&self, reply: &Reply, url: &str) -> Result<InstallationToken, Error> {
        let invalid = |reason: &str| Error::InvalidResponse { url: url.to_owned(), reason: reason.to_owned() };
        let body: Value = serde_json::from_str(&reply.body).map_err(|_| invalid("the body is not JSON"))?;
        let token = body
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && !t.chars().any(char::is_whitespace))
            .ok_or_else(|| invalid("no usable \"token\""))?;
        let expires_at = body
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .ok_or_else(|| invalid("no RFC 3339 \"expires_at\""))?;
        let permissions = string_map(body.get("permissions"));
        let selection = body.get("repository_selection").and_then(Value::as_str).unwrap_or("all").to_owned();
        let repositories = body.get("repositories").and_then(Value::as_array).map(|repos| {
            repos.iter().filter_map(|r| Some((r.get("id")?.as_u64()?, r.get("name")?.as_str()?.to_owned()))).collect()
        });

        // Lifetime on GitHub's clock, moved onto our monotonic clock. `Date` has whole seconds,
        // so take one off: the token must certainly be valid until `valid_until`.
        let github_now = reply.date.unwrap_or_else(|| self.github_now());
        let lifetime =
            expires_at.duration_since(github_now).unwrap_or(Duration::ZERO).saturating_sub(Duration::from_secs(1));
        if lifetime.is_zero() {
            return Err(invalid("GitHub returned a token that has already expired by its own clock"));
        }
        Ok(InstallationToken::new(token.to_owned(), expires_at, reply.received + lifetime, permissions, selection)
            .with_repositories(repositories))
    }
}

/// What went wrong in TLS, if that is what failed: ureq reports handshake failures as rustls
/// errors, some wrapped in an `io::Error`.
fn tls_failure(err: &ureq::Error) -> Option<String> {
    match err {
        ureq::Error::Rustls(e) => Some(e.to_string()),
        ureq::Error::Tls(e) => Some((*e).to_owned()),
        ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).map(ToString::to_string),
        _ => None,
    }
}

fn bearer(jwt: &SecretString) -> String {
    format!("Bearer {}", jwt.expose_secret())
}

fn shift(t: SystemTime, offset_ms: i64) -> SystemTime {
    let by = Duration::from_millis(offset_ms.unsigned_abs());
    if offset_ms >= 0 { t + by } else { t - by }
}

fn offset_ms(theirs: SystemTime, ours: SystemTime) -> i64 {
    match theirs.duration_since(ours) {
        Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// GitHub's `message`, or the start of a non-JSON body, made safe for one log line.
fn github_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| if body.trim().is_empty() { "no message".to_owned() } else { body.to_owned() });
    let mut clean: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE).collect();
    if message.chars().count() > MAX_MESSAGE {
        clean.push('…');
    }
    clean
}

fn status_error(reply: &Reply, url: &str, what: &str) -> Error {
    let message = github_message(&reply.body);
    let url = url.to_owned();
    let status = reply.status;
    if let Some(wait) = reply.rate_limit_wait {
        return Error::RateLimited { status, url, message, retry_at: RetryAt::after(reply.received, wait) };
    }
    match status {
        401 => Error::Unauthorized { status, url, message },
        403 => Error::Forbidden { status, url, message },
        404 => Error::NotFound { what: what.to_owned(), url, message },
        422 => Error::Unprocessable { url, message },
        500..=599 => Error::Server { status, url, message },
        _ => Error::UnexpectedStatus { status, url, message },
    }
}
