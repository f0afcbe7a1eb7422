//! How a failed page looks: the service's error as a page with the matching status, or a
//! redirect to the login page when the session is missing or over.

use crate::layout;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use sluice_service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No (valid) session on a page view: go to the login page and come back.
    #[error("login required")]
    LoginRequired { return_to: String },
    #[error("page not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

pub type Result<T, E = ConsoleError> = std::result::Result<T, E>;

/// The status a service error is shown with (the same classes the API uses).
pub(crate) fn status_of(e: &ServiceError) -> StatusCode {
    use ServiceError::*;
    match e {
        BadRequest(_) => StatusCode::BAD_REQUEST,
        Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Forbidden(_) => StatusCode::FORBIDDEN,
        NoSuchWarehouse(_) | NoSuchNamespace(_) | NoSuchTable(_) | NoSuchView(_) | NotFound(_) => {
            StatusCode::NOT_FOUND
        }
        AlreadyExists(_) | NamespaceNotEmpty(_) | Conflict(_) | CommitFailed(_) => {
            StatusCode::CONFLICT
        }
        Unsupported(_) => StatusCode::NOT_ACCEPTABLE,
        Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The message a person sees; internal details stay in the log.
pub(crate) fn message_of(e: &ServiceError) -> String {
    match e {
        ServiceError::Internal(detail) => {
            tracing::error!(error = %detail, "console: internal error");
            "internal server error".to_string()
        }
        other => other.to_string(),
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ConsoleError::LoginRequired { return_to } => {
                let to = format!(
                    "{}/login?next={}",
                    crate::BASE,
                    percent_encoding::utf8_percent_encode(
                        return_to,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                );
                return Redirect::to(&to).into_response();
            }
            ConsoleError::NotFound => (StatusCode::NOT_FOUND, "page not found".to_string()),
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ConsoleError::Service(e) => (status_of(e), message_of(e)),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = layout::bare(
            title,
            html! {
                h1 { (title) }
                p.error role="alert" { (message) }
                p { a href={(crate::BASE) "/warehouses"} { "Back to the console" } }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}
