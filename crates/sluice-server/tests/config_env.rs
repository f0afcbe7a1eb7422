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
    assert!(cfg.storage.enable_gcp_system_credentials);
    assert_eq!(
        cfg.storage.gcs_sts_endpoint.as_deref(),
        Some("http://127.0.0.1:9/v1/token")
    );
    assert_eq!(
        cfg.storage.gcs_endpoint.as_deref(),
        Some("http://127.0.0.1:4443")
    );
    assert_eq!(cfg.token_ttl_seconds, 120);
    // The HTTP limits are defaulted, and settable from the environment.
    assert_eq!(cfg.max_request_body_bytes, 64 * 1024 * 1024);
    assert_eq!(
        (
            cfg.header_read_timeout_seconds,
            cfg.idle_timeout_seconds,
            cfg.max_connections
        ),
        (10, 60, 1024)
    );
    assert_eq!(cfg.auth_failures_per_minute, 30);
    for (k, v) in [
        ("SLUICE_MAX_REQUEST_BODY_BYTES", "1048576"),
        ("SLUICE_REQUEST_TIMEOUT_SECONDS", "30"),
        ("SLUICE_HEADER_READ_TIMEOUT_SECONDS", "5"),
        ("SLUICE_IDLE_TIMEOUT_SECONDS", "20"),
        ("SLUICE_MAX_CONNECTIONS", "64"),
        ("SLUICE_AUTH_FAILURES_PER_MINUTE", "0"),
    ] {
        std::env::set_var(k, v);
    }
    let cfg = ServerConfig::load(None, &CliOverrides::default()).unwrap();
    assert_eq!(cfg.max_request_body_bytes, 1_048_576);
    assert_eq!(cfg.request_timeout_seconds, 30);
    assert_eq!(
        (
            cfg.header_read_timeout_seconds,
            cfg.idle_timeout_seconds,
            cfg.max_connections
        ),
        (5, 20, 64)
    );
    assert_eq!(cfg.auth_failures_per_minute, 0);
    std::env::set_var("SLUICE_IDLE_TIMEOUT_SECONDS", "0");
    let e = ServerConfig::load(None, &CliOverrides::default()).unwrap_err();
    assert!(e.contains("idle_timeout_seconds"), "{e}");
    std::env::remove_var("SLUICE_IDLE_TIMEOUT_SECONDS");

    std::env::set_var("SLUICE_GCS_ENDPOINT", "not a url");
    let e = ServerConfig::load(None, &CliOverrides::default()).unwrap_err();
    assert!(e.contains("gcs_endpoint"), "{e}");
    std::env::remove_var("SLUICE_GCS_ENDPOINT");

    // allowed_storage_endpoints: unset by default, a comma-separated list from the
    // environment or a TOML array, every entry checked at load.
    assert_eq!(
        ServerConfig::load(None, &CliOverrides::default())
            .unwrap()
            .storage
            .allowed_storage_endpoints,
        None
    );
    std::env::set_var(
        "SLUICE_ALLOWED_STORAGE_ENDPOINTS",
        "minio.internal:9000, *.corp.example",
    );
    let cfg = ServerConfig::load(None, &CliOverrides::default()).unwrap();
    assert_eq!(
        cfg.storage.allowed_storage_endpoints,
        Some(vec![
            "minio.internal:9000".to_string(),
            "*.corp.example".to_string()
        ])
    );
    std::env::set_var(
        "SLUICE_ALLOWED_STORAGE_ENDPOINTS",
        "http://user:pw@minio.internal",
    );
    let e = ServerConfig::load(None, &CliOverrides::default()).unwrap_err();
    assert!(e.contains("allowed_storage_endpoints"), "{e}");
    std::env::remove_var("SLUICE_ALLOWED_STORAGE_ENDPOINTS");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sluice.toml");
    std::fs::write(&file, "allowed_storage_endpoints = []\n").unwrap();
    let cfg = ServerConfig::load(Some(&file), &CliOverrides::default()).unwrap();
    assert_eq!(cfg.storage.allowed_storage_endpoints, Some(vec![]));
}
