//! Scoped tokens: which installation serves a request, what may be asked of it, and GitHub's
//! refusals turned into messages that name the repository or permission at fault.
//!
//! Rules, in order, for each request:
//! 1. The scope's shape: every repository `owner/name`, all of one owner; levels `read`,
//!    `write` or `admin`; at most 500 repositories (GitHub's limit).
//! 2. The host: the scope's `host`, else the default installation's. An installation serves
//!    it when its host (`host`, or derived from `api_url`) is that host.
//! 3. The installation: the one of that host whose owner is the repositories' owner (an owner
//!    not configured is learned once from `GET /app/installations/{id}`); a scope naming no
//!    repository by name goes to the host's first installation.
//! 4. The installation's configured `repositories`/`repository_ids`/`permissions` are a ceiling:
//!    a scope field left empty takes the configured one, one asking beyond it is refused here.
//! 5. One mint with exactly that body (transient failures retried within the retry deadline);
//!    GitHub's 422 becomes a [`Refusal`], explained with the installation's repositories (through
//!    its own cached token) or its granted permissions.
//! 6. GitHub's answer must be no wider than asked, or the token is revoked and not handed out.
//!
//! Nothing here caches a scoped token: the host caches per scope, with single flight.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cache::with_retries;
use crate::config::TokenScope;
use crate::error::{Error, Refusal, ScopedError};
use crate::token::InstallationToken;
use crate::{GitHubAppAuth, Installation};

/// How many pages of 100 repositories are read to name the one GitHub refused.
const DIAGNOSIS_PAGES: u32 = 50;

fn rank(level: &str) -> Option<u8> {
    match level {
        "read" => Some(1),
        "write" => Some(2),
        "admin" => Some(3),
        _ => None,
    }
}

/// The scope as this plugin reads it: repositories split into owner and name.
struct Request<'a> {
    /// The owner and the first `owner/name` that named it.
    owner: Option<(&'a str, &'a str)>,
    names: Vec<String>,
    ids: Vec<u64>,
    permissions: &'a BTreeMap<String, String>,
}

fn read_request(scope: &plughost_sdk::TokenScope) -> Result<Request<'_>, Refusal> {
    for (name, level) in &scope.permissions {
        if rank(level).is_none() {
            return Err(Refusal::BadLevel { name: name.clone(), level: level.clone() });
        }
    }
    let count = scope.repositories.len() + scope.repository_ids.len();
    if count > 500 {
        return Err(Refusal::TooManyRepositories { count });
    }
    let mut request =
        Request { owner: None, names: Vec::new(), ids: scope.repository_ids.clone(), permissions: &scope.permissions };
    for full in &scope.repositories {
        let (owner, name) = match full.split_once('/') {
            Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => (o, n),
            _ => return Err(Refusal::NotOwnerSlashName { name: full.clone() }),
        };
        match request.owner {
            None => request.owner = Some((owner, full)),
            Some((first_owner, first)) if !first_owner.eq_ignore_ascii_case(owner) => {
                return Err(Refusal::MixedOwners {
                    first_owner: first_owner.to_owned(),
                    first: first.to_owned(),
                    second_owner: owner.to_owned(),
                    second: full.clone(),
                });
            }
            Some(_) => {}
        }
        request.names.push(name.to_owned());
    }
    Ok(request)
}

