//! Authentication as GitHub does it: App JWTs (RS256) and installation tokens.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::api::ApiError;
use crate::state::{App, Shared, TokenRecord};

/// GitHub refuses App JWTs that live longer than this.
const MAX_JWT_LIFETIME: Duration = Duration::from_secs(600);

const JWT_DOCS: &str = "https://docs.github.com/rest";

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message, JWT_DOCS)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

/// Checks `Authorization: Bearer <JWT>` and returns the App it authenticates.
pub(crate) fn app_from_jwt<'a>(shared: &'a Shared, headers: &HeaderMap) -> Result<&'a App, ApiError> {
    let jwt = bearer(headers).ok_or_else(|| unauthorized("A JSON web token could not be decoded"))?;

    // The issuer picks the key, so read it before the signature can be checked.
    let claims = unverified_claims(jwt).ok_or_else(|| unauthorized("A JSON web token could not be decoded"))?;
    let iss =
        issuer(&claims).ok_or_else(|| unauthorized("'Issuer' claim ('iss') must be an Integer or a client ID"))?;
    let app = shared.app_by_issuer(&iss).ok_or_else(|| unauthorized("Integration not found"))?;

    let mut verify = Validation::new(Algorithm::RS256);
    // Time claims are checked below against the emulator's own (possibly skewed) clock.
    verify.validate_exp = false;
    verify.validate_aud = false;
    verify.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Value>(jwt, &app.key, &verify)
        .map_err(|_| unauthorized("A JSON web token could not be decoded"))?;

    check_times(&claims, shared.now(), shared.jwt_leeway)?;
    Ok(app)
}

/// The claims of an RS256 JWT, signature NOT checked: only to learn who it claims to be.
fn unverified_claims(jwt: &str) -> Option<Value> {
    let mut peek = Validation::new(Algorithm::RS256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    peek.required_spec_claims = HashSet::new();
    let header = jsonwebtoken::decode_header(jwt).ok()?;
    if header.alg != Algorithm::RS256 {
        return None;
    }
    jsonwebtoken::decode::<Value>(jwt, &jsonwebtoken::DecodingKey::from_secret(&[]), &peek).ok().map(|d| d.claims)
}

fn issuer(claims: &Value) -> Option<String> {
    match claims.get("iss") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The App a request's JWT claims to come from, unverified: for wording rate-limit messages,
/// which GitHub sends before it checks anything else.
pub(crate) fn claimed_app<'a>(shared: &'a Shared, headers: &HeaderMap) -> Option<&'a App> {
    let claims = unverified_claims(bearer(headers)?)?;
    shared.app_by_issuer(&issuer(&claims)?)
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn check_times(claims: &Value, now: SystemTime, leeway: Duration) -> Result<(), ApiError> {
    let now = unix(now);
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    let iat_msg = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
    let exp_msg = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| unauthorized(iat_msg))?;
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| unauthorized(exp_msg))?;
    if iat > now + leeway {
        return Err(unauthorized(iat_msg));
    }
    if exp <= now {
        return Err(unauthorized(exp_msg));
    }
    let max = i64::try_from(MAX_JWT_LIFETIME.as_secs()).unwrap_or(i64::MAX) + leeway;
    if exp - iat > max || exp - now > max {
        return Err(unauthorized("'Expiration time' claim ('exp') is too far in the future"));
    }
    Ok(())
}

/// Checks `Authorization: token <t>` (or `Bearer <t>`) carrying a live installation token.
pub(crate) fn installation_token(shared: &Shared, headers: &HeaderMap) -> Result<(String, TokenRecord), ApiError> {
    let bad = || ApiError::new(StatusCode::UNAUTHORIZED, "Bad credentials", JWT_DOCS);
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(bad)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(bad)?;
    if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(bad());
    }
    let token = token.trim();
    let record = shared.live_token(token).ok_or_else(bad)?;
    Ok((token.to_owned(), record))
}
