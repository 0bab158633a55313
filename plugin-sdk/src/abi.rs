//! The stable ABI between the host and a plugin `.so`.
//!
//! Everything here crosses the library boundary, so every type derives `StableAbi` and its
//! layout is checked by the host when it loads a plugin. Vendors never touch this module: the
//! [`export_plugin!`](crate::export_plugin) macro and the host's loader do.
//!
//! # Versioning rules
//!
//! - The root module of every released minor is kept here, frozen, in its own module
//!   (`v1_0`, later `v1_1`, ...), with the same type name (`PluginMod`): type and package names
//!   are part of the checked layout. A plugin exports the root module of the SDK it was built
//!   with ([`current`]); the host reads the plugin's SDK version from the library header first and
//!   checks the plugin against the frozen layout of that minor, so an older plugin keeps loading
//!   into a newer host. A newer plugin loads into an older host because root modules are prefix
//!   types: the older host's layout is a prefix of the newer one.
//! - A new capability goes behind a new root-module field (after `last_prefix_field`) returning
//!   `ROption<...>`. A published `#[sabi_trait]`, and every type below it, never changes.
//! - The host reads a field added after 1.0 as optional (`missing_field(option)`): a plugin of an
//!   older minor lacks it, and a host of an older minor never reads it.
//!
//! # What each minor added
//!
//! - 1.1: [`v1_1`]: `token_audiences` (what a token provider's tokens are for, [`Audience`]) and
//!   `scoped_token_provider` ([`ScopedTokenProvider`]: tokens limited to a [`TokenScope`], and
//!   their revocation).

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, RResult, RStr, RString, RVec},
};

/// Identity of a plugin, readable before it is initialised.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    /// The plugin's unique name (`[plugins.<name>]` in the host config).
    pub name: RString,
    /// The plugin crate's own version.
    pub version: RString,
}

/// A credential and the moment it stops working.
#[repr(C)]
#[derive(StableAbi)]
pub struct Token {
    /// The credential itself. Never logged.
    pub secret: RString,
    /// Expiry, in seconds since the Unix epoch (UTC).
    pub expires_at: i64,
}

/// One environment variable.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct EnvVar {
    pub name: RString,
    pub value: RString,
}

/// Severity of a plugin's log event, as the host's `tracing` levels.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Hands out live credentials (capability `token_provider`).
#[sabi_trait]
pub trait TokenProvider: Send + Sync {
    /// The current token; never an expired one. `RErr` carries a message for the operator.
    fn token(&self) -> RResult<Token, RString>;
}

/// Edits the environment of a workspace being provisioned (capability `env_mutator`).
#[sabi_trait]
pub trait EnvMutator: Send + Sync {
    /// Takes the environment so far, returns it edited. On `RErr` the host discards the result.
    fn mutate_env(&self, workspace_id: RStr<'_>, env: RVec<EnvVar>) -> RResult<RVec<EnvVar>, RString>;
}

/// The host's log sink, given to the plugin at init. The host tags events with the plugin's name.
#[sabi_trait]
pub trait HostLog: Send + Sync {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
}

pub type TokenProviderBox = TokenProvider_TO<'static, RBox<()>>;
pub type EnvMutatorBox = EnvMutator_TO<'static, RBox<()>>;
pub type HostLogBox = HostLog_TO<'static, RBox<()>>;

/// What a token provider's tokens are for (1.1): a kind of service (`github`) at a host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    pub kind: RString,
    pub host: RString,
}

/// One permission of a [`TokenScope`] (1.1): GitHub's name and level (`contents`, `read`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub name: RString,
    pub level: RString,
}

/// What a scoped token is limited to (1.1). Empty lists mean "not limited by this".
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub workspace_id: RString,
    /// The audience host; empty: the provider's default.
    pub host: RString,
    /// Repositories by full name, `owner/name`.
    pub repositories: RVec<RString>,
    pub repository_ids: RVec<u64>,
    pub permissions: RVec<Permission>,
}

