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
use sluice_core::{Principal, Secret};
use sluice_service::authn::Credential;
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
        // Tracking the path costs on every body; only a refused one needs it, for the message.
        let err = match serde_json::from_slice(&bytes) {
            Ok(v) => return Ok(ApiJson(v)),
            Err(e) => e,
        };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let (path, inner) = match serde_path_to_error::deserialize::<_, T>(de) {
            Err(e) => (e.path().to_string(), e.into_inner()),
            // Valid up to the end of the value: what follows it was refused.
            Ok(_) => (String::new(), err),
        };
        Err(if path.is_empty() || path == "." {
            ApiError::bad_request(format!("malformed request body: {inner}")).into_response()
        } else {
            ApiError::bad_request(format!("malformed request body at '{path}': {inner}"))
                .into_response()
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

/// The authenticated caller, as the service layer's authentication chain decided from the
/// request's credential (`sluice_service::authn`).
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
        let credential = credential(parts);
        let id = match &credential {
            Ok(Some(Credential::Basic { id, .. })) => Some(id.as_str()),
            _ => None,
        };
        if let Some(wait) = state.throttle.check(source, id) {
            return Err(throttled(source, id, wait));
        }
        let result = match &credential {
            Ok(c) => state.services.authenticate(c.as_ref()).await,
            Err(e) => Err(ServiceError::Unauthorized(e.to_string())),
        };
        match result {
            Ok(p) => Ok(Caller(p)),
            Err(e) => {
                if matches!(e, ServiceError::Unauthorized(_)) {
                    state.throttle.record_failure(source, id);
                }
                Err(ApiError(e).into_response())
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

/// The credential a request carries, parsed but not checked: the `Authorization` header,
/// else the SSO session cookie. Err for a header that cannot be parsed (the message is the
/// 401's).
fn credential(parts: &Parts) -> Result<Option<Credential>, &'static str> {
    if repeated_authorization(&parts.headers) {
        return Err("more than one Authorization header; send exactly one");
    }
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        let safe_method =
            parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        return Ok(
            session_cookie(parts).map(|token| Credential::SessionCookie {
                token: Secret::new(token),
                safe_method,
                csrf: None,
            }),
        );
    };
    let value = value
        .to_str()
        .map_err(|_| "malformed Authorization header")?;
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or("malformed Authorization header")?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(Credential::Bearer(Secret::new(rest.trim()))))
    } else if scheme.eq_ignore_ascii_case("basic") {
        match basic_credentials(&parts.headers) {
            Some(Ok((id, secret))) => Ok(Some(Credential::Basic {
                id,
                secret: Secret::new(secret),
            })),
            _ => Err("malformed Basic credentials"),
        }
    } else {
        Err("unsupported authorization scheme")
    }
}

/// What the client accepts for storage access (`X-Iceberg-Access-Delegation`), with the
/// base URL it reached us at (for the signer endpoint it is told to call).
pub struct Delegation(pub sluice_service::delegation::AccessDelegation);

pub fn base_url(parts: &Parts, configured: Option<&str>) -> String {
    sluice_console::external_base_url(parts, configured)
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

pub const SESSION_COOKIE: &str = sluice_console::SESSION_COOKIE;

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
