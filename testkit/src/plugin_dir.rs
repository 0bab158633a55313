//! A scratch plugin directory as an operator would lay it out, with the modes the loader checks:
//! the directory and plugin files 0755 (not writable by group or others), sidecars 0644,
//! private files 0600.

use std::fs::Permissions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use plughost::loader::LoaderConfig;

/// `<root>/plugins` (0755) and `<root>/state` (left for the host to create), in a temporary
/// root deleted on drop.
pub struct PluginDir {
    root: tempfile::TempDir,
    plugin_dir: PathBuf,
    state_dir: PathBuf,
}

impl PluginDir {
    pub fn new() -> PluginDir {
        PluginDir::in_temp_dir(tempfile::tempdir().expect("a temporary directory"))
    }

    /// Like [`PluginDir::new`], with a root whose name starts with `prefix` (for people who look).
    pub fn with_prefix(prefix: &str) -> PluginDir {
        PluginDir::in_temp_dir(tempfile::Builder::new().prefix(prefix).tempdir().expect("a temporary directory"))
    }

    fn in_temp_dir(root: tempfile::TempDir) -> PluginDir {
        let plugin_dir = root.path().join("plugins");
        std::fs::create_dir(&plugin_dir).expect("create the plugin directory");
        set_mode(&plugin_dir, 0o755);
        let state_dir = root.path().join("state");
        PluginDir { root, plugin_dir, state_dir }
    }

    /// The temporary directory holding the plugin and state directories.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    /// Where the host keeps its database and plugin cache; it creates the directory itself.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Copies `so` into the plugin directory as `file_name` (replacing a file of that name),
    /// mode 0755; returns its path.
    pub fn add(&self, so: &Path, file_name: &str) -> PathBuf {
        let to = self.plugin_dir.join(file_name);
        std::fs::copy(so, &to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", so.display(), to.display()));
        set_mode(&to, 0o755);
        to
    }

    /// Writes `<stem>.toml` beside the plugin file `file_name`, mode 0644; returns its path.
    pub fn configure(&self, file_name: &str, toml: &str) -> PathBuf {
        write_file(&self.plugin_dir.join(file_name).with_extension("toml"), toml, 0o644)
    }

    /// Like [`PluginDir::configure`], mode 0600: for a sidecar holding a secret.
    pub fn configure_private(&self, file_name: &str, toml: &str) -> PathBuf {
        write_file(&self.plugin_dir.join(file_name).with_extension("toml"), toml, 0o600)
    }

    /// Writes `relative` under the root, mode 0600 (a key file, a token file); returns its path.
    pub fn write_private(&self, relative: &str, text: &str) -> PathBuf {
        write_file(&self.root().join(relative), text, 0o600)
    }

    /// The loader's configuration for these directories ([`LoaderConfig::new`]'s defaults) for a
    /// test that loads plugins into its own process: plugins are mapped in-process (the test
    /// calls their handles), after the probe, which runs in the kit's `plughost` binary (a test
    /// binary is no worker). Set its fields as a test needs, e.g. `isolation.default_mode`.
    pub fn loader_config(&self) -> LoaderConfig {
        let mut config = LoaderConfig::new(self.plugin_dir.clone(), self.state_dir.clone());
        config.isolation.program = crate::fixtures().plughost.clone();
        config.isolation.default_mode = plughost::isolation::Mode::InProcess;
        config
    }
}

impl Default for PluginDir {
    fn default() -> PluginDir {
        PluginDir::new()
    }
}

/// Sets `mode` before writing (on a new file and on one that existed), so a private file's
/// text is never readable by others, not even for a moment.
fn write_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| {
            file.set_permissions(Permissions::from_mode(mode))?;
            file.write_all(text.as_bytes())
        })
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_owned()
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_get_the_modes_the_loader_and_secrets_need() {
        let dir = PluginDir::new();
        assert_eq!(mode(dir.plugin_dir()), 0o755);
        assert!(!dir.state_dir().exists(), "the host creates its state directory");
        let so = dir.write_private("source.so", "not really a library");
        assert_eq!(mode(&dir.add(&so, "10-plugin.so")), 0o755);
        assert_eq!(mode(&dir.configure("10-plugin.so", "a = 1\n")), 0o644);
        let sidecar = dir.configure_private("10-plugin.so", "secret = 1\n");
        assert_eq!((sidecar.file_name().unwrap().to_str(), mode(&sidecar)), (Some("10-plugin.toml"), 0o600));
        assert_eq!(std::fs::read_to_string(&sidecar).unwrap(), "secret = 1\n");
        assert_eq!(mode(&dir.write_private("configs/.token", "t")), 0o600);
        let config = dir.loader_config();
        assert_eq!((config.plugin_dir.as_path(), config.state_dir.as_path()), (dir.plugin_dir(), dir.state_dir()));
    }
}
