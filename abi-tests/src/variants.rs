//! Copies of the SDK as other vendors would build against them, generated from the real SDK
//! source so they never drift from it:
//!
//! - `copy`: an independent copy at the same version, at another path (the scenario that broke
//!   the Go system: same interface, another copy of the package).
//! - `1.2`: what the next minor release would be: a new capability (`describer`) behind a new
//!   root module field, 1.0's and 1.1's root modules kept frozen beside it, and the host side
//!   picking the layout by the plugin's SDK version.
//! - `2.0`: a major bump.
//! - `mismatch`: the same version with a field type changed (`Token::expires_at` i64 -> u64).
//! - `released-1-0`: the released plughost-sdk 1.0.0, kept byte for byte in `sdk-releases/1.0.0`,
//!   as vendors' 1.0 plugins are built today; with a probe host built on it (a 1.0 host).
//! - `drift-*`: that release with one layout drift each (a field added, removed or reordered, an
//!   enum changed, a trait method's signature changed), for the line that names the drift.
//!
//! Each is a generated workspace (SDK copy + a plugin built on it; some also a probe host, a
//! minimal host built with that SDK). All build in ONE target directory: each SDK copy sits at a
//! path of its own inside its workspace (`sdk-<variant>`), which cargo hashes into the artifact
//! names, so copies with the same name and version do not overwrite each other.

use std::fs;
use std::path::{Path, PathBuf};

/// A textual edit of one SDK file. The anchor must occur exactly once: an SDK change that moves
/// it fails the fixture build loudly instead of producing a wrong variant.
struct Patch {
    file: &'static str,
    anchor: &'static str,
    replacement: &'static str,
}

/// Where a variant's SDK source comes from, relative to the workspace root.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `plugin-sdk/`, as it is now.
    Current,
    /// `sdk-releases/1.0.0/`, the released 1.0.0.
    Released1_0,
}

impl Source {
    fn dir(self) -> &'static str {
        match self {
            Source::Current => "plugin-sdk",
            Source::Released1_0 => "sdk-releases/1.0.0",
        }
    }
}

pub struct Variant {
    pub name: &'static str,
    pub source: Source,
    /// The SDK version written into the copy's `Cargo.toml` (the source's own for releases).
    pub sdk_version: &'static str,
    patches: &'static [Patch],
    with_describer: bool,
    /// Also build `probe-host-<name>`, a minimal host built with this SDK.
    pub with_probe_host: bool,
}

pub const COPY: Variant = Variant {
    name: "copy",
    source: Source::Current,
    sdk_version: "1.1.0",
    patches: &[],
    with_describer: false,
    with_probe_host: true,
};

pub const MAJOR_2: Variant = Variant {
    name: "major-2",
    source: Source::Current,
    sdk_version: "2.0.0",
    patches: &[],
    with_describer: false,
    with_probe_host: false,
};

pub const MINOR_1_2: Variant = Variant {
    name: "minor-1-2",
    source: Source::Current,
    sdk_version: "1.2.0",
    patches: V1_2_PATCHES,
    with_describer: true,
    with_probe_host: true,
};

pub const MISMATCH: Variant = Variant {
    name: "mismatch",
    source: Source::Current,
    sdk_version: "1.1.0",
    patches: &[
        Patch { file: "src/abi.rs", anchor: "pub expires_at: i64,", replacement: "pub expires_at: u64," },
        Patch {
            file: "src/export.rs",
            anchor: "abi::Token { secret: RString::from(secret), expires_at }",
            replacement: "abi::Token { secret: RString::from(secret), expires_at: expires_at.unsigned_abs() }",
        },
    ],
    with_describer: false,
    with_probe_host: false,
};

pub const RELEASED_1_0: Variant = released("released-1-0", &[], true);

