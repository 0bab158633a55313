//! The worker process: `plughost plugin-worker --library FILE`, started by the host, never by
//! people (the subcommand is hidden).
//!
//! It maps one plugin file through the same SDK open and layout checks as the host would,
//! initialises it, and serves the host's calls over the socket it inherited as standard
//! input ([`super::protocol`]). Each call runs on a pool thread, so a slow or hung call never
//! holds up the others ([`Server`]). When the host goes away (end of file on the socket) the worker exits;
//! the host also arranged, when it started the worker, for a SIGKILL on its own death.

use std::io::{BufReader, Read as _, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use plughost_sdk::abi::LogLevel;
use plughost_sdk::host::{InitArgs, OpenError, PluginInstance, PluginLibrary};
use rustix::event::{EventfdFlags, epoll, eventfd};

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
            let writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
            protocol::encode(message).and_then(|frame| write_all_waiting(&writer, &frame)).is_ok()
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

    // Whatever the reader buffered past `Init` belongs to the first calls.
    let buffered = reader.buffer().to_vec();
    match Server::new(instance, Arc::new(send), reader.into_inner(), buffered) {
        Ok(server) => Arc::new(server).serve(),
        Err(err) => protocol_error(&format!("cannot serve calls: {err}")),
    }
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

/// Writes all of `bytes`, waiting for room when the host is slow to read. The socket is
/// non-blocking once calls are served (its reading side, the same open file, waits in epoll).
fn write_all_waiting(socket: &UnixStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match (&*socket).write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                let mut ready = [rustix::event::PollFd::new(socket, rustix::event::PollFlags::OUT)];
                match rustix::event::poll(&mut ready, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
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

/// Serves calls on a pool of threads, each waiting for work in its own epoll instance with
/// the socket (and a wake-up eventfd) registered `EPOLLEXCLUSIVE`. When a call arrives the kernel
/// wakes ONE idle thread, which reads it and runs it itself: a call costs one wake-up in the
/// worker, as a plain blocking ping-pong does. (A leader handing the reader to a follower, as
/// before, cost a second wake-up per call: about 10 µs of a 24 µs round trip.) A slow call never
/// holds up the calls behind it: threads are added while every one is busy, up to
/// [`MAX_CALL_THREADS`], and the others keep waiting on the socket.
struct Server {
    instance: PluginInstance,
    send: Send,
    inbox: Mutex<Inbox>,
    /// Written when a thread leaves a whole frame behind in the inbox, to wake an idle peer.
    more: OwnedFd,
    threads: AtomicUsize,
    busy: AtomicUsize,
}

/// The read side of the socket and the bytes read from it that no thread has taken yet.
struct Inbox {
    socket: UnixStream,
    buf: Vec<u8>,
}

impl Inbox {
    /// Reads everything the socket holds (so that nothing waits there without a wake-up to come),
    /// then takes one whole frame, if there is one. Also says whether another whole frame is left.
    fn take(&mut self) -> (Option<(u64, Call)>, bool) {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match (&self.socket).read(&mut chunk) {
                Ok(0) => exit_host_gone(),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => protocol_error(&err.to_string()),
            }
        }
        let Some(len) = self.whole_frame_len() else { return (None, false) };
        let call = match protocol::decode::<ToWorker>(&self.buf[4..4 + len]) {
            Ok(ToWorker::Call { id, call }) => (id, call),
            Ok(other) => protocol_error(&format!("unexpected {other:?}")),
            Err(err) => protocol_error(&err.to_string()),
        };
        self.buf.drain(..4 + len);
        (Some(call), self.whole_frame_len().is_some())
    }

    /// The body length of the frame at the front, once all of it is here.
    fn whole_frame_len(&self) -> Option<usize> {
        let header: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let len = protocol::frame_len(header).unwrap_or_else(|err| protocol_error(&err.to_string()));
        (self.buf.len() >= 4 + len).then_some(len)
    }
}

impl Server {
    fn new(instance: PluginInstance, send: Send, socket: UnixStream, buffered: Vec<u8>) -> std::io::Result<Server> {
        socket.set_nonblocking(true)?;
        Ok(Server {
            instance,
            send,
            inbox: Mutex::new(Inbox { socket, buf: buffered }),
            more: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
            threads: AtomicUsize::new(1),
            busy: AtomicUsize::new(0),
        })
    }

    fn serve(self: Arc<Self>) -> ! {
        let waiter = match self.waiter() {
            Ok(waiter) => waiter,
            Err(err) => protocol_error(&format!("cannot wait for calls: {err}")),
        };
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); 2];
        loop {
            let (taken, more) = self.inbox.lock().unwrap_or_else(PoisonError::into_inner).take();
            let Some((id, call)) = taken else {
                match epoll::wait(&waiter, &mut events, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => {}
                    Err(err) => protocol_error(&format!("cannot wait for calls: {err}")),
                }
                // Consume a wake-up from a peer, if that was one: the inbox is checked next anyway.
                let _ = rustix::io::read(&self.more, &mut [0u8; 8]);
                continue;
            };
            if more {
                let _ = rustix::io::write(&self.more, &1u64.to_ne_bytes());
            }
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

    /// This thread's own epoll instance, woken exclusively with the other idle threads'.
    fn waiter(&self) -> std::io::Result<OwnedFd> {
        let waiter = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let socket = self.inbox.lock().unwrap_or_else(PoisonError::into_inner).socket.as_fd().try_clone_to_owned()?;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::EXCLUSIVE;
        epoll::add(&waiter, &socket, epoll::EventData::new_u64(0), flags)?;
        epoll::add(&waiter, &self.more, epoll::EventData::new_u64(1), flags)?;
        Ok(waiter)
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
