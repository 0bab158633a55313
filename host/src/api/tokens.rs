//! `GET /admin/github-installation-token` and `GET /workspaces/{id}/github-installation-token`:
//! the current token of the first token provider, as `{"token","expires_at"}`.
//!
//! A provider's answer is reused for [`TokenCache`]'s time to live (`token_cache_ms` in the
//! config file, [`crate::settings::DEFAULT_TOKEN_CACHE_TTL`] by default, 0 to call the provider
//! every time). Every call crosses to the blocking pool and back, which costs more than the rest
//! of the request together; under load the cache turns thousands of those per second into one,
//! while a provider that rotates or refreshes its token is seen within the TTL. Errors are never
//! cached, and a reload (another plugin set, however it was loaded) or the token's expiry ends
//! the reuse at once.

use std::cell::RefCell;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use thread_local::ThreadLocal;

use super::auth::WorkspaceCaller;
use super::{Admin, ApiError, AppState};
use crate::registry::{CallError, ServedToken, TokenError};

/// The last token served, for the plugin set that served it.
///
/// Two levels: the answer every thread sees, and each thread's own copy of it. A hit reads only
/// the thread's copy, so under load no cache line moves between cores per request (a shared
/// lock or reference count would, on every hit); a thread goes to the shared answer once per
/// answer, and to the provider only when that is stale too.
pub struct TokenCache {
    ttl: Duration,
    shared: RwLock<Option<CachedToken>>,
    per_thread: ThreadLocal<RefCell<Option<CachedToken>>>,
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
struct SecretBody(axum::body::Bytes);

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBody([REDACTED])")
    }
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache { ttl, shared: RwLock::new(None), per_thread: ThreadLocal::new() }
    }

    /// The cached answer if the running set (`generation`) served it, it is younger than the
    /// TTL and its token unexpired.
    fn fresh(&self, generation: u64) -> Option<SecretBody> {
        let now = Instant::now();
        let mine = self.per_thread.get_or_default();
        if let Some(cached) = mine.borrow().as_ref().filter(|c| c.is_fresh(generation, now)) {
            return Some(cached.body.clone());
        }
        let shared = self.shared.read().unwrap_or_else(PoisonError::into_inner);
        let cached = shared.as_ref().filter(|c| c.is_fresh(generation, now))?;
        // The thread's own copy of the bytes: its reference count is then this thread's alone.
        let copy = CachedToken { body: SecretBody(axum::body::Bytes::copy_from_slice(&cached.body.0)), ..*cached };
        drop(shared);
        let body = copy.body.clone();
        *mine.borrow_mut() = Some(copy);
        Some(body)
    }

    /// Keeps an answer of the set of `generation`, read before the provider was asked (an
    /// answer racing a reload is tied to the replaced set, so it is never reused).
    fn store(&self, generation: u64, token: &ServedToken, body: &SecretBody) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let life = token.expires_at.duration_since(SystemTime::now()).unwrap_or_default();
        let entry = CachedToken { generation, valid_until: now + self.ttl.min(life), body: body.clone() };
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = Some(entry);
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

pub async fn for_workspace(_: WorkspaceCaller, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    serve_token(&state).await
}

async fn serve_token(state: &AppState) -> Result<Response, ApiError> {
    let registry = state.registry()?;
    let generation = registry.generation();
    let body = match state.token_cache.fresh(generation) {
        Some(body) => body,
        None => {
            let served = registry.token().await.map_err(token_error)?;
            let body = serialize(&served)?;
            state.token_cache.store(generation, &served, &body);
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
    match &err {
        TokenError::NoPluginLoaded => ApiError::NotFound("no GitHub App configured".to_owned()),
        TokenError::NoTokenProvider => ApiError::NotFound("no token provider registered".to_owned()),
        TokenError::Call { err: call, .. } => {
            let message = match call {
                CallError::Failed(_) | CallError::Panicked(_) | CallError::BadAnswer(_) => "token refresh failed",
                CallError::Timeout(_) => "token provider timed out",
                CallError::Crashed(_) => "token provider crashed",
                CallError::Quarantined(_) => "token provider quarantined",
            };
            tracing::error!(error = %err, "{message}");
            super::call_error(call, StatusCode::INTERNAL_SERVER_ERROR, message.to_owned())
        }
    }
}
