//! The worker process: `plughost plugin-worker --library FILE`, started by the host, never by
//! people (the subcommand is hidden).
//!
//! It maps one plugin file through the same SDK open and layout checks as the host would,
//! initialises it, and serves the host's calls over the socket it inherited as standard
//! input ([`super::protocol`]). Each call runs on a pool thread, so a slow or hung call never
//! holds up the others. When the host goes away (end of file on the socket) the worker exits;
//! the host also arranged, when it started the worker, for a SIGKILL on its own death.

use std::io::{BufReader, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use plughost_sdk::abi::LogLevel;
use plughost_sdk::host::{InitArgs, OpenError, PluginInstance, PluginLibrary};

use super::protocol::{self, Call, FromWorker, Reply, ToWorker, WireScopeError, WireToken};

/// Calls run at once inside a worker; more wait in the socket until a thread is free (a hung
/// plugin pins at most this many threads, in its own process, which the host then kills).
const MAX_CALL_THREADS: usize = 64;

/// Runs the worker; returns only when it could not start serving (the normal end is `_exit`
/// on end of file from the host).
pub fn run(library: &Path) -> ExitCode {
    let socket = match take_socket() {
        Ok(socket) => socket,
        Err(err) => {
            eprintln!("plughost plugin-worker: no socket to the host on standard input: {err}");
            return ExitCode::from(2);
        }
    };
    let writer = match socket.try_clone() {
        Ok(writer) => Arc::new(Mutex::new(writer)),
        Err(err) => {
            eprintln!("plughost plugin-worker: cannot clone the socket: {err}");
            return ExitCode::from(2);
        }
    };
    let send = {
        let writer = Arc::clone(&writer);
        move |message: &FromWorker| -> bool {
            let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
            protocol::write_message(&mut *writer, message).and_then(|()| writer.flush()).is_ok()
        }
    };

    let library_handle = match PluginLibrary::open(library) {
        Ok(library) => library,
        Err(err) => {
            if let OpenError::LayoutMismatch { report, .. } = &err {
                send(&FromWorker::Log {
                    level: LogLevel::Debug as u8,
                    target: "plughost::loader".to_owned(),
                    message: format!("full abi_stable report:\n{report}"),
                });
            }
            send(&FromWorker::OpenFailed { error: err.to_string() });
            return ExitCode::SUCCESS;
        }
    };
    let info = library_handle.info();
    if !send(&FromWorker::Opened {
        name: info.name,
        version: info.version,
        sdk_version: library_handle.sdk_version().to_string(),
    }) {
        exit_host_gone();
    }

    let mut reader = BufReader::new(socket);
    let mut buf = Vec::new();
    let (config_toml, plugin_file, max_log_level) = match protocol::read_message::<ToWorker>(&mut reader, &mut buf) {
        Ok(Some(ToWorker::Init { config_toml, plugin_file, max_log_level })) => {
            (config_toml, plugin_file, max_log_level)
        }
        Ok(None) => exit_host_gone(),
        Ok(Some(other)) => protocol_error(&format!("expected Init, got {other:?}")),
        Err(err) => protocol_error(&err.to_string()),
    };
    let log_send = send.clone();
    let args = InitArgs {
        config_toml,
        plugin_file,
        log: Arc::new(move |level, target, message| {
            log_send(&FromWorker::Log { level: level as u8, target: target.to_owned(), message: message.to_owned() });
        }),
        max_log_level: level_from_u8(max_log_level),
    };
    let instance = match library_handle.init(args) {
        Ok(instance) => instance,
        Err(err) => {
            send(&FromWorker::InitFailed { error: err.message });
            return ExitCode::SUCCESS;
        }
    };
    if !send(&FromWorker::Initialized {
        env_mutator: instance.env_mutator.is_some(),
        token_provider: instance.token_provider.is_some(),
        audiences: instance.audiences.iter().map(|a| (a.kind.clone(), a.host.clone())).collect(),
        scoped_token_provider: instance.scoped_token_provider.is_some(),
    }) {
        exit_host_gone();
    }

    let server = Arc::new(Server {
        instance,
        send: Arc::new(send),
        reader: Mutex::new((reader, buf)),
        threads: AtomicUsize::new(1),
        busy: AtomicUsize::new(0),
    });
    server.serve()
}

/// Moves the socket off standard input (so plugin code reading stdin cannot eat protocol
/// bytes) and puts `/dev/null` there instead.
fn take_socket() -> std::io::Result<UnixStream> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let devnull = std::fs::File::open("/dev/null")?;
    // SAFETY: both descriptors are open and owned by this process; dup2 only replaces fd 0,
    // whose previous open file stays referenced by `fd`.
    if unsafe { libc::dup2(devnull.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let socket = UnixStream::from(fd);
    // A socket, not a terminal or a file: refuse to talk protocol into anything else.
    socket.peer_addr()?;
    Ok(socket)
}

/// The host is gone: leave at once, without running the plugin's exit handlers (which could
/// hang, with nobody left to wait for them).
fn exit_host_gone() -> ! {
    // SAFETY: _exit has no preconditions; it ends the process without returning.
    unsafe { libc::_exit(0) }
}

fn protocol_error(what: &str) -> ! {
    eprintln!("plughost plugin-worker: protocol error: {what}");
    std::process::exit(3)
}

pub(crate) fn level_from_u8(level: u8) -> LogLevel {
    match level {
        1 => LogLevel::Error,
        2 => LogLevel::Warn,
        3 => LogLevel::Info,
        4 => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

type Send = Arc<dyn Fn(&FromWorker) -> bool + std::marker::Send + Sync>;

/// Serves calls with leaders and followers: the thread holding the reader reads one call,
/// hands the reader to the next waiting thread and runs the call itself. A call then costs one
/// wake-up in the worker (the reader's, on data), as a plain ping-pong does, and a slow call
/// never holds up the calls behind it, since another thread is already reading. Threads are
/// added while every one is busy, up to [`MAX_CALL_THREADS`].
struct Server {
    instance: PluginInstance,
    send: Send,
    reader: Mutex<(BufReader<UnixStream>, Vec<u8>)>,
    threads: AtomicUsize,
    busy: AtomicUsize,
}

impl Server {
    fn serve(self: Arc<Self>) -> ! {
        loop {
            let (id, call) = {
                let mut guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
                let (reader, buf) = &mut *guard;
                match protocol::read_message::<ToWorker>(reader, buf) {
                    Ok(Some(ToWorker::Call { id, call })) => (id, call),
                    Ok(Some(other)) => protocol_error(&format!("unexpected {other:?}")),
                    Ok(None) => exit_host_gone(),
                    Err(err) => protocol_error(&err.to_string()),
                }
            };
            let busy = self.busy.fetch_add(1, Ordering::AcqRel) + 1;
            if busy >= self.threads.load(Ordering::Acquire) {
                self.add_thread();
            }
            let reply = call_plugin(&self.instance, call);
            self.busy.fetch_sub(1, Ordering::AcqRel);
            if !(self.send)(&FromWorker::Reply { id, reply }) {
                exit_host_gone();
            }
        }
    }

    fn add_thread(self: &Arc<Self>) {
        let threads = self.threads.fetch_add(1, Ordering::AcqRel);
        if threads >= MAX_CALL_THREADS {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let server = Arc::clone(self);
        if std::thread::Builder::new().name("plugin call".to_owned()).spawn(move || server.serve()).is_err() {
            self.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn call_plugin(instance: &PluginInstance, call: Call) -> Reply {
    match call {
        Call::Token => match &instance.token_provider {
            Some(provider) => Reply::Token(provider.token().map(|token| WireToken {
                secret: token.secret.expose().to_owned(),
                expires_at: unix_seconds(token.expires_at),
            })),
            None => Reply::NotProvided,
        },
        Call::MutateEnv { workspace_id, env } => match &instance.env_mutator {
            Some(mutator) => Reply::Env(mutator.mutate_env(&workspace_id, &env)),
            None => Reply::NotProvided,
        },
        Call::ScopedToken { scope } => match &instance.scoped_token_provider {
            Some(provider) => Reply::ScopedToken(
                provider
                    .scoped_token(&scope.to_sdk())
                    .map(|token| WireToken {
                        secret: token.secret.expose().to_owned(),
                        expires_at: unix_seconds(token.expires_at),
                    })
                    .map_err(wire_scope_error),
            ),
            None => Reply::NotProvided,
        },
        Call::Revoke { secret } => match &instance.scoped_token_provider {
            Some(provider) => Reply::Revoked(provider.revoke(&secret.0)),
            None => Reply::NotProvided,
        },
    }
}

pub(crate) fn wire_scope_error(err: plughost_sdk::host::HostScopeError) -> WireScopeError {
    match err {
        plughost_sdk::host::HostScopeError::Refused(why) => WireScopeError::Refused(why),
        plughost_sdk::host::HostScopeError::Failed(why) => WireScopeError::Failed(why),
    }
}

fn unix_seconds(at: std::time::SystemTime) -> i64 {
    // The SDK handle clamps expiries before the epoch to the epoch: never negative here.
    at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
