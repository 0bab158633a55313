//! What process isolation costs, each figure against its baseline in the same run:
//!
//! - a token call to a plugin in process mode (host -> worker -> plugin -> host, through the
//!   registry) against a bare socketpair ping-pong between two processes, p50 and p99;
//! - the same call to the same plugin mapped in-process, for scale;
//! - the time from a worker's SIGSEGV to the first good answer from its replacement;
//! - the probe of a new file (a worker loads and initialises it, then exits);
//! - the resident memory of a worker.
//!
//! Run: `cargo bench -p abi-tests --bench isolation` (ROUNDS=20000 by default). Targets: process
//! mode p50 <= 2x the ping-pong p50; SIGSEGV to first good answer <= 1 s; probe <= 50 ms.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plughost::isolation::Mode;
use plughost::loader::LoaderConfig;
use plughost::registry::{Pick, Registry};
use plughost_testkit::PluginDir;

const CHILD_ENV: &str = "PLUGHOST_BENCH_PINGPONG_CHILD";
/// About the size of a token call's request and answer frames.
const MESSAGE: usize = 96;

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return echo_child();
    }
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let fixtures = abi_tests::fixtures();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let pingpong = ping_pong(rounds);
    let process = registry_calls(&runtime, fixtures, Mode::Process, rounds);
    let in_process = registry_calls(&runtime, fixtures, Mode::InProcess, rounds);
    let ratio = process.p50.as_secs_f64() / pingpong.p50.as_secs_f64();
    println!("round trip ({rounds} calls each)            p50        p99");
    println!("  socketpair ping-pong, 2 processes  {:>9.1?} {:>9.1?}", pingpong.p50, pingpong.p99);
    println!("  token call, process mode           {:>9.1?} {:>9.1?}", process.p50, process.p99);
    println!("  token call, in-process             {:>9.1?} {:>9.1?}", in_process.p50, in_process.p99);
    println!("  process mode / ping-pong, p50: {ratio:.2}x (target <= 2x)");

    let recovery = crash_recovery(&runtime, fixtures, 10);
    println!(
        "SIGSEGV to first good answer (10 crashes): p50 {:.1?}, max {:.1?} (target <= 1 s)",
        recovery.p50, recovery.max
    );
    let probe = probe_cost(fixtures, 20);
    println!("probe of a new file (20 probes): p50 {:.1?}, max {:.1?} (target <= 50 ms)", probe.p50, probe.max);
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Percentiles { p50: at(0.5), p99: at(0.99), max: *samples.last().unwrap() }
}

/// The baseline: this process and a child echo a message back and forth over a socketpair,
/// both blocking in read.
fn ping_pong(rounds: usize) -> Percentiles {
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "1")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let message = [7u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds / 10 {
        mine.write_all(&message).unwrap();
        mine.read_exact(&mut answer).unwrap();
    }
    for _ in 0..rounds {
        let started = Instant::now();
        mine.write_all(&message).unwrap();
        mine.read_exact(&mut answer).unwrap();
        samples.push(started.elapsed());
    }
    drop(mine);
    let _ = child.wait();
    percentiles(samples)
}

fn echo_child() {
    let mut socket = UnixStream::from(std::io::stdin().as_fd_owned());
    let mut buf = [0u8; MESSAGE];
    while socket.read_exact(&mut buf).is_ok() {
        if socket.write_all(&buf).is_err() {
            break;
        }
    }
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> OwnedFd;
}

impl AsFdOwned for std::io::Stdin {
    fn as_fd_owned(&self) -> OwnedFd {
        use std::os::fd::AsFd as _;
        self.as_fd().try_clone_to_owned().unwrap()
    }
}

/// A plugin directory holding the crashing fixture (configured with `plugin_toml`), loaded in `mode`.
fn config(fixtures: &abi_tests::Fixtures, dir: &PluginDir, mode: Mode, plugin_toml: &str) -> LoaderConfig {
    dir.add(&fixtures.crashing, "crashing.so");
    dir.configure("crashing.so", plugin_toml);
    let mut config = dir.loader_config();
    config.isolation.default_mode = mode;
    config
}

fn registry_calls(
    runtime: &tokio::runtime::Runtime,
    fixtures: &abi_tests::Fixtures,
    mode: Mode,
    rounds: usize,
) -> Percentiles {
    let dir = PluginDir::new();
    let registry: Arc<Registry> =
        runtime.block_on(Registry::load(config(fixtures, &dir, mode, ""), Duration::from_secs(10))).unwrap();
    // On a runtime worker, as a request handler would be.
    let calling = Arc::clone(&registry);
    let samples = runtime
        .block_on(runtime.spawn(async move {
            let mut samples = Vec::with_capacity(rounds);
            for _ in 0..rounds / 10 {
                calling.token(Pick::Named("abi-fixture-crashing")).await.unwrap();
            }
            for _ in 0..rounds {
                let started = Instant::now();
                std::hint::black_box(calling.token(Pick::Named("abi-fixture-crashing")).await.unwrap());
                samples.push(started.elapsed());
            }
            samples
        }))
        .unwrap();
    if mode == Mode::Process {
        let pid = registry.snapshot().plugins[0].worker.as_ref().unwrap().pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: ?").trim().to_owned();
        println!("worker RSS after {rounds} calls: {}", rss.trim_start_matches("VmRSS:").trim());
    }
    percentiles(samples)
}

/// Crashes a worker through its env mutator, then asks for tokens until one comes back; each
/// sample on a fresh host, so each is a plugin's first crash (later ones back off on purpose).
fn crash_recovery(runtime: &tokio::runtime::Runtime, fixtures: &abi_tests::Fixtures, crashes: usize) -> Percentiles {
    let samples = (0..crashes)
        .map(|_| {
            let dir = PluginDir::new();
            let config = config(fixtures, &dir, Mode::Process, "mutate_env = \"segv\"\n");
            let registry = runtime.block_on(Registry::load(config, Duration::from_secs(10))).unwrap();
            runtime
                .block_on(runtime.spawn(async move {
                    registry.token(Pick::Named("abi-fixture-crashing")).await.unwrap();
                    let started = Instant::now();
                    assert!(registry.mutate_env("ws", Default::default()).await.is_err(), "the env mutator crashes");
                    while registry.token(Pick::Named("abi-fixture-crashing")).await.is_err() {}
                    started.elapsed()
                }))
                .unwrap()
        })
        .collect();
    percentiles(samples)
}

/// A worker opens and initialises the file, then exits: what the host pays once per new file.
fn probe_cost(fixtures: &abi_tests::Fixtures, probes: usize) -> Percentiles {
    use plughost::isolation::process::{self, InitMessage, WorkerSpec};
    let spec = WorkerSpec {
        program: fixtures.plughost.clone(),
        library: fixtures.crashing.clone(),
        memory_limit: 1 << 30,
        log: Arc::new(|_, _, _| {}),
    };
    let init = InitMessage {
        config_toml: String::new(),
        plugin_file: "bench".to_owned(),
        max_log_level: plughost_sdk::abi::LogLevel::Warn,
    };
    let samples = (0..probes)
        .map(|_| {
            let started = Instant::now();
            let worker = process::open(&spec, Duration::from_secs(10)).unwrap();
            worker.init(&init, Duration::from_secs(10)).unwrap().finish().unwrap();
            started.elapsed()
        })
        .collect();
    percentiles(samples)
}
