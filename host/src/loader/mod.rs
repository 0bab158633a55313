//! Finds, vets and loads the plugin files of a directory.
//!
//! For each shared library in the plugin directory, in file-name order (the chain order, like
//! `conf.d`): open it once and check that descriptor (a regular file, owner, mode: [`crate::trust`]),
//! read it from there within `max_plugin_bytes`, check it is an ELF plugin ([`vet`]), copy it into
//! the content-addressed cache, or check the copy already there against those bytes ([`cache`]),
//! open the copy through the SDK's versioned layouts, refuse a name already taken, and initialise
//! it with its configuration. A file that fails any step is refused with one line naming the
//! cause; the others load regardless.
//!
//! Where the plugin's code runs is the [`crate::isolation`] policy's choice, by plugin name:
//! - `process`: opened and initialised in a worker process, which then keeps serving it;
//! - `in-process`: a file whose content hash this process has not loaded before is first
//!   opened and initialised in a short-lived worker (the probe), so a crashing static
//!   initialiser or `init` refuses the file instead of killing the host; then it is mapped here.
//!
//! Until the library is open its name is unknown, so a file never seen before is always opened
//! in a worker first; the name then picks the mode.

mod cache;
mod signature;
pub(crate) mod vet;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use plughost_sdk::Audience;
use plughost_sdk::abi::LogLevel;
use plughost_sdk::host::{
    EnvMutatorHandle, InitArgs, InitError, LogSink, OpenError, PluginLibrary, ScopedTokenProviderHandle,
    TokenProviderHandle,
};

use crate::isolation::process::{self, InitMessage, StartError, WorkerSpec};
use crate::isolation::{self, Isolation, Mode, Supervisor};
use crate::settings::MAX_PLUGIN_CONFIG_BYTES;
use crate::trust::{self, CheckedFile, Limit, Subject, TrustError};

pub use cache::{CACHE_DIR, sha256_hex};
pub use signature::{KeyId, SignatureError, Signer, TrustedKey, TrustedKeys, signature_path};

/// Where to find plugins and what to give them.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub plugin_dir: PathBuf,
    /// The content-addressed copies live in `<state_dir>/plugin-cache`.
    pub state_dir: PathBuf,
    /// `[plugins.<name>]` tables of the host config file.
    pub plugin_configs: BTreeMap<String, toml::Table>,
    /// Plugin events more verbose than this are dropped inside the plugin.
    pub max_log_level: LogLevel,
    /// How long a plugin's `init` may run before the plugin is refused.
    pub init_timeout: Duration,
    /// Which plugins run in worker processes, and their limits.
    pub isolation: Isolation,
    /// Serve the plugins, or only load them in a worker to describe them (`plugins check`).
    pub purpose: Purpose,
    /// A plugin file larger than this is refused without being read.
    pub max_plugin_bytes: u64,
    /// Keys a plugin must be signed with (`<file>.minisig`); empty: signatures are not required.
    pub trusted_keys: TrustedKeys,
    /// The token provider that serves the GitHub routes, by plugin name (`github_token_provider`);
    /// `None`: the one declaring GitHub at the host asked about ([`crate::registry::PluginSet::provider`]).
    pub github_token_provider: Option<String>,
}

/// What a load is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    /// Load and initialise each file in a worker, describe it, and end the worker: nothing is
    /// mapped into this process, whatever the isolation mode.
    Inspect,
}

/// Kept here too for callers that build a [`LoaderConfig`] by hand; the default is declared in
/// [`crate::settings`].
pub use crate::settings::DEFAULT_INIT_TIMEOUT;

impl LoaderConfig {
    /// A configuration with no plugin configuration tables and the defaults of
    /// [`crate::settings`] (plugin log level, init timeout).
    pub fn new(plugin_dir: PathBuf, state_dir: PathBuf) -> LoaderConfig {
        LoaderConfig {
            plugin_dir,
            state_dir,
            plugin_configs: BTreeMap::new(),
            max_log_level: crate::settings::DEFAULT_PLUGIN_LOG_LEVEL,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            isolation: Isolation::new(process::current_program()),
            purpose: Purpose::Serve,
            max_plugin_bytes: crate::settings::DEFAULT_MAX_PLUGIN_BYTES,
            trusted_keys: TrustedKeys::default(),
            github_token_provider: None,
        }
    }
}

