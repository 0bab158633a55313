//! The admin HTTP API: routes, shared state and the error shape.
//!
//! Every answer is JSON; every error is `{"error": "<message>"}`, including axum's own
//! rejections (bad JSON, oversized body, unknown route, wrong method), which are plain text by
//! default and are rewritten here. A route file per concern: `tokens.rs` (tokens by provider
//! name or GitHub host), `scoped_tokens.rs` (tokens minted for workspace scopes, revoked with the
//! workspace), `env.rs` (provisioning chain), `workspace_tokens.rs` (issue with a scope, and
//! revoke), `plugins.rs` (list and reload), `health.rs` (liveness, readiness, metrics);
//! [`auth`] decides who may call what; [`RequestLayer`] wraps every request (metrics, debug
//! log, the whole-request timeout, connection handling after refusals); [`server`] serves the
//! router over HTTP/1.1 (connection limit, header-read and keep-alive timeouts, shutdown).

pub mod auth;
mod env;
mod health;
pub mod openapi;
mod plugins;
mod request_layer;
pub mod scoped_tokens;
pub mod server;
pub mod tokens;
mod workspace_tokens;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::registry::{CallError, PluginSet, Registry};
use crate::store::{Store, StoreError, StoreWorkError};

pub use auth::{Admin, AdminToken};
pub use request_layer::RequestLayer;

/// What every handler can reach.
pub struct AppState {
    /// Set once the first scan of the plugin directory is done (`/readyz` waits for it).
    pub registry: OnceLock<Arc<Registry>>,
    /// Workspace bearer tokens, on SQLite or PostgreSQL ([`crate::store::Store`]).
    pub store: Store,
    /// `None`: no admin token configured, every admin route answers 401.
    pub admin_token: Option<AdminToken>,
    pub metrics: Option<PrometheusHandle>,
    pub token_cache: tokens::TokenCache,
    /// Tokens minted for workspace scopes, and what DELETE revokes with them.
    pub scoped_tokens: scoped_tokens::ScopedTokens,
}

impl AppState {
    fn registry(&self) -> Result<&Arc<Registry>, ApiError> {
        self.registry.get().ok_or(ApiError::Unavailable("plugins are still loading"))
    }

    /// Rescans the plugin directory (`POST /admin/plugins/reload`, SIGHUP); a failure is logged
    /// and leaves the running set.
    pub async fn reload_plugins(&self) -> Result<Arc<PluginSet>, ApiError> {
        self.registry()?.reload().await.map_err(|err| {
            tracing::error!(error = %err, "plugin reload failed; the running set stays");
            ApiError::Internal(format!("cannot rescan the plugin directory: {err}"))
        })
    }
}

pub use routes::ALL as ROUTES;

/// Route templates: the router's paths (it uses no others) and, because the set is fixed, the
/// `route` label of the request metrics (a `&'static str`, so labelling a request copies
/// nothing). [`openapi`] describes each.
mod routes {
    pub const ADMIN_TOKEN: &str = "/admin/github-installation-token";
    pub const PLUGINS: &str = "/admin/plugins";
    pub const PLUGINS_RELOAD: &str = "/admin/plugins/reload";
    pub const WORKSPACE_ENV: &str = "/admin/workspaces/{id}/env";
    pub const WORKSPACE_TOKENS: &str = "/admin/workspaces/{id}/tokens";
    pub const WORKSPACE_TOKEN: &str = "/workspaces/{id}/github-installation-token";
    pub const ADMIN_NAMED_TOKEN: &str = "/admin/tokens/{provider}";
    pub const WORKSPACE_NAMED_TOKEN: &str = "/workspaces/{id}/tokens/{provider}";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    pub const OPENAPI: &str = "/openapi.json";

    pub const ALL: &[&str] = &[
        ADMIN_TOKEN,
        PLUGINS,
        PLUGINS_RELOAD,
        WORKSPACE_ENV,
        WORKSPACE_TOKENS,
        WORKSPACE_TOKEN,
        ADMIN_NAMED_TOKEN,
        WORKSPACE_NAMED_TOKEN,
        HEALTHZ,
        READYZ,
        METRICS,
        OPENAPI,
    ];
}

/// The router with every route of the admin API. A request still running after
/// `request_timeout` is answered 503 `request timed out`.
pub fn router(state: Arc<AppState>, max_body_bytes: usize, request_timeout: Duration) -> Router {
    use routes::*;
    // Only the route that reads a body ([`ApiJson`]) gets the limit: the layer costs every
    // request it wraps, and a route that never reads its body cannot be flooded through it.
    let body_limit = axum::extract::DefaultBodyLimit::max(max_body_bytes);
    Router::new()
        .route(ADMIN_TOKEN, get(tokens::for_admin))
        .route(PLUGINS, get(plugins::list))
        .route(PLUGINS_RELOAD, post(plugins::reload))
        .route(WORKSPACE_ENV, post(env::provision).layer(body_limit))
        .route(WORKSPACE_TOKENS, post(workspace_tokens::issue).delete(workspace_tokens::revoke).layer(body_limit))
        .route(WORKSPACE_TOKEN, get(tokens::for_workspace))
        .route(ADMIN_NAMED_TOKEN, get(tokens::named_for_admin))
        .route(WORKSPACE_NAMED_TOKEN, get(tokens::named_for_workspace))
        .route(HEALTHZ, get(health::live))
        .route(READYZ, get(health::ready))
        .route(METRICS, get(health::metrics))
        .route(OPENAPI, get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestLayer::new(routes::ALL, request_timeout))
        .with_state(state)
}

