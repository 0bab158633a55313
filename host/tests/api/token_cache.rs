// A provider's answer is reused for `token_cache_ms` (default 1 s) and no longer; 0 turns the
// reuse off; a reload or a failure is never hidden by it.

use std::time::Duration;

use crate::harness::{ADMIN, server};

fn token(s: &crate::harness::Server) -> String {
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn answers_are_reused_within_the_ttl_only() {
    let s = server().config("token_cache_ms = 400\n").token_provider("rotate = true\n").start();
    let first = token(&s);
    assert_eq!(token(&s), first, "within the TTL");
    std::thread::sleep(Duration::from_millis(500));
    let second = token(&s);
    assert_ne!(second, first, "after the TTL the provider is asked again");

    let s = server().config("token_cache_ms = 0\n").token_provider("rotate = true\n").start();
    assert_ne!(token(&s), token(&s), "token_cache_ms = 0 asks the provider every time");
}

#[test]
fn a_reload_ends_the_reuse() {
    let s = server().config("token_cache_ms = 60000\n").token_provider("token = \"ghs_before\"\n").start();
    assert_eq!(token(&s), "ghs_before");
    std::fs::write(s.plugin_dir().join("libtest_token_provider.toml"), "mode = \"error\"\n").unwrap();
    assert_eq!(s.post("/admin/plugins/reload", Some(ADMIN), None).status, 200);
    let reply = s.get("/admin/github-installation-token", Some(ADMIN));
    assert_eq!(reply.status, 500, "the new configuration is used at once: {}", reply.body);
    std::fs::write(s.plugin_dir().join("libtest_token_provider.toml"), "token = \"ghs_after\"\n").unwrap();
    assert_eq!(s.post("/admin/plugins/reload", Some(ADMIN), None).status, 200);
    assert_eq!(token(&s), "ghs_after");
}

#[test]
fn a_reload_ends_the_reuse_on_every_worker() {
    // Each worker thread keeps its own copy of the cached answer: all of them must drop it.
    let s = server().config("token_cache_ms = 60000\n").token_provider("token = \"ghs_before\"\n").start();
    let fetch = |s: &crate::harness::Server| s.get("/admin/github-installation-token", Some(ADMIN));
    let tokens = |replies: Vec<crate::harness::Reply>| {
        let mut seen: Vec<String> = replies.iter().map(|r| r.json()["token"].as_str().unwrap().to_owned()).collect();
        seen.dedup();
        seen
    };
    assert_eq!(tokens(s.concurrently(8, 25, fetch)), ["ghs_before"]);
    std::fs::write(s.plugin_dir().join("libtest_token_provider.toml"), "token = \"ghs_after\"\n").unwrap();
    assert_eq!(s.post("/admin/plugins/reload", Some(ADMIN), None).status, 200);
    assert_eq!(tokens(s.concurrently(8, 25, fetch)), ["ghs_after"], "a worker kept the replaced set's answer");
}
