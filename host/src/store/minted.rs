//! Records of the GitHub tokens minted for workspace scopes ([`crate::api::scoped_tokens`]), kept
//! in the store so that `DELETE /admin/workspaces/{id}/tokens` on any replica revokes, at GitHub,
//! tokens any replica minted.
//!
//! A record is one (token, workspace it was served to): with `share_scoped_tokens` a token
//! served to several workspaces has a record for each, and revoking one workspace revokes the
//! token only when no other workspace with a live workspace token holds it.
//!
//! The secret is needed to revoke the token, so it is stored, but sealed: AES-256-GCM
//! (`ring::aead`) under a key derived with HKDF-SHA256 from the admin token, which every replica
//! shares and the database does not hold; a fresh random nonce per record; the provider name as
//! associated data. A SHA-256 of the secret identifies a token without unsealing it. A database
//! dump alone reveals no token, and a host with another admin token cannot open the records.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};

/// HKDF salt and info: version the derivation, so a later scheme can tell its records apart.
const HKDF_SALT: &[u8] = b"plughost minted-token records";
const HKDF_INFO: &[u8] = b"v1 aes-256-gcm";

/// Why a record could not be sealed or opened. Never carries the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the system random generator failed")]
    Random,
    #[error("cannot seal a minted token's secret")]
    Seal,
    /// Another admin token sealed it, or the record was altered.
    #[error("cannot open a minted token's record (sealed under another admin token, or altered)")]
    Open,
}

/// Seals and opens minted tokens' secrets. `Debug` shows nothing of the key.
pub struct MintSealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for MintSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintSealer").finish_non_exhaustive()
    }
}

/// HKDF output length for the AEAD key.
struct KeyLen;

impl ring::hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        AES_256_GCM.key_len()
    }
}

impl MintSealer {
    /// The sealer of every host sharing `admin_token`.
    pub fn from_admin_token(admin_token: &SecretString) -> MintSealer {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(admin_token.expose_secret().as_bytes());
        let mut key = [0u8; 32];
        prk.expand(&[HKDF_INFO], KeyLen)
            .and_then(|okm| okm.fill(&mut key))
            .expect("32 bytes is within HKDF-SHA256's output limit");
        let unbound = UnboundKey::new(&AES_256_GCM, &key).expect("32 bytes is an AES-256 key");
        key.fill(0);
        MintSealer { key: LessSafeKey::new(unbound), random: SystemRandom::new() }
    }

    /// `secret` sealed for `provider` (bound to it as associated data).
    pub fn seal(&self, provider: &str, secret: &SecretString) -> Result<SealedSecret, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + secret.expose_secret().len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(secret.expose_secret().as_bytes());
        let (head, body) = sealed.split_at_mut(NONCE_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(provider.as_bytes()), body)
            .map_err(|_| SealError::Seal)?;
        debug_assert_eq!(head, &nonce);
        sealed.extend_from_slice(tag.as_ref());
        Ok(SealedSecret(sealed))
    }

    /// The secret `sealed` holds, if this sealer sealed it for `provider`.
    pub fn open(&self, provider: &str, sealed: &SealedSecret) -> Result<SecretString, SealError> {
        if sealed.0.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.0.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain =
            self.key.open_in_place(nonce, Aad::from(provider.as_bytes()), &mut body).map_err(|_| SealError::Open)?;
        let secret = std::str::from_utf8(plain).map(|s| SecretString::from(s.to_owned())).map_err(|_| SealError::Open);
        body.fill(0);
        secret
    }
}

/// A sealed secret: nonce, ciphertext, tag. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub(crate) Vec<u8>);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// A record to write: a token minted (or served, in shared mode) for a workspace.
#[derive(Debug, Clone)]
pub struct MintRecord {
    pub workspace_id: String,
    /// The plugin that minted it, which revokes it.
    pub provider: String,
    /// The scope's canonical form (`Scope::key`) and GitHub host, for operators reading the table.
    pub scope_key: String,
    pub sealed: SealedSecret,
    /// SHA-256 of the secret: identifies the token across its holders' records.
    pub secret_sha256: [u8; 32],
    /// Unix seconds.
    pub expires_at: i64,
}

/// A token whose record a workspace's revocation removed ([`super::Store::claim_mints`]).
#[derive(Debug, Clone)]
pub struct ClaimedMint {
    pub provider: String,
    pub sealed: SealedSecret,
    pub secret_sha256: [u8; 32],
    /// Unix seconds.
    pub expires_at: i64,
    /// Another workspace with a live workspace token holds it: it must not be revoked.
    pub still_held: bool,
}

/// SHA-256 of a minted secret.
pub fn secret_sha256(secret: &SecretString) -> [u8; 32] {
    super::token_hash(secret.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_opens_only_under_the_admin_token_that_sealed_it() {
        let secret = SecretString::from("ghs_mintedsecret0123".to_owned());
        let sealer = MintSealer::from_admin_token(&SecretString::from("admin-one".to_owned()));
        let sealed = sealer.seal("github-app-auth", &secret).unwrap();
        assert!(!sealed.0.windows(6).any(|w| w == b"minted"), "the secret is not in the record in clear");
        assert_eq!(sealer.open("github-app-auth", &sealed).unwrap().expose_secret(), secret.expose_secret());
        // A fresh nonce per record: the same secret seals differently.
        assert_ne!(sealer.seal("github-app-auth", &secret).unwrap(), sealed);
        let other = MintSealer::from_admin_token(&SecretString::from("admin-two".to_owned()));
        assert!(matches!(other.open("github-app-auth", &sealed), Err(SealError::Open)));
        // Bound to its provider.
        assert!(matches!(sealer.open("another-plugin", &sealed), Err(SealError::Open)));
        let mut altered = sealed.clone();
        *altered.0.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open("github-app-auth", &altered), Err(SealError::Open)));
    }

    #[test]
    fn records_never_print_a_secret() {
        let secret = SecretString::from("ghs_mintedsecret0123".to_owned());
        let sealer = MintSealer::from_admin_token(&SecretString::from("admin-one-secret".to_owned()));
        let sealed = sealer.seal("p", &secret).unwrap();
        let record = MintRecord {
            workspace_id: "ws".to_owned(),
            provider: "p".to_owned(),
            scope_key: "{}".to_owned(),
            sealed: sealed.clone(),
            secret_sha256: secret_sha256(&secret),
            expires_at: 0,
        };
        let claimed = ClaimedMint {
            provider: "p".to_owned(),
            sealed: sealed.clone(),
            secret_sha256: record.secret_sha256,
            expires_at: 0,
            still_held: false,
        };
        let printed = format!("{record:?} {claimed:?} {sealer:?} {:?}", SealError::Open);
        assert!(!printed.contains("mintedsecret") && !printed.contains("admin-one"), "{printed}");
        let hex: String = sealed.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!printed.contains(&hex[..16]), "{printed}");
        assert!(!printed.contains(&format!("{:?}", &sealed.0[..4])), "{printed}");
    }
}
