//! The plugin side of the ABI: the export macro and the glue it expands to.
//!
//! The macro emits only a trait impl and one exported static; everything else is generic code
//! here, so vendors need no `abi_stable` dependency (its own macros emit `::abi_stable` paths).
//! Every call that enters the plugin runs inside `catch_unwind`: a panic crossing the boundary
//! would make abi_stable exit the host process.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};

use crate::abi::{self, current::PluginMod, current::PluginModRef};
use crate::plugin::{EnvMutator, Error, InitContext, Plugin, ScopeError, ScopedTokenProvider, TokenProvider};

/// Exports a type implementing [`Plugin`] as a plughost plugin (a complete, compiled example
/// is in the crate documentation).
///
/// ```text
/// plughost_sdk::export_plugin! {
///     plugin: StaticEnv,
///     provides: [env_mutator],   // any of: env_mutator, token_provider, scoped_token_provider
/// }
/// ```
///
/// `name` defaults to the crate's package name and `version` to its package version. A name
/// must match `^[a-z0-9][a-z0-9._-]{0,63}$`, or the host refuses the plugin.
/// Each capability listed must be implemented by the plugin type ([`EnvMutator`],
/// [`TokenProvider`], [`ScopedTokenProvider`]); the compiler checks it. `scoped_token_provider`
/// implies `token_provider` (every scoped provider also serves unscoped tokens).
#[macro_export]
macro_rules! export_plugin {
    (plugin: $plugin:ty, provides: [$($cap:ident),* $(,)?] $(,)?) => {
        $crate::export_plugin! {
            name: env!("CARGO_PKG_NAME"), plugin: $plugin, provides: [$($cap),*]
        }
    };
    (name: $name:expr, plugin: $plugin:ty, provides: [$($cap:ident),* $(,)?] $(,)?) => {
        impl $crate::__private::Exported for $plugin {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            fn capabilities(
                plugin: &::std::sync::Arc<Self>,
            ) -> $crate::__private::Capabilities {
                $crate::__private::Capabilities::default()
                    $(.$cap(::std::clone::Clone::clone(plugin)))*
            }
        }

        /// The abi_stable library header: the one symbol the host looks up.
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static PLUGHOST_PLUGIN_HEADER: $crate::__private::LibHeader =
            $crate::__private::lib_header::<$plugin>();
    };
}

/// Implemented by [`export_plugin!`]; not for direct use.
#[doc(hidden)]
pub trait Exported: Plugin {
    const NAME: &'static str;
    const VERSION: &'static str;
    fn capabilities(plugin: &Arc<Self>) -> Capabilities;
}

/// Makes the ABI object of one capability of the initialised plugin.
type MakeObject<O> = Arc<dyn Fn() -> O + Send + Sync>;

/// The capabilities an initialised plugin declared, as constructors of their ABI objects.
/// The objects wrap the plugin's concrete type, so a call through the vtable reaches the
/// vendor's code with no second dynamic dispatch.
#[doc(hidden)]
#[derive(Default, Clone)]
pub struct Capabilities {
    env_mutator: Option<MakeObject<abi::EnvMutatorBox>>,
    token_provider: Option<MakeObject<abi::TokenProviderBox>>,
    /// What the token provider declared, read once at init (SDK 1.1).
    audiences: Vec<abi::Audience>,
    scoped_token_provider: Option<MakeObject<abi::ScopedTokenProviderBox>>,
}

impl Capabilities {
    pub fn env_mutator<T: EnvMutator>(mut self, plugin: Arc<T>) -> Self {
        self.env_mutator =
            Some(Arc::new(move || abi::EnvMutator_TO::from_value(GuardedEnvMutator(Arc::clone(&plugin)), TD_Opaque)));
        self
    }

    pub fn token_provider<T: TokenProvider>(mut self, plugin: Arc<T>) -> Self {
        self.audiences = plugin
            .audiences()
            .into_iter()
            .map(|audience| abi::Audience { kind: audience.kind.into(), host: audience.host.into() })
            .collect();
        self.token_provider = Some(Arc::new(move || {
            abi::TokenProvider_TO::from_value(GuardedTokenProvider(Arc::clone(&plugin)), TD_Opaque)
        }));
        self
    }

    /// Also provides the plugin's unscoped tokens: the trait extends [`TokenProvider`].
    pub fn scoped_token_provider<T: ScopedTokenProvider>(mut self, plugin: Arc<T>) -> Self {
        if self.token_provider.is_none() {
            self = self.token_provider(Arc::clone(&plugin));
        }
        self.scoped_token_provider = Some(Arc::new(move || {
            abi::ScopedTokenProvider_TO::from_value(GuardedScopedTokenProvider(Arc::clone(&plugin)), TD_Opaque)
        }));
        self
    }
}

/// The library header of plugin type `P`, as `#[export_root_module]` would build it.
#[doc(hidden)]
pub const fn lib_header<P: Exported>() -> LibHeader {
    // SAFETY: `construct::<P>` returns (through `__call_root_module_loader`) the prefix
    // reference of `PluginModRef`, the very root module type given here.
    unsafe { LibHeader::from_constructor::<PluginModRef>(construct::<P>, CheckTypeLayout::Yes) }
}

extern "C" fn construct<P: Exported>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(root_module::<P>)
}

fn root_module<P: Exported>() -> PluginModRef {
    use abi_stable::prefix_type::WithMetadata;
    // Built once per library (abi_stable caches the root module in the header).
    let module: &'static WithMetadata<PluginMod> = Box::leak(Box::new(WithMetadata::new(PluginMod {
        info: info::<P>,
        init: init::<P>,
        env_mutator,
        token_provider,
        token_audiences,
        scoped_token_provider,
    })));
    PluginModRef(module.static_as_prefix())
}

