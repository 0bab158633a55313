//! The `github-emulator` binary: generates a key, says it is an emulator, serves on its address;
//! and configurations the library refuses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use github_emulator::{AppConfig, Emulator, EmulatorConfig, InstallationConfig, StartError, shared_test_key};
use serde_json::json;

use crate::support::*;

#[test]
fn binary_generates_a_key_and_mints_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("app.pem");
    let child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
        .args(["--listen", "127.0.0.1:0", "--generate-key-to"])
        .arg(&key_path)
        .args([
            "--app-id",
            "77",
            "--installation-id",
            "88",
            "--org",
            "demo",
            "--repos",
            "one,two",
            "--token-ttl-secs",
            "120",
            "--also-installed",
            "99:other:three",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner = lines.next().expect("a line").expect("utf-8");
    assert!(banner.contains("EMULATOR") && banner.contains("not GitHub"), "{banner}");
    let api_line = lines.next().expect("a line").expect("utf-8");
    let base = api_line.split_whitespace().last().expect("url").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{api_line}");

    let private_pem = std::fs::read_to_string(&key_path).expect("key written");
    assert!(private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let jwt = jwt_at(SystemTime::now(), json!(77), -60, 540, &private_pem);
    let reply = call(
        "POST",
        &format!("{base}/app/installations/88/access_tokens"),
        Some(&format!("Bearer {jwt}")),
        Some(&json!({"repositories": ["two"]})),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["repositories"][0]["full_name"], "demo/two");

    // The second installation, on its own organization with its own repositories.
    let url = format!("{base}/app/installations/99/access_tokens");
    let other = call("POST", &url, Some(&format!("Bearer {jwt}")), Some(&json!({"repositories": ["three"]})));
    assert_eq!(other.body["repositories"][0]["full_name"], "other/three", "{}", other.body);
    let refused = call("POST", &url, Some(&format!("Bearer {jwt}")), Some(&json!({"repositories": ["two"]})));
    assert_github_error(&refused, 422, "not accessible");
}

#[test]
fn a_malformed_further_installation_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
        .args(["--listen", "127.0.0.1:0", "--public-key", "/dev/null", "--also-installed", "globex"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--also-installed \"globex\": expected ID:ORG:REPO,REPO..."), "{err}");
}

#[test]
fn bad_configurations_are_refused_at_start() {
    let mut config = EmulatorConfig::with_test_app("not a key");
    match Emulator::start(config.clone()) {
        Err(StartError::Config(message)) => assert!(message.contains("public key"), "{message}"),
        other => panic!("expected a config error, got {:?}", other.err()),
    }
    config.apps = vec![AppConfig::new(1, "Iv1", &shared_test_key().public_pem)];
    config.installations = vec![InstallationConfig::new(5, 2, "orphan")];
    assert!(matches!(Emulator::start(config), Err(StartError::Config(m)) if m.contains("no app with id 2")));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = EmulatorConfig::with_test_app(&shared_test_key().public_pem);
    config.listen = taken.local_addr().unwrap();
    assert!(matches!(Emulator::start(config), Err(StartError::Bind { .. })));
}

/// Stops the emulator process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
