//! Shared helpers: an emulator with the test App, a JWT signer, and a raw HTTP client.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use github_emulator::{Emulator, EmulatorConfig, EmulatorHandle, TestKeyPair, shared_test_key};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const TOKEN_ROUTE: &str = "POST /app/installations/{id}/access_tokens";

pub fn emulator() -> EmulatorHandle {
    emulator_with(EmulatorConfig::with_test_app(&shared_test_key().public_pem))
}

pub fn emulator_with(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config).expect("emulator starts")
}

/// A second key the emulator does not know.
pub fn other_key() -> &'static TestKeyPair {
    static KEY: OnceLock<TestKeyPair> = OnceLock::new();
    KEY.get_or_init(|| TestKeyPair::generate().expect("second key"))
}

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs() as i64
}

/// Signs claims `{"iss", "iat": now+iat_off, "exp": now+exp_off}` with `private_pem`.
pub fn jwt_at(now: SystemTime, iss: Value, iat_off: i64, exp_off: i64, private_pem: &str) -> String {
    let now = unix(now);
    let claims = json!({ "iss": iss, "iat": now + iat_off, "exp": now + exp_off });
    sign(&claims, private_pem)
}

pub fn sign(claims: &Value, private_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("test key parses");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("signs")
}

/// A JWT as a well-behaved client makes it: iat 60 s back, exp 9 min ahead, iss = client id.
pub fn good_jwt() -> String {
    jwt_at(SystemTime::now(), json!(github_emulator::TEST_CLIENT_ID), -60, 540, &shared_test_key().private_pem)
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub struct Reply {
    pub status: u16,
    pub date: Option<String>,
    /// Every header, lower-case names.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Value,
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let date = response.headers().get("date").and_then(|d| d.to_str().ok()).map(str::to_owned);
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let text = response.body_mut().read_to_string().expect("body reads");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
    Reply { status, date, headers, body }
}

/// `METHOD base+path` with GitHub's headers, `Authorization: <auth>` if given, JSON body if given.
pub fn call(method: &str, url: &str, auth: Option<&str>, body: Option<&Value>) -> Reply {
    try_call(method, url, auth, body).expect("transport works")
}

pub fn try_call(method: &str, url: &str, auth: Option<&str>, body: Option<&Value>) -> Result<Reply, ureq::Error> {
    try_call_with(&agent(), method, url, auth, body)
}

/// [`try_call`] through `agent` (e.g. one that trusts a test CA).
pub fn try_call_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, ureq::Error> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header("User-Agent", "github-emulator-tests");
    if let Some(auth) = auth {
        builder = builder.header("Authorization", auth);
    }
    let response = match body {
        Some(b) => {
            let request = builder.header("Content-Type", "application/json").body(b.to_string()).expect("request");
            agent.run(request)?
        }
        None => agent.run(builder.body(()).expect("request"))?,
    };
    Ok(reply(response))
}

pub fn mint(emu: &EmulatorHandle, jwt: &str, body: Option<&Value>) -> Reply {
    let url = format!("{}/app/installations/{}/access_tokens", emu.base_url(), github_emulator::TEST_INSTALLATION_ID);
    call("POST", &url, Some(&format!("Bearer {jwt}")), body)
}

pub fn assert_github_error(reply: &Reply, status: u16, message_part: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    let message = reply.body["message"].as_str().expect("message");
    assert!(message.contains(message_part), "message {message:?} lacks {message_part:?}");
    assert!(reply.body["documentation_url"].as_str().is_some_and(|u| u.starts_with("https://docs.github.com/")));
}