/// Why a file was refused. Displays as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file (or a directory) is not one the host trusts, or could not be read: `insecure: ...`,
    /// `too large: ...`.
    #[error(transparent)]
    File(#[from] TrustError),
    /// Trusted keys are configured and the file is not signed by one of them.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    NotElf(String),
    #[error("not a plughost plugin: entry symbol missing")]
    NotAPlugin,
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("{0}")]
    Init(#[from] InitError),
    #[error("init did not finish within {0:?}")]
    InitTimeout(Duration),
    /// The worker that loads the file died, hung or could not start.
    #[error("{0}")]
    Worker(#[from] StartError),
    #[error("duplicate plugin name {name:?}: already loaded from {}", first.display())]
    DuplicateName { name: String, first: PathBuf },
    /// The name the plugin declares is outside [`check_name`]'s set (shown escaped and cut short).
    #[error(
        "invalid plugin name {:?}: expected 1 to {MAX_NAME_LEN} characters from a-z 0-9 . _ -, starting with a \
         letter or digit",
        shown(name)
    )]
    InvalidName { name: String },
    /// The version the plugin declares is outside [`check_version`]'s set.
    #[error(
        "invalid plugin version {:?}: expected 1 to {MAX_VERSION_LEN} printable ASCII characters without spaces",
        shown(version)
    )]
    InvalidVersion { version: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot {action}: {err}")]
    Io { action: &'static str, err: std::io::Error },
    /// A bug of the host's, caught so that it refuses this file instead of ending the scan.
    #[error("the host panicked while loading this file: {message}")]
    HostPanicked { message: String },
}

/// The longest plugin name.
pub const MAX_NAME_LEN: usize = 64;
/// The longest plugin version.
pub const MAX_VERSION_LEN: usize = 64;

/// A plugin name: `^[a-z0-9][a-z0-9._-]{0,63}$`. The name tags log lines, metrics and thread
/// names, keys `[plugins.<name>]` and `[isolation.plugins.<name>]`, and is printed on one line:
/// anything else (a NUL, a newline, upper case, a space) refuses the plugin, whether the name came
/// from a worker's handshake or from the library mapped here.
pub fn check_name(name: &str) -> Result<(), LoadError> {
    let mut bytes = name.bytes();
    let valid = name.len() <= MAX_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if valid { Ok(()) } else { Err(LoadError::InvalidName { name: name.to_owned() }) }
}

/// A plugin version: 1 to 64 printable ASCII characters without spaces (semver fits).
pub fn check_version(version: &str) -> Result<(), LoadError> {
    let valid = (1..=MAX_VERSION_LEN).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_graphic());
    if valid { Ok(()) } else { Err(LoadError::InvalidVersion { version: version.to_owned() }) }
}

/// At most a little more than the longest valid value, for a one-line message.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(MAX_NAME_LEN + 16).collect();
    if cut.len() < value.len() { format!("{cut}...") } else { cut }
}

/// A plugin loaded and initialised.
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    /// The plughost-sdk version it was built with.
    pub sdk_version: String,
    /// The file the operator dropped in.
    pub file: PathBuf,
    pub sha256: String,
    /// Where its code runs.
    pub mode: Mode,
    /// The capabilities it declared at init.
    pub provides: Provides,
    /// What its tokens are for, as it declared at init (SDK 1.1; empty for 1.0 plugins).
    pub audiences: Vec<Audience>,
    /// In-process mode: the handles into the mapped library.
    pub env_mutator: Option<EnvMutatorHandle>,
    pub token_provider: Option<TokenProviderHandle>,
    pub scoped_token_provider: Option<ScopedTokenProviderHandle>,
    /// Process mode: the supervised worker serving it.
    pub worker: Option<Supervisor>,
    /// Who signed it, when trusted keys are configured.
    pub signed_by: Option<Signer>,
    /// Hash of the configuration it was initialised with, to tell a reload what changed.
    config_sha256: String,
    /// The file's identity when it was read: a reload that finds it unchanged skips reading it.
    stamp: FileStamp,
    /// The same for its signature file, when signatures are checked (a new signature is checked).
    signature_stamp: Option<FileStamp>,
}

/// What the loader established about a file's bytes before any code of it ran.
struct Vetted {
    sha256: String,
    stamp: FileStamp,
    signature_stamp: Option<FileStamp>,
    signed_by: Option<Signer>,
}

/// What `stat` says about a file. ctime changes with any write or metadata change and cannot be
/// set back by user tools, so an equal stamp means the same contents (as git's index assumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt as _;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// Capabilities a plugin declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provides {
    pub env_mutator: bool,
    pub token_provider: bool,
    /// SDK 1.1: tokens limited to a scope, and their revocation.
    pub scoped_token_provider: bool,
}

