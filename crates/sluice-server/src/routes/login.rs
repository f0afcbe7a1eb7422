//! Login endpoints of the external identity providers and the server's auth metadata.
//! Every flow ends in a Sluice token (and, for browser SSO, a session cookie).

use crate::error::ApiError;
use crate::extract::{base_url, named_cookie, ApiJson, ApiPath, Caller, SESSION_COOKIE};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_api::{AttachPrincipal, ExternalPrincipalView, PrincipalsResponse};
use sluice_service::login::{
    ExternalPrincipalInfo, Login, LoginProvider, OidcCallback, OidcMetadata, LOGIN_STATE_TTL_SECS,
};
use sluice_service::ServiceError;

type Result<T> = std::result::Result<T, ApiError>;

const OIDC_STATE_COOKIE: &str = "sluice_oidc_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/auth/oidc/login", get(oidc_login))
        .route("/auth/oidc/callback", get(oidc_callback))
        .route("/auth/ldap/login", post(ldap_login))
        .route("/auth/external/principal/login", post(aws_principal_login))
        .route("/auth/sts/login", post(web_identity_login))
        .route(
            "/management/v1/users/{user}/external-principals",
            get(list_principals).post(attach_principal),
        )
        .route(
            "/management/v1/users/{user}/external-principals/{arn}",
            axum::routing::delete(detach_principal),
        )
}

/// RFC 8414-style metadata: Sluice's own token endpoint at the top level, and what a
/// client needs for each configured provider beneath it.
async fn metadata(State(s): State<AppState>, parts: Parts) -> Result<Json<serde_json::Value>> {
    let base = base_url(&parts, s.public_url.as_deref());
    let md = s.services.auth_metadata().await;
    let mut doc = json!({
        "issuer": base,
        "token_endpoint": format!("{base}/v1/oauth/tokens"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "sluice_version": env!("CARGO_PKG_VERSION"),
    });
    match md.oidc {
        None => {}
        Some(OidcMetadata::Unavailable { issuer }) => {
            doc["oidc"] = json!({"available": false, "issuer": issuer});
        }
        Some(OidcMetadata::Available {
            provider,
            client_id,
            scopes,
            audience,
        }) => {
            doc["oidc"] = json!({
                "issuer": provider.issuer,
                "authorization_endpoint": provider.authorization_endpoint,
                "token_endpoint": provider.token_endpoint,
                "device_authorization_endpoint": provider.device_authorization_endpoint,
                "jwks_uri": provider.jwks_uri,
                "client_id": client_id,
                "scopes": scopes,
                "audience": audience,
                "available": true,
                "sso_login_endpoint": format!("{base}/auth/oidc/login"),
                "web_identity_login_endpoint": format!("{base}/auth/sts/login"),
            });
        }
    }
    if md.ldap {
        doc["ldap"] = json!({"login_endpoint": format!("{base}/auth/ldap/login")});
    }
    if let Some(server_id) = md.aws_iam_server_id {
        doc["aws_iam"] = json!({
            "login_endpoint": format!("{base}/auth/external/principal/login"),
            "server_id": server_id,
            "server_id_header": "X-Sluice-Server-ID",
        });
    }
    Ok(Json(doc))
}

/// The token JSON every login returns (OAuth2 shape plus lakeFS's `token`/`token_expiration`).
fn token_body(login: &Login) -> serde_json::Value {
    let t = &login.token;
    let exp = chrono::Utc::now().timestamp() + t.expires_in;
    json!({
        "access_token": t.access_token,
        "token_type": "bearer",
        "expires_in": t.expires_in,
        "token": t.access_token,
        "token_expiration": exp,
        "user": login.principal.user_name,
    })
}

/// A login's answer: the token JSON, never cached.
fn token_response(login: &Login) -> Response {
    let mut resp = Json(token_body(login)).into_response();
    no_store(&mut resp);
    resp
}

fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn secure_cookies(base: &str) -> &'static str {
    if base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(resp: &mut Response, cookie: &str) -> Result<()> {
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(cookie).map_err(|e| ApiError(ServiceError::internal(e)))?,
    );
    Ok(())
}

#[derive(Deserialize)]
struct OidcLoginQuery {
    /// Where to send the browser after a successful login (a path on this server).
    return_to: Option<String>,
}

/// Browser SSO, step 1: redirect to the identity provider; the sealed login state rides in
/// a short-lived cookie scoped to the callback.
async fn oidc_login(State(s): State<AppState>, parts: Parts) -> Result<Response> {
    s.services.require_login_provider(LoginProvider::Oidc)?;
    let q: OidcLoginQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let start = s
        .services
        .begin_oidc_login(q.return_to, base_url(&parts, s.public_url.as_deref()))
        .await?;
    let mut resp = Redirect::to(&start.authorization_url).into_response();
    set_cookie(
        &mut resp,
        &format!(
            "{OIDC_STATE_COOKIE}={}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={LOGIN_STATE_TTL_SECS}{}",
            start.sealed_state,
            secure_cookies(&start.redirect_uri)
        ),
    )?;
    no_store(&mut resp);
    Ok(resp)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Browser SSO, step 2: finish the login, hand out the token and the session cookie.
async fn oidc_callback(State(s): State<AppState>, parts: Parts) -> Result<Response> {
    s.services.require_login_provider(LoginProvider::Oidc)?;
    let q: CallbackQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let sealed = named_cookie(&parts, OIDC_STATE_COOKIE);
    let done = s
        .services
        .finish_oidc_login(
            sealed.as_deref(),
            OidcCallback {
                code: q.code,
                state: q.state,
                error: q.error,
                error_description: q.error_description,
            },
        )
        .await?;
    let secure = secure_cookies(&done.redirect_uri);
    let mut resp = match &done.return_to {
        Some(path) => Redirect::to(path).into_response(),
        None => Json(token_body(&done.login)).into_response(),
    };
    let (token, ttl) = (&done.login.token.access_token, done.login.token.expires_in);
    set_cookie(
        &mut resp,
        &format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}{secure}"),
    )?;
    set_cookie(
        &mut resp,
        &format!(
            "{OIDC_STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
        ),
    )?;
    no_store(&mut resp);
    Ok(resp)
}

