//! A soak of a running `plughost serve`: a fixed number of mixed requests from several threads
//! while the plugins are reloaded on a timer, counting every answer that is not the expected one
//! and sampling the memory of the host and of its plugin workers. One generator for both runs:
//! the long one (`host/benches/soak.sh`, the `plughost-soak` binary against a release build) and
//! the short one (`host/tests/api/soak.rs`, against the test build).
//!
//! The requests, in turn (each thread on its own keep-alive connection):
//! 1. `GET /admin/github-installation-token` (admin bearer): 200 with a token;
//! 2. `GET /workspaces/{id}/github-installation-token` with that workspace's bearer: 200 with a
//!    token (a token check in SQLite on every request);
//! 3. `POST /admin/workspaces/{id}/env` with `{"env":{}}`: 200 with both plugins' variables.
//!
//! Anything else (another status, a body without what it should hold, a transport error) is an
//! error, counted by kind, the first few kept in full.
//!
//! The plugins ([`SoakPlugins`]) run in process mode: `10-token.so` (the test token provider,
//! which also sets `GH_TOKEN`) and `20-env.so` (static-env, setting `SOAK_GENERATION`). The
//! reloader runs one step at once, then one per interval, cycling through:
//! 1. `10-token.so` is replaced (a rename over it) by its other variant, the same library with a
//!    few bytes appended: new content, so a new worker takes over;
//! 2. `20-env.toml` is replaced by the next generation: new configuration, so a new worker;
//! 3. `10-token.so` is touched: read and hashed again, found the same, the worker stays;
//! 4. nothing changes: the rescan keeps both workers.
//!
//! Each step ends in `POST /admin/plugins/reload`, which must answer 200 with both plugins
//! running and nothing refused, and with the worker pids changed by steps 1 and 2 and by no
//! other; a miss counts as an error. The reloader stops once the requests are done and it has
//! run at least one whole cycle, so even a short soak swaps both plugins.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::Permissions;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use crate::{Serve, ServeBuilder};

/// The token provider's file name in the plugin directory.
const TOKEN_FILE: &str = "10-token.so";
/// static-env's file name in the plugin directory.
const ENV_FILE: &str = "20-env.so";
/// How many error messages a report keeps in full.
const ERROR_SAMPLES: usize = 20;

/// The two plugin libraries a soak serves.
#[derive(Debug, Clone)]
pub struct SoakPlugins {
    /// `libtest_token_provider.so`.
    pub token_provider: PathBuf,
    /// `libstatic_env.so`.
    pub static_env: PathBuf,
}

impl SoakPlugins {
    /// The libraries of the fixture build ([`crate::fixtures`]).
    pub fn from_fixtures() -> SoakPlugins {
        let fixtures = crate::fixtures();
        SoakPlugins { token_provider: fixtures.test_token_provider.clone(), static_env: fixtures.static_env.clone() }
    }

    /// `builder` with both plugins in process mode, and the host's `token_cache_ms` (0: every
    /// token request reaches the provider's worker).
    pub fn serve(&self, builder: ServeBuilder, token_cache_ms: u64) -> ServeBuilder {
        builder
            .config(&format!("token_cache_ms = {token_cache_ms}\n[isolation]\nmode = \"process\"\n"))
            .plugin(TOKEN_FILE, &self.token_provider, Some("env_var = \"GH_TOKEN\"\n"))
            .plugin(ENV_FILE, &self.static_env, Some(&env_sidecar(0)))
    }
}

fn env_sidecar(generation: u64) -> String {
    format!("[vars]\nSOAK_GENERATION = \"{generation}\"\n")
}

/// How much load, from how many threads, with reloads how often.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Requests in all.
    pub requests: u64,
    /// Threads sending them, each with one connection.
    pub concurrency: usize,
    /// Time between two reload steps.
    pub reload_every: Duration,
    /// Requests per reported window (a row of the table).
    pub window: u64,
    /// Workspaces the workspace and env requests go to, in turn; each gets a token.
    pub workspaces: usize,
}

