//! The workspace bearer-token store ([`WorkspaceTokenStore`]): the tokens a workspace presents
//! on `/workspaces/{id}/...`, in an embedded SQLite database in the state directory. Not to be
//! confused with the GitHub installation tokens that plugins provide (`api::tokens`).
//!
//! A workspace token is 32 random bytes, base64url without padding, shown once when issued.
//! Only its SHA-256 hash is stored; a presented token is hashed and compared in constant time
//! against every live hash of the workspace it claims, so neither timing nor an early exit says
//! how close a guess was. Revocation deletes the workspace's rows: the next lookup (this process
//! or another one sharing the file, like `plughost workspace-token revoke`) no longer finds them.
//!
//! Connections: one writer (issue, revoke, last-use updates, migrations), one reader for the
//! occasional queries, and a reader per thread for token checks. In WAL mode a reader never
//! waits for a writer, in this process or another, so a check is a few microseconds of indexed
//! lookup that the HTTP handler runs in place: handing it to the blocking pool and back cost more
//! than the lookup itself (and halved the workspace token route's throughput). A reader of its
//! own per thread because one shared reader serialised the checks of all cores on its lock.
//!
//! Everything else runs off the async workers through [`StoreWork`]: on tokio's blocking pool,
//! a few at a time ([`crate::settings::MAX_STORE_WRITES`], [`crate::settings::MAX_STORE_READS`]),
//! each within a deadline (`store_timeout_ms`). A stuck database (a lock held elsewhere, a
//! stalled disk) then answers 503 at the deadline and pins a few threads, never the pool.
//!
//! Last use is recorded at most once per [`LAST_USED_WRITE_INTERVAL`] per token and checking
//! thread, off the request path ([`WorkspaceTokenStore::record_use`]): a write (and WAL append) on every
//! authenticated request would serialise the hot path on SQLite's single writer, and a minute's
//! granularity is plenty to answer "is this token still in use?".
//!
//! The same tokens can live in PostgreSQL instead ([`postgres`], `store_url`), for replicas
//! sharing one database; [`Store`] is the interface over both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use thread_local::ThreadLocal;
use tokio::sync::Semaphore;

use crate::scope::Scope;
use crate::settings::{MAX_STORE_READS, MAX_STORE_WRITES};
use crate::trust::{self, Subject, TrustError};

mod backend;
pub mod minted;
pub mod postgres;

pub use backend::{Store, StoreConfig};

/// The database file inside the state directory.
pub const DB_FILE: &str = "plughost.sqlite3";

/// How often, at most, the last-use time of one token is written.
pub const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// How long a write waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a token check may wait on a lock (only WAL recovery or a truncating checkpoint
/// makes a reader wait); it runs on an async worker, so it gives up early with a 503.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Above this many remembered last-use writes, a thread forgets the ones older than
/// [`LAST_USED_WRITE_INTERVAL`] (they are due again anyway): the memory stays bounded by the
/// tokens in use, revoked ones included.
const LAST_WRITTEN_PRUNE_AT: usize = 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit
/// one that shipped: add the next.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE workspace_tokens (
        id           INTEGER PRIMARY KEY,
        workspace_id TEXT    NOT NULL,
        token_sha256 BLOB    NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX workspace_tokens_by_workspace ON workspace_tokens (workspace_id);",
    // 2 (SDK 1.1, #12): the scope a token was issued with, canonical JSON ([`Scope::key`]);
    // NULL: unscoped, which every token issued before keeps being.
    "ALTER TABLE workspace_tokens ADD COLUMN scope TEXT;",
    // 3 (#13): GitHub tokens minted for workspace scopes, one row per (token, workspace served
    // to), the secret sealed ([`minted`]), so that any host can revoke them.
    "CREATE TABLE minted_tokens (
        id            INTEGER PRIMARY KEY,
        workspace_id  TEXT    NOT NULL,
        provider      TEXT    NOT NULL,
        scope_key     TEXT    NOT NULL,
        secret_sealed BLOB    NOT NULL,
        secret_sha256 BLOB    NOT NULL,
        expires_at    INTEGER NOT NULL,
        UNIQUE (secret_sha256, workspace_id)
    );
    CREATE INDEX minted_tokens_by_workspace ON minted_tokens (workspace_id);
    CREATE INDEX minted_tokens_by_expiry ON minted_tokens (expires_at);",
];