/// The layout drifts, each from the released 1.0.0, with the line the host must print for it.
pub const DRIFTS: [(Variant, &str); 5] = [
    (
        released(
            "drift-added-field",
            &[
                Patch {
                    file: "src/abi.rs",
                    anchor: "    pub max_log_level: LogLevel,\n}",
                    replacement: "    pub max_log_level: LogLevel,\n    pub drifted_extra: u64,\n}",
                },
                Patch {
                    file: "src/export.rs",
                    anchor: "let abi::InitArgs { config_toml, plugin_file, host_log, max_log_level } = args;",
                    replacement: "let abi::InitArgs { config_toml, plugin_file, host_log, max_log_level, .. } = args;",
                },
            ],
            false,
        ),
        "InitArgs: size 96 → 104 bytes (field drifted_extra added)",
    ),
    (
        released(
            "drift-removed-field",
            &[
                Patch {
                    file: "src/abi.rs",
                    anchor: "    /// Path of the file the operator dropped in, for messages.\n    pub plugin_file: RString,\n",
                    replacement: "",
                },
                Patch {
                    file: "src/export.rs",
                    anchor: "let abi::InitArgs { config_toml, plugin_file, host_log, max_log_level } = args;",
                    replacement: "let abi::InitArgs { config_toml, host_log, max_log_level } = args;\n    let plugin_file = RString::new();",
                },
            ],
            false,
        ),
        "InitArgs: size 96 → 64 bytes (field plugin_file removed)",
    ),
    (
        released(
            "drift-reordered-field",
            &[Patch {
                file: "src/abi.rs",
                anchor: "    pub name: RString,\n    /// The plugin crate's own version.\n    pub version: RString,\n",
                replacement: "    pub version: RString,\n    pub name: RString,\n",
            }],
            false,
        ),
        "PluginInfo: fields reordered (name, version → version, name)",
    ),
    (
        released(
            "drift-enum",
            &[Patch {
                file: "src/abi.rs",
                anchor: "pub enum LogLevel {\n    Error = 1,",
                replacement: "pub enum LogLevel {\n    Fatal = 0,\n    Error = 1,",
            }],
            false,
        ),
        "LogLevel: variants changed (Error, Warn, Info, Debug, Trace → Fatal, Error, Warn, Info, Debug, Trace)",
    ),
    (
        released(
            "drift-trait-method",
            &[
                Patch {
                    file: "src/abi.rs",
                    anchor: "    fn token(&self) -> RResult<Token, RString>;",
                    replacement: "    fn token(&self, min_validity_secs: u32) -> RResult<Token, RString>;",
                },
                Patch {
                    file: "src/export.rs",
                    anchor: "    fn token(&self) -> RResult<abi::Token, RString> {",
                    replacement: "    fn token(&self, _min_validity_secs: u32) -> RResult<abi::Token, RString> {",
                },
            ],
            false,
        ),
        "TokenProvider::token: signature changed (fn(&self) -> RResult<Token, RString> → fn(&self, u32) -> RResult<Token, RString>)",
    ),
];

const fn released(name: &'static str, patches: &'static [Patch], with_probe_host: bool) -> Variant {
    Variant { name, source: Source::Released1_0, sdk_version: "1.0.0", patches, with_describer: false, with_probe_host }
}

