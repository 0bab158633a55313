//! `POST` and `DELETE /admin/workspaces/{id}/tokens`: issue a workspace bearer token (shown
//! once), revoke all of a workspace's tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Admin, ApiError, AppState, WorkspaceId};

#[derive(Serialize)]
struct Issued<'a> {
    token: &'a str,
}

pub async fn issue(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Response, ApiError> {
    let token = state.store.issue(&id).await?;
    tracing::info!(workspace = %id, "workspace token issued");
    let mut response = (StatusCode::CREATED, axum::Json(Issued { token: token.expose() })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn revoke(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
) -> Result<StatusCode, ApiError> {
    let revoked = state.store.revoke(&id).await?;
    tracing::info!(workspace = %id, revoked, "workspace tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
