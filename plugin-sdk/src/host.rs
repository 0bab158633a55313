//! The host side of the ABI (feature `host`): open a plugin library, check it against the frozen
//! layout of the SDK minor it was built with, initialise it, and call it through safe handles.
//!
//! This lives in the SDK, beside the frozen layouts, because picking the layout is part of the
//! ABI contract: a host built with SDK 1.N knows the root modules of 1.0 through 1.N.
//!
//! Every error here is one line an operator can act on; the full abi_stable layout report is
//! kept in [`OpenError::LayoutMismatch::report`] for debug logs.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibHeader, LibraryError, RootModule, lib_header_from_path},
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString},
};

use crate::abi::{self, LogLevel, v1_0, v1_1};

mod drift;
pub use drift::summarize;

/// The symbol every plugin exports: abi_stable's root-module loader.
pub const ENTRY_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The SDK version this host was built with.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a library could not be opened as a plugin. Each variant displays as one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The dynamic loader refused the file (not ELF, truncated, missing dependencies, ...).
    NotLoadable { reason: String },
    /// A shared library, but without abi_stable's root-module symbol.
    NotAPlugin,
    /// Built with an abi_stable release whose header this host cannot read.
    IncompatibleAbiStable { reason: String },
    /// The plugin's SDK version string is not semver.
    BadSdkVersion { found: String },
    /// Built with another major version of the SDK.
    SdkMajor { found: semver::Version },
    /// The plugin exports no type layout, so it cannot be checked.
    NoLayout,
    /// The layout of a type crossing the boundary differs from this host's.
    LayoutMismatch { summary: String, report: String },
    /// The root-module constructor failed or panicked.
    RootModule { reason: String },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotLoadable { reason } => write!(f, "not a loadable shared library: {reason}"),
            OpenError::NotAPlugin => f.write_str("not a plughost plugin: entry symbol missing"),
            OpenError::IncompatibleAbiStable { reason } => {
                write!(f, "built with an incompatible abi_stable: {reason}")
            }
            OpenError::BadSdkVersion { found } => {
                write!(f, "plugin reports an invalid plughost-sdk version {found:?}")
            }
            OpenError::SdkMajor { found } => {
                let host = semver::Version::parse(SDK_VERSION).map(|v| v.major).unwrap_or(1);
                write!(f, "built with plughost-sdk {found}; this host loads {host}.x")
            }
            OpenError::NoLayout => f.write_str("plugin exports no type layout; refusing to load it unchecked"),
            OpenError::LayoutMismatch { summary, .. } => write!(f, "ABI mismatch at {summary}"),
            OpenError::RootModule { reason } => write!(f, "plugin root module failed: {reason}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// A plugin library, opened and checked, not yet initialised.
pub struct PluginLibrary {
    sdk_version: semver::Version,
    module: Module,
}

/// The root module, in the frozen layout matching the plugin's SDK minor.
enum Module {
    V1_0(v1_0::PluginModRef),
    V1_1(v1_1::PluginModRef),
}

impl PluginLibrary {
    /// Opens `path` with the dynamic loader and checks the plugin's SDK version and layout.
    ///
    /// The library stays mapped for the life of the process whatever the outcome (abi_stable
    /// never unloads), and its static initialisers have run: callers should vet files first.
    /// Every symbol it uses is bound here ([`bind_now`]): one that no library provides refuses
    /// the file.
    pub fn open(path: &Path) -> Result<PluginLibrary, OpenError> {
        bind_now(path)?;
        let header = lib_header_from_path(path).map_err(|err| match err {
            LibraryError::OpenError { err, .. } => OpenError::NotLoadable { reason: err.to_string() },
            LibraryError::GetSymbolError { .. } => OpenError::NotAPlugin,
            LibraryError::InvalidAbiHeader(header) => {
                OpenError::IncompatibleAbiStable { reason: format!("{header:?}") }
            }
            other => OpenError::IncompatibleAbiStable { reason: first_line(&other.to_string()) },
        })?;
        let found = header.version_strings().version.as_str().to_owned();
        let sdk_version =
            semver::Version::parse(&found).map_err(|_| OpenError::BadSdkVersion { found: found.clone() })?;
        let host_major = semver::Version::parse(SDK_VERSION).map(|v| v.major).unwrap_or(1);
        if sdk_version.major != host_major {
            return Err(OpenError::SdkMajor { found: sdk_version });
        }
        let module = select_layout(header, &sdk_version)?;
        Ok(PluginLibrary { sdk_version, module })
    }

    /// The plughost-sdk version the plugin was built with.
    pub fn sdk_version(&self) -> &semver::Version {
        &self.sdk_version
    }

    /// Name and version, as the plugin declares them.
    pub fn info(&self) -> PluginInfo {
        let info = match &self.module {
            Module::V1_0(m) => (m.info())(),
            Module::V1_1(m) => (m.info())(),
        };
        PluginInfo { name: info.name.into_string(), version: info.version.into_string() }
    }

    /// Initialises the plugin with its configuration (a TOML document) and a log sink.
    pub fn init(&self, args: InitArgs) -> Result<PluginInstance, InitError> {
        let ffi_args = abi::InitArgs {
            config_toml: RString::from(args.config_toml),
            plugin_file: RString::from(args.plugin_file),
            host_log: abi::HostLog_TO::from_value(HostLogAdapter(args.log), TD_Opaque),
            max_log_level: args.max_log_level,
        };
        match &self.module {
            Module::V1_0(m) => {
                if let RResult::RErr(message) = (m.init())(ffi_args) {
                    return Err(InitError { message: message.into_string() });
                }
                Ok(PluginInstance {
                    env_mutator: (m.env_mutator())().into_option().map(|inner| EnvMutatorHandle { inner }),
                    token_provider: (m.token_provider())().into_option().map(|inner| TokenProviderHandle { inner }),
                    audiences: Vec::new(),
                    scoped_token_provider: None,
                })
            }
            Module::V1_1(m) => {
                if let RResult::RErr(message) = (m.init())(ffi_args) {
                    return Err(InitError { message: message.into_string() });
                }
                // Optional fields: a plugin of a later minor built without them cannot exist, but
                // reading them as optional costs nothing and keeps the rule in one shape.
                let audiences = m.token_audiences().map(|f| f()).unwrap_or_default();
                let scoped = m.scoped_token_provider().and_then(|f| f().into_option());
                Ok(PluginInstance {
                    env_mutator: (m.env_mutator())().into_option().map(|inner| EnvMutatorHandle { inner }),
                    token_provider: (m.token_provider())().into_option().map(|inner| TokenProviderHandle { inner }),
                    audiences: audiences
                        .into_iter()
                        .map(|a| crate::Audience { kind: a.kind.into_string(), host: a.host.into_string() })
                        .collect(),
                    scoped_token_provider: scoped.map(|inner| ScopedTokenProviderHandle { inner }),
                })
            }
        }
    }
}

/// Opens `path` with `RTLD_NOW | RTLD_LOCAL` and keeps it open for the life of the process.
///
/// abi_stable opens plugins with `RTLD_LAZY`: a library bound lazily that uses a symbol no
/// library provides would load, and the dynamic loader would kill the process at its first call
/// of it. Bound now, the open fails instead, with the loader's one line (`...: undefined
/// symbol: ...`), before the library's static initialisers run. abi_stable's own open, which
/// follows, gets this library (dlopen deduplicates by path), already bound.
fn bind_now(path: &Path) -> Result<(), OpenError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: opening a library runs its static initialisers, as abi_stable's open right after
    // would; callers vet the file first (the host opens new files in a worker process first).
    // The handle is never closed, so nothing the library hands out can outlive its code.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|err| OpenError::NotLoadable { reason: first_line(&err.to_string()) })?;
    let _never_closed = library.into_raw();
    Ok(())
}

