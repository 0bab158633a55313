//! The host's side of one worker process: starting it, the handshake (open, then init), and
//! the multiplexed calls of a running worker ([`Connection`]).
//!
//! Rules, in the order they matter:
//! 1. Every worker is forked by one long-lived thread ([`spawner`]): `PR_SET_PDEATHSIG` fires
//!    when the *thread* that forked the child ends, and tokio's blocking threads retire when
//!    idle. The child gets SIGKILL when the host dies, even by SIGKILL; it also exits on end of
//!    file on its socket. It runs in its own process group, so a Ctrl-C meant for the host does
//!    not kill it before the host has finished its requests.
//! 2. Resource limits (`RLIMIT_DATA`: the plugin's memory; `RLIMIT_CORE` 0: no core files
//!    filling the disk) are set between fork and exec, with async-signal-safe calls only.
//! 3. The handshake is synchronous, with a deadline: the loader runs on a blocking thread and
//!    `plughost plugins check` has no async runtime. A worker that dies, hangs or breaks the
//!    protocol during it is killed and reported with one line naming what happened.
//! 4. A running worker's calls are answered in any order, each matched by id. When the worker
//!    dies, every call in flight fails at once with the cause (signal or exit status).

use std::collections::HashMap;
use std::fmt;
use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use plughost_sdk::abi::LogLevel;
use plughost_sdk::host::LogSink;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{oneshot, watch};

use super::protocol::{self, Call, FromWorker, Reply, ToWorker};
use super::worker::level_from_u8;

/// The hidden subcommand that runs a worker.
pub const WORKER_SUBCOMMAND: &str = "plugin-worker";

/// How to start a worker for one plugin file.
#[derive(Clone)]
pub struct WorkerSpec {
    /// The `plughost` executable (`/proc/self/exe` in the host: the running binary, even if
    /// its file was replaced since).
    pub program: PathBuf,
    /// The content-addressed copy to load.
    pub library: PathBuf,
    /// `RLIMIT_DATA` of the worker, in bytes.
    pub memory_limit: u64,
    /// Where the worker's log events go (tagged with the plugin's name by the caller).
    pub log: LogSink,
}

impl fmt::Debug for WorkerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerSpec")
            .field("program", &self.program)
            .field("library", &self.library)
            .field("memory_limit", &self.memory_limit)
            .finish_non_exhaustive()
    }
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCause {
    Signal(i32),
    Exit(i32),
    /// The host killed it, and why.
    Killed(&'static str),
    /// It sent something that is not the protocol.
    Protocol(String),
}

impl ExitCause {
    pub fn of(status: ExitStatus) -> ExitCause {
        match (status.signal(), status.code()) {
            (Some(signal), _) => ExitCause::Signal(signal),
            (None, Some(code)) => ExitCause::Exit(code),
            (None, None) => ExitCause::Exit(-1),
        }
    }

    /// As the subject of a sentence: `crashed with SIGSEGV`, `exited with status 3`.
    pub fn as_death(&self) -> String {
        match self {
            ExitCause::Signal(_) => format!("crashed with {self}"),
            ExitCause::Exit(code) => format!("exited with status {code}"),
            ExitCause::Killed(why) => format!("was killed ({why})"),
            ExitCause::Protocol(what) => format!("broke the worker protocol ({what})"),
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ExitCause::Signal(signal) => signal_name(*signal).unwrap_or("signal"),
            ExitCause::Exit(_) => "exit",
            ExitCause::Killed(_) => "killed",
            ExitCause::Protocol(_) => "protocol",
        }
    }
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCause::Signal(signal) => match signal_name(*signal) {
                Some(name) => f.write_str(name),
                None => write!(f, "signal {signal}"),
            },
            ExitCause::Exit(code) => write!(f, "exit status {code}"),
            ExitCause::Killed(why) => write!(f, "killed: {why}"),
            ExitCause::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        _ => return None,
    })
}

