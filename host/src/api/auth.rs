//! Who may call what.
//!
//! `/admin/*` takes the admin bearer token only. `/workspaces/{id}/...` takes that workspace's
//! token, or the admin token. Every refusal is the same 401 `{"error":"unauthorized"}` whatever
//! the reason (missing, malformed, wrong, revoked, another workspace's, a workspace token on an
//! admin route): the reason goes to the debug log, never to the caller, and never the token.
//! Authentication is checked before anything else about the request (the workspace id, the
//! route, the method, the body): an unauthenticated caller learns nothing but 401.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::{ApiError, AppState, WorkspaceId, validate_workspace_id};
use crate::scope::Scope;
use crate::store::token_hash;

/// The admin bearer token. `Debug` never shows it.
pub struct AdminToken {
    /// Kept (zeroised on drop by secrecy) in a redacting type; it keys the minted-token records.
    secret: SecretString,
    /// Compared instead of the token itself: equal lengths, so the comparison's time says nothing.
    sha256: [u8; 32],
}

impl AdminToken {
    pub fn new(secret: SecretString) -> AdminToken {
        let sha256 = token_hash(secret.expose_secret());
        AdminToken { secret, sha256 }
    }

    /// The sealer of minted-token records: every host sharing this admin token opens them.
    pub(crate) fn mint_sealer(&self) -> crate::store::minted::MintSealer {
        crate::store::minted::MintSealer::from_admin_token(&self.secret)
    }

    pub(crate) fn matches(&self, presented: &str) -> bool {
        bool::from(self.sha256.ct_eq(&token_hash(presented)))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([REDACTED])")
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` if missing or malformed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(char::is_whitespace))
        .then_some(token)
}

fn is_admin(state: &AppState, token: &str) -> bool {
    state.admin_token.as_ref().is_some_and(|admin| admin.matches(token))
}

/// Proof that the caller presented the admin token: every `/admin/*` handler takes it as its
/// first argument, so authentication runs before the path and body are looked at.
///
/// An extractor rather than a middleware: a `from_fn` layer costs a boxed service clone and a
/// boxed future per request, a visible share of the cached token route's time.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Admin, ApiError> {
        let path = parts.uri.path();
        match bearer(&parts.headers) {
            None => tracing::debug!(path, "refused: no well-formed bearer token"),
            Some(_) if state.admin_token.is_none() => tracing::debug!(path, "refused: no admin token is configured"),
            Some(token) if is_admin(state, token) => return Ok(Admin),
            Some(_) => tracing::debug!(path, "refused: not the admin token"),
        }
        Err(ApiError::Unauthorized)
    }
}

/// Proof that the caller may act for the workspace named in the path (`/workspaces/{id}/...`):
/// the admin token, or a live token of that workspace. The checked id is inside.
///
/// Authentication comes first: a caller presenting neither gets the same 401 whatever is wrong
/// with the path; only an authenticated caller learns that an id is invalid (400).
pub struct WorkspaceCaller {
    pub id: String,
    /// The scope the workspace's GitHub tokens are limited to: the presented token's, or, for
    /// the admin token, that of the workspace's newest live token. `None`: unscoped.
    pub scope: Option<Scope>,
}

impl FromRequestParts<Arc<AppState>> for WorkspaceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<WorkspaceCaller, ApiError> {
        let id = WorkspaceId::from_request_parts(parts, state).await;
        let Some(token) = bearer(&parts.headers) else {
            tracing::debug!(path = parts.uri.path(), "refused: no well-formed bearer token");
            return Err(ApiError::Unauthorized);
        };
        if is_admin(state, token) {
            let WorkspaceId(id) = id?;
            let scope = state.store.newest_scope(&id).await?.flatten();
            return Ok(WorkspaceCaller { id, scope });
        }
        let Ok(WorkspaceId(id)) = id else {
            tracing::debug!(path = parts.uri.path(), "refused: not the admin token, and not a valid workspace id");
            return Err(ApiError::Unauthorized);
        };
        let scope = verify_workspace_token(state, &id, token).await?;
        Ok(WorkspaceCaller { id, scope })
    }
}

/// Admits the admin token for `/admin` and below, the admin token or a live token of the
/// workspace for `/workspaces/{id}` and below, and anyone elsewhere. For the answers that no
/// route gives (404, 405): behind a token, only a caller who presented it learns what exists.
pub async fn authorize_path(state: &AppState, headers: &HeaderMap, path: &str) -> Result<(), ApiError> {
    let under = |prefix: &str| path.strip_prefix(prefix).filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let workspace = match (under("/admin"), under("/workspaces")) {
        (Some(_), _) => None,
        (None, Some(rest)) => Some(rest.trim_start_matches('/').split('/').next().unwrap_or("")),
        (None, None) => return Ok(()),
    };
    let Some(token) = bearer(headers) else {
        tracing::debug!(path, "refused: no well-formed bearer token");
        return Err(ApiError::Unauthorized);
    };
    if is_admin(state, token) {
        return Ok(());
    }
    match workspace {
        Some(id) if validate_workspace_id(id).is_ok() => verify_workspace_token(state, id, token).await.map(drop),
        _ => {
            tracing::debug!(path, "refused: not the admin token");
            Err(ApiError::Unauthorized)
        }
    }
}

/// Admits a live token of `workspace_id`; returns its scope.
async fn verify_workspace_token(state: &AppState, workspace_id: &str, token: &str) -> Result<Option<Scope>, ApiError> {
    match state.store.verify(workspace_id, token).await? {
        None => {
            tracing::debug!(workspace = workspace_id, "refused: not a live token of this workspace");
            Err(ApiError::Unauthorized)
        }
        Some(scope) => Ok(scope),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
        assert_eq!(bearer(&with("Bearer a b")), None);
        assert_eq!(bearer(&with("Bearerabc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn admin_token_debug_is_redacted() {
        let admin = AdminToken::new(SecretString::from("s3cret-admin".to_owned()));
        assert!(!format!("{admin:?}").contains("s3cret"));
        assert!(admin.matches("s3cret-admin"));
        assert!(!admin.matches("s3cret-admin2"));
    }
}
