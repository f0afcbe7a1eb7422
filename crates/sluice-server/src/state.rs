use sluice_service::Services;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Externally visible base URL (config `public_url`); when unset it is derived from
    /// each request's Host / X-Forwarded-* headers.
    pub public_url: Option<String>,
}
