//! `GET /healthz` (the process answers), `GET /readyz` (plugins scanned and the workspace token
//! store answers) and `GET /metrics` (Prometheus text format). None needs a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let plugins_scanned = state.registry.get().is_some_and(|r| r.snapshot().loaded_at.is_some());
    let store_open = match state.store.check().await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "not ready: workspace token store");
            false
        }
    };
    let status = if plugins_scanned && store_open { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "plugins_scanned": plugins_scanned,
        "state_store_open": store_open,
    });
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(handle) => {
            crate::metrics::flush();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => super::ApiError::Unavailable("metrics are not recorded in this process").into_response(),
    }
}
