//! Starting, serving and steering the emulator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tower::ServiceExt;

use crate::api::{self, ApiError, GHES_PREFIX};
use crate::auth;
use crate::config::EmulatorConfig;
use crate::control;
use crate::faults::Fault;
use crate::state::{RateLimitKind, RateLimitWindow, Shared};

/// Why the emulator did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the emulator's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot set up TLS")]
    Tls(#[source] crate::tls::TlsError),
}

/// Counters since start, as `GET /_emulator/stats` also reports them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Installation tokens minted.
    pub mints: u64,
    /// Requests per GitHub route, keyed `"METHOD /route/{param}"` (GHES requests counted under
    /// the same key, without the `/api/v3` prefix), faulted requests included.
    pub requests: BTreeMap<String, u64>,
    pub clock_skew_secs: i64,
    pub pending_faults: u64,
}

/// What the emulator remembers of a token it minted.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    pub installation_id: u64,
    /// On the emulator's clock.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: SystemTime,
    pub permissions: BTreeMap<String, String>,
    /// `None`: every repository of the installation.
    pub repositories: Option<Vec<String>>,
    pub revoked: bool,
    /// Not revoked and not expired on the emulator's clock right now.
    pub valid: bool,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

fn rfc3339_millis<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// One request to a GitHub route, as `GET /_emulator/attempts` also lists them: so tests can
/// check how often, and when, a client asked (e.g. never before a rate limit's reset).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// `"METHOD /route/{param}"`, as in [`Stats::requests`].
    pub route: String,
    /// When the request arrived, on the machine's clock (not the emulator's skewed one).
    #[serde(serialize_with = "rfc3339_millis")]
    pub at: SystemTime,
    /// The status answered; `None` when an injected fault dropped the connection.
    pub status: Option<u16>,
}

/// Entry point: see [`Emulator::start`].
pub struct Emulator;

impl Emulator {
    /// Binds `config.listen` (default `127.0.0.1:0`) and serves on a runtime of its own thread
    /// until the handle is dropped. Works from sync and async code alike.
    pub fn start(config: EmulatorConfig) -> Result<EmulatorHandle, StartError> {
        let shared = Arc::new(Shared::new(&config).map_err(StartError::Config)?);
        let tls = match &config.tls {
            Some(ca) => Some(tokio_rustls::TlsAcceptor::from(ca.server_config().map_err(StartError::Tls)?)),
            None => None,
        };
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        listener.set_nonblocking(true).map_err(|source| StartError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("github-emulator")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let router = router(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("github-emulator-accept".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, tls, router, stop_rx).await,
                        Err(e) => tracing::error!("github-emulator: cannot register listener: {e}"),
                    }
                });
                // Open connections die with the runtime; don't wait for idle keep-alives.
                runtime.shutdown_background();
            })
            .map_err(StartError::Runtime)?;
        Ok(EmulatorHandle { shared, addr, stop: Some(stop_tx), thread: Some(thread) })
    }
}

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` in TLS mode): the `api_url` of a github.com-style client.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.shared.scheme, self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v3` (`https://` in TLS mode): the `api_url` of a GitHub
    /// Enterprise Server client.
    pub fn ghes_base_url(&self) -> String {
        format!("{}{GHES_PREFIX}", self.base_url())
    }

    /// Installation tokens minted so far.
    pub fn mints(&self) -> u64 {
        self.shared.mints()
    }

    /// Requests so far to `route`, e.g. `"POST /app/installations/{id}/access_tokens"`.
    pub fn requests(&self, route: &str) -> u64 {
        self.shared.requests().get(route).copied().unwrap_or(0)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            mints: self.shared.mints(),
            requests: self.shared.requests(),
            clock_skew_secs: self.shared.skew_secs(),
            pending_faults: self.shared.pending_faults(),
        }
    }

    /// Every GitHub-route request so far, in order of arrival.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.attempts()
    }

    /// Requests so far to `POST /app/installations/{id}/access_tokens`, in order of arrival.
    pub fn mint_attempts(&self) -> Vec<Attempt> {
        self.attempts().into_iter().filter(|a| a.route == MINT_ROUTE).collect()
    }

    /// The next GitHub-route request suffers `fault`.
    pub fn inject(&self, fault: Fault) {
        self.shared.push_fault(fault, 1);
    }

    /// The next `count` GitHub-route requests suffer `fault` (after any faults already queued).
    pub fn inject_n(&self, fault: Fault, count: u32) {
        self.shared.push_fault(fault, count);
    }

    /// Drops queued faults and ends any rate limit in force.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
        self.shared.clear_rate_limit();
    }

    /// Shifts the emulator's clock from the machine's by `secs` (negative: behind).
    pub fn set_clock_skew(&self, secs: i64) {
        self.shared.set_skew_secs(secs);
    }

    /// The emulator's clock (the machine's plus the skew).
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }

    /// Lifetime of tokens minted from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.shared.set_token_ttl(ttl);
    }

    /// Whether `token` was minted here, is not revoked and has not expired on the emulator's clock.
    pub fn is_token_valid(&self, token: &str) -> bool {
        self.shared.live_token(token).is_some()
    }

    pub fn token_info(&self, token: &str) -> Option<TokenInfo> {
        let valid = self.is_token_valid(token);
        self.shared.token(token).map(|r| TokenInfo {
            installation_id: r.installation_id,
            expires_at: r.expires_at,
            permissions: r.permissions,
            repositories: r.repositories,
            revoked: r.revoked,
            valid,
        })
    }

    /// Blocks until the server stops (it only stops when the handle is dropped, so: forever).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            // A panic of the serving thread has already been printed; nothing more to say.
            let _ = thread.join();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The receiver is gone only if the server already stopped.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy)]
