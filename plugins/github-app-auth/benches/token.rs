//! Token call costs against the real emulator on loopback:
//!
//! ```text
//! CARGO_TARGET_DIR=/work/targets/github cargo bench -p github-app-auth --bench token
//! ```
//!
//! - `cached_token`: one `token()` call on a warm cache (what nearly every host call costs).
//! - `cold_burst_64_threads`: 64 threads ask a cold cache at once; one mint serves them all
//!   (JWT signing + one HTTP round trip + wake-ups).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use github_app_auth::{AppIdentity, Config, GitHubAppAuth, InstallationTarget, PrivateKey};
use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, TEST_CLIENT_ID, TEST_INSTALLATION_ID, shared_test_key,
};

fn setup() -> (EmulatorHandle, Config) {
    let key = shared_test_key();
    let emu = Emulator::start(EmulatorConfig::with_test_app(&key.public_pem)).expect("emulator starts");
    let config = Config::new(
        AppIdentity::ClientId(TEST_CLIENT_ID.to_owned()),
        InstallationTarget::Id(TEST_INSTALLATION_ID),
        PrivateKey::from_pem(&key.private_pem, "private_key").expect("key"),
        &emu.base_url(),
    )
    .expect("config");
    (emu, config)
}

fn cached_token(c: &mut Criterion) {
    let (_emu, config) = setup();
    let auth = GitHubAppAuth::new(&config);
    auth.token().expect("warm-up mint");
    c.bench_function("cached_token", |b| b.iter(|| auth.token().expect("cached")));
}

fn cold_burst(c: &mut Criterion) {
    const THREADS: usize = 64;
    let (emu, config) = setup();
    let bursts = AtomicU64::new(0);
    let mut group = c.benchmark_group("cold_burst");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("64_threads", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let auth = Arc::new(GitHubAppAuth::new(&config));
                bursts.fetch_add(1, Ordering::Relaxed);
                let barrier = Arc::new(Barrier::new(THREADS + 1));
                let threads: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let (auth, barrier) = (auth.clone(), barrier.clone());
                        std::thread::spawn(move || {
                            barrier.wait();
                            auth.token().expect("token").remaining()
                        })
                    })
                    .collect();
                // Time from the release of the burst until every caller has its token.
                barrier.wait();
                let started = Instant::now();
                for thread in threads {
                    thread.join().expect("no panic");
                }
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();
    let bursts = bursts.load(Ordering::Relaxed);
    let requests = emu.requests("POST /app/installations/{id}/access_tokens");
    assert_eq!(emu.mints(), bursts, "exactly one mint per burst of {THREADS} callers");
    assert_eq!(requests, bursts, "exactly one request per burst");
    eprintln!("cold_burst: {bursts} bursts of {THREADS} callers, {requests} requests");
}

criterion_group!(benches, cached_token, cold_burst);
criterion_main!(benches);