impl LoadedPlugin {
    pub fn capabilities(&self) -> Vec<&'static str> {
        let mut caps = Vec::new();
        if self.provides.env_mutator {
            caps.push("env_mutator");
        }
        if self.provides.token_provider {
            caps.push("token_provider");
        }
        if self.provides.scoped_token_provider {
            caps.push("scoped_token_provider");
        }
        caps
    }

    /// `running (pid 42)`, `quarantined: crashed 5 times in 60 s (SIGSEGV)`, `in-process`, ...
    pub fn status(&self) -> String {
        match &self.worker {
            Some(worker) => worker.status(),
            None if self.mode == Mode::InProcess => "in-process".to_owned(),
            None => "inspected".to_owned(),
        }
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("sdk_version", &self.sdk_version)
            .field("file", &self.file)
            .field("mode", &self.mode)
            .field("capabilities", &self.capabilities())
            .field("audiences", &self.audiences)
            .finish()
    }
}

/// A file refused, and why.
#[derive(Debug)]
pub struct Rejected {
    pub file: PathBuf,
    pub error: LoadError,
}

/// The outcome of scanning a directory: the plugins in chain order, and the refused files.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub plugins: Vec<Arc<LoadedPlugin>>,
    pub rejected: Vec<Rejected>,
}

/// The shared libraries of `dir`, sorted by file name. Hidden files (editor leftovers) and
/// anything else are skipped.
pub fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|err| LoadError::Io { action: "read the plugin directory", err })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".so") && !path.is_dir()
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The plugin cache of `state_dir` (`<state_dir>/plugin-cache`), created private if missing;
/// refused when the host cannot trust it (`serve` checks it at start-up, every scan again).
pub fn plugin_cache(state_dir: &Path) -> Result<PathBuf, LoadError> {
    cache::dir(state_dir)
}

/// Loads every plugin of the directory. `previous` is the running set: a file whose contents
/// and configuration are unchanged keeps its running instance; a file that fails to load while
/// an earlier version of it is running keeps that version (and is reported).
pub fn scan(config: &LoaderConfig, previous: &[Arc<LoadedPlugin>]) -> Result<ScanReport, LoadError> {
    trust::check_dir(&config.plugin_dir, Subject::PluginDir)?;
    plugin_cache(&config.state_dir)?;
    let mut report = ScanReport::default();
    for file in plugin_files(&config.plugin_dir)? {
        // A file's values must never panic the host (they are checked); should a bug let one
        // through, that file is refused and the scan goes on.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            load_file(&file, config, previous, &report.plugins)
        }))
        .unwrap_or_else(|panic| Err(LoadError::HostPanicked { message: panic_message(&*panic) }));
        match loaded {
            Ok(plugin) => report.plugins.push(plugin),
            Err(error) => {
                let running = previous.iter().find(|p| p.file == file);
                if let Some(running) = running.filter(|p| !report.plugins.iter().any(|q| q.name == p.name)) {
                    tracing::warn!(file = %file.display(), %error, running_sha256 = %running.sha256,
                        "new version refused; the running version stays loaded");
                    report.plugins.push(Arc::clone(running));
                }
                report.rejected.push(Rejected { file, error });
            }
        }
    }
    Ok(report)
}