/// Picks the frozen root-module layout for the plugin's SDK minor and checks the plugin against it.
///
/// A plugin newer than this host is checked against the newest layout the host knows: its root
/// module extends that one as a prefix type.
fn select_layout(header: &'static LibHeader, sdk_version: &semver::Version) -> Result<Module, OpenError> {
    if sdk_version.minor >= 1 {
        Ok(Module::V1_1(init_as::<v1_1::PluginModRef>(header)?))
    } else {
        Ok(Module::V1_0(init_as::<v1_0::PluginModRef>(header)?))
    }
}

/// Checks `header` against the layout `M` and returns its root module.
fn init_as<M: RootModule + StableAbi>(header: &'static LibHeader) -> Result<M, OpenError> {
    let Some(found) = header.layout() else { return Err(OpenError::NoLayout) };
    // Checked here first, rather than left to `init_root_module`, for the structured errors
    // that make the one-line summary; abi_stable's own error is only a formatted report.
    check_layout_compatibility(M::LAYOUT, found)
        .map_err(|errors| OpenError::LayoutMismatch { summary: summarize(&errors), report: errors.to_string() })?;
    header.init_root_module::<M>().map_err(|err| match err {
        LibraryError::AbiInstability(report) => {
            OpenError::LayoutMismatch { summary: "root module".to_owned(), report: report.to_string() }
        }
        other => OpenError::RootModule { reason: first_line(&other.to_string()) },
    })
}

fn first_line(s: &str) -> String {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_owned()
}

/// Receives a plugin's log events: (level, target, message). Must not panic.
pub type LogSink = Arc<dyn Fn(LogLevel, &str, &str) + Send + Sync>;

