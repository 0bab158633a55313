//! GitHub outages: a still-valid cached token keeps being served, refreshes back off, new tokens
//! come once GitHub is back, and an expired token is never served.

use std::time::{Duration, Instant};

use github_app_auth::{Error, GitHubAppAuth};
use github_emulator::Fault;

use crate::support::*;

#[test]
fn cached_token_is_served_during_an_outage_and_replaced_after_it() {
    let emu = emulator(Duration::from_secs(10));
    let mut config = config(&emu);
    config.refresh_margin = Duration::from_secs(4);
    let auth = GitHubAppAuth::new(&config);
    let first = auth.token().expect("first token");

    emu.inject_n(Fault::Status(503), 100_000);
    // Wait until the token is inside the margin: every call now wants a refresh.
    while first.remaining() >= config.refresh_margin {
        std::thread::sleep(Duration::from_millis(50));
    }
    let outage_started = Instant::now();
    let mut calls = 0;
    while outage_started.elapsed() < Duration::from_secs(2) {
        let token = auth.token().expect("the cached token is still valid");
        assert_eq!(token.expose(), first.expose());
        assert!(emu.is_token_valid(token.expose()));
        calls += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let attempts = emu.requests(TOKEN_ROUTE) - 1;
    assert!(attempts >= 2, "refreshes were attempted during the outage: {attempts}");
    assert!(attempts * 4 < calls, "{attempts} upstream attempts for {calls} calls: no backoff");
    assert_eq!(emu.mints(), 1);

    emu.clear_faults();
    // The next attempt comes after at most max_backoff.
    std::thread::sleep(config.max_backoff);
    let asked = Instant::now();
    let fresh = auth.token().expect("GitHub is back");
    assert_ne!(fresh.expose(), first.expose());
    assert_eq!(emu.mints(), 2);
    // Measured from the call, not from now: the guarantee is about the moment of serving.
    assert!(fresh.valid_until() >= asked + config.refresh_margin);
}

#[test]
fn an_expired_token_is_never_served() {
    let emu = emulator(Duration::from_secs(4));
    let mut config = config(&emu);
    config.refresh_margin = Duration::from_secs(2);
    config.retry_deadline = Duration::from_secs(1);
    let auth = GitHubAppAuth::new(&config);
    let first = auth.token().expect("first token");
    emu.inject_n(Fault::Status(500), 100_000);

    let deadline = Instant::now() + Duration::from_secs(6);
    let mut saw_error = None;
    while Instant::now() < deadline {
        let asked = Instant::now();
        match auth.token() {
            Ok(token) => {
                assert_eq!(token.expose(), first.expose());
                assert!(token.valid_until() >= asked + github_app_auth::MIN_VALIDITY);
                assert!(emu.is_token_valid(token.expose()), "served a token GitHub no longer accepts");
            }
            Err(err) => {
                saw_error = Some(err);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = saw_error.expect("once the token expired, an error and not the token");
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, Error::GaveUp { .. } | Error::Server { .. }), "{err:?}");
    assert!(err.to_string().contains("503") || err.to_string().contains("500"), "{err}");
    assert!(!emu.is_token_valid(first.expose()) || first.remaining() < github_app_auth::MIN_VALIDITY);
}

#[test]
fn transient_failures_on_a_cold_cache_are_retried_within_the_deadline() {
    let emu = emulator(Duration::from_secs(3600));
    emu.inject_n(Fault::Status(502), 2);
    emu.inject(Fault::DropConnection);
    let auth = GitHubAppAuth::new(&config(&emu));
    let token = auth.token().expect("third retry succeeds");
    assert!(emu.is_token_valid(token.expose()));
    assert_eq!(emu.requests(TOKEN_ROUTE), 4);
    assert_eq!(emu.mints(), 1);
}

#[test]
fn during_an_outage_a_cached_token_is_served_only_while_it_has_min_validity_left() {
    let emu = emulator(Duration::from_secs(10));
    let mut config = config(&emu);
    config.refresh_margin = Duration::from_secs(8);
    config.min_validity = Duration::from_secs(5);
    config.retry_deadline = Duration::from_millis(500);
    let auth = GitHubAppAuth::new(&config);
    let first = auth.token().expect("first token");
    emu.inject_n(Fault::Status(503), 100_000);

    let started = Instant::now();
    let mut served = 0;
    let err = loop {
        let asked = Instant::now();
        match auth.token() {
            Ok(token) => {
                assert_eq!(token.expose(), first.expose());
                assert!(
                    token.valid_until() >= asked + config.min_validity,
                    "served with {:?} left during an outage, below min_validity",
                    token.valid_until().saturating_duration_since(asked)
                );
                served += 1;
            }
            Err(err) => {
                let left = first.valid_until().saturating_duration_since(asked);
                assert!(left < config.min_validity + Duration::from_millis(100), "refused with {left:?} left");
                break err;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(9), "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(served > 10, "the cached token was served while it had enough left: {served}");
    assert!(emu.is_token_valid(first.expose()), "refused while still valid, with too little left for a clone");
    assert!(err.to_string().contains("503"), "{err}");
}
