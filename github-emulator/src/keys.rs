//! RSA key pairs generated at run time, so no private key is ever committed.
//!
//! Measured on the project's 2-core machine: a 2048-bit key takes 1 to 4 s in a debug build
//! (prime search is random), which is why [`shared_test_key`] generates one per process.

use std::fmt;
use std::sync::OnceLock;

use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;

/// A freshly generated App key pair. `private_pem` is PKCS#1 (`BEGIN RSA PRIVATE KEY`), the
/// form GitHub hands out; `public_pem` is SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
#[derive(Clone)]
pub struct TestKeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

/// Why a key pair could not be generated or encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate an RSA key pair: {0}")]
pub struct KeyError(String);

impl TestKeyPair {
    /// Generates a new 2048-bit key pair (GitHub App keys are 2048-bit RSA).
    pub fn generate() -> Result<Self, KeyError> {
        let mut rng = rand::thread_rng();
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| KeyError(e.to_string()))?;
        let private_pem = key.to_pkcs1_pem(LineEnding::LF).map_err(|e| KeyError(e.to_string()))?;
        let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| KeyError(e.to_string()))?;
        Ok(TestKeyPair { private_pem: private_pem.to_string(), public_pem })
    }
}

impl fmt::Debug for TestKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKeyPair").field("private_pem", &"[REDACTED]").finish_non_exhaustive()
    }
}

/// One key pair per process, generated on first use and shared by every test in the binary.
///
/// # Panics
///
/// If the key cannot be generated: this is meant for tests, where that is a broken machine.
pub fn shared_test_key() -> &'static TestKeyPair {
    static KEY: OnceLock<TestKeyPair> = OnceLock::new();
    KEY.get_or_init(|| TestKeyPair::generate().expect("generating the shared test key"))
}
