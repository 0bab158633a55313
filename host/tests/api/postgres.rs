// The workspace token store on a real PostgreSQL server (`PLUGHOST_STORE_URL`): replicas of the
// real `plughost serve` sharing one throwaway cluster (testkit `PgCluster`: Debian's
// `postgresql`, initdb + pg_ctl on a unix socket in a temporary directory).
//
// Every URL carries a password (the cluster trusts local connections, so it is accepted and
// ignored): no log line, error body or CLI message may show it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plughost_testkit::PgCluster;

use serde_json::json;

use crate::harness::{ADMIN, PluginDir, Server, fixtures, plughost_command, server};

const PASSWORD: &str = "pg-pass-7f3a9c-never-shown";
const TOKEN_ROUTE: &str = "/workspaces/ws-pg/github-installation-token";

/// The cluster's URL for `db`, with [`PASSWORD`] in it.
fn url_with_password(cluster: &PgCluster, db: &str) -> String {
    let url = cluster.url(db);
    assert_eq!(url.matches("@/").count(), 1, "{url}");
    url.replacen("@/", &format!(":{PASSWORD}@/"), 1)
}

fn replica(url: &str) -> Server {
    server().token_provider("token = \"ghs_pg\"\n").env("PLUGHOST_STORE_URL", url).start()
}

fn assert_no_password(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "{what} shows the store URL's password:\n{text}");
}

#[test]
fn a_token_issued_on_one_replica_works_on_another_and_a_revocation_on_a_third_is_refused_on_all() {
    let cluster = PgCluster::start();
    cluster.create_database("replicas");
    let url = url_with_password(&cluster, "replicas");
    let (a, b, c) = (replica(&url), replica(&url), replica(&url));

    let token = a.issue("ws-pg");
    assert_eq!(b.get(TOKEN_ROUTE, Some(&token)).json()["token"], "ghs_pg");
    assert_eq!(c.get(TOKEN_ROUTE, Some(&token)).status, 200);
    assert_eq!(b.get("/workspaces/ws-other/github-installation-token", Some(&token)).status, 401);
    let fetch = |s: &Server| s.get(TOKEN_ROUTE, Some(&token));
    assert!(a.concurrently(4, 20, fetch).iter().chain(&b.concurrently(4, 20, fetch)).all(|r| r.status == 200));

    let reply = c.delete("/admin/workspaces/ws-pg/tokens", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 0}), "{}", reply.body);
    // The very next request on every replica is refused: nothing is cached.
    for s in [&a, &b, &c] {
        assert_eq!(s.get(TOKEN_ROUTE, Some(&token)).status, 401, "{}", s.base());
    }
    let statuses: Vec<u16> =
        a.concurrently(4, 20, fetch).iter().chain(&b.concurrently(4, 20, fetch)).map(|r| r.status).collect();
    assert!(statuses.iter().all(|&status| status == 401), "{statuses:?}");
    assert_eq!(a.get(TOKEN_ROUTE, Some(ADMIN)).status, 200, "the admin token still works");

    // Every replica's last-use write lands in the one table; one row, no SQLite file anywhere.
    assert_eq!(cluster.psql("replicas", "SELECT count(*) FROM workspace_tokens"), "0");
    for s in [&a, &b, &c] {
        assert!(!s.state_dir().join("plughost.sqlite3").exists());
        assert_eq!(s.get("/readyz", None).json()["state_store_open"], true);
        let log = s.log();
        assert_no_password("the log", &log);
        let opened = log.lines().find(|line| line.contains("workspace token store open")).unwrap_or_default();
        assert!(opened.contains("postgres://") && opened.contains("/replicas"), "{log}");
    }
}

