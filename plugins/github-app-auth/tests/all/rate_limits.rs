//! GitHub's rate limits: one shared backoff per installation. While GitHub has said "not before
//! T" (`Retry-After`, or `x-ratelimit-reset` with none remaining), no caller sends a token request
//! before T: callers holding a still-valid token get it, the others an immediate error saying
//! when GitHub allows the next request. A wait longer than the retry deadline fails at once.
//! The emulator refuses every request until T, so an early one shows up as an extra refusal.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use github_app_auth::{Error, GitHubAppAuth};
use github_emulator::Fault;

use crate::support::*;

#[test]
fn concurrent_callers_during_a_secondary_rate_limit_send_one_request_before_retry_after() {
    let emu = emulator(Duration::from_secs(3600));
    let retry_after = Duration::from_secs(2);
    emu.inject(Fault::SecondaryRateLimit { status: 403, retry_after });
    // Retry-After (2 s) fits inside the deadline (3 s): the caller that asked waits and asks again.
    let auth = Arc::new(GitHubAppAuth::new(&config(&emu)));
    const CALLERS: usize = 20;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (auth, barrier) = (auth.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                auth.token().map(|t| t.expose().to_owned())
            })
        })
        .collect();
    let tokens: Vec<String> =
        threads.into_iter().map(|t| t.join().unwrap().expect("token after Retry-After")).collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]));

    let attempts = emu.mint_attempts();
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(403), Some(201)], "one refused request, then one after Retry-After");
    let waited = attempts[1].at.duration_since(attempts[0].at).unwrap();
    assert!(waited >= retry_after, "asked again after {waited:?}, before Retry-After");
}

#[test]
fn after_giving_up_on_a_primary_rate_limit_no_caller_asks_before_the_reset() {
    let emu = emulator(Duration::from_secs(3600));
    // The reset (about 4 s away) is beyond the 3 s deadline: the first caller fails at once.
    emu.inject(Fault::PrimaryRateLimit { status: 429, reset_in: Duration::from_secs(4) });
    let auth = GitHubAppAuth::new(&config(&emu));
    let started = Instant::now();
    let err = auth.token().expect_err("rate-limited");
    assert!(started.elapsed() < Duration::from_secs(1), "failed fast, not after the deadline: {:?}", started.elapsed());
    assert!(matches!(err, Error::RateLimited { status: 429, .. }), "{err:?}");
    assert!(err.is_transient());
    let not_before = err.not_before().expect("GitHub said when");
    let text = err.to_string();
    assert!(text.contains("API rate limit exceeded") && text.contains("allows the next request at"), "{text}");

    // Every caller until then gets the same answer at once, without a request.
    let mut refused = 0;
    let token = loop {
        let asked = Instant::now();
        match auth.token() {
            Ok(token) => break token,
            Err(err) => {
                assert!(asked.elapsed() < Duration::from_millis(200), "not at once: {:?}", asked.elapsed());
                assert!(err.to_string().contains("allows the next request at"), "{err}");
                assert!(SystemTime::now() < not_before + Duration::from_millis(500), "refused past the reset");
                refused += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no token after the reset");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(refused > 20, "callers kept asking: {refused}");
    assert!(emu.is_token_valid(token.expose()));
    let statuses: Vec<Option<u16>> = emu.mint_attempts().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(429), Some(201)], "no request before the reset");
    assert!(emu.mint_attempts()[1].at >= not_before);
}

#[test]
fn a_retry_after_longer_than_the_deadline_fails_at_once_saying_when() {
    let emu = emulator(Duration::from_secs(3600));
    emu.inject(Fault::SecondaryRateLimit { status: 403, retry_after: Duration::from_secs(30) });
    let auth = GitHubAppAuth::new(&config(&emu));
    let started = Instant::now();
    let err = auth.token().expect_err("rate-limited");
    assert!(started.elapsed() < Duration::from_secs(1), "did not wait for the deadline: {:?}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains("403") && text.contains("secondary rate limit"), "{text}");
    assert!(
        text.contains("allows the next request at") && (text.contains("in 30 s") || text.contains("in 29 s")),
        "{text}"
    );
    let left = err.not_before().unwrap().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(28) && left <= Duration::from_secs(31), "{left:?}");
    // The next caller too, and still nobody asks GitHub.
    let again = auth.token().expect_err("still rate-limited");
    assert!(again.to_string().contains("allows the next request at"), "{again}");
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
}

#[test]
fn a_cached_token_is_served_during_a_rate_limit_without_asking_early() {
    let emu = emulator(Duration::from_secs(12));
    let mut config = config(&emu);
    config.refresh_margin = Duration::from_secs(10);
    let auth = GitHubAppAuth::new(&config);
    let first = auth.token().expect("first token");
    while first.remaining() >= config.refresh_margin {
        std::thread::sleep(Duration::from_millis(20));
    }
    let retry_after = Duration::from_secs(2);
    emu.inject(Fault::SecondaryRateLimit { status: 403, retry_after });
    let limited = Instant::now();
    while limited.elapsed() < retry_after {
        let token = auth.token().expect("the cached token is still valid");
        assert_eq!(token.expose(), first.expose());
        std::thread::sleep(Duration::from_millis(20));
    }
    let statuses: Vec<Option<u16>> = emu.mint_attempts().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(201), Some(403)], "one refused refresh, no request before Retry-After");

    std::thread::sleep(Duration::from_millis(200));
    let fresh = auth.token().expect("after Retry-After");
    assert_ne!(fresh.expose(), first.expose());
    let attempts = emu.mint_attempts();
    assert!(attempts[2].at.duration_since(attempts[1].at).unwrap() >= retry_after);
}