async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi::json()).into_response()
}

/// 404, or 401 behind `/admin` and `/workspaces/{id}` for a caller without the token
/// ([`auth::authorize_path`]).
async fn not_found(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> ApiError {
    match auth::authorize_path(&state, &headers, uri.path()).await {
        Ok(()) => ApiError::NotFound("not found".to_owned()),
        Err(refused) => refused,
    }
}

/// 405, or 401 as [`not_found`].
async fn method_not_allowed(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> ApiError {
    match auth::authorize_path(&state, &headers, uri.path()).await {
        Ok(()) => ApiError::MethodNotAllowed,
        Err(refused) => refused,
    }
}

/// An error answer. The message is what the caller sees; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An axum rejection (bad JSON, body too large, ...), with its own status.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("{0}")]
    GatewayTimeout(String),
    /// The whole request took longer than the request timeout (see [`RequestLayer`]).
    #[error("request timed out")]
    RequestTimeout,
    /// A call whose answer ended in a plugin failure, with the status [`call_error`] chose.
    #[error("{message}")]
    Plugin { status: StatusCode, message: String },
    #[error("workspace token store unavailable")]
    Store(#[source] StoreError),
    /// Store work past its deadline: `workspace token store did not answer within 10s`.
    #[error("{0}")]
    StoreTimeout(StoreWorkError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) | ApiError::Store(_) | ApiError::StoreTimeout(_) | ApiError::RequestTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Plugin { status, .. } => *status,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        // The caller gets a generic message; the operator gets the database (a path, or a URL without
        // its password) and the reason.
        tracing::error!(error = %err, "workspace token store failed");
        ApiError::Store(err)
    }
}

impl From<StoreWorkError> for ApiError {
    fn from(err: StoreWorkError) -> Self {
        match err {
            StoreWorkError::Store(err) => err.into(),
            StoreWorkError::Timeout(_) => {
                tracing::error!(error = %err, "workspace token store work past its deadline");
                ApiError::StoreTimeout(err)
            }
            StoreWorkError::Task(message) => ApiError::Internal(format!("token store task failed: {message}")),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(ErrorBody { error: &self.to_string() })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The one place a failed plugin call becomes a status: the plugin's own error (or a caught
/// panic) is `own_error` (the route decides what a refusal means), a timeout 504, a worker that
/// crashed 502, a quarantined plugin 503, a scope the provider refuses 422. `message` is what the caller reads.
pub fn call_error(err: &CallError, own_error: StatusCode, message: String) -> ApiError {
    let status = match err {
        CallError::Failed(_) | CallError::Panicked(_) | CallError::BadAnswer(_) => own_error,
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::Crashed(_) => StatusCode::BAD_GATEWAY,
        CallError::Quarantined(_) => StatusCode::SERVICE_UNAVAILABLE,
        // The request asked for what the provider cannot grant.
        CallError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::Plugin { status, message }
}

/// A JSON body whose rejections answer in the `{"error"}` shape, with axum's status
/// (400 syntax, 413 too large, 422 wrong shape).
///
/// The body is parsed as JSON whatever its `Content-Type` (the contract says every body is
/// JSON): `curl -d '{"env":{}}'` sends `application/x-www-form-urlencoded`, and refusing it
/// with 415 would only confuse. Browsers' form-based cross-site requests cannot carry the
/// bearer token, so the check would not protect anything either.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request body too large".to_owned()
            } else {
                rejection.body_text()
            };
            ApiError::Rejected { status, message }
        })?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

pub(crate) fn rejected(rejection: JsonRejection) -> ApiError {
    ApiError::Rejected { status: rejection.status(), message: rejection.body_text() }
}

/// A workspace id from the path, checked: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub struct WorkspaceId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WorkspaceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A map, not a `String`: routes under a workspace may have more parameters (`{provider}`).
        let axum::extract::Path(mut params) =
            axum::extract::Path::<std::collections::BTreeMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let id = params.remove("id").ok_or_else(|| ApiError::BadRequest("no workspace id in the path".to_owned()))?;
        validate_workspace_id(&id).map_err(|err| ApiError::BadRequest(err.to_string()))?;
        Ok(WorkspaceId(id))
    }
}

/// A workspace id the API and the CLI refuse; the message says what a valid one looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid workspace id: expected 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit")]
pub struct InvalidWorkspaceId;

/// Checks a workspace id.
pub fn validate_workspace_id(id: &str) -> Result<(), InvalidWorkspaceId> {
    let mut chars = id.chars();
    let valid = id.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(()) } else { Err(InvalidWorkspaceId) }
}

#[cfg(test)]
mod tests {
    use super::validate_workspace_id;

    #[test]
    fn workspace_ids() {
        for ok in ["a", "ws-1", "A.b_c-9", &"x".repeat(128)] {
            assert!(validate_workspace_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "é", &"x".repeat(129), "a%2Fb"] {
            assert!(validate_workspace_id(bad).is_err(), "{bad}");
        }
    }
}
