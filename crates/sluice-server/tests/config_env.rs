//! Flat `SLUICE_*` variables reach the configuration (the GCS settings among them), and bad
//! endpoint URLs are refused naming the key. One test: it changes the process environment.

use sluice_server::config::{CliOverrides, ServerConfig};

#[test]
fn flat_env_keys_are_read() {
    std::env::set_var("SLUICE_ENABLE_GCP_SYSTEM_CREDENTIALS", "true");
    std::env::set_var("SLUICE_GCS_STS_ENDPOINT", "http://127.0.0.1:9/v1/token");
    std::env::set_var("SLUICE_GCS_ENDPOINT", "http://127.0.0.1:4443");
    std::env::set_var("SLUICE_TOKEN_TTL_SECONDS", "120");
    let cfg = ServerConfig::load(None, &CliOverrides::default()).unwrap();
    assert!(cfg.enable_gcp_system_credentials);
    assert_eq!(cfg.gcs_sts_endpoint.as_deref(), Some("http://127.0.0.1:9/v1/token"));
    assert_eq!(cfg.gcs_endpoint.as_deref(), Some("http://127.0.0.1:4443"));
    assert_eq!(cfg.token_ttl_seconds, 120);

    std::env::set_var("SLUICE_GCS_ENDPOINT", "not a url");
    let e = ServerConfig::load(None, &CliOverrides::default()).unwrap_err();
    assert!(e.contains("gcs_endpoint"), "{e}");
}