#[test]
fn with_the_database_down_store_routes_answer_503_others_keep_answering_and_it_recovers_without_restart() {
    let cluster = PgCluster::start();
    cluster.create_database("outage");
    let url = url_with_password(&cluster, "outage");
    let (a, b) = (replica(&url), replica(&url));
    let token = a.issue("ws-pg");
    let (pid_a, pid_b) = (a.pid(), b.pid());

    // Load on both replicas through the whole outage: every answer is 200 or 503, never another
    // status or a dropped connection.
    let stop = AtomicBool::new(false);
    let (ok, unavailable) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        // Stops the load however this closure ends: a failed assertion below must fail the
        // test, not leave the scope waiting for the load threads forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_load = StopOnDrop(&stop);
        for s in [&a, &b] {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let reply = s.try_request("GET", TOKEN_ROUTE, Some(&format!("Bearer {token}")), None);
                        let reply = reply.unwrap_or_else(|err| panic!("transport error under load: {err}"));
                        match reply.status {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            503 => unavailable.fetch_add(1, Ordering::Relaxed),
                            other => panic!("status {other} under load: {}", reply.body),
                        };
                    }
                });
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        cluster.stop_server().unwrap();

        for s in [&a, &b] {
            let reply = s.get(TOKEN_ROUTE, Some(&token));
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert_eq!(reply.error(), "workspace token store unavailable");
            let issued = s.post("/admin/workspaces/ws-new/tokens", Some(ADMIN), None);
            assert_eq!(issued.status, 503, "{}", issued.body);
            assert_eq!(s.delete("/admin/workspaces/ws-pg/tokens", Some(ADMIN)).status, 503);
            let ready = s.get("/readyz", None);
            assert_eq!(ready.status, 503);
            assert_eq!(ready.json()["state_store_open"], false);
            // No store needed: these keep answering.
            assert_eq!(s.get("/healthz", None).status, 200);
            assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).json()["token"], "ghs_pg");
            // The admin token on a workspace's route gets that workspace's scope, which is in the
            // store: without it the answer is 503, never a token wider than the scope.
            assert_eq!(s.get(TOKEN_ROUTE, Some(ADMIN)).status, 503, "no scope, no token");
            assert_eq!(s.post("/admin/workspaces/ws-pg/env", Some(ADMIN), Some(r#"{"env":{}}"#)).status, 200);
            assert_eq!(s.get("/metrics", None).status, 200);
        }
        std::thread::sleep(Duration::from_millis(300));
        cluster.start_server().unwrap();

        // Recovery: the same processes answer 200 again, with the token issued before.
        let deadline = Instant::now() + Duration::from_secs(15);
        for s in [&a, &b] {
            while s.get(TOKEN_ROUTE, Some(&token)).status != 200 {
                assert!(Instant::now() < deadline, "{} did not recover:\n{}", s.base(), s.log());
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(s.get("/readyz", None).status, 200);
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    assert!(ok.load(Ordering::Relaxed) > 0 && unavailable.load(Ordering::Relaxed) > 0);
    assert_eq!((a.pid(), b.pid()), (pid_a, pid_b), "no restart");
    let new = b.post("/admin/workspaces/ws-new/tokens", Some(ADMIN), None);
    assert_eq!(new.status, 201);
    for s in [&a, &b] {
        assert_no_password("the log", &s.log());
        for (_, _, body) in s.bodies() {
            assert_no_password("a reply", &body);
        }
    }
}

#[test]
fn replicas_starting_together_on_an_empty_database_migrate_it_once() {
    let cluster = PgCluster::start();
    cluster.create_database("fresh");
    let url = url_with_password(&cluster, "fresh");
    let replicas: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..3).map(|_| scope.spawn(|| replica(&url))).collect();
        starts.into_iter().map(|start| start.join().expect("a replica came up")).collect()
    });
    assert_eq!(cluster.psql("fresh", "SELECT count(*), max(version) FROM plughost_schema_version"), "2|2");
    let columns = cluster.psql(
        "fresh",
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_name = 'workspace_tokens'",
    );
    assert_eq!(columns, "id,workspace_id,token_sha256,scope,created_at,last_used_at");
    let token = replicas[0].issue("ws-pg");
    for s in &replicas {
        assert_eq!(s.get(TOKEN_ROUTE, Some(&token)).status, 200);
    }
    let migrated = replicas.iter().filter(|s| s.log().contains("token database migrated")).count();
    assert_eq!(migrated, 1, "exactly one replica applied the migration");

    // A database from a newer plughost is refused, naming it without the password.
    cluster.psql("fresh", "INSERT INTO plughost_schema_version (version) VALUES (99)");
    let output = plughost_command()
        .args(["workspace-token", "issue", "ws-pg"])
        .env("PLUGHOST_STORE_URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("schema version 99, newer than this plughost knows (2)"), "{stderr}");
    assert_no_password("the CLI", &stderr);
}

#[test]
fn the_cli_issues_and_revokes_on_postgres_from_the_environment_or_the_config_file() {
    let cluster = PgCluster::start();
    cluster.create_database("cli");
    let url = url_with_password(&cluster, "cli");
    let s = replica(&url);
    let cli = |args: &[&str], env_url: Option<&str>| {
        let mut command = plughost_command();
        command.args(args);
        if let Some(url) = env_url {
            command.env("PLUGHOST_STORE_URL", url);
        }
        let output = command.output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert_no_password("the CLI", &format!("{stdout}{stderr}"));
        (output.status, stdout, stderr)
    };

    let (status, stdout, stderr) = cli(&["workspace-token", "issue", "ws-pg"], Some(&url));
    assert!(status.success(), "{stderr}");
    let token = stdout.trim().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(s.get(TOKEN_ROUTE, Some(&token)).status, 200);

    // store_url in the config file, as serve reads it.
    let config = s.dir().write_private("cli.toml", &format!("store_url = \"{url}\"\n"));
    let config = config.display().to_string();
    let (status, _, stderr) = cli(&["--config", &config, "workspace-token", "revoke", "ws-pg"], None);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("revoked 1 token(s) of workspace ws-pg"), "{stderr}");
    assert_eq!(s.get(TOKEN_ROUTE, Some(&token)).status, 401);

    // An unreachable database: a clear failure naming it, without the password.
    let down = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/cli");
    let (status, _, stderr) = cli(&["workspace-token", "issue", "ws-pg"], Some(&down));
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("cannot connect to postgres://postgres@127.0.0.1:1/cli"), "{stderr}");
    // Not a PostgreSQL URL: refused by the settings, naming the variable, not quoting it.
    let (status, _, stderr) = cli(&["workspace-token", "issue", "ws-pg"], Some(&format!("mysql://u:{PASSWORD}@h/db")));
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("PLUGHOST_STORE_URL: not a postgres:// or postgresql:// URL"), "{stderr}");
}