const V1_2_PATCHES: &[Patch] = &[
    Patch {
        file: "src/abi.rs",
        anchor: "pub type HostLogBox = HostLog_TO<'static, RBox<()>>;",
        replacement: "pub type HostLogBox = HostLog_TO<'static, RBox<()>>;

/// Describes the plugin for operators (capability `describer`, new in 1.2).
#[sabi_trait]
pub trait Describer: Send + Sync {
    fn describe(&self) -> RString;
}

pub type DescriberBox = Describer_TO<'static, RBox<()>>;",
    },
    Patch {
        file: "src/abi.rs",
        anchor: "pub use v1_1 as current;",
        replacement: "pub use v1_2 as current;

/// The root module of plughost-sdk 1.2: 1.1's fields, then `describer`. Frozen.
pub mod v1_2 {
    use super::*;
    use abi_stable::{
        declare_root_module_statics, library::RootModule, package_version_strings,
        sabi_types::VersionStrings, std_types::ROption,
    };

    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        pub info: extern \"C\" fn() -> PluginInfo,
        pub init: extern \"C\" fn(InitArgs) -> RResult<(), RString>,
        pub env_mutator: extern \"C\" fn() -> ROption<EnvMutatorBox>,
        #[sabi(last_prefix_field)]
        pub token_provider: extern \"C\" fn() -> ROption<TokenProviderBox>,
        #[sabi(missing_field(option))]
        pub token_audiences: extern \"C\" fn() -> RVec<Audience>,
        #[sabi(missing_field(option))]
        pub scoped_token_provider: extern \"C\" fn() -> ROption<ScopedTokenProviderBox>,
        #[sabi(missing_field(option))]
        pub describer: extern \"C\" fn() -> ROption<DescriberBox>,
    }

    impl RootModule for PluginModRef {
        declare_root_module_statics! {PluginModRef}
        const BASE_NAME: &'static str = \"plughost_plugin\";
        const NAME: &'static str = \"plughost plugin\";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}",
    },
    Patch {
        file: "src/plugin.rs",
        anchor: "/// A credential and its expiry.",
        replacement: "/// Describes the plugin for operators (new in 1.2).
pub trait Describer: Send + Sync + 'static {
    fn describe(&self) -> String;
}

/// A credential and its expiry.",
    },
    Patch {
        file: "src/lib.rs",
        anchor: "pub use redact::without_value;",
        replacement: "pub use plugin::Describer;\npub use redact::without_value;",
    },
    Patch {
        file: "src/export.rs",
        anchor: "    scoped_token_provider: Option<MakeObject<abi::ScopedTokenProviderBox>>,\n}",
        replacement: "    scoped_token_provider: Option<MakeObject<abi::ScopedTokenProviderBox>>,\n    describer: Option<MakeObject<abi::DescriberBox>>,\n}",
    },
    Patch {
        file: "src/export.rs",
        anchor: "impl Capabilities {",
        replacement: "impl Capabilities {
    pub fn describer<T: crate::plugin::Describer>(mut self, plugin: Arc<T>) -> Self {
        self.describer = Some(Arc::new(move || {
            abi::Describer_TO::from_value(GuardedDescriber(Arc::clone(&plugin)), TD_Opaque)
        }));
        self
    }
",
    },
    Patch {
        file: "src/export.rs",
        anchor: "        scoped_token_provider,\n    })));",
        replacement: "        scoped_token_provider,\n        describer,\n    })));",
    },
    Patch {
        file: "src/export.rs",
        anchor: "struct GuardedEnvMutator<T>(",
        replacement: "extern \"C\" fn describer() -> ROption<abi::DescriberBox> {
    current_capabilities().and_then(|caps| caps.describer).map(|make| make()).into()
}

struct GuardedDescriber<T>(Arc<T>);

impl<T: crate::plugin::Describer> abi::Describer for GuardedDescriber<T> {
    fn describe(&self) -> RString {
        guarded(\"describe\", || Ok(self.0.describe())).unwrap_or_else(|err| err).into()
    }
}

struct GuardedEnvMutator<T>(",
    },
    Patch {
        file: "src/host.rs",
        anchor: "    V1_0(v1_0::PluginModRef),\n",
        replacement: "    V1_0(v1_0::PluginModRef),\n    V1_2(crate::abi::v1_2::PluginModRef),\n",
    },
    Patch {
        file: "src/host.rs",
        anchor: "            Module::V1_0(m) => (m.info())(),\n",
        replacement: "            Module::V1_0(m) => (m.info())(),\n            Module::V1_2(m) => (m.info())(),\n",
    },
    Patch {
        file: "src/host.rs",
        anchor: "                    audiences: Vec::new(),\n                    scoped_token_provider: None,\n",
        replacement: "                    audiences: Vec::new(),\n                    scoped_token_provider: None,\n                    describer: None,\n",
    },
    Patch {
        file: "src/host.rs",
        anchor: "                    scoped_token_provider: scoped.map(|inner| ScopedTokenProviderHandle { inner }),\n                })\n            }\n",
        replacement:
            "                    scoped_token_provider: scoped.map(|inner| ScopedTokenProviderHandle { inner }),
                    describer: None,
                })
            }
            Module::V1_2(m) => {
                if let RResult::RErr(message) = (m.init())(ffi_args) {
                    return Err(InitError { message: message.into_string() });
                }
                Ok(PluginInstance {
                    env_mutator: (m.env_mutator())().into_option().map(|inner| EnvMutatorHandle { inner }),
                    token_provider: (m.token_provider())().into_option().map(|inner| TokenProviderHandle { inner }),
                    audiences: Vec::new(),
                    scoped_token_provider: None,
                    describer: m.describer().and_then(|f| f().into_option()).map(|inner| DescriberHandle { inner }),
                })
            }