/// Memory and descriptors of the host and its worker processes, from `/proc`.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// `VmRSS` of the host.
    pub host_rss_kib: u64,
    /// Open file descriptors of the host.
    pub host_fds: usize,
    /// Threads of the host.
    pub host_threads: u64,
    /// `(pid, VmRSS)` of each child of the host (its plugin workers).
    pub workers: Vec<(u32, u64)>,
}

impl Memory {
    /// Samples process `pid` and its children; a process that is gone reads as zero.
    pub fn of(pid: u32) -> Memory {
        let status = read_status(pid);
        let host_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        let mut workers: Vec<(u32, u64)> =
            children(pid).into_iter().map(|child| (child, status_field(&read_status(child), "VmRSS:"))).collect();
        workers.sort_unstable();
        Memory {
            host_rss_kib: status_field(&status, "VmRSS:"),
            host_fds,
            host_threads: status_field(&status, "Threads:"),
            workers,
        }
    }

    pub fn workers_rss_kib(&self) -> u64 {
        self.workers.iter().map(|(_, rss)| rss).sum()
    }
}

fn read_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// The number of a `Name:   123 kB` line of a `/proc/<pid>/status`; 0 if absent.
fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The live (not zombie) children of `parent`, from every `/proc/<pid>/stat`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after the last `)`.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let mut fields = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            ppid == Some(parent) && state != Some("Z")
        })
        .collect()
}

/// One row of the table: the requests up to `requests`, since the previous row.
#[derive(Debug, Clone)]
pub struct Window {
    /// Requests done when the row was taken (the window's end).
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Errors in this window.
    pub errors: u64,
    /// Taken when the window's last request was done.
    pub memory: Memory,
}

impl Window {
    /// The column titles of [`Window`]'s `Display`.
    pub fn header() -> String {
        format!(
            "{:>10} {:>10} {:>7} {:>13} {:>8} {:>7} {:>8} {}",
            "requests", "req/s", "errors", "host RSS MiB", "threads", "fds", "workers", "worker RSS MiB"
        )
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers: Vec<String> = self.memory.workers.iter().map(|(_, rss)| format!("{:.1}", mib(*rss))).collect();
        write!(
            f,
            "{:>10} {:>10.0} {:>7} {:>13.1} {:>8} {:>7} {:>8} {}",
            self.requests,
            self.requests_per_sec,
            self.errors,
            mib(self.memory.host_rss_kib),
            self.memory.host_threads,
            self.memory.host_fds,
            self.memory.workers.len(),
            if workers.is_empty() { "-".to_owned() } else { workers.join(" + ") }
        )
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What a soak saw.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub requests: u64,
    pub elapsed: Duration,
    pub windows: Vec<Window>,
    /// Every unexpected answer, request or reload, by kind (`GET /admin/...: 502`).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first unexpected answers in full.
    pub error_samples: Vec<String>,
    /// Reloads done, and how many of them replaced a worker (steps 1 and 2 of the cycle).
    pub reloads: u64,
    pub workers_replaced: u64,
}

impl SoakReport {
    /// Unexpected answers in all.
    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }

    /// The host's RSS growth from the second window's end to the last's, in percent; `None`
    /// with fewer than three windows.
    pub fn rss_drift_percent(&self) -> Option<f64> {
        let (second, last) = (self.windows.get(1)?, self.windows.last()?);
        (self.windows.len() >= 3 && second.memory.host_rss_kib > 0).then(|| {
            (last.memory.host_rss_kib as f64 - second.memory.host_rss_kib as f64) * 100.0
                / second.memory.host_rss_kib as f64
        })
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "{} requests in {secs:.1} s ({:.0} req/s), {} errors; {} reloads, {} of them replacing a worker",
            self.requests,
            self.requests as f64 / secs.max(1e-9),
            self.errors(),
            self.reloads,
            self.workers_replaced
        )?;
        if let (Some(second), Some(last), Some(drift)) =
            (self.windows.get(1), self.windows.last(), self.rss_drift_percent())
        {
            writeln!(
                f,
                "host RSS {:.1} MiB after {} requests, {:.1} MiB after {}: drift {drift:+.2} %",
                mib(second.memory.host_rss_kib),
                second.requests,
                mib(last.memory.host_rss_kib),
                last.requests
            )?;
            writeln!(
                f,
                "workers RSS {:.1} MiB after {} requests, {:.1} MiB after {} (sum of {} and {} workers)",
                mib(second.memory.workers_rss_kib()),
                second.requests,
                mib(last.memory.workers_rss_kib()),
                last.requests,
                second.memory.workers.len(),
                last.memory.workers.len()
            )?;
        }
        for (kind, count) in &self.errors_by_kind {
            writeln!(f, "  {count:>8} x {kind}")?;
        }
        for sample in &self.error_samples {
            writeln!(f, "  e.g. {sample}")?;
        }
        Ok(())
    }
}

/// Unexpected answers, shared by the request threads and the reloader.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    by_kind: Mutex<BTreeMap<String, u64>>,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    fn record(&self, kind: String, detail: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() < ERROR_SAMPLES {
            samples.push(format!("{kind}: {}", detail.chars().take(300).collect::<String>()));
        }
        *self.by_kind.lock().unwrap_or_else(PoisonError::into_inner).entry(kind).or_default() += 1;
    }
}

/// The windows closed so far.
struct Windows {
    started: Instant,
    last_at: Instant,
    last_errors: u64,
    rows: Vec<Window>,
}

