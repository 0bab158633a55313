//! The workspace token store on PostgreSQL ([`PgStore`]), selected by `store_url` /
//! `PLUGHOST_STORE_URL`: several hosts (replicas behind a load balancer, no sticky sessions)
//! share one database.
//!
//! Driver: `tokio-postgres` with the `deadpool-postgres` pool. Both are async, so a store call is
//! a future on the request's own task (no blocking thread); they are small (no macros, no compile
//! time query checking, no other databases) and so cheap to build next to SQLite.
//!
//! Replicas: nothing is cached. Every check reads the database, so a token issued on one host
//! works on another at once, and a revocation committed on a third refuses the token on every
//! host from the next request on. Only the last-use writes are throttled per host
//! ([`super::LAST_USED_WRITE_INTERVAL`]), and they decide nothing.
//!
//! Database down: getting a connection or running a query fails or passes its deadline
//! (`store_timeout_ms`), and the caller gets 503; the pool drops closed connections when they
//! are next taken and opens new ones, so the host recovers by itself when the database returns.
//!
//! Migrations are versioned (`plughost_schema_version`, one row per migration applied) and run at
//! start inside one transaction holding a transaction-level advisory lock: replicas starting
//! together wait for each other, the first migrates, the others find the work done.
//!
//! The URL may hold a password: it is kept in a [`SecretString`] and never shown. What is shown
//! (logs, errors, `Debug`) is [`PgStore::target`], the URL without it.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use crate::scope::Scope;

use super::minted::{ClaimedMint, MintRecord, SealedSecret};
use super::{LAST_USED_WRITE_INTERVAL, StoreError, StoreWorkError, WorkspaceToken, token_hash, unix_now};
use crate::settings::MAX_STORE_WRITES;

/// Connections per host. Each check holds one for one indexed query.
const POOL_SIZE: usize = 16;

/// The advisory lock taken by migrations: "plughost" in ASCII, so it is recognisable in
/// `pg_locks` and unlikely to collide with another application's.
const MIGRATION_LOCK: i64 = 0x706c_7567_686f_7374;

/// Schema migrations, applied in order; `plughost_schema_version` has a row for each one applied.
/// `scope`: the scope a token was issued with, canonical JSON (`Scope::key`); NULL: unscoped.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE workspace_tokens (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        workspace_id TEXT   NOT NULL,
        token_sha256 BYTEA  NOT NULL UNIQUE,
        scope        TEXT,
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT
    );
    CREATE INDEX workspace_tokens_by_workspace ON workspace_tokens (workspace_id);",
    // 2 (#13): GitHub tokens minted for workspace scopes, one row per (token, workspace served
    // to), the secret sealed (`super::minted`), so that any replica can revoke them.
    "CREATE TABLE minted_tokens (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        workspace_id  TEXT   NOT NULL,
        provider      TEXT   NOT NULL,
        scope_key     TEXT   NOT NULL,
        secret_sealed BYTEA  NOT NULL,
        secret_sha256 BYTEA  NOT NULL,
        expires_at    BIGINT NOT NULL,
        UNIQUE (secret_sha256, workspace_id)
    );
    CREATE INDEX minted_tokens_by_workspace ON minted_tokens (workspace_id);
    CREATE INDEX minted_tokens_by_expiry ON minted_tokens (expires_at);",
];

/// Why the PostgreSQL store failed. Every message names the database by [`PgStore::target`],
/// never with its password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgStoreError {
    /// The driver's own message may quote a character of the URL, so it is left out.
    #[error(
        "store_url is not a PostgreSQL URL the driver accepts \
         (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=/SOCKET/DIR])"
    )]
    Url,
    #[error("cannot set up the connection pool for {target}: {message}")]
    Pool { target: String, message: String },
    #[error("cannot connect to {target}: {err}")]
    Connect { target: String, err: deadpool_postgres::PoolError },
    #[error("{target}: {err}")]
    Query { target: String, err: tokio_postgres::Error },
    #[error(
        "{target} has workspace token schema version {found}, newer than this plughost knows ({known}); upgrade plughost"
    )]
    TooNew { target: String, found: i64, known: i64 },
    /// A stored scope that does not parse (edited by hand?): the token is refused, not widened.
    #[error("{target}: the scope of workspace token row {id} is not valid: {err}")]
    BadScope { target: String, id: i64, err: serde_json::Error },
}