",
    },
    Patch {
        file: "src/host.rs",
        anchor: "pub struct PluginInstance {\n",
        replacement: "pub struct DescriberHandle {
    inner: crate::abi::DescriberBox,
}

impl DescriberHandle {
    pub fn describe(&self) -> String {
        self.inner.describe().into_string()
    }
}

pub struct PluginInstance {
    pub describer: Option<DescriberHandle>,
",
    },
    Patch {
        file: "src/host.rs",
        anchor: "    if sdk_version.minor >= 1 {\n",
        replacement: "    if sdk_version.minor >= 2 {\n        return Ok(Module::V1_2(init_as::<crate::abi::v1_2::PluginModRef>(header)?));\n    }\n    if sdk_version.minor >= 1 {\n",
    },
];

/// Paths of what a variant build produced.
pub struct Built {
    pub plugin: PathBuf,
    pub probe_host: Option<PathBuf>,
}

/// Writes the variant's workspace under `root`. Files already up to date are left alone, so
/// cargo rebuilds nothing on the next run.
pub fn generate(variant: &Variant, workspace: &Path, root: &Path) -> Result<(), String> {
    let sdk_dir = format!("sdk-{}", variant.name);
    let sdk = root.join(&sdk_dir);
    copy_dir(&workspace.join(variant.source.dir()), &sdk, &["target"])?;
    if variant.source == Source::Current {
        let manifest = sdk.join("Cargo.toml");
        let text = read(&manifest)?;
        let current = text
            .lines()
            .find_map(|line| line.strip_prefix("version = "))
            .ok_or("plugin-sdk/Cargo.toml has no version line")?
            .to_owned();
        let text = text.replacen(&format!("version = {current}"), &format!("version = \"{}\"", variant.sdk_version), 1);
        write(&manifest, &text)?;
    }
    for patch in variant.patches {
        let path = sdk.join(patch.file);
        let text = read(&path)?;
        let count = text.matches(patch.anchor).count();
        if count != 1 {
            return Err(format!(
                "variant {}: anchor {:?} occurs {count} times in {}; update abi-tests/src/variants.rs",
                variant.name, patch.anchor, patch.file
            ));
        }
        write(&path, &text.replacen(patch.anchor, patch.replacement, 1))?;
    }

    let mut members = vec![format!("\"{sdk_dir}\""), "\"plugin\"".to_owned()];
    if variant.with_probe_host {
        members.push("\"probe-host\"".to_owned());
    }
    write(&root.join("Cargo.toml"), &workspace_manifest(workspace, variant, &sdk_dir, &members.join(", "))?)?;
    // Same dependency versions as the main workspace, and no index lookups.
    if !root.join("Cargo.lock").exists() {
        fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).map_err(|e| format!("copy Cargo.lock: {e}"))?;
    }

    let plugin_name = format!("variant-{}", variant.name);
    write(
        &root.join("plugin/Cargo.toml"),
        &format!(
            "[package]\nname = \"{plugin_name}\"\nversion = \"0.1.0\"\nedition.workspace = true\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplughost-sdk.workspace = true\n"
        ),
    )?;
    let (describer_impl, describer_cap) = if variant.with_describer {
        (
            "impl plughost_sdk::Describer for Variant {\n    fn describe(&self) -> String {\n        \"a plugin using a 1.2 capability\".into()\n    }\n}\n",
            ", describer",
        )
    } else {
        ("", "")
    };
    write(
        &root.join("plugin/src/lib.rs"),
        &format!(
            "//! Generated by abi-tests: a plugin built with plughost-sdk {version} ({name}).\n\
             use std::collections::BTreeMap;\n\
             use std::time::{{Duration, SystemTime}};\n\
             use plughost_sdk::{{EnvMutator, Error, InitContext, Plugin, Token, TokenProvider}};\n\n\
             struct Variant;\n\n\
             impl Plugin for Variant {{\n    fn init(_ctx: InitContext) -> Result<Self, Error> {{\n        Ok(Variant)\n    }}\n}}\n\n\
             impl EnvMutator for Variant {{\n    fn mutate_env(&self, _ws: &str, env: &mut BTreeMap<String, String>) -> Result<(), Error> {{\n        \
             env.insert(\"BUILT_WITH_SDK\".into(), \"{version}\".into());\n        Ok(())\n    }}\n}}\n\n\
             impl TokenProvider for Variant {{\n    fn token(&self) -> Result<Token, Error> {{\n        \
             Ok(Token::new(\"token-from-{name}\", SystemTime::now() + Duration::from_secs(3600)))\n    }}\n}}\n\n\
             {describer_impl}\n\
             plughost_sdk::export_plugin! {{ name: \"{plugin_name}\", plugin: Variant, provides: [env_mutator, token_provider{describer_cap}] }}\n",
            version = variant.sdk_version,
            name = variant.name,
        ),
    )?;

    if variant.with_probe_host {
        write(
            &root.join("probe-host/Cargo.toml"),
            &format!(
                "[package]\nname = \"probe-host-{}\"\nversion = \"0.1.0\"\nedition.workspace = true\npublish = false\n\n\
                 [dependencies]\nplughost-sdk = {{ workspace = true, features = [\"host\"] }}\n",
                variant.name
            ),
        )?;
        let describe =
            if variant.with_describer { "instance.describer.as_ref().map(|d| d.describe())" } else { "None::<String>" };
        write(&root.join("probe-host/src/main.rs"), &PROBE_HOST.replacen("DESCRIBE", describe, 1))?;
    }
    Ok(())
}

