//! `POST /admin/workspaces/{id}/env`: runs the env-mutator chain on a workspace's environment.
//!
//! The answer may hold credentials (the GitHub App plugin writes `GH_TOKEN`): values are never
//! logged, only the variable count and the plugin that failed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Admin, ApiError, ApiJson, AppState, WorkspaceId};

/// The environment so far, variable name to value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvBody {
    env: BTreeMap<String, String>,
}

/// The environment after every env mutator ran.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvAnswer {
    env: BTreeMap<String, String>,
}

/// A mutator that fails answers 422 (it refused this workspace's environment or its own
/// configuration is wrong: retrying the same request will not help); one that hangs 504, one
/// whose worker crashed 502, one quarantined 503 ([`super::call_error`]). Every message names
/// the plugin.
pub async fn provision(
    _: Admin,
    State(state): State<Arc<AppState>>,
    WorkspaceId(id): WorkspaceId,
    ApiJson(body): ApiJson<EnvBody>,
) -> Result<Response, ApiError> {
    let registry = state.registry()?;
    let count_in = body.env.len();
    let env = registry.mutate_env(&id, body.env).await.map_err(|err| {
        tracing::warn!(workspace = %id, plugin = %err.plugin, error = %err, "env mutator chain stopped");
        super::call_error(&err.err, StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
    })?;
    tracing::info!(workspace = %id, vars_in = count_in, vars_out = env.len(), "workspace environment provisioned");
    let mut response = axum::Json(EnvAnswer { env }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
