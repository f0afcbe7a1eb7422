//! Login endpoints of the external identity providers and the server's auth metadata.
//! Every flow ends in a Sluice token (and, for browser SSO, a session cookie).

use crate::error::ApiError;
use crate::extract::{base_url, named_cookie, ApiJson, ApiPath, Caller, SESSION_COOKIE};
use crate::login::{ldap_principal, oidc_error, oidc_principal};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_api::{AttachPrincipal, ExternalPrincipalView, PrincipalsResponse};
use sluice_core::Principal;
use sluice_service::login::{ExternalLogin, ExternalPrincipalInfo};
use sluice_service::ServiceError;

type Result<T> = std::result::Result<T, ApiError>;

const OIDC_STATE_COOKIE: &str = "sluice_oidc_login";
const LOGIN_STATE_TTL_SECS: i64 = 600;

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

fn disabled(what: &str) -> ApiError {
    ApiError::not_found(format!("{what} is not configured on this server"))
}

/// RFC 8414-style metadata: Sluice's own token endpoint at the top level, and what a
/// client needs for each configured provider beneath it.
async fn metadata(State(s): State<AppState>, parts: Parts) -> Result<Json<serde_json::Value>> {
    let base = base_url(&parts, s.public_url.as_deref());
    let mut doc = json!({
        "issuer": base,
        "token_endpoint": format!("{base}/v1/oauth/tokens"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "sluice_version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(oidc) = &s.providers.oidc {
        let cfg = oidc.config();
        // An unreachable identity provider must not hide Sluice's own endpoints.
        let md = match oidc.metadata().await {
            Ok(md) => md,
            Err(e) => {
                tracing::warn!(error = %e, "identity provider metadata unavailable");
                doc["oidc"] = json!({"available": false, "issuer": cfg.url});
                return Ok(Json(finish_metadata(doc, &s, &base)));
            }
        };
        let audience = cfg
            .allowed_audiences
            .first()
            .cloned()
            .unwrap_or_else(|| cfg.client_id.clone());
        doc["oidc"] = json!({
            "issuer": md.issuer,
            "authorization_endpoint": md.authorization_endpoint,
            "token_endpoint": md.token_endpoint,
            "device_authorization_endpoint": md.device_authorization_endpoint,
            "jwks_uri": md.jwks_uri,
            "client_id": cfg.public_client_id.clone().unwrap_or_else(|| cfg.client_id.clone()),
            "scopes": cfg.scopes,
            "audience": audience,
            "available": true,
            "sso_login_endpoint": format!("{base}/auth/oidc/login"),
            "web_identity_login_endpoint": format!("{base}/auth/sts/login"),
        });
    }
    Ok(Json(finish_metadata(doc, &s, &base)))
}

fn finish_metadata(mut doc: serde_json::Value, s: &AppState, base: &str) -> serde_json::Value {
    if s.providers.ldap.is_some() {
        doc["ldap"] = json!({"login_endpoint": format!("{base}/auth/ldap/login")});
    }
    if let Some(aws) = &s.providers.aws_iam {
        doc["aws_iam"] = json!({
            "login_endpoint": format!("{base}/auth/external/principal/login"),
            "server_id": aws.config().server_id,
            "server_id_header": "X-Sluice-Server-ID",
        });
    }
    doc
}

/// The token JSON every login returns (OAuth2 shape plus lakeFS's `token`/`token_expiration`).
fn token_response(
    s: &AppState,
    p: &Principal,
    ttl: Option<i64>,
) -> Result<(serde_json::Value, String, i64)> {
    let t = s.services.issue_session_token(p, ttl)?;
    let exp = chrono::Utc::now().timestamp() + t.expires_in;
    let body = json!({
        "access_token": t.access_token,
        "token_type": "bearer",
        "expires_in": t.expires_in,
        "token": t.access_token,
        "token_expiration": exp,
        "user": p.user_name,
    });
    Ok((body, t.access_token, t.expires_in))
}

fn no_store(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    return_to: Option<String>,
    exp: i64,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut b);
    B64URL.encode(b)
}

fn secure_cookies(base: &str) -> &'static str {
    if base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Deserialize)]
