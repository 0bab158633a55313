//! The real `plughost serve` as a child process, on an ephemeral loopback port.
//!
//! How the kit learns the port: `--listen 127.0.0.1:0 --print-addr`, and the first line of the
//! child's stdout is the bound `IP:PORT` (the documented, machine-readable channel). The
//! `listening on` log line is for people; nothing here reads it.
//!
//! The child gets a clean environment for its settings: inherited `PLUGHOST_*` are removed and
//! `RUST_LOG` is the builder's, then the builder's variables are set. Its stderr (the log) is kept in memory, and copied
//! to a file when asked.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PluginDir;
use crate::fixtures::fixtures;

/// The admin token a [`Serve`] gets unless told otherwise.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// How long the server may take to print its address, and then to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a server: [`Serve::builder`], the setters, then [`ServeBuilder::start`].
pub struct ServeBuilder {
    binary: Option<PathBuf>,
    dir: Option<PluginDir>,
    admin_token: Option<String>,
    config: Option<String>,
    plugins: Vec<(String, PathBuf, Option<String>)>,
    env: Vec<(String, String)>,
    rust_log: String,
    wait_ready: bool,
    log_file: Option<PathBuf>,
}

impl ServeBuilder {
    /// The `plughost` binary to run (default: the fixture build's).
    pub fn binary(mut self, plughost: &Path) -> Self {
        self.binary = Some(plughost.to_owned());
        self
    }