/// The capabilities of the plugin's current instance. Replaced when the host re-initialises
/// the library (a reload with a new configuration); objects handed out earlier stay valid.
static INSTANCE: RwLock<Option<Capabilities>> = RwLock::new(None);

extern "C" fn info<P: Exported>() -> abi::PluginInfo {
    abi::PluginInfo { name: RString::from(P::NAME), version: RString::from(P::VERSION) }
}

extern "C" fn init<P: Exported>(args: abi::InitArgs) -> RResult<(), RString> {
    let abi::InitArgs { config_toml, plugin_file, host_log, max_log_level } = args;
    crate::log_bridge::install(host_log, max_log_level);
    let ctx =
        InitContext { config_toml: config_toml.into_string(), plugin_file: PathBuf::from(plugin_file.into_string()) };
    let built = guarded("init", || {
        let plugin = Arc::new(P::init(ctx)?);
        Ok(P::capabilities(&plugin))
    });
    match built {
        Ok(caps) => {
            *INSTANCE.write().unwrap_or_else(PoisonError::into_inner) = Some(caps);
            RResult::ROk(())
        }
        Err(message) => RResult::RErr(RString::from(message)),
    }
}

fn current_capabilities() -> Option<Capabilities> {
    INSTANCE.read().unwrap_or_else(PoisonError::into_inner).clone()
}

extern "C" fn env_mutator() -> ROption<abi::EnvMutatorBox> {
    current_capabilities().and_then(|caps| caps.env_mutator).map(|make| make()).into()
}

extern "C" fn token_provider() -> ROption<abi::TokenProviderBox> {
    current_capabilities().and_then(|caps| caps.token_provider).map(|make| make()).into()
}

extern "C" fn token_audiences() -> RVec<abi::Audience> {
    current_capabilities().map(|caps| caps.audiences.into_iter().collect()).unwrap_or_default()
}

extern "C" fn scoped_token_provider() -> ROption<abi::ScopedTokenProviderBox> {
    current_capabilities().and_then(|caps| caps.scoped_token_provider).map(|make| make()).into()
}

struct GuardedEnvMutator<T>(Arc<T>);

impl<T: EnvMutator> abi::EnvMutator for GuardedEnvMutator<T> {
    fn mutate_env(&self, workspace_id: RStr<'_>, env: RVec<abi::EnvVar>) -> RResult<RVec<abi::EnvVar>, RString> {
        guarded("mutate_env", || {
            let mut map: BTreeMap<String, String> =
                env.into_iter().map(|var| (var.name.into_string(), var.value.into_string())).collect();
            self.0.mutate_env(workspace_id.as_str(), &mut map)?;
            Ok(map.into_iter().map(|(name, value)| abi::EnvVar { name: name.into(), value: value.into() }).collect())
        })
        .map_err(RString::from)
        .into()
    }
}

struct GuardedTokenProvider<T>(Arc<T>);

impl<T: TokenProvider> abi::TokenProvider for GuardedTokenProvider<T> {
    fn token(&self) -> RResult<abi::Token, RString> {
        guarded("token", || Ok(abi_token(self.0.token()?))).map_err(RString::from).into()
    }
}

struct GuardedScopedTokenProvider<T>(Arc<T>);

impl<T: ScopedTokenProvider> abi::ScopedTokenProvider for GuardedScopedTokenProvider<T> {
    fn scoped_token(&self, scope: &abi::TokenScope) -> RResult<abi::Token, abi::ScopeError> {
        let scope = crate::plugin::TokenScope {
            workspace_id: scope.workspace_id.to_string(),
            host: scope.host.to_string(),
            repositories: scope.repositories.iter().map(|r| r.to_string()).collect(),
            repository_ids: scope.repository_ids.to_vec(),
            permissions: scope.permissions.iter().map(|p| (p.name.to_string(), p.level.to_string())).collect(),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| self.0.scoped_token(&scope)));
        match outcome {
            Ok(Ok(token)) => RResult::ROk(abi_token(token)),
            Ok(Err(ScopeError::Refused(why))) => RResult::RErr(abi::ScopeError::Refused(why.into())),
            Ok(Err(ScopeError::Failed(err))) => RResult::RErr(abi::ScopeError::Failed(err.into_message().into())),
            Err(payload) => RResult::RErr(abi::ScopeError::Failed(
                format!("scoped_token panicked: {}", panic_message(payload.as_ref())).into(),
            )),
        }
    }

    fn revoke(&self, secret: RStr<'_>) -> RResult<(), RString> {
        let secret = crate::plugin::Secret::new(secret.as_str());
        guarded("revoke", || self.0.revoke(&secret)).map_err(RString::from).into()
    }
}

/// A vendor's token as it crosses the boundary. Moves the vendor's buffer: no copy of the
/// secret on the hot path.
fn abi_token(token: crate::plugin::Token) -> abi::Token {
    let (secret, expires_at) = token.into_parts();
    abi::Token { secret: RString::from(secret), expires_at }
}

/// Runs a vendor entry point, turning a panic into an error carrying the panic message.
fn guarded<T>(entry: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.into_message()),
        Err(payload) => Err(format!("{entry} panicked: {}", panic_message(payload.as_ref()))),
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_is_abi_stables_root_module_loader() {
        // The macro spells the symbol as a literal (attributes take no constants): keep it in sync.
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }
}
