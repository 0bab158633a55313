//! One token call through the ABI (sabi_trait vtable, catch_unwind, RString hand-off) against
//! the same provider called as a `Box<dyn TokenProvider>` in-process, in the same run.
//!
//! Run: `cargo bench -p abi-tests --bench token_call`. Target: the ABI call costs at most
//! 10 ns more than the direct call.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use plughost::loader;
use plughost_sdk::abi::LogLevel;
use plughost_sdk::{Error, Token, TokenProvider};
use plughost_testkit::PluginDir;

/// The same code as the `panicking` fixture's provider, compiled into the bench.
struct SameAsFixture {
    panic_in: String,
    sleep_in: String,
}

impl TokenProvider for SameAsFixture {
    fn token(&self) -> Result<Token, Error> {
        if self.panic_in == "token" {
            panic!("boom in token");
        }
        if self.sleep_in == "token" {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Token::new("fixture-token", SystemTime::now() + Duration::from_secs(3600)))
    }
}

fn token_call(c: &mut Criterion) {
    let dir = PluginDir::new();
    dir.add(&plughost_testkit::fixtures().panicking, "panicking.so");
    let config = loader::LoaderConfig { max_log_level: LogLevel::Warn, ..dir.loader_config() };
    let report = loader::scan(&config, &[]).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let through_abi = report.plugins[0].token_provider.as_ref().unwrap();
    // black_box hides the concrete type, as a host's registry would: otherwise the compiler
    // devirtualises and inlines the "dyn" call, which no real host gets.
    let direct: Box<dyn TokenProvider> =
        black_box(Box::new(SameAsFixture { panic_in: String::new(), sleep_in: String::new() }));

    let mut group = c.benchmark_group("token_call");
    group.bench_function("direct_dyn", |b| b.iter(|| black_box(direct.token().unwrap())));
    group.bench_function("through_abi", |b| b.iter(|| black_box(through_abi.token().unwrap())));
    group.finish();
}

criterion_group!(benches, token_call);
criterion_main!(benches);
