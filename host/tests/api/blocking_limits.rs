// The host's own blocking work is bounded: calls into a hung in-process plugin pin at most their
// per-plugin share of threads, however often the plugin is reloaded, and never tokio's whole
// blocking pool; store work (issue, revoke, `/readyz`'s check) has a deadline (503 past it) and
// a bounded share of threads. So `/readyz`, reloads and the workspace-token routes keep answering.

use std::time::{Duration, Instant};

use crate::harness::{ADMIN, Server, fixtures, server};

/// Requests with a short deadline of their own: a route that hangs fails the test instead of
/// holding it for the kit's 30 s.
fn quick(s: &Server, method: &str, path: &str) -> Result<(u16, String), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let url = s.url(path);
    let auth = format!("Bearer {ADMIN}");
    let result = match method {
        "GET" => agent.get(&url).header("Authorization", &auth).call(),
        "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
        "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
        other => panic!("{other}"),
    };
    let mut response = result.map_err(|err| format!("{method} {path}: {err}"))?;
    Ok((response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default()))
}

#[test]
fn reloading_a_hung_in_process_plugin_grants_it_no_more_threads() {
    let config = "token_cache_ms = 0\nplugin_call_timeout_ms = 300\n[isolation]\nmode = \"in-process\"\n";
    let s = server().config(config).plugin("10-hung.so", &fixtures().crashing, Some("token = \"hang\"\n")).start();
    // Each round: a new configuration (a new instance of the same plugin), then more hung calls
    // than the per-plugin limit. Nine rounds of 64 would pin more threads than tokio's pool has.
    for round in 0..9 {
        s.dir().configure("10-hung.so", &format!("token = \"hang\"\nslow_ms = {}\n", 1000 + round));
        let (status, body) =
            quick(&s, "POST", "/admin/plugins/reload").unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(status, 200, "round {round}: {body}");
        let replies = s.concurrently(70, 1, |s| s.get("/admin/tokens/abi-fixture-crashing", Some(ADMIN)));
        assert!(replies.iter().all(|r| r.status == 504), "round {round}");
        let started = Instant::now();
        let (status, body) = quick(&s, "GET", "/readyz").unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(status, 200, "round {round}: {body}");
        let (status, body) =
            quick(&s, "POST", "/admin/workspaces/ws-1/tokens").unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(status, 201, "round {round}: {body}");
        let (status, _) =
            quick(&s, "DELETE", "/admin/workspaces/ws-1/tokens").unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(status == 200 || status == 204, "round {round}: {status}");
        assert!(started.elapsed() < Duration::from_secs(3), "round {round}: {:?}", started.elapsed());
    }
    // At most the per-plugin share of threads is pinned by the hung plugin.
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let threads: usize = status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap();
    assert!(threads < 64 + 64, "host threads: {threads}");
}

#[test]
fn store_work_past_its_deadline_answers_503_and_readyz_keeps_answering() {
    let s = server().config("store_timeout_ms = 1000\n").start();
    // Another process holds SQLite's write lock (a long transaction, a stuck backup).
    let db = rusqlite::Connection::open(s.state_dir().join("plughost.sqlite3")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let replies = s.concurrently(12, 1, |s| s.post("/admin/workspaces/ws-1/tokens", Some(ADMIN), None));
    for reply in &replies {
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(reply.error(), "workspace token store did not answer within 1s");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let started = Instant::now();
    let (status, body) = quick(&s, "GET", "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    db.execute_batch("ROLLBACK").unwrap();
    // Once the lock is gone, issuing works again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = s.post("/admin/workspaces/ws-1/tokens", Some(ADMIN), None);
        if reply.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", reply.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}