/// Why the store failed. Each message names the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create the state directory {}: {err}", path.display())]
    CreateDir { path: PathBuf, err: std::io::Error },
    /// The state directory is not one the host trusts (owner, mode), or not a directory.
    #[error(transparent)]
    StateDir(TrustError),
    #[error("cannot open the token database {}: {err}", path.display())]
    Open { path: PathBuf, err: rusqlite::Error },
    #[error(
        "the token database {} has schema version {found}, newer than this plughost knows ({known}); upgrade plughost",
        path.display()
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("token database {}: {err}", path.display())]
    Query { path: PathBuf, err: rusqlite::Error },
    /// A stored scope that does not parse (edited by hand?): the token is refused, not widened.
    #[error("token database {}: the scope of token row {id} is not valid: {err}", path.display())]
    BadScope { path: PathBuf, id: i64, err: serde_json::Error },
    /// The PostgreSQL store ([`postgres`]); its messages never show the URL's password.
    #[error(transparent)]
    Postgres(#[from] postgres::PgStoreError),
}

/// A workspace bearer token. `Debug` never shows it.
pub struct WorkspaceToken(SecretString);

impl WorkspaceToken {
    /// 32 bytes from the OS-seeded CSPRNG, base64url without padding (43 characters).
    pub fn generate() -> WorkspaceToken {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        WorkspaceToken(SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for WorkspaceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkspaceToken([REDACTED])")
    }
}

/// SHA-256 of a token, as stored and compared.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Workspace bearer tokens: issue, verify, revoke. Shared by `serve` and the
/// `workspace-token` command, which may run at the same time on the same state directory.
pub struct WorkspaceTokenStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Token checks: each thread's own reader, opened on its first check.
    checkers: ThreadLocal<Checker>,
}

/// A thread's token-check state.
struct Checker {
    reader: Connection,
    /// When this thread last had each token's use written (by row id).
    last_written: RefCell<HashMap<i64, Instant>>,
}

/// A live token, as a check found it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `Some` when its last use is due to be recorded (see [`WorkspaceTokenStore::record_use`]).
    pub due: Option<TokenUse>,
    /// The scope it was issued with; `None`: unscoped.
    pub scope: Option<Scope>,
}

/// A successful check whose use is due to be recorded; pass it to [`WorkspaceTokenStore::record_use`].
#[derive(Debug, Clone, Copy)]
pub struct TokenUse {
    id: i64,
}

