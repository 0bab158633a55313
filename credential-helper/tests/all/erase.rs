//! `erase` through `git credential reject`: only the rejected token is dropped.

use crate::support::*;

#[test]
fn reject_of_another_password_keeps_the_cached_token() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let t1 = password(&sandbox.fill("https", "github.com")).unwrap();

    let out = sandbox.reject("https", "github.com", "ghs_someone_elses_token");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(password(&sandbox.fill("https", "github.com")).unwrap(), t1);
    assert_eq!(server.requests(), 1, "the cached token survived");

    // Same length, one character different: still not a match.
    let mut near = t1.clone().into_bytes();
    let last = near.len() - 1;
    near[last] = if near[last] == b'a' { b'b' } else { b'a' };
    sandbox.reject("https", "github.com", &String::from_utf8(near).unwrap());
    assert_eq!(password(&sandbox.fill("https", "github.com")).unwrap(), t1);
    assert_eq!(server.requests(), 1);
}

#[test]
fn reject_of_the_cached_token_drops_it() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let t1 = password(&sandbox.fill("https", "github.com")).unwrap();

    let out = sandbox.reject("https", "github.com", &t1);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_no_secrets(&stderr(&out), &issued_tokens(&server));

    server.rotate();
    let t2 = password(&sandbox.fill("https", "github.com")).unwrap();
    assert_eq!(server.requests(), 2, "the next fill asks plughost again");
    assert_ne!(t1, t2);
    let seen = std::fs::read_to_string(sandbox.cache_dir().join("seen.json")).unwrap();
    assert!(!seen.contains(&t1) && !seen.contains(&t2), "only hashes are remembered");
}

#[test]
fn reject_for_another_host_does_nothing() {
    let server = TokenServer::start(3600, 600);
    let sandbox = Sandbox::new(&server.url);
    let t1 = password(&sandbox.fill("https", "github.com")).unwrap();
    sandbox.reject("https", "gitlab.com", &t1);
    assert_eq!(password(&sandbox.fill("https", "github.com")).unwrap(), t1);
    assert_eq!(server.requests(), 1);
}
