//! Fixture builders for the ABI test suite.
