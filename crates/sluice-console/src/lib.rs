//! The Sluice web console: server-rendered pages (maud) over the same typed
//! `sluice_service::Services` operations the HTTP API calls. It decides nothing itself:
//! who the user is comes from the service's authentication chain (the session cookie, with
//! the session-bound CSRF token for changes), and every page and action is one or a few
//! service calls, authorized and audited there.
//!
//! `sluice-server` mounts [`router`] at `/ui` as a separate nested router, so API routes
//! never pass through any of its code.

mod admin;
mod assets;
mod browser;
mod error;
mod layout;
mod login;
mod me;
mod session;
pub use session::external_base_url;
mod warehouses;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use sluice_service::Services;

pub use error::ConsoleError;
pub use session::SESSION_COOKIE;

/// Where the console is mounted; every link it renders starts with this.
pub const BASE: &str = "/ui";

/// What the console needs from the server that mounts it.
#[derive(Clone)]
pub struct ConsoleState {
    pub services: Services,
    /// Externally visible base URL (config `public_url`), for connection snippets and
    /// whether cookies get `Secure`; derived from the request when unset.
    pub public_url: Option<String>,
    /// Lifetime of a console session in seconds (config `console_session_ttl_seconds`,
    /// capped by the token TTL).
    pub session_ttl_seconds: i64,
    /// The server's failed-authentication throttle, so the login form is no easier to
    /// guess against than the API.
    pub throttle: std::sync::Arc<dyn LoginThrottle>,
}

/// Failed-login throttling, kept by the server that mounts the console (per source address
/// and per key id or user name).
pub trait LoginThrottle: Send + Sync {
    /// `Some(wait)`: refuse this attempt without checking it.
    fn check(
        &self,
        source: Option<std::net::IpAddr>,
        id: Option<&str>,
    ) -> Option<std::time::Duration>;
    fn record_failure(&self, source: Option<std::net::IpAddr>, id: Option<&str>);
}

/// The console's routes, relative to [`BASE`] (the server nests them there).
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/warehouses") }))
        .route("/static/{file}", get(assets::serve))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout_checked))
        .route("/warehouses", get(warehouses::list))
        .route(
            "/warehouses/new",
            get(warehouses::new_form).post(warehouses::create),
        )
        .route("/warehouses/{id}", get(browser::warehouse))
        .route("/warehouses/{id}/rename", post(warehouses::rename))
        .route("/warehouses/{id}/status", post(warehouses::set_status))
        .route(
            "/warehouses/{id}/credential",
            post(warehouses::update_credential),
        )
        .route("/warehouses/{id}/delete", post(warehouses::delete))
        .route(
            "/warehouses/{id}/delete-profile",
            post(warehouses::set_delete_profile),
        )
        .route("/warehouses/{id}/deleted", get(browser::deleted))
        .route(
            "/warehouses/{id}/deleted/{table_id}/undrop",
            post(browser::undrop),
        )
        .route("/warehouses/{id}/namespace", get(browser::namespace))
        .route("/warehouses/{id}/table", get(browser::table))
        .route("/warehouses/{id}/table/drop", post(browser::drop_table))
        .route("/me", get(me::page_view))
        .route("/me/keys", post(me::create_key))
        .route("/me/keys/delete", post(me::delete_key))
        .route("/admin", get(admin::index))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{name}", get(admin::user))
        .route("/admin/users/{name}/delete", post(admin::delete_user))
        .route("/admin/users/{name}/keys", post(admin::create_user_key))
        .route(
            "/admin/users/{name}/keys/delete",
            post(admin::delete_user_key),
        )
        .route("/admin/users/{name}/edit", post(admin::edit_user))
        .route(
            "/admin/groups",
            get(admin::groups).post(admin::create_group),
        )
        .route("/admin/groups/{name}", get(admin::group))
        .route("/admin/groups/{name}/members", post(admin::group_members))
        .route("/admin/groups/{name}/policies", post(admin::group_policies))
        .route(
            "/admin/policies",
            get(admin::policies).post(admin::save_policy),
        )
        .route("/admin/policies/{name}", get(admin::policy))
        .route("/admin/check", get(admin::check))
        .route("/admin/audit", get(admin::audit))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(security_headers))
}

async fn not_found() -> Response {
    ConsoleError::NotFound.into_response()
}

/// Content-Security-Policy and friends on every console response: scripts and styles only
/// from the console's own embedded files, no framing, no inline script.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
