//! A stand-in for plughost's token routes: bearer auth, tokens that rotate with a
//! configurable lifetime, one current token per `?host=` (as plughost serves one provider per
//! git host), failure modes, a request counter and the hosts asked for. Used by the tests and
//! the bench.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use git_credential_plughost::time::format_rfc3339;

/// Bearer accepted on every route.
pub const ADMIN_TOKEN: &str = "admin-bearer-5f1c2e";
/// The workspace the server knows.
pub const WORKSPACE_ID: &str = "ws-1";
/// That workspace's bearer.
pub const WORKSPACE_TOKEN: &str = "workspace-bearer-9a7d41";

/// How the server answers authorised requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `{"token","expires_at"}`.
    Normal,
    /// This status with a plughost-style `{"error"}` body.
    Fail(u16),
    /// A token whose `expires_at` is already past.
    Expired,
}

/// A token the server handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

struct Inner {
    lifetime_secs: Mutex<u64>,
    server_margin_secs: Mutex<u64>,
    delay: Mutex<Duration>,
    mode: Mutex<Mode>,
    requests: AtomicUsize,
    minted: AtomicUsize,
    /// The current token per `?host=` value (`""` when the request named none).
    current: Mutex<HashMap<String, Issued>>,
    /// The host of the latest authorised request: what [`TokenServer::current`] answers for.
    last_host: Mutex<String>,
    /// The `?host=` of every request, in order (`None` when absent).
    asked_hosts: Mutex<Vec<Option<String>>>,
    issued: Mutex<Vec<Issued>>,
    workspaces: Mutex<HashMap<String, String>>,
}