impl GitHubAppAuth {
    /// A token limited to `scope`, minted for it alone (never cached here), or why not.
    pub fn scoped_token(&self, scope: &plughost_sdk::TokenScope) -> Result<InstallationToken, ScopedError> {
        let request = read_request(scope)?;
        let host =
            if scope.host.is_empty() { self.installations[0].host.clone() } else { scope.host.to_ascii_lowercase() };
        let on_host: Vec<&Installation> = self.installations.iter().filter(|i| i.host == host).collect();
        if on_host.is_empty() {
            return Err(Refusal::UnknownHost { host, served: self.hosts().join(", ") }.into());
        }
        let deadline = Instant::now() + self.retry.deadline;
        let installation = match request.owner {
            None => on_host[0],
            Some((owner, _)) => self.installation_of(&on_host, owner, &host, deadline)?,
        };
        let asked = installation.within_ceiling(&request)?;

        let client = installation.cache.source();
        let minted = with_retries(&self.retry, deadline, |deadline| client.mint_scoped(&asked, Some(deadline)));
        let token = match minted {
            Ok(token) => token,
            Err(Error::Unprocessable { message, .. }) => {
                return Err(installation.explain_refusal(&asked, &message).into());
            }
            Err(err) => return Err(err.into()),
        };
        if let Some(what) = wider_than_asked(&asked, &token) {
            // Never hand it out; revoking is best effort (it dies within the hour anyway).
            if let Err(err) = client.revoke(token.expose()) {
                tracing::warn!(error = %err, "could not revoke a token GitHub made wider than asked");
            }
            let id = client.installation_id().map_or_else(|_| "{id}".to_owned(), |id| id.to_string());
            let url = format!("{}/app/installations/{id}/access_tokens", client.api_url());
            return Err(Error::WiderThanAsked { url, what }.into());
        }
        self.remember(&token, installation);
        tracing::debug!(
            workspace = %scope.workspace_id,
            host = %installation.host,
            owner = %installation.owner_name(),
            repositories = asked.repositories.len() + asked.repository_ids.len(),
            permissions = ?asked.permissions,
            "minted a scoped token"
        );
        Ok(token)
    }

    /// The installation on `host` for `owner`, learning unconfigured owners from GitHub.
    fn installation_of<'a>(
        &self,
        on_host: &[&'a Installation],
        owner: &str,
        host: &str,
        deadline: Instant,
    ) -> Result<&'a Installation, ScopedError> {
        let known = |i: &&&Installation| i.owner.get().is_some_and(|o| o.eq_ignore_ascii_case(owner));
        if let Some(found) = on_host.iter().find(known) {
            return Ok(found);
        }
        for installation in on_host.iter().filter(|i| i.owner.get().is_none()) {
            let account = installation.cache.source().installation_account(Some(deadline))?;
            let learned = installation.owner.get_or_init(|| account.login);
            if learned.eq_ignore_ascii_case(owner) {
                return Ok(installation);
            }
        }
        let served: Vec<&str> = on_host.iter().filter_map(|i| i.owner.get().map(String::as_str)).collect();
        Err(Refusal::UnknownOwner { owner: owner.to_owned(), host: host.to_owned(), served: served.join(", ") }.into())
    }
}

impl Installation {
    /// The owner for messages: its login, or the installation setting when not learned yet.
    fn owner_name(&self) -> String {
        match self.owner.get() {
            Some(owner) => owner.clone(),
            None => match self.cache.source().installation_id() {
                Ok(id) => format!("installation {id}"),
                Err(_) => "the installation".to_owned(),
            },
        }
    }

    /// The owner's login, asking GitHub when it is not known yet (to explain a refusal).
    fn learn_owner(&self) -> String {
        if let Some(owner) = self.owner.get() {
            return owner.clone();
        }
        match self.cache.source().installation_account(None) {
            Ok(account) => self.owner.get_or_init(|| account.login).clone(),
            Err(_) => self.owner_name(),
        }
    }

