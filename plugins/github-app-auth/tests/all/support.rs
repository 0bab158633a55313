//! Shared helpers: an emulator with the test App and plugin settings pointing at it.

use std::time::Duration;

use github_app_auth::{AppIdentity, Config, InstallationTarget, PrivateKey};
use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, TEST_CLIENT_ID, TEST_INSTALLATION_ID, shared_test_key,
};

pub const TOKEN_ROUTE: &str = "POST /app/installations/{id}/access_tokens";

pub fn emulator(token_ttl: Duration) -> EmulatorHandle {
    let config = EmulatorConfig::with_test_app(&shared_test_key().public_pem).token_ttl(token_ttl);
    Emulator::start(config).expect("emulator starts")
}

pub fn test_key() -> PrivateKey {
    PrivateKey::from_pem(&shared_test_key().private_pem, "private_key").expect("test key loads")
}

/// Settings for the test App on `emu`, with short timeouts and backoffs so tests stay quick.
pub fn config(emu: &EmulatorHandle) -> Config {
    let mut config = Config::new(
        AppIdentity::ClientId(TEST_CLIENT_ID.to_owned()),
        InstallationTarget::Id(TEST_INSTALLATION_ID),
        test_key(),
        &emu.base_url(),
    )
    .expect("config");
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(5);
    config.retry_deadline = Duration::from_secs(3);
    config.initial_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(300);
    // The floor before min_validity_secs existed: the outage tests use tokens of a few seconds.
    config.min_validity = Duration::from_secs(1);
    config
}

/// Seconds left on `token` by the emulator's clock (what GitHub would say).
pub fn left_by_github(emu: &EmulatorHandle, token: &str) -> f64 {
    let info = emu.token_info(token).expect("token was minted by this emulator");
    match info.expires_at.duration_since(emu.now()) {
        Ok(left) => left.as_secs_f64(),
        Err(past) => -past.duration().as_secs_f64(),
    }
}

/// The plugin's TOML for the test App on `api_url`, plus `extra` lines.
pub fn plugin_toml_with(api_url: &str, extra: &str) -> String {
    format!(
        "client_id = {:?}\ninstallation_id = {TEST_INSTALLATION_ID}\nprivate_key = {:?}\napi_url = {api_url:?}\n\
         retry_deadline_secs = 3\n{extra}",
        TEST_CLIENT_ID,
        shared_test_key().private_pem,
    )
}

/// The plugin as the host makes it: `init` from TOML.
pub fn plugin_from(toml: &str) -> github_app_auth::GitHubAppAuth {
    use plughost_sdk::Plugin as _;
    github_app_auth::GitHubAppAuth::init(plughost_sdk::InitContext::for_tests(toml)).expect("init")
}

pub fn scope(repositories: &[&str], permissions: &[(&str, &str)]) -> plughost_sdk::TokenScope {
    plughost_sdk::TokenScope {
        workspace_id: "ws-test".to_owned(),
        repositories: repositories.iter().map(|r| r.to_string()).collect(),
        permissions: permissions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

/// `METHOD base+path` at GitHub (the emulator) with `Authorization: token <token>`:
/// the status and the JSON body (`null` when empty).
pub fn github(
    method: &str,
    base: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Accept", "application/vnd.github+json")
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("request");
    let mut response = agent.run(request).expect("emulator answers");
    let text = response.body_mut().read_to_string().expect("body");
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The repositories (`owner/name`) `token` reaches, as GitHub lists them.
pub fn reachable(base: &str, token: &str) -> Vec<String> {
    let (status, body) = github("GET", base, "/installation/repositories", token, None);
    assert_eq!(status, 200, "{body}");
    body["repositories"].as_array().expect("list").iter().map(|r| r["full_name"].as_str().unwrap().to_owned()).collect()
}

/// The host the plugin derives from the emulator's URL (`127.0.0.1:PORT`).
pub fn host_of(emu: &EmulatorHandle) -> String {
    emu.addr().to_string()
}
