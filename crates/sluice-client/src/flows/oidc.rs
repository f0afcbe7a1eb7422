//! Where the OIDC flows (PKCE, device, web identity) get their provider settings: explicit
//! options first, then the `oidc` section of the Sluice server's auth metadata.

use super::oauth::ClientAuth;
use crate::auth::AuthContext;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use sluice_core::Secret;
use std::fmt;

/// Identity-provider settings of the OIDC flows. Every `None` (and empty `scopes`) is taken
/// from the `oidc` section of the server's `/.well-known/oauth-authorization-server`
/// (`client_id`, `authorization_endpoint`, `token_endpoint`, `device_authorization_endpoint`,
/// `scopes`, `audience`); the metadata is only fetched when something is missing.
#[derive(Clone, Default)]
pub struct OidcOptions {
    pub client_id: Option<String>,
    /// Set for a confidential client (sent as `client_secret_basic`); public clients have none.
    pub client_secret: Option<Secret>,
    /// The provider's issuer, to check the `iss` of an authorization response (RFC 9207).
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    /// Space-joined into `scope`. Include `offline_access` for a refresh token (the PKCE flow
    /// then also sends `prompt=consent`, as OpenID Connect Core §11 requires).
    pub scopes: Vec<String>,
    /// Sent as `audience` (ignored by providers that do not know the parameter).
    pub audience: Option<String>,
    /// Allow plain-http provider endpoints on non-loopback hosts (`insecure`).
    pub allow_insecure_http: bool,
}

impl fmt::Debug for OidcOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcOptions")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field(
                "device_authorization_endpoint",
                &self.device_authorization_endpoint,
            )
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl OidcOptions {
    /// `client-id`, `client-secret`, `token-url`, `scopes`, `audience`, `insecure`.
    pub fn from_config(c: &ClientConfig) -> Self {
        OidcOptions {
            client_id: c.client_id.clone().filter(|s| !s.is_empty()),
            client_secret: c.client_secret.clone().filter(|s| !s.is_empty()),
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: c.token_url.clone().filter(|s| !s.is_empty()),
            device_authorization_endpoint: None,
            scopes: c.scopes.clone(),
            audience: c.audience.clone().filter(|s| !s.is_empty()),
            allow_insecure_http: c.insecure,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Authorization,
    Device,
    TokenOnly,
}

pub(crate) struct ResolvedOidc {
    pub issuer: Option<String>,
    pub client: ClientAuth,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: String,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
}

impl ResolvedOidc {
    pub(crate) fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

fn str_field(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl OidcOptions {
    pub(crate) async fn resolve(&self, ctx: &AuthContext, need: Need) -> Result<ResolvedOidc> {
        let missing = self.client_id.is_none()
            || self.token_endpoint.is_none()
            || (need == Need::Authorization && self.authorization_endpoint.is_none())
            || (need == Need::Device && self.device_authorization_endpoint.is_none());
        let md = if missing {
            let doc = ctx.server_metadata().await?;
            match doc.get("oidc") {
                Some(o) if o.is_object() => Some(o.clone()),
                _ => {
                    return Err(ClientError::Config(format!(
                        "the Sluice server at {} advertises no OIDC provider (no `oidc` section in \
                         /.well-known/oauth-authorization-server); set client-id and token-url \
                         (SLUICE_CLIENT_ID, SLUICE_TOKEN_URL) and the provider endpoints explicitly",
                        ctx.endpoint
                    )))
                }
            }
        } else {
            None
        };
        let from_md = |k: &str| md.as_ref().and_then(|m| str_field(m, k));
        let pick = |explicit: &Option<String>, k: &str| explicit.clone().or_else(|| from_md(k));
        let client_id = pick(&self.client_id, "client_id").ok_or_else(|| {
            ClientError::Config("no OIDC client id: set client-id (SLUICE_CLIENT_ID)".into())
        })?;
        let token_endpoint = pick(&self.token_endpoint, "token_endpoint").ok_or_else(|| {
            ClientError::Config("no OIDC token endpoint: set token-url (SLUICE_TOKEN_URL)".into())
        })?;
        let authorization_endpoint =
            pick(&self.authorization_endpoint, "authorization_endpoint").unwrap_or_default();
        let device_authorization_endpoint = pick(
            &self.device_authorization_endpoint,
            "device_authorization_endpoint",
        )
        .unwrap_or_default();
        match need {
            Need::Authorization if authorization_endpoint.is_empty() => {
                return Err(ClientError::Config(
                    "the identity provider has no authorization endpoint".into(),
                ))
            }
            Need::Device if device_authorization_endpoint.is_empty() => {
                return Err(ClientError::Config(
                    "the identity provider offers no device authorization endpoint (RFC 8628); \
                     use the pkce login instead"
                        .into(),
                ))
            }
            _ => {}
        }
        let mut endpoints = vec![&token_endpoint];
        if need == Need::Authorization {
            endpoints.push(&authorization_endpoint);
        }
        if need == Need::Device {
            endpoints.push(&device_authorization_endpoint);
        }
        for e in endpoints {
            check_endpoint(e, self.allow_insecure_http)?;
        }
        let scopes = if !self.scopes.is_empty() {
            self.scopes.clone()
        } else {
            let advertised: Vec<String> = md
                .as_ref()
                .and_then(|m| m.get("scopes"))
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if advertised.is_empty() {
                vec!["openid".to_string()]
            } else {
                advertised
            }
        };
        // The server advertises its client id as the audience when it has no API audience:
        // that is not a resource to ask for.
        let audience = self
            .audience
            .clone()
            .or_else(|| from_md("audience").filter(|a| *a != client_id));
        Ok(ResolvedOidc {
            issuer: pick(&self.issuer, "issuer"),
            client: ClientAuth::new(&client_id, self.client_secret.as_ref()),
            authorization_endpoint,
            token_endpoint,
            device_authorization_endpoint,
            scopes,
            audience,
        })
    }
}

/// Provider endpoints must be https, or http on a loopback host, unless `insecure`.
pub(crate) fn check_endpoint(url: &str, insecure: bool) -> Result<url::Url> {
    let u = url::Url::parse(url)
        .map_err(|e| ClientError::Config(format!("'{url}' is not a URL: {e}")))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if insecure || is_loopback(&u) => Ok(u),
        "http" => Err(ClientError::Config(format!(
            "{url} is plain http on a non-loopback host; credentials would travel in clear text \
             (use https, or set insecure only if you must)"
        ))),
        s => Err(ClientError::Config(format!(
            "{url}: unsupported scheme '{s}'"
        ))),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
