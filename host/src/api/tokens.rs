//! The token routes, each answering `{"token","expires_at"}`:
//! - `GET /admin/github-installation-token[?host=H]` and `GET /workspaces/{id}/github-installation-token[?host=H]`:
//!   the provider for GitHub at `H` (default `github.com`), by the rule of
//!   [`crate::registry::PluginSet::provider`]: declared audiences and the `github_token_provider`
//!   setting, never load order;
//! - `GET /admin/tokens/{provider}` and `GET /workspaces/{id}/tokens/{provider}`: a provider by
//!   plugin name.
//!
//! The admin routes, and the workspace routes for a workspace token issued without a scope, serve
//! the provider's unscoped token. A workspace token issued with a scope gets a token minted for
//! that scope by the provider's scoped capability ([`super::scoped_tokens`]); a provider without
//! it answers 422, never a wider token.
//!
//! A provider's answer is reused for [`TokenCache`]'s time to live (`token_cache_ms` in the
//! config file, [`crate::settings::DEFAULT_TOKEN_CACHE_TTL`] by default, 0 to call the provider
//! every time). Every call crosses to the blocking pool and back, which costs more than the rest
//! of the request together; under load the cache turns thousands of those per second into one,
//! while a provider that rotates or refreshes its token is seen within the TTL. Errors are never
//! cached, and a reload (another plugin set, however it was loaded) or the token's expiry ends
//! the reuse at once.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use thread_local::ThreadLocal;

use super::auth::WorkspaceCaller;
use super::scoped_tokens::ScopedError;
use super::{Admin, ApiError, AppState};
use crate::registry::{CallError, DEFAULT_GITHUB_HOST, Pick, ServedToken, TokenError};
use plughost_sdk::Audience;

/// The last token served per route (the provider pick: `github\0[<host>]` or `named\0<name>`), for
/// the plugin set that served it.
///
/// Two levels: the answer every thread sees, and each thread's own copy of it. A hit reads only
/// the thread's copy, so under load no cache line moves between cores per request (a shared
/// lock or reference count would, on every hit); a thread goes to the shared answer once per
/// answer, and to the provider only when that is stale too.
pub struct TokenCache {
    ttl: Duration,
    shared: RwLock<HashMap<String, CachedToken>>,
    per_thread: ThreadLocal<RefCell<HashMap<String, CachedToken>>>,
}

#[derive(Clone)]
struct CachedToken {
    /// The registry generation that served it ([`crate::registry::Registry::generation`]).
    generation: u64,
    /// The end of the TTL or the token's expiry, whichever comes first. Monotonic: the
    /// remaining life of the token is measured once, so a wall clock stepping forward cannot
    /// stretch it (the TTL bounds the error to its own length anyway).
    valid_until: Instant,
    /// The serialised answer, so a hit costs a reference count instead of formatting.
    body: SecretBody,
}

impl CachedToken {
    fn is_fresh(&self, generation: u64, now: Instant) -> bool {
        self.generation == generation && now < self.valid_until
    }
}

