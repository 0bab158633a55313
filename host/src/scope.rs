//! The scope a workspace token is issued with: the repositories and permissions the GitHub tokens
//! served to that workspace are limited to.
//!
//! Set once, when the token is issued (`POST /admin/workspaces/{id}/tokens` with
//! `{"scope":{...}}`, `plughost workspace-token issue --repo ... --permission ...`), stored with
//! the token's hash, and handed to a scoped token provider (SDK 1.1) on every mint. Checked here,
//! before it is stored: a scope the host cannot even express is refused at issue (422), and one
//! the provider cannot grant is refused by the provider at the first fetch (422 too).
//!
//! Scopes are kept in a canonical form (sorted, without duplicates), so that two equal scopes
//! have one [`Scope::key`]: the host's token cache shares a minted token by that key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most repositories one scope may name (GitHub's own limit for one installation token).
pub const MAX_REPOSITORIES: usize = 500;
/// Most permissions one scope may name.
pub const MAX_PERMISSIONS: usize = 64;

/// A token scope. Empty lists mean "not limited by this" (the installation's own grant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Repositories by full name, `owner/name`.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Repositories by numeric id.
    #[serde(default)]
    pub repository_ids: Vec<u64>,
    /// Permission name (`contents`, `pull_requests`, ...) to level.
    #[serde(default)]
    pub permissions: BTreeMap<String, Level>,
}

/// A permission level, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Level, ScopeError> {
        match s {
            "read" => Ok(Level::Read),
            "write" => Ok(Level::Write),
            "admin" => Ok(Level::Admin),
            _ => Err(ScopeError::Level { level: s.chars().take(16).collect() }),
        }
    }
}

/// Why a scope was refused. Each message names what is wrong and says what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "invalid repository {name:?}: expected owner/name (owner: 1-39 of A-Z a-z 0-9 -; name: 1-100 of A-Z a-z 0-9 . _ -)"
    )]
    Repository { name: String },
    #[error("invalid repository id 0: ids start at 1")]
    RepositoryId,
    #[error("invalid permission {name:?}: expected 1-64 of a-z 0-9 _")]
    Permission { name: String },
    #[error("invalid permission level {level:?}: expected read, write or admin")]
    Level { level: String },
    #[error("invalid permission {given:?}: expected name=level, e.g. contents=read")]
    PermissionSyntax { given: String },
    #[error("too many {what}: {count} (at most {max})")]
    TooMany { what: &'static str, count: usize, max: usize },
}

impl Scope {
    /// Checks every entry and puts the scope in canonical form.
    pub fn validated(mut self) -> Result<Scope, ScopeError> {
        for (what, count, max) in [
            ("repositories", self.repositories.len(), MAX_REPOSITORIES),
            ("repository ids", self.repository_ids.len(), MAX_REPOSITORIES),
            ("permissions", self.permissions.len(), MAX_PERMISSIONS),
        ] {
            if count > max {
                return Err(ScopeError::TooMany { what, count, max });
            }
        }
        for name in &self.repositories {
            if !valid_repository(name) {
                return Err(ScopeError::Repository { name: name.chars().take(160).collect() });
            }
        }
        if self.repository_ids.contains(&0) {
            return Err(ScopeError::RepositoryId);
        }
        for name in self.permissions.keys() {
            let ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(ScopeError::Permission { name: name.chars().take(80).collect() });
            }
        }
        self.repositories.sort();
        self.repositories.dedup();
        self.repository_ids.sort_unstable();
        self.repository_ids.dedup();
        Ok(self)
    }

    /// `contents=read` as given on the command line.
    pub fn parse_permission(given: &str) -> Result<(String, Level), ScopeError> {
        let (name, level) = given
            .split_once('=')
            .ok_or_else(|| ScopeError::PermissionSyntax { given: given.chars().take(80).collect() })?;
        Ok((name.to_owned(), level.parse()?))
    }

    /// The canonical JSON form: stored with the token, and the cache key of a minted token.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The request a scoped provider gets.
    pub fn to_wire(&self, workspace_id: &str, host: &str) -> crate::isolation::protocol::WireScope {
        crate::isolation::protocol::WireScope {
            workspace_id: workspace_id.to_owned(),
            host: host.to_owned(),
            repositories: self.repositories.clone(),
            repository_ids: self.repository_ids.clone(),
            permissions: self
                .permissions
                .iter()
                .map(|(name, level)| (name.clone(), level.as_str().to_owned()))
                .collect(),
        }
    }
}

fn valid_repository(name: &str) -> bool {
    let Some((owner, repo)) = name.split_once('/') else { return false };
    let owner_ok = (1..=39).contains(&owner.len())
        && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-');
    let repo_ok = (1..=100).contains(&repo.len())
        && repo.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && repo != "."
        && repo != "..";
    owner_ok && repo_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_scopes_become_canonical() {
        let scope = Scope {
            repositories: vec!["o/r2".into(), "o/r1".into(), "o/r2".into()],
            repository_ids: vec![9, 3, 9],
            permissions: BTreeMap::from([("contents".into(), Level::Read)]),
        }
        .validated()
        .unwrap();
        assert_eq!(scope.repositories, ["o/r1", "o/r2"]);
        assert_eq!(scope.repository_ids, [3, 9]);
        assert_eq!(
            scope.key(),
            r#"{"repositories":["o/r1","o/r2"],"repository_ids":[3,9],"permissions":{"contents":"read"}}"#
        );
    }

    #[test]
    fn invalid_entries_are_named() {
        for (scope, expected) in [
            (Scope { repositories: vec!["noslash".into()], ..Scope::default() }, "invalid repository \"noslash\""),
            (Scope { repositories: vec!["o/r/x".into()], ..Scope::default() }, "invalid repository \"o/r/x\""),
            (Scope { repositories: vec!["-o/r".into()], ..Scope::default() }, "invalid repository \"-o/r\""),
            (Scope { repository_ids: vec![0], ..Scope::default() }, "invalid repository id 0"),
            (
                Scope { permissions: BTreeMap::from([("Contents".into(), Level::Read)]), ..Scope::default() },
                "invalid permission \"Contents\"",
            ),
            (
                Scope { repositories: (0..501).map(|i| format!("o/r{i}")).collect(), ..Scope::default() },
                "too many repositories: 501 (at most 500)",
            ),
        ] {
            let err = scope.validated().unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
        assert_eq!(Scope::parse_permission("contents=read").unwrap(), ("contents".into(), Level::Read));
        assert!(Scope::parse_permission("contents=owner").unwrap_err().to_string().contains("read, write or admin"));
        assert!(Scope::parse_permission("contents").unwrap_err().to_string().contains("name=level"));
    }
}
