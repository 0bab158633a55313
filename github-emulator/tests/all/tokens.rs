//! Token life: expiry on the emulator's clock, revocation, use of a token on a token route.

use std::time::Duration;

use github_emulator::{EmulatorConfig, shared_test_key};

use crate::support::*;

#[test]
fn tokens_expire_after_the_configured_lifetime() {
    let emu =
        emulator_with(EmulatorConfig::with_test_app(&shared_test_key().public_pem).token_ttl(Duration::from_secs(2)));
    let reply = mint(&emu, &good_jwt(), None);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    assert!(emu.is_token_valid(&token));
    let info = emu.token_info(&token).expect("recorded");
    assert!(info.valid && !info.revoked);
    // The emulator expires tokens at the whole second it reported.
    std::thread::sleep(Duration::from_millis(2100));
    assert!(!emu.is_token_valid(&token));
    assert!(!emu.token_info(&token).unwrap().valid);
    assert!(!emu.is_token_valid("ghs_never_minted"));
}

#[test]
fn delete_installation_token_revokes_it() {
    let emu = emulator();
    let token = mint(&emu, &good_jwt(), None).body["token"].as_str().unwrap().to_owned();
    let url = format!("{}/installation/token", emu.base_url());
    let repos_url = format!("{}/installation/repositories", emu.base_url());
    let listed = call("GET", &repos_url, Some(&format!("token {token}")), None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["total_count"], 3);

    assert_eq!(call("DELETE", &url, Some(&format!("token {token}")), None).status, 204);
    assert!(!emu.is_token_valid(&token));
    assert!(emu.token_info(&token).unwrap().revoked);
    assert_github_error(&call("DELETE", &url, Some(&format!("token {token}")), None), 401, "Bad credentials");
    assert_github_error(&call("GET", &repos_url, Some(&format!("Bearer {token}")), None), 401, "Bad credentials");
}

#[test]
fn revoking_one_token_leaves_the_others_working() {
    let emu = emulator();
    let mut tokens: Vec<String> =
        (0..3).map(|_| mint(&emu, &good_jwt(), None).body["token"].as_str().unwrap().to_owned()).collect();
    let revoked = tokens.remove(1);
    let url = format!("{}/installation/token", emu.base_url());
    assert_eq!(call("DELETE", &url, Some(&format!("token {revoked}")), None).status, 204);
    let repos_url = format!("{}/installation/repositories", emu.base_url());
    assert_eq!(call("GET", &repos_url, Some(&format!("token {revoked}")), None).status, 401, "dead at once");
    for token in &tokens {
        assert!(emu.is_token_valid(token));
        assert_eq!(call("GET", &repos_url, Some(&format!("token {token}")), None).status, 200);
    }
    // GHES layout too.
    let ghes = format!("{}/installation/token", emu.ghes_base_url());
    assert_eq!(call("DELETE", &ghes, Some(&format!("token {}", tokens[0])), None).status, 204);
    assert!(!emu.is_token_valid(&tokens[0]) && emu.is_token_valid(&tokens[1]));
}