/// Why a worker could not be started, loaded or initialised. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start a worker process: {0}")]
    Spawn(#[source] std::io::Error),
    /// The SDK refused the library (the same one-line reasons as in-process).
    #[error("{0}")]
    Open(String),
    #[error("init failed: {0}")]
    Init(String),
    #[error("{} while {phase}", cause.as_death())]
    Died { cause: ExitCause, phase: Phase },
    #[error("hung: did not finish {phase} within {timeout:?}")]
    Timeout { phase: Phase, timeout: Duration },
}

/// Where a worker was when it failed to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Mapping the library: its static initialisers run here.
    Loading,
    Initialising,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Loading => "loading (static initialiser or library open)",
            Phase::Initialising => "initialising (init)",
        })
    }
}

impl StartError {
    /// Crashed or exited: the process died, as opposed to refusing the plugin.
    pub fn died(&self) -> Option<&ExitCause> {
        match self {
            StartError::Died { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// A worker that opened its library and told who it is; not yet initialised.
pub struct OpenedWorker {
    child: Child,
    stream: UnixStream,
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    spec: WorkerSpec,
}

/// A worker whose plugin is initialised, ready for calls.
pub struct ReadyWorker {
    child: Child,
    stream: UnixStream,
    pub env_mutator: bool,
    pub token_provider: bool,
    /// `(kind, host)` of each audience its tokens are for (SDK 1.1).
    pub audiences: Vec<(String, String)>,
    pub scoped_token_provider: bool,
    spec: WorkerSpec,
}

impl fmt::Debug for ReadyWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyWorker").field("pid", &self.child.id()).field("spec", &self.spec).finish()
    }
}

/// What the plugin's `init` gets.
#[derive(Clone)]
pub struct InitMessage {
    pub config_toml: String,
    pub plugin_file: String,
    pub max_log_level: LogLevel,
}

/// Starts a worker for `spec.library` and waits until it has opened the library.
pub fn open(spec: &WorkerSpec, timeout: Duration) -> Result<OpenedWorker, StartError> {
    let (host_end, worker_end) = UnixStream::pair().map_err(StartError::Spawn)?;
    let mut command = Command::new(&spec.program);
    command
        .arg(WORKER_SUBCOMMAND)
        .arg("--library")
        .arg(&spec.library)
        .stdin(Stdio::from(OwnedFd::from(worker_end)))
        // Plugin code printing to stdout must not reach the host's stdout (`--print-addr`).
        .stdout(stderr_copy().map_err(StartError::Spawn)?)
        .stderr(Stdio::inherit())
        .env_remove("PLUGHOST_ADMIN_TOKEN")
        .process_group(0);
    let child = spawner::spawn(command, spec.memory_limit).map_err(StartError::Spawn)?;
    let mut worker = Handshake { child: Some(child), stream: host_end, spec, deadline: Instant::now() + timeout };
    match worker.next(Phase::Loading, timeout)? {
        FromWorker::Opened { name, version, sdk_version } => {
            let (child, stream) = worker.into_parts();
            Ok(OpenedWorker { child, stream, name, version, sdk_version, spec: spec.clone() })
        }
        FromWorker::OpenFailed { error } => {
            worker.finish();
            Err(StartError::Open(error))
        }
        other => Err(worker.protocol_error(Phase::Loading, &other)),
    }
}

impl OpenedWorker {
    /// Sends the worker's later log events to `log` (once the plugin's name is known).
    pub fn with_log(mut self, log: LogSink) -> OpenedWorker {
        self.spec.log = log;
        self
    }

    /// Initialises the plugin with its configuration.
    pub fn init(self, init: &InitMessage, timeout: Duration) -> Result<ReadyWorker, StartError> {
        let OpenedWorker { child, stream, spec, .. } = self;
        let mut worker = Handshake { child: Some(child), stream, spec: &spec, deadline: Instant::now() + timeout };
        let message = ToWorker::Init {
            config_toml: init.config_toml.clone(),
            plugin_file: init.plugin_file.clone(),
            max_log_level: init.max_log_level as u8,
        };
        if let Err(err) = protocol::write_message(&mut worker.stream, &message) {
            // It died before reading: find out how.
            return Err(worker.died_or(Phase::Initialising, err));
        }
        match worker.next(Phase::Initialising, timeout)? {
            FromWorker::Initialized { env_mutator, token_provider, audiences, scoped_token_provider } => {
                let (child, stream) = worker.into_parts();
                Ok(ReadyWorker {
                    child,
                    stream,
                    env_mutator,
                    token_provider,
                    audiences,
                    scoped_token_provider,
                    spec: spec.clone(),
                })
            }
            FromWorker::InitFailed { error } => {
                worker.finish();
                Err(StartError::Init(error))
            }
            other => Err(worker.protocol_error(Phase::Initialising, &other)),
        }
    }

    /// Ends the worker (a probe that has seen enough) and waits for it.
    pub fn finish(self) {
        let OpenedWorker { child, stream, spec, .. } = self;
        Handshake { child: Some(child), stream, spec: &spec, deadline: Instant::now() }.finish();
    }
}

impl ReadyWorker {
    /// Ends the worker (a probe that has seen enough) and waits for it; a worker that dies
    /// badly on the way out (a crashing destructor) is reported.
    pub fn finish(self) -> Result<(), ExitCause> {
        let ReadyWorker { mut child, stream, .. } = self;
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(ExitCause::of(status)),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ExitCause::Killed("did not exit after the host closed its socket"));
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A worker during the handshake. Dropping it kills the process.
struct Handshake<'a> {
    child: Option<Child>,
    stream: UnixStream,
    spec: &'a WorkerSpec,
    deadline: Instant,
}

impl Handshake<'_> {
    /// The next message other than a log event; end of file, a broken frame or the deadline
    /// are errors naming the phase.
    fn next(&mut self, phase: Phase, timeout: Duration) -> Result<FromWorker, StartError> {
        let mut reader = BufReader::new(&self.stream);
        let mut buf = Vec::new();
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill();
                return Err(StartError::Timeout { phase, timeout });
            }
            let _ = reader.get_ref().set_read_timeout(Some(left));
            match protocol::read_message::<FromWorker>(&mut reader, &mut buf) {
                Ok(Some(FromWorker::Log { level, target, message })) => {
                    (self.spec.log)(level_from_u8(level), &target, &message)
                }
                Ok(Some(message)) => return Ok(message),
                Ok(None) => return Err(self.died(phase)),
                Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    self.kill();
                    return Err(StartError::Timeout { phase, timeout });
                }
                Err(err) => return Err(self.died_or(phase, err)),
            }
        }
    }

    /// The worker closed its socket: wait for its status.
    fn died(&mut self, phase: Phase) -> StartError {
        let cause = self.reap(Duration::from_secs(2));
        StartError::Died { cause, phase }
    }

    fn died_or(&mut self, phase: Phase, err: std::io::Error) -> StartError {
        match err.kind() {
            std::io::ErrorKind::InvalidData => {
                self.kill();
                StartError::Died { cause: ExitCause::Protocol(err.to_string()), phase }
            }
            _ => self.died(phase),
        }
    }

    fn protocol_error(&mut self, phase: Phase, got: &FromWorker) -> StartError {
        self.kill();
        let what = format!("unexpected {}", variant_name(got));
        StartError::Died { cause: ExitCause::Protocol(what), phase }
    }

    /// Waits up to `grace` for the worker to exit by itself, then kills it.
    fn reap(&mut self, grace: Duration) -> ExitCause {
        let Some(child) = self.child.as_mut() else { return ExitCause::Killed("already reaped") };
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return ExitCause::of(status);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                _ => {
                    self.kill();
                    return ExitCause::Killed("closed its socket but did not exit");
                }
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Closes the socket (the worker exits on end of file) and waits for it.
    fn finish(mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.reap(Duration::from_secs(2));
    }

    fn into_parts(mut self) -> (Child, UnixStream) {
        let child = self.child.take().expect("a live child until the handshake hands it over");
        let stream = self.stream.try_clone().expect("clone a socket");
        (child, stream)
    }
}

