//! The ABI test suite: real `.so` files through the real loader and the real `plughost` binary.
//! Every refusal asserts its one-line message; every test ends with the host process still up.

mod support;

mod broken_files;
mod cli;
mod compatibility;
mod isolation;
mod loading;
mod logging;
mod panics;
mod registry;
