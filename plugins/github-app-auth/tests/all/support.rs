//! Shared helpers: an emulator with the test App and plugin settings pointing at it.

use std::time::Duration;

use github_app_auth::{AppIdentity, Config, InstallationTarget, PrivateKey};
use github_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, TEST_CLIENT_ID, TEST_INSTALLATION_ID, shared_test_key,
};

pub const TOKEN_ROUTE: &str = "POST /app/installations/{id}/access_tokens";

pub fn emulator(token_ttl: Duration) -> EmulatorHandle {
    let config = EmulatorConfig::with_test_app(&shared_test_key().public_pem).token_ttl(token_ttl);
    Emulator::start(config).expect("emulator starts")
}

pub fn test_key() -> PrivateKey {
    PrivateKey::from_pem(&shared_test_key().private_pem, "private_key").expect("test key loads")
}

/// Settings for the test App on `emu`, with short timeouts and backoffs so tests stay quick.
pub fn config(emu: &EmulatorHandle) -> Config {
    let mut config = Config::new(
        AppIdentity::ClientId(TEST_CLIENT_ID.to_owned()),
        InstallationTarget::Id(TEST_INSTALLATION_ID),
        test_key(),
        &emu.base_url(),
    )
    .expect("config");
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(5);
    config.retry_deadline = Duration::from_secs(3);
    config.initial_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(300);
    // The floor before min_validity_secs existed: the outage tests use tokens of a few seconds.
    config.min_validity = Duration::from_secs(1);
    config
}

/// Seconds left on `token` by the emulator's clock (what GitHub would say).
pub fn left_by_github(emu: &EmulatorHandle, token: &str) -> f64 {
    let info = emu.token_info(token).expect("token was minted by this emulator");
    match info.expires_at.duration_since(emu.now()) {
        Ok(left) => left.as_secs_f64(),
        Err(past) => -past.duration().as_secs_f64(),
    }
}