#[derive(Deserialize)]
struct LdapLoginRequest {
    username: String,
    password: String,
}

/// JSON or form body.
fn parse_body<T: serde::de::DeserializeOwned>(parts: &Parts, body: &Bytes) -> Result<T> {
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::bad_request(format!("malformed form body: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
    }
}

async fn ldap_login(State(s): State<AppState>, parts: Parts, body: Bytes) -> Result<Response> {
    s.services.require_login_provider(LoginProvider::Ldap)?;
    let req: LdapLoginRequest = parse_body(&parts, &body)?;
    let source = crate::extract::source_ip(&parts);
    if let Some(wait) = s.throttle.check(source, Some(&req.username)) {
        return Ok(crate::extract::throttled(source, Some(&req.username), wait));
    }
    match s.services.ldap_login(&req.username, &req.password).await {
        Ok(login) => Ok(token_response(&login)),
        Err(e) => {
            if matches!(e, ServiceError::Unauthorized(_)) {
                s.throttle.record_failure(source, Some(&req.username));
            }
            Err(e.into())
        }
    }
}

/// Accepts our shape `{"identity_token", "ttl_seconds"}` and the lakeFS client's
/// `{"identityRequest": {"identity_token"}, "token_expiration_duration"}`.
#[derive(Deserialize)]
struct PrincipalLoginRequest {
    identity_token: Option<String>,
    ttl_seconds: Option<i64>,
    #[serde(rename = "identityRequest")]
    identity_request: Option<IdentityRequest>,
    token_expiration_duration: Option<i64>,
}

#[derive(Deserialize)]
struct IdentityRequest {
    identity_token: String,
}

async fn aws_principal_login(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PrincipalLoginRequest>,
) -> Result<Response> {
    s.services.require_login_provider(LoginProvider::AwsIam)?;
    let token = req
        .identity_token
        .or(req.identity_request.map(|r| r.identity_token))
        .ok_or_else(|| ApiError::bad_request("missing identity_token"))?;
    let ttl = req.ttl_seconds.or(req.token_expiration_duration);
    let login = s.services.aws_iam_login(&token, ttl).await?;
    Ok(token_response(&login))
}

#[derive(Deserialize)]
struct WebIdentityRequest {
    code: String,
    #[allow(dead_code)]
    state: Option<String>,
    redirect_uri: String,
    ttl_seconds: Option<i64>,
    /// PKCE verifier, when the client used PKCE for the browser step.
    code_verifier: Option<String>,
}

/// Web-identity login: the client ran the browser step itself and hands over the code.
async fn web_identity_login(
    State(s): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response> {
    s.services.require_login_provider(LoginProvider::Oidc)?;
    let req: WebIdentityRequest = parse_body(&parts, &body)?;
    let login = s
        .services
        .web_identity_login(
            &req.code,
            &req.redirect_uri,
            req.code_verifier.as_deref(),
            req.ttl_seconds,
        )
        .await?;
    Ok(token_response(&login))
}

/// The AWS principals bound to a user (`/management/v1/users/{user}/external-principals`),
/// part of the management API's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_principals, attach_principal, detach_principal),
    components(schemas(PrincipalsResponse, AttachPrincipal, ExternalPrincipalView))
)]
pub struct PrincipalsApi;

#[utoipa::path(get, path = "/management/v1/users/{user}/external-principals", params(("user" = String, Path)),
    responses((status = 200, body = PrincipalsResponse)))]
async fn list_principals(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<PrincipalsResponse>> {
    Ok(Json(PrincipalsResponse {
        principals: s.services.list_external_principals(&c, &user).await?,
    }))
}

#[utoipa::path(post, path = "/management/v1/users/{user}/external-principals", params(("user" = String, Path)),
    request_body = AttachPrincipal, responses((status = 201, body = ExternalPrincipalView)))]
async fn attach_principal(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
    ApiJson(req): ApiJson<AttachPrincipal>,
) -> Result<(StatusCode, Json<ExternalPrincipalInfo>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .attach_external_principal(&c, &user, &req.arn)
                .await?,
        ),
    ))
}

#[utoipa::path(delete, path = "/management/v1/users/{user}/external-principals/{arn}",
    params(("user" = String, Path), ("arn" = String, Path)), responses((status = 204)))]
async fn detach_principal(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((user, arn)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services
        .detach_external_principal(&c, &user, &arn)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
