//! Router assembly: the route groups plus the tower layers every request passes.

use crate::error::{error_body, type_for_status, ApiError};
use crate::routes;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

/// Request limits applied in the router (config `max_request_body_bytes`,
/// `request_timeout_seconds`).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// Longest request target (path + query) accepted; longer answers 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header lines, and most bytes of names + values, accepted; more answers 431.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The API routes, and the web console under `/ui` when `console` is given (config
/// `console`).
pub fn build_router(
    state: AppState,
    console: Option<sluice_console::ConsoleState>,
    limits: HttpLimits,
) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut router = Router::new().route("/health", get(health));
    if let Some(console) = console {
        // The console is its own nested router: API routes never run any of its code.
        router = router
            .route("/", get(|| async { Redirect::to("/ui/") }))
            .nest_service("/ui", sluice_console::router(console));
    }
    router
        .merge(routes::oauth::router())
        .merge(routes::catalog::router())
        .merge(routes::view::router())
        .merge(routes::management::router())
        .merge(routes::identity::router())
        .merge(routes::login::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            error_body(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "internal server error")
        }))
        // Replaces axum's 2 MiB default for every body extractor; table metadata of large
        // tables runs to megabytes.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(limits, request_limits))
        .layer(middleware::from_fn(json_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::new()))
}

/// Request ids in UUID form: a random per-process half and a counter. Unique across
/// replicas like random UUIDs, without asking the OS for randomness on every request (a
/// request id names a request in logs; it guards nothing).
#[derive(Clone)]
struct RequestIds {
    process: u64,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            process: uuid::Uuid::new_v4().as_u64_pair().0,
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.process.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut buf);
        axum::http::HeaderValue::from_str(text)
            .ok()
            .map(RequestId::new)
    }
}

/// URI and header limits, an early 413 for a declared length over the body limit, and
/// the request timeout, all answered in the error model.
async fn request_limits(State(limits): State<HttpLimits>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let msg =
            format!("request target is {uri_len} bytes; at most {MAX_URI_BYTES} are accepted");
        return error_body(
            StatusCode::URI_TOO_LONG,
            type_for_status(StatusCode::URI_TOO_LONG),
            &msg,
        );
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        let msg = format!("at most {MAX_HEADERS} header lines and {MAX_HEADER_BYTES} bytes of headers are accepted");
        return error_body(status, type_for_status(status), &msg);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return crate::error::payload_too_large();
    }
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let status = StatusCode::GATEWAY_TIMEOUT;
            let msg = format!(
                "the request did not complete within {} s",
                limits.request_timeout.as_secs()
            );
            error_body(status, type_for_status(status), &msg)
        }
    }
}

/// Errors produced below the handlers (axum's extractor rejections, body-limit errors) come
/// as plain text; this gives them the error model too (the OAuth2 shape on the token
/// endpoint), keeping their message and headers.
async fn json_errors(req: Request, next: Next) -> Response {
    let oauth = req.uri().path() == "/v1/oauth/tokens";
    let head = req.method() == Method::HEAD;
    let resp = next.run(req).await;
    let status = resp.status();
    if head || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let new = if oauth {
        let error = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request"
        };
        (
            status,
            Json(json!({"error": error, "error_description": message})),
        )
            .into_response()
    } else {
        error_body(status, type_for_status(status), &message)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (new_parts, new_body) = new.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, new_body)
}

/// Liveness and readiness: 200 only while the database answers.
async fn health(State(s): State<AppState>) -> Response {
    match s.services.check_database().await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> Response {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        "method not allowed on this route",
    )
}
