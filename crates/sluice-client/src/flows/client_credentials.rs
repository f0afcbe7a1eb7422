//! OAuth 2.0 client credentials (RFC 6749 §4.4) against Sluice or an external provider, and
//! Sluice access keys (HTTP Basic, or exchanged for a JWT the same way).

use super::oauth::{self, ClientAuth};
use super::oidc::check_endpoint;
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use sluice_core::Secret;

/// `{endpoint}/v1/oauth/tokens`, Sluice's own token endpoint (keeps a path prefix).
pub(crate) fn sluice_token_url(endpoint: &url::Url) -> String {
    format!(
        "{}/v1/oauth/tokens",
        endpoint.as_str().trim_end_matches('/')
    )
}

/// Looks like a Sluice / AWS-style access key id (`AKIA` + 16 upper-case letters or digits).
pub(crate) fn is_access_key_id(id: &str) -> bool {
    sluice_core::AccessKeyId::parse(id).is_ok()
}

/// Client credentials grant. The token URL is `token_url` when set; otherwise the server
/// metadata's `oidc.token_endpoint` when the client id is not an access key id (an IdP
/// client); otherwise Sluice's `/v1/oauth/tokens`. The client authenticates with
/// `client_secret_basic`. Refreshing repeats the grant.
pub struct ClientCredentialsAuth {
    client_id: String,
    client_secret: Secret,
    token_url: Option<String>,
    scopes: Vec<String>,
    audience: Option<String>,
    allow_insecure_http: bool,
    /// A Sluice endpoint other than the client's (the api-key flow's encoded endpoint).
    sluice_endpoint: Option<url::Url>,
    name: &'static str,
}

impl ClientCredentialsAuth {
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        ClientCredentialsAuth {
            client_id: client_id.into(),
            client_secret,
            token_url: None,
            scopes: Vec::new(),
            audience: None,
            allow_insecure_http: false,
            sluice_endpoint: None,
            name: "client-credentials",
        }
    }

    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Space-joined into `scope`.
    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sent as `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Allow a plain-http token URL on a non-loopback host.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    pub(crate) fn against(mut self, endpoint: url::Url, name: &'static str) -> Self {
        self.sluice_endpoint = Some(endpoint);
        self.name = name;
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token URL this client posts to.
    pub async fn resolve_token_url(&self, ctx: &AuthContext) -> Result<String> {
        if let Some(u) = &self.token_url {
            return Ok(u.clone());
        }
        let base = self.sluice_endpoint.as_ref().unwrap_or(&ctx.endpoint);
        if !is_access_key_id(&self.client_id) {
            let md = match &self.sluice_endpoint {
                Some(other) if other != &ctx.endpoint => fetch_metadata(&ctx.http, other).await?,
                _ => ctx.server_metadata().await?.clone(),
            };
            if let Some(t) = md
                .pointer("/oidc/token_endpoint")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                return Ok(t.to_string());
            }
        }
        Ok(sluice_token_url(base))
    }
}

/// `GET {base}/.well-known/oauth-authorization-server` (for an endpoint other than the
/// client's own, whose metadata the [`AuthContext`] caches).
pub(crate) async fn fetch_metadata(
    http: &reqwest::Client,
    base: &url::Url,
) -> Result<serde_json::Value> {
    let url = format!(
        "{}/.well-known/oauth-authorization-server",
        base.as_str().trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| oauth::transport(&url, &e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| oauth::transport(&url, &e))?;
    if !status.is_success() {
        return Err(ClientError::Api {
            status: status.as_u16(),
            kind: "http_error".into(),
            message: format!("{url}: {}", oauth::snippet(&body)),
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Protocol(format!("{url}: invalid metadata: {e}")))
}

pub(crate) async fn client_credentials_grant(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: &Secret,
    scopes: &[String],
    audience: Option<&str>,
) -> Result<Token> {
    let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
    if !scopes.is_empty() {
        form.push(("scope".into(), scopes.join(" ")));
    }
    if let Some(a) = audience {
        form.push(("audience".into(), a.to_string()));
    }
    let client = ClientAuth::Basic {
        client_id: client_id.to_string(),
        client_secret: client_secret.clone(),
    };
    let what = format!("token endpoint {token_url}");
    oauth::token_request(http, token_url, Some(&client), form)
        .await
        .map_err(|f| f.into_error(&what))?
        .into_token(&what)
}

#[async_trait::async_trait]
impl Authenticator for ClientCredentialsAuth {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cache_identity(&self) -> Option<String> {
        Some(format!("{}:{}", self.name, self.client_id))
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let url = self.resolve_token_url(ctx).await?;
        check_endpoint(&url, self.allow_insecure_http)?;
        client_credentials_grant(
            &ctx.http,
            &url,
            &self.client_id,
            &self.client_secret,
            &self.scopes,
            self.audience.as_deref(),
        )
        .await
    }

    async fn refresh(&self, ctx: &AuthContext, _current: &Token) -> Result<Option<Token>> {
        self.authenticate(ctx).await.map(Some)
    }
}

/// A Sluice access key. Without `exchange` it is sent as HTTP Basic on every request
/// ([`Authenticator::basic_credentials`]; there is no token, `authenticate` fails). With
/// `exchange` it is traded at `{endpoint}/v1/oauth/tokens` (client credentials, key in
/// Basic) for a JWT, and refreshing trades it again.
pub struct AccessKeyAuth {
    access_key_id: String,
    secret_access_key: Secret,
    exchange: bool,
}

impl AccessKeyAuth {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
        exchange: bool,
    ) -> Self {
        AccessKeyAuth {
            access_key_id: access_key_id.into(),
            secret_access_key,
            exchange,
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn exchanges(&self) -> bool {
        self.exchange
    }
}

#[async_trait::async_trait]
impl Authenticator for AccessKeyAuth {
    fn name(&self) -> &'static str {
        "access-key"
    }

    fn cache_identity(&self) -> Option<String> {
        // Basic mode has nothing to cache.
        self.exchange
            .then(|| format!("access-key:{}", self.access_key_id))
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        if !self.exchange {
            return Err(ClientError::Config(
                "access-key login without exchange-access-key sends the key as HTTP Basic on every \
                 request; there is no token to obtain (set exchange-access-key to trade it for a JWT)"
                    .into(),
            ));
        }
        let url = sluice_token_url(&ctx.endpoint);
        client_credentials_grant(
            &ctx.http,
            &url,
            &self.access_key_id,
            &self.secret_access_key,
            &[],
            None,
        )
        .await
    }

    async fn refresh(&self, ctx: &AuthContext, _current: &Token) -> Result<Option<Token>> {
        if !self.exchange {
            return Ok(None);
        }
        self.authenticate(ctx).await.map(Some)
    }

    fn basic_credentials(&self) -> Option<(String, Secret)> {
        (!self.exchange).then(|| (self.access_key_id.clone(), self.secret_access_key.clone()))
    }
}

/// A fixed bearer token; nothing to refresh.
pub struct StaticTokenAuth {
    token: Secret,
}

impl StaticTokenAuth {
    pub fn new(token: Secret) -> Self {
        StaticTokenAuth { token }
    }
}

#[async_trait::async_trait]
impl Authenticator for StaticTokenAuth {
    fn name(&self) -> &'static str {
        "static-token"
    }

    fn cache_identity(&self) -> Option<String> {
        None
    }

    async fn authenticate(&self, _ctx: &AuthContext) -> Result<Token> {
        Ok(Token {
            access_token: self.token.clone(),
            refresh_token: None,
            expires_at: None,
        })
    }
}
