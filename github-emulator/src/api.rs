//! The GitHub routes, answered at `/...` and under the GHES prefix `/api/v3/...`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth;
use crate::config::{InstallationConfig, RepoConfig};
use crate::state::{App, Shared, TokenRecord};

pub(crate) const GHES_PREFIX: &str = "/api/v3";

/// Real new tokens may be scoped to at most this many repositories.
const MAX_REPOSITORIES: usize = 500;

const TOKEN_DOCS: &str = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
const REST_DOCS: &str = "https://docs.github.com/rest";

/// GitHub's error body: `{"message": ..., "documentation_url": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    documentation_url: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: &str, documentation_url: &'static str) -> Self {
        ApiError { status, message: message.to_owned(), documentation_url, headers: Vec::new() }
    }

    /// Adds a response header (rate-limit headers, `Retry-After`).
    pub fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found", REST_DOCS)
    }

    fn unprocessable(message: &str) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message, TOKEN_DOCS)
    }

    /// The answer to an injected status fault.
    pub fn injected(status: StatusCode) -> Self {
        let message = match status.as_u16() {
            401 => "Bad credentials",
            403 => "Resource not accessible by integration",
            404 => "Not Found",
            422 => "Validation Failed",
            _ => status.canonical_reason().unwrap_or("Server Error"),
        };
        ApiError::new(status, message, REST_DOCS)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "message": self.message, "documentation_url": self.documentation_url });
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

type AppState = Arc<Shared>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/app", get(get_app))
        .route("/app/installations", get(list_installations))
        .route("/app/installations/{id}", get(get_installation))
        .route("/app/installations/{id}/access_tokens", post(create_access_token))
        .route("/orgs/{org}/installation", get(org_installation))
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
        .route("/users/{user}/installation", get(user_installation))
        .route("/installation/token", delete(revoke_token))
        .route("/installation/repositories", get(installation_repositories))
        .route("/repos/{owner}/{repo}", get(get_repository))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(get_contents).put(put_contents))
}

pub(crate) async fn fallback() -> ApiError {
    ApiError::not_found()
}

/// The API root as the client addressed it, so URLs in bodies lead back here (GHES included).
fn api_base(shared: &Shared, headers: &HeaderMap, uri: &OriginalUri) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let prefix = if uri.path().starts_with(GHES_PREFIX) { GHES_PREFIX } else { "" };
    format!("{}://{host}{prefix}", shared.scheme)
}

fn installation_json(shared: &Shared, inst: &InstallationConfig, base: &str) -> Value {
    let app = shared.apps.iter().find(|a| a.config.id == inst.app_id);
    json!({
        "id": inst.id,
        "client_id": app.map(|a| a.config.client_id.as_str()),
        "account": {
            "login": inst.account,
            "id": inst.account_id,
            "type": inst.account_type.as_str(),
        },
        "repository_selection": inst.repository_selection(),
        "access_tokens_url": format!("{base}/app/installations/{}/access_tokens", inst.id),
        "repositories_url": format!("{base}/installation/repositories"),
        "html_url": format!("https://github.com/organizations/{}/settings/installations/{}", inst.account, inst.id),
        "app_id": inst.app_id,
        "app_slug": app.map(|a| a.config.slug.as_str()),
        "target_id": inst.account_id,
        "target_type": inst.account_type.as_str(),
        "permissions": inst.permissions,
        "events": [],
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "single_file_name": null,
        "suspended_at": null,
    })
}

fn installations_of<'a>(shared: &'a Shared, app: &'a App) -> impl Iterator<Item = &'a InstallationConfig> {
    shared.installations.iter().filter(move |i| i.app_id == app.config.id)
}

async fn get_app(State(shared): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let app = auth::app_from_jwt(&shared, &headers)?;
    Ok(Json(json!({
        "id": app.config.id,
        "client_id": app.config.client_id,
        "slug": app.config.slug,
        "name": format!("Emulated App {}", app.config.id),
        "installations_count": installations_of(&shared, app).count(),
    })))
}

async fn list_installations(
    State(shared): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let app = auth::app_from_jwt(&shared, &headers)?;
    let base = api_base(&shared, &headers, &uri);
    let list: Vec<Value> = installations_of(&shared, app).map(|i| installation_json(&shared, i, &base)).collect();
    Ok(Json(Value::Array(list)))
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// The installation `id` of `app`; another App's installation is as unknown as a missing one.
fn own_installation<'a>(shared: &'a Shared, app: &App, id: &str) -> Result<&'a InstallationConfig, ApiError> {
    let id = parse_id(id)?;
    shared.installation(id).filter(|i| i.app_id == app.config.id).ok_or_else(ApiError::not_found)
}