impl std::fmt::Debug for WorkspaceTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceTokenStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl WorkspaceTokenStore {
    /// Opens (creating and migrating on first use) the database in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<WorkspaceTokenStore, StoreError> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let open_err = |err| StoreError::Open { path: path.clone(), err };
        let mut writer = Connection::open(&path).map_err(open_err)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers (every authenticated request) never wait for a writer (an issue, a revoke,
        // another process). NORMAL sync is durable across crashes of the process in WAL mode.
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal_mode = %mode, "could not switch the token database to WAL");
        }
        writer.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        migrate(&path, &mut writer)?;
        let reader = open_reader(&path)?;
        Ok(WorkspaceTokenStore {
            path,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            checkers: ThreadLocal::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn query_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |err| StoreError::Query { path: self.path.clone(), err }
    }

    /// Issues a new token for `workspace_id`, limited to `scope` if given (a validated scope);
    /// earlier tokens of the workspace stay valid, with their own scopes.
    pub fn issue(&self, workspace_id: &str, scope: Option<&Scope>) -> Result<WorkspaceToken, StoreError> {
        let token = WorkspaceToken::generate();
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute(
            "INSERT INTO workspace_tokens (workspace_id, token_sha256, created_at, scope) VALUES (?1, ?2, ?3, ?4)",
            params![workspace_id, &token_hash(token.expose())[..], unix_now(), scope.map(Scope::key)],
        )
        .map_err(self.query_err())?;
        Ok(token)
    }

    /// The scope of the workspace's newest live token (`Ok(None)`: no live token; `Some(None)`:
    /// unscoped). What the admin token gets on the workspace's routes.
    pub fn newest_scope(&self, workspace_id: &str) -> Result<Option<Option<Scope>>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let row = conn
            .query_row(
                "SELECT id, scope FROM workspace_tokens WHERE workspace_id = ?1 ORDER BY id DESC LIMIT 1",
                params![workspace_id],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?)),
            )
            .optional()
            .map_err(self.query_err())?;
        row.map(|(id, scope)| self.parse_scope(id, scope)).transpose()
    }

    fn parse_scope(&self, id: i64, scope: Option<String>) -> Result<Option<Scope>, StoreError> {
        scope.map(|text| serde_json::from_str(&text)).transpose().map_err(|err| StoreError::BadScope {
            path: self.path.clone(),
            id,
            err,
        })
    }

    /// Revokes every token of `workspace_id`; returns how many there were.
    pub fn revoke(&self, workspace_id: &str) -> Result<usize, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let revoked = conn
            .execute("DELETE FROM workspace_tokens WHERE workspace_id = ?1", params![workspace_id])
            .map_err(self.query_err())?;
        Ok(revoked)
    }

    /// Whether `token` is a live token of `workspace_id`: `None` if not, else what the check found.
    pub fn verify(&self, workspace_id: &str, token: &str) -> Result<Option<Verified>, StoreError> {
        let presented = token_hash(token);
        let checker = self.checkers.get_or_try(|| {
            Ok::<_, StoreError>(Checker { reader: open_reader(&self.path)?, last_written: RefCell::default() })
        })?;
        let mut statement = checker
            .reader
            .prepare_cached("SELECT id, token_sha256, scope FROM workspace_tokens WHERE workspace_id = ?1")
            .map_err(self.query_err())?;
        let rows = statement
            .query_map(params![workspace_id], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, Option<String>>(2)?))
            })
            .map_err(self.query_err())?;
        let mut matched = None;
        // Every row is compared, match or not: the time taken depends on the number of tokens
        // the workspace has, never on the presented value.
        for row in rows {
            let (id, stored, scope) = row.map_err(self.query_err())?;
            if bool::from(stored.as_slice().ct_eq(&presented[..])) {
                matched = Some((id, scope));
            }
        }
        let Some((id, scope)) = matched else { return Ok(None) };
        let scope = self.parse_scope(id, scope)?;
        let mut last_written = checker.last_written.borrow_mut();
        let now = Instant::now();
        let due = match last_written.get(&id) {
            Some(at) if now.duration_since(*at) < LAST_USED_WRITE_INTERVAL => false,
            _ => {
                if last_written.len() >= LAST_WRITTEN_PRUNE_AT {
                    last_written.retain(|_, at| now.duration_since(*at) < LAST_USED_WRITE_INTERVAL);
                }
                last_written.insert(id, now);
                true
            }
        };
        Ok(Some(Verified { due: due.then_some(TokenUse { id }), scope }))
    }

    /// Records a token's use (a write: call it off the async workers).
    pub fn record_use(&self, token_use: TokenUse) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute("UPDATE workspace_tokens SET last_used_at = ?1 WHERE id = ?2", params![unix_now(), token_use.id])
            .map(drop)
            .map_err(self.query_err())
    }

    /// The last recorded use of the workspace's tokens (Unix seconds), if any.
    pub fn last_used(&self, workspace_id: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row(
            "SELECT max(last_used_at) FROM workspace_tokens WHERE workspace_id = ?1",
            params![workspace_id],
            |row| row.get::<_, Option<i64>>(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(self.query_err())
    }

    /// Checks that the database answers (for `/readyz`).
    pub fn check(&self) -> Result<(), StoreError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("SELECT count(*) FROM workspace_tokens WHERE id = 0", [], |row| row.get::<_, i64>(0))
            .map(drop)
            .map_err(self.query_err())
    }

    /// Records a minted token for a workspace ([`minted`]), and forgets expired records.
    pub fn record_mint(&self, record: &minted::MintRecord) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute("DELETE FROM minted_tokens WHERE expires_at <= ?1", params![unix_now()])
            .map_err(self.query_err())?;
        conn.execute(
            "INSERT INTO minted_tokens (workspace_id, provider, scope_key, secret_sealed, secret_sha256, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (secret_sha256, workspace_id) DO NOTHING",
            params![
                record.workspace_id,
                record.provider,
                record.scope_key,
                record.sealed.0,
                &record.secret_sha256[..],
                record.expires_at
            ],
        )
        .map_err(self.query_err())?;
        Ok(())
    }

    /// Whether `workspace_id` holds the recorded token `secret_sha256` (a read: the common case
    /// of a cache hit).
    pub fn holds_mint(&self, workspace_id: &str, secret_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let held = conn
            .query_row(
                "SELECT 1 FROM minted_tokens WHERE secret_sha256 = ?1 AND workspace_id = ?2",
                params![&secret_sha256[..], workspace_id],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.query_err())?;
        Ok(held.is_some())
    }

    /// Makes `workspace_id` a holder of the recorded token `secret_sha256` (copying its record);
    /// `false` if the token has no record any more (revoked, or expired and forgotten). On a
    /// cache hit, [`Self::holds_mint`] first (a read) saves this write.
    pub fn hold_mint(&self, workspace_id: &str, secret_sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute(
            "INSERT INTO minted_tokens (workspace_id, provider, scope_key, secret_sealed, secret_sha256, expires_at)
             SELECT ?1, provider, scope_key, secret_sealed, secret_sha256, expires_at
             FROM minted_tokens WHERE secret_sha256 = ?2 LIMIT 1
             ON CONFLICT (secret_sha256, workspace_id) DO NOTHING",
            params![workspace_id, &secret_sha256[..]],
        )
        .map_err(self.query_err())?;
        let held = conn
            .query_row(
                "SELECT 1 FROM minted_tokens WHERE secret_sha256 = ?1 AND workspace_id = ?2",
                params![&secret_sha256[..], workspace_id],
                |_| Ok(()),
            )
            .optional()
            .map_err(self.query_err())?;
        Ok(held.is_some())
    }

    /// Removes `workspace_id`'s minted-token records, in one transaction, and returns its
    /// unexpired tokens, each saying whether another workspace with a live workspace token
    /// still holds it. The records of a token nobody holds any more are all removed.
    pub fn claim_mints(&self, workspace_id: &str) -> Result<Vec<minted::ClaimedMint>, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Immediate: the write lock from the start, so two revocations (or the CLI) serialise.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(self.query_err())?;
        let mut claimed = Vec::new();
        {
            let mut select = tx
                .prepare(
                    "SELECT m.provider, m.secret_sealed, m.secret_sha256, m.expires_at,
                       EXISTS (SELECT 1 FROM minted_tokens o WHERE o.secret_sha256 = m.secret_sha256
                               AND o.workspace_id <> m.workspace_id
                               AND EXISTS (SELECT 1 FROM workspace_tokens w WHERE w.workspace_id = o.workspace_id))
                     FROM minted_tokens m WHERE m.workspace_id = ?1 AND m.expires_at > ?2",
                )
                .map_err(self.query_err())?;
            let rows = select
                .query_map(params![workspace_id, unix_now()], |row| {
                    let sha: Vec<u8> = row.get(2)?;
                    Ok(minted::ClaimedMint {
                        provider: row.get(0)?,
                        sealed: minted::SealedSecret(row.get(1)?),
                        secret_sha256: sha.try_into().unwrap_or([0; 32]),
                        expires_at: row.get(3)?,
                        still_held: row.get(4)?,
                    })
                })
                .map_err(self.query_err())?;
            for row in rows {
                claimed.push(row.map_err(self.query_err())?);
            }
        }
        tx.execute("DELETE FROM minted_tokens WHERE workspace_id = ?1", params![workspace_id])
            .map_err(self.query_err())?;
        for mint in claimed.iter().filter(|m| !m.still_held) {
            tx.execute("DELETE FROM minted_tokens WHERE secret_sha256 = ?1", params![&mint.secret_sha256[..]])
                .map_err(self.query_err())?;
        }
        tx.commit().map_err(self.query_err())?;
        Ok(claimed)
    }
}