struct DropConnection;

#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct ConnectionDropped;

fn router(shared: Arc<Shared>) -> Router {
    let github = api::routes();
    Router::new()
        .merge(github.clone())
        .nest(GHES_PREFIX, github)
        .route_layer(middleware::from_fn_with_state(shared.clone(), github_route))
        .merge(control::routes())
        .fallback(api::fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), date_header))
        .with_state(shared)
}

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE under a burst: pause instead of spinning.
                    tracing::warn!("github-emulator: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, router).await,
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, router).await,
                    // A client that does not trust the test CA ends here, as it should.
                    Ok(Err(e)) => tracing::debug!("github-emulator: TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!("github-emulator: TLS handshake timed out"),
                },
            }
        });
    }
}

async fn serve_connection<S>(stream: S, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                // An error from the service makes hyper close the socket unanswered.
                return Err(ConnectionDropped);
            }
            Ok::<_, ConnectionDropped>(response)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("github-emulator: connection ended: {e}");
    }
}

/// Every response carries the emulator's (skewed) time, as GitHub's carry GitHub's.
async fn date_header(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let date = httpdate::fmt_http_date(shared.now());
    if let Ok(value) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response.headers_mut().insert(header::SERVER, HeaderValue::from_static("github-emulator"));
    response
}

/// The route under which token requests are counted and logged.
const MINT_ROUTE: &str = "POST /app/installations/{id}/access_tokens";

/// For GitHub routes: count and log, refuse while a rate limit is in force, apply the next
/// fault, then GitHub's header checks.
async fn github_route(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let route = format!("{} {}", req.method(), path.strip_prefix(GHES_PREFIX).unwrap_or(path));
    shared.record_request(&route);
    let at = SystemTime::now();
    let response = answer_github_route(&shared, req, next).await;
    let status = response.extensions().get::<DropConnection>().is_none().then(|| response.status().as_u16());
    shared.record_attempt(Attempt { route, at, status });
    response
}

async fn answer_github_route(shared: &Shared, req: Request, next: Next) -> Response {
    if let Some(window) = shared.rate_limit_in_force() {
        return rate_limited(shared, window, req.headers()).into_response();
    }
    match shared.next_fault() {
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ApiError::injected(status).into_response();
        }
        Some(Fault::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropConnection) => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            return response;
        }
        Some(Fault::PrimaryRateLimit { status, reset_in }) => {
            // x-ratelimit-reset is whole epoch seconds: the limit lasts until that second.
            let until = round_up_to_secs(shared.now() + reset_in);
            let window = shared.start_rate_limit(RateLimitKind::Primary, status, until);
            return rate_limited(shared, window, req.headers()).into_response();
        }
        Some(Fault::SecondaryRateLimit { status, retry_after }) => {
            let until = shared.now() + retry_after.max(Duration::from_secs(1));
            let window = shared.start_rate_limit(RateLimitKind::Secondary, status, until);
            return rate_limited(shared, window, req.headers()).into_response();
        }
        None => {}
    }

    if let Err(refusal) = check_headers(req.headers()) {
        return refusal.into_response();
    }
    next.run(req).await
}

