//! App JWT checks: signature, issuer, iat/exp rules, and the headers GitHub insists on.

use std::time::SystemTime;

use github_emulator::{TEST_APP_ID, TEST_CLIENT_ID, shared_test_key};
use serde_json::json;

use crate::support::*;

#[test]
fn good_jwt_mints_a_long_opaque_token() {
    let emu = emulator();
    let reply = mint(&emu, &good_jwt(), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let token = reply.body["token"].as_str().expect("token");
    assert!(token.starts_with("ghs_"));
    assert!(token.len() > 500, "new-style tokens are long: {}", token.len());
    assert!(token.contains('.'));
    assert!(token[4..].chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'));
    let expires_at = reply.body["expires_at"].as_str().expect("expires_at");
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    let expires = humantime::parse_rfc3339(expires_at).expect("RFC 3339");
    let left = expires.duration_since(SystemTime::now()).expect("in the future").as_secs();
    assert!((3590..=3600).contains(&left), "default lifetime is one hour, got {left}");
    assert_eq!(reply.body["repository_selection"], "all");
    assert_eq!(reply.body["permissions"]["contents"], "write");
    assert!(reply.date.is_some(), "GitHub always sends Date");
    assert!(emu.is_token_valid(token));
    assert_eq!(emu.mints(), 1);
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
}

#[test]
fn issuer_may_be_app_id_as_number_or_string_or_client_id() {
    let emu = emulator();
    let key = &shared_test_key().private_pem;
    for iss in [json!(TEST_APP_ID), json!(TEST_APP_ID.to_string()), json!(TEST_CLIENT_ID)] {
        let reply = mint(&emu, &jwt_at(SystemTime::now(), iss.clone(), -60, 540, key), None);
        assert_eq!(reply.status, 201, "iss {iss}: {}", reply.body);
    }
    assert_eq!(emu.mints(), 3);
}

#[test]
fn tampered_signature_is_401() {
    let emu = emulator();
    let jwt = good_jwt();
    // Flip one character of the signature (the last segment).
    let (head, sig) = jwt.rsplit_once('.').expect("three segments");
    let mut sig: Vec<char> = sig.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{head}.{}", sig.into_iter().collect::<String>());
    assert_github_error(&mint(&emu, &tampered, None), 401, "could not be decoded");
    assert_eq!(emu.mints(), 0);
}

#[test]
fn jwt_signed_with_another_key_is_401() {
    let emu = emulator();
    let jwt = jwt_at(SystemTime::now(), json!(TEST_CLIENT_ID), -60, 540, &other_key().private_pem);
    assert_github_error(&mint(&emu, &jwt, None), 401, "could not be decoded");
}

#[test]
fn unknown_or_malformed_issuer_is_401() {
    let emu = emulator();
    let key = &shared_test_key().private_pem;
    let unknown = jwt_at(SystemTime::now(), json!(999_999), -60, 540, key);
    assert_github_error(&mint(&emu, &unknown, None), 401, "Integration not found");
    let malformed = jwt_at(SystemTime::now(), json!({"id": 1}), -60, 540, key);
    assert_github_error(&mint(&emu, &malformed, None), 401, "'Issuer' claim");
}

#[test]
fn missing_or_garbage_authorization_is_401() {
    let emu = emulator();
    let url = format!("{}/app/installations/{}/access_tokens", emu.base_url(), github_emulator::TEST_INSTALLATION_ID);
    assert_github_error(&call("POST", &url, None, None), 401, "JSON web token");
    assert_github_error(&call("POST", &url, Some("Bearer not.a.jwt"), None), 401, "JSON web token");
    assert_github_error(&call("POST", &url, Some("Basic dXNlcjpwYXNz"), None), 401, "JSON web token");
}

#[test]
fn expired_jwt_is_401() {
    let emu = emulator();
    let jwt = jwt_at(SystemTime::now(), json!(TEST_CLIENT_ID), -660, -60, &shared_test_key().private_pem);
    assert_github_error(&mint(&emu, &jwt, None), 401, "'Expiration time' claim ('exp') must be");
}

#[test]
fn jwt_living_longer_than_ten_minutes_is_401() {
    let emu = emulator();
    let key = &shared_test_key().private_pem;
    let long = jwt_at(SystemTime::now(), json!(TEST_CLIENT_ID), -60, 900, key);
    assert_github_error(&mint(&emu, &long, None), 401, "too far in the future");
    // Exactly ten minutes, as well-behaved clients sign, is fine.
    let ten = jwt_at(SystemTime::now(), json!(TEST_CLIENT_ID), -60, 540, key);
    assert_eq!(mint(&emu, &ten, None).status, 201);
}

#[test]
fn jwt_without_exp_or_iat_is_401() {
    let emu = emulator();
    let key = &shared_test_key().private_pem;
    let now = unix(SystemTime::now());
    let no_exp = sign(&json!({ "iss": TEST_CLIENT_ID, "iat": now - 60 }), key);
    assert_github_error(&mint(&emu, &no_exp, None), 401, "'Expiration time'");
    let no_iat = sign(&json!({ "iss": TEST_CLIENT_ID, "exp": now + 500 }), key);
    assert_github_error(&mint(&emu, &no_iat, None), 401, "'Issued at'");
}

#[test]
fn iat_in_the_future_is_401() {
    let emu = emulator();
    let jwt = jwt_at(SystemTime::now(), json!(TEST_CLIENT_ID), 120, 500, &shared_test_key().private_pem);
    assert_github_error(&mint(&emu, &jwt, None), 401, "'Issued at'");
}

#[test]
fn unknown_installation_is_404() {
    let emu = emulator();
    let url = format!("{}/app/installations/77/access_tokens", emu.base_url());
    assert_github_error(&call("POST", &url, Some(&format!("Bearer {}", good_jwt())), None), 404, "Not Found");
}

#[test]
fn user_agent_is_required_and_accept_must_allow_json() {
    let emu = emulator();
    let url = format!("{}/app/installations/{}/access_tokens", emu.base_url(), github_emulator::TEST_INSTALLATION_ID);
    let auth = format!("Bearer {}", good_jwt());
    let base =
        || ureq::http::Request::builder().method("POST").uri(url.as_str()).header("Authorization", auth.as_str());
    let no_agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(ureq::config::AutoHeaderValue::None)
        .build()
        .into();
    let response = no_agent.run(base().header("Accept", "application/vnd.github+json").body(()).unwrap()).unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let response = agent().run(base().header("Accept", "text/html").body(()).unwrap()).unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let response = agent()
        .run(base().header("Accept", "application/json").header("X-GitHub-Api-Version", "1999-01-01").body(()).unwrap())
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(emu.mints(), 0);
}
