//! # abi-tests
//!
//! Builds real plugin `.so` files, good and broken, and proves how the host treats each
//! (`tests/abi/`). Nothing is mocked: fixtures are compiled by cargo and loaded through the
//! host's real loader and the real `plughost` binary.
//!
//! Fixtures come from two places:
//! - crates under `abi-tests/fixtures/`, workspace members built against this SDK (one line each
//!   in the test kit's fixture table, `testkit/src/fixtures.rs`);
//! - SDK variants ([`variants`]) generated from the real SDK source: an independent copy, a 1.2
//!   that adds a capability, a 2.0, and a 1.0.0 with a changed field type.
//!
//! [`fixtures`] builds everything once per test binary: the workspace fixtures through the test
//! kit (`plughost-testkit`), in the test's own target directory, and the variants in sibling
//! directories (see [`variants`]).

pub mod variants;

use std::path::PathBuf;
use std::sync::OnceLock;

use plughost_testkit::{cargo_build, workspace_dir};

/// The name literal inside the `numbered` fixture.
pub const NUMBERED_NAME: &str = "numbered-plugin-000000";

/// Paths of every fixture: the test kit's (through `Deref`) and the SDK variants.
pub struct Fixtures {
    workspace: &'static plughost_testkit::Fixtures,
    pub sdk_copy: PathBuf,
    pub sdk_1_2: PathBuf,
    pub sdk_2_0: PathBuf,
    pub layout_mismatch: PathBuf,
    /// A host built with SDK 1.2 (`probe-host FILE...`).
    pub probe_host_1_2: PathBuf,
}

impl std::ops::Deref for Fixtures {
    type Target = plughost_testkit::Fixtures;
    fn deref(&self) -> &plughost_testkit::Fixtures {
        self.workspace
    }
}

/// Builds all fixtures on first call (cargo makes later runs cheap); panics with cargo's output
/// when a build fails.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_all)
}

fn build_all() -> Fixtures {
    let ws = plughost_testkit::fixtures();
    let variants_root = ws.target_dir.join("abi-variants");
    let mut built = Vec::new();
    for variant in [&variants::COPY, &variants::MINOR_1_2, &variants::MAJOR_2, &variants::MISMATCH] {
        let root = variants_root.join(variant.name);
        variants::generate(variant, workspace_dir(), &root).unwrap_or_else(|e| panic!("{e}"));
        let variant_target = variants_root.join(format!("target-{}", variant.target_group));
        let dir = cargo_build(&root.join("Cargo.toml"), &[], &variant_target, &format!("SDK variant {}", variant.name));
        built.push(dir.join(format!("libvariant_{}.so", variant.name.replace('-', "_"))));
        if variant.name == variants::MINOR_1_2.name {
            built.push(dir.join("probe-host"));
        }
    }
    let [sdk_copy, sdk_1_2, probe_host_1_2, sdk_2_0, layout_mismatch] =
        <[PathBuf; 5]>::try_from(built).expect("five variant artifacts");

    Fixtures { workspace: ws, sdk_copy, sdk_1_2, sdk_2_0, layout_mismatch, probe_host_1_2 }
}
