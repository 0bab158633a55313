//! The registry over real plugins: token providers found by name (never by load order), the env chain
//! in order with the first failure naming its plugin, deadlines that answer the caller while a
//! stalled plugin keeps its thread, and reloads that add, remove, replace and keep plugins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plughost::registry::{CallError, EnvError, Pick, Registry, TokenError};
use secrecy::ExposeSecret as _;

use crate::support::{Load as _, PluginDir, fixtures, refusal};

async fn registry(dir: &PluginDir, timeout: Duration) -> Arc<Registry> {
    Registry::load(dir.config(), timeout).await.expect("plugin directory usable")
}

#[tokio::test]
async fn token_comes_from_the_provider_named() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.add(&fixtures().panicking, "20-provider.so");
    let registry = registry(&dir, Duration::from_secs(5)).await;
    let served = registry.token(Pick::Named("panicking")).await.unwrap();
    assert_eq!(served.plugin, "panicking");
    assert_eq!(served.token.expose_secret(), "fixture-token");
    assert!(served.expires_at > std::time::SystemTime::now());
}

#[tokio::test]
async fn no_plugin_and_no_provider_are_told_apart() {
    let empty = PluginDir::new();
    let registry = registry(&empty, Duration::from_secs(5)).await;
    assert!(matches!(registry.token(Pick::Named("panicking")).await, Err(TokenError::NoPluginLoaded)));

    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    let registry = self::registry(&dir, Duration::from_secs(5)).await;
    assert!(matches!(registry.token(Pick::Named("panicking")).await, Err(TokenError::NoTokenProvider)));
}

#[tokio::test]
async fn provider_failure_names_the_plugin_and_never_a_token() {
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "provider.so");
    dir.configure("provider.so", "panic_in = \"token\"\n");
    let registry = registry(&dir, Duration::from_secs(5)).await;
    let err = registry.token(Pick::Named("panicking")).await.unwrap_err();
    assert_eq!(err.to_string(), "token provider panicking failed: token panicked: boom in token");
}

