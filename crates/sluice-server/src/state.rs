use sluice_auth::aws_iam::AwsIamVerifier;
use sluice_auth::ldap::LdapAuthenticator;
use sluice_auth::oidc::OidcProvider;
use sluice_core::Principal;
use sluice_service::Services;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Externally visible base URL (config `public_url`); when unset it is derived from
    /// each request's Host / X-Forwarded-* headers.
    pub public_url: Option<String>,
    pub providers: Arc<Providers>,
    /// Failed-authentication throttling (config `auth_failures_per_minute`).
    pub throttle: Arc<crate::throttle::AuthThrottle>,
}

/// Configured external identity providers (each absent unless configured).
#[derive(Default)]
pub struct Providers {
    pub oidc: Option<Arc<OidcProvider>>,
    pub ldap: Option<Arc<LdapAuthenticator>>,
    pub aws_iam: Option<Arc<AwsIamVerifier>>,
    /// LDAP Basic-auth results, so API calls with LDAP credentials don't bind per request.
    /// Keyed by a hash of username and password; short-lived so a password change or a
    /// disabled account takes effect quickly.
    pub ldap_basic_cache: Mutex<HashMap<[u8; 32], (Instant, Principal)>>,
}

pub const LDAP_BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
