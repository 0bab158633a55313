//! `GET /admin/plugins` and `POST /admin/plugins/reload`: the running set and the refused files.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{Admin, ApiError, AppState};
use crate::registry::{PluginSet, RejectedFile};

/// The plugins loaded, in chain order, and the files refused.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginsBody {
    plugins: Vec<PluginEntry>,
    rejected: Vec<RejectedFile>,
    /// GitHub hosts several token providers declare, none named by `github_token_provider`:
    /// their GitHub routes answer 500 until the operator names one.
    github_conflicts: Vec<Conflict>,
}

/// A GitHub host with several candidate providers and no choice.
#[derive(Serialize, utoipa::ToSchema)]
struct Conflict {
    host: String,
    candidates: Vec<String>,
    error: String,
}

/// What a provider's tokens are for.
#[derive(Serialize, utoipa::ToSchema)]
struct AudienceEntry {
    kind: String,
    host: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PluginEntry {
    name: String,
    version: String,
    sdk_version: String,
    file: String,
    sha256: String,
    capabilities: Vec<&'static str>,
    /// What its tokens are for (SDK 1.1), e.g. `{"kind":"github","host":"github.com"}`.
    audiences: Vec<AudienceEntry>,
    /// `process` or `in-process`.
    isolation: &'static str,
    /// `running (pid 42)`, `restarting after SIGSEGV`, `quarantined: crashed 5 times in 60 s
    /// (SIGSEGV)`, or `in-process`.
    status: String,
    /// Who signed it (`null` when no trusted keys are configured).
    signature: Option<SignatureEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SignatureEntry {
    /// The minisign key id, as minisign prints it.
    key_id: String,
    trusted_comment: String,
}

impl From<&PluginSet> for PluginsBody {
    fn from(set: &PluginSet) -> Self {
        PluginsBody {
            plugins: set
                .plugins
                .iter()
                .map(|p| PluginEntry {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    sdk_version: p.sdk_version.clone(),
                    file: p.file.display().to_string(),
                    sha256: p.sha256.clone(),
                    capabilities: p.capabilities(),
                    audiences: p
                        .audiences
                        .iter()
                        .map(|a| AudienceEntry { kind: a.kind.clone(), host: a.host.clone() })
                        .collect(),
                    isolation: p.mode.as_str(),
                    status: p.status(),
                    signature: p.signed_by.as_ref().map(|signer| SignatureEntry {
                        key_id: signer.key_id.to_string(),
                        trusted_comment: signer.trusted_comment.clone(),
                    }),
                })
                .collect(),
            rejected: set.rejected.clone(),
            github_conflicts: set
                .ambiguities
                .iter()
                .map(|a| Conflict { host: a.host.clone(), candidates: a.candidates.clone(), error: a.to_string() })
                .collect(),
        }
    }
}

pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Result<Json<PluginsBody>, ApiError> {
    Ok(Json(PluginsBody::from(&*state.registry()?.snapshot())))
}

/// A directory that cannot be scanned any more answers 500 and keeps the running set.
///
/// The rescan runs in its own task: a request that times out or a caller that goes away leaves
/// it to finish, rather than abandoning a scan whose workers are already starting.
pub async fn reload(_: Admin, State(state): State<Arc<AppState>>) -> Result<Json<PluginsBody>, ApiError> {
    let set = tokio::spawn(async move { state.reload_plugins().await })
        .await
        .map_err(|err| ApiError::Internal(format!("plugin reload task failed: {err}")))??;
    Ok(Json(PluginsBody::from(&*set)))
}
