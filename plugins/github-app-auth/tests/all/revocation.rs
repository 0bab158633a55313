//! Revocation (SDK 1.1): `DELETE /installation/token` with the token itself kills it at GitHub
//! at once; other tokens keep working; a token already dead counts as revoked.

use std::time::Duration;

use plughost_sdk::{ScopedTokenProvider, Secret, TokenProvider};

use crate::support::*;

#[test]
fn revoking_kills_that_token_at_once_and_no_other() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), ""));
    let base = emu.base_url();
    let first =
        ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[("contents", "read")])).expect("first");
    let second =
        ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/widgets"], &[("contents", "read")])).expect("second");
    let unscoped = TokenProvider::token(&plugin).expect("unscoped");

    ScopedTokenProvider::revoke(&plugin, &Secret::new(first.expose())).expect("revoked");
    assert!(!emu.is_token_valid(first.expose()));
    assert!(emu.token_info(first.expose()).unwrap().revoked);
    assert_eq!(github("GET", &base, "/installation/repositories", first.expose(), None).0, 401, "dead at once");
    assert_eq!(reachable(&base, second.expose()), ["acme/widgets"], "the same scope's other token works");
    assert_eq!(reachable(&base, unscoped.expose()).len(), 3, "the installation token works");
    assert_eq!(emu.requests("DELETE /installation/token"), 1);

    // Already dead: GitHub says 401, which is what revoking wanted.
    ScopedTokenProvider::revoke(&plugin, &Secret::new(first.expose())).expect("already revoked counts");
    assert_eq!(
        github_app_auth::GitHubAppAuth::revoke(&plugin, first.expose()).expect("ok"),
        github_app_auth::Revoked::AlreadyDead
    );
    assert_eq!(TokenProvider::token(&plugin).unwrap().expose(), unscoped.expose(), "cache untouched");
}

#[test]
fn revoking_the_cached_installation_token_makes_the_cache_mint_anew() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), ""));
    let cached = TokenProvider::token(&plugin).expect("token");
    ScopedTokenProvider::revoke(&plugin, &Secret::new(cached.expose())).expect("revoked");
    assert!(!emu.is_token_valid(cached.expose()));
    let next = TokenProvider::token(&plugin).expect("a new one");
    assert_ne!(next.expose(), cached.expose(), "never the revoked token again");
    assert!(emu.is_token_valid(next.expose()));
}

#[test]
fn a_failed_revocation_says_why() {
    let emu = emulator(Duration::from_secs(3600));
    let plugin = plugin_from(&plugin_toml_with(&emu.base_url(), "owner = \"acme\"\n"));
    let token = ScopedTokenProvider::scoped_token(&plugin, &scope(&["acme/docs"], &[])).expect("token");
    emu.inject(github_emulator::Fault::Status(503));
    let err = ScopedTokenProvider::revoke(&plugin, &Secret::new(token.expose())).expect_err("GitHub failed");
    assert!(err.message().contains("503") && err.message().contains("/installation/token"), "{err}");
    assert!(!err.message().contains(token.expose()));
    assert!(emu.is_token_valid(token.expose()), "still alive: the caller may try again");
    ScopedTokenProvider::revoke(&plugin, &Secret::new(token.expose())).expect("second try");
    assert!(!emu.is_token_valid(token.expose()));
}
