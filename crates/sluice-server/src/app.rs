//! Router assembly: the route groups plus the tower layers every request passes.

use crate::error::{error_body, type_for_status, ApiError};
use crate::routes;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt;
use serde_json::json;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, ServiceExt};
use tracing::Instrument;

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
/// `console`), behind the [`Edge`] every request passes.
pub fn build_router(
    state: AppState,
    console: Option<sluice_console::ConsoleState>,
    limits: HttpLimits,
) -> Edge {
    let mut router = Router::new().route("/health", get(health));
    if let Some(console) = console {
        // The console is its own nested router: API routes never run any of its code.
        router = router
            .route("/", get(|| async { Redirect::to("/ui/") }))
            .nest_service("/ui", sluice_console::router(console));
    }
    let router = router
        .merge(routes::oauth::router())
        .merge(routes::catalog::router())
        .merge(routes::view::router())
        .merge(routes::management::router())
        .merge(routes::identity::router())
        .merge(routes::login::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    Edge {
        // Replaces axum's 2 MiB default for every body extractor; table metadata of large
        // tables runs to megabytes. Wrapped around the router, not layered into it, so that
        // no route gains a layer of boxing.
        inner: DefaultBodyLimit::max(limits.max_body_bytes).layer(router),
        limits,
        ids: RequestIds::new(),
    }
}

/// The router behind its body limit (the limit's service type is only nameable this way).
type Routes = <DefaultBodyLimit as Layer<Router>>::Service;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every API request passes, in one service: its request id (taken from the
/// `X-Request-Id` header or made, and echoed on the response), its log span, the URI and
/// header limits, the request timeout, a caught panic as a 500, and the error model for
/// errors produced below the handlers. One service instead of a stack of tower layers:
/// each layer boxed the request's future and cloned a route again, which cost more than
/// `/health` itself.
#[derive(Clone)]
pub struct Edge {
    inner: Routes,
    limits: HttpLimits,
    ids: RequestIds,
}

impl<B> tower::Service<axum::http::Request<B>> for Edge
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let mut req = req.map(Body::new);
        let id = match req.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                req.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id.to_str().unwrap_or("")
        );
        let limits = self.limits;
        let inner = self.inner.clone();
        let fut = async move {
            let started = Instant::now();
            let oauth = req.uri().path() == "/v1/oauth/tokens";
            let head = req.method() == Method::HEAD;
            let mut resp = match refused_by_limits(&limits, &req) {
                Some(refusal) => refusal,
                None => run(inner, req, limits.request_timeout).await,
            };
            let status = resp.status();
            if !head && (status.is_client_error() || status.is_server_error()) {
                resp = in_error_model(resp, oauth).await;
            }
            let latency_ms = started.elapsed().as_secs_f64() * 1e3;
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), latency_ms, "response failed");
            } else {
                tracing::debug!(
                    status = status.as_u16(),
                    latency_ms,
                    "finished processing request"
                );
            }
            resp.headers_mut().insert(X_REQUEST_ID, id);
            Ok(resp)
        };
        Box::pin(fut.instrument(span))
    }
}

/// The router's answer, or the 504 of the request timeout, or the 500 of a panic.
async fn run(inner: Routes, req: Request, timeout: Duration) -> Response {
    let answer = AssertUnwindSafe(tokio::time::timeout(timeout, inner.oneshot(req)))
        .catch_unwind()
        .await;
    match answer {
        Ok(Ok(Ok(resp))) => resp,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(_elapsed)) => {
            let status = StatusCode::GATEWAY_TIMEOUT;
            let msg = format!(
                "the request did not complete within {} s",
                timeout.as_secs()
            );
            error_body(status, type_for_status(status), &msg)
        }
        Err(_panic) => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "internal server error",
        ),
    }
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

impl RequestIds {
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.process.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(text).expect("a hyphenated UUID is a valid header value")
    }
}

/// URI and header limits, and an early 413 for a declared length over the body limit, all
/// answered in the error model.
fn refused_by_limits(limits: &HttpLimits, req: &Request) -> Option<Response> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let msg =
            format!("request target is {uri_len} bytes; at most {MAX_URI_BYTES} are accepted");
        return Some(error_body(
            StatusCode::URI_TOO_LONG,
            type_for_status(StatusCode::URI_TOO_LONG),
            &msg,
        ));
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        let msg = format!("at most {MAX_HEADERS} header lines and {MAX_HEADER_BYTES} bytes of headers are accepted");
        return Some(error_body(status, type_for_status(status), &msg));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Some(crate::error::payload_too_large());
    }
    None
}

/// Errors produced below the handlers (axum's extractor rejections, body-limit errors) come
/// as plain text; this gives them the error model too (the OAuth2 shape on the token
/// endpoint), keeping their message and headers.
async fn in_error_model(resp: Response, oauth: bool) -> Response {
    let status = resp.status();
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