/// The running server; stops when dropped.
pub struct TokenServer {
    /// Base URL, e.g. `http://127.0.0.1:41234` (what `PLATFORM_URL` is set to).
    pub url: String,
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Seconds since the epoch, with fractions.
pub fn now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn random_alnum(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            char::from(ALPHABET[(h.finish() % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

impl TokenServer {
    /// Starts a server minting tokens that live `lifetime_secs`, re-minted once fewer than
    /// `server_margin_secs` are left (plughost's plugin does the same with 600 s).
    pub fn start(lifetime_secs: u64, server_margin_secs: u64) -> Self {
        Self::start_with(lifetime_secs, server_margin_secs, None)
    }

    /// [`start`](Self::start) over https, with `ca`'s server certificate (for 127.0.0.1 and
    /// localhost): `url` is `https://127.0.0.1:PORT`.
    pub fn start_tls(lifetime_secs: u64, server_margin_secs: u64, ca: &github_emulator::TestCa) -> Self {
        Self::start_with(lifetime_secs, server_margin_secs, Some(ca))
    }

    fn start_with(lifetime_secs: u64, server_margin_secs: u64, tls: Option<&github_emulator::TestCa>) -> Self {
        let inner = Arc::new(Inner {
            lifetime_secs: Mutex::new(lifetime_secs),
            server_margin_secs: Mutex::new(server_margin_secs),
            delay: Mutex::new(Duration::ZERO),
            mode: Mutex::new(Mode::Normal),
            requests: AtomicUsize::new(0),
            minted: AtomicUsize::new(0),
            current: Mutex::new(HashMap::new()),
            last_host: Mutex::new(String::new()),
            asked_hosts: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            workspaces: Mutex::new(HashMap::from([(WORKSPACE_ID.to_owned(), WORKSPACE_TOKEN.to_owned())])),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = Router::new()
            .route("/workspaces/{id}/github-installation-token", get(workspace_route))
            .route("/admin/github-installation-token", get(admin_route))
            .with_state(inner.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let url = match tls {
            None => {
                runtime.spawn(async move { axum::serve(listener, app).await });
                format!("http://{addr}")
            }
            Some(ca) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config().unwrap());
                runtime.spawn(async move { axum::serve(TlsListener { tcp: listener, acceptor }, app).await });
                format!("https://{addr}")
            }
        };
        Self { url, inner, runtime: Some(runtime) }
    }

    /// Authorised and unauthorised requests so far.
    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Changes how requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// Delays every answer (to make concurrent callers overlap).
    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    /// Makes the next request (for any host) mint a new token.
    pub fn rotate(&self) {
        self.inner.current.lock().unwrap().clear();
    }

    /// The `?host=` of every request so far, in order (`None` when the request had none).
    pub fn asked_hosts(&self) -> Vec<Option<String>> {
        self.inner.asked_hosts.lock().unwrap().clone()
    }

    /// Revokes the workspace's bearer: its requests get 401 from now on.
    pub fn revoke_workspace(&self, id: &str) {
        self.inner.workspaces.lock().unwrap().remove(id);
    }

    /// Every token handed out so far, oldest first.
    pub fn issued(&self) -> Vec<Issued> {
        self.inner.issued.lock().unwrap().clone()
    }

    /// The token the server would hand out now for the host of the latest authorised request.
    pub fn current(&self) -> Option<Issued> {
        let host = self.inner.last_host.lock().unwrap().clone();
        self.current_for(&host)
    }

    /// The token the server would hand out now for `?host=host` (`""`: no parameter).
    pub fn current_for(&self, host: &str) -> Option<Issued> {
        self.inner.current.lock().unwrap().get(host).cloned()
    }

    /// True for a host's latest token while it has not expired: what GitHub would accept
    /// if each new token replaced the previous one. Shareable with other servers (the git
    /// smart-HTTP bridge).
    pub fn validator(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        let inner = self.inner.clone();
        Arc::new(move |token: &str| {
            inner.current.lock().unwrap().values().any(|c| c.token == token && now_f64() < c.expires_at as f64)
        })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Waits for the tasks to be dropped, so the port is closed when this returns.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Accepts TLS connections; a client that refuses the certificate is dropped here.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            let handshake = tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream));
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "unauthorized"}))).into_response()
}

/// The query plughost's token routes take; other parameters are ignored, as axum's `Query` does.
#[derive(serde::Deserialize)]
struct HostQuery {
    host: Option<String>,
}

async fn workspace_route(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(query): Query<HostQuery>,
    headers: HeaderMap,
) -> Response {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    inner.asked_hosts.lock().unwrap().push(query.host.clone());
    pause(&inner).await;
    let bearer = bearer(&headers);
    let allowed = bearer.as_deref() == Some(ADMIN_TOKEN)
        || inner.workspaces.lock().unwrap().get(&id).is_some_and(|t| Some(t.as_str()) == bearer.as_deref());
    if !allowed {
        return unauthorized();
    }
    answer(&inner, query.host.unwrap_or_default())
}

async fn admin_route(State(inner): State<Arc<Inner>>, Query(query): Query<HostQuery>, headers: HeaderMap) -> Response {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    inner.asked_hosts.lock().unwrap().push(query.host.clone());
    pause(&inner).await;
    if bearer(&headers).as_deref() != Some(ADMIN_TOKEN) {
        return unauthorized();
    }
    answer(&inner, query.host.unwrap_or_default())
}

async fn pause(inner: &Inner) {
    let delay = *inner.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn mint(inner: &Inner, expires_at: u64) -> Issued {
    let n = inner.minted.fetch_add(1, Ordering::SeqCst) + 1;
    let issued = Issued { token: format!("ghs_{n:04}.{}", random_alnum(40)), expires_at };
    inner.issued.lock().unwrap().push(issued.clone());
    issued
}

fn answer(inner: &Inner, host: String) -> Response {
    let now = now_f64() as u64;
    let mode = *inner.mode.lock().unwrap();
    let issued = match mode {
        Mode::Fail(code) => {
            let message = match code {
                404 => "no GitHub App configured",
                500 => "token refresh failed",
                504 => "token provider timed out",
                _ => "failure",
            };
            let status = StatusCode::from_u16(code).unwrap();
            return (status, Json(serde_json::json!({ "error": message }))).into_response();
        }
        Mode::Expired => mint(inner, now - 10),
        Mode::Normal => {
            let lifetime = *inner.lifetime_secs.lock().unwrap();
            let margin = *inner.server_margin_secs.lock().unwrap();
            let mut current = inner.current.lock().unwrap();
            *inner.last_host.lock().unwrap() = host.clone();
            match current.get(&host) {
                Some(c) if c.expires_at > now + margin => c.clone(),
                _ => {
                    let fresh = mint(inner, now + lifetime);
                    current.insert(host, fresh.clone());
                    fresh
                }
            }
        }
    };
    Json(serde_json::json!({ "token": issued.token, "expires_at": format_rfc3339(issued.expires_at) })).into_response()
}