struct OidcLoginQuery {
    /// Where to send the browser after a successful login (a path on this server).
    return_to: Option<String>,
}

/// Browser SSO, step 1: authorization code + PKCE + state + nonce. The state lives in an
/// encrypted, short-lived cookie, so any replica can finish the login.
async fn oidc_login(State(s): State<AppState>, parts: Parts) -> Result<Response> {
    let oidc = s.providers.oidc.clone().ok_or_else(|| disabled("OIDC"))?;
    let q: OidcLoginQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    // Only local paths: an absolute URL here would make the login an open redirect.
    if let Some(r) = &q.return_to {
        // Browsers drop tabs and newlines from URLs, so "/\t/evil" would become "//evil".
        if !r.starts_with('/')
            || r.starts_with("//")
            || r.contains('\\')
            || r.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ApiError::bad_request(
                "return_to must be a path on this server",
            ));
        }
    }
    let base = oidc
        .config()
        .callback_base_url
        .clone()
        .unwrap_or_else(|| base_url(&parts, s.public_url.as_deref()));
    let redirect_uri = format!("{}/auth/oidc/callback", base.trim_end_matches('/'));
    let (verifier, challenge) = sluice_auth::oidc::pkce_pair();
    let st = LoginState {
        state: random_token(),
        nonce: random_token(),
        verifier,
        redirect_uri: redirect_uri.clone(),
        return_to: q.return_to,
        exp: chrono::Utc::now().timestamp() + LOGIN_STATE_TTL_SECS,
    };
    let url = oidc
        .authorization_url(&redirect_uri, &st.state, &st.nonce, &challenge)
        .await
        .map_err(oidc_error)?;
    let sealed = B64URL.encode(
        s.services
            .seal(&serde_json::to_vec(&st).map_err(|e| ApiError(ServiceError::internal(e)))?),
    );
    let mut resp = Redirect::to(&url).into_response();
    let cookie = format!(
        "{OIDC_STATE_COOKIE}={sealed}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={LOGIN_STATE_TTL_SECS}{}",
        secure_cookies(&base)
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError(ServiceError::internal(e)))?,
    );
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

