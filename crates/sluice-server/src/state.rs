use sluice_service::Services;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
}
