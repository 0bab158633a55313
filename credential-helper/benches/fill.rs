//! `git credential fill` through the helper, with a warm and with a cold cache, against the
//! in-test token server on loopback.
//!
//! Run: `cargo bench -p git-credential-plughost --bench fill`
//! Prints, per case, the number of runs and the min / median / p95 / mean wall time of one
//! whole `git credential fill` (git plus the helper process it starts). The "helper only"
//! rows run `git-credential-plughost get` directly, without git; in the same run, the shell
//! helper it replaces answers the same request from its own warm cache (read from
//! ../shared/reference, the replaced system's source, not copied here), and `/bin/true` shows
//! the floor: what starting any process costs on this machine. `benches/warm_get.sh` measures
//! the warm rows with hyperfine, on the `helper` profile the binary ships with.

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

/// The replaced `molecule-git-token-helper.sh`, from the reference copy in `shared/reference`
/// beside the repository (or beside one of its parent directories, for a git worktree).
fn replaced_script() -> Option<String> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let dir = repo.ancestors().skip(1).map(|d| d.join("shared/reference")).find(|d| d.is_dir())?;
    std::fs::read_dir(dir).ok()?.find_map(|entry| {
        let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        if !text.lines().next()?.ends_with("/molecule-git-token-helper.sh") {
            return None;
        }
        Some(text[text.find("#!/bin/bash")?..].to_owned())
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
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
    let helper_times = measure(runs, || {}, helper_get);
    let helper_median = median(helper_times.clone());
    report("helper only (get), warm cache", helper_times);
    assert_eq!(server.requests(), before, "warm runs never ask the server");

    let floor = || {
        let out = run(&mut sandbox.command("/bin/true"), GET);
        assert!(out.status.success());
    };
    report("floor: /bin/true", measure(runs, || {}, floor));
    match replaced_script() {
        Some(script) => {
            // Its warm cache: the token and an expiry a day ahead, as its _write_cache leaves them.
            let token = password(&sandbox.helper(&["get"], GET)).unwrap();
            let dir = sandbox.path("home/.molecule-token-cache");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("gh_installation_token"), &token).unwrap();
            let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 86_400;
            std::fs::write(dir.join("gh_installation_token_expiry"), expiry.to_string()).unwrap();
            let path = sandbox.path("replaced-helper.sh");
            std::fs::write(&path, script).unwrap();
            let script_get = || {
                let out = run(sandbox.command("bash").arg(&path).arg("get"), GET);
                assert_eq!(password(&out).as_deref(), Some(token.as_str()), "{}", String::from_utf8_lossy(&out.stderr));
            };
            let script_times = measure(runs, || {}, script_get);
            let script_median = median(script_times.clone());
            report("replaced shell script (get), warm", script_times);
            println!(
                "warm get: the helper is {:.1}x faster than the replaced script (medians)",
                script_median.as_secs_f64() / helper_median.as_secs_f64()
            );
        }
        None => println!("replaced script not found in ../shared/reference: no comparison"),
    }
    assert_eq!(server.requests(), before, "warm runs never ask the server");

    report("git credential fill, cold cache", measure(runs, || clear_cached_tokens(&sandbox), fill));
    report("helper only (get), cold cache", measure(runs, || clear_cached_tokens(&sandbox), helper_get));
    assert_eq!(server.requests(), before + 2 * runs, "every cold run asks the server once");
}
