//! `git credential fill` through the helper, with a warm and with a cold cache, against the
//! in-test token server on loopback.
//!
//! Run: `cargo bench -p git-credential-plughost --bench fill`
//! Prints, per case, the number of runs and the min / median / p95 / mean wall time of one
//! whole `git credential fill` (git plus the helper process it starts). The "helper only"
//! rows run `git-credential-plughost get` directly, without git.

#[allow(dead_code, unused_imports)]
#[path = "../tests/all/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Sandbox, TokenServer, password, run};

const GET: &str = "protocol=https\nhost=github.com\n\n";

fn clear_cached_tokens(sandbox: &Sandbox) {
    for entry in std::fs::read_dir(sandbox.cache_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("token-") && name.ends_with(".json") {
            std::fs::remove_file(path).unwrap();
        }
    }
}

fn measure(runs: usize, mut before: impl FnMut(), mut once: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            before();
            let start = Instant::now();
            once();
            start.elapsed()
        })
        .collect()
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name:<34} runs {:>4}  min {:>7.2} ms  median {:>7.2} ms  p95 {:>7.2} ms  mean {:>7.2} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        ms(mean)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 3 } else { 200 };

    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let fill = || {
        let out = run(&mut sandbox.git(&["credential", "fill"]), GET);
        assert!(password(&out).is_some(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let helper_get = || {
        let out = sandbox.helper(&["get"], GET);
        assert!(password(&out).is_some());
    };

    fill();
    let before = server.requests();
    report("git credential fill, warm cache", measure(runs, || {}, fill));
    report("helper only (get), warm cache", measure(runs, || {}, helper_get));
    assert_eq!(server.requests(), before, "warm runs never ask the server");

    report("git credential fill, cold cache", measure(runs, || clear_cached_tokens(&sandbox), fill));
    report("helper only (get), cold cache", measure(runs, || clear_cached_tokens(&sandbox), helper_get));
    assert_eq!(server.requests(), before + 2 * runs, "every cold run asks the server once");
}