/// A response body holding a token. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct SecretBody(pub(crate) axum::body::Bytes);

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBody([REDACTED])")
    }
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache { ttl, shared: RwLock::new(HashMap::new()), per_thread: ThreadLocal::new() }
    }

    /// The cached answer if the running set (`generation`) served it, it is younger than the
    /// TTL and its token unexpired.
    fn fresh(&self, route: &str, generation: u64) -> Option<SecretBody> {
        let now = Instant::now();
        let mine = self.per_thread.get_or_default();
        if let Some(cached) = mine.borrow().get(route).filter(|c| c.is_fresh(generation, now)) {
            return Some(cached.body.clone());
        }
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        let cached = shared.get(route).filter(|c| c.is_fresh(generation, now))?;
        // The thread's own copy of the bytes: its reference count is then this thread's alone.
        let copy = CachedToken { body: SecretBody(axum::body::Bytes::copy_from_slice(&cached.body.0)), ..*cached };
        drop(shared);
        let body = copy.body.clone();
        mine.borrow_mut().insert(route.to_owned(), copy);
        Some(body)
    }

    /// Keeps an answer of the set of `generation`, read before the provider was asked (an
    /// answer racing a reload is tied to the replaced set, so it is never reused).
    fn store(&self, route: &str, generation: u64, token: &ServedToken, body: &SecretBody) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let life = token.expires_at.duration_since(SystemTime::now()).unwrap_or_default();
        let entry = CachedToken { generation, valid_until: now + self.ttl.min(life), body: body.clone() };
        let mut shared = self.shared.write().unwrap_or_else(PoisonError::into_inner);
        // Routes are few (one per provider name or GitHub host asked about); stale ones are
        // dropped whenever an answer is stored, so unknown names cannot grow the map.
        shared.retain(|_, cached| cached.is_fresh(generation, now));
        shared.insert(route.to_owned(), entry);
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct TokenBody<'a> {
    token: &'a str,
    expires_at: String,
}

/// `?host=H` of the GitHub routes: the git host the token is for (`ghe.example.com:8443`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct HostQuery {
    host: Option<String>,
}

