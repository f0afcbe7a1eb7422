//! The `object_store` client settings every cloud shares, so a dead or wrong endpoint fails
//! the same way whichever cloud a warehouse is on.

use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, RetryConfig};

pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Few, quick retries: a transient hiccup is absorbed, while a wrong endpoint or a dead
/// server surfaces in about a second instead of the default three minutes.
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// Request and connect timeouts; plain HTTP only when the endpoint is an `http://` URL
/// (emulators, local S3-compatible stores).
pub(crate) fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_allow_http(allow_http)
}
