//! Tokens minted for workspace scopes: cached per key, minted once per key however many callers
//! arrive cold, and revoked when the workspace's tokens are.
//!
//! Rules, which the code follows step by step:
//! 1. A key is (provider, GitHub host, scope, workspace). With `share_scoped_tokens` the
//!    workspace is left out: workspaces with the same scope share one token (fewer mints, see the
//!    mint budget in docs/operator.md), and revoking one of them revokes that token only when no other
//!    workspace it was served to still holds it.
//! 2. Single flight: one async lock per key. The first caller mints while holding it; the callers
//!    behind it wait and then read the minted token. A thousand cold callers make one mint.
//! 3. A minted token is reused until [`REFRESH_MARGIN`] before its expiry, or until the plugin set
//!    changes (a reload). Errors, refusals included, are never cached.
//! 4. Every token minted for a key is remembered (its secret in a type that cannot print itself)
//!    until it expires, so that revoking the key revokes all of them, not only the newest.
//! 5. Revoking a workspace closes its keys first: a mint that finishes after that is revoked at
//!    once instead of being cached.
//!
//! These records live in memory: a restarted host forgets them, and tokens it minted stay
//! valid until their expiry (at most an hour at GitHub). Issue 13 moves them to the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::tokens::{SecretBody, serialize};
use crate::loader::LoadedPlugin;
use crate::registry::{Registry, TokenError};
use crate::scope::Scope;

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
    /// Rule 4 and rule 1's holders, under a plain lock (never held across an await).
    records: Mutex<Records>,
}

#[derive(Default)]
struct Records {
    /// Workspaces this key's tokens were served to.
    holders: BTreeSet<String>,
    /// Every unexpired token minted for the key.
    minted: Vec<Minted>,
    /// Rule 5: revoked; nothing more is cached here.
    closed: bool,
}

struct Current {
    generation: u64,
    expires_at: SystemTime,
    body: SecretBody,
}

/// A minted token kept for its revocation. `Debug` never shows the secret.
struct Minted {
    secret: SecretString,
    expires_at: SystemTime,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("secret", &"[REDACTED]").field("expires_at", &self.expires_at).finish()
    }
}

/// The scoped tokens of the running host.
pub struct ScopedTokens {
    share: bool,
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
    /// `share`: workspaces with the same scope share one token (rule 1).
    pub fn new(share: bool) -> ScopedTokens {
        ScopedTokens { share, slots: Mutex::new(HashMap::new()), swept_at: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// The token for `workspace` limited to `scope`, from `plugin`: cached, or minted once.
    pub(crate) async fn get(
        &self,
        registry: &Registry,
        plugin: &Arc<LoadedPlugin>,
        workspace: &str,
        host: &str,
        scope: &Scope,
    ) -> Result<SecretBody, TokenError> {
        if !plugin.provides.scoped_token_provider {
            return Err(TokenError::NotScoped { plugin: plugin.name.clone() });
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
            Arc::clone(slots.entry(key).or_default())
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
            .map(|c| c.body.clone());
        if let Some(body) = cached {
            drop(current);
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
            return Box::pin(self.get(registry, plugin, workspace, host, scope)).await;
        }
        let served = registry.scoped_token(plugin, scope.to_wire(workspace, host)).await?;
        let body = serialize(&served).map_err(|err| TokenError::Call {
            plugin: plugin.name.clone(),
            err: crate::registry::CallError::Failed(err.to_string()),
        })?;
        let closed = {
            let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
            records.minted.retain(|m| m.expires_at > now);
            if !records.closed {
                records.minted.push(Minted { secret: served.token.clone(), expires_at: served.expires_at });
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
            });
        }
        *current = Some(Current { generation, expires_at: served.expires_at, body: body.clone() });
        metrics::counter!("plughost_scoped_tokens_minted_total", "plugin" => plugin.name.clone()).increment(1);
        Ok(body)
    }

    /// Forgets keys whose every minted token has expired and that nobody is minting for: they
    /// have nothing left to revoke. Runs when the number of keys has doubled since the last
    /// sweep, so the map stays within twice the keys with live tokens, at a cost spread thin.
    fn sweep(&self, slots: &mut HashMap<Key, Arc<Slot>>) {
        use std::sync::atomic::Ordering;
        if slots.len() < 1024.max(2 * self.swept_at.load(Ordering::Relaxed)) {
            return;
        }
        let now = SystemTime::now();
        slots.retain(|_, slot| {
            let idle = slot.current.try_lock().is_ok() && Arc::strong_count(slot) == 1;
            let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
            records.minted.retain(|m| m.expires_at > now);
            !(idle && records.minted.is_empty())
        });
        self.swept_at.store(slots.len(), Ordering::Relaxed);
    }

    /// Revokes, through their providers, the tokens served to `workspace` that no other
    /// workspace holds (rule 1), and forgets them.
    pub async fn revoke_workspace(&self, registry: Option<&Registry>, workspace: &str) -> Revoked {
        let mut to_revoke: Vec<(String, Minted)> = Vec::new();
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|key, slot| {
                let mut records = slot.records.lock().unwrap_or_else(PoisonError::into_inner);
                if !records.holders.remove(workspace) || !records.holders.is_empty() {
                    return true;
                }
                records.closed = true;
                to_revoke.extend(records.minted.drain(..).map(|m| (key.plugin.clone(), m)));
                false
            });
        }
        let mut outcome = Revoked::default();
        let now = SystemTime::now();
        for (plugin, minted) in to_revoke {
            if minted.expires_at <= now {
                continue;
            }
            let Some(registry) = registry else {
                outcome.failed += 1;
                continue;
            };
            match registry.revoke(&plugin, &minted.secret).await {
                Ok(()) => outcome.revoked += 1,
                Err(err) => {
                    tracing::error!(error = %err, workspace, "revoking a workspace's GitHub token failed; it stays valid until it expires");
                    outcome.failed += 1;
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_records_never_print_their_secret() {
        let minted = Minted { secret: SecretString::from("ghs_mintedsecret"), expires_at: SystemTime::UNIX_EPOCH };
        let printed = format!("{minted:?} {:?}", ScopedTokens::new(true));
        assert!(!printed.contains("mintedsecret"), "{printed}");
        assert!(printed.contains("[REDACTED]"));
    }
}