impl Drop for Handshake<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

fn variant_name(message: &FromWorker) -> &'static str {
    match message {
        FromWorker::Opened { .. } => "Opened",
        FromWorker::OpenFailed { .. } => "OpenFailed",
        FromWorker::Initialized { .. } => "Initialized",
        FromWorker::InitFailed { .. } => "InitFailed",
        FromWorker::Reply { .. } => "Reply",
        FromWorker::Log { .. } => "Log",
    }
}

fn stderr_copy() -> std::io::Result<Stdio> {
    use std::os::fd::AsFd as _;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

/// A call that did not get its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The deadline passed; the call may still be running in the worker.
    Timeout,
    /// The worker died (or was killed) with the call in flight.
    Died(ExitCause),
}

type Pending = HashMap<u64, oneshot::Sender<Reply>>;

/// A running worker: calls go out on its socket and come back matched by id.
pub struct Connection {
    pid: u32,
    writer: tokio::sync::Mutex<tokio::net::unix::OwnedWriteHalf>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    /// `Some(cause)` once the worker is gone.
    exit: watch::Receiver<Option<ExitCause>>,
    child: Mutex<Option<Child>>,
    /// Calls past their deadline are given this long to finish before the worker is killed.
    stuck_grace: Duration,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Connection {
    /// Takes over a ready worker; must run inside a tokio runtime. `on_exit` is called once, with
    /// the cause, just before every call in flight fails.
    pub fn start(
        worker: ReadyWorker,
        stuck_grace: Duration,
        on_exit: impl FnOnce(ExitCause) + Send + 'static,
    ) -> std::io::Result<Arc<Connection>> {
        let ReadyWorker { child, stream, spec, .. } = worker;
        stream.set_read_timeout(None)?;
        stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(stream)?;
        let (reader, writer) = stream.into_split();
        let (exit_tx, exit_rx) = watch::channel(None);
        let connection = Arc::new(Connection {
            pid: child.id(),
            writer: tokio::sync::Mutex::new(writer),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            exit: exit_rx,
            child: Mutex::new(Some(child)),
            stuck_grace,
        });
        let reading = Arc::clone(&connection);
        tokio::spawn(async move {
            let cause = reading.read_replies(reader, &spec.log).await;
            let cause = reading.reap(cause).await;
            // The cause first (a failed caller reads it), then the supervisor (so that a caller
            // failed next and calling again finds the worker restarting, not this dead one), then
            // the callers.
            let _ = exit_tx.send(Some(cause.clone()));
            on_exit(cause);
            reading.pending.lock().unwrap_or_else(PoisonError::into_inner).clear();
        });
        Ok(connection)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// Sends `call` and waits for its answer until `deadline`.
    pub async fn call(self: &Arc<Self>, call: Call, deadline: tokio::time::Instant) -> Result<Reply, CallFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        if let Some(cause) = self.exit.borrow().clone() {
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            return Err(CallFailure::Died(cause));
        }
        let sent = async {
            let frame = protocol::encode(&ToWorker::Call { id, call })?;
            let mut writer = self.writer.lock().await;
            writer.write_all(&frame).await
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.failure_after_loss(id).await),
            Err(_) => {
                // The worker stopped reading long enough for the socket to fill, and the frame
                // may be half written: the stream is unusable, and the worker is stuck anyway.
                tracing::warn!(pid = self.pid, "a plugin worker stopped reading its calls; killing it");
                self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                self.kill();
                return Err(CallFailure::Timeout);
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(self.failure_after_loss(id).await),
            Err(_) => {
                self.watch_stuck(id);
                Err(CallFailure::Timeout)
            }
        }
    }

    /// The worker's exit cause, once the reader has it (it is set before calls are failed).
    async fn failure_after_loss(&self, id: u64) -> CallFailure {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(cause) => CallFailure::Died(cause.clone().unwrap_or(ExitCause::Killed("gone"))),
            Err(_) => CallFailure::Died(ExitCause::Killed("gone")),
        }
    }

