//! Each crashing fixture through the real loader, in both isolation modes where it applies, and
//! through `plughost plugins check|list`, which always load in a worker.
//!
//! - Load-time deaths (a static initialiser's segfault, `exit()` or a segfault in `init`, a hung
//!   `init`) are refused with one line in both modes: in process mode by the worker that was to
//!   serve the plugin, in-process by the probe that runs before the library is mapped here.
//! - Run-time deaths (a call that segfaults, aborts, exits, hangs or runs out of memory) apply
//!   to process mode only: in-process they would take this test process down, which is the
//!   trade-off the mode makes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use plughost::isolation::Mode;
use plughost::registry::{CallError, EnvError, Pick, Registry, TokenError};
use plughost_testkit::plughost_command;

use crate::support::{Load as _, PluginDir, fixtures, names, refusal};

/// The load-time deaths: (file name, fixture, configuration, refusal).
fn load_time_deaths() -> Vec<(&'static str, std::path::PathBuf, &'static str, &'static str)> {
    let f = fixtures();
    vec![
        (
            "crash-at-load.so",
            f.crash_at_load.clone(),
            "",
            "crashed with SIGSEGV while loading (static initialiser or library open)",
        ),
        (
            "exit-in-init.so",
            f.crashing.clone(),
            "init = \"exit\"\nexit_code = 3\n",
            "exited with status 3 while initialising (init)",
        ),
        ("segv-in-init.so", f.crashing.clone(), "init = \"segv\"\n", "crashed with SIGSEGV while initialising (init)"),
        (
            "abort-in-init.so",
            f.crashing.clone(),
            "init = \"abort\"\n",
            "crashed with SIGABRT while initialising (init)",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_time_deaths_are_one_line_refusals_in_both_modes() {
    for mode in [Mode::Process, Mode::InProcess] {
        for (file, fixture, toml, expected) in load_time_deaths() {
            let dir = PluginDir::new();
            dir.add(&fixture, file);
            dir.configure(file, toml);
            dir.add(&fixtures().static_env, "zz-static.so");
            let mut config = dir.config();
            config.isolation.default_mode = mode;
            let registry = Registry::load(config, Duration::from_secs(5)).await.unwrap();
            let set = registry.snapshot();
            let refused = set
                .rejected
                .iter()
                .find(|r| r.file.ends_with(file))
                .unwrap_or_else(|| panic!("{mode}: {file} was not refused; loaded {:?}", set.plugins));
            assert_eq!(refused.error, expected, "{mode}: {file}");
            assert_eq!(set.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["static-env"], "{mode}");
            assert_eq!(set.plugins[0].mode, mode);
            // The other plugin serves, in this very process.
            assert!(registry.mutate_env("ws", BTreeMap::new()).await.is_ok(), "{mode}");
        }
    }
}

#[test]
fn a_hung_init_is_refused_in_both_modes_within_the_init_timeout() {
    for mode in [Mode::Process, Mode::InProcess] {
        let dir = PluginDir::new();
        dir.add(&fixtures().crashing, "hangs.so");
        dir.configure("hangs.so", "init = \"hang\"\n");
        let mut config = dir.config();
        config.isolation.default_mode = mode;
        config.init_timeout = Duration::from_millis(800);
        let started = Instant::now();
        let report = plughost::loader::scan(&config, &[]).unwrap();
        assert_eq!(refusal(&report, "hangs.so"), "hung: did not finish initialising (init) within 800ms", "{mode}");
        assert!(started.elapsed() < Duration::from_secs(5), "{mode}: {:?}", started.elapsed());
    }
}

#[test]
fn in_process_a_file_is_probed_once_then_mapped() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    let report = dir.scan();
    assert_eq!(names(&report), ["static-env"]);
    let plugin = &report.plugins[0];
    assert_eq!(plugin.mode, Mode::InProcess);
    assert!(plugin.worker.is_none(), "mapped here, not served by a worker");
    assert!(plugin.env_mutator.is_some());
    assert_eq!(plugin.status(), "in-process");
}

/// Each run-time death, in process mode: the caller gets the cause, this process lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_time_deaths_in_process_mode_fail_the_call_with_their_cause() {
    let cases = [
        ("token = \"segv\"\n", "crashed (SIGSEGV)"),
        ("token = \"abort\"\n", "crashed (SIGABRT)"),
        ("token = \"exit\"\nexit_code = 7\n", "crashed (exit status 7)"),
    ];
    for (toml, expected) in cases {
        let dir = PluginDir::new();
        dir.add(&fixtures().crashing, "crashing.so");
        dir.configure("crashing.so", toml);
        let mut config = dir.config();
        config.isolation.default_mode = Mode::Process;
        let registry = Registry::load(config, Duration::from_secs(5)).await.unwrap();
        let err = registry.token(Pick::Named("abi-fixture-crashing")).await.unwrap_err();
        assert!(
            matches!(&err, TokenError::Call { plugin, err: CallError::Crashed(_) } if plugin == "abi-fixture-crashing"),
            "{toml}: {err}"
        );
        assert_eq!(err.to_string(), format!("token provider abi-fixture-crashing {expected}"));
        // The env mutator of the same plugin answers from the restarted worker.
        let env = registry.mutate_env("ws", BTreeMap::new()).await.unwrap();
        assert_eq!(env["CRASHING_FIXTURE"], "survived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_times_out_and_its_worker_is_replaced() {
    let dir = PluginDir::new();
    dir.add(&fixtures().crashing, "crashing.so");
    dir.configure("crashing.so", "mutate_env = \"hang\"\n");
    let mut config = dir.config();
    config.isolation.default_mode = Mode::Process;
    config.isolation.stuck_grace = Duration::from_millis(200);
    let registry = Registry::load(config, Duration::from_millis(300)).await.unwrap();
    let first = registry.snapshot().plugins[0].worker.as_ref().unwrap().pid().unwrap();
    let err = registry.mutate_env("ws", BTreeMap::new()).await.unwrap_err();
    assert!(matches!(err, EnvError { err: CallError::Timeout(_), .. }), "{err}");
    // Past the grace the stuck worker is killed; tokens come from its replacement.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = registry.snapshot().plugins[0].worker.as_ref().unwrap().pid();
        if now.is_some_and(|pid| pid != first) {
            break;
        }
        assert!(Instant::now() < deadline, "the stuck worker was never replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(registry.token(Pick::Named("abi-fixture-crashing")).await.is_ok());
}

#[test]
fn plugins_check_and_list_survive_every_crashing_file_and_name_it() {
    let dir = PluginDir::new();
    let mut files = Vec::new();
    for (file, fixture, toml, _) in load_time_deaths() {
        files.push(dir.add(&fixture, file));
        dir.configure(file, toml);
    }
    let good = dir.add(&fixtures().static_env, "zz-static.so");
    let out = plughost_command().args(["plugins", "check"]).args(&files).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut expected = String::new();
    for ((_, _, _, reason), file) in load_time_deaths().into_iter().zip(&files) {
        expected.push_str(&format!("FAIL  {}: {reason}\n", file.display()));
    }
    expected
        .push_str(&format!("ok    {}: static-env 1.0.0 (plughost-sdk 1.1.0), provides env_mutator\n", good.display()));
    assert_eq!(stdout, expected);

    let out = plughost_command().args(["plugins", "list", "--plugin-dir"]).arg(dir.plugin_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (file, _, _, reason) in load_time_deaths() {
        let line = stdout.lines().find(|l| l.contains(file)).unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.starts_with("refuse") && line.ends_with(reason), "{line}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("load") && l.contains("static-env")), "{stdout}");
}

/// A thousand calls at once into one worker: several frames arrive in one read and wait in the
/// worker's inbox while its threads are busy; every caller still gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_into_one_worker_each_get_their_own_answer() {
    let dir = PluginDir::new();
    dir.add(&fixtures().crashing, "crashing.so");
    let mut config = dir.config();
    config.isolation.default_mode = Mode::Process;
    let registry = Registry::load(config, Duration::from_secs(5)).await.unwrap();
    let calls: Vec<_> = (0..1000)
        .map(|caller| {
            let registry = std::sync::Arc::clone(&registry);
            tokio::spawn(async move {
                let env = BTreeMap::from([("CALLER".to_owned(), caller.to_string())]);
                (caller, registry.mutate_env(&format!("ws-{caller}"), env).await)
            })
        })
        .collect();
    for call in calls {
        let (caller, answer) = call.await.unwrap();
        let env = answer.unwrap_or_else(|err| panic!("caller {caller}: {err}"));
        assert_eq!(env["CALLER"], caller.to_string());
        assert_eq!(env["CRASHING_FIXTURE"], "survived");
    }
}
