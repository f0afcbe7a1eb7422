use sluice_service::Services;
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Externally visible base URL (config `public_url`); when unset it is derived from
    /// each request's Host / X-Forwarded-* headers.
    pub public_url: Option<String>,
    /// Failed-authentication throttling (config `auth_failures_per_minute`).
    pub throttle: Arc<crate::throttle::AuthThrottle>,
}
