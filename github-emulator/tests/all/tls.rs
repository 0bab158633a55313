//! TLS mode: https with a server certificate from a throwaway CA made at run time. Clients that
//! are given the CA succeed; the others fail the handshake, as with GitHub Enterprise Server
//! behind a private CA.

use github_emulator::{EmulatorConfig, TEST_INSTALLATION_ID, TEST_ORG, TestCa, shared_test_key};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::support::*;

fn trusting(ca: &TestCa) -> ureq::Agent {
    let cert = Certificate::from_pem(ca.ca_pem().as_bytes()).expect("CA PEM parses");
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[cert])).build())
        .build()
        .into()
}

#[test]
fn https_for_clients_that_trust_the_test_ca_and_a_handshake_failure_for_others() {
    let ca = TestCa::generate().expect("test CA");
    assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    let emu = emulator_with(EmulatorConfig::with_test_app(&shared_test_key().public_pem).tls(&ca));
    let base = emu.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    assert!(emu.ghes_base_url().starts_with("https://"));

    let auth = format!("Bearer {}", good_jwt());
    let agent = trusting(&ca);
    let url = format!("{base}/app/installations/{TEST_INSTALLATION_ID}/access_tokens");
    let minted = try_call_with(&agent, "POST", &url, Some(&auth), None).expect("TLS with the test CA");
    assert_eq!(minted.status, 201, "{}", minted.body);
    assert!(emu.is_token_valid(minted.body["token"].as_str().unwrap()));
    let org = try_call_with(&agent, "GET", &format!("{base}/orgs/{TEST_ORG}/installation"), Some(&auth), None).unwrap();
    assert!(org.body["access_tokens_url"].as_str().unwrap().starts_with("https://"), "{}", org.body);
    let localhost = base.replace("127.0.0.1", "localhost");
    let by_name = try_call_with(&agent, "GET", &format!("{localhost}/app/installations"), Some(&auth), None);
    assert_eq!(by_name.expect("the certificate names localhost too").status, 200);

    let err = try_call("POST", &url, Some(&auth), None).err().expect("the built-in roots do not include the test CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let plain = try_call("POST", &url.replace("https://", "http://"), Some(&auth), None);
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status >= 400), "no plain http on the TLS port");
    assert_eq!(emu.mints(), 1);
}
