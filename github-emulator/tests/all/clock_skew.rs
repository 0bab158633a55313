//! The emulator's own clock: skewed checks of iat/exp, reported in `Date`, recoverable by re-signing.

use std::time::{Duration, SystemTime};

use github_emulator::{EmulatorConfig, TEST_CLIENT_ID, shared_test_key};
use serde_json::json;

use crate::support::*;

#[test]
fn emulator_behind_the_client_refuses_then_accepts_a_jwt_signed_by_its_date() {
    let emu = emulator();
    emu.set_clock_skew(-600);
    let refused = mint(&emu, &good_jwt(), None);
    assert_github_error(&refused, 401, "'Issued at'");

    let date = httpdate::parse_http_date(refused.date.as_deref().expect("Date header")).expect("HTTP date");
    let behind = SystemTime::now().duration_since(date).expect("Date is behind").as_secs();
    assert!((595..=605).contains(&behind), "Date reports the skewed clock, {behind} s behind");

    let resigned = jwt_at(date, json!(TEST_CLIENT_ID), -60, 540, &shared_test_key().private_pem);
    let reply = mint(&emu, &resigned, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    // expires_at is on the emulator's clock too.
    let expires = humantime::parse_rfc3339(reply.body["expires_at"].as_str().unwrap()).unwrap();
    let ahead = expires.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).as_secs();
    assert!((2990..=3000).contains(&ahead), "{ahead}");
}

#[test]
fn emulator_ahead_of_the_client_sees_its_jwt_expired() {
    let emu = emulator_with(EmulatorConfig::with_test_app(&shared_test_key().public_pem).clock_skew_secs(900));
    assert_github_error(&mint(&emu, &good_jwt(), None), 401, "'Expiration time'");
    let now = emu.now();
    let resigned = jwt_at(now, json!(TEST_CLIENT_ID), -60, 540, &shared_test_key().private_pem);
    assert_eq!(mint(&emu, &resigned, None).status, 201);
    assert_eq!(emu.stats().clock_skew_secs, 900);
}