/// Why store work run by [`StoreWork`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreWorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("workspace token store did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The work panicked (a bug); the message is the join error's.
    #[error("workspace token store task failed: {0}")]
    Task(String),
}

/// The store as async code uses it: each piece of work on tokio's blocking pool, a bounded
/// number at a time, within a deadline. Work past its deadline still finishes on its thread
/// (a thread cannot be stopped), holding its permit until then.
#[derive(Debug)]
pub struct StoreWork {
    store: Arc<WorkspaceTokenStore>,
    writes: Arc<Semaphore>,
    reads: Arc<Semaphore>,
    timeout: Duration,
}

impl StoreWork {
    pub fn new(store: Arc<WorkspaceTokenStore>, timeout: Duration) -> StoreWork {
        StoreWork {
            store,
            writes: Arc::new(Semaphore::new(MAX_STORE_WRITES)),
            reads: Arc::new(Semaphore::new(MAX_STORE_READS)),
            timeout,
        }
    }

    /// Runs a write (issue, revoke, last use).
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WorkspaceTokenStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreWorkError> {
        self.run(&self.writes, work).await
    }

    /// Runs a read that may wait on a lock (`/readyz`'s check).
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WorkspaceTokenStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreWorkError> {
        self.run(&self.reads, work).await
    }

