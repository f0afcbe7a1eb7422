//! The HTTP edge's one error type: every failure leaves as the Iceberg error model
//! `{"error":{"message","type","code"}}` (management routes use the same shape).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_service::ServiceError;

#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(ServiceError::BadRequest(msg.into()))
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError(ServiceError::NotFound(msg.into()))
    }
}

pub fn status_and_type(e: &ServiceError) -> (StatusCode, &'static str) {
    use ServiceError::*;
    match e {
        BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
        Unprocessable(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "UnprocessableEntityException",
        ),
        Unauthorized(_) => (StatusCode::UNAUTHORIZED, "NotAuthorizedException"),
        Forbidden(_) => (StatusCode::FORBIDDEN, "ForbiddenException"),
        NoSuchWarehouse(_) => (StatusCode::NOT_FOUND, "NoSuchWarehouseException"),
        NoSuchNamespace(_) => (StatusCode::NOT_FOUND, "NoSuchNamespaceException"),
        NoSuchTable(_) => (StatusCode::NOT_FOUND, "NoSuchTableException"),
        NoSuchView(_) => (StatusCode::NOT_FOUND, "NoSuchViewException"),
        NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
        AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExistsException"),
        NamespaceNotEmpty(_) => (StatusCode::CONFLICT, "NamespaceNotEmptyException"),
        Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
        CommitFailed(_) => (StatusCode::CONFLICT, "CommitFailedException"),
        Unsupported(_) => (StatusCode::NOT_ACCEPTABLE, "UnsupportedOperationException"),
        Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        ),
        Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
    }
}

pub fn error_body(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = status_and_type(&self.0);
        let message = match &self.0 {
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal server error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = error_body(status, kind, &message);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice\", Basic realm=\"sluice\""),
            );
        }
        resp
    }
}

/// The error-model `type` for a status the HTTP layer itself produces (limits, timeouts,
/// unknown routes, extractor rejections).
pub fn type_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequestException",
        401 => "NotAuthorizedException",
        403 => "ForbiddenException",
        404 => "NotFoundException",
        405 => "MethodNotAllowedException",
        406 => "UnsupportedOperationException",
        408 => "RequestTimeoutException",
        409 => "ConflictException",
        411 => "LengthRequiredException",
        413 => "PayloadTooLargeException",
        414 => "UriTooLongException",
        415 => "UnsupportedMediaTypeException",
        422 => "UnprocessableEntityException",
        429 => "TooManyRequestsException",
        431 => "RequestHeaderFieldsTooLargeException",
        503 => "ServiceUnavailableException",
        504 => "GatewayTimeoutException",
        s if (400..500).contains(&s) => "BadRequestException",
        _ => "InternalServerError",
    }
}

/// 413 in the error model.
pub fn payload_too_large() -> Response {
    error_body(
        StatusCode::PAYLOAD_TOO_LARGE,
        type_for_status(StatusCode::PAYLOAD_TOO_LARGE),
        "request body is larger than this server accepts (max_request_body_bytes)",
    )
}

/// 429 after too many failed authentications, with `Retry-After`.
pub fn too_many_auth_failures(retry_after_secs: u64) -> Response {
    let mut resp = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        type_for_status(StatusCode::TOO_MANY_REQUESTS),
        &format!("too many failed authentication attempts; retry in {retry_after_secs} s"),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}
