//! `GET /admin/github-installation-token` and `GET /workspaces/{id}/github-installation-token`:
//! the current token of the first token provider, as `{"token","expires_at"}`.
//!
//! A provider's answer is reused for [`TokenCache`]'s time to live (1 s by default,
//! `token_cache_ms` in the config file, 0 to call the provider every time). Every call crosses
//! to the blocking pool and back, which costs more than the rest of the request together; under
//! load the cache turns thousands of those per second into one, while a provider that rotates
//! or refreshes its token is seen within the TTL. Errors are never cached, and a reload
//! (another plugin set, however it was loaded) or the token's expiry ends the reuse at once.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::{Admin, ApiError, AppState, WorkspaceId, auth};
use crate::registry::{PluginSet, ServedToken, TokenError};

/// Default `token_cache_ms`.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// The last token served, for the plugin set that served it.
pub struct TokenCache {
    ttl: Duration,
    entry: RwLock<Option<CachedToken>>,
}

struct CachedToken {
    /// Weak: a cached answer must not keep a replaced plugin set alive.
    set: Weak<PluginSet>,
    expires_at: SystemTime,
    fetched_at: Instant,
    /// The serialised answer, so a hit costs a reference count instead of formatting.
    body: SecretBody,
}

/// A response body holding a token. `Debug` never shows it.
#[derive(Clone)]
struct SecretBody(axum::body::Bytes);

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBody([REDACTED])")
    }
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache { ttl, entry: RwLock::new(None) }
    }

    /// The cached answer if `set` (the running set) served it, it is younger than the TTL and
    /// its token unexpired.
    fn fresh(&self, set: &Arc<PluginSet>) -> Option<SecretBody> {
        let entry = self.entry.read().unwrap_or_else(PoisonError::into_inner);
        let cached = entry.as_ref()?;
        // The weak reference keeps the allocation, so a new set cannot reuse its address.
        let fresh = std::ptr::eq(cached.set.as_ptr(), Arc::as_ptr(set))
            && cached.fetched_at.elapsed() < self.ttl
            && cached.expires_at > SystemTime::now();
        fresh.then(|| cached.body.clone())
    }

    /// Keeps an answer of `set`, the set that was running when the provider was asked (an
    /// answer racing a reload is tied to the replaced set, so it is never reused).
    fn store(&self, set: &Arc<PluginSet>, token: &ServedToken, body: &SecretBody) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = CachedToken {
            set: Arc::downgrade(set),
            expires_at: token.expires_at,
            fetched_at: Instant::now(),
            body: body.clone(),
        };
        *self.entry.write().unwrap_or_else(PoisonError::into_inner) = Some(entry);
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

pub async fn for_admin(_: Admin, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    serve_token(&state).await
}

pub async fn for_workspace(
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::authorize_workspace(&state, &headers, &id).await?;
    serve_token(&state).await
}

async fn serve_token(state: &AppState) -> Result<Response, ApiError> {
    let registry = state.registry()?;
    let set = registry.snapshot();
    let body = match state.token_cache.fresh(&set) {
        Some(body) => body,
        None => {
            let served = registry.token().await.map_err(token_error)?;
            let body = serialize(&served)?;
            state.token_cache.store(&set, &served, &body);
            body
        }
    };
    let mut response = body.0.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A credential: no proxy or client cache may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn serialize(served: &ServedToken) -> Result<SecretBody, ApiError> {
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
/// contract's fixed message.
fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::NoPluginLoaded => ApiError::NotFound("no GitHub App configured".to_owned()),
        TokenError::NoTokenProvider => ApiError::NotFound("no token provider registered".to_owned()),
        TokenError::Failed { .. } => {
            tracing::error!(error = %err, "token refresh failed");
            ApiError::Internal("token refresh failed".to_owned())
        }
        TokenError::Timeout { .. } => {
            tracing::error!(error = %err, "token provider timed out");
            ApiError::GatewayTimeout("token provider timed out".to_owned())
        }
    }
}
