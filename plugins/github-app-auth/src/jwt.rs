//! The App JWT: RS256, `iat` 60 s in the past (GitHub's advice against clock drift), `exp`
//! 9 minutes ahead (10 minutes after `iat`, GitHub's maximum), `iss` the client or app id.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, Header};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::config::{AppIdentity, PrivateKey};
use crate::error::Error;

const BACKDATE: Duration = Duration::from_secs(60);
const LIFETIME_AHEAD: Duration = Duration::from_secs(9 * 60);

pub(crate) struct AppJwtSigner {
    key: PrivateKey,
    issuer: Value,
}

impl AppJwtSigner {
    pub fn new(identity: &AppIdentity, key: PrivateKey) -> Self {
        let issuer = match identity {
            AppIdentity::AppId(id) => json!(id),
            AppIdentity::ClientId(id) => json!(id),
        };
        AppJwtSigner { key, issuer }
    }

    /// A JWT valid around `now`: pass GitHub's time (from a `Date` header) to sign for GitHub's clock.
    pub fn sign(&self, now: SystemTime) -> Result<SecretString, Error> {
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = json!({
            "iat": secs(now - BACKDATE),
            "exp": secs(now + LIFETIME_AHEAD),
            "iss": self.issuer,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, self.key.encoding_key())
            .map(SecretString::from)
            .map_err(|e| Error::Signing { reason: e.to_string() })
    }
}
