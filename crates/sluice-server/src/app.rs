//! Router assembly: the route groups plus the tower layers every request passes.

use crate::error::{error_body, ApiError};
use crate::routes;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Table metadata of large tables can run to megabytes; beyond this a request is an error.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn build_router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/health", get(health))
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
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, Duration::from_secs(120)))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Liveness and readiness: 200 only while the database answers.
async fn health(State(s): State<AppState>) -> Response {
    match s.services.store().get_setting("health.probe").await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> Response {
    error_body(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedException", "method not allowed on this route")
}
