//! The console session: the `sluice_session` cookie (the same one browser SSO sets) as a
//! `Credential::SessionCookie` for the service's authentication chain. Page views are safe
//! methods; a change ([`Change`]) carries the form's `csrf` field, which the chain checks
//! against the session.

use crate::error::{ConsoleError, Result};
use crate::ConsoleState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue};
use axum::response::Response;
use serde::de::DeserializeOwned;
use sluice_core::{Principal, Secret};
use sluice_service::authn::Credential;
use sluice_service::identity::Capabilities;
use sluice_service::ServiceError;

/// The cookie holding the session token (a Sluice JWT), shared with browser SSO.
pub const SESSION_COOKIE: &str = "sluice_session";

/// The logged-in user of a request.
pub struct User {
    pub principal: Principal,
    /// The session's CSRF token, embedded in every form the page renders.
    pub csrf: String,
    pub caps: Capabilities,
}

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
        .filter(|v| !v.is_empty())
}

/// The request's path as the browser sent it (the console is nested, so `parts.uri` lacks
/// the mount point).
fn here(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    uri.path_and_query()
        .map_or_else(|| crate::BASE.to_string(), |pq| pq.as_str().to_string())
}

async fn user(
    state: &ConsoleState,
    parts: &Parts,
    csrf: Option<Secret>,
    return_to: String,
) -> Result<User> {
    let Some(token) = cookie(parts, SESSION_COOKIE) else {
        return Err(ConsoleError::LoginRequired { return_to });
    };
    let token = Secret::new(token);
    let credential = Credential::SessionCookie {
        token: Secret::new(token.expose()),
        safe_method: csrf.is_none(),
        csrf,
    };
    let principal = match state.services.authenticate(Some(&credential)).await {
        Ok(p) => p,
        Err(ServiceError::Unauthorized(_)) => {
            return Err(ConsoleError::LoginRequired { return_to })
        }
        Err(e) => return Err(e.into()),
    };
    let caps = state.services.capabilities(&principal).await?;
    Ok(User {
        csrf: state.services.csrf_token(&token),
        principal,
        caps,
    })
}

impl FromRequestParts<ConsoleState> for User {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self> {
        user(state, parts, None, here(parts)).await
    }
}

/// The largest form accepted (a policy document is the largest thing a form carries).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// A state-changing form post: the user, authenticated with the form's CSRF token, and
/// the form's fields.
pub struct Change<T> {
    pub user: User,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Change<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|e| ConsoleError::BadRequest(format!("could not read the form: {e}")))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(format!("malformed form: {e}")))?;
        let csrf = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // After a login the browser comes back to the page the form was on.
        let back = parts
            .headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.find(crate::BASE).map(|i| r[i..].to_string()))
            .unwrap_or_else(|| crate::BASE.to_string());
        let user = user(state, &parts, Some(Secret::new(csrf)), back).await?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(format!("invalid form: {e}")))?;
        Ok(Change { user, form })
    }
}

/// Whether the browser reached us over TLS (then cookies get `Secure`).
pub fn is_tls(state: &ConsoleState, parts: &Parts) -> bool {
    base_url(state, parts).starts_with("https://")
}

/// The externally visible base URL: config `public_url`, else the request's
/// X-Forwarded-Proto/Host or Host.
pub fn base_url(state: &ConsoleState, parts: &Parts) -> String {
    external_base_url(parts, state.public_url.as_deref())
}

/// The base URL a client reached this server at: `configured` when set, else the request's
/// X-Forwarded-Proto/Host, Host or URI authority. One rule for the API and the console.
pub fn external_base_url(parts: &Parts, configured: Option<&str>) -> String {
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

/// `Set-Cookie` for a new session (or, with `None`, for ending one).
pub fn session_cookie(resp: &mut Response, token: Option<(&str, i64)>, secure: bool) -> Result<()> {
    let secure = if secure { "; Secure" } else { "" };
    let value = match token {
        Some((t, ttl)) => {
            format!("{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}{secure}")
        }
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    let v = HeaderValue::from_str(&value)
        .map_err(|e| ConsoleError::Service(ServiceError::internal(e)))?;
    resp.headers_mut().append(header::SET_COOKIE, v);
    Ok(())
}