/// The store on PostgreSQL. `Debug` shows the target without the password.
pub struct PgStore {
    pool: Pool,
    target: String,
    timeout: Duration,
    /// Last-use writes in flight at once; a use with none free goes unrecorded.
    writes: Arc<Semaphore>,
    /// When this host last had each token's use written (by row id).
    last_written: Mutex<HashMap<i64, Instant>>,
    /// Set once this process has seen the schema at its version.
    migrated: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.target).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` and applies the migrations the database has not seen. Every store
    /// call afterwards (and each step here) has `timeout` to answer.
    pub async fn open(url: &SecretString, timeout: Duration) -> Result<PgStore, StoreWorkError> {
        let store = PgStore::new(url, timeout)?;
        store.ensure_migrated().await?;
        Ok(store)
    }

    /// The store on `url`, without touching the database yet: the migrations run before the
    /// first call (`serve` starts this way when the database does not answer at start, and
    /// becomes ready when it does).
    pub fn new(url: &SecretString, timeout: Duration) -> Result<PgStore, StoreWorkError> {
        let mut config =
            tokio_postgres::Config::from_str(url.expose_secret()).map_err(|_| StoreError::from(PgStoreError::Url))?;
        let target = describe(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("plughost");
        }
        // Fast: a connection found closed (the server restarted) is dropped when next taken;
        // no round trip per checkout, which a check per request could not afford.
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|err| StoreError::from(PgStoreError::Pool { target: target.clone(), message: err.to_string() }))?;
        let store = PgStore {
            pool,
            target,
            timeout,
            writes: Arc::new(Semaphore::new(MAX_STORE_WRITES)),
            last_written: Mutex::default(),
            migrated: tokio::sync::OnceCell::new(),
        };
        Ok(store)
    }

    /// Applies the migrations once (per process, on success); until then every call tries.
    pub async fn ensure_migrated(&self) -> Result<(), StoreWorkError> {
        self.migrated.get_or_try_init(|| self.within(self.migrate())).await.map(drop)
    }

    /// Runs `work` on a migrated database, within the store deadline.
    async fn run<T>(&self, work: impl Future<Output = Result<T, PgStoreError>>) -> Result<T, StoreWorkError> {
        self.ensure_migrated().await?;
        self.within(work).await
    }

    /// The database, as `postgres://USER@HOST:PORT/DATABASE`: never the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn query_err(&self) -> impl Fn(tokio_postgres::Error) -> PgStoreError + '_ {
        |err| PgStoreError::Query { target: self.target.clone(), err }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PgStoreError> {
        self.pool.get().await.map_err(|err| PgStoreError::Connect { target: self.target.clone(), err })
    }

    /// Runs `work` within the store deadline.
    async fn within<T>(&self, work: impl Future<Output = Result<T, PgStoreError>>) -> Result<T, StoreWorkError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => Ok(outcome.map_err(StoreError::from)?),
            Err(_) => Err(StoreWorkError::Timeout(self.timeout)),
        }
    }

    async fn migrate(&self) -> Result<(), PgStoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.query_err())?;
        // Held until commit: a replica starting at the same time waits here, then sees the
        // version this one wrote.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(self.query_err())?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS plughost_schema_version (
                version    BIGINT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(self.query_err())?;
        let row = tx
            .query_one("SELECT coalesce(max(version), 0) FROM plughost_schema_version", &[])
            .await
            .map_err(self.query_err())?;
        let version: i64 = row.get(0);
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(PgStoreError::TooNew { target: self.target.clone(), found: version, known });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).await.map_err(self.query_err())?;
            tx.execute("INSERT INTO plughost_schema_version (version) VALUES ($1)", &[&(index as i64 + 1)])
                .await
                .map_err(self.query_err())?;
            tracing::info!(target_db = %self.target, version = index + 1, "token database migrated");
        }
        tx.commit().await.map_err(self.query_err())
    }

    /// Issues a new token for `workspace_id`; earlier tokens of the workspace stay valid.
    pub async fn issue(&self, workspace_id: &str, scope: Option<&Scope>) -> Result<WorkspaceToken, StoreWorkError> {
        let scope = scope.map(Scope::key);
        self.run(async {
            let token = WorkspaceToken::generate();
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO workspace_tokens (workspace_id, token_sha256, created_at, scope) VALUES ($1, $2, $3, $4)",
                )
                .await
                .map_err(self.query_err())?;
            client
                .execute(&statement, &[&workspace_id, &&token_hash(token.expose())[..], &unix_now(), &scope])
                .await
                .map_err(self.query_err())?;
            Ok(token)
        })
        .await
    }

    /// The scope of the workspace's newest live token (`None`: no live token; `Some(None)`:
    /// unscoped). What the admin token gets on the workspace's routes.
    pub async fn newest_scope(&self, workspace_id: &str) -> Result<Option<Option<Scope>>, StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id, scope FROM workspace_tokens WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1",
                )
                .await
                .map_err(self.query_err())?;
            let row = client.query_opt(&statement, &[&workspace_id]).await.map_err(self.query_err())?;
            row.map(|row| self.parse_scope(row.get(0), row.get(1))).transpose()
        })
        .await
    }

    fn parse_scope(&self, id: i64, scope: Option<String>) -> Result<Option<Scope>, PgStoreError> {
        scope.map(|text| serde_json::from_str(&text)).transpose().map_err(|err| PgStoreError::BadScope {
            target: self.target.clone(),
            id,
            err,
        })
    }

    /// Revokes every token of `workspace_id`; returns how many there were.
    pub async fn revoke(&self, workspace_id: &str) -> Result<usize, StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("DELETE FROM workspace_tokens WHERE workspace_id = $1")
                .await
                .map_err(self.query_err())?;
            let revoked = client.execute(&statement, &[&workspace_id]).await.map_err(self.query_err())?;
            Ok(revoked as usize)
        })
        .await
    }

    /// `token`'s scope if it is a live token of `workspace_id` (`Some(None)`: unscoped), read
    /// from the database now; `None` if it is not. A due last-use write is started in the
    /// background (best effort).
    pub async fn verify(&self, workspace_id: &str, token: &str) -> Result<Option<Option<Scope>>, StoreWorkError> {
        let presented = token_hash(token);
        let matched = self
            .run(async {
                let client = self.client().await?;
                let statement = client
                    .prepare_cached("SELECT id, token_sha256, scope FROM workspace_tokens WHERE workspace_id = $1")
                    .await
                    .map_err(self.query_err())?;
                let rows = client.query(&statement, &[&workspace_id]).await.map_err(self.query_err())?;
                // Every row is compared, match or not, as in the SQLite store.
                let mut matched = None;
                for row in rows {
                    let stored: &[u8] = row.get(1);
                    if bool::from(stored.ct_eq(&presented[..])) {
                        matched = Some((row.get::<_, i64>(0), row.get::<_, Option<String>>(2)));
                    }
                }
                Ok(matched)
            })
            .await?;
        let Some((id, scope)) = matched else { return Ok(None) };
        let scope = self.parse_scope(id, scope).map_err(StoreError::from)?;
        if self.use_is_due(id) && !self.record_use_in_background(id) {
            tracing::debug!(workspace = workspace_id, "store busy: a token's last use is not recorded");
        }
        Ok(Some(scope))
    }

    fn use_is_due(&self, id: i64) -> bool {
        let mut last_written = self.last_written.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match last_written.get(&id) {
            Some(at) if now.duration_since(*at) < LAST_USED_WRITE_INTERVAL => false,
            _ => {
                if last_written.len() >= super::LAST_WRITTEN_PRUNE_AT {
                    last_written.retain(|_, at| now.duration_since(*at) < LAST_USED_WRITE_INTERVAL);
                }
                last_written.insert(id, now);
                true
            }
        }
    }

    /// Writes a token's last use in a task nobody waits for, if a write permit is free now.
    fn record_use_in_background(&self, id: i64) -> bool {
        let Ok(permit) = Arc::clone(&self.writes).try_acquire_owned() else { return false };
        let pool = self.pool.clone();
        let target = self.target.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let write = async {
                let client = pool.get().await.map_err(|err| err.to_string())?;
                client
                    .execute("UPDATE workspace_tokens SET last_used_at = $1 WHERE id = $2", &[&unix_now(), &id])
                    .await
                    .map_err(|err| err.to_string())
            };
            match tokio::time::timeout(timeout, write).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(target_db = %target, %error, "workspace token store write failed"),
                Err(_) => tracing::warn!(target_db = %target, "workspace token store write past its deadline"),
            }
        });
        true
    }

    /// The last recorded use of the workspace's tokens (Unix seconds), if any.
    pub async fn last_used(&self, workspace_id: &str) -> Result<Option<i64>, StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_one("SELECT max(last_used_at) FROM workspace_tokens WHERE workspace_id = $1", &[&workspace_id])
                .await
                .map_err(self.query_err())?;
            Ok(row.get::<_, Option<i64>>(0))
        })
        .await
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            client
                .query_one("SELECT count(*) FROM workspace_tokens WHERE id = 0", &[])
                .await
                .map(drop)
                .map_err(self.query_err())
        })
        .await
    }

    /// Records a minted token for a workspace (`super::minted`), and forgets expired records.
    pub async fn record_mint(&self, record: &MintRecord) -> Result<(), StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            client
                .execute("DELETE FROM minted_tokens WHERE expires_at <= $1", &[&unix_now()])
                .await
                .map_err(self.query_err())?;
            client
                .execute(
                    "INSERT INTO minted_tokens
                       (workspace_id, provider, scope_key, secret_sealed, secret_sha256, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (secret_sha256, workspace_id) DO NOTHING",
                    &[
                        &record.workspace_id,
                        &record.provider,
                        &record.scope_key,
                        &record.sealed.0,
                        &&record.secret_sha256[..],
                        &record.expires_at,
                    ],
                )
                .await
                .map_err(self.query_err())?;
            Ok(())
        })
        .await
    }

    /// Makes `workspace_id` a holder of the recorded token `secret_sha256` (copying its record);
    /// `false` if the token has no record any more (revoked on some replica, or expired).
    pub async fn hold_mint(&self, workspace_id: &str, secret_sha256: &[u8; 32]) -> Result<bool, StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            let select = client
                .prepare_cached("SELECT 1 FROM minted_tokens WHERE secret_sha256 = $1 AND workspace_id = $2")
                .await
                .map_err(self.query_err())?;
            let sha = &secret_sha256[..];
            if client.query_opt(&select, &[&sha, &workspace_id]).await.map_err(self.query_err())?.is_some() {
                return Ok(true);
            }
            client
                .execute(
                    "INSERT INTO minted_tokens
                       (workspace_id, provider, scope_key, secret_sealed, secret_sha256, expires_at)
                     SELECT $1, provider, scope_key, secret_sealed, secret_sha256, expires_at
                     FROM minted_tokens WHERE secret_sha256 = $2 LIMIT 1
                     ON CONFLICT (secret_sha256, workspace_id) DO NOTHING",
                    &[&workspace_id, &sha],
                )
                .await
                .map_err(self.query_err())?;
            Ok(client.query_opt(&select, &[&sha, &workspace_id]).await.map_err(self.query_err())?.is_some())
        })
        .await
    }

    /// Removes `workspace_id`'s minted-token records in one transaction and returns its
    /// unexpired tokens, each saying whether another workspace with a live workspace token
    /// still holds it; the records of a token nobody holds any more are all removed. The rows of
    /// every token concerned are locked first, so two replicas revoking two holders of one
    /// shared token at once serialise: the second sees the first's deletion and revokes it.
    pub async fn claim_mints(&self, workspace_id: &str) -> Result<Vec<ClaimedMint>, StoreWorkError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(self.query_err())?;
            tx.execute(
                "SELECT id FROM minted_tokens WHERE secret_sha256 IN
                   (SELECT secret_sha256 FROM minted_tokens WHERE workspace_id = $1) FOR UPDATE",
                &[&workspace_id],
            )
            .await
            .map_err(self.query_err())?;
            let rows = tx
                .query(
                    "SELECT m.provider, m.secret_sealed, m.secret_sha256, m.expires_at,
                       EXISTS (SELECT 1 FROM minted_tokens o WHERE o.secret_sha256 = m.secret_sha256
                               AND o.workspace_id <> m.workspace_id
                               AND EXISTS (SELECT 1 FROM workspace_tokens w WHERE w.workspace_id = o.workspace_id))
                     FROM minted_tokens m WHERE m.workspace_id = $1 AND m.expires_at > $2",
                    &[&workspace_id, &unix_now()],
                )
                .await
                .map_err(self.query_err())?;
            let claimed: Vec<ClaimedMint> = rows
                .iter()
                .map(|row| ClaimedMint {
                    provider: row.get(0),
                    sealed: SealedSecret(row.get(1)),
                    secret_sha256: row.get::<_, &[u8]>(2).try_into().unwrap_or([0; 32]),
                    expires_at: row.get(3),
                    still_held: row.get(4),
                })
                .collect();
            tx.execute("DELETE FROM minted_tokens WHERE workspace_id = $1", &[&workspace_id])
                .await
                .map_err(self.query_err())?;
            let released: Vec<&[u8]> = claimed.iter().filter(|m| !m.still_held).map(|m| &m.secret_sha256[..]).collect();
            if !released.is_empty() {
                tx.execute("DELETE FROM minted_tokens WHERE secret_sha256 = ANY($1)", &[&released])
                    .await
                    .map_err(self.query_err())?;
            }
            tx.commit().await.map_err(self.query_err())?;
            Ok(claimed)
        })
        .await
    }

    /// The schema version recorded in the database (tests, diagnostics).
    pub async fn schema_version(&self) -> Result<i64, StoreWorkError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_one("SELECT coalesce(max(version), 0) FROM plughost_schema_version", &[])
                .await
                .map_err(self.query_err())?;
            Ok(row.get(0))
        })
        .await
    }
}

