// Support for every test module: builds the fixture plugins once, starts the real `plughost
// serve` binary on an ephemeral loopback port with its own plugin and state directories, and
// records every response body and every line the server logs (the secrets test reads both).
//
// How a test learns the port: the server is started with `--listen 127.0.0.1:0` and logs
// `listening on http://127.0.0.1:PORT` on stderr; a reader thread finds that line.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";

/// The fixture plugins this test binary uses.
pub struct Fixtures {
    pub token_provider: PathBuf,
    pub static_env: PathBuf,
}

/// Builds `test-token-provider` and `static-env` with the cargo and target directory that
/// built this test (cdylibs of other packages are not built for an integration test).
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        // <target>/<profile>/deps/api-HASH
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "-p", "test-token-provider", "-p", "static-env", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build for the fixture plugins");
        assert!(status.success(), "building the fixture plugins failed: {status}");
        let fixtures = Fixtures {
            token_provider: profile_dir.join("libtest_token_provider.so"),
            static_env: profile_dir.join("libstatic_env.so"),
        };
        assert!(fixtures.token_provider.is_file() && fixtures.static_env.is_file());
        fixtures
    })
}

/// How to start a server.
pub struct ServerBuilder {
    admin_token: Option<String>,
    config: Option<String>,
    wait_ready: bool,
    rust_log: String,
    plugins: Vec<(String, PathBuf, Option<String>)>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    pub fn admin_token(mut self, token: Option<&str>) -> Self {
        self.admin_token = token.map(str::to_owned);
        self
    }

    /// The host config file (`--config`); `{dir}` is replaced by the test's temporary directory.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// Drops `so` into the plugin directory as `file_name`, with `sidecar` as its `<stem>.toml`.
    pub fn plugin(mut self, file_name: &str, so: &Path, sidecar: Option<&str>) -> Self {
        self.plugins.push((file_name.to_owned(), so.to_owned(), sidecar.map(str::to_owned)));
        self
    }

    pub fn token_provider(self, sidecar: &str) -> Self {
        self.plugin("libtest_token_provider.so", &fixtures().token_provider, Some(sidecar))
    }

    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Returns as soon as the server listens, without waiting for `/readyz`.
    pub fn no_wait_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugin_dir = dir.path().join("plugins");
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&plugin_dir).unwrap();
        std::fs::set_permissions(&plugin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, so, sidecar) in &self.plugins {
            install_plugin(&plugin_dir, name, so, sidecar.as_deref());
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_plughost"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PLUGHOST_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        if let Some(config) = &self.config {
            let path = dir.path().join("plughost.toml");
            std::fs::write(&path, config.replace("{dir}", &dir.path().display().to_string())).unwrap();
            command.arg("--config").arg(path);
        }
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--plugin-dir"])
            .arg(&plugin_dir)
            .arg("--state-dir")
            .arg(&state_dir)
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = &self.admin_token {
            command.env("PLUGHOST_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().expect("spawn plughost serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on http://".len()..];
                    let addr: String =
                        rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
                    let _ = addr_tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!("plughost serve did not report its address; log:\n{}", log.lock().unwrap());
            }
        };
        let server = Server {
            child,
            base: format!("http://{addr}"),
            log,
            bodies: Arc::new(Mutex::new(Vec::new())),
            agent: agent(),
            dir,
        };
        if self.wait_ready {
            server.wait_ready();
        }
        server
    }
}

pub fn server() -> ServerBuilder {
    ServerBuilder {
        admin_token: Some(ADMIN.to_owned()),
        config: None,
        wait_ready: true,
        rust_log: "debug".to_owned(),
        plugins: Vec::new(),
        env: Vec::new(),
    }
}

pub fn install_plugin(plugin_dir: &Path, file_name: &str, so: &Path, sidecar: Option<&str>) {
    let target = plugin_dir.join(file_name);
    std::fs::copy(so, &target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(toml) = sidecar {
        let path = target.with_extension("toml");
        std::fs::write(&path, toml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A response: status, body, and the headers tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub connection: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }

    /// The `error` message of a `{"error"}` body (and asserts the body has that shape).
    pub fn error(&self) -> String {
        let json = self.json();
        let object = json.as_object().unwrap_or_else(|| panic!("not an object: {}", self.body));
        assert_eq!(object.len(), 1, "error bodies have exactly one key: {}", self.body);
        object["error"].as_str().unwrap_or_else(|| panic!("no error string: {}", self.body)).to_owned()
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    /// Every response body this test saw, with its status.
    bodies: Arc<Mutex<Vec<(u16, String, String)>>>,
    agent: ureq::Agent,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `(status, route, body)` of every response so far.
    pub fn bodies(&self) -> Vec<(u16, String, String)> {
        self.bodies.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; `bearer` becomes `Authorization: Bearer ...`; `body` is sent as JSON.
    pub fn request(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> Reply {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        self.request_with_auth(method, path, auth.as_deref(), body)
    }

    /// Like [`Server::request`], with a raw `Authorization` header value.
    pub fn request_with_auth(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let url = self.url(path);
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                request.call()
            }
            _ => {
                let mut request = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    other => panic!("method {other} not supported by the harness"),
                };
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                match body {
                    Some(body) => request.header("Content-Type", "application/json").send(body),
                    None => request.send_empty(),
                }
            }
        };
        let mut response = result.unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let cache_control = header("cache-control");
        let content_type = header("content-type");
        let connection = header("connection");
        let reply = Reply {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
            cache_control,
            content_type,
            connection,
        };
        self.bodies.lock().unwrap().push((reply.status, path.to_owned(), reply.body.clone()));
        reply
    }

    /// `requests` calls of `call` from each of `threads` threads at once, on their own
    /// connections, so that every worker of the server answers some; every reply, in no order.
    pub fn concurrently(&self, threads: usize, requests: usize, call: impl Fn(&Server) -> Reply + Sync) -> Vec<Reply> {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..threads).map(|_| scope.spawn(|| (0..requests).map(|_| call(self)).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
        })
    }

    pub fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request("GET", path, bearer, None)
    }

    pub fn post(&self, path: &str, bearer: Option<&str>, body: Option<&str>) -> Reply {
        self.request("POST", path, bearer, body)
    }

    pub fn delete(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request("DELETE", path, bearer, None)
    }

    /// Issues a workspace token through the API.
    pub fn issue(&self, workspace: &str) -> String {
        let reply = self.post(&format!("/admin/workspaces/{workspace}/tokens"), Some(ADMIN), None);
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()["token"].as_str().unwrap().to_owned()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.get("/readyz", None);
            if reply.status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "not ready after 30 s: {}\nlog:\n{}", reply.body, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET /admin/plugins` until `done` holds for its answer.
    pub fn wait_plugins(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let json = self.get("/admin/plugins", Some(ADMIN)).json();
            if done(&json) {
                return json;
            }
            assert!(Instant::now() < deadline, "plugins never {what}: {json}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(Instant::now() < deadline, "plughost did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `plughost ARGS...` (the CLI, not the server) and returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        run_cli(args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_cli(args: &[&str]) -> (ExitStatus, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plughost"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PLUGHOST_") {
            command.env_remove(name);
        }
    }
    let output = command.args(args).stdin(Stdio::null()).output().expect("run plughost");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
