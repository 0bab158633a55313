//! `POST` and `DELETE /admin/workspaces/{id}/tokens`: issue a workspace bearer token (shown
//! once), optionally limited to a scope; revoke all of a workspace's tokens, and the GitHub
//! tokens minted for that workspace alone.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Admin, rejected};
use super::{ApiError, AppState, WorkspaceId};
use crate::scope::Scope;

/// The optional body of `POST`: `{"scope":{...}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    scope: Option<Scope>,
}

#[derive(Serialize)]
struct Issued<'a> {
    token: &'a str,
    /// The scope as stored (canonical form); `null`: unscoped.
    scope: Option<&'a Scope>,
}

/// `{"workspace_tokens_revoked":N,"github_tokens_revoked":M}`.
#[derive(Serialize)]
pub struct RevokedBody {
    workspace_tokens_revoked: usize,
    github_tokens_revoked: usize,
}

pub async fn issue(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body too large".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::Rejected { status, message }
    })?;
    let IssueBody { scope } = if body.iter().all(u8::is_ascii_whitespace) {
        IssueBody::default()
    } else {
        axum::Json::<IssueBody>::from_bytes(&body).map_err(rejected)?.0
    };
    let scope = scope.map(Scope::validated).transpose().map_err(|err| ApiError::Unprocessable(err.to_string()))?;
    let token = state.store.issue(&id, scope.as_ref()).await?;
    tracing::info!(workspace = %id, scoped = scope.is_some(), "workspace token issued");
    let mut response =
        (StatusCode::CREATED, axum::Json(Issued { token: token.expose(), scope: scope.as_ref() })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn revoke(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
) -> Result<axum::Json<RevokedBody>, ApiError> {
    // The workspace's own tokens first: from here on it cannot fetch another GitHub token.
    let revoked = state.store.revoke(&id).await?;
    let github =
        state.scoped_tokens.revoke_workspace(state.registry.get().map(|r| r.as_ref()), &state.store, &id).await?;
    tracing::info!(workspace = %id, revoked, github_revoked = github.revoked, github_failed = github.failed,
        "workspace tokens revoked");
    Ok(axum::Json(RevokedBody { workspace_tokens_revoked: revoked, github_tokens_revoked: github.revoked }))
}