    /// The request within this installation's configured scope (rule 4), as GitHub's body.
    fn within_ceiling(&self, request: &Request<'_>) -> Result<TokenScope, Refusal> {
        let ceiling = &self.ceiling;
        let outside =
            |what: String, limit: String| Refusal::OutsideConfigured { what, owner: self.owner_name(), limit };
        let asks_repositories = !request.names.is_empty() || !request.ids.is_empty();
        let limits_repositories = !ceiling.repositories.is_empty() || !ceiling.repository_ids.is_empty();
        let (repositories, repository_ids) = if !asks_repositories {
            (ceiling.repositories.clone(), ceiling.repository_ids.clone())
        } else {
            if limits_repositories {
                let configured = || "repositories, repository_ids".to_owned();
                for name in &request.names {
                    if !ceiling.repositories.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                        let owner = request.owner.map_or("", |(o, _)| o);
                        return Err(outside(format!("repository {owner}/{name}"), configured()));
                    }
                }
                if let Some(id) = request.ids.iter().find(|id| !ceiling.repository_ids.contains(id)) {
                    return Err(outside(format!("repository id {id}"), configured()));
                }
            }
            (request.names.clone(), request.ids.clone())
        };
        let permissions = if request.permissions.is_empty() {
            ceiling.permissions.clone()
        } else {
            if !ceiling.permissions.is_empty() {
                for (name, level) in request.permissions {
                    match ceiling.permissions.get(name) {
                        Some(max) if rank(level) <= rank(max) => {}
                        Some(max) => {
                            return Err(outside(format!("permission {name}:{level}"), format!("{name}:{max}")));
                        }
                        None => return Err(outside(format!("permission {name}:{level}"), format!("no {name}"))),
                    }
                }
            }
            request.permissions.clone()
        };
        Ok(TokenScope { repositories, repository_ids, permissions })
    }

    /// GitHub's 422 for `asked`, with the repository or permission it is about.
    fn explain_refusal(&self, asked: &TokenScope, message: &str) -> Refusal {
        let host = self.host.clone();
        let lower = message.to_ascii_lowercase();
        if lower.contains("repositor") && !(asked.repositories.is_empty() && asked.repository_ids.is_empty()) {
            let owner = self.learn_owner();
            let missing = self.inaccessible(asked).unwrap_or_else(|err| {
                tracing::debug!(error = %err, "could not list the installation's repositories to explain a 422");
                describe(asked, &owner, |_| true, |_| true)
            });
            return Refusal::NotAccessible { repositories: missing, owner, host };
        }
        if lower.contains("permission") {
            if let Ok(account) = self.cache.source().installation_account(None) {
                let owner = self.owner.get_or_init(|| account.login.clone()).clone();
                for (name, level) in &asked.permissions {
                    let granted = account.permissions.get(name);
                    if rank(level) > granted.and_then(|g| rank(g)) {
                        let granted = match granted {
                            Some(g) => format!("it has {name}:{g}"),
                            None => format!("it has no {name} permission"),
                        };
                        return Refusal::NotGranted { name: name.clone(), asked: level.clone(), granted, owner, host };
                    }
                }
            }
        }
        Refusal::GitHub { owner: self.learn_owner(), host, message: message.to_owned() }
    }

    /// The asked repositories the installation does not reach, listed with its own token.
    fn inaccessible(&self, asked: &TokenScope) -> Result<Vec<String>, Error> {
        let token = self.cache.token()?;
        let reachable = self.cache.source().repositories_of(&token, DIAGNOSIS_PAGES)?;
        let owner = self.owner_name();
        let missing = describe(
            asked,
            &owner,
            |name| !reachable.iter().any(|(_, n)| n.eq_ignore_ascii_case(name)),
            |id| !reachable.iter().any(|(i, _)| *i == id),
        );
        // GitHub refused, so something is missing; if the list disagrees, name everything asked.
        Ok(if missing.is_empty() { describe(asked, &owner, |_| true, |_| true) } else { missing })
    }
}

/// `owner/name` and `id N` of the asked repositories that `keep` selects.
fn describe(
    asked: &TokenScope,
    owner: &str,
    keep_name: impl Fn(&str) -> bool,
    keep_id: impl Fn(u64) -> bool,
) -> Vec<String> {
    let names = asked.repositories.iter().filter(|n| keep_name(n)).map(|n| format!("{owner}/{n}"));
    let ids = asked.repository_ids.iter().filter(|i| keep_id(**i)).map(|i| format!("id {i}"));
    names.chain(ids).collect()
}

