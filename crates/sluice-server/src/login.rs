//! Glue between the identity-provider clients (sluice-auth) and the service layer's
//! external login: turns a proven identity into a Sluice principal.

use crate::error::ApiError;
use crate::state::{AppState, LDAP_BASIC_CACHE_TTL};
use sha2::{Digest, Sha256};
use sluice_auth::ldap::LdapError;
use sluice_auth::oidc::{OidcError, OidcIdentity};
use sluice_core::Principal;
use sluice_service::login::ExternalLogin;
use sluice_service::ServiceError;
use std::time::Instant;

pub fn oidc_error(e: OidcError) -> ApiError {
    match e {
        OidcError::InvalidToken(m) => {
            tracing::debug!(reason = %m, "OIDC token rejected");
            ApiError(ServiceError::Unauthorized("invalid bearer token".into()))
        }
        OidcError::Unavailable(m) => {
            tracing::warn!(reason = %m, "identity provider unavailable");
            ApiError(ServiceError::Unavailable(
                "the identity provider is unavailable".into(),
            ))
        }
        other => {
            tracing::error!(error = %other, "OIDC configuration error");
            ApiError(ServiceError::Internal(other.to_string()))
        }
    }
}

/// First login: groups from the configured claim when the token carries it, otherwise
/// the configured defaults.
pub async fn oidc_principal(
    state: &AppState,
    source: &'static str,
    id: OidcIdentity,
) -> Result<Principal, ApiError> {
    let oidc = state
        .providers
        .oidc
        .as_ref()
        .ok_or_else(|| ApiError::not_found("OIDC is not configured"))?;
    let cfg = oidc.config();
    let groups = if cfg.initial_groups_claim_name.is_some() && !id.groups.is_empty() {
        id.groups.clone()
    } else {
        cfg.default_initial_groups.clone()
    };
    let login = ExternalLogin {
        source,
        subject: format!("{}#{}", id.issuer, id.subject),
        preferred_name: id.username.clone(),
        email: id.email.clone(),
        friendly_name: id.friendly_name.clone(),
        initial_groups: groups,
    };
    Ok(state.services.login_external(login).await?)
}

fn invalid_credentials() -> ApiError {
    ApiError(ServiceError::Unauthorized("invalid credentials".into()))
}

/// LDAP username/password → principal. Every failure reads "invalid credentials" to the
/// caller; the reason goes to the log only.
pub async fn ldap_principal(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Principal, ApiError> {
    let ldap = state
        .providers
        .ldap
        .as_ref()
        .ok_or_else(|| ApiError::not_found("LDAP is not configured"))?;
    let identity = match ldap.authenticate(username, password).await {
        Ok(i) => i,
        Err(LdapError::InvalidCredentials) => return Err(invalid_credentials()),
        Err(e) => {
            tracing::warn!(error = ?e, "LDAP login failed");
            return Err(invalid_credentials());
        }
    };
    let login = ExternalLogin {
        source: "ldap",
        subject: identity.dn.clone(),
        preferred_name: identity.username.clone(),
        email: identity.email.clone(),
        friendly_name: identity.friendly_name.clone(),
        initial_groups: ldap.config().default_user_group.iter().cloned().collect(),
    };
    Ok(state.services.login_external(login).await?)
}

/// LDAP credentials sent as HTTP Basic on the API, with a short-lived result cache.
pub async fn ldap_basic(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Principal, ApiError> {
    let key: [u8; 32] = Sha256::new()
        .chain_update(username.as_bytes())
        .chain_update([0u8])
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    if let Some((at, p)) = state
        .providers
        .ldap_basic_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        if at.elapsed() < LDAP_BASIC_CACHE_TTL {
            return Ok(p.clone());
        }
    }
    let p = ldap_principal(state, username, password).await?;
    let mut cache = state
        .providers
        .ldap_basic_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if cache.len() > 10_000 {
        cache.retain(|_, (at, _)| at.elapsed() < LDAP_BASIC_CACHE_TTL);
    }
    cache.insert(key, (Instant::now(), p.clone()));
    Ok(p)
}
