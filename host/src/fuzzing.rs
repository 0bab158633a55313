//! The host's parsers of untrusted input, for the fuzz targets in `fuzz/`. Hidden from the docs and
//! not a stable interface: only the fuzz targets use it.
//!
//! Each item is the code the host runs, not a copy: the fuzz targets test the product.

use std::path::Path;

pub use crate::loader::LoadError;
pub use crate::loader::vet::check_elf;
pub use crate::settings::{ConfigFile, SettingsError};

/// The configuration the loader hands plugin `name` at init, given the text of its sidecar file
/// (`None`: there is none) and the host's config file: the loader's own parse and merge, without
/// the file system.
pub fn plugin_config(host_config: &ConfigFile, name: &str, sidecar: Option<&str>) -> Result<String, LoadError> {
    crate::loader::merge_plugin_config(Path::new("plugin.toml"), sidecar, host_config.plugin_table(name))
}