    /// The directories to serve (default: a fresh [`PluginDir`]). The server owns them.
    pub fn dir(mut self, dir: PluginDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// `PLUGHOST_ADMIN_TOKEN` (default [`ADMIN_TOKEN`]); `None` starts without one.
    pub fn admin_token(mut self, token: Option<&str>) -> Self {
        self.admin_token = token.map(str::to_owned);
        self
    }

    /// The host config file (`--config`); `{dir}` is replaced by the [`PluginDir`]'s root.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// Drops `so` into the plugin directory as `file_name`, with `sidecar` as its `<stem>.toml`.
    pub fn plugin(mut self, file_name: &str, so: &Path, sidecar: Option<&str>) -> Self {
        self.plugins.push((file_name.to_owned(), so.to_owned(), sidecar.map(str::to_owned)));
        self
    }

    /// The `test-token-provider` fixture as `libtest_token_provider.so`, configured by `sidecar`.
    pub fn token_provider(self, sidecar: &str) -> Self {
        self.plugin("libtest_token_provider.so", &fixtures().test_token_provider, Some(sidecar))
    }

    /// An environment variable of the server process (after the inherited settings are removed).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The server's `RUST_LOG` (default `debug`: tests search the whole log).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Returns as soon as the server listens, without waiting for `/readyz`.
    pub fn no_wait_ready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Also copies the log, line by line, to `path`.
    pub fn log_file(mut self, path: &Path) -> Self {
        self.log_file = Some(path.to_owned());
        self
    }

    /// Starts the server; panics with the log if it does not come up.
    pub fn start(self) -> Serve {
        self.try_start().unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts the server: once it has printed its address, and unless [`no_wait_ready`] was
    /// set, once `/readyz` answers 200.
    ///
    /// [`no_wait_ready`]: ServeBuilder::no_wait_ready
    pub fn try_start(self) -> Result<Serve, StartError> {
        let binary = self.binary.unwrap_or_else(|| fixtures().plughost.clone());
        let dir = self.dir.unwrap_or_default();
        for (file_name, so, sidecar) in &self.plugins {
            dir.add(so, file_name);
            if let Some(toml) = sidecar {
                dir.configure(file_name, toml);
            }
        }
        let config = self.config.map(|config| {
            dir.write_private("plughost.toml", &config.replace("{dir}", &dir.root().display().to_string()))
        });
        let launch = Launch {
            binary,
            config,
            admin_token: self.admin_token,
            env: self.env,
            rust_log: self.rust_log,
            wait_ready: self.wait_ready,
            log_file: self.log_file,
        };
        let (process, addr_rx) = launch.spawn(&dir, false)?;
        let mut serve = Serve {
            child: process.child,
            base: String::new(),
            launch,
            dir: Some(dir),
            log: process.log,
            log_reader: Some(process.log_reader),
            bodies: Mutex::new(Vec::new()),
            agent: crate::http::agent(),
        };
        serve.connect(&addr_rx)?;
        Ok(serve)
    }
}

/// How a server process is started, kept for [`Serve::restart`].
struct Launch {
    binary: PathBuf,
    /// The written `--config` file.
    config: Option<PathBuf>,
    admin_token: Option<String>,
    env: Vec<(String, String)>,
    rust_log: String,
    wait_ready: bool,
    log_file: Option<PathBuf>,
}

/// A started server process and the thread keeping its log.
struct Process {
    child: Child,
    log: Arc<Log>,
    log_reader: JoinHandle<()>,
}

impl Launch {
    /// Starts `plughost serve` on `dir`; the receiver gets the first line of its stdout. A
    /// restart appends to the log file rather than replacing it.
    fn spawn(&self, dir: &PluginDir, restart: bool) -> Result<(Process, mpsc::Receiver<Option<String>>), StartError> {
        let log_file = match &self.log_file {
            Some(path) => Some(
                File::options()
                    .create(true)
                    .write(true)
                    .append(restart)
                    .truncate(!restart)
                    .open(path)
                    .map_err(|err| StartError::LogFile { path: path.clone(), err })?,
            ),
            None => None,
        };

        // Inherited `PLUGHOST_*` removed; the inherited `RUST_LOG` is replaced below.
        let mut command = crate::cli::command_without_settings(&self.binary);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--print-addr", "--plugin-dir"])
            .arg(dir.plugin_dir())
            .arg("--state-dir")
            .arg(dir.state_dir())
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = &self.admin_token {
            command.env("PLUGHOST_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().map_err(|err| StartError::Spawn { binary: self.binary.clone(), err })?;

        let stderr = child.stderr.take().expect("stderr is piped");
        let log =
            Arc::new(Log { text: Mutex::new(String::new()), pipe: stderr.as_raw_fd(), state: AtomicU8::new(BUSY) });
        let log_reader = std::thread::spawn({
            let log = Arc::clone(&log);
            move || keep_log(stderr, &log, log_file)
        });
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || read_address(stdout, &addr_tx));
        Ok((Process { child, log, log_reader }, addr_rx))
    }
}

/// Why a server did not come up. Once the process has started, each carries its log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot create the log file {}: {err}", path.display())]
    LogFile { path: PathBuf, err: std::io::Error },
    #[error("cannot start {}: {err}", binary.display())]
    Spawn { binary: PathBuf, err: std::io::Error },
    #[error("plughost serve stopped ({status}) before printing its address; log:\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("plughost serve printed no address within {timeout:?}; log:\n{log}")]
    NoAddress { timeout: Duration, log: String },
    #[error("plughost serve printed {line:?} on stdout, not IP:PORT; log:\n{log}")]
    BadAddress { line: String, log: String },
    #[error("plughost serve at {base} was not ready within {timeout:?} (last answer: {last}); log:\n{log}")]
    NotReady { base: String, timeout: Duration, last: String, log: String },
}

/// A running `plughost serve`. Dropping it kills the process, then deletes its directories.
pub struct Serve {
    child: Child,
    base: String,
    launch: Launch,
    /// `None` only after [`Serve::stop`] took it back.
    dir: Option<PluginDir>,
    log: Arc<Log>,
    log_reader: Option<JoinHandle<()>>,
    /// `(status, path, body)` of every reply, for tests that search them for secrets.
    pub(crate) bodies: Mutex<Vec<(u16, String, String)>>,
    pub(crate) agent: ureq::Agent,
}

impl Serve {
    /// A builder with the defaults: the fixture `plughost`, a fresh [`PluginDir`], admin token
    /// [`ADMIN_TOKEN`], `RUST_LOG=debug`, and waiting for `/readyz`.
    pub fn builder() -> ServeBuilder {
        ServeBuilder {
            binary: None,
            dir: None,
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            config: None,
            plugins: Vec::new(),
            env: Vec::new(),
            rust_log: "debug".to_owned(),
            wait_ready: true,
            log_file: None,
        }
    }

    /// `http://IP:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base` followed by `path` (`/admin/plugins`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The admin token the server was started with.
    pub fn admin_token(&self) -> Option<&str> {
        self.launch.admin_token.as_deref()
    }

    /// The directories the server was started with; plugins can be added while it runs.
    pub fn dir(&self) -> &PluginDir {
        self.dir.as_ref().expect("the directories stay until the server is dropped or stopped")
    }

    pub fn plugin_dir(&self) -> &Path {
        self.dir().plugin_dir()
    }

    pub fn state_dir(&self) -> &Path {
        self.dir().state_dir()
    }

    /// Kills the server and hands its directories back, to start another server on them
    /// (`Serve::builder().dir(dir)`, with other settings than [`Serve::restart`] keeps).
    pub fn stop(mut self) -> PluginDir {
        self.kill();
        self.dir.take().expect("the directories are taken back once")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server if it still runs (SIGKILL, as a crash would), then starts it again with
    /// the same settings on the same plugin and state directories. It gets a new port
    /// ([`Serve::base`]), pid and in-memory log; a log file is appended to.
    pub fn restart(&mut self) -> Result<(), StartError> {
        self.kill();
        let (process, addr_rx) = self.launch.spawn(self.dir(), true)?;
        self.child = process.child;
        self.log = process.log;
        self.log_reader = Some(process.log_reader);
        self.base.clear();
        self.connect(&addr_rx)
    }

    /// Learns the address the process prints, then, unless told not to, waits for `/readyz`.
    fn connect(&mut self, addr_rx: &mpsc::Receiver<Option<String>>) -> Result<(), StartError> {
        let line = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = self.exit_within(Duration::from_secs(5)).unwrap_or_else(|| self.kill());
                return Err(StartError::Exited { status, log: self.log() });
            }
            Err(_) => {
                self.kill();
                return Err(StartError::NoAddress { timeout: START_TIMEOUT, log: self.log() });
            }
        };
        let addr: SocketAddr = match line.trim_end().parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.kill();
                return Err(StartError::BadAddress { line, log: self.log() });
            }
        };
        self.base = format!("http://{addr}");
        if self.launch.wait_ready {
            self.poll_ready()?;
        }
        Ok(())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.settle(Duration::from_secs(1));
        self.log.text.lock().expect("log lock").clone()
    }

    /// Sends `signal` (`libc::SIGHUP`, ...) to the server.
    #[allow(unsafe_code)]
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) touches no memory of ours; the pid is our child, not reaped before drop
        // or wait_exit, so it cannot name another process.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }

    /// Waits for the server to exit on its own; panics with the log after `timeout`. Returns
    /// once the log holds its last lines.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.exit_within(timeout)
            .unwrap_or_else(|| panic!("plughost did not exit within {timeout:?}; log:\n{}", self.log()))
    }

    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for plughost") {
                self.finish_log();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits for it; the directories stay until drop.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for plughost");
        self.finish_log();
        status
    }

    /// Polls `/readyz` until it answers 200; panics with the log after 30 s.
    pub fn wait_ready(&self) {
        self.poll_ready().unwrap_or_else(|err| panic!("{err}"));
    }

    fn poll_ready(&self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = match self.try_request("GET", "/readyz", None, None) {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => format!("{} {}", reply.status, reply.body),
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                let (base, timeout, log) = (self.base.clone(), START_TIMEOUT, self.log());
                return Err(StartError::NotReady { base, timeout, last, log });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After the process is gone: lets the log reader take the last lines. Bounded, because a
    /// process the server started could still hold the pipe.
    fn finish_log(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log_reader.as_ref().is_some_and(|reader| !reader.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.log_reader.as_ref().is_some_and(JoinHandle::is_finished) {
            let _ = self.log_reader.take().map(JoinHandle::join);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the first stdout line (`None` at end of file), then drains stdout so the server never
/// blocks on a full pipe.
fn read_address(stdout: ChildStdout, addr_tx: &mpsc::Sender<Option<String>>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let first = match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    };
    let _ = addr_tx.send(first);
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
}

/// The server's log as read so far, and where its reader is.
struct Log {
    text: Mutex<String>,
    /// The read end of the server's stderr (owned by the reader thread).
    pipe: RawFd,
    /// [`BUSY`], [`WAITING`] (blocked in `read` with everything before appended) or [`DONE`].
    state: AtomicU8,
}

const BUSY: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

impl Log {
    /// Waits, up to `timeout`, until the reader has appended every byte the server wrote so far:
    /// it waits in `read` and nothing is left in the pipe. Without this a test that reads the
    /// log right after a reply can miss the line written before it on a loaded machine.
    fn settle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.state.load(Ordering::Acquire) {
                DONE => return,
                WAITING if pending_bytes(self.pipe) == Some(0) => return,
                _ if Instant::now() >= deadline => return,
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

/// Bytes waiting in the pipe `fd` (`FIONREAD`).
#[allow(unsafe_code)]
fn pending_bytes(fd: RawFd) -> Option<usize> {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at a live c_int. The fd
    // stays open while the reader has not reached DONE (it owns it and closes it after).
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) };
    (rc == 0).then(|| usize::try_from(pending).unwrap_or(0))
}

/// Appends each line of the server's stderr to `log` (and `file`) until the end of the stream.
fn keep_log(mut stderr: ChildStderr, log: &Log, mut file: Option<File>) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut append = |line: &mut Vec<u8>| {
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if let Some(file) = &mut file {
            let _ = file.write_all(line);
        }
        log.text.lock().expect("log lock").push_str(&String::from_utf8_lossy(line));
    };
    loop {
        log.state.store(WAITING, Ordering::Release);
        let read = stderr.read(&mut buf);
        log.state.store(BUSY, Ordering::Release);
        match read {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => {
                if !pending.is_empty() {
                    append(&mut pending);
                }
                log.state.store(DONE, Ordering::Release);
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = pending.drain(..=end).collect();
            append(&mut line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_stops_before_printing_its_address_is_an_error_with_its_log() {
        let err = Serve::builder().config("this is not toml").try_start().err().expect("a bad config file stops serve");
        let StartError::Exited { status, log } = err else { panic!("{err}") };
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains("plughost.toml"), "{log}");
    }

    #[test]
    fn a_restart_is_a_new_process_on_the_same_state() {
        let mut serve = Serve::builder().rust_log("info").start();
        let token = serve.issue("ws-1");
        let pid = serve.pid();
        serve.restart().unwrap();
        assert_ne!(serve.pid(), pid);
        // No plugin: the token is accepted (not 401) and the answer is "no plugin loaded".
        assert_eq!(serve.get("/workspaces/ws-1/github-installation-token", Some(&token)).status, 404);
    }

    #[test]
    fn the_address_comes_from_print_addr_and_the_log_is_kept() {
        let mut serve = Serve::builder().rust_log("info").start();
        assert!(serve.base().starts_with("http://127.0.0.1:"), "{}", serve.base());
        assert_eq!(serve.get("/healthz", None).status, 200);
        serve.signal(libc::SIGTERM);
        assert!(serve.wait_exit(Duration::from_secs(10)).success(), "{}", serve.log());
        // The log, read to its end, has the line for people, naming the same address.
        assert!(serve.log().contains(&format!("listening on {}", serve.base())), "{}", serve.log());
    }
}