async fn get_installation(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let app = auth::app_from_jwt(&shared, &headers)?;
    let inst = own_installation(&shared, app, &id)?;
    Ok(Json(installation_json(&shared, inst, &api_base(&shared, &headers, &uri))))
}

async fn org_installation(
    State(shared): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Result<Json<Value>, ApiError> {
    account_installation(&shared, &org, &headers, &uri)
}

async fn user_installation(
    State(shared): State<AppState>,
    Path(user): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Result<Json<Value>, ApiError> {
    account_installation(&shared, &user, &headers, &uri)
}

fn account_installation(
    shared: &Shared,
    account: &str,
    headers: &HeaderMap,
    uri: &OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let app = auth::app_from_jwt(shared, headers)?;
    let inst = installations_of(shared, app)
        .find(|i| i.account.eq_ignore_ascii_case(account))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(shared, inst, &api_base(shared, headers, uri))))
}

async fn repo_installation(
    State(shared): State<AppState>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let app = auth::app_from_jwt(&shared, &headers)?;
    let inst = installations_of(&shared, app)
        .find(|i| {
            i.account.eq_ignore_ascii_case(&owner) && i.repositories.iter().any(|r| r.name.eq_ignore_ascii_case(&repo))
        })
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(&shared, inst, &api_base(&shared, &headers, &uri))))
}

#[derive(Debug, Default, Deserialize)]
struct AccessTokenRequest {
    repositories: Option<Vec<String>>,
    repository_ids: Option<Vec<u64>>,
    permissions: Option<BTreeMap<String, String>>,
}

fn level(l: &str) -> Option<u8> {
    match l {
        "read" => Some(1),
        "write" => Some(2),
        "admin" => Some(3),
        _ => None,
    }
}

async fn create_access_token(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let app = auth::app_from_jwt(&shared, &headers)?;
    let inst = own_installation(&shared, app, &id)?;
    let request: AccessTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AccessTokenRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON", TOKEN_DOCS))?
    };

    let by_name = request.repositories.unwrap_or_default();
    let by_id = request.repository_ids.unwrap_or_default();
    if by_name.len() + by_id.len() > MAX_REPOSITORIES {
        return Err(ApiError::unprocessable(&format!(
            "Too many repositories: at most {MAX_REPOSITORIES} may be requested"
        )));
    }
    let mut selected: Vec<String> = Vec::new();
    let unknown =
        "There is at least one repository that does not exist or is not accessible to the parent installation.";
    for name in &by_name {
        // GitHub wants bare names; `owner/name` of the installation's own account is accepted too.
        let bare = match name.split_once('/') {
            Some((owner, repo)) if owner.eq_ignore_ascii_case(&inst.account) => repo,
            Some(_) => return Err(ApiError::unprocessable(unknown)),
            None => name.as_str(),
        };
        let repo = inst
            .repositories
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(bare))
            .ok_or_else(|| ApiError::unprocessable(unknown))?;
        selected.push(repo.name.clone());
    }
    for rid in &by_id {
        let repo = inst.repositories.iter().find(|r| r.id == *rid).ok_or_else(|| ApiError::unprocessable(unknown))?;
        selected.push(repo.name.clone());
    }
    selected.sort();
    selected.dedup();

    let permissions = match request.permissions {
        None => inst.permissions.clone(),
        Some(requested) => {
            for (name, wanted) in &requested {
                let granted = inst.permissions.get(name).and_then(|g| level(g));
                match (level(wanted), granted) {
                    (Some(w), Some(g)) if w <= g => {}
                    _ => {
                        return Err(ApiError::unprocessable(
                            "The permissions requested are not granted to this installation.",
                        ));
                    }
                }
            }
            requested
        }
    };

    let scoped = !selected.is_empty();
    let (token, expires_at) = shared.mint(inst.id, permissions.clone(), scoped.then(|| selected.clone()));
    let mut body = json!({
        "token": token,
        "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
        "permissions": permissions,
        "repository_selection": if scoped { "selected" } else { inst.repository_selection() },
    });
    if scoped {
        body["repositories"] = selected
            .iter()
            .filter_map(|name| inst.repositories.iter().find(|r| &r.name == name))
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.name,
                    "full_name": format!("{}/{}", inst.account, r.name),
                })
            })
            .collect();
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_token(State(shared): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let (token, _) = auth::installation_token(&shared, &headers)?;
    if shared.revoke(&token) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "Bad credentials", REST_DOCS))
    }
}

