// The workspace token store through SIGKILL: the host is killed over and over while workspace
// tokens are issued, used and revoked over HTTP (one client per workspace, several at once), and
// restarted on the same state directory each time. After every restart:
// - the SQLite file passes `PRAGMA integrity_check` (opened read-only from here);
// - every token whose 201 was seen, and whose workspace saw no acknowledged revocation since,
//   works on its workspace route (200);
// - every token whose revocation was acknowledged (200 to DELETE) answers 401: those revoked
//   since the last restart, a sample of the older ones, and at the end all of them;
// - a revocation whose answer was lost in the kill took effect for all of the workspace's tokens
//   or for none (it is one statement).
// 10 kills here; `host/benches/kill9.sh ITERATIONS` runs this test with more, through
// `KILL9_ITERATIONS`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use rand::seq::SliceRandom as _;

use crate::harness::{ADMIN, Server, fixtures, server};

/// Kills without `KILL9_ITERATIONS`.
const DEFAULT_KILLS: usize = 10;
const WORKSPACES: usize = 4;
/// A workspace with this many live tokens revokes them next.
const MAX_LIVE: usize = 6;
/// Acknowledged operations each round has, at least, before the kill.
const OPS_BEFORE_KILL: usize = 8;
/// Older revoked tokens checked again after each restart.
const REVOKED_SAMPLE: usize = 32;

#[derive(Default)]
struct Workspace {
    id: String,
    /// 201 seen, and no acknowledged revocation of the workspace since.
    live: Vec<String>,
    /// Live when a DELETE was sent whose answer the kill took: all revoked or all live.
    in_doubt: Vec<String>,
    /// Revocation acknowledged (or found applied) since the last check.
    newly_revoked: Vec<String>,
}

#[derive(Default)]
struct Tally {
    issued: AtomicUsize,
    revocations: AtomicUsize,
    uses: AtomicUsize,
    lost: AtomicUsize,
}

impl Tally {
    fn acknowledged(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
            + self.revocations.load(Ordering::Relaxed)
            + self.uses.load(Ordering::Relaxed)
    }
}

fn workspace_route(id: &str) -> String {
    format!("/workspaces/{id}/github-installation-token")
}

