//! Clear, fast errors for setups that cannot work: wrong key, wrong installation, refused scope,
//! a GitHub that does not answer in time.

use std::time::{Duration, Instant};

use github_app_auth::{Error, GitHubAppAuth, InstallationTarget, PrivateKey};
use github_emulator::{Fault, TestKeyPair};

use crate::support::*;

#[test]
fn wrong_private_key_is_unauthorized_after_one_re_sign() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    let other = TestKeyPair::generate().expect("key");
    config.private_key = PrivateKey::from_pem(&other.private_pem, "private_key").expect("valid, just not this App's");
    let auth = GitHubAppAuth::new(&config);
    let started = Instant::now();
    let err = auth.token().expect_err("GitHub refuses the JWT");
    assert!(matches!(err, Error::Unauthorized { status: 401, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("private key") && text.contains("401"), "{text}");
    assert!(!err.is_transient());
    assert_eq!(emu.requests(TOKEN_ROUTE), 2, "the first try and one re-signed try, no retry loop");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Right after, the error is served from the cache without asking GitHub again.
    assert!(matches!(auth.token(), Err(Error::Unauthorized { .. })));
    assert_eq!(emu.requests(TOKEN_ROUTE), 2);
}

#[test]
fn unknown_installation_is_not_found_naming_it() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    config.installation = InstallationTarget::Id(31337);
    let err = GitHubAppAuth::new(&config).token().expect_err("no such installation");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("installation 31337"), "{err}");
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
}

#[test]
fn refused_down_scoping_is_unprocessable() {
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    config.scope.repositories = vec!["widgets".into(), "not-installed".into()];
    let err = GitHubAppAuth::new(&config).token().expect_err("422");
    assert!(matches!(err, Error::Unprocessable { .. }), "{err:?}");
    assert!(err.to_string().contains("422") && err.to_string().contains("repositories"), "{err}");

    config.scope.repositories = vec!["widgets".into()];
    config.scope.permissions = [("contents".to_owned(), "read".to_owned())].into();
    let token = GitHubAppAuth::new(&config).token().expect("allowed scope");
    let info = emu.token_info(token.expose()).expect("minted");
    assert_eq!(info.repositories, Some(vec!["widgets".to_owned()]));
    assert_eq!(token.repository_selection(), "selected");
    assert_eq!(token.permissions().get("contents").map(String::as_str), Some("read"));
}

#[test]
fn injected_403_and_404_are_reported_as_such() {
    let emu = emulator(Duration::from_secs(3600));
    let auth = GitHubAppAuth::new(&config(&emu));
    emu.inject(Fault::Status(403));
    let err = auth.token().expect_err("403");
    assert!(matches!(err, Error::Forbidden { status: 403, .. }), "{err:?}");
    let emu2 = emulator(Duration::from_secs(3600));
    emu2.inject(Fault::Status(404));
    let err = GitHubAppAuth::new(&config(&emu2)).token().expect_err("404");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[test]
fn a_github_slower_than_the_timeout_gives_a_timeout_error_within_the_deadline() {
    let emu = emulator(Duration::from_secs(3600));
    emu.inject_n(Fault::Latency(Duration::from_secs(3)), 10);
    let mut config = config(&emu);
    config.request_timeout = Duration::from_millis(400);
    config.retry_deadline = Duration::from_millis(1500);
    let started = Instant::now();
    let err = GitHubAppAuth::new(&config).token().expect_err("GitHub too slow");
    let took = started.elapsed();
    match &err {
        Error::GaveUp { attempts, last, .. } => {
            assert!(*attempts >= 2, "retried: {attempts}");
            assert!(matches!(**last, Error::Timeout { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp(Timeout), got {other:?}"),
    }
    assert!(err.to_string().contains("in time"), "{err}");
    assert!(took < Duration::from_millis(1500 + 400 + 500), "bounded by deadline + one timeout: {took:?}");
    assert_eq!(emu.mints(), 0);
}

#[test]
fn unreachable_github_is_a_transport_error() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let emu = emulator(Duration::from_secs(3600));
    let mut config = config(&emu);
    config.api_url = format!("http://127.0.0.1:{port}");
    config.retry_deadline = Duration::from_millis(300);
    let err = GitHubAppAuth::new(&config).token().expect_err("nothing listens");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn a_slow_request_ends_by_the_retry_deadline() {
    let emu = emulator(Duration::from_secs(3600));
    emu.inject(Fault::Latency(Duration::from_secs(3)));
    let mut config = config(&emu);
    config.request_timeout = Duration::from_secs(5);
    config.retry_deadline = Duration::from_millis(800);
    let started = Instant::now();
    let err = GitHubAppAuth::new(&config).token().expect_err("GitHub answers after the deadline");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "the caller was held past the deadline: {took:?}");
    assert!(err.to_string().contains("in time"), "{err}");
}