/// What the host gives a plugin at init.
pub struct InitArgs {
    pub config_toml: String,
    pub plugin_file: String,
    pub log: LogSink,
    pub max_log_level: LogLevel,
}

struct HostLogAdapter(LogSink);

impl abi::HostLog for HostLogAdapter {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        // A panic unwinding back into the plugin would abort the process.
        let _ = catch_unwind(AssertUnwindSafe(|| (self.0)(level, target.as_str(), message.as_str())));
    }
}

/// The plugin's declared identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
}

/// `init` failed: the plugin's own message (a panic in init says "init panicked: ...").
#[derive(Debug, Clone)]
pub struct InitError {
    pub message: String,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "init failed: {}", self.message)
    }
}

impl std::error::Error for InitError {}

/// An initialised plugin's capabilities.
pub struct PluginInstance {
    pub env_mutator: Option<EnvMutatorHandle>,
    pub token_provider: Option<TokenProviderHandle>,
    /// What its tokens are for (SDK 1.1; empty for 1.0 plugins and providers declaring nothing).
    pub audiences: Vec<crate::Audience>,
    /// SDK 1.1: tokens limited to a scope, and revocation.
    pub scoped_token_provider: Option<ScopedTokenProviderHandle>,
}

/// Calls a plugin's env mutator.
pub struct EnvMutatorHandle {
    inner: abi::EnvMutatorBox,
}

impl EnvMutatorHandle {
    /// Runs the mutator on a copy of `env`; on error `env` is untouched.
    pub fn mutate_env(
        &self,
        workspace_id: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let vars = env
            .iter()
            .map(|(name, value)| abi::EnvVar { name: name.as_str().into(), value: value.as_str().into() })
            .collect();
        match self.inner.mutate_env(RStr::from(workspace_id), vars) {
            RResult::ROk(vars) => {
                Ok(vars.into_iter().map(|var| (var.name.into_string(), var.value.into_string())).collect())
            }
            RResult::RErr(message) => Err(message.into_string()),
        }
    }
}

/// Calls a plugin's token provider.
pub struct TokenProviderHandle {
    inner: abi::TokenProviderBox,
}

/// A token as the host receives it. `Debug` never shows the secret.
pub struct HostToken {
    pub secret: HostSecret,
    pub expires_at: SystemTime,
}

/// The secret as the plugin handed it over (its buffer, not a copy). Cannot be printed.
pub struct HostSecret(RString);

impl HostSecret {
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostSecret([REDACTED])")
    }
}

impl fmt::Debug for HostToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostToken").field("secret", &"[REDACTED]").field("expires_at", &self.expires_at).finish()
    }
}

impl TokenProviderHandle {
    pub fn token(&self) -> Result<HostToken, String> {
        match self.inner.token() {
            RResult::ROk(token) => Ok(host_token(token)),
            RResult::RErr(message) => Err(message.into_string()),
        }
    }
}

fn host_token(token: abi::Token) -> HostToken {
    let expires_at = if token.expires_at >= 0 {
        UNIX_EPOCH + Duration::from_secs(token.expires_at.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    HostToken { secret: HostSecret(token.secret), expires_at }
}

/// Calls a plugin's scoped token provider (SDK 1.1).
pub struct ScopedTokenProviderHandle {
    inner: abi::ScopedTokenProviderBox,
}

/// Why a scoped token was not made, as the plugin said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostScopeError {
    /// The scope cannot be granted; the message names the repository or permission.
    Refused(String),
    /// Minting failed (a caught panic reads `scoped_token panicked: ...`).
    Failed(String),
}

impl ScopedTokenProviderHandle {
    /// A token limited to `scope`.
    pub fn scoped_token(&self, scope: &crate::TokenScope) -> Result<HostToken, HostScopeError> {
        let scope = abi::TokenScope {
            workspace_id: scope.workspace_id.as_str().into(),
            host: scope.host.as_str().into(),
            repositories: scope.repositories.iter().map(|r| RString::from(r.as_str())).collect(),
            repository_ids: scope.repository_ids.iter().copied().collect(),
            permissions: scope
                .permissions
                .iter()
                .map(|(name, level)| abi::Permission { name: name.as_str().into(), level: level.as_str().into() })
                .collect(),
        };
        match self.inner.scoped_token(&scope) {
            RResult::ROk(token) => Ok(host_token(token)),
            RResult::RErr(abi::ScopeError::Refused(why)) => Err(HostScopeError::Refused(why.into_string())),
            RResult::RErr(abi::ScopeError::Failed(why)) => Err(HostScopeError::Failed(why.into_string())),
        }
    }

    /// Revokes a token the provider handed out.
    pub fn revoke(&self, secret: &str) -> Result<(), String> {
        match self.inner.revoke(RStr::from(secret)) {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(message) => Err(message.into_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_symbol_is_abi_stables_root_module_loader() {
        assert_eq!(super::ENTRY_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