#[test]
fn serve_started_while_the_database_is_down_answers_503_then_migrates_and_serves_when_it_returns() {
    let cluster = PgCluster::start();
    cluster.create_database("late");
    let url = url_with_password(&cluster, "late");
    cluster.stop_server().unwrap();

    let s = server().token_provider("token = \"ghs_pg\"\n").env("PLUGHOST_STORE_URL", &url).no_wait_ready().start();
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.get("/readyz", None).json()["plugins_scanned"] != true {
        assert!(Instant::now() < deadline, "plugins not scanned:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = s.get("/readyz", None);
    assert_eq!((ready.status, ready.json()["state_store_open"].clone()), (503, false.into()));
    assert_eq!(s.get("/healthz", None).status, 200);
    assert_eq!(s.get("/admin/github-installation-token", Some(ADMIN)).status, 200);
    let issued = s.post("/admin/workspaces/ws-pg/tokens", Some(ADMIN), None);
    assert_eq!((issued.status, issued.error()), (503, "workspace token store unavailable".to_owned()));
    assert!(s.log().contains("workspace token store unreachable at start"), "{}", s.log());

    cluster.start_server().unwrap();
    while s.get("/readyz", None).status != 200 {
        assert!(Instant::now() < deadline, "not ready after the database came up:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = s.issue("ws-pg");
    assert_eq!(s.get(TOKEN_ROUTE, Some(&token)).status, 200);
    assert_eq!(cluster.psql("late", "SELECT max(version) FROM plughost_schema_version"), "2");
    assert_no_password("the log", &s.log());
}

#[test]
fn serve_refuses_a_url_it_cannot_parse_without_quoting_it() {
    let bad = format!("postgres://plughost:{PASSWORD}@db.internal:notaport/tokens");
    let err = server().env("PLUGHOST_STORE_URL", &bad).no_wait_ready().try_start().err().expect("refused");
    let shown = err.to_string();
    assert_no_password("the start error", &shown);
    assert!(shown.contains("store_url is not a PostgreSQL URL the driver accepts"), "{shown}");
}

/// A replica serving the `scoped-provider` fixture, which appends each mint and revocation to
/// `logs` (one pair of files for every replica). `host_config`: the host's config file.
fn scoped_replica(url: &str, logs: &std::path::Path, host_config: &str) -> Server {
    let dir = PluginDir::new();
    dir.add(&fixtures().scoped_provider, "20-github.so");
    dir.configure(
        "20-github.so",
        &format!(
            "mint_log = {:?}\nrevocation_log = {:?}\n",
            logs.join("mints.log").display().to_string(),
            logs.join("revoked.log").display().to_string()
        ),
    );
    server().dir(dir).config(host_config).env("PLUGHOST_STORE_URL", url).start()
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn issue_scoped(s: &Server, workspace: &str) -> String {
    let body = json!({"scope": {"repositories": ["o/r1"], "permissions": {"contents": "read"}}}).to_string();
    let reply = s.post(&format!("/admin/workspaces/{workspace}/tokens"), Some(ADMIN), Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

fn github_token(s: &Server, workspace: &str, bearer: &str) -> String {
    let reply = s.get(&format!("/workspaces/{workspace}/github-installation-token"), Some(bearer));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_delete_on_any_replica_revokes_the_github_tokens_another_replica_minted_and_no_others() {
    let cluster = PgCluster::start();
    cluster.create_database("minted");
    let url = url_with_password(&cluster, "minted");
    let logs = tempfile::tempdir().unwrap();
    let (mints, revoked) = (logs.path().join("mints.log"), logs.path().join("revoked.log"));
    let (a, b, c) = (
        scoped_replica(&url, logs.path(), ""),
        scoped_replica(&url, logs.path(), ""),
        scoped_replica(&url, logs.path(), ""),
    );

    let ws_a = issue_scoped(&a, "ws-a");
    let minted_a = github_token(&a, "ws-a", &ws_a);
    let ws_b = issue_scoped(&b, "ws-b");
    let minted_b = github_token(&b, "ws-b", &ws_b);
    assert_eq!(log_lines(&mints), [minted_a.clone(), minted_b.clone()]);
    // In the store, sealed: no secret in clear in any column.
    assert_eq!(cluster.psql("minted", "SELECT count(*) FROM minted_tokens"), "2");
    let dump = cluster
        .psql("minted", "SELECT workspace_id, provider, scope_key, encode(secret_sealed, 'escape') FROM minted_tokens");
    assert!(!dump.contains(&minted_a) && !dump.contains(&minted_b), "{dump}");

    let reply = c.delete("/admin/workspaces/ws-a/tokens", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 1}));
    // Revoked before the DELETE returned, exactly that token.
    assert_eq!(log_lines(&revoked), [minted_a.as_str()]);
    assert_eq!(cluster.psql("minted", "SELECT workspace_id FROM minted_tokens"), "ws-b");

    // Again: nothing left to revoke.
    let reply = b.delete("/admin/workspaces/ws-a/tokens", Some(ADMIN));
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 0, "github_tokens_revoked": 0}));
    // Re-issued, ws-a gets a fresh token even from A, whose cache held the revoked one.
    let ws_a = issue_scoped(&c, "ws-a");
    let fresh = github_token(&a, "ws-a", &ws_a);
    assert_ne!(fresh, minted_a);
    // ws-b's token, minted on B, was never revoked, and B still serves it.
    assert_eq!(github_token(&b, "ws-b", &ws_b), minted_b);
    assert_eq!(log_lines(&revoked), [minted_a.as_str()]);

    let reply = a.delete("/admin/workspaces/ws-b/tokens", Some(ADMIN));
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 1}));
    assert_eq!(log_lines(&revoked), [minted_a, minted_b]);
    for s in [&a, &b, &c] {
        let log = s.log();
        assert!(!log.contains(&fresh), "a minted token in the log:\n{log}");
        assert_no_password("the log", &log);
    }
}