    /// A call past its deadline: if it is still running after the grace, the worker is hung
    /// and gets killed (a process can be stopped; a thread could not).
    fn watch_stuck(self: &Arc<Self>, id: u64) {
        let connection = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(connection.stuck_grace).await;
            let still_running = connection.pending.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id);
            if still_running && connection.is_alive() {
                tracing::warn!(pid = connection.pid, "a plugin call is stuck past its deadline; killing the worker");
                connection.kill();
            }
        });
    }

    /// SIGKILL; the reader then sees end of file and reports the worker gone.
    pub fn kill(&self) {
        if let Some(child) = self.child.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            let _ = child.kill();
        }
    }

    async fn read_replies(&self, reader: tokio::net::unix::OwnedReadHalf, log: &LogSink) -> Option<ExitCause> {
        let mut reader = tokio::io::BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            let mut header = [0u8; 4];
            if reader.read_exact(&mut header).await.is_err() {
                return None;
            }
            let len = match protocol::frame_len(header) {
                Ok(len) => len,
                Err(err) => return Some(ExitCause::Protocol(err.to_string())),
            };
            buf.resize(len, 0);
            if reader.read_exact(&mut buf).await.is_err() {
                return None;
            }
            match protocol::decode::<FromWorker>(&buf) {
                Ok(FromWorker::Reply { id, reply }) => {
                    let waiter = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(reply);
                    }
                }
                Ok(FromWorker::Log { level, target, message }) => log(level_from_u8(level), &target, &message),
                Ok(other) => return Some(ExitCause::Protocol(format!("unexpected {}", variant_name(&other)))),
                Err(err) => return Some(ExitCause::Protocol(err.to_string())),
            }
        }
    }

    /// Kills the worker if it is still there and waits for its status. A protocol error
    /// found by the reader wins over the status of the kill that followed it.
    async fn reap(&self, found: Option<ExitCause>) -> ExitCause {
        let child = self.child.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut child) = child else { return found.unwrap_or(ExitCause::Killed("gone")) };
        let status = tokio::task::spawn_blocking(move || {
            // End of file usually means the process is already dead; give it a moment to be
            // reaped with its own status before forcing the matter.
            let deadline = Instant::now() + Duration::from_millis(500);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => return Some(status),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                    _ => {
                        let _ = child.kill();
                        return child.wait().ok();
                    }
                }
            }
        })
        .await
        .ok()
        .flatten();
        match (found, status) {
            (Some(cause), _) => cause,
            (None, Some(status)) => ExitCause::of(status),
            (None, None) => ExitCause::Killed("could not be reaped"),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The one thread that forks workers (rule 1).
mod spawner {
    use super::*;

    struct Request {
        command: Command,
        memory_limit: u64,
        reply: mpsc::SyncSender<std::io::Result<Child>>,
    }

    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

    pub fn spawn(command: Command, memory_limit: u64) -> std::io::Result<Child> {
        let sender = SPAWNER.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("plugin spawner".to_owned())
                .spawn(move || {
                    for mut request in rx {
                        let _ = request.reply.send(spawn_here(&mut request.command, request.memory_limit));
                    }
                })
                .expect("start the plugin spawner thread");
            Mutex::new(tx)
        });
        let (reply, answer) = mpsc::sync_channel(1);
        sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(Request { command, memory_limit, reply })
            .map_err(|_| std::io::Error::other("the plugin spawner thread is gone"))?;
        answer.recv().map_err(|_| std::io::Error::other("the plugin spawner thread is gone"))?
    }

    fn spawn_here(command: &mut Command, memory_limit: u64) -> std::io::Result<Child> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe functions may be called: prctl, getppid, setrlimit and _exit are.
        // It allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The host died between fork and prctl: nobody will signal us.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                let data = libc::rlimit { rlim_cur: memory_limit, rlim_max: memory_limit };
                if libc::setrlimit(libc::RLIMIT_DATA, &data) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::setrlimit(libc::RLIMIT_CORE, &core) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        command.spawn()
    }
}

/// `/proc/self/exe`: the running host binary, even if its file was replaced or deleted since.
pub fn current_program() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}
