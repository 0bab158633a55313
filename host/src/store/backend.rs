//! [`Store`]: the one interface `serve` and the `workspace-token` command use, over either
//! backend. SQLite (the embedded default, in the state directory) or PostgreSQL (`store_url` /
//! `PLUGHOST_STORE_URL`, shared by replicas).
//!
//! An enum rather than a trait object: two backends, known here, and async methods without
//! boxing. Adding a column (a token's scope, say) is a parameter here and one in each backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::minted::{ClaimedMint, MintRecord};
use super::postgres::{PgStore, PgStoreError};
use super::{StoreError, StoreWork, StoreWorkError, Verified, WorkspaceToken, WorkspaceTokenStore};
use crate::scope::Scope;

/// Which backend, from the settings.
pub enum StoreConfig {
    /// SQLite in this state directory.
    Sqlite { state_dir: PathBuf },
    /// PostgreSQL at this URL (which may hold a password: never shown).
    Postgres { url: SecretString },
}

impl StoreConfig {
    /// `url` if set, else SQLite in `state_dir`.
    pub fn new(url: Option<SecretString>, state_dir: PathBuf) -> StoreConfig {
        match url {
            Some(url) => StoreConfig::Postgres { url },
            None => StoreConfig::Sqlite { state_dir },
        }
    }
}

/// The workspace token store. `Debug` names the database (a path, or a URL without password).
#[derive(Debug)]
pub enum Store {
    /// Token checks run in place (a few microseconds; see [`super`]); everything else on the
    /// blocking pool through [`StoreWork`].
    Sqlite {
        store: Arc<WorkspaceTokenStore>,
        work: StoreWork,
    },
    Postgres(PgStore),
}

impl Store {
    /// Opens the backend `config` names, creating or migrating its schema. Every call
    /// afterwards answers within `timeout` or fails with [`StoreWorkError::Timeout`].
    pub async fn open(config: &StoreConfig, timeout: Duration) -> Result<Store, StoreWorkError> {
        match config {
            StoreConfig::Sqlite { state_dir } => {
                let state_dir = state_dir.clone();
                let store = tokio::task::spawn_blocking(move || WorkspaceTokenStore::open(&state_dir))
                    .await
                    .map_err(|join| StoreWorkError::Task(join.to_string()))??;
                let store = Arc::new(store);
                Ok(Store::Sqlite { work: StoreWork::new(Arc::clone(&store), timeout), store })
            }
            StoreConfig::Postgres { url } => Ok(Store::Postgres(PgStore::open(url, timeout).await?)),
        }
    }

    /// Opens the store for `serve`: as [`Store::open`], except that a PostgreSQL database that
    /// does not answer yet is not fatal. The host then starts with the store routes answering
    /// 503 and `/readyz` not ready, migrates on the first call that reaches the database, and
    /// is ready from then on, without a restart. Any other failure (a bad URL, a schema newer
    /// than this plughost, a refused migration) stops the start as with [`Store::open`].
    pub async fn open_serving(config: &StoreConfig, timeout: Duration) -> Result<Store, StoreWorkError> {
        let StoreConfig::Postgres { url } = config else { return Store::open(config, timeout).await };
        let pg = PgStore::new(url, timeout)?;
        match pg.ensure_migrated().await {
            Ok(()) => {}
            Err(
                err @ (StoreWorkError::Timeout(_)
                | StoreWorkError::Store(StoreError::Postgres(PgStoreError::Connect { .. }))),
            ) => {
                tracing::warn!(
                    error = %err,
                    "workspace token store unreachable at start; its routes answer 503 until it answers"
                );
            }
            Err(err) => return Err(err),
        }
        Ok(Store::Postgres(pg))
    }