#[test]
fn a_shared_token_is_revoked_only_when_its_last_holder_on_any_replica_goes() {
    let cluster = PgCluster::start();
    cluster.create_database("shared");
    let url = url_with_password(&cluster, "shared");
    let logs = tempfile::tempdir().unwrap();
    let revoked = logs.path().join("revoked.log");
    let shared = "share_scoped_tokens = true\n";
    let (a, b, c) = (
        scoped_replica(&url, logs.path(), shared),
        scoped_replica(&url, logs.path(), shared),
        scoped_replica(&url, logs.path(), shared),
    );
    let ws_x = issue_scoped(&a, "ws-x");
    let ws_y = issue_scoped(&a, "ws-y");
    let token = github_token(&a, "ws-x", &ws_x);
    // A serves its cached token to ws-y too: ws-y holds it (a record of its own).
    assert_eq!(github_token(&a, "ws-y", &ws_y), token);
    // B mints its own (its cache is its own) for ws-y.
    let token_b = github_token(&b, "ws-y", &ws_y);

    let reply = c.delete("/admin/workspaces/ws-x/tokens", Some(ADMIN));
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 0}));
    assert!(log_lines(&revoked).is_empty());
    let reply = c.delete("/admin/workspaces/ws-y/tokens", Some(ADMIN));
    assert_eq!(reply.json(), json!({"workspace_tokens_revoked": 1, "github_tokens_revoked": 2}));
    let mut got = log_lines(&revoked);
    got.sort();
    let mut expected = vec![token, token_b];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(cluster.psql("shared", "SELECT count(*) FROM minted_tokens"), "0");
}

