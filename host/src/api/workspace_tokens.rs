//! `POST` and `DELETE /admin/workspaces/{id}/tokens`: issue a workspace bearer token (shown
//! once), revoke all of a workspace's tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Admin, ApiError, AppState, WorkspaceId};
use crate::store::{StoreError, WorkspaceTokenStore};

#[derive(Serialize)]
struct Issued<'a> {
    token: &'a str,
}

pub async fn issue(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Response, ApiError> {
    let workspace = id.clone();
    let token = on_store(&state, move |store| store.issue(&workspace)).await?;
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
    let workspace = id.clone();
    let revoked = on_store(&state, move |store| store.revoke(&workspace)).await?;
    tracing::info!(workspace = %id, revoked, "workspace tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a write on the workspace token store off the async workers (a write may wait on SQLite's
/// lock), bounded and within the store deadline: past it, 503.
async fn on_store<T: Send + 'static>(
    state: &AppState,
    write: impl FnOnce(&WorkspaceTokenStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(state.store_work.write(write).await?)
}
