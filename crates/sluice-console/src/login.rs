//! Login (access key, LDAP, SSO) and logout.

use crate::error::{ConsoleError, Result};
use crate::layout::{self, bare};
use crate::session::{self, Change};
use crate::{ConsoleState, BASE};
use axum::extract::{Query, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sluice_service::login::{LoginProvider, PasswordLogin};
use sluice_service::ServiceError;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// A return path inside the console, or the console's start page.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with(BASE)
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => format!("{BASE}/warehouses"),
    }
}

fn login_page(state: &ConsoleState, next: &str, error: Option<&str>, method: &str) -> Markup {
    let ldap = state
        .services
        .require_login_provider(LoginProvider::Ldap)
        .is_ok();
    let oidc = state
        .services
        .require_login_provider(LoginProvider::Oidc)
        .is_ok();
    let sso_href = format!(
        "/auth/oidc/login?return_to={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    bare(
        "Log in",
        html! {
            h1 { "Log in to Sluice" }
            (layout::error_box(error))
            @if oidc {
                section.card aria-labelledby="sso-h" {
                    h2 #sso-h { "Single sign-on" }
                    a.button #sso href=(sso_href) { "Sign in with SSO" }
                }
            }
            section.card aria-labelledby="key-h" {
                h2 #key-h { "Access key" }
                form method="post" action={(BASE) "/login"} {
                    input type="hidden" name="method" value="key";
                    input type="hidden" name="next" value=(next);
                    div.field {
                        label for="access_key_id" { "Access key ID" }
                        input #access_key_id name="access_key_id" type="text" autocomplete="username" required autofocus[method == "key"];
                    }
                    div.field {
                        label for="secret_access_key" { "Secret access key" }
                        input #secret_access_key name="secret_access_key" type="password" autocomplete="current-password" required;
                    }
                    button type="submit" #login-key { "Log in" }
                }
            }
            @if ldap {
                section.card aria-labelledby="ldap-h" {
                    h2 #ldap-h { "Directory (LDAP)" }
                    form method="post" action={(BASE) "/login"} {
                        input type="hidden" name="method" value="ldap";
                        input type="hidden" name="next" value=(next);
                        div.field {
                            label for="username" { "Username" }
                            input #username name="username" type="text" autocomplete="username" required autofocus[method == "ldap"];
                        }
                        div.field {
                            label for="password" { "Password" }
                            input #password name="password" type="password" autocomplete="current-password" required;
                        }
                        button type="submit" #login-ldap { "Log in with LDAP" }
                    }
                }
            }
        },
    )
}

pub async fn page(State(state): State<ConsoleState>, Query(q): Query<LoginQuery>) -> Html<String> {
    let next = safe_next(q.next.as_deref());
    Html(login_page(&state, &next, None, "key").into_string())
}

#[derive(Deserialize)]
pub struct LoginForm {
    method: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// A login form may only be posted from a page of this server: a cross-site form must not
/// log the browser into somebody else's account (login CSRF).
fn same_origin(state: &ConsoleState, parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    origin == session::base_url(state, parts)
}

pub async fn submit(
    State(state): State<ConsoleState>,
    parts: Parts,
    body: String,
) -> Result<Response> {
    if !same_origin(&state, &parts) {
        return Err(ConsoleError::Service(ServiceError::Forbidden(
            "the login form was posted from another site".into(),
        )));
    }
    let form: LoginForm = serde_urlencoded::from_str(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("invalid form: {e}")))?;
    let next = safe_next(form.next.as_deref());
    let source = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let id = match form.method.as_str() {
        "key" => form.access_key_id.trim(),
        _ => form.username.trim(),
    };
    if let Some(wait) = state.throttle.check(source, Some(id)) {
        let msg = format!(
            "too many failed logins: try again in {} seconds",
            wait.as_secs().max(1)
        );
        let page = login_page(&state, &next, Some(&msg), &form.method);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, Html(page.into_string())).into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let login = match form.method.as_str() {
        "key" => PasswordLogin::AccessKey {
            id: form.access_key_id.trim(),
            secret: &form.secret_access_key,
        },
        "ldap" => PasswordLogin::Ldap {
            username: form.username.trim(),
            password: &form.password,
        },
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "unknown login method '{other}'"
            )))
        }
    };
    match state
        .services
        .password_login(login, Some(state.session_ttl_seconds))
        .await
    {
        Ok(login) => {
            let mut resp = Redirect::to(&next).into_response();
            session::session_cookie(
                &mut resp,
                Some((&login.token.access_token, login.token.expires_in)),
                session::is_tls(&state, &parts),
            )?;
            Ok(resp)
        }
        Err(ServiceError::Unauthorized(m)) => {
            state.throttle.record_failure(source, Some(id));
            let page = login_page(&state, &next, Some(&m), &form.method);
            Ok((StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

async fn logout(State(state): State<ConsoleState>, parts: Parts) -> Result<Response> {
    let mut resp = Redirect::to(&format!("{BASE}/login")).into_response();
    session::session_cookie(&mut resp, None, session::is_tls(&state, &parts))?;
    Ok(resp)
}

/// Logging out is a change too: the form's CSRF token must match, so another site cannot
/// log the user out.
pub async fn logout_checked(
    state: State<ConsoleState>,
    parts: Parts,
    _change: Change<Empty>,
) -> Result<Response> {
    logout(state, parts).await
}
