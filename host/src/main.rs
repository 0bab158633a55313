//! The `plughost` command: see `plughost --help` and the README.

fn main() -> std::process::ExitCode {
    plughost::cli::main()
}
