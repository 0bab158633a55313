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
    /// A plugin built with the released plughost-sdk 1.0.0 (`sdk-releases/1.0.0`).
    pub released_1_0: PathBuf,
    /// Hosts built with another SDK (`probe-host FILE...`, one line per file): the generated
    /// 1.2, the released 1.0.0, and an independent copy of today's SDK.
    pub probe_host_1_2: PathBuf,
    pub probe_host_1_0: PathBuf,
    pub probe_host_copy: PathBuf,
    /// Plugins built with the released 1.0.0 plus one layout drift each, with the line the host
    /// must refuse each with ([`variants::DRIFTS`]).
    pub drifts: Vec<(PathBuf, &'static str)>,
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
    let target = variants_root.join("target");
    let build = |variant: &variants::Variant| {
        let root = variants_root.join(variant.name);
        variants::generate(variant, workspace_dir(), &root).unwrap_or_else(|e| panic!("{e}"));
        let dir = cargo_build(&root.join("Cargo.toml"), &[], &target, &format!("SDK variant {}", variant.name));
        let plugin = dir.join(format!("libvariant_{}.so", variant.name.replace('-', "_")));
        let probe_host = variant.with_probe_host.then(|| dir.join(format!("probe-host-{}", variant.name)));
        (plugin, probe_host)
    };
    let (sdk_copy, probe_host_copy) = build(&variants::COPY);
    let (sdk_1_2, probe_host_1_2) = build(&variants::MINOR_1_2);
    let (sdk_2_0, _) = build(&variants::MAJOR_2);
    let (layout_mismatch, _) = build(&variants::MISMATCH);
    let (released_1_0, probe_host_1_0) = build(&variants::RELEASED_1_0);
    let drifts = variants::DRIFTS.iter().map(|(variant, line)| (build(variant).0, *line)).collect();
    let probe = "a variant with a probe host";
    Fixtures {
        workspace: ws,
        sdk_copy,
        sdk_1_2,
        sdk_2_0,
        layout_mismatch,
        released_1_0,
        probe_host_1_2: probe_host_1_2.expect(probe),
        probe_host_1_0: probe_host_1_0.expect(probe),
        probe_host_copy: probe_host_copy.expect(probe),
        drifts,
    }
}