#[test]
fn a_mint_whose_record_cannot_be_written_is_revoked_at_once_and_never_handed_out() {
    let cluster = PgCluster::start();
    cluster.create_database("refused");
    let url = url_with_password(&cluster, "refused");
    let logs = tempfile::tempdir().unwrap();
    let s = scoped_replica(&url, logs.path(), "");
    let ws = issue_scoped(&s, "ws-r");
    // The database refuses minted-token records (and nothing else).
    cluster.psql(
        "refused",
        "CREATE FUNCTION refuse_records() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no records today'; END $$; \
         CREATE TRIGGER refuse_records BEFORE INSERT ON minted_tokens \
         FOR EACH ROW EXECUTE FUNCTION refuse_records();",
    );
    let reply = s.get("/workspaces/ws-r/github-installation-token", Some(&ws));
    assert_eq!(reply.status, 503, "{}", reply.body);
    let minted = log_lines(&logs.path().join("mints.log"));
    assert_eq!(minted.len(), 1);
    assert!(!reply.body.contains(&minted[0]), "{}", reply.body);
    assert_eq!(log_lines(&logs.path().join("revoked.log")), minted, "revoked before the 503");

    cluster.psql("refused", "DROP TRIGGER refuse_records ON minted_tokens");
    let token = github_token(&s, "ws-r", &ws);
    assert_ne!(token, minted[0]);
    assert!(!s.log().contains(&token) && !s.log().contains(&minted[0]));
}
