//! Flat `SLUICE_*` variables reach the configuration (the GCS settings among them), and bad
//! endpoint URLs are refused naming the key; `allowed_storage_endpoints` from env and TOML. One test: it changes the process environment.

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
    std::env::remove_var("SLUICE_GCS_ENDPOINT");

    // allowed_storage_endpoints: unset by default, a comma-separated list from the
    // environment or a TOML array, every entry checked at load.
    assert_eq!(ServerConfig::load(None, &CliOverrides::default()).unwrap().allowed_storage_endpoints, None);
    std::env::set_var("SLUICE_ALLOWED_STORAGE_ENDPOINTS", "minio.internal:9000, *.corp.example");
    let cfg = ServerConfig::load(None, &CliOverrides::default()).unwrap();
    assert_eq!(cfg.allowed_storage_endpoints, Some(vec!["minio.internal:9000".to_string(), "*.corp.example".to_string()]));
    std::env::set_var("SLUICE_ALLOWED_STORAGE_ENDPOINTS", "http://user:pw@minio.internal");
    let e = ServerConfig::load(None, &CliOverrides::default()).unwrap_err();
    assert!(e.contains("allowed_storage_endpoints"), "{e}");
    std::env::remove_var("SLUICE_ALLOWED_STORAGE_ENDPOINTS");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sluice.toml");
    std::fs::write(&file, "allowed_storage_endpoints = []\n").unwrap();
    let cfg = ServerConfig::load(Some(&file), &CliOverrides::default()).unwrap();
    assert_eq!(cfg.allowed_storage_endpoints, Some(vec![]));
}