/// Loads one file, as `scan` would (used by `plughost plugins check`).
pub fn load_file(
    file: &Path,
    config: &LoaderConfig,
    previous: &[Arc<LoadedPlugin>],
    loaded_so_far: &[Arc<LoadedPlugin>],
) -> Result<Arc<LoadedPlugin>, LoadError> {
    let checked = CheckedFile::open(file, Subject::PluginFile)?;
    let stamp = FileStamp::of(checked.metadata());
    let signature_stamp = (!config.trusted_keys.is_empty())
        .then(|| std::fs::symlink_metadata(signature_path(file)).ok().map(|meta| FileStamp::of(&meta)))
        .flatten();
    let unchanged =
        previous.iter().find(|p| p.file == file && p.stamp == stamp && p.signature_stamp == signature_stamp);
    if let Some(running) = reusable(unchanged, file, config, loaded_so_far)? {
        return Ok(running);
    }
    let bytes = checked.read(Limit::Setting { key: "max_plugin_bytes", bytes: config.max_plugin_bytes })?;
    // The signature first: with trusted keys, nothing parses bytes nobody trusted signed.
    let signed_by = signature::verify(file, &bytes, &config.trusted_keys)?;
    vet::check_elf(&bytes)?;
    let sha256 = sha256_hex(&bytes);
    let cached = cache::store(&cache::dir(&config.state_dir)?, &sha256, &bytes)?;
    drop(bytes);
    let vetted = Vetted { sha256: sha256.clone(), stamp, signature_stamp, signed_by };

    // The same contents as the running plugin of this file (touched, or copied over with itself):
    // its name is known, so no worker has to start to tell it. Its stamp stays the old one, so a
    // later reload reads and hashes the file again, which is cheap; a worker start is not.
    let same_bytes = previous.iter().find(|p| p.file == file && p.sha256 == sha256);
    if let Some(running) = reusable(same_bytes, file, config, loaded_so_far)? {
        return Ok(running);
    }

    let known = probed_name(&sha256);
    let in_process_now = config.purpose == Purpose::Serve
        && known.as_deref().is_some_and(|name| config.isolation.mode_of(name) == Mode::InProcess);
    if in_process_now {
        return load_in_process(file, &cached, vetted, config, previous, loaded_so_far);
    }

    // In a worker: the probe of a new file, a process-mode plugin, or an inspection.
    let spec = WorkerSpec {
        program: config.isolation.program.clone(),
        library: cached.clone(),
        memory_limit: config.isolation.memory_limit,
        log: file_log(file),
    };
    let opened = process::open(&spec, config.init_timeout)?;
    if let Err(err) = check_name(&opened.name).and_then(|()| check_version(&opened.version)) {
        opened.finish();
        return Err(err);
    }
    let name = opened.name.clone();
    if let Some(first) = loaded_so_far.iter().find(|p| p.name == name) {
        opened.finish();
        return Err(LoadError::DuplicateName { name, first: first.file.clone() });
    }
    let config_toml = plugin_config(file, &name, config)?;
    let config_sha256 = sha256_hex(config_toml.as_bytes());
    let mode = config.isolation.mode_of(&name);
    if let Some(running) = previous
        .iter()
        .find(|p| p.sha256 == sha256 && p.config_sha256 == config_sha256 && p.name == name && p.mode == mode)
    {
        opened.finish();
        return Ok(Arc::clone(running));
    }
    let init =
        InitMessage { config_toml, plugin_file: file.display().to_string(), max_log_level: config.max_log_level };
    let spec = WorkerSpec { memory_limit: config.isolation.memory_limit_of(&name), log: plugin_log(&name), ..spec };
    let (version, sdk_version) = (opened.version.clone(), opened.sdk_version.clone());
    let ready = opened.with_log(spec.log.clone()).init(&init, config.init_timeout)?;
    let provides = Provides {
        env_mutator: ready.env_mutator,
        token_provider: ready.token_provider,
        scoped_token_provider: ready.scoped_token_provider,
    };
    let audiences: Vec<Audience> =
        ready.audiences.iter().map(|(kind, host)| Audience { kind: kind.clone(), host: host.clone() }).collect();
    let plugin = |mode, worker| LoadedPlugin {
        name: name.clone(),
        version: version.clone(),
        sdk_version: sdk_version.clone(),
        file: file.to_owned(),
        sha256: sha256.clone(),
        mode,
        provides,
        audiences: audiences.clone(),
        env_mutator: None,
        token_provider: None,
        scoped_token_provider: None,
        worker,
        signed_by: vetted.signed_by.clone(),
        config_sha256: config_sha256.clone(),
        stamp,
        signature_stamp,
    };
    match (config.purpose, mode) {
        (Purpose::Inspect, _) => {
            ready.finish().map_err(|cause| StartError::Died { cause, phase: process::Phase::Initialising })?;
            Ok(Arc::new(plugin(mode, None)))
        }
        (Purpose::Serve, Mode::Process) => {
            let pid = ready.pid();
            let record = (isolation::quarantine::path(&config.state_dir, &name), sha256.clone());
            let policy = config.isolation.policy(config.init_timeout, Some(record));
            let worker = Supervisor::start(name.clone(), sha256.clone(), ready, spec, init, policy)
                .map_err(|err| LoadError::Io { action: "supervise the plugin worker", err })?;
            tracing::info!(plugin = %name, version = %version, sdk = %sdk_version, file = %file.display(),
                capabilities = ?provides, pid, "plugin loaded (process mode)");
            Ok(Arc::new(plugin(Mode::Process, Some(worker))))
        }
        (Purpose::Serve, Mode::InProcess) => {
            // The probe passed: the static initialisers and init ran in a worker without
            // killing it. Now map it here.
            ready.finish().map_err(|cause| StartError::Died { cause, phase: process::Phase::Initialising })?;
            remember_probed(&sha256, &name);
            load_in_process(file, &cached, vetted, config, previous, loaded_so_far)
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (_, Some(message)) => message.as_str(),
        _ => "(no message)",
    };
    message.escape_debug().to_string()
}

/// `running`, if it may go on serving `file`: its name is not taken yet in this scan, and its
/// configuration and mode are what they would be now.
fn reusable(
    running: Option<&Arc<LoadedPlugin>>,
    file: &Path,
    config: &LoaderConfig,
    loaded_so_far: &[Arc<LoadedPlugin>],
) -> Result<Option<Arc<LoadedPlugin>>, LoadError> {
    let Some(running) = running else { return Ok(None) };
    if loaded_so_far.iter().any(|p| p.name == running.name)
        || config.isolation.mode_of(&running.name) != running.mode
        || sha256_hex(plugin_config(file, &running.name, config)?.as_bytes()) != running.config_sha256
    {
        return Ok(None);
    }
    // A reload is the operator's word that the plugin may run again.
    if let Some(worker) = &running.worker {
        worker.lift_quarantine();
    }
    Ok(Some(Arc::clone(running)))
}

/// Hashes of the files a worker has loaded and initialised without dying, with their plugin
/// names: safe to map into this process.
static PROBED: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn probed_name(sha256: &str) -> Option<String> {
    PROBED.lock().unwrap_or_else(PoisonError::into_inner).as_ref()?.get(sha256).cloned()
}

fn remember_probed(sha256: &str, name: &str) {
    PROBED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(sha256.to_owned(), name.to_owned());
}

/// Maps the content-addressed copy `cached` into this process and initialises it.
fn load_in_process(
    file: &Path,
    cached: &Path,
    vetted: Vetted,
    config: &LoaderConfig,
    previous: &[Arc<LoadedPlugin>],
    loaded_so_far: &[Arc<LoadedPlugin>],
) -> Result<Arc<LoadedPlugin>, LoadError> {
    let library = PluginLibrary::open(cached).inspect_err(|err| {
        if let OpenError::LayoutMismatch { report, .. } = err {
            tracing::debug!(file = %file.display(), "full abi_stable report:\n{report}");
        }
    })?;
    let info = library.info();
    check_name(&info.name)?;
    check_version(&info.version)?;
    if let Some(first) = loaded_so_far.iter().find(|p| p.name == info.name) {
        return Err(LoadError::DuplicateName { name: info.name, first: first.file.clone() });
    }
    let config_toml = plugin_config(file, &info.name, config)?;
    let config_sha256 = sha256_hex(config_toml.as_bytes());
    if let Some(running) = previous.iter().find(|p| {
        p.sha256 == vetted.sha256
            && p.config_sha256 == config_sha256
            && p.name == info.name
            && p.mode == Mode::InProcess
    }) {
        return Ok(Arc::clone(running));
    }

    let sdk_version = library.sdk_version().to_string();
    let args = InitArgs {
        config_toml,
        plugin_file: file.display().to_string(),
        log: plugin_log(&info.name),
        max_log_level: config.max_log_level,
    };
    // On its own thread, so a plugin whose init hangs is refused instead of hanging the scan.
    // The thread cannot be stopped; it is left behind, and so is its late result.
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("init {}", info.name))
        .spawn(move || {
            let _ = done_tx.send(library.init(args));
        })
        .map_err(|err| LoadError::Io { action: "start the plugin init thread", err })?;
    let instance = match done_rx.recv_timeout(config.init_timeout) {
        Ok(result) => result?,
        Err(_) => return Err(LoadError::InitTimeout(config.init_timeout)),
    };
    let plugin = LoadedPlugin {
        name: info.name,
        version: info.version,
        sdk_version,
        file: file.to_owned(),
        sha256: vetted.sha256,
        mode: Mode::InProcess,
        provides: Provides {
            env_mutator: instance.env_mutator.is_some(),
            token_provider: instance.token_provider.is_some(),
            scoped_token_provider: instance.scoped_token_provider.is_some(),
        },
        audiences: instance.audiences,
        env_mutator: instance.env_mutator,
        token_provider: instance.token_provider,
        scoped_token_provider: instance.scoped_token_provider,
        worker: None,
        signed_by: vetted.signed_by,
        config_sha256,
        stamp: vetted.stamp,
        signature_stamp: vetted.signature_stamp,
    };
    tracing::info!(plugin = %plugin.name, version = %plugin.version, sdk = %plugin.sdk_version,
        file = %file.display(), capabilities = ?plugin.capabilities(), "plugin loaded (in-process)");
    Ok(Arc::new(plugin))
}