/// A GitHub host as a query gives it: 1-255 of `A-Z a-z 0-9 . - :`.
fn github_pick(query: Result<Query<HostQuery>, QueryRejection>) -> Result<Option<String>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    match query.host {
        None => Ok(None),
        Some(host)
            if (1..=255).contains(&host.len())
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')) =>
        {
            Ok(Some(host.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::BadRequest("invalid host: expected a host name, with :port if not 443".to_owned())),
    }
}

/// The provider name of `/tokens/{provider}`.
fn provider_name(params: &BTreeMap<String, String>) -> Result<&str, ApiError> {
    params.get("provider").map(String::as_str).ok_or_else(|| ApiError::BadRequest("no provider in the path".to_owned()))
}

pub async fn for_admin(
    _: Admin,
    State(state): State<Arc<AppState>>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let host = github_pick(query)?;
    serve_unscoped(&state, Pick::GitHub { host: host.as_deref() }).await
}

pub async fn for_workspace(
    caller: WorkspaceCaller,
    State(state): State<Arc<AppState>>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let host = github_pick(query)?;
    serve_workspace(&state, caller, Pick::GitHub { host: host.as_deref() }).await
}

pub async fn named_for_admin(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    serve_unscoped(&state, Pick::Named(provider_name(&params)?)).await
}

pub async fn named_for_workspace(
    caller: WorkspaceCaller,
    State(state): State<Arc<AppState>>,
    Path(params): Path<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    serve_workspace(&state, caller, Pick::Named(provider_name(&params)?)).await
}

/// The cache key of a route: which provider pick it is. The default GitHub route, the hot one,
/// costs no allocation.
fn route_key(pick: Pick<'_>) -> Cow<'static, str> {
    // Not `github\0github.com`: without `?host=` another provider may answer (rule 4 of the pick).
    const DEFAULT_GITHUB_ROUTE: &str = "github\0";
    match pick {
        Pick::GitHub { host: None } => Cow::Borrowed(DEFAULT_GITHUB_ROUTE),
        Pick::GitHub { host: Some(host) } => Cow::Owned(format!("github\0{host}")),
        Pick::Named(name) => Cow::Owned(format!("named\0{name}")),
    }
}

async fn serve_workspace(state: &AppState, caller: WorkspaceCaller, pick: Pick<'_>) -> Result<Response, ApiError> {
    let Some(scope) = caller.scope else { return serve_unscoped(state, pick).await };
    let registry = state.registry()?;
    let plugin = registry.provider(pick).map_err(token_error)?;
    // The host the token is for: the one asked about; without `?host=`, github.com if the
    // provider declares it, else the provider's own GitHub host (a lone Enterprise Server), else
    // empty (the provider's default, as on the by-name routes).
    let github_hosts = || plugin.audiences.iter().filter(|a| a.kind == Audience::GITHUB).map(|a| a.host.as_str());
    let host = match pick {
        Pick::GitHub { host: Some(host) } => host,
        Pick::GitHub { host: None } if github_hosts().any(|h| h == DEFAULT_GITHUB_HOST) => DEFAULT_GITHUB_HOST,
        Pick::GitHub { host: None } => github_hosts().next().unwrap_or(""),
        Pick::Named(_) => "",
    };
    let body =
        state.scoped_tokens.get(registry, &state.store, &plugin, &caller.id, host, &scope).await.map_err(|err| {
            match err {
                ScopedError::Token(err) => token_error(err),
                ScopedError::Store(err) => ApiError::from(err),
                ScopedError::Seal(err) => {
                    tracing::error!(error = %err, "a minted token's record cannot be sealed; the token was revoked");
                    ApiError::Unavailable("cannot record the minted token for its revocation")
                }
            }
        })?;
    Ok(token_response(body))
}

async fn serve_unscoped(state: &AppState, pick: Pick<'_>) -> Result<Response, ApiError> {
    let registry = state.registry()?;
    let generation = registry.generation();
    let route = route_key(pick);
    let body = match state.token_cache.fresh(&route, generation) {
        Some(body) => body,
        None => {
            let served = registry.token(pick).await.map_err(token_error)?;
            let body = serialize(&served)?;
            state.token_cache.store(&route, generation, &served, &body);
            body
        }
    };
    Ok(token_response(body))
}

fn token_response(body: SecretBody) -> Response {
    let mut response = body.0.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A credential: no proxy or client cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn serialize(served: &ServedToken) -> Result<SecretBody, ApiError> {
    let body = TokenBody {
        token: served.token.expose_secret(),
        expires_at: humantime::format_rfc3339_seconds(served.expires_at).to_string(),
    };
    // serde_json's errors name positions and types, never values.
    let bytes =
        serde_json::to_vec(&body).map_err(|err| ApiError::Internal(format!("cannot encode the token: {err}")))?;
    Ok(SecretBody(bytes.into()))
}

/// The registry's reason goes to the log (it never holds a token); the caller gets the
/// contract's fixed message, or, for a refused scope or a configuration to fix, the reason.
pub(crate) fn token_error(err: TokenError) -> ApiError {
    match &err {
        TokenError::NoPluginLoaded => ApiError::NotFound("no GitHub App configured".to_owned()),
        TokenError::NoTokenProvider => ApiError::NotFound("no token provider registered".to_owned()),
        TokenError::NoSuchProvider { .. } => ApiError::NotFound("no such token provider".to_owned()),
        TokenError::NoGitHubProvider { .. } | TokenError::NamedProviderMissing { .. } => {
            ApiError::NotFound(err.to_string())
        }
        TokenError::Ambiguous(_) | TokenError::NoDefaultGitHub { .. } => {
            tracing::error!(error = %err, "GitHub route has no single provider");
            ApiError::Internal(err.to_string())
        }
        TokenError::NotScoped { .. } => ApiError::Unprocessable(err.to_string()),
        TokenError::Call { err: call, .. } => {
            let message = match call {
                CallError::Failed(_) | CallError::Panicked(_) | CallError::BadAnswer(_) => {
                    "token refresh failed".to_owned()
                }
                CallError::Timeout(_) => "token provider timed out".to_owned(),
                CallError::Crashed(_) => "token provider crashed".to_owned(),
                CallError::Quarantined(_) => "token provider quarantined".to_owned(),
                CallError::Refused(why) => format!("scope cannot be granted: {why}"),
            };
            if matches!(call, CallError::Refused(_)) {
                tracing::info!(error = %err, "scope refused");
            } else {
                tracing::error!(error = %err, "{message}");
            }
            super::call_error(call, StatusCode::INTERNAL_SERVER_ERROR, message)
        }
    }
}
