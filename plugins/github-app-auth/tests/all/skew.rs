//! Clock skew: a GitHub whose clock differs from ours refuses the first JWT; the client re-signs
//! with the time from `Date` and remembers the offset.

use std::time::Duration;

use github_app_auth::GitHubAppAuth;

use crate::support::*;

#[test]
fn github_behind_our_clock_is_recovered_via_date() {
    let emu = emulator(Duration::from_secs(3600));
    emu.set_clock_skew(-600);
    let auth = GitHubAppAuth::new(&config(&emu));
    let token = auth.token().expect("recovered by re-signing");
    assert!(emu.is_token_valid(token.expose()));
    assert_eq!(emu.requests(TOKEN_ROUTE), 2, "one refused, one re-signed");
    let offset = auth.client().clock_offset();
    assert!((-602..=-598).contains(&offset), "learned offset {offset}");
    // The lifetime is measured on GitHub's clock, so it is not shortened by the skew.
    assert!(token.remaining() > Duration::from_secs(3500), "{:?}", token.remaining());

    // The offset is kept: the next mint needs no refused attempt.
    auth.client().mint().expect("second mint");
    assert_eq!(emu.requests(TOKEN_ROUTE), 3);
}

#[test]
fn github_ahead_of_our_clock_is_recovered_via_date() {
    let emu = emulator(Duration::from_secs(3600));
    emu.set_clock_skew(900);
    let auth = GitHubAppAuth::new(&config(&emu));
    let token = auth.token().expect("recovered by re-signing");
    assert!(emu.is_token_valid(token.expose()));
    assert_eq!(emu.requests(TOKEN_ROUTE), 2);
    // The skew moves GitHub's expires_at 15 minutes past ours; the token's local validity
    // still reflects its real one-hour lifetime.
    assert!(token.remaining() <= Duration::from_secs(3600));
    assert!(token.remaining() > Duration::from_secs(3500));
}