    /// Starts a write nobody waits for, if a permit is free now; `false` if it was skipped.
    pub fn try_write_in_background(
        &self,
        work: impl FnOnce(&WorkspaceTokenStore) -> Result<(), StoreError> + Send + 'static,
    ) -> bool {
        let Ok(permit) = Arc::clone(&self.writes).try_acquire_owned() else { return false };
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Err(err) = work(&store) {
                tracing::warn!(error = %err, "workspace token store write failed");
            }
        });
        true
    }

    async fn run<T: Send + 'static>(
        &self,
        permits: &Arc<Semaphore>,
        work: impl FnOnce(&WorkspaceTokenStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreWorkError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timeout = StoreWorkError::Timeout(self.timeout);
        let permit = match tokio::time::timeout_at(deadline, Arc::clone(permits).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(timeout),
        };
        let store = Arc::clone(&self.store);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&store)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(outcome)) => Ok(outcome?),
            Ok(Err(join)) => Err(StoreWorkError::Task(join.to_string())),
            Err(_) => Err(timeout),
        }
    }
}

/// A connection for reads; opened after [`migrate`], so the schema is there.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |err| StoreError::Open { path: path.to_owned(), err };
    let reader = Connection::open(path).map_err(open_err)?;
    reader.busy_timeout(READ_BUSY_TIMEOUT).map_err(open_err)?;
    Ok(reader)
}

/// Applies the migrations the database has not seen, each in its own transaction.
fn migrate(path: &Path, conn: &mut Connection) -> Result<(), StoreError> {
    let open_err = |err| StoreError::Open { path: path.to_owned(), err };
    // Reading the version is the first real read of the file: a file that is not a SQLite
    // database fails here ("file is not a database").
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { path: path.to_owned(), found: version, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(open_err)?;
        tx.execute_batch(sql).map_err(open_err)?;
        tx.pragma_update(None, "user_version", index as i64 + 1).map_err(open_err)?;
        tx.commit().map_err(open_err)?;
        tracing::info!(path = %path.display(), version = index + 1, "token database migrated");
    }
    Ok(())
}

