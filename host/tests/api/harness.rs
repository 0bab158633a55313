// What every test module uses, from the workspace's test kit (`testkit/`): the fixture plugins,
// the real `plughost serve` on an ephemeral loopback port with its own plugin and state
// directories (`Server`), and the CLI. The kit learns the port from `serve --print-addr` and keeps
// every response body and every line the server logs (the secrets test reads both).

pub use plughost_testkit::{
    ADMIN_TOKEN as ADMIN, PluginDir, Reply, Serve as Server, ServeBuilder, fixtures, plughost_command, run_cli,
};

/// A server with the admin token [`ADMIN`], `RUST_LOG=debug`, and no plugins yet.
pub fn server() -> ServeBuilder {
    Server::builder()
}