/// Runs the soak against `serve` (started with [`SoakPlugins::serve`] from `plugins`); `on_window`
/// sees each row as it is taken. Issues one token per workspace first.
pub fn soak(
    serve: &Serve,
    plugins: &SoakPlugins,
    config: &SoakConfig,
    on_window: impl Fn(&Window) + Sync,
) -> SoakReport {
    assert!(config.concurrency > 0 && config.window > 0 && config.workspaces > 0, "{config:?}");
    let admin = serve.admin_token().expect("a soak needs the admin token");
    let workspaces: Vec<(String, String)> = (0..config.workspaces)
        .map(|i| {
            let id = format!("soak-{i}");
            let token = serve.issue(&id);
            (id, token)
        })
        .collect();
    let errors = Errors::default();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let windows = Mutex::new(Windows { started, last_at: started, last_errors: 0, rows: Vec::new() });
    let close_window = |requests: u64| {
        let mut windows = windows.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let errors_now = errors.count.load(Ordering::Relaxed);
        let since = requests - windows.rows.last().map_or(0, |w| w.requests);
        let row = Window {
            requests,
            requests_per_sec: since as f64 / now.duration_since(windows.last_at).as_secs_f64().max(1e-9),
            errors: errors_now - windows.last_errors,
            memory: Memory::of(serve.pid()),
        };
        on_window(&row);
        windows.rows.push(row);
        windows.last_at = now;
        windows.last_errors = errors_now;
    };
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let mut reloader = Reloader::new(serve, plugins, admin);
    let reload_counts = std::thread::scope(|scope| {
        let reloading = scope.spawn({
            let (reloader, errors) = (&mut reloader, &errors);
            move || reloader.run(config.reload_every, &stop_rx, errors)
        });
        let senders: Vec<_> = (0..config.concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let agent = crate::http::agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= config.requests {
                            break;
                        }
                        let (id, token) = &workspaces[(i / 3) as usize % workspaces.len()];
                        if let Err((kind, detail)) = one_request(&agent, serve.base(), i % 3, admin, id, token) {
                            errors.record(kind, &detail);
                        }
                        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if finished % config.window == 0 || finished == config.requests {
                            close_window(finished);
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("a request thread panicked");
        }
        drop(stop_tx);
        reloading.join().expect("the reloader panicked")
    });
    let windows = windows.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut rows = windows.rows;
    rows.sort_by_key(|w| w.requests);
    SoakReport {
        requests: config.requests,
        elapsed: windows.last_at.duration_since(windows.started),
        windows: rows,
        errors_by_kind: errors.by_kind.into_inner().unwrap_or_else(PoisonError::into_inner),
        error_samples: errors.samples.into_inner().unwrap_or_else(PoisonError::into_inner),
        reloads: reload_counts.0,
        workers_replaced: reload_counts.1,
    }
}

/// Sends request `kind` (0 token, 1 workspace token, 2 env chain) and checks its answer; an
/// unexpected one is `(kind of error, detail)`.
fn one_request(
    agent: &ureq::Agent,
    base: &str,
    kind: u64,
    admin: &str,
    workspace: &str,
    workspace_token: &str,
) -> Result<(), (String, String)> {
    let (route, result, expect) = match kind {
        0 => (
            "GET /admin/github-installation-token",
            agent.get(format!("{base}/admin/github-installation-token")).header("Authorization", bearer(admin)).call(),
            &["\"token\":\"ghs_"][..],
        ),
        1 => (
            "GET /workspaces/{id}/github-installation-token",
            agent
                .get(format!("{base}/workspaces/{workspace}/github-installation-token"))
                .header("Authorization", bearer(workspace_token))
                .call(),
            &["\"token\":\"ghs_"][..],
        ),
        _ => (
            "POST /admin/workspaces/{id}/env",
            agent
                .post(format!("{base}/admin/workspaces/{workspace}/env"))
                .header("Authorization", bearer(admin))
                .header("Content-Type", "application/json")
                .send(r#"{"env":{}}"#),
            &["\"GH_TOKEN\":\"ghs_", "\"SOAK_GENERATION\":\""][..],
        ),
    };
    let transport = |err: ureq::Error| (format!("{route}: transport error"), err.to_string());
    let mut response = result.map_err(transport)?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(transport)?;
    if status != 200 {
        return Err((format!("{route}: {status}"), body));
    }
    if !expect.iter().all(|part| body.contains(part)) {
        return Err((format!("{route}: 200 without {expect:?}"), body));
    }
    Ok(())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The reload cycle of the module header.
struct Reloader<'a> {
    serve: &'a Serve,
    admin: &'a str,
    agent: ureq::Agent,
    /// The token provider's two variants, used in turn.
    variants: [PathBuf; 2],
    step: u64,
    generation: u64,
    /// The worker pids the last reload reported, by plugin name.
    workers: BTreeMap<String, u32>,
    reloads: u64,
    replaced: u64,
}

impl<'a> Reloader<'a> {
    fn new(serve: &'a Serve, plugins: &SoakPlugins, admin: &'a str) -> Reloader<'a> {
        let dir = serve.dir().root().join("soak-variants");
        std::fs::create_dir_all(&dir).expect("create the variants directory");
        let bytes = std::fs::read(&plugins.token_provider).expect("read the token provider");
        let a = dir.join("token-a.so");
        let b = dir.join("token-b.so");
        std::fs::write(&a, &bytes).expect("write variant a");
        let mut appended = bytes;
        appended.extend_from_slice(b"\0plughost soak variant b\n");
        std::fs::write(&b, appended).expect("write variant b");
        let mut reloader = Reloader {
            serve,
            admin,
            agent: crate::http::agent(),
            variants: [a, b],
            step: 0,
            generation: 0,
            workers: BTreeMap::new(),
            reloads: 0,
            replaced: 0,
        };
        reloader.workers = reloader.reload().unwrap_or_else(|(kind, detail)| panic!("{kind}: {detail}"));
        reloader
    }

    /// Steps until `stop` is dropped and a whole cycle has run; returns (reloads, workers replaced).
    fn run(&mut self, every: Duration, stop: &mpsc::Receiver<()>, errors: &Errors) -> (u64, u64) {
        let mut stopping = false;
        loop {
            if let Err((kind, detail)) = self.step() {
                errors.record(kind, &detail);
            }
            stopping = stopping || matches!(stop.try_recv(), Err(mpsc::TryRecvError::Disconnected));
            if stopping && self.step >= 4 {
                return (self.reloads, self.replaced);
            }
            if !stopping && matches!(stop.recv_timeout(every), Err(mpsc::RecvTimeoutError::Disconnected)) {
                stopping = true;
            }
        }
    }

    fn step(&mut self) -> Result<(), (String, String)> {
        let plugin_dir = self.serve.plugin_dir();
        let replaces = match self.step % 4 {
            0 => {
                let variant = &self.variants[(self.step / 4 % 2 + 1) as usize % 2];
                replace(variant, &plugin_dir.join(TOKEN_FILE), 0o755);
                Some("test-token-provider")
            }
            1 => {
                self.generation += 1;
                let sidecar = self.serve.dir().root().join("soak-variants/env.toml");
                std::fs::write(&sidecar, env_sidecar(self.generation)).expect("write the sidecar");
                replace(&sidecar, &plugin_dir.join(ENV_FILE).with_extension("toml"), 0o644);
                Some("static-env")
            }
            2 => {
                let file = std::fs::File::options().write(true).open(plugin_dir.join(TOKEN_FILE)).expect("open");
                file.set_modified(SystemTime::now()).expect("touch the token provider");
                None
            }
            _ => None,
        };
        self.step += 1;
        let workers = self.reload()?;
        let changed: Vec<String> = workers
            .iter()
            .filter(|(name, pid)| self.workers.get(*name) != Some(pid))
            .map(|(name, _)| name.clone())
            .collect();
        let expected: Vec<&str> = replaces.into_iter().collect();
        let previous = std::mem::replace(&mut self.workers, workers);
        if changed != expected {
            return Err((
                "reload: unexpected worker replacement".to_owned(),
                format!(
                    "expected {expected:?} replaced, got {changed:?} (before {previous:?}, after {:?})",
                    self.workers
                ),
            ));
        }
        self.replaced += u64::from(replaces.is_some());
        Ok(())
    }

    /// `POST /admin/plugins/reload`; the worker pid of each plugin, which must all be running.
    fn reload(&mut self) -> Result<BTreeMap<String, u32>, (String, String)> {
        self.reloads += 1;
        let url = format!("{}/admin/plugins/reload", self.serve.base());
        let transport = |err: ureq::Error| ("reload: transport error".to_owned(), err.to_string());
        let mut response =
            self.agent.post(url).header("Authorization", bearer(self.admin)).send_empty().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(transport)?;
        if status != 200 {
            return Err((format!("reload: {status}"), body));
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|err| ("reload: not JSON".to_owned(), format!("{err}: {body}")))?;
        let bad = || ("reload: not both plugins running, nothing refused".to_owned(), body.clone());
        if json["rejected"].as_array().is_none_or(|r| !r.is_empty()) {
            return Err(bad());
        }
        let plugins = json["plugins"].as_array().ok_or_else(bad)?;
        let workers: BTreeMap<String, u32> = plugins
            .iter()
            .filter_map(|p| {
                let pid = p["status"].as_str()?.strip_prefix("running (pid ")?.strip_suffix(')')?.parse().ok()?;
                Some((p["name"].as_str()?.to_owned(), pid))
            })
            .collect();
        if workers.len() != 2 || plugins.len() != 2 {
            return Err(bad());
        }
        Ok(workers)
    }
}

/// Puts a copy of `from` at `to` the way an operator's deploy would: written beside it, then
/// renamed over it, so a scan sees the old file or the new one, never half of one.
fn replace(from: &Path, to: &Path, mode: u32) {
    let staged = to.parent().expect("a plugin directory").parent().expect("a root").join(".soak-staged");
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    let mut file = std::fs::File::create(&staged).expect("stage a file");
    file.write_all(&bytes).expect("write the staged file");
    file.set_permissions(Permissions::from_mode(mode)).expect("chmod the staged file");
    drop(file);
    std::fs::rename(&staged, to).unwrap_or_else(|e| panic!("rename over {}: {e}", to.display()));
}
