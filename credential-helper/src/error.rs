//! The one error type the binary reports; each family keeps its own enum.

use std::io;

use crate::config::ConfigError;
use crate::refresher::RefreshError;
use crate::resolve::NoCredential;

/// Why a subcommand failed. Every variant's message is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable is set but unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Neither plughost nor a fallback gave a credential.
    #[error(transparent)]
    NoCredential(#[from] NoCredential),
    /// The refresher could not run (or, with `--once`, a host failed).
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// Talking to git over stdin/stdout failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// E.g. "read git's request".
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `gh-token` without `--host` and no configured host.
    #[error("PLUGHOST_CREDENTIAL_HOSTS lists no host")]
    NoHosts,
}
