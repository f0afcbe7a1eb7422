//! Logins that end at a Sluice login endpoint, which answers with a Sluice token:
//! LDAP (`/auth/ldap/login`) and web identity (`/auth/sts/login`).

use super::oauth::{self, printable, TokenResponse};
use super::oidc::{Need, OidcOptions};
use super::pkce::BrowserStep;
use super::ui::{BrowserOpener, PromptSink};
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use serde_json::json;
use sluice_core::Secret;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// `{endpoint}{path}` (keeps a path prefix of the endpoint).
pub(crate) fn endpoint_url(endpoint: &url::Url, path: &str) -> String {
    format!("{}{path}", endpoint.as_str().trim_end_matches('/'))
}

/// POSTs JSON to a Sluice login endpoint and turns the answer into a token. `what` names the
/// login in messages ("LDAP login").
pub(crate) async fn sluice_login(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    what: &str,
) -> Result<Token> {
    let resp = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(body)
        .send()
        .await
        .map_err(|e| oauth::transport(url, &e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| oauth::transport(url, &e))?;
    if status.is_success() {
        let r: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol(format!("{what} at {url} answered an invalid body: {e}"))
        })?;
        return r.into_token(&format!("{what} at {url}"));
    }
    // Sluice's error model: {"error": {"message", "type", "code"}}.
    let parsed: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("Error")
                    .to_string(),
                e.get("message").and_then(|m| m.as_str())?.to_string(),
            ))
        });
    let (kind, message) = parsed.unwrap_or_else(|| ("http_error".into(), oauth::snippet(&bytes)));
    let message = printable(&message);
    Err(match status.as_u16() {
        401 | 403 => ClientError::Auth(format!("{what} refused: {message}")),
        404 => ClientError::Config(format!("{what} is not available at {url}: {message}")),
        s => ClientError::Api {
            status: s,
            kind,
            message: format!("{what}: {message}"),
        },
    })
}

/// LDAP username and password, exchanged at `/auth/ldap/login` for a Sluice token. Refreshing
/// logs in again with the same credentials.
pub struct LdapAuth {
    username: String,
    password: Secret,
}

impl LdapAuth {
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        LdapAuth {
            username: username.into(),
            password,
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for LdapAuth {
    fn name(&self) -> &'static str {
        "ldap"
    }

    fn cache_identity(&self) -> Option<String> {
        Some(format!("ldap:{}", self.username))
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let url = endpoint_url(&ctx.endpoint, "/auth/ldap/login");
        let body = json!({"username": self.username, "password": self.password.expose()});
        sluice_login(&ctx.http, &url, &body, "LDAP login").await
    }

    async fn refresh(&self, ctx: &AuthContext, _current: &Token) -> Result<Option<Token>> {
        self.authenticate(ctx).await.map(Some)
    }
}

/// An authorization code obtained by the caller's own browser step, for web identity.
#[derive(Clone)]
pub struct WebIdentityCode {
    pub code: String,
    pub state: Option<String>,
    /// The redirect URI the code was issued for (the server redeems it with the same one).
    pub redirect_uri: String,
    /// The PKCE verifier, when the browser step used PKCE.
    pub code_verifier: Option<String>,
}

impl fmt::Debug for WebIdentityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentityCode")
            .field("code", &"<redacted>")
            .field("state", &self.state)
            .field("redirect_uri", &self.redirect_uri)
            .field(
                "code_verifier",
                &self.code_verifier.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

enum Source {
    Code(WebIdentityCode),
    Browser {
        options: OidcOptions,
        step: BrowserStep,
    },
}

/// Web identity: an authorization code for the server's OIDC client is handed to
/// `/auth/sts/login`, which redeems it and answers with a Sluice token. Either with a code
/// the caller already has ([`WebIdentityAuth::with_code`]), or running the browser step
/// itself ([`WebIdentityAuth::browser`]: PKCE S256, loopback redirect, the server's
/// `oidc.client_id` / `authorization_endpoint` from its metadata). No refresh: a code is
/// single-use.
pub struct WebIdentityAuth {
    source: Source,
}

impl WebIdentityAuth {
    pub fn with_code(code: WebIdentityCode) -> Self {
        WebIdentityAuth {
            source: Source::Code(code),
        }
    }

    /// Runs the browser step; `options` may name the client id and authorization endpoint
    /// (else the server's metadata). The client must be the one the server redeems codes
    /// with (its `client_id`), so a client secret in `options` is never used.
    pub fn browser(options: OidcOptions) -> Self {
        WebIdentityAuth {
            source: Source::Browser {
                options,
                step: BrowserStep::default(),
            },
        }
    }

    fn step_mut(&mut self) -> Option<&mut BrowserStep> {
        match &mut self.source {
            Source::Browser { step, .. } => Some(step),
            Source::Code(_) => None,
        }
    }

    /// Browser variant: loopback port (default any).
    pub fn redirect_port(mut self, port: u16) -> Self {
        if let Some(s) = self.step_mut() {
            s.redirect_port = port;
        }
        self
    }

    /// Browser variant: how long to wait for the login (default 5 minutes).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        if let Some(s) = self.step_mut() {
            s.login_timeout = timeout;
        }
        self
    }

    /// Browser variant: how the URL is opened (default: the system browser).
    pub fn opener(mut self, opener: Arc<dyn BrowserOpener>) -> Self {
        if let Some(s) = self.step_mut() {
            s.opener = opener;
        }
        self
    }

    /// Browser variant: where the URL is shown (default: stderr).
    pub fn prompt_sink(mut self, sink: Arc<dyn PromptSink>) -> Self {
        if let Some(s) = self.step_mut() {
            s.sink = sink;
        }
        self
    }
}

#[async_trait::async_trait]
impl Authenticator for WebIdentityAuth {
    fn name(&self) -> &'static str {
        "web-identity"
    }

    fn needs_person(&self) -> bool {
        // A code handed over in code is used once; either way a new login needs a person.
        true
    }

    fn cache_identity(&self) -> Option<String> {
        match &self.source {
            Source::Code(_) => None,
            Source::Browser { options, .. } => Some(format!(
                "web-identity:{}",
                options.client_id.as_deref().unwrap_or("server-default")
            )),
        }
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let code = match &self.source {
            Source::Code(c) => c.clone(),
            Source::Browser { options, step } => {
                // The server redeems the code as its own (confidential) client; we only run
                // the browser step, so no secret is involved here.
                let mut o = options.clone();
                o.client_secret = None;
                let oidc = o.resolve(ctx, Need::Authorization).await?;
                let g = step.run(&oidc).await?;
                WebIdentityCode {
                    code: g.code,
                    state: Some(g.state),
                    redirect_uri: g.redirect_uri,
                    code_verifier: Some(g.verifier),
                }
            }
        };
        let url = endpoint_url(&ctx.endpoint, "/auth/sts/login");
        let mut body = json!({"code": code.code, "redirect_uri": code.redirect_uri});
        if let Some(s) = &code.state {
            body["state"] = json!(s);
        }
        if let Some(v) = &code.code_verifier {
            body["code_verifier"] = json!(v);
        }
        sluice_login(&ctx.http, &url, &body, "web identity login").await
    }
}
