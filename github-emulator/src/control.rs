//! `/_emulator/...`: steering the emulator from another process. Unauthenticated by design
//! (the emulator listens on loopback for tests); never consumes injected faults.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{Fault, FaultRequest};
use crate::server::{Attempt, Stats};
use crate::state::Shared;

type AppState = Arc<Shared>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/attempts", get(attempts))
        .route("/_emulator/faults", post(add_fault).delete(clear_faults))
        .route("/_emulator/clock-skew", put(set_clock_skew))
        .route("/_emulator/token-ttl", put(set_token_ttl))
        .route("/_emulator/tokens/check", post(check_token))
}

async fn stats(State(shared): State<AppState>) -> Json<Stats> {
    Json(Stats {
        mints: shared.mints(),
        requests: shared.requests(),
        clock_skew_secs: shared.skew_secs(),
        pending_faults: shared.pending_faults(),
    })
}

async fn attempts(State(shared): State<AppState>) -> Json<Vec<Attempt>> {
    Json(shared.attempts())
}

async fn add_fault(State(shared): State<AppState>, Json(request): Json<FaultRequest>) -> StatusCode {
    shared.push_fault(Fault::from(request.kind), request.count);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(shared): State<AppState>) -> StatusCode {
    shared.clear_faults();
    shared.clear_rate_limit();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Secs {
    secs: i64,
}

async fn set_clock_skew(State(shared): State<AppState>, Json(body): Json<Secs>) -> StatusCode {
    shared.set_skew_secs(body.secs);
    StatusCode::NO_CONTENT
}

async fn set_token_ttl(State(shared): State<AppState>, Json(body): Json<Secs>) -> StatusCode {
    match u64::try_from(body.secs) {
        Ok(secs) => {
            shared.set_token_ttl(Duration::from_secs(secs));
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[derive(Deserialize)]
struct CheckToken {
    token: String,
}

/// `{"valid": bool, "installation_id", "expires_at", "repositories", "permissions"}`; the token
/// goes in the body so it never lands in a URL or access log.
async fn check_token(State(shared): State<AppState>, Json(body): Json<CheckToken>) -> Json<Value> {
    let valid = shared.live_token(&body.token).is_some();
    match shared.token(&body.token) {
        None => Json(json!({ "valid": false, "known": false })),
        Some(r) => Json(json!({
            "valid": valid,
            "known": true,
            "revoked": r.revoked,
            "installation_id": r.installation_id,
            "expires_at": humantime::format_rfc3339_seconds(r.expires_at).to_string(),
            "repositories": r.repositories,
            "permissions": r.permissions,
        })),
    }
}
