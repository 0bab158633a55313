//! How the helper reaches plughost: https with a private CA (`PLUGHOST_CA_BUNDLE`, or the
//! system's store with `PLUGHOST_TLS_ROOTS=system`), plain http only to this machine unless
//! `PLUGHOST_PLATFORM_ALLOW_HTTP=1`, and a proxy only when `PLUGHOST_PLATFORM_PROXY` names one:
//! the workspace's `HTTP_PROXY` and friends never see the bearer.

use github_emulator::TestCa;

use crate::support::proxy::RecordingProxy;
use crate::support::*;

fn helper_get(sandbox: &Sandbox) -> std::process::Output {
    sandbox.helper(&["get"], "protocol=https\nhost=github.com\n\n")
}

#[test]
fn https_with_a_private_ca_works_with_the_ca_bundle_and_fails_clearly_without() {
    let ca = TestCa::generate().unwrap();
    let server = TokenServer::start_tls(3600, 600, &ca);
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let mut sandbox = Sandbox::new(&server.url);
    let ca_file = sandbox.path("corp-ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();

    let out = helper_get(&sandbox);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("TLS with plughost at https://127.0.0.1:") && err.contains("certificate"), "{err}");
    assert!(err.contains("PLUGHOST_CA_BUNDLE") && err.contains("PLUGHOST_TLS_ROOTS=system"), "{err}");
    assert_eq!(server.requests(), 0, "nothing was sent before the handshake failed");

    sandbox.set("PLUGHOST_CA_BUNDLE", &ca_file.display().to_string());
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
    assert_eq!(server.requests(), 1);
}

#[test]
fn the_system_trust_store_is_used_when_asked() {
    let ca = TestCa::generate().unwrap();
    let server = TokenServer::start_tls(3600, 600, &ca);
    let mut sandbox = Sandbox::new(&server.url);
    let ca_file = sandbox.path("system-ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    // rustls-platform-verifier reads the system's CA files; SSL_CERT_FILE points them here.
    sandbox.set("SSL_CERT_FILE", &ca_file.display().to_string()).set("PLUGHOST_TLS_ROOTS", "system");
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));

    std::fs::write(&ca_file, TestCa::generate().unwrap().ca_pem()).unwrap();
    std::fs::remove_dir_all(sandbox.cache_dir()).unwrap();
    let err = stderr(&helper_get(&sandbox));
    assert!(err.contains("TLS with plughost") && err.contains("system's trust store"), "{err}");
}

#[test]
fn tls_settings_are_checked_and_named() {
    let server = TokenServer::start(3600, 600);
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_CA_BUNDLE", "/nonexistent/ca.pem");
    let err = stderr(&helper_get(&sandbox));
    assert!(err.contains("PLUGHOST_CA_BUNDLE=/nonexistent/ca.pem") && err.contains("cannot read"), "{err}");
    std::fs::write(sandbox.path("empty.pem"), "nothing\n").unwrap();
    sandbox.set("PLUGHOST_CA_BUNDLE", &sandbox.path("empty.pem").display().to_string());
    let err = stderr(&helper_get(&sandbox));
    assert!(err.contains("no PEM certificate"), "{err}");
    sandbox.unset("PLUGHOST_CA_BUNDLE").set("PLUGHOST_TLS_ROOTS", "mozilla");
    let err = stderr(&helper_get(&sandbox));
    assert!(err.contains("PLUGHOST_TLS_ROOTS=\"mozilla\"") && err.contains("system"), "{err}");
    assert_eq!(server.requests(), 0);
}

#[test]
fn plain_http_to_another_machine_is_refused_naming_the_setting() {
    let mut sandbox = Sandbox::new("http://plughost.internal.invalid:8080");
    let out = helper_get(&sandbox);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("PLATFORM_URL=\"http://plughost.internal.invalid:8080\"")
            && err.contains("https://")
            && err.contains("PLUGHOST_PLATFORM_ALLOW_HTTP=1"),
        "{err}"
    );
    // Loopback needs no opt-in (every other test here uses http://127.0.0.1); localhost neither.
    let server = TokenServer::start(3600, 600);
    sandbox.set("PLATFORM_URL", &server.url.replace("127.0.0.1", "localhost"));
    let out = sandbox.fill("https", "github.com");
    assert!(password(&out).is_some(), "{}", stderr(&out));
}

#[test]
fn plain_http_to_another_machine_works_when_allowed() {
    // The remote name is never looked up: the explicit proxy tunnels it to the local server.
    let server = TokenServer::start(3600, 600);
    let proxy = RecordingProxy::start(server.url.trim_start_matches("http://"));
    let mut sandbox = Sandbox::new("http://plughost.internal.invalid:8080");
    sandbox.set("PLUGHOST_PLATFORM_ALLOW_HTTP", "1").set("PLUGHOST_PLATFORM_PROXY", &proxy.url);
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
    assert_eq!(proxy.requests(), ["CONNECT plughost.internal.invalid:8080 HTTP/1.1"]);
}

#[test]
fn proxy_variables_of_the_workspace_are_not_used_for_plughost() {
    let server = TokenServer::start(3600, 600);
    let proxy = RecordingProxy::start(server.url.trim_start_matches("http://"));
    let mut sandbox = Sandbox::new(&server.url);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        sandbox.set(var, &proxy.url);
    }
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
    assert!(proxy.requests().is_empty(), "the bearer went through {:?}", proxy.requests());
    assert_eq!(server.requests(), 1);
}

#[test]
fn an_explicit_platform_proxy_is_used() {
    let server = TokenServer::start(3600, 600);
    let proxy = RecordingProxy::start(server.url.trim_start_matches("http://"));
    let mut sandbox = Sandbox::new(&server.url);
    sandbox.set("PLUGHOST_PLATFORM_PROXY", &proxy.url).set("NO_PROXY", "127.0.0.1,localhost");
    let out = sandbox.fill("https", "github.com");
    assert_eq!(password(&out).unwrap(), server.current().unwrap().token, "{}", stderr(&out));
    let target = server.url.trim_start_matches("http://");
    assert_eq!(proxy.requests(), [format!("CONNECT {target} HTTP/1.1")], "NO_PROXY does not undo an explicit choice");

    sandbox.set("PLUGHOST_PLATFORM_PROXY", "not a url");
    let err = stderr(&helper_get(&sandbox));
    assert!(err.contains("PLUGHOST_PLATFORM_PROXY"), "{err}");
}