    /// Where the tokens are: the SQLite file, or the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite { store, .. } => store.path().display().to_string(),
            Store::Postgres(pg) => pg.target().to_owned(),
        }
    }

    /// Issues a new token for `workspace_id`, limited to `scope` if given; earlier tokens of the
    /// workspace stay valid, with their own scopes.
    pub async fn issue(&self, workspace_id: &str, scope: Option<&Scope>) -> Result<WorkspaceToken, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                let scope = scope.cloned();
                work.write(move |store| store.issue(&workspace, scope.as_ref())).await
            }
            Store::Postgres(pg) => pg.issue(workspace_id, scope).await,
        }
    }

    /// The scope of the workspace's newest live token (`None`: no live token; `Some(None)`:
    /// unscoped).
    pub async fn newest_scope(&self, workspace_id: &str) -> Result<Option<Option<Scope>>, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                work.read(move |store| store.newest_scope(&workspace)).await
            }
            Store::Postgres(pg) => pg.newest_scope(workspace_id).await,
        }
    }

    /// Revokes every token of `workspace_id`; returns how many there were.
    pub async fn revoke(&self, workspace_id: &str) -> Result<usize, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                work.write(move |store| store.revoke(&workspace)).await
            }
            Store::Postgres(pg) => pg.revoke(workspace_id).await,
        }
    }

    /// `token`'s scope if it is a live token of `workspace_id` (`Some(None)`: unscoped), `None`
    /// if it is not. Its last use is recorded in the background when due (best effort: skipped
    /// when the store is busy).
    pub async fn verify(&self, workspace_id: &str, token: &str) -> Result<Option<Option<Scope>>, StoreWorkError> {
        match self {
            Store::Sqlite { store, work } => {
                // In place, not on the blocking pool: see [`super`] on why.
                let Some(Verified { due, scope }) = store.verify(workspace_id, token)? else { return Ok(None) };
                let recorded =
                    due.is_none_or(|token_use| work.try_write_in_background(move |store| store.record_use(token_use)));
                if !recorded {
                    tracing::debug!(workspace = workspace_id, "store busy: a token's last use is not recorded");
                }
                Ok(Some(scope))
            }
            Store::Postgres(pg) => pg.verify(workspace_id, token).await,
        }
    }

    /// The last recorded use of the workspace's tokens (Unix seconds), if any.
    pub async fn last_used(&self, workspace_id: &str) -> Result<Option<i64>, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                work.read(move |store| store.last_used(&workspace)).await
            }
            Store::Postgres(pg) => pg.last_used(workspace_id).await,
        }
    }

    /// Records a token minted for a workspace ([`super::minted`]); forgets expired records.
    pub async fn record_mint(&self, record: MintRecord) -> Result<(), StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => work.write(move |store| store.record_mint(&record)).await,
            Store::Postgres(pg) => pg.record_mint(&record).await,
        }
    }

    /// Makes `workspace_id` a holder of the recorded token `secret_sha256`; `false` if that token
    /// has no record any more (revoked by some host, or expired).
    pub async fn hold_mint(&self, workspace_id: &str, secret_sha256: [u8; 32]) -> Result<bool, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                let held = work.read(move |store| store.holds_mint(&workspace, &secret_sha256)).await?;
                if held {
                    return Ok(true);
                }
                let workspace = workspace_id.to_owned();
                work.write(move |store| store.hold_mint(&workspace, &secret_sha256)).await
            }
            Store::Postgres(pg) => pg.hold_mint(workspace_id, &secret_sha256).await,
        }
    }

    /// Removes the workspace's minted-token records and returns its unexpired tokens, each
    /// saying whether another workspace with a live workspace token still holds it.
    pub async fn claim_mints(&self, workspace_id: &str) -> Result<Vec<ClaimedMint>, StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => {
                let workspace = workspace_id.to_owned();
                work.write(move |store| store.claim_mints(&workspace)).await
            }
            Store::Postgres(pg) => pg.claim_mints(workspace_id).await,
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), StoreWorkError> {
        match self {
            Store::Sqlite { work, .. } => work.read(|store| store.check()).await,
            Store::Postgres(pg) => pg.check().await,
        }
    }
}