async fn installation_repositories(
    State(shared): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, record) = auth::installation_token(&shared, &headers)?;
    let inst = shared.installation(record.installation_id).ok_or_else(ApiError::not_found)?;
    let repos: Vec<Value> = inst
        .repositories
        .iter()
        .filter(|r| record.repositories.as_ref().is_none_or(|sel| sel.contains(&r.name)))
        .map(|r| json!({ "id": r.id, "name": r.name, "full_name": format!("{}/{}", inst.account, r.name) }))
        .collect();
    Ok(Json(json!({
        "total_count": repos.len(),
        "repository_selection": if record.repositories.is_some() { "selected" } else { inst.repository_selection() },
        "repositories": repos,
    })))
}

const CONTENTS_DOCS: &str = "https://docs.github.com/rest/repos/contents";

/// The repository `owner/repo` as `record`'s token sees it: GitHub answers 404 for one outside
/// the token's installation or its selected repositories, and for a token with no permission
/// at all (every repository permission includes the mandatory metadata read).
fn visible_repo<'a>(
    shared: &'a Shared,
    record: &TokenRecord,
    owner: &str,
    repo: &str,
) -> Result<(&'a InstallationConfig, &'a RepoConfig), ApiError> {
    let inst = shared.installation(record.installation_id).ok_or_else(ApiError::not_found)?;
    if !inst.account.eq_ignore_ascii_case(owner) || record.permissions.is_empty() {
        return Err(ApiError::not_found());
    }
    let found = inst.repositories.iter().find(|r| r.name.eq_ignore_ascii_case(repo)).ok_or_else(ApiError::not_found)?;
    if record.repositories.as_ref().is_some_and(|selected| !selected.contains(&found.name)) {
        return Err(ApiError::not_found());
    }
    Ok((inst, found))
}

/// GitHub's answer when a token reaches the repository but lacks the permission.
fn not_accessible() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "Resource not accessible by integration", CONTENTS_DOCS)
}

fn has_permission(record: &TokenRecord, name: &str, at_least: &str) -> bool {
    record.permissions.get(name).and_then(|l| level(l)) >= level(at_least)
}

async fn get_repository(
    State(shared): State<AppState>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, record) = auth::installation_token(&shared, &headers)?;
    let (inst, found) = visible_repo(&shared, &record, &owner, &repo)?;
    Ok(Json(json!({
        "id": found.id,
        "name": found.name,
        "full_name": format!("{}/{}", inst.account, found.name),
        "owner": { "login": inst.account, "id": inst.account_id, "type": inst.account_type.as_str() },
        "private": true,
        "default_branch": "main",
    })))
}

fn content_json(inst: &InstallationConfig, repo: &RepoConfig, path: &str, content: &[u8]) -> Value {
    use base64::Engine as _;
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({
        "type": "file",
        "name": name,
        "path": path,
        "size": content.len(),
        "encoding": "base64",
        "content": base64::engine::general_purpose::STANDARD.encode(content),
        "url": format!("/repos/{}/{}/contents/{path}", inst.account, repo.name),
    })
}

/// `GET /repos/{owner}/{repo}/contents/{path}`: needs `contents: read`. Every repository has a
/// `README.md` until something else is written there.
async fn get_contents(
    State(shared): State<AppState>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, record) = auth::installation_token(&shared, &headers)?;
    let (inst, found) = visible_repo(&shared, &record, &owner, &repo)?;
    if !has_permission(&record, "contents", "read") {
        return Err(not_accessible());
    }
    let content = match shared.file(found.id, &path) {
        Some(content) => content,
        None if path == "README.md" => format!("# {}\n", found.name).into_bytes(),
        None => return Err(ApiError::not_found()),
    };
    Ok(Json(content_json(inst, found, &path, &content)))
}

#[derive(Deserialize)]
struct PutContents {
    message: String,
    /// Base64, as GitHub wants it.
    content: String,
}

/// `PUT /repos/{owner}/{repo}/contents/{path}`: needs `contents: write`; creates or replaces
/// the file (the emulator keeps it in memory, without history).
async fn put_contents(
    State(shared): State<AppState>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let (_, record) = auth::installation_token(&shared, &headers)?;
    let (inst, found) = visible_repo(&shared, &record, &owner, &repo)?;
    if !has_permission(&record, "contents", "write") {
        return Err(not_accessible());
    }
    let request: PutContents = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON", CONTENTS_DOCS))?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(request.content.replace('\n', ""))
        .map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "content is not valid Base64", CONTENTS_DOCS))?;
    let created = shared.put_file(found.id, &path, content.clone());
    let body = json!({
        "content": content_json(inst, found, &path, &content),
        "commit": { "message": request.message },
    });
    // The README every repository starts with already exists: replacing it is an update.
    let status = if created && path != "README.md" { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(body)).into_response())
}
