//! The benchmark baseline: a bare axum route answering the same JSON as
//! `GET /admin/github-installation-token`, with no auth, registry, plugin call or metrics, served
//! the way `plughost serve` serves the API ([`plughost::api::server::serve`], default limits).
//!
//! `cargo run --release -p plughost --example bare_route -- 127.0.0.1:0` prints the bound
//! `IP:PORT` on stdout (like `plughost serve --print-addr`); `curl http://IP:PORT/token` answers
//! `{"token":"ghs_...","expires_at":"..."}`. `host/benches/token_endpoint.sh` drives it.

use std::io::Write as _;

use axum::Json;
use axum::routing::get;
use plughost::api::server::{self, ConnectionLimits};
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
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    server::serve(listener, app, ConnectionLimits::default(), std::future::pending()).await;
    Ok(())
}