/// `postgres://USER@HOST[,HOST]:PORT/DATABASE`, from the parsed configuration: the password is
/// never part of it.
fn describe(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let port = if ports.is_empty() { String::new() } else { format!(":{}", ports.join(",")) };
    let dbname = config.get_dbname().unwrap_or("");
    format!("postgres://{user}@{}{port}/{dbname}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_the_password() {
        let url = "postgres://plughost:hunter2-secret@db.internal:5433/tokens?sslmode=disable";
        let config = tokio_postgres::Config::from_str(url).unwrap();
        let target = describe(&config);
        assert_eq!(target, "postgres://plughost@db.internal:5433/tokens");
        let socket = tokio_postgres::Config::from_str("postgres://me:pw@/db?host=/run/pg").unwrap();
        assert_eq!(describe(&socket), "postgres://me@/run/pg/db");
    }

    #[tokio::test]
    async fn debug_shows_the_target_never_the_password() {
        let url = SecretString::from("postgres://plughost:hunter2-secret@db.internal/tokens".to_owned());
        let store = super::super::Store::Postgres(PgStore::new(&url, Duration::from_secs(1)).unwrap());
        let shown = format!("{store:?} {}", store.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://plughost@db.internal:5432/tokens"), "{shown}");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_quoting_it() {
        for url in ["postgres://u:pa`ss word@host:notaport/db", "postgres://u:secret-pw@host/db?bogus=1"] {
            let err = PgStore::open(&SecretString::from(url.to_owned()), Duration::from_secs(1)).await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("pa`ss") && !shown.contains("secret-pw"), "{shown}");
            assert!(shown.contains("not a PostgreSQL URL"), "{shown}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_is_named_without_the_password() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let url = SecretString::from("postgres://plughost:hunter2-secret@127.0.0.1:1/tokens".to_owned());
        let err = PgStore::open(&url, Duration::from_secs(2)).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://plughost@127.0.0.1:1/tokens"), "{shown}");
    }
}
