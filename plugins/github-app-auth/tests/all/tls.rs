//! TLS trust: GitHub Enterprise Server behind a private CA (the emulator's TLS mode with a CA
//! made at run time). `ca_bundle_path` trusts that CA; `tls_roots = "system"` trusts the
//! operating system's store; without either the error says which setting to use.

use std::path::Path;
use std::time::Duration;

use github_app_auth::{Config, Error, GitHubAppAuth};
use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, TEST_CLIENT_ID, TEST_INSTALLATION_ID, TestCa, shared_test_key,
};

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
/// `SSL_CERT_FILE`, which only a fresh process can be given safely, so this test runs the one
/// below in a child process of this test binary.
#[test]
fn tls_roots_system_trusts_the_operating_systems_store() {
    let (emu, ca) = tls_emulator();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("system-ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    // The child generates no key of its own: it must sign with the one this emulator knows.
    let key_file = dir.path().join("app.pem");
    std::fs::write(&key_file, &shared_test_key().private_pem).unwrap();
    let exe = std::env::current_exe().unwrap();
    let run = |ssl_cert_file: &Path| {
        std::process::Command::new(&exe)
            .args(["--exact", "tls::system_roots_in_a_child_process", "--ignored", "--nocapture", "--test-threads=1"])
            .env("SSL_CERT_FILE", ssl_cert_file)
            .env("GITHUB_APP_AUTH_TEST_TLS_URL", emu.base_url())
            .env("GITHUB_APP_AUTH_TEST_KEY_PATH", &key_file)
            .output()
            .unwrap()
    };
    let trusted = run(&ca_file);
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stdout));
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert!(out.contains("system roots: token"), "{out}");
    assert_eq!(emu.mints(), 1);

    let other = TestCa::generate().unwrap();
    std::fs::write(&ca_file, other.ca_pem()).unwrap();
    let untrusted = run(&ca_file);
    let out = String::from_utf8_lossy(&untrusted.stdout);
    assert!(untrusted.status.success(), "{out}");
    assert!(out.contains("system roots: error: TLS with") && out.contains("operating system's trust store"), "{out}");
    assert_eq!(emu.mints(), 1);
}

#[test]
#[ignore = "run by tls_roots_system_trusts_the_operating_systems_store in a child process"]
fn system_roots_in_a_child_process() {
    let (Ok(url), Ok(key_path)) =
        (std::env::var("GITHUB_APP_AUTH_TEST_TLS_URL"), std::env::var("GITHUB_APP_AUTH_TEST_KEY_PATH"))
    else {
        return;
    };
    let toml = format!(
        "client_id = {TEST_CLIENT_ID:?}\ninstallation_id = {TEST_INSTALLATION_ID}\nprivate_key_path = {key_path:?}\n\
         api_url = {url:?}\ntls_roots = \"system\"\n"
    );
    let mut config = load(&toml, &[], None).expect("loads");
    config.retry_deadline = Duration::from_secs(2);
    match GitHubAppAuth::new(&config).token() {
        Ok(_) => println!("system roots: token"),
        Err(err) => println!("system roots: error: {err}"),
    }
}