/// A minimal host built with the variant SDK: loads each file given, exercises every capability
/// and prints one line per file.
const PROBE_HOST: &str = r#"//! Generated by abi-tests: a host built with another SDK version, loading plugins.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use plughost_sdk::abi::LogLevel;
use plughost_sdk::host::{InitArgs, PluginLibrary};

fn main() {
    for path in std::env::args().skip(1) {
        let library = match PluginLibrary::open(Path::new(&path)) {
            Ok(library) => library,
            Err(err) => {
                println!("FAIL {path}: {err}");
                continue;
            }
        };
        let info = library.info();
        let args = InitArgs {
            config_toml: String::new(),
            plugin_file: path.clone(),
            log: Arc::new(|_, _, _| {}),
            max_log_level: LogLevel::Warn,
        };
        match library.init(args) {
            Err(err) => println!("FAIL {path}: {err}"),
            Ok(instance) => {
                let env = instance.env_mutator.as_ref().map(|m| m.mutate_env("ws-1", &BTreeMap::new()));
                let token_live = instance
                    .token_provider
                    .as_ref()
                    .map(|t| t.token().map(|t| t.expires_at > SystemTime::now()));
                let describe = DESCRIBE;
                println!(
                    "ok {path}: name={} sdk={} env={:?} token_live={:?} describe={:?}",
                    info.name,
                    library.sdk_version(),
                    env,
                    token_live,
                    describe
                );
            }
        }
    }
}
"#;

fn workspace_manifest(workspace: &Path, variant: &Variant, sdk_dir: &str, members: &str) -> Result<String, String> {
    let main: toml::Table = read(&workspace.join("Cargo.toml"))?.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
    let ws = main.get("workspace").and_then(|w| w.as_table()).ok_or("no [workspace] in Cargo.toml")?;
    let mut deps = ws.get("dependencies").and_then(|d| d.as_table()).cloned().ok_or("no workspace dependencies")?;
    let mut sdk = toml::Table::new();
    sdk.insert("path".into(), sdk_dir.into());
    sdk.insert("version".into(), format!("={}", variant.sdk_version).into());
    deps.insert("plughost-sdk".into(), sdk.into());
    let mut out = toml::Table::new();
    let mut new_ws = toml::Table::new();
    new_ws.insert("resolver".into(), "3".into());
    new_ws.insert("members".into(), toml::Value::Array(Vec::new()));
    for key in ["package", "lints"] {
        if let Some(value) = ws.get(key) {
            new_ws.insert(key.into(), value.clone());
        }
    }
    new_ws.insert("dependencies".into(), deps.into());
    out.insert("workspace".into(), new_ws.into());
    let text = toml::to_string(&out).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Generated by abi-tests: SDK variant {}\n{}",
        variant.name,
        text.replacen("members = []", &format!("members = [{members}]"), 1)
    ))
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&entry.path(), &target, skip)?;
        } else {
            write(&target, &read(&entry.path())?)?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if fs::read_to_string(path).is_ok_and(|existing| existing == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}