/// Issues, uses and revokes tokens of `ws` until a request fails in transport (the host was
/// killed); an unexpected answer is recorded in `unexpected` and ends the client too.
fn churn(s: &Server, ws: &mut Workspace, tally: &Tally, unexpected: &Mutex<Vec<String>>) {
    let mut rng = rand::thread_rng();
    let admin = format!("Bearer {ADMIN}");
    let tokens_path = format!("/admin/workspaces/{}/tokens", ws.id);
    let fail = |what: String| unexpected.lock().unwrap().push(what);
    loop {
        let roll = rng.gen_range(0..10);
        if ws.live.len() >= MAX_LIVE || (roll >= 8 && !ws.live.is_empty()) {
            match s.try_request("DELETE", &tokens_path, Some(&admin), None) {
                Ok(reply) if reply.status == 200 => {
                    ws.newly_revoked.append(&mut ws.live);
                    tally.revocations.fetch_add(1, Ordering::Relaxed);
                }
                Ok(reply) => return fail(format!("DELETE {tokens_path}: {} {}", reply.status, reply.body)),
                Err(_) => {
                    ws.in_doubt.append(&mut ws.live);
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        } else if roll >= 5 && !ws.live.is_empty() {
            let token = ws.live.choose(&mut rng).unwrap().clone();
            match s.try_request("GET", &workspace_route(&ws.id), Some(&format!("Bearer {token}")), None) {
                Ok(reply) if reply.status == 200 => {
                    tally.uses.fetch_add(1, Ordering::Relaxed);
                }
                Ok(reply) => {
                    return fail(format!("a live token of {} answered {} {}", ws.id, reply.status, reply.body));
                }
                Err(_) => {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        } else {
            match s.try_request("POST", &tokens_path, Some(&admin), None) {
                Ok(reply) if reply.status == 201 => {
                    ws.live.push(reply.json()["token"].as_str().unwrap().to_owned());
                    tally.issued.fetch_add(1, Ordering::Relaxed);
                }
                Ok(reply) => return fail(format!("POST {tokens_path}: {} {}", reply.status, reply.body)),
                // A token that may exist but was never seen: nothing to check.
                Err(_) => {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

fn status_of(s: &Server, ws: &str, token: &str) -> u16 {
    s.get(&workspace_route(ws), Some(token)).status
}

/// What the checks after the restarts found.
#[derive(Default)]
struct Checked {
    passed: usize,
    /// Revocations whose answer the kill took, found applied and not applied.
    lost_applied: usize,
    lost_not_applied: usize,
}

/// The invariants of the module header (it panics on the first that fails). `all_revoked`:
/// check every revoked token, not a sample.
fn check(
    s: &Server,
    workspaces: &mut [Workspace],
    revoked: &mut Vec<(String, String)>,
    all_revoked: bool,
    checked: &mut Checked,
) {
    let db = s.state_dir().join("plughost.sqlite3");
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(integrity, ["ok"], "integrity_check of {}", db.display());
    drop(conn);
    checked.passed += 1;

    for ws in workspaces.iter_mut() {
        if !ws.in_doubt.is_empty() {
            let statuses: Vec<u16> = ws.in_doubt.iter().map(|t| status_of(s, &ws.id, t)).collect();
            if statuses.iter().all(|&st| st == 401) {
                ws.newly_revoked.append(&mut ws.in_doubt);
                checked.lost_applied += 1;
            } else if statuses.iter().all(|&st| st == 200) {
                ws.live.append(&mut ws.in_doubt);
                checked.lost_not_applied += 1;
            } else {
                panic!("a revocation of {} applied to some of its tokens only: {statuses:?}\n{}", ws.id, s.log());
            }
            checked.passed += statuses.len();
        }
        for token in &ws.live {
            let status = status_of(s, &ws.id, token);
            assert_eq!(status, 200, "a token of {} issued (201 seen) and never revoked\n{}", ws.id, s.log());
            checked.passed += 1;
        }
        for token in ws.newly_revoked.drain(..) {
            let status = status_of(s, &ws.id, &token);
            assert_eq!(status, 401, "a token of {} whose revocation was acknowledged works\n{}", ws.id, s.log());
            checked.passed += 1;
            revoked.push((ws.id.clone(), token));
        }
    }
    let sample: Vec<&(String, String)> = if all_revoked {
        revoked.iter().collect()
    } else {
        revoked.choose_multiple(&mut rand::thread_rng(), REVOKED_SAMPLE).collect()
    };
    for (ws, token) in sample {
        assert_eq!(status_of(s, ws, token), 401, "an older revoked token of {ws} works again\n{}", s.log());
        checked.passed += 1;
    }
}

#[test]
fn tokens_survive_sigkill_as_acknowledged_and_the_store_stays_consistent() {
    let kills: usize = std::env::var("KILL9_ITERATIONS").ok().map_or(DEFAULT_KILLS, |n| n.parse().expect("a number"));
    let mut s = server()
        .rust_log("info")
        .token_provider("token = \"ghs_kill9\"\n")
        .plugin("20-static-env.so", &fixtures().static_env, None)
        .start();
    let mut workspaces: Vec<Workspace> =
        (0..WORKSPACES).map(|i| Workspace { id: format!("kill9-{i}"), ..Workspace::default() }).collect();
    let mut revoked = Vec::new();
    let tally = Tally::default();
    let unexpected = Mutex::new(Vec::new());
    let mut checked = Checked::default();
    let started = Instant::now();
    let mut rng = rand::thread_rng();

    for kill in 1..=kills {
        let before = tally.acknowledged();
        let running = AtomicUsize::new(WORKSPACES);
        std::thread::scope(|scope| {
            for ws in workspaces.iter_mut() {
                let (s, tally, unexpected, running) = (&s, &tally, &unexpected, &running);
                scope.spawn(move || {
                    churn(s, ws, tally, unexpected);
                    running.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Some work acknowledged in every round, then the kill at a random moment of it.
            while tally.acknowledged() < before + OPS_BEFORE_KILL && running.load(Ordering::Relaxed) > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..150)));
            s.signal(libc::SIGKILL);
        });
        s.wait_exit(Duration::from_secs(10));
        let seen = unexpected.lock().unwrap();
        assert!(seen.is_empty(), "kill {kill}: unexpected answers: {seen:#?}\n{}", s.log());
        drop(seen);
        s.restart().unwrap_or_else(|err| panic!("restart after kill {kill}: {err}"));
        check(&s, &mut workspaces, &mut revoked, kill == kills, &mut checked);
    }

    let live: usize = workspaces.iter().map(|ws| ws.live.len()).sum();
    eprintln!(
        "{kills} kills in {:.1} s: {} tokens issued, {} revocations and {} uses acknowledged, {} requests lost in \
         kills (revocations among them: {} found applied, {} not); {} invariant checks passed, {live} live and {} \
         revoked tokens at the end",
        started.elapsed().as_secs_f64(),
        tally.issued.load(Ordering::Relaxed),
        tally.revocations.load(Ordering::Relaxed),
        tally.uses.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
        checked.lost_applied,
        checked.lost_not_applied,
        checked.passed,
        revoked.len(),
    );
    assert!(tally.acknowledged() >= kills * OPS_BEFORE_KILL);
}
