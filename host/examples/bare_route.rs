//! The benchmark baseline: a bare axum route answering the same JSON as
//! `GET /admin/github-installation-token`, with no auth, registry, plugin call or metrics.
//!
//! `cargo run --release -p plughost --example bare_route -- 127.0.0.1:0` prints
//! `listening on http://127.0.0.1:PORT`; `curl http://127.0.0.1:PORT/token` answers
//! `{"token":"ghs_...","expires_at":"..."}`. `host/benches/token_endpoint.sh` drives it.

use axum::Json;
use axum::routing::get;
use serde_json::json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let expires_at =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .to_string();
    let app = axum::Router::new().route(
        "/token",
        get(move || {
            let expires_at = expires_at.clone();
            async move { Json(json!({"token": "ghs_benchmark0123456789abcdefghijklmnopq", "expires_at": expires_at})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
