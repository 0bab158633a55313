//! One blocking request to plughost's token route.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{CONNECT_TIMEOUT, Config, TlsTrust};
use crate::secret::{InvalidSecret, Secret};
use crate::time::parse_rfc3339;

/// Largest response body read from plughost.
const MAX_BODY: u64 = 64 * 1024;

/// A token as plughost issued it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The installation token.
    pub token: Secret,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Why plughost gave no token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `PLATFORM_URL` is not set, so there is nobody to ask.
    #[error("PLATFORM_URL is not set")]
    NotConfigured,
    /// The bearer token file is missing, unreadable or empty.
    #[error("cannot read the workspace bearer token {path}: {reason}")]
    Bearer {
        /// `$CONFIGS_DIR/.auth_token`.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No HTTP answer: connection refused, DNS, TLS, timeout.
    #[error("cannot reach plughost at {url}: {source}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The TLS handshake with plughost failed, typically a certificate from a CA not trusted here.
    /// Nothing was sent.
    #[error("TLS with plughost at {url} failed ({reason}): {hint}")]
    Tls {
        /// The endpoint.
        url: String,
        /// rustls' reason.
        reason: String,
        /// Which setting would trust the server.
        hint: String,
    },
    /// 401/403: plughost does not accept our bearer token (revoked workspace, wrong token file).
    #[error(
        "plughost refused the bearer token from {token_path} (HTTP {status} at {url}): the workspace token is missing, wrong or revoked"
    )]
    Unauthorized {
        /// The endpoint.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The bearer file used.
        token_path: PathBuf,
    },
    /// Any other non-200 answer, with plughost's `error` message.
    #[error("plughost answered HTTP {status} at {url}: {message}")]
    Status {
        /// The endpoint.
        url: String,
        /// The status.
        status: u16,
        /// plughost's `{"error": ...}` (sanitised, shortened).
        message: String,
    },
    /// A 200 whose body is not `{"token","expires_at"}` with sane values.
    #[error("plughost at {url} sent an unusable answer: {reason}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What was wrong (never contains the body).
        reason: String,
    },
    /// plughost handed out a token that has already expired.
    #[error("plughost at {url} returned a token that expired at {expires_at}", expires_at = crate::time::format_rfc3339(*.expires_at))]
    Expired {
        /// The endpoint.
        url: String,
        /// Its expiry.
        expires_at: u64,
    },
}

impl FetchError {
    /// True when the failure is about our authorisation, not availability: then neither a
    /// cached token nor `GH_TOKEN` may stand in (a revoked workspace must stop working).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Asks plughost for the installation token for git host `host`, with short timeouts so git
/// never hangs.
pub fn fetch_token(config: &Config, host: &str, now: u64) -> Result<IssuedToken, FetchError> {
    let url = config.token_endpoint(host).ok_or(FetchError::NotConfigured)?;
    let token_path = config.auth_token_path();
    let bearer = fs::read_to_string(&token_path)
        .map_err(|e| FetchError::Bearer { path: token_path.clone(), reason: e.to_string() })
        .and_then(|text| {
            Secret::new(text)
                .map_err(|e: InvalidSecret| FetchError::Bearer { path: token_path.clone(), reason: e.to_string() })
        })?;

    use ureq::tls::{RootCerts, TlsConfig};
    let roots = match &config.tls {
        TlsTrust::Builtin => RootCerts::WebPki,
        TlsTrust::System => RootCerts::PlatformVerifier,
        TlsTrust::Bundle(bundle) => RootCerts::new_with_certs(bundle.certs()),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        // The bearer goes through a proxy only when PLUGHOST_PLATFORM_PROXY names one, never
        // through HTTP(S)_PROXY/ALL_PROXY picked up from the workspace's environment.
        .proxy(config.platform_proxy.as_ref().map(|p| p.0.clone()))
        .timeout_global(Some(config.request_timeout))
        .timeout_connect(Some(CONNECT_TIMEOUT.min(config.request_timeout)))
        .http_status_as_error(false)
        .user_agent(concat!("git-credential-plughost/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", bearer.expose()))
        .header("Accept", "application/json")
        .call()
        .map_err(|e| match tls_failure(&e) {
            Some(reason) => FetchError::Tls { url: url.clone(), reason, hint: tls_hint(config) },
            None => FetchError::Unreachable { url: url.clone(), source: Box::new(e) },
        })?;

    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| FetchError::Unreachable { url: url.clone(), source: Box::new(ureq::Error::Io(e)) })?;

    match status {
        200 => {}
        401 | 403 => {
            return Err(FetchError::Unauthorized { url, status, token_path });
        }
        _ => {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| sanitise(&b.error))
                .unwrap_or_else(|_| "no error message".to_owned());
            return Err(FetchError::Status { url, status, message });
        }
    }
    let bad = |reason: &str| FetchError::BadResponse { url: url.clone(), reason: reason.to_owned() };
    let parsed: TokenBody =
        serde_json::from_slice(&body).map_err(|_| bad("body is not {\"token\",\"expires_at\"} JSON"))?;
    let token = Secret::new(parsed.token).map_err(|e| bad(&format!("token: {e}")))?;
    let expires_at = parse_rfc3339(&parsed.expires_at).ok_or_else(|| bad("expires_at is not an RFC 3339 time"))?;
    if expires_at <= now {
        return Err(FetchError::Expired { url, expires_at });
    }
    Ok(IssuedToken { token, expires_at })
}

/// rustls' reason, if the TLS handshake is what failed (ureq wraps some in an `io::Error`).
fn tls_failure(err: &ureq::Error) -> Option<String> {
    match err {
        ureq::Error::Rustls(e) => Some(e.to_string()),
        ureq::Error::Tls(e) => Some((*e).to_owned()),
        ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).map(ToString::to_string),
        _ => None,
    }
}

fn tls_hint(config: &Config) -> String {
    match &config.tls {
        TlsTrust::Builtin => "if plughost's certificate comes from a private CA, set PLUGHOST_CA_BUNDLE to that CA's \
                              PEM file, or PLUGHOST_TLS_ROOTS=system to trust the system's trust store"
            .to_owned(),
        TlsTrust::System => "the system's trust store (PLUGHOST_TLS_ROOTS=system) does not accept plughost's \
                             certificate: add its CA there, or set PLUGHOST_CA_BUNDLE to that CA's PEM file"
            .to_owned(),
        TlsTrust::Bundle(bundle) => format!(
            "PLUGHOST_CA_BUNDLE={} does not hold the CA that signed plughost's certificate",
            bundle.path.display()
        ),
    }
}

/// Keeps a server message printable on one line and short.
fn sanitise(message: &str) -> String {
    let one_line: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_keeps_messages_on_one_short_line() {
        assert_eq!(sanitise("no GitHub App\nconfigured"), "no GitHub App configured");
        assert_eq!(sanitise(&"é".repeat(300)).chars().count(), 203);
    }
}
