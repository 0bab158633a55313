//! GitHub's rate limits as faults: the primary limit (403/429, `x-ratelimit-remaining: 0`,
//! `x-ratelimit-reset`) and the secondary one (403/429 with `Retry-After` and GitHub's message).
//! Like GitHub, the emulator keeps refusing until the time it named; every attempt is logged
//! with its time and answer.

use std::time::{Duration, SystemTime};

use github_emulator::Fault;
use serde_json::json;

use crate::support::*;

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(String::as_str)
}

#[test]
fn primary_rate_limit_refuses_until_the_reset_it_announces() {
    let emu = emulator();
    emu.inject(Fault::PrimaryRateLimit { status: 403, reset_in: Duration::from_secs(2) });
    let asked = SystemTime::now();
    let refused = mint(&emu, &good_jwt(), None);
    assert_github_error(&refused, 403, "API rate limit exceeded");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&refused, "x-ratelimit-limit"), Some("5000"));
    assert_eq!(header(&refused, "retry-after"), None, "the primary limit says when by its reset, not Retry-After");
    let reset: u64 = header(&refused, "x-ratelimit-reset").expect("reset").parse().expect("epoch seconds");
    let reset_at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    let ahead = reset_at.duration_since(asked).expect("in the future");
    assert!(ahead >= Duration::from_secs(2) && ahead <= Duration::from_secs(3), "{ahead:?}");

    // Early retries are refused with the same reset, without consuming faults.
    emu.inject(Fault::Status(500));
    let again = mint(&emu, &good_jwt(), None);
    assert_eq!(again.status, 403);
    assert_eq!(header(&again, "x-ratelimit-reset"), Some(reset.to_string().as_str()));
    assert_eq!(emu.stats().pending_faults, 1);

    while SystemTime::now() < reset_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    emu.clear_faults();
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);

    let attempts = emu.mint_attempts();
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(403), Some(403), Some(201)]);
    assert!(attempts.windows(2).all(|w| w[0].at <= w[1].at), "in order of arrival");
    assert!(attempts[2].at >= reset_at, "the successful attempt came after the reset");
    assert!(attempts[0].at >= asked);
}

#[test]
fn primary_rate_limit_may_answer_429() {
    let emu = emulator();
    emu.inject(Fault::PrimaryRateLimit { status: 429, reset_in: Duration::from_secs(60) });
    let refused = mint(&emu, &good_jwt(), None);
    assert_github_error(&refused, 429, "API rate limit exceeded");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
}

#[test]
fn secondary_rate_limit_sends_retry_after_and_githubs_message() {
    let emu = emulator();
    emu.inject(Fault::SecondaryRateLimit { status: 403, retry_after: Duration::from_secs(2) });
    let refused = mint(&emu, &good_jwt(), None);
    assert_github_error(&refused, 403, "You have exceeded a secondary rate limit");
    assert_eq!(header(&refused, "retry-after"), Some("2"));
    assert_ne!(header(&refused, "x-ratelimit-remaining"), Some("0"), "not the primary limit");

    std::thread::sleep(Duration::from_millis(1100));
    let early = mint(&emu, &good_jwt(), None);
    assert_github_error(&early, 403, "secondary rate limit");
    assert_eq!(header(&early, "retry-after"), Some("1"), "what is left, rounded up");

    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(mint(&emu, &good_jwt(), None).status, 201);
    assert_eq!(emu.mint_attempts().len(), 3);
    assert_eq!(emu.mints(), 1);
}

#[test]
fn rate_limits_and_the_attempt_log_over_http() {
    let emu = emulator();
    let base = emu.base_url();
    let fault = json!({"fault": "secondary_rate_limit", "retry_after_secs": 30, "status": 429});
    assert_eq!(call("POST", &format!("{base}/_emulator/faults"), None, Some(&fault)).status, 204);
    let refused = mint(&emu, &good_jwt(), None);
    assert_github_error(&refused, 429, "secondary rate limit");
    assert_eq!(header(&refused, "retry-after"), Some("30"));
    let fault = json!({"fault": "primary_rate_limit", "reset_in_secs": 30});
    assert_eq!(call("POST", &format!("{base}/_emulator/faults"), None, Some(&fault)).status, 204);

    let log = call("GET", &format!("{base}/_emulator/attempts"), None, None);
    let entries = log.body.as_array().expect("a list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["route"], TOKEN_ROUTE);
    assert_eq!(entries[0]["status"], 429);
    assert!(humantime::parse_rfc3339(entries[0]["at"].as_str().unwrap()).is_ok());
}
