//! Secrets never print: every type holding a token or key, and every error, formatted with
//! `{:?}` and `{}`, lacks the token, the key material and any JWT.

use std::time::Duration;

use github_app_auth::{Config, Error, GitHubAppAuth, PrivateKey};
use github_emulator::{Fault, shared_test_key};

use crate::support::*;

fn assert_clean(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "secret leaked into: {text}");
    }
    // Base64 of `{"` opens every JWT header and claims segment.
    assert!(!text.contains("eyJ"), "a JWT leaked into: {text}");
}

#[test]
fn tokens_keys_configs_and_errors_are_redacted() {
    let emu = emulator(Duration::from_secs(3600));
    let config = config(&emu);
    let pem = &shared_test_key().private_pem;
    // Every line of the key body is a secret on its own.
    let key_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();

    let auth = GitHubAppAuth::new(&config);
    let token = auth.token().expect("token");
    let secret = token.expose().to_owned();
    let mut secrets: Vec<&str> = key_lines.clone();
    secrets.push(&secret);
    secrets.push(&secret[4..40]);

    let key = PrivateKey::from_pem(pem, "private_key").unwrap();
    let mut printed = vec![
        format!("{token:?}"),
        format!("{token}"),
        format!("{:?}", token.secret()),
        format!("{key:?}"),
        format!("{:?}", key.pem()),
        format!("{config:?}"),
        format!("{:?}", shared_test_key()),
    ];

    // Real errors from every failure family.
    let mut errors: Vec<Error> = Vec::new();
    for status in [401u16, 403, 404, 422, 500, 429] {
        emu.inject_n(Fault::Status(status), 2);
        errors.push(auth.client().mint().expect_err("injected"));
        emu.clear_faults();
    }
    emu.inject(Fault::DropConnection);
    errors.push(auth.client().mint().expect_err("dropped"));
    let mut slow = config.clone();
    slow.request_timeout = Duration::from_millis(200);
    slow.retry_deadline = Duration::from_millis(100);
    emu.inject(Fault::Latency(Duration::from_secs(1)));
    errors.push(GitHubAppAuth::new(&slow).token().expect_err("timeout"));
    let bad_config = Config::from_toml(&format!("private_key = {pem:?}\napp_id = \"{pem}\""), &|_| None, None);
    errors.push(Error::from(bad_config.expect_err("refused")));
    let bad_key = PrivateKey::from_pem(&pem.replacen("MII", "MIA", 1), "private_key");
    errors.push(Error::from(bad_key.expect_err("refused")));

    for err in &errors {
        printed.push(format!("{err:?}"));
        printed.push(format!("{err}"));
    }
    for text in &printed {
        assert_clean(text, &secrets);
    }
    assert!(printed.iter().any(|t| t.contains("[REDACTED]")));
}

/// Through the real `plughost serve`: a secret pasted where a list or a URL belongs is refused
/// without quoting it, in `GET /admin/plugins` and in the log.
#[test]
fn configuration_values_never_reach_the_plugin_list_or_the_log() {
    use plughost_testkit::{ADMIN_TOKEN, Serve, fixtures};
    let pem = &shared_test_key().private_pem;
    let identity = format!("app_id = 1\ninstallation_id = 2\nprivate_key = {pem:?}\n");
    for (setting, toml) in [
        ("repositories", "repositories = \"ghs_hunter2secret\"\n"),
        ("api_url", "api_url = \"https://x-access-token:ghs_hunter2secret@ghe.example.com/api/v3\"\n"),
        ("api_url", "api_url = \"ftp://ghs_hunter2secret\"\n"),
        ("permissions.contents", "permissions = { contents = \"ghs_hunter2secret\" }\n"),
        ("env.token_vars", "[env]\ntoken_vars = [\"ghs-hunter2secret\"]\n"),
        ("env.expires_at_var", "[env]\nexpires_at_var = \"ghs-hunter2secret\"\n"),
    ] {
        let s = Serve::builder().plugin("libgithub_app_auth.so", &fixtures().github_app_auth, None).start();
        s.dir().configure_private("libgithub_app_auth.so", &format!("{identity}{toml}"));
        let json = s.post("/admin/plugins/reload", Some(ADMIN_TOKEN), None).json();
        let error = json["rejected"][0]["error"].as_str().unwrap_or_else(|| panic!("{toml}: {json}")).to_owned();
        assert!(error.contains(setting), "{toml}: names the setting: {error}");
        assert!(!error.contains("hunter2"), "{toml}: a configuration value in the answer: {error}");
        assert!(!s.log().contains("hunter2"), "{toml}: a configuration value in the log:\n{}", s.log());
    }
}

/// The 1.1 paths: several installations' settings, scoped tokens, refusals, revocation errors.
#[test]
fn scoped_tokens_installations_and_revocation_errors_are_redacted() {
    let emu = emulator(Duration::from_secs(3600));
    let pem = &shared_test_key().private_pem;
    let key_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let toml = plugin_toml_with(
        &emu.base_url(),
        &format!("[[installations]]\nowner = \"globex\"\nprivate_key = {pem:?}\n[env]\ntoken_vars = [\"GH_TOKEN\"]\n"),
    );
    let config = Config::from_toml(&toml, &|_| None, None).expect("loads");
    assert_eq!(config.installations.len(), 1);
    let plugin = plugin_from(&toml);
    let token = plugin.scoped_token(&scope(&["acme/widgets"], &[("contents", "read")])).expect("scoped");
    let secret = token.expose().to_owned();
    let refused = plugin.scoped_token(&scope(&["acme/secret"], &[])).expect_err("refused");
    emu.inject(Fault::Status(500));
    let revoke_failed = plugin.revoke(&secret).expect_err("500");
    let mut secrets: Vec<&str> = key_lines.clone();
    secrets.push(&secret);
    for text in [
        format!("{config:?}"),
        format!("{token:?} {token}"),
        format!("{refused:?} {refused}"),
        format!("{revoke_failed:?} {revoke_failed}"),
        format!("{:?}", token.repositories()),
    ] {
        assert_clean(&text, &secrets);
    }
}