/// Browser SSO, step 2: check state, exchange the code (PKCE verifier, nonce), provision
/// the user, hand out a Sluice token and the session cookie.
async fn oidc_callback(State(s): State<AppState>, parts: Parts) -> Result<Response> {
    let oidc = s.providers.oidc.clone().ok_or_else(|| disabled("OIDC"))?;
    let q: CallbackQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    if let Some(err) = q.error {
        return Err(ApiError(ServiceError::Unauthorized(format!(
            "the identity provider refused the login: {err}{}",
            q.error_description
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ))));
    }
    let bad_state = || {
        ApiError(ServiceError::Unauthorized(
            "login state is missing, expired or does not match; start again at /auth/oidc/login"
                .into(),
        ))
    };
    let sealed = named_cookie(&parts, OIDC_STATE_COOKIE).ok_or_else(bad_state)?;
    let st: LoginState = B64URL
        .decode(sealed.as_bytes())
        .ok()
        .and_then(|b| s.services.unseal(&b))
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(bad_state)?;
    let given = q.state.unwrap_or_default();
    if st.exp < chrono::Utc::now().timestamp()
        || !sluice_core::Secret::new(st.state.clone()).ct_eq(&given)
    {
        return Err(bad_state());
    }
    let code = q
        .code
        .ok_or_else(|| ApiError::bad_request("missing code"))?;
    let identity = oidc
        .exchange_code(&code, &st.redirect_uri, Some(&st.verifier), Some(&st.nonce))
        .await
        .map_err(oidc_error)?;
    let principal = oidc_principal(&s, "oidc", identity).await?;
    let (body, token, ttl) = token_response(&s, &principal, None)?;
    let secure = secure_cookies(&st.redirect_uri);
    let mut resp = match &st.return_to {
        Some(path) => Redirect::to(path).into_response(),
        None => Json(body).into_response(),
    };
    let session =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ttl}{secure}");
    let clear =
        format!("{OIDC_STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    for c in [session, clear] {
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(|e| ApiError(ServiceError::internal(e)))?,
        );
    }
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
    if s.providers.ldap.is_none() {
        return Err(disabled("LDAP"));
    }
    let req: LdapLoginRequest = parse_body(&parts, &body)?;
    let source = crate::extract::source_ip(&parts);
    if let Some(wait) = s.throttle.check(source, Some(&req.username)) {
        return Ok(crate::extract::throttled(source, Some(&req.username), wait));
    }
    let principal = match ldap_principal(&s, &req.username, &req.password).await {
        Ok(p) => p,
        Err(e) => {
            if matches!(e.0, ServiceError::Unauthorized(_)) {
                s.throttle.record_failure(source, Some(&req.username));
            }
            return Err(e);
        }
    };
    let (body, _, _) = token_response(&s, &principal, None)?;
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    Ok(resp)
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
    let aws = s
        .providers
        .aws_iam
        .clone()
        .ok_or_else(|| disabled("AWS IAM login"))?;
    let token = req
        .identity_token
        .or(req.identity_request.map(|r| r.identity_token))
        .ok_or_else(|| ApiError::bad_request("missing identity_token"))?;
    let principal = match aws.verify(&token, chrono::Utc::now()).await {
        Ok(p) => p,
        Err(sluice_auth::aws_iam::AwsIamError::Invalid(m)) => {
            tracing::info!(reason = %m, "AWS IAM login refused");
            return Err(ApiError(ServiceError::Unauthorized(format!(
                "AWS identity rejected: {m}"
            ))));
        }
        Err(e) => {
            tracing::warn!(error = %e, "AWS IAM login: STS unavailable");
            return Err(ApiError(ServiceError::Unavailable(
                "AWS STS is unavailable".into(),
            )));
        }
    };
    let linked = s
        .services
        .store()
        .get_external_identity("aws-iam", &principal.principal_arn)
        .await
        .map_err(|e| ApiError(e.into()))?;
    let cfg = aws.config();
    if linked.is_none() && cfg.auto_provision_group.is_none() {
        return Err(ApiError(ServiceError::Unauthorized(format!(
            "principal {} is not attached to any user",
            principal.principal_arn
        ))));
    }
    // Name for an auto-provisioned user: the role or user name from the ARN.
    let preferred = principal
        .principal_arn
        .rsplit('/')
        .next()
        .unwrap_or("aws-principal")
        .to_string();
    let p = s
        .services
        .login_external(ExternalLogin {
            source: "aws-iam",
            subject: principal.principal_arn.clone(),
            preferred_name: preferred,
            email: None,
            friendly_name: Some(principal.arn.clone()),
            initial_groups: cfg.auto_provision_group.iter().cloned().collect(),
        })
        .await?;
    let ttl = req
        .ttl_seconds
        .or(req.token_expiration_duration)
        .map(|t| t.min(cfg.max_session_ttl_seconds as i64));
    let (body, _, _) = token_response(&s, &p, ttl)?;
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    Ok(resp)
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
    let oidc = s.providers.oidc.clone().ok_or_else(|| disabled("OIDC"))?;
    let req: WebIdentityRequest = parse_body(&parts, &body)?;
    let identity = oidc
        .exchange_code(
            &req.code,
            &req.redirect_uri,
            req.code_verifier.as_deref(),
            None,
        )
        .await
        .map_err(oidc_error)?;
    let p = oidc_principal(&s, "web-identity", identity).await?;
    let (body, _, _) = token_response(&s, &p, req.ttl_seconds)?;
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    Ok(resp)
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
