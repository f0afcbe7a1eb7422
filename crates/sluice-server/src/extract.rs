//! Extractors whose rejections use the Iceberg error model instead of axum's plain text.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::DeserializeOwned;
use sluice_core::Principal;
use sluice_service::ServiceError;

/// JSON body. Parsed whatever the Content-Type says, because several Iceberg clients omit
/// it; errors name the field serde choked on.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                crate::error::payload_too_large()
            } else {
                ApiError::bad_request(format!("could not read request body: {e}")).into_response()
            }
        })?;
        if bytes.is_empty() {
            return Err(
                ApiError::bad_request("request body is empty; expected JSON").into_response(),
            );
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path.is_empty() || path == "." {
                    ApiError::bad_request(format!("malformed request body: {inner}"))
                        .into_response()
                } else {
                    ApiError::bad_request(format!("malformed request body at '{path}': {inner}"))
                        .into_response()
                }
            })
    }
}

/// Query string, with Iceberg-shaped rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}

/// Path parameters, percent-decoded, with Iceberg-shaped rejections.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))
    }
}

/// The authenticated caller: HTTP Basic with an access key, or a Sluice bearer token.
pub struct Caller(pub Principal);

/// Whether the request carries more than one `Authorization` header. Such a request is
/// refused outright: proxies and frameworks disagree on which one counts, so the identity
/// checked here might not be the one another hop acted on.
pub fn repeated_authorization(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
}

pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<Result<(String, String), ()>> {
    if repeated_authorization(headers) {
        return Some(Err(()));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = B64
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(match decoded.as_deref().and_then(|s| s.split_once(':')) {
        Some((id, secret)) => Ok((id.to_string(), secret.to_string())),
        None => Err(()),
    })
}

/// The peer address the listener attached to the request (absent when the router is driven
/// some other way, e.g. in-memory).
pub fn source_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = source_ip(parts);
        let id = match basic_credentials(&parts.headers) {
            Some(Ok((id, _))) => Some(id),
            _ => None,
        };
        if let Some(wait) = state.throttle.check(source, id.as_deref()) {
            return Err(throttled(source, id.as_deref(), wait));
        }
        match authenticate(parts, state).await {
            Ok(p) => Ok(Caller(p)),
            Err(e) => {
                if matches!(e.0, ServiceError::Unauthorized(_)) {
                    state.throttle.record_failure(source, id.as_deref());
                }
                Err(e.into_response())
            }
        }
    }
}

/// The 429 for a throttled source or id, logged without the credential.
pub fn throttled(
    source: Option<std::net::IpAddr>,
    id: Option<&str>,
    wait: std::time::Duration,
) -> Response {
    let secs = crate::throttle::retry_after_secs(wait);
    tracing::warn!(
        source = %source.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
        id = %crate::throttle::loggable_id(id),
        retry_after_seconds = secs,
        "authentication throttled after repeated failures"
    );
    crate::error::too_many_auth_failures(secs)
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    let unauthorized = |m: &str| ApiError(ServiceError::Unauthorized(m.to_string()));
    if repeated_authorization(&parts.headers) {
        return Err(unauthorized(
            "more than one Authorization header; send exactly one",
        ));
    }
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        // The browser session cookie from SSO, for safe methods only: a cookie rides
        // along on cross-site requests, so it must never authorize a change.
        if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
            if let Some(token) = session_cookie(parts) {
                return Ok(state.services.authenticate_token(&token).await?);
            }
        }
        return Err(unauthorized(
            "authentication required: use HTTP Basic with an access key or a bearer token",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("malformed Authorization header"))?;
    let principal = if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim();
        match &state.providers.oidc {
            // Tokens from the configured IdP are routed by their (unverified) issuer;
            // the signature and claims are verified next.
            Some(oidc) if oidc.is_candidate(token) => {
                let identity = oidc
                    .verify_bearer(token)
                    .await
                    .map_err(crate::login::oidc_error)?;
                crate::login::oidc_principal(state, "oidc", identity).await?
            }
            _ => state.services.authenticate_token(token).await?,
        }
    } else if scheme.eq_ignore_ascii_case("basic") {
        match basic_credentials(&parts.headers) {
            Some(Ok((id, secret))) => {
                let ldap_basic = state
                    .providers
                    .ldap
                    .as_ref()
                    .is_some_and(|l| l.config().allow_basic_auth);
                if ldap_basic && sluice_core::AccessKeyId::parse(&id).is_err() {
                    crate::login::ldap_basic(state, &id, &secret).await?
                } else {
                    state.services.authenticate_key(&id, &secret).await?
                }
            }
            _ => return Err(unauthorized("malformed Basic credentials")),
        }
    } else {
        return Err(unauthorized("unsupported authorization scheme"));
    };
    Ok(principal)
}

/// What the client accepts for storage access (`X-Iceberg-Access-Delegation`), with the
/// base URL it reached us at (for the signer endpoint it is told to call).
pub struct Delegation(pub sluice_service::delegation::AccessDelegation);

pub fn base_url(parts: &Parts, configured: Option<&str>) -> String {
    if let Some(u) = configured {
        return u.trim_end_matches('/').to_string();
    }
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
    };
    let proto = header("x-forwarded-proto")
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

impl FromRequestParts<AppState> for Delegation {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get("x-iceberg-access-delegation")
            .and_then(|v| v.to_str().ok());
        let base = base_url(parts, state.public_url.as_deref());
        Ok(Delegation(
            sluice_service::delegation::AccessDelegation::from_header(value, base),
        ))
    }
}

pub const SESSION_COOKIE: &str = "sluice_session";

fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn session_cookie(parts: &Parts) -> Option<String> {
    cookie(parts, SESSION_COOKIE)
}

pub fn named_cookie(parts: &Parts, name: &str) -> Option<String> {
    cookie(parts, name)
}
