//! The OpenAPI 3.1 description of the admin API, served at `GET /openapi.json`.
//!
//! Each route's answers are declared once, here, beside the route table ([`super::routes`]);
//! request and answer bodies are the schemas of the Rust types the handlers (de)serialise.
//! `host/tests/api/openapi.rs` fails when the router serves a method and path this document
//! lacks, or the document lists one the router does not serve.

use std::collections::BTreeMap;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `{"error": "<message>"}`: every error answer, axum's own rejections included.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorAnswer {
    /// What went wrong, for a person; never a secret.
    error: String,
}

/// A live token.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenAnswer {
    /// The credential itself (for GitHub, an installation token). Never logged by plughost.
    token: String,
    /// When it stops working, RFC 3339 UTC.
    #[schema(format = DateTime)]
    expires_at: String,
}

/// What a workspace's tokens may reach, set when its plughost token is issued.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Scope {
    /// Repositories by full name, `owner/name`.
    repositories: Option<Vec<String>>,
    /// Repositories by numeric id.
    repository_ids: Option<Vec<u64>>,
    /// Permission name to level: `read`, `write` or `admin`, as GitHub names them.
    permissions: Option<BTreeMap<String, String>>,
}

/// Optional body of `POST /admin/workspaces/{id}/tokens`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IssueRequest {
    scope: Option<Scope>,
}

/// A workspace token, shown once (only a hash is stored).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IssueAnswer {
    /// The workspace's bearer token for `/workspaces/{id}/...`.
    token: String,
    scope: Option<Scope>,
}

/// What `DELETE /admin/workspaces/{id}/tokens` revoked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeAnswer {
    /// The workspace's plughost tokens that stopped working.
    workspace_tokens_revoked: u64,
    /// Tokens minted for this workspace alone, revoked at their provider (GitHub).
    github_tokens_revoked: u64,
}

/// `{"status": "ok"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HealthAnswer {
    status: String,
}

/// Readiness, and what it waits for.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReadyAnswer {
    /// `ready` or `not ready`.
    status: String,
    /// The first scan of the plugin directory is done.
    plugins_scanned: bool,
    /// The workspace token store answered.
    state_store_open: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "plughost admin API",
        description = "Token providers and the env-mutator chain of the plugins a plughost host loaded, \
                       and the workspace tokens that open them. Errors are {\"error\": \"<message>\"}; \
                       a missing, malformed or wrong bearer is 401 {\"error\":\"unauthorized\"} whatever the reason."
    ),
    paths(
        admin_token, workspace_token, admin_provider_token, workspace_provider_token, plugins, plugins_reload,
        workspace_env, workspace_tokens_issue, workspace_tokens_revoke, openapi_json, healthz, readyz, metrics
    ),
    components(schemas(
        ErrorAnswer, TokenAnswer, Scope, IssueRequest, IssueAnswer, RevokeAnswer, HealthAnswer, ReadyAnswer,
        super::env::EnvBody, super::env::EnvAnswer, super::plugins::PluginsBody
    )),
    modifiers(&BearerSchemes),
    tags(
        (name = "tokens", description = "Live credentials from token providers"),
        (name = "workspaces", description = "Workspace provisioning and workspace tokens"),
        (name = "plugins", description = "What the host loaded and refused"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
pub struct ApiDoc;

/// The two bearer schemes: the admin token (`PLUGHOST_ADMIN_TOKEN` / `admin_token_file`) and a
/// workspace's own token (`POST /admin/workspaces/{id}/tokens`), which opens only its
/// `/workspaces/{id}/...`.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("admin", "The host's admin token. `/admin/*` accepts nothing else."),
            ("workspace", "A workspace token; opens only `/workspaces/{id}/...` of its own workspace."),
        ] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// The document, rendered once.
pub fn json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises"))
}

// The routes. Each function only carries its route's description; the handlers are in the
// route files.

