//! Tokens minted for workspace scopes: cached per key, minted once per key however many callers
//! arrive cold, and revoked when the workspace's tokens are.
//!
//! Rules, which the code follows step by step:
//! 1. A key is (provider, GitHub host, scope, workspace). With `share_scoped_tokens` the
//!    workspace is left out: workspaces with the same scope share one token (fewer mints, see the
//!    mint budget in docs/operator.md), and revoking one of them revokes that token only when no other
//!    workspace it was served to, with a live workspace token, still holds it.
//! 2. Single flight: one async lock per key. The first caller mints while holding it; the callers
//!    behind it wait and then read the minted token. A thousand cold callers make one mint. The
//!    cache and the single flight are per host.
//! 3. A minted token is reused until [`REFRESH_MARGIN`] before its expiry, or until the plugin set
//!    changes (a reload). Errors, refusals included, are never cached.
//! 4. Every token minted is recorded in the store ([`crate::store::minted`]), one record per
//!    workspace it is served to, its secret sealed under a key derived from the admin token, until
//!    it expires. A mint whose record cannot be written is revoked at once and the call fails
//!    (503): no token is handed out that nobody could revoke. A cached token is served only while
//!    its record is there (one indexed store query), so a token another host revoked is not
//!    served from this host's cache: a new one is minted.
//! 5. Revoking a workspace (on any host) takes its records from the store, revokes through its
//!    provider each token no other holder keeps, and forgets the records. On the host that runs
//!    the revocation, the workspace's keys are closed first: a mint that finishes after that is
//!    revoked at once instead of being cached.
//!
//! Without an admin token nothing is recorded: no `DELETE` can run, and minted tokens expire
//! (at most an hour at GitHub). Records sealed under an earlier admin token cannot be opened
//! after it is rotated; their tokens are counted as failed revocations and expire.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::tokens::{SecretBody, serialize};
use crate::loader::LoadedPlugin;
use crate::registry::{Registry, ServedToken, TokenError};
use crate::scope::Scope;
use crate::store::minted::{self, MintRecord, MintSealer, SealError};
use crate::store::{Store, StoreWorkError};

/// A minted token is replaced when less than this is left of its life.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    plugin: String,
    host: String,
    scope: String,
    /// `None` when workspaces with the same scope share tokens.
    workspace: Option<String>,
}

/// The state of one key.
#[derive(Default)]
struct Slot {
    /// The token being served; the lock is the single flight of rule 2.
    current: tokio::sync::Mutex<Option<Current>>,
    /// Rule 1's holders on this host, under a plain lock (never held across an await).
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    /// Workspaces this host served this key's tokens to.
    holders: BTreeSet<String>,
    /// Rule 5: revoked; nothing more is cached here.
    closed: bool,
}

struct Current {
    generation: u64,
    expires_at: SystemTime,
    /// Identifies the token's records in the store.
    secret_sha256: [u8; 32],
    body: SecretBody,
}

/// The scoped tokens of the running host.
pub struct ScopedTokens {
    share: bool,
    sealer: Option<MintSealer>,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    /// The number of keys after the last sweep ([`ScopedTokens::sweep`]).
    swept_at: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for ScopedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedTokens").field("share", &self.share).finish_non_exhaustive()
    }
}

/// What revoking a workspace did at its providers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Tokens the providers revoked.
    pub revoked: usize,
    /// Tokens whose revocation failed (logged); they stay valid until they expire.
    pub failed: usize,
}

