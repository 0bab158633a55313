//! The emulator's TLS mode: a throwaway certificate authority and a server certificate it signed
//! for the loopback names, generated at run time (nothing is committed), so clients can be tested
//! with a private CA the way GitHub Enterprise Server behind a corporate CA is met in the field.

use std::fmt;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why a test CA could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("test TLS: {0}")]
pub struct TlsError(String);

/// A certificate authority made for one test run, and a server certificate it signed for
/// `localhost`, `127.0.0.1` and `::1`. Clients trust it by its [`ca_pem`](Self::ca_pem) (a CA
/// bundle); nothing else does. `Debug` does not show the server's private key.
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    server_cert_der: Vec<u8>,
    server_cert_pem: String,
    server_key_der: Vec<u8>,
}

impl TestCa {
    /// Generates a new CA and server certificate (ECDSA P-256: fast, unlike RSA).
    pub fn generate() -> Result<Self, TlsError> {
        fn err(what: &'static str) -> impl Fn(rcgen::Error) -> TlsError {
            move |e| TlsError(format!("{what}: {e}"))
        }
        let ca_key = KeyPair::generate().map_err(err("CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
        ca_params.distinguished_name.push(DnType::CommonName, "github-emulator throwaway test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).map_err(err("CA certificate"))?;

        let server_key = KeyPair::generate().map_err(err("server key"))?;
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let mut server_params = CertificateParams::new(names).map_err(err("server"))?;
        server_params.distinguished_name.push(DnType::CommonName, "github-emulator");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params.signed_by(&server_key, &ca, &ca_key).map_err(err("server certificate"))?;

        Ok(TestCa {
            ca_pem: ca.pem(),
            server_cert_der: server.der().to_vec(),
            server_cert_pem: server.pem(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM: the bundle a client must be given to trust the server.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's certificate, PEM.
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// A rustls server configuration presenting the server certificate (HTTP/1.1 only).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(vec![CertificateDer::from(self.server_cert_der.clone())], key)
            })
            .map_err(|e| TlsError(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("ca_pem", &self.ca_pem).field("server_key", &"[REDACTED]").finish()
    }
}