/// Why a scoped token was not made (1.1).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum ScopeError {
    /// The scope asks for what the provider cannot grant; the message names the repository or
    /// permission.
    Refused(RString),
    /// Minting failed, as `TokenProvider::token` fails.
    Failed(RString),
}

/// Hands out tokens limited to a scope, and revokes them (capability `scoped_token_provider`, 1.1).
#[sabi_trait]
pub trait ScopedTokenProvider: Send + Sync {
    fn scoped_token(&self, scope: &TokenScope) -> RResult<Token, ScopeError>;
    /// Revokes a token this provider handed out. `RErr` carries a message for the operator.
    fn revoke(&self, secret: RStr<'_>) -> RResult<(), RString>;
}

pub type ScopedTokenProviderBox = ScopedTokenProvider_TO<'static, RBox<()>>;

/// What the host passes to `init`.
#[repr(C)]
#[derive(StableAbi)]
pub struct InitArgs {
    /// The plugin's configuration as a TOML document (a table; empty when none is configured).
    pub config_toml: RString,
    /// Path of the file the operator dropped in, for messages.
    pub plugin_file: RString,
    /// Where the plugin's `tracing` events and panic reports go.
    pub host_log: HostLogBox,
    /// Events more verbose than this are dropped inside the plugin.
    pub max_log_level: LogLevel,
}

/// The root module of plughost-sdk 1.0. Frozen: never edit, only add `v1_N` beside it.
pub mod v1_0 {
    use super::*;
    use abi_stable::{
        declare_root_module_statics, library::RootModule, package_version_strings, sabi_types::VersionStrings,
        std_types::ROption,
    };

    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        /// Name and version; pure, callable before `init`.
        pub info: extern "C" fn() -> PluginInfo,
        /// Parses configuration and builds the plugin. May be called again on reload.
        pub init: extern "C" fn(InitArgs) -> RResult<(), RString>,
        /// The env mutator of the initialised plugin, if it declares one.
        pub env_mutator: extern "C" fn() -> ROption<EnvMutatorBox>,
        /// The token provider of the initialised plugin, if it declares one.
        #[sabi(last_prefix_field)]
        pub token_provider: extern "C" fn() -> ROption<TokenProviderBox>,
    }

    impl RootModule for PluginModRef {
        declare_root_module_statics! {PluginModRef}
        const BASE_NAME: &'static str = "plughost_plugin";
        const NAME: &'static str = "plughost plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}

/// The root module of plughost-sdk 1.1: 1.0's fields, then `token_audiences` and
/// `scoped_token_provider`. Frozen: never edit, only add `v1_N` beside it.
pub mod v1_1 {
    use super::*;
    use abi_stable::{
        declare_root_module_statics, library::RootModule, package_version_strings, sabi_types::VersionStrings,
        std_types::ROption,
    };

    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        /// Name and version; pure, callable before `init`.
        pub info: extern "C" fn() -> PluginInfo,
        /// Parses configuration and builds the plugin. May be called again on reload.
        pub init: extern "C" fn(InitArgs) -> RResult<(), RString>,
        /// The env mutator of the initialised plugin, if it declares one.
        pub env_mutator: extern "C" fn() -> ROption<EnvMutatorBox>,
        /// The token provider of the initialised plugin, if it declares one.
        #[sabi(last_prefix_field)]
        pub token_provider: extern "C" fn() -> ROption<TokenProviderBox>,
        /// What the initialised plugin's tokens are for (empty: it declares nothing).
        #[sabi(missing_field(option))]
        pub token_audiences: extern "C" fn() -> RVec<Audience>,
        /// The scoped token provider of the initialised plugin, if it declares one.
        #[sabi(missing_field(option))]
        pub scoped_token_provider: extern "C" fn() -> ROption<ScopedTokenProviderBox>,
    }

    impl RootModule for PluginModRef {
        declare_root_module_statics! {PluginModRef}
        const BASE_NAME: &'static str = "plughost_plugin";
        const NAME: &'static str = "plughost plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}

/// The root module this version of the SDK exports.
pub use v1_1 as current;
