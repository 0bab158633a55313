//! Single flight: a cold cache under a burst of callers makes exactly one upstream request.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use github_app_auth::GitHubAppAuth;
use github_emulator::Fault;

use crate::support::*;

#[test]
fn a_thousand_concurrent_callers_on_a_cold_cache_cause_one_mint() {
    let emu = emulator(Duration::from_secs(3600));
    // Slow the one mint down so that every caller arrives while it is in flight.
    emu.inject(Fault::Latency(Duration::from_millis(500)));
    let auth = Arc::new(GitHubAppAuth::new(&config(&emu)));
    const CALLERS: usize = 1000;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let auth = auth.clone();
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    auth.token().map(|t| t.expose().to_owned())
                })
                .expect("thread spawns")
        })
        .collect();
    let tokens: Vec<String> = threads.into_iter().map(|t| t.join().expect("no panic").expect("token")).collect();
    assert_eq!(tokens.len(), CALLERS);
    assert!(tokens.iter().all(|t| t == &tokens[0]), "every caller got the same token");
    assert_eq!(emu.mints(), 1);
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
    assert!(emu.is_token_valid(&tokens[0]));
}

#[test]
fn warm_cache_serves_without_requests() {
    let emu = emulator(Duration::from_secs(3600));
    let auth = GitHubAppAuth::new(&config(&emu));
    let first = auth.token().expect("token");
    for _ in 0..100 {
        assert_eq!(auth.token().expect("token").expose(), first.expose());
    }
    assert_eq!(emu.requests(TOKEN_ROUTE), 1);
    // The default margin is 600 s: a one-hour token is served, with at least that much left.
    assert!(first.remaining() > Duration::from_secs(3500));
}
