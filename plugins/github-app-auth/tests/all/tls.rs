//! TLS trust: GitHub Enterprise Server behind a private CA (the emulator's TLS mode with a CA
//! made at run time). `ca_bundle_path` trusts that CA; `tls_roots = "system"` trusts the
//! operating system's store; without either the error says which setting to use.

use std::path::Path;

use github_app_auth::{Config, Error, GitHubAppAuth};
use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, TEST_CLIENT_ID, TEST_INSTALLATION_ID, TestCa, shared_test_key,
};

use plughost_testkit::{PluginDir, Serve, fixtures};

use crate::support::TOKEN_ROUTE;

fn tls_emulator() -> (EmulatorHandle, TestCa) {
    let ca = TestCa::generate().expect("test CA");
    let config = EmulatorConfig::with_test_app(&shared_test_key().public_pem).tls(&ca);
    (Emulator::start(config).expect("emulator starts"), ca)
}

fn toml(api_url: &str, extra: &str) -> String {
    format!(
        "client_id = {TEST_CLIENT_ID:?}\ninstallation_id = {TEST_INSTALLATION_ID}\nprivate_key = {:?}\n\
         api_url = {api_url:?}\nretry_deadline_secs = 2\n{extra}\n",
        shared_test_key().private_pem
    )
}

fn load(toml: &str, env: &[(&str, &str)], base_dir: Option<&Path>) -> Result<Config, github_app_auth::ConfigError> {
    let env: std::collections::HashMap<String, String> =
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_toml(toml, &|name| env.get(name).cloned(), base_dir)
}

#[test]
fn ca_bundle_path_trusts_a_private_ca() {
    let (emu, ca) = tls_emulator();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corp-ca.pem"), ca.ca_pem()).unwrap();

    // Relative to the plugin's folder, like private_key_path.
    let config =
        load(&toml(&emu.ghes_base_url(), "ca_bundle_path = \"corp-ca.pem\""), &[], Some(dir.path())).expect("loads");
    let token = GitHubAppAuth::new(&config).token().expect("token over TLS with the CA bundle");
    assert!(emu.is_token_valid(token.expose()));

    // The environment fallback.
    let path = dir.path().join("corp-ca.pem").display().to_string();
    let config = load(&toml(&emu.base_url(), ""), &[("GITHUB_APP_CA_BUNDLE_PATH", &path)], None).expect("loads");
    GitHubAppAuth::new(&config).token().expect("token with the CA bundle from the environment");
    assert_eq!(emu.mints(), 2);
}

#[test]
fn without_the_ca_the_error_says_which_setting_trusts_it() {
    let (emu, _ca) = tls_emulator();
    let config = load(&toml(&emu.base_url(), ""), &[], None).expect("loads");
    let err = GitHubAppAuth::new(&config).token().expect_err("the built-in roots do not hold the test CA");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&emu.base_url()) && text.contains("certificate"), "{text}");
    assert!(text.contains("ca_bundle_path") && text.contains("tls_roots"), "{text}");
    assert!(!err.is_transient(), "a trust problem is not retried");
    assert_eq!(emu.requests(TOKEN_ROUTE), 0, "no request got through");
}

#[test]
fn tls_settings_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(&toml("https://ghe.example.com/api/v3", "ca_bundle_path = \"/nonexistent/ca.pem\""), &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("ca_bundle_path: cannot read /nonexistent/ca.pem"), "{e}");
    std::fs::write(dir.path().join("empty.pem"), "no certificates here\n").unwrap();
    let empty = dir.path().join("empty.pem").display().to_string();
    let e = load(&toml("https://h", ""), &[("GITHUB_APP_CA_BUNDLE_PATH", &empty)], None).unwrap_err().to_string();
    assert!(e.starts_with("GITHUB_APP_CA_BUNDLE_PATH:") && e.contains("no PEM certificate"), "{e}");
    let e = load(&toml("https://h", "tls_roots = \"mozilla\""), &[], None).unwrap_err().to_string();
    assert!(e.starts_with("tls_roots:") && e.contains("\"builtin\"") && e.contains("\"system\""), "{e}");
    let e = load(&toml("https://h", "tls_roots = \"system\"\nca_bundle_path = \"x.pem\""), &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("ca_bundle_path:") && e.contains("tls_roots"), "{e}");
    let e = load(&toml("https://h", ""), &[("GITHUB_APP_TLS_ROOTS", "os")], None).unwrap_err().to_string();
    assert!(e.starts_with("GITHUB_APP_TLS_ROOTS:"), "{e}");
}

/// The operating system's store, as rustls-platform-verifier reads it on Linux: here through
/// `SSL_CERT_FILE`, which a test may not set in its own process. So the plugin runs where
/// operators run it, in the real host's worker process, which inherits the host's environment.
#[test]
fn tls_roots_system_trusts_the_operating_systems_store() {
    let (emu, ca) = tls_emulator();
    let other = TestCa::generate().unwrap();
    for (trusted, ca_pem) in [(true, ca.ca_pem()), (false, other.ca_pem())] {
        let dir = PluginDir::new();
        let ca_file = dir.write_private("system-ca.pem", ca_pem);
        let key_file = dir.write_private("app.pem", &shared_test_key().private_pem);
        let config = format!(
            "client_id = {TEST_CLIENT_ID:?}\ninstallation_id = {TEST_INSTALLATION_ID}\nprivate_key_path = {:?}\n\
             api_url = {:?}\ntls_roots = \"system\"\nretry_deadline_secs = 2\n",
            key_file.display().to_string(),
            emu.base_url(),
        );
        let host = Serve::builder()
            .dir(dir)
            .env("SSL_CERT_FILE", ca_file.to_str().unwrap())
            .plugin("github.so", &fixtures().github_app_auth, Some(&config))
            .start();
        let reply = host.get("/admin/github-installation-token", host.admin_token());
        if trusted {
            assert_eq!(reply.status, 200, "{}\n{}", reply.body, host.log());
            assert!(emu.is_token_valid(reply.json()["token"].as_str().unwrap()));
        } else {
            assert_eq!(reply.status, 500, "{}", reply.body);
            assert!(host.log().contains("operating system's trust store"), "{}", host.log());
        }
    }
    assert_eq!(emu.mints(), 1);
}