impl ScopedTokens {
    /// `share`: workspaces with the same scope share one token (rule 1). `sealer`: from the
    /// admin token; `None` (no admin token) records nothing (rule 4).
    pub fn new(share: bool, sealer: Option<MintSealer>) -> ScopedTokens {
        ScopedTokens {
            share,
            sealer,
            slots: Mutex::new(HashMap::new()),
            swept_at: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The token for `workspace` limited to `scope`, from `plugin`: cached, or minted once.
    pub(crate) async fn get(
        &self,
        registry: &Registry,
        store: &Store,
        plugin: &Arc<LoadedPlugin>,
        workspace: &str,
        host: &str,
        scope: &Scope,
    ) -> Result<SecretBody, ScopedError> {
        if !plugin.provides.scoped_token_provider {
            return Err(TokenError::NotScoped { plugin: plugin.name.clone() }.into());
        }
        let key = Key {
            plugin: plugin.name.clone(),
            host: host.to_owned(),
            scope: scope.key(),
            workspace: (!self.share).then(|| workspace.to_owned()),
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            self.sweep(&mut slots);
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        // Rule 2: one caller per key past this line at a time.
        let mut current = slot.current.lock().await;
        let generation = registry.generation();
        let now = SystemTime::now();
        let cached = current
            .as_ref()
            .filter(|c| {
                c.generation == generation && c.expires_at.duration_since(now).is_ok_and(|left| left > REFRESH_MARGIN)
            })
            .map(|c| (c.body.clone(), c.secret_sha256));
        if let Some((body, sha)) = cached {
            drop(current);
            // Rule 4: still recorded (not revoked by another host), and recorded for this holder.
            let recorded = match &self.sealer {
                Some(_) => store.hold_mint(workspace, sha).await?,
                None => true,
            };
            if !recorded {
                let mut current = slot.current.lock().await;
                if current.as_ref().is_some_and(|c| c.secret_sha256 == sha) {
                    *current = None;
                }
                drop(current);
                return Box::pin(self.get(registry, store, plugin, workspace, host, scope)).await;
            }
            let held = {
                let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
                if !records.closed {
                    records.holders.insert(workspace.to_owned());
                }
                !records.closed
            };
            if held {
                return Ok(body);
            }
            // Closed while this caller waited (rule 5): the key is gone; make a new one.
            return Box::pin(self.get(registry, store, plugin, workspace, host, scope)).await;
        }
        let served = registry.scoped_token(plugin, scope.to_wire(workspace, host)).await?;
        let body = serialize(&served).map_err(|err| TokenError::Call {
            plugin: plugin.name.clone(),
            err: crate::registry::CallError::Failed(err.to_string()),
        })?;
        let secret_sha256 = minted::secret_sha256(&served.token);
        // Rule 5 already: no record for a token about to be revoked here.
        let closed_already = slot.records.lock().unwrap_or_else(PoisonError::into_inner).closed;
        if let Some(sealer) = &self.sealer
            && !closed_already
            && let Err(err) = self.record(sealer, store, &key, workspace, &served, secret_sha256).await
        {
            // Rule 4: nobody could revoke this token later; revoke it now.
            if let Err(revoke_err) = registry.revoke(&plugin.name, &served.token).await {
                tracing::warn!(error = %revoke_err, workspace, "revoking a token whose record failed also failed");
            }
            return Err(err);
        }
        let closed = {
            let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
            if !records.closed {
                records.holders.insert(workspace.to_owned());
            }
            records.closed
        };
        if closed {
            // Rule 5: the workspace was revoked while this mint ran.
            if let Err(err) = registry.revoke(&plugin.name, &served.token).await {
                tracing::warn!(error = %err, workspace, "revoking a token minted during its workspace's revocation failed");
            }
            return Err(TokenError::Call {
                plugin: plugin.name.clone(),
                err: crate::registry::CallError::Failed("the workspace was revoked during the mint".to_owned()),
            }
            .into());
        }
        *current = Some(Current { generation, expires_at: served.expires_at, secret_sha256, body: body.clone() });
        metrics::counter!("plughost_scoped_tokens_minted_total", "plugin" => plugin.name.clone()).increment(1);
        Ok(body)
    }

    /// Writes the record of a fresh mint (rule 4).
    async fn record(
        &self,
        sealer: &MintSealer,
        store: &Store,
        key: &Key,
        workspace: &str,
        served: &ServedToken,
        secret_sha256: [u8; 32],
    ) -> Result<(), ScopedError> {
        let sealed = sealer.seal(&key.plugin, &served.token)?;
        let expires_at = served.expires_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let record = MintRecord {
            workspace_id: workspace.to_owned(),
            provider: key.plugin.clone(),
            scope_key: format!("{} {}", key.host, key.scope),
            sealed,
            secret_sha256,
            expires_at,
        };
        store.record_mint(record).await?;
        Ok(())
    }

    /// Forgets keys whose token has expired and that nobody is minting for: the store keeps
    /// what revocation needs. Runs when the number of keys has doubled since the last sweep, so
    /// the map stays within twice the keys with live tokens, at a cost spread thin.
    fn sweep(&self, slots: &mut HashMap<Key, Arc<Slot>>) {
        use std::sync::atomic::Ordering;
        if slots.len() < 1024.max(2 * self.swept_at.load(Ordering::Relaxed)) {
            return;
        }
        let now = SystemTime::now();
        slots.retain(|_, slot| {
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            match slot.current.try_lock() {
                Ok(current) => current.as_ref().is_some_and(|c| c.expires_at > now),
                Err(_) => true,
            }
        });
        self.swept_at.store(slots.len(), Ordering::Relaxed);
    }

    /// Revokes, through their providers, the tokens any host served to `workspace` that no
    /// other workspace holds (rule 1), from the store's records, and forgets them (rule 5).
    pub async fn revoke_workspace(
        &self,
        registry: Option<&Registry>,
        store: &Store,
        workspace: &str,
    ) -> Result<Revoked, StoreWorkError> {
        // This host's keys first: a mint in flight for them is revoked when it ends.
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|_, slot| {
                let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
                if !records.holders.remove(workspace) || !records.holders.is_empty() {
                    return true;
                }
                records.closed = true;
                false
            });
        }
        let Some(sealer) = &self.sealer else { return Ok(Revoked::default()) };
        let claimed = store.claim_mints(workspace).await?;
        let mut outcome = Revoked::default();
        for mint in claimed.into_iter().filter(|m| !m.still_held) {
            let Some(registry) = registry else {
                outcome.failed += 1;
                continue;
            };
            let secret = match sealer.open(&mint.provider, &mint.sealed) {
                Ok(secret) => secret,
                Err(err) => {
                    tracing::error!(error = %err, workspace, "a workspace's GitHub token cannot be revoked; it stays valid until it expires");
                    outcome.failed += 1;
                    continue;
                }
            };
            match registry.revoke(&mint.provider, &secret).await {
                Ok(()) => outcome.revoked += 1,
                Err(err) => {
                    tracing::error!(error = %err, workspace, "revoking a workspace's GitHub token failed; it stays valid until it expires");
                    outcome.failed += 1;
                }
            }
        }
        Ok(outcome)
    }
}

/// Why a scoped token was not served.
#[derive(Debug, thiserror::Error)]
pub enum ScopedError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The record of a mint could not be written or read (rule 4).
    #[error(transparent)]
    Store(#[from] StoreWorkError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn scoped_tokens_never_print_their_key() {
        let sealer = MintSealer::from_admin_token(&SecretString::from("admin-secret-xyz".to_owned()));
        let printed = format!("{:?}", ScopedTokens::new(true, Some(sealer)));
        assert!(!printed.contains("admin-secret"), "{printed}");
    }
}
