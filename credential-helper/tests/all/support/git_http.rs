//! A loopback git smart-HTTP server: `git http-backend` as CGI behind axum, accepting a
//! request only when its Basic-auth password is the token server's current, unexpired token.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::io::AsyncWriteExt;

type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Bridge {
    root: PathBuf,
    valid: Validator,
    accepted: Mutex<Vec<String>>,
    refused: Mutex<usize>,
}

/// The running server; stops when dropped.
pub struct GitHttpServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, as git sends `host`.
    pub host: String,
    bridge: Arc<Bridge>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl GitHttpServer {
    /// Serves the repositories under `root` (GIT_PROJECT_ROOT).
    pub fn start(root: PathBuf, valid: Validator) -> Self {
        let bridge = Arc::new(Bridge { root, valid, accepted: Mutex::new(Vec::new()), refused: Mutex::new(0) });
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let app = Router::new().fallback(cgi).with_state(bridge.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{host}"), host, bridge, runtime: Some(runtime) }
    }

    /// Distinct passwords accepted, in order of first use.
    pub fn accepted_tokens(&self) -> Vec<String> {
        let mut distinct: Vec<String> = Vec::new();
        for t in self.bridge.accepted.lock().unwrap().iter() {
            if !distinct.contains(t) {
                distinct.push(t.clone());
            }
        }
        distinct
    }

    /// Requests answered 401.
    pub fn refused(&self) -> usize {
        *self.bridge.refused.lock().unwrap()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Waits for the tasks to be dropped, so the port is closed when this returns.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn cgi(State(bridge): State<Arc<Bridge>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some((user, password)) = basic_credentials(&headers).filter(|(_, p)| (bridge.valid)(p)) else {
        *bridge.refused.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"plughost-test\"")], "").into_response();
    };
    bridge.accepted.lock().unwrap().push(password);

    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &bridge.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &bridge.root)
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.expect("git http-backend runs");
    let _ = writer.await;
    cgi_response(&output.stdout)
}

/// Splits a CGI answer into status, headers and body.
fn cgi_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "no CGI header").into_response();
    };
    let mut response = Response::new(Body::from(raw[end + sep..].to_vec()));
    for line in String::from_utf8_lossy(&raw[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.trim()), HeaderValue::try_from(value)) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
