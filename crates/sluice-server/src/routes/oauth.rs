//! OAuth2 token endpoint (RFC 6749 client credentials), as the Iceberg REST spec and
//! PyIceberg's `credential` property use it.

use crate::extract::basic_credentials;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/oauth/tokens", post(token))
}

fn oauth_error(status: StatusCode, error: &str, description: &str, basic: bool) -> Response {
    let mut resp = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    no_store(resp.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        let v = if basic {
            "Basic realm=\"sluice\""
        } else {
            "Bearer realm=\"sluice\""
        };
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    }
    resp
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

async fn token(
    State(s): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // RFC 6749 §2.3.1: client credentials in the Authorization header or in the body, but
    // not both.
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if form.insert(k.to_string(), v.to_string()).is_some() {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("parameter '{k}' is repeated"),
                false,
            );
        }
    }
    let basic = match basic_credentials(&headers) {
        None => None,
        Some(Ok((id, secret))) => {
            // Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1).
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((dec(&id), dec(&secret)))
        }
        Some(Err(())) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed Basic client credentials",
                true,
            )
        }
    };
    let used_basic = basic.is_some();
    let (client_id, client_secret) = match basic {
        Some((id, secret)) => {
            if form.contains_key("client_secret") {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "client credentials were sent both in the Authorization header and in the body",
                    false,
                );
            }
            (Some(id), Some(secret))
        }
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    };
    let source = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(wait) = s.throttle.check(source, client_id.as_deref()) {
        let secs = crate::throttle::retry_after_secs(wait);
        tracing::warn!(
            source = %source.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            id = %crate::throttle::loggable_id(client_id.as_deref()),
            retry_after_seconds = secs,
            "token endpoint throttled after repeated failures"
        );
        let mut resp = oauth_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            &format!("too many failed authentication attempts; retry in {secs} s"),
            used_basic,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    match s
        .services
        .token_grant(
            form.get("grant_type").map(String::as_str),
            client_id.as_deref(),
            client_secret.as_deref(),
            form.get("scope").map(String::as_str),
        )
        .await
    {
        Ok(t) => {
            let mut resp = Json(t).into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => {
            if e.error == "invalid_client" {
                s.throttle.record_failure(source, client_id.as_deref());
            }
            let status = match e.error {
                "invalid_client" => StatusCode::UNAUTHORIZED,
                "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            oauth_error(status, e.error, &e.description, used_basic)
        }
    }
}