/// The primary limit of an App's JWT requests; GitHub's default for Apps.
const RATE_LIMIT: u32 = 5000;
const RATE_LIMIT_DOCS: &str = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api";
const SECONDARY_RATE_LIMIT_DOCS: &str =
    "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits";

/// GitHub's answer while a rate limit is in force: 403 or 429, its message, and the headers
/// that say when to try again (`x-ratelimit-reset` for the primary limit, `Retry-After` for a
/// secondary one). Every answer carries the `x-ratelimit-*` headers, as GitHub's do.
fn rate_limited(shared: &Shared, window: RateLimitWindow, headers: &axum::http::HeaderMap) -> ApiError {
    let status = StatusCode::from_u16(window.status)
        .ok()
        .filter(|s| matches!(s.as_u16(), 403 | 429))
        .unwrap_or(StatusCode::FORBIDDEN);
    let now = shared.now();
    let left = window.until.duration_since(now).unwrap_or(Duration::ZERO);
    match window.kind {
        RateLimitKind::Primary => {
            let message = match auth::claimed_app(shared, headers) {
                Some(app) => format!("API rate limit exceeded for app ID {}.", app.config.id),
                None => "API rate limit exceeded.".to_owned(),
            };
            ApiError::new(status, &message, RATE_LIMIT_DOCS)
                .header("x-ratelimit-limit", RATE_LIMIT)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-used", RATE_LIMIT)
                .header("x-ratelimit-reset", unix_secs(window.until))
                .header("x-ratelimit-resource", "core")
        }
        RateLimitKind::Secondary => {
            let retry_after = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let message = format!(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. \
                 If you reach out to GitHub Support for help, please include the request ID {}.",
                request_id()
            );
            ApiError::new(status, &message, SECONDARY_RATE_LIMIT_DOCS)
                .header("retry-after", retry_after.max(1))
                .header("x-ratelimit-limit", RATE_LIMIT)
                .header("x-ratelimit-remaining", RATE_LIMIT - 1)
                .header("x-ratelimit-used", 1)
                .header("x-ratelimit-reset", unix_secs(round_up_to_secs(now + Duration::from_secs(3600))))
                .header("x-ratelimit-resource", "core")
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn round_up_to_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)),
        Err(_) => t,
    }
}

/// Shaped like GitHub's `x-github-request-id` values.
fn request_id() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    format!(
        "{:04X}:{:04X}:{:06X}:{:06X}:{:08X}",
        rng.gen_range(0..0x10000),
        rng.gen_range(0..0x10000),
        rng.gen_range(0..0x1000000),
        rng.gen_range(0..0x1000000),
        rng.r#gen::<u32>()
    )
}

const SUPPORTED_API_VERSIONS: &[&str] = &["2022-11-28"];

fn check_headers(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ua.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required).",
            "https://docs.github.com/rest",
        ));
    }
    // Stricter than GitHub, which assumes JSON when Accept is absent: clients under test must
    // ask for `application/vnd.github+json` (or anything JSON-compatible).
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json_ok = accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        media == "*/*"
            || media == "application/*"
            || media == "application/json"
            || media.starts_with("application/vnd.github")
    });
    if !json_ok {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported 'Accept' header: send 'application/vnd.github+json'.",
            "https://docs.github.com/rest/overview/media-types",
        ));
    }
    if let Some(version) = headers.get("x-github-api-version") {
        let version = version.to_str().unwrap_or("");
        if !SUPPORTED_API_VERSIONS.contains(&version) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                &format!("API version {version} is not supported."),
                "https://docs.github.com/rest/overview/api-versions",
            ));
        }
    }
    Ok(())
}