/// The GitHub installation token, unscoped.
///
/// Served by the token provider declared for GitHub at `host` (default: the one named in host
/// settings, else the only one declared for github.com), never by load order.
#[utoipa::path(get, path = "/admin/github-installation-token", tag = "tokens",
    params(("host" = Option<String>, Query, description = "The GitHub host the token is for, as git names it")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "A live token", body = TokenAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 404, description = "`no GitHub App configured` or `no token provider registered`", body = ErrorAnswer),
        (status = 500, description = "`token refresh failed`: the provider failed or answered an unusable token", body = ErrorAnswer),
        (status = 502, description = "`token provider crashed`", body = ErrorAnswer),
        (status = 503, description = "`token provider quarantined`, plugins still loading, or `request timed out`", body = ErrorAnswer),
        (status = 504, description = "`token provider timed out`", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn admin_token() {}

/// The GitHub installation token for a workspace, limited to the workspace's scope when it has one.
#[utoipa::path(get, path = "/workspaces/{id}/github-installation-token", tag = "tokens",
    params(
        ("id" = String, Path, description = "Workspace id"),
        ("host" = Option<String>, Query, description = "The GitHub host the token is for, as git names it"),
    ),
    security(("workspace" = []), ("admin" = [])),
    responses(
        (status = 200, description = "A live token", body = TokenAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 404, description = "No provider for GitHub", body = ErrorAnswer),
        (status = 422, description = "The workspace's scope names a repository or permission the provider cannot grant", body = ErrorAnswer),
        (status = 500, description = "`token refresh failed`", body = ErrorAnswer),
        (status = 502, description = "`token provider crashed`", body = ErrorAnswer),
        (status = 503, description = "`token provider quarantined`, or the workspace token store did not answer (nor recorded a minted token, which is then revoked)", body = ErrorAnswer),
        (status = 504, description = "`token provider timed out`", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn workspace_token() {}

/// A token from the named token provider (plugin name), unscoped.
#[utoipa::path(get, path = "/admin/tokens/{provider}", tag = "tokens",
    params(("provider" = String, Path, description = "The token provider's plugin name")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "A live token", body = TokenAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 404, description = "`no such token provider`", body = ErrorAnswer),
        (status = 500, description = "`token refresh failed`", body = ErrorAnswer),
        (status = 502, description = "`token provider crashed`", body = ErrorAnswer),
        (status = 503, description = "`token provider quarantined`", body = ErrorAnswer),
        (status = 504, description = "`token provider timed out`", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn admin_provider_token() {}

/// A token from the named token provider for a workspace, within the workspace's scope.
#[utoipa::path(get, path = "/workspaces/{id}/tokens/{provider}", tag = "tokens",
    params(
        ("id" = String, Path, description = "Workspace id"),
        ("provider" = String, Path, description = "The token provider's plugin name"),
    ),
    security(("workspace" = []), ("admin" = [])),
    responses(
        (status = 200, description = "A live token", body = TokenAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 404, description = "`no such token provider`", body = ErrorAnswer),
        (status = 422, description = "The scope cannot be granted (named), or the provider cannot limit tokens to a scope", body = ErrorAnswer),
        (status = 500, description = "`token refresh failed`", body = ErrorAnswer),
        (status = 502, description = "`token provider crashed`", body = ErrorAnswer),
        (status = 503, description = "`token provider quarantined`, or the store did not answer (nor recorded a minted token, which is then revoked)", body = ErrorAnswer),
        (status = 504, description = "`token provider timed out`", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn workspace_provider_token() {}

/// The plugins loaded, in chain order, and the files refused with why.
#[utoipa::path(get, path = "/admin/plugins", tag = "plugins", security(("admin" = [])),
    responses(
        (status = 200, description = "Loaded and refused plugins", body = super::plugins::PluginsBody),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 503, description = "Plugins still loading", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn plugins() {}

/// Rescans the plugin directory (as SIGHUP does); lifts quarantines.
#[utoipa::path(post, path = "/admin/plugins/reload", tag = "plugins", security(("admin" = [])),
    responses(
        (status = 200, description = "The set after the rescan", body = super::plugins::PluginsBody),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 500, description = "The rescan failed; the running set stays", body = ErrorAnswer),
        (status = 503, description = "Plugins still loading", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn plugins_reload() {}

/// Runs every env mutator, in load order, on a workspace's environment before it boots.
#[utoipa::path(post, path = "/admin/workspaces/{id}/env", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    security(("admin" = [])),
    request_body = super::env::EnvBody,
    responses(
        (status = 200, description = "The environment after every mutator", body = super::env::EnvAnswer),
        (status = 400, description = "Malformed body", body = ErrorAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 413, description = "Body over `max_body_bytes`", body = ErrorAnswer),
        (status = 422, description = "A mutator refused; the message names it", body = ErrorAnswer),
        (status = 502, description = "A mutator crashed", body = ErrorAnswer),
        (status = 503, description = "A mutator is quarantined", body = ErrorAnswer),
        (status = 504, description = "A mutator timed out", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn workspace_env() {}

/// Issues a workspace token, optionally with a scope; the token is shown once.
#[utoipa::path(post, path = "/admin/workspaces/{id}/tokens", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    security(("admin" = [])),
    request_body(content = Option<IssueRequest>, description = "Optional: the scope of the workspace's tokens"),
    responses(
        (status = 201, description = "The new token (not stored in the clear)", body = IssueAnswer),
        (status = 400, description = "Malformed body", body = ErrorAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 422, description = "A scope that cannot be granted, named", body = ErrorAnswer),
        (status = 503, description = "The workspace token store did not answer", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn workspace_tokens_issue() {}

/// Revokes every token of the workspace at once, and the GitHub tokens minted for it alone.
#[utoipa::path(delete, path = "/admin/workspaces/{id}/tokens", tag = "workspaces",
    params(("id" = String, Path, description = "Workspace id")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "What was revoked", body = RevokeAnswer),
        (status = 401, description = "Unauthorized", body = ErrorAnswer),
        (status = 503, description = "The workspace token store did not answer", body = ErrorAnswer),
    ))]
#[allow(dead_code)]
fn workspace_tokens_revoke() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of every route", content_type = "application/json")))]
#[allow(dead_code)]
fn openapi_json() {}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthAnswer)))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness: plugins scanned and the workspace token store answering.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadyAnswer),
        (status = 503, description = "Not ready, and what it waits for", body = ReadyAnswer),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}
