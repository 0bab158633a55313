// Plugins that die the ways native code dies (a segfault, abort(), exit(), a hang, memory
// exhaustion), run in process mode by the real host: each answers its callers with the status
// of what happened, is restarted or quarantined, and the host keeps serving everything else.
// Load-time crashes are refused with one line in both modes.

use std::time::{Duration, Instant};

use crate::harness::*;

const CRASHING: &str = "10-crashing.so";
/// The crashing fixture's token route (it declares no GitHub audience: the GitHub route is not its).
const CRASHING_TOKENS: &str = "/admin/tokens/abi-fixture-crashing";

fn status_of(s: &Server, plugin: &str) -> String {
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    json["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .unwrap_or_else(|| panic!("{plugin} not loaded: {json}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn worker_pid(s: &Server, plugin: &str) -> u32 {
    let status = status_of(s, plugin);
    status
        .strip_prefix("running (pid ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{plugin} is not running: {status}"))
}

/// Waits until `plugin` runs a worker other than `old`.
fn wait_restarted(s: &Server, plugin: &str, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status_of(s, plugin);
        if let Some(pid) = status.strip_prefix("running (pid ").and_then(|r| r.strip_suffix(')')) {
            let pid: u32 = pid.parse().unwrap();
            if pid != old {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "{plugin} never restarted: {status}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `plughost plugins list` on the server's directories, as an operator would run it beside it.
fn plugins_list(s: &Server) -> (std::process::ExitStatus, String, String) {
    let (plugin_dir, state_dir) = (s.plugin_dir().to_str().unwrap(), s.state_dir().to_str().unwrap());
    run_cli(&["plugins", "list", "--plugin-dir", plugin_dir, "--state-dir", state_dir])
}

fn gone(pid: u32) -> bool {
    // Gone, or a zombie waiting for whoever inherited it: either way no plugin code runs.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_segfault_in_token_answers_502_at_once_and_the_worker_is_replaced() {
    let s = server()
        .config("token_cache_ms = 0\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"segv\"\n"))
        .plugin("20-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .start();
    let first = worker_pid(&s, "abi-fixture-crashing");

    let started = Instant::now();
    let reply = s.get(CRASHING_TOKENS, Some(ADMIN));
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.error(), "token provider crashed");
    assert!(started.elapsed() < Duration::from_secs(1), "answered after {:?}", started.elapsed());
    assert!(gone(first));

    // The host kept serving; the crashed plugin's worker is back and works where it can.
    wait_restarted(&s, "abi-fixture-crashing", first);
    assert_eq!(s.get("/readyz", None).status, 200);
    let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(env.status, 200, "{}", env.body);
    assert_eq!(env.json()["env"]["CRASHING_FIXTURE"], "survived");
    assert_eq!(env.json()["env"]["TZ"], "UTC");

    let log = s.log();
    assert!(log.contains("plugin worker died (SIGSEGV)"), "{log}");
    assert!(log.contains("abi-fixture-crashing"), "{log}");
    let metrics = s.get("/metrics", None).body;
    assert!(
        metrics.contains(r#"plughost_plugin_crashes_total{plugin="abi-fixture-crashing",cause="SIGSEGV"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"plughost_plugin_restarts_total{plugin="abi-fixture-crashing"} 1"#), "{metrics}");
}

#[test]
fn an_abort_in_the_env_chain_is_502_naming_the_plugin_and_the_signal() {
    let s = server().plugin(CRASHING, &fixtures().crashing, Some("mutate_env = \"abort\"\n")).start();
    let reply = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.error(), "env mutator abi-fixture-crashing crashed (SIGABRT)");
    // Tokens from the same plugin still come, from its next worker.
    let token = s.get(CRASHING_TOKENS, Some(ADMIN));
    assert_eq!(token.status, 200, "{}", token.body);
}

#[test]
fn exit_in_init_and_a_crashing_static_initialiser_are_refused_with_one_line_in_both_modes() {
    for mode in ["process", "in-process"] {
        let s = server()
            .config(&format!("[isolation]\nmode = \"{mode}\"\n"))
            .plugin("10-exits.so", &fixtures().crashing, Some("init = \"exit\"\nexit_code = 3\n"))
            .plugin("20-crash-at-load.so", &fixtures().crash_at_load, None)
            .plugin("30-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
            .start();
        let json = s.get("/admin/plugins", Some(ADMIN)).json();
        let refused = |file: &str| -> String {
            json["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["file"].as_str().unwrap().ends_with(file))
                .unwrap_or_else(|| panic!("{mode}: {file} not refused: {json}"))["error"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(refused("10-exits.so"), "exited with status 3 while initialising (init)", "{mode}");
        assert_eq!(
            refused("20-crash-at-load.so"),
            "crashed with SIGSEGV while loading (static initialiser or library open)",
            "{mode}"
        );
        assert_eq!(json["plugins"].as_array().unwrap().len(), 1, "{mode}: {json}");
        assert_eq!(json["plugins"][0]["isolation"], mode);
        let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
        assert_eq!(env.status, 200, "{mode}: {}", env.body);
    }
}

#[test]
fn a_plugin_over_its_memory_limit_crashes_like_any_other() {
    let s = server()
        .config("token_cache_ms = 0\n[isolation.plugins.abi-fixture-crashing]\nmemory_limit_mb = 64\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"alloc\"\n"))
        .start();
    let reply = s.get(CRASHING_TOKENS, Some(ADMIN));
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(s.log().contains("plugin worker died (SIGABRT)"), "{}", s.log());
    assert_eq!(s.get("/healthz", None).status, 200);
}

#[test]
fn a_call_that_hangs_forever_answers_200_callers_with_504_and_holds_no_host_thread() {
    let s = server()
        .config("token_cache_ms = 0\nplugin_call_timeout_ms = 500\n[isolation]\nstuck_grace_secs = 4\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"hang\"\n"))
        .start();
    let first = worker_pid(&s, "abi-fixture-crashing");
    let started = Instant::now();
    let replies = s.concurrently(200, 1, |s| s.get(CRASHING_TOKENS, Some(ADMIN)));
    assert_eq!(replies.len(), 200);
    for reply in &replies {
        assert_eq!(reply.status, 504, "{}", reply.body);
        assert_eq!(reply.error(), "token provider timed out");
    }
    // Each within its 500 ms deadline, all before the stuck worker is killed (4 s after the
    // first deadline): the room is for a loaded machine starting 200 client threads.
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // The calls wait in the worker, not on host threads.
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let threads: usize = status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap();
    assert!(threads < 32, "host threads: {threads}");
    // The stuck worker is killed and replaced, and the host still answers at once.
    wait_restarted(&s, "abi-fixture-crashing", first);
    assert!(gone(first));
    assert!(s.log().contains("stuck past its deadline"), "{}", s.log());
    assert_eq!(s.get("/readyz", None).status, 200);
}

#[test]
fn a_crash_loop_is_quarantined_until_a_reload_lifts_it() {
    let s = server()
        .config("token_cache_ms = 0\n[isolation]\ncrash_limit = 3\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"segv\"\n"))
        .start();
    let mut statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while statuses.last() != Some(&503) {
        assert!(Instant::now() < deadline, "never quarantined: {statuses:?}\n{}", s.log());
        let reply = s.get(CRASHING_TOKENS, Some(ADMIN));
        if reply.status == 503 {
            assert_eq!(reply.error(), "token provider quarantined");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses.iter().filter(|&&st| st == 502).count(), 3, "{statuses:?}");
    assert_eq!(status_of(&s, "abi-fixture-crashing"), "quarantined: crashed 3 times in 60 s (SIGSEGV)");
    // Quarantined calls fail at once.
    let started = Instant::now();
    assert_eq!(s.get(CRASHING_TOKENS, Some(ADMIN)).status, 503);
    assert!(started.elapsed() < Duration::from_millis(500));

    // The operator's other view, a separate process, sees it too.
    let (status, stdout, stderr) = plugins_list(&s);
    assert!(status.success(), "{stderr}");
    let line = stdout.lines().find(|l| l.contains(CRASHING)).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.ends_with("; quarantined by the running host: crashed 3 times in 60 s (SIGSEGV)"), "{line}");

    let reload = s.post("/admin/plugins/reload", Some(ADMIN), None);
    assert_eq!(reload.status, 200, "{}", reload.body);
    s.wait_plugins("restarted after the reload", |json| {
        json["plugins"][0]["status"].as_str().is_some_and(|st| st.starts_with("running"))
    });
    let (_, stdout, _) = plugins_list(&s);
    assert!(!stdout.contains("quarantined"), "{stdout}");
    assert_eq!(s.get(CRASHING_TOKENS, Some(ADMIN)).status, 502, "it runs (and crashes) again");
}

#[test]
fn calls_in_flight_fail_within_a_second_of_the_crash() {
    let s = server()
        .config("token_cache_ms = 0\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"slow\"\nslow_ms = 5000\nmutate_env = \"segv\"\n"))
        .start();
    std::thread::scope(|scope| {
        let slow: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let reply = s.get(CRASHING_TOKENS, Some(ADMIN));
                    (reply, Instant::now())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let crash = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
        let crashed_at = Instant::now();
        assert_eq!(crash.status, 502, "{}", crash.body);
        for handle in slow {
            let (reply, at) = handle.join().unwrap();
            assert_eq!(reply.status, 502, "{}", reply.body);
            assert!(at.saturating_duration_since(crashed_at) < Duration::from_secs(1));
        }
    });
}

#[test]
fn panics_and_events_of_a_worker_reach_the_host_log_tagged_with_the_plugin() {
    let s = server()
        .config("token_cache_ms = 0\n")
        .plugin("10-panicking.so", &fixtures().panicking, Some("panic_in = \"token\"\n"))
        .start();
    let reply = s.get("/admin/tokens/panicking", Some(ADMIN));
    assert_eq!(reply.status, 500, "{}", reply.body);
    let log = s.log();
    let event = log.lines().find(|l| l.contains("panicking fixture initialising")).expect("init event in the log");
    assert!(event.contains(r#"plugin="panicking""#), "{event}");
    let panic = log.lines().find(|l| l.contains("boom in token")).unwrap_or_else(|| panic!("{log}"));
    assert!(panic.contains(r#"plugin="panicking""#), "{panic}");
    assert_eq!(status_of(&s, "panicking").split(' ').next(), Some("running"), "a panic is no crash");
}

#[test]
fn killing_the_host_with_sigkill_leaves_no_worker_behind() {
    let mut s = server()
        .plugin(CRASHING, &fixtures().crashing, None)
        .plugin("20-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .start();
    let workers = [worker_pid(&s, "abi-fixture-crashing"), worker_pid(&s, "static-env")];
    s.signal(libc::SIGKILL);
    s.wait_exit(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !workers.iter().all(|&pid| gone(pid)) {
        assert!(Instant::now() < deadline, "workers outlived the host: {workers:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_call_does_not_hold_up_the_calls_behind_it_in_the_same_worker() {
    let s = server()
        .config("token_cache_ms = 0\n")
        .plugin(CRASHING, &fixtures().crashing, Some("token = \"slow\"\nslow_ms = 3000\n"))
        .start();
    std::thread::scope(|scope| {
        let slow: Vec<_> = (0..3).map(|_| scope.spawn(|| s.get(CRASHING_TOKENS, Some(ADMIN)))).collect();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
        assert_eq!(env.status, 200, "{}", env.body);
        assert!(started.elapsed() < Duration::from_millis(1500), "the env call waited {:?}", started.elapsed());
        for handle in slow {
            assert_eq!(handle.join().unwrap().status, 200);
        }
    });
}

#[test]
fn an_unresolved_symbol_is_refused_at_load_with_one_line_in_both_modes() {
    for mode in ["process", "in-process"] {
        let s = server()
            .config(&format!("token_cache_ms = 0\n[isolation]\nmode = \"{mode}\"\n"))
            .plugin("10-unresolved.so", &fixtures().unresolved_symbol, None)
            .plugin("20-static-env.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
            .start();
        let json = s.get("/admin/plugins", Some(ADMIN)).json();
        let rejected = json["rejected"].as_array().unwrap();
        let error = rejected
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with("10-unresolved.so"))
            .unwrap_or_else(|| panic!("{mode}: not refused at load: {json}"))["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.starts_with("not a loadable shared library: "), "{mode}: {error}");
        assert!(error.ends_with("undefined symbol: plughost_fixture_symbol_no_library_defines"), "{mode}: {error}");
        assert!(!error.contains('\n'), "{mode}: one line: {error:?}");
        assert_eq!(json["plugins"].as_array().unwrap().len(), 1, "{mode}: {json}");
        // Nothing left to crash: the host answers, and goes on answering.
        let token = s.get("/admin/github-installation-token", Some(ADMIN));
        assert_eq!((token.status, token.error()), (404, "no token provider registered".to_owned()), "{mode}");
        assert_eq!(s.get("/healthz", None).status, 200, "{mode}");
    }
}
