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

/// One run: wall time, and the CPU time (user + system) of the processes it started and reaped.
/// On a shared machine the CPU time is the steadier figure: waiting for a core is not in it.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// CPU time of every reaped child so far.
fn children_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through the pointer, which points to one; the
    // zeroed value is valid for a plain C struct even if the call failed.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn measure(runs: usize, mut before: impl FnMut(), mut once: impl FnMut()) -> Vec<Sample> {
    (0..runs)
        .map(|_| {
            before();
            let cpu = children_cpu();
            let start = Instant::now();
            once();
            Sample { wall: start.elapsed(), cpu: children_cpu() - cpu }
        })
        .collect()
}

fn median(samples: &[Sample], of: fn(&Sample) -> Duration) -> Duration {
    let mut times: Vec<Duration> = samples.iter().map(of).collect();
    times.sort();
    times[times.len() / 2]
}

fn report(name: &str, samples: &[Sample]) {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name:<34} runs {:>4}  min {:>7.2} ms  median {:>7.2} ms  p95 {:>7.2} ms  mean {:>7.2} ms  cpu median {:>7.2} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        ms(mean),
        ms(median(samples, |s| s.cpu)),
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
    report("git credential fill, warm cache", &measure(runs, || {}, fill));
    let helper = measure(runs, || {}, helper_get);
    report("helper only (get), warm cache", &helper);
    assert_eq!(server.requests(), before, "warm runs never ask the server");

    let floor = || {
        let out = run(&mut sandbox.command("/bin/true"), GET);
        assert!(out.status.success());
    };
    let floor = measure(runs, || {}, floor);
    report("floor: /bin/true", &floor);
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
            let script = measure(runs, || {}, script_get);
            report("replaced shell script (get), warm", &script);
            let ratio =
                |of: fn(&Sample) -> Duration| median(&script, of).as_secs_f64() / median(&helper, of).as_secs_f64();
            let above = |of: fn(&Sample) -> Duration| median(&helper, of).saturating_sub(median(&floor, of));
            println!(
                "warm get: the helper is {:.1}x faster than the replaced script (wall medians; {:.1}x in CPU); \
                 {:.2} ms wall, {:.2} ms CPU above /bin/true",
                ratio(|s| s.wall),
                ratio(|s| s.cpu),
                above(|s| s.wall).as_secs_f64() * 1000.0,
                above(|s| s.cpu).as_secs_f64() * 1000.0,
            );
        }
        None => println!("replaced script not found in ../shared/reference: no comparison"),
    }
    assert_eq!(server.requests(), before, "warm runs never ask the server");

    report("git credential fill, cold cache", &measure(runs, || clear_cached_tokens(&sandbox), fill));
    report("helper only (get), cold cache", &measure(runs, || clear_cached_tokens(&sandbox), helper_get));
    assert_eq!(server.requests(), before + 2 * runs, "every cold run asks the server once");
}