/// The plugin's configuration: `<file-stem>.toml` beside the `.so`, overridden key by key by
/// `[plugins.<name>]` of the host config (the operator's central file has the last word).
fn plugin_config(file: &Path, name: &str, config: &LoaderConfig) -> Result<String, LoadError> {
    let sidecar = file.with_extension("toml");
    let text = match CheckedFile::open(&sidecar, Subject::PluginConfig) {
        Ok(checked) => {
            let bytes = checked.read(Limit::Fixed { bytes: MAX_PLUGIN_CONFIG_BYTES })?;
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| LoadError::Config(format!("{}: not UTF-8 text", sidecar.display())))?,
            )
        }
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err.into()),
    };
    merge_plugin_config(&sidecar, text.as_deref(), config.plugin_configs.get(name))
}

/// [`plugin_config`] once the files are read: parses the sidecar's `text` (read from `sidecar`, named
/// in errors), lets `central` override it key by key, and writes the result as TOML. Kept apart so
/// the fuzz targets run this very code (`crate::fuzzing`).
pub(crate) fn merge_plugin_config(
    sidecar: &Path,
    text: Option<&str>,
    central: Option<&toml::Table>,
) -> Result<String, LoadError> {
    let mut table = match text {
        Some(text) => text
            .parse::<toml::Table>()
            .map_err(|err| LoadError::Config(format!("{}: {}", sidecar.display(), crate::settings::one_line(&err))))?,
        None => toml::Table::new(),
    };
    if let Some(central) = central {
        table.extend(central.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    toml::to_string(&table).map_err(|err| LoadError::Config(err.to_string()))
}

/// A log sink tagging events with the plugin's name.
fn plugin_log(name: &str) -> LogSink {
    let name = name.to_owned();
    Arc::new(move |level, target, message| emit(&name, level, target, message))
}

/// A log sink for a worker that has not said its plugin's name yet: tagged with the file.
fn file_log(file: &Path) -> LogSink {
    plugin_log(&file.display().to_string())
}

/// Re-emits a plugin's log event in the host's stream, tagged with the plugin's name.
fn emit(plugin: &str, level: LogLevel, target: &str, message: &str) {
    match level {
        LogLevel::Error => tracing::error!(target: "plugin", plugin, plugin_target = target, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "plugin", plugin, plugin_target = target, "{message}"),
        LogLevel::Info => tracing::info!(target: "plugin", plugin, plugin_target = target, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "plugin", plugin, plugin_target = target, "{message}"),
        LogLevel::Trace => tracing::trace!(target: "plugin", plugin, plugin_target = target, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(sidecar: Option<&str>, central: Option<&str>) -> Result<String, LoadError> {
        let central = central.map(|text| text.parse::<toml::Table>().unwrap());
        merge_plugin_config(Path::new("/plugins/p.toml"), sidecar, central.as_ref())
    }

    #[test]
    fn the_central_table_overrides_the_sidecar_key_by_key() {
        let merged =
            merge(Some("a = 1\nb = \"sidecar\"\n[t]\nx = 1\n"), Some("b = \"central\"\n[t]\ny = 2\n")).unwrap();
        assert_eq!(merged.parse::<toml::Table>().unwrap(), "a = 1\nb = \"central\"\n[t]\ny = 2\n".parse().unwrap());
        assert_eq!(merge(None, None).unwrap(), "");
    }

    /// Found by the `host_config` fuzz target: toml's syntax messages span lines, and a refusal is
    /// one line of the scan report.
    #[test]
    fn a_sidecar_that_is_not_toml_is_refused_in_one_line_naming_the_file() {
        let err = merge(Some("app_id =\u{fe}1\nprivate_key = \"hunter2-secret\n"), None).unwrap_err().to_string();
        assert!(err.starts_with("configuration: /plugins/p.toml: "), "{err}");
        assert!(err.contains("(at byte 8)"), "{err}");
        assert!(!err.contains('\n') && !err.contains("hunter2"), "{err}");
    }
}