#[tokio::test]
async fn slow_provider_times_out_without_blocking_other_calls() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.add(&fixtures().panicking, "20-slow.so");
    dir.configure("20-slow.so", "sleep_in = \"token\"\nsleep_ms = 3000\n");
    let registry = registry(&dir, Duration::from_millis(300)).await;

    let started = Instant::now();
    let slow = tokio::spawn({
        let registry = Arc::clone(&registry);
        async move { registry.token(Pick::Named("panicking")).await }
    });
    // While the provider is stalled, the env chain (another plugin's call) still answers.
    let env = registry.mutate_env("ws-1", BTreeMap::new()).await;
    assert!(env.is_ok(), "{env:?}");
    let err = slow.await.unwrap().unwrap_err();
    assert!(
        matches!(err, TokenError::Call { ref plugin, err: CallError::Timeout(_) } if plugin == "panicking"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn env_chain_runs_in_order_and_stops_at_the_first_failure() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.configure("10-static.so", "[vars]\nGREETING = \"hello\"\n");
    dir.add(&fixtures().append_env, "20-append.so");
    dir.configure("20-append.so", "suffix = \", world\"\n");
    let registry = registry(&dir, Duration::from_secs(5)).await;
    let env = registry.mutate_env("ws-1", BTreeMap::from([("HOME".into(), "/home/a".into())])).await.unwrap();
    assert_eq!(env["GREETING"], "hello, world");
    assert_eq!(env["HOME"], "/home/a");

    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    dir.configure("10-static.so", "[vars]\nGREETING = \"hello\"\n");
    dir.add(&fixtures().panicking, "20-panics.so");
    dir.configure("20-panics.so", "panic_in = \"env\"\n");
    dir.add(&fixtures().append_env, "30-append.so");
    dir.configure("30-append.so", "suffix = \"!\"\n");
    let registry = self::registry(&dir, Duration::from_secs(5)).await;
    let err = registry.mutate_env("ws-1", BTreeMap::new()).await.unwrap_err();
    assert!(
        matches!(&err, EnvError { plugin, err: CallError::Panicked(message) } if plugin == "panicking" && message == "mutate_env panicked: boom in mutate_env"),
        "{err}"
    );
    assert_eq!(err.plugin, "panicking");
}

#[tokio::test]
async fn reload_adds_removes_replaces_and_keeps_a_running_version_when_the_new_one_is_broken() {
    let dir = PluginDir::new();
    dir.add(&fixtures().static_env, "10-static.so");
    let registry = registry(&dir, Duration::from_secs(5)).await;
    let first = registry.snapshot();
    assert_eq!(first.plugins.len(), 1);

    // Added.
    dir.add(&fixtures().panicking, "20-provider.so");
    let set = registry.reload().await.unwrap();
    assert_eq!(set.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["static-env", "panicking"]);
    // Unchanged files keep their running instance.
    assert!(Arc::ptr_eq(&set.plugins[0], &first.plugins[0]));
    assert!(registry.token(Pick::Named("panicking")).await.is_ok());

    // Replaced by a broken file: the running version stays, the refusal is reported.
    std::fs::write(dir.plugin_dir().join("20-provider.so"), "garbage").unwrap();
    let set = registry.reload().await.unwrap();
    assert_eq!(set.plugins.len(), 2);
    assert_eq!(set.rejected.len(), 1);
    assert_eq!(set.rejected[0].error, "no ELF header (not a shared library)");
    assert!(registry.token(Pick::Named("panicking")).await.is_ok());

    // Removed.
    std::fs::remove_file(dir.plugin_dir().join("20-provider.so")).unwrap();
    let set = registry.reload().await.unwrap();
    assert_eq!(set.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["static-env"]);
    assert!(matches!(registry.token(Pick::Named("panicking")).await, Err(TokenError::NoTokenProvider)));

    // Changed configuration re-initialises the same file.
    dir.configure("10-static.so", "[vars]\nTZ = \"UTC\"\n");
    let set = registry.reload().await.unwrap();
    assert!(!Arc::ptr_eq(&set.plugins[0], &first.plugins[0]));
    let env = registry.mutate_env("ws", BTreeMap::new()).await.unwrap();
    assert_eq!(env["TZ"], "UTC");
}

#[test]
fn init_that_hangs_is_refused_after_the_init_timeout() {
    let dir = PluginDir::new();
    dir.add(&fixtures().panicking, "10-hangs.so");
    // Far longer than the deadline, so the assertion holds however loaded the machine is.
    dir.configure("10-hangs.so", "sleep_in = \"init\"\nsleep_ms = 30000\n");
    dir.add(&fixtures().static_env, "20-static.so");
    let mut config = dir.config();
    config.init_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let report = plughost::loader::scan(&config, &[]).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(refusal(&report, "10-hangs.so"), "init did not finish within 300ms");
    assert_eq!(crate::support::names(&report), ["static-env"]);
}

/// SDK 1.1 through the registry, in both isolation modes: the handshake carries the audiences
/// and the scoped capability, a scoped call reaches the provider with the scope, a refusal is
/// `CallError::Refused` naming what was refused, a revocation reaches the provider, and a
/// provider without the capability is never asked for a scoped token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_tokens_and_revocations_cross_the_boundary_in_both_modes() {
    use plughost::isolation::Mode;
    use plughost::isolation::protocol::WireScope;
    use secrecy::SecretString;

    for mode in [Mode::Process, Mode::InProcess] {
        let dir = PluginDir::new();
        let revoked = dir.root().join("revoked.log");
        dir.add(&fixtures().scoped_provider, "10-scoped.so");
        dir.configure(
            "10-scoped.so",
            &format!(
                "github_hosts = [\"github.com\", \"ghe.example.com\"]\nrefuse_repositories = [\"o/secret\"]\nrevocation_log = {:?}\n",
                revoked.display().to_string()
            ),
        );
        dir.add(&fixtures().static_env, "20-static.so");
        let mut config = dir.config();
        config.isolation.default_mode = mode;
        let registry = Registry::load(config, Duration::from_secs(5)).await.unwrap();
        let set = registry.snapshot();
        let plugin = &set.plugins[0];
        assert!(plugin.provides.scoped_token_provider, "{mode}");
        let hosts: Vec<&str> = plugin.audiences.iter().map(|a| a.host.as_str()).collect();
        assert_eq!(hosts, ["github.com", "ghe.example.com"], "{mode}");
        assert_eq!(registry.provider(Pick::GitHub { host: Some("ghe.example.com") }).unwrap().name, "scoped-provider");

        let scope = WireScope {
            workspace_id: "ws".into(),
            host: "github.com".into(),
            repositories: vec!["o/r1".into()],
            repository_ids: vec![5],
            permissions: BTreeMap::from([("contents".to_owned(), "read".to_owned())]),
        };
        let served = registry.scoped_token(plugin, scope.clone()).await.unwrap();
        let secret = served.token.expose_secret().to_owned();
        assert!(secret.ends_with(".ws.github.com.o/r1.5.contents=read"), "{mode}: {secret}");

        let refused = WireScope { repositories: vec!["o/secret".into()], ..scope };
        let err = registry.scoped_token(plugin, refused).await.unwrap_err();
        assert!(
            matches!(&err, TokenError::Call { err: CallError::Refused(why), .. } if why.contains("o/secret")),
            "{mode}: {err}"
        );

        registry.revoke("scoped-provider", &SecretString::from(secret.clone())).await.unwrap();
        assert_eq!(std::fs::read_to_string(&revoked).unwrap(), format!("{secret}\n"), "{mode}");

        // static-env declares no token provider: never asked for a scoped token.
        let err = registry.scoped_token(&set.plugins[1], WireScope::default()).await.unwrap_err();
        assert!(matches!(err, TokenError::NotScoped { .. }), "{mode}: {err}");
    }
}