/// What of GitHub's answer reaches beyond `asked`, if anything (rule 6). GitHub adds
/// `metadata: read` to any token with repository permissions (metadata is mandatory for them),
/// so that one is not counted as wider.
fn wider_than_asked(asked: &TokenScope, token: &InstallationToken) -> Option<String> {
    if !asked.repositories.is_empty() || !asked.repository_ids.is_empty() {
        if token.repository_selection() != "selected" {
            return Some(format!("repository_selection {}", token.repository_selection()));
        }
        for (id, name) in token.repositories().unwrap_or_default() {
            let named = asked.repositories.iter().any(|n| n.eq_ignore_ascii_case(name));
            if !named && !asked.repository_ids.contains(id) {
                return Some(format!("repository {name}"));
            }
        }
    }
    if !asked.permissions.is_empty() {
        for (name, level) in token.permissions() {
            match asked.permissions.get(name) {
                Some(wanted) if rank(level) <= rank(wanted) => {}
                None if name == "metadata" && level == "read" => {}
                _ => return Some(format!("permission {name}:{level}")),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(repos: &[&str], perms: &[(&str, &str)]) -> plughost_sdk::TokenScope {
        plughost_sdk::TokenScope {
            repositories: repos.iter().map(|r| r.to_string()).collect(),
            permissions: perms.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn shape_errors_name_what_is_wrong() {
        let refusal = |s| read_request(&s).err().expect("refused").to_string();
        assert_eq!(
            refusal(scope(&["acme/widgets", "globex/tools"], &[])),
            "the repositories of one scope must have one owner, found acme (acme/widgets) and globex (globex/tools)"
        );
        assert_eq!(refusal(scope(&["widgets"], &[])), "repository \"widgets\" is not \"owner/name\"");
        assert_eq!(refusal(scope(&["a/b/c"], &[])), "repository \"a/b/c\" is not \"owner/name\"");
        assert_eq!(
            refusal(scope(&[], &[("contents", "all")])),
            "permission contents: level \"all\" is not read, write or admin"
        );
        let many: Vec<String> = (0..501).map(|i| format!("acme/r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(refusal(scope(&many, &[])), "a token reaches at most 500 repositories; the scope names 501");
        let same_owner = scope(&["acme/widgets", "ACME/docs"], &[]);
        let ok = read_request(&same_owner).expect("one owner, any case");
        assert_eq!(ok.names, ["widgets", "docs"]);
    }

    fn answer(selection: &str, repos: Option<Vec<(u64, &str)>>, perms: &[(&str, &str)]) -> InstallationToken {
        let perms = perms.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let repos = repos.map(|r| r.into_iter().map(|(i, n)| (i, n.to_owned())).collect());
        let now = std::time::SystemTime::now();
        InstallationToken::new("ghs_x".into(), now, Instant::now(), perms, selection.into()).with_repositories(repos)
    }

    #[test]
    fn an_answer_wider_than_asked_is_caught() {
        let asked = TokenScope {
            repositories: vec!["widgets".into()],
            repository_ids: vec![7],
            permissions: BTreeMap::from([("contents".into(), "read".into())]),
        };
        let exact =
            answer("selected", Some(vec![(1, "widgets"), (7, "docs")]), &[("contents", "read"), ("metadata", "read")]);
        assert_eq!(wider_than_asked(&asked, &exact), None, "metadata:read comes with any repository permission");
        for (token, what) in [
            (answer("all", None, &[("contents", "read")]), "repository_selection all"),
            (
                answer("selected", Some(vec![(1, "widgets"), (2, "gadgets")]), &[("contents", "read")]),
                "repository gadgets",
            ),
            (answer("selected", None, &[("contents", "write")]), "permission contents:write"),
            (answer("selected", None, &[("contents", "read"), ("issues", "read")]), "permission issues:read"),
            (answer("selected", None, &[("contents", "read"), ("metadata", "write")]), "permission metadata:write"),
        ] {
            assert_eq!(wider_than_asked(&asked, &token).as_deref(), Some(what));
        }
        // Nothing asked of a kind: GitHub's answer for it is the installation's, as asked.
        let unlimited = TokenScope::default();
        assert_eq!(wider_than_asked(&unlimited, &answer("all", None, &[("administration", "write")])), None);
    }
}