/// Creates the state directory (mode 0700: it holds the token hashes and the plugin cache),
/// refuses one the host cannot trust (owner, mode: [`crate::trust`]) or cannot write, naming it.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |err| StoreError::CreateDir { path: dir.to_owned(), err };
    trust::private_dir(dir, Subject::StateDir(dir.to_owned())).map_err(|trust_err| match trust_err {
        TrustError::Io { err: io, .. } => err(io),
        other => StoreError::StateDir(other),
    })?;
    // SQLite's own error for an unwritable directory ("unable to open database file") does not
    // say why; probe with a file of our own first.
    let probe = dir.join(".plughost-write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = WorkspaceTokenStore::open(dir.path()).unwrap();
        let a = store.issue("ws-a", None).unwrap();
        let b = store.issue("ws-b", None).unwrap();
        assert_eq!(a.expose().len(), 43);
        let first_use = store.verify("ws-a", a.expose()).unwrap().expect("valid");
        store.record_use(first_use.due.expect("the first use is due")).unwrap();
        assert!(store.last_used("ws-a").unwrap().is_some());
        assert!(
            matches!(store.verify("ws-a", a.expose()).unwrap(), Some(Verified { due: None, scope: None })),
            "not due again within the interval"
        );
        assert!(store.verify("ws-a", b.expose()).unwrap().is_none(), "another workspace's token");
        assert!(store.verify("ws-a", "nope").unwrap().is_none());
        assert_eq!(store.revoke("ws-a").unwrap(), 1);
        assert!(store.verify("ws-a", a.expose()).unwrap().is_none());
        assert!(store.verify("ws-b", b.expose()).unwrap().is_some());
    }

    #[test]
    fn only_hashes_are_stored_and_the_schema_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let token = WorkspaceTokenStore::open(dir.path()).unwrap().issue("ws", None).unwrap();
        let store = WorkspaceTokenStore::open(dir.path()).unwrap();
        assert!(store.verify("ws", token.expose()).unwrap().is_some());
        drop(store);
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let stored: Vec<u8> = conn.query_row("SELECT token_sha256 FROM workspace_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, token_hash(token.expose()));
        let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        assert!(!bytes.windows(43).any(|w| w == token.expose().as_bytes()));
    }

    #[test]
    fn scopes_are_stored_with_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = WorkspaceTokenStore::open(dir.path()).unwrap();
        let scope = Scope {
            repositories: vec!["o/r1".into()],
            permissions: [("contents".to_owned(), crate::scope::Level::Read)].into(),
            ..Scope::default()
        }
        .validated()
        .unwrap();
        let unscoped = store.issue("ws", None).unwrap();
        let scoped = store.issue("ws", Some(&scope)).unwrap();
        assert_eq!(store.verify("ws", scoped.expose()).unwrap().unwrap().scope, Some(scope.clone()));
        assert_eq!(store.verify("ws", unscoped.expose()).unwrap().unwrap().scope, None);
        assert_eq!(store.newest_scope("ws").unwrap(), Some(Some(scope)));
        assert_eq!(store.newest_scope("other").unwrap(), None);
    }

    /// A database written by the schema of plughost before #12 (migration 1 only, rows in it)
    /// opens, migrates forward, and keeps every token working, unscoped.
    #[test]
    fn migrates_a_database_of_the_old_schema_keeping_every_token() {
        let dir = tempfile::tempdir().unwrap();
        let tokens: Vec<WorkspaceToken> = (0..3).map(|_| WorkspaceToken::generate()).collect();
        {
            std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            for (i, token) in tokens.iter().enumerate() {
                conn.execute(
                    "INSERT INTO workspace_tokens (workspace_id, token_sha256, created_at) VALUES (?1, ?2, ?3)",
                    params![format!("ws-{i}"), &token_hash(token.expose())[..], 1_700_000_000],
                )
                .unwrap();
            }
        }
        let store = WorkspaceTokenStore::open(dir.path()).unwrap();
        for (i, token) in tokens.iter().enumerate() {
            let verified = store.verify(&format!("ws-{i}"), token.expose()).unwrap().expect("kept");
            assert_eq!(verified.scope, None);
        }
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn debug_never_shows_a_token() {
        let token = WorkspaceToken::generate();
        assert_eq!(format!("{token:?}"), "WorkspaceToken([REDACTED])");
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x42; 4096]).unwrap();
        let err = WorkspaceTokenStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(DB_FILE) && err.contains("not a database"), "{err}");
    }
}
