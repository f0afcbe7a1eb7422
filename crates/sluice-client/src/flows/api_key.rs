//! API keys: one string that carries the endpoint, client id, secret and organisation.
//!
//! Format: `sluice_` followed by the unpadded base64url (RFC 4648 §5) of the JSON object
//! `{"endpoint": "...", "client_id": "...", "client_secret": "...", "org": "..."}` (`org`
//! optional). The login is client credentials against the encoded endpoint.

use super::client_credentials::{sluice_token_url, ClientCredentialsAuth};
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_core::Secret;
use std::fmt;

/// Every API key starts with this.
pub const API_KEY_PREFIX: &str = "sluice_";

/// The parts of an API key.
#[derive(Clone)]
pub struct ApiKey {
    /// The Sluice endpoint (`https://host[:port][/prefix]`).
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub org: Option<String>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("org", &self.org)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    endpoint: String,
    client_id: String,
    client_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
}

/// `sluice_` + base64url(JSON).
pub fn encode_api_key(key: &ApiKey) -> String {
    let wire = Wire {
        endpoint: key.endpoint.clone(),
        client_id: key.client_id.clone(),
        client_secret: key.client_secret.expose().to_string(),
        org: key.org.clone(),
    };
    let json = serde_json::to_vec(&wire).expect("serializing strings cannot fail");
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
}

/// Parses and checks an API key (prefix, encoding, an http(s) endpoint, a client id and a
/// secret). Errors never repeat the key.
pub fn decode_api_key(s: &str) -> Result<ApiKey> {
    let bad = |why: &str| {
        ClientError::Config(format!(
            "api-key (SLUICE_API_KEY) is not a valid Sluice API key: {why}"
        ))
    };
    let body = s
        .trim()
        .strip_prefix(API_KEY_PREFIX)
        .ok_or_else(|| bad("it does not start with 'sluice_'"))?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .or_else(|_| URL_SAFE.decode(body))
        .map_err(|_| bad("not base64url after the prefix"))?;
    let w: Wire = serde_json::from_slice(&json).map_err(|_| bad("not the expected JSON object"))?;
    let endpoint = url::Url::parse(&w.endpoint).map_err(|_| bad("its endpoint is not a URL"))?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
        return Err(bad("its endpoint is not an http(s) URL"));
    }
    if w.client_id.is_empty() || w.client_secret.is_empty() {
        return Err(bad("the client id or secret is empty"));
    }
    Ok(ApiKey {
        endpoint: w.endpoint,
        client_id: w.client_id,
        client_secret: Secret::new(w.client_secret),
        org: w.org.filter(|o| !o.is_empty()),
    })
}

/// Client credentials against the API key's endpoint (token URL: Sluice's
/// `/v1/oauth/tokens` there for an access key id, else that server's OIDC token endpoint).
pub struct ApiKeyAuth {
    key: ApiKey,
    inner: ClientCredentialsAuth,
}

impl ApiKeyAuth {
    pub fn new(key: ApiKey) -> Result<Self> {
        let endpoint = url::Url::parse(&key.endpoint).map_err(|e| {
            ClientError::Config(format!("api-key endpoint '{}': {e}", key.endpoint))
        })?;
        let inner = ClientCredentialsAuth::new(key.client_id.clone(), key.client_secret.clone())
            .against(endpoint, "api-key");
        Ok(ApiKeyAuth { key, inner })
    }

    /// Decodes `api_key` ([`decode_api_key`]).
    pub fn from_key_string(api_key: &str) -> Result<Self> {
        Self::new(decode_api_key(api_key)?)
    }

    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// `{endpoint}/v1/oauth/tokens` of the key's endpoint.
    pub fn sluice_token_url(&self) -> String {
        url::Url::parse(&self.key.endpoint)
            .map(|u| sluice_token_url(&u))
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Authenticator for ApiKeyAuth {
    fn name(&self) -> &'static str {
        "api-key"
    }

    fn cache_identity(&self) -> Option<String> {
        self.inner.cache_identity()
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        self.inner.authenticate(ctx).await
    }

    async fn refresh(&self, ctx: &AuthContext, current: &Token) -> Result<Option<Token>> {
        self.inner.refresh(ctx, current).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let k = ApiKey {
            endpoint: "https://lake.example.com/sluice".into(),
            client_id: "AKIAEXAMPLE000000001".into(),
            client_secret: Secret::new("s3cr3t/+=é"),
            org: Some("acme".into()),
        };
        let s = encode_api_key(&k);
        assert!(s.starts_with("sluice_"));
        assert!(
            s[7..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        let d = decode_api_key(&s).unwrap();
        assert_eq!(
            (
                d.endpoint.as_str(),
                d.client_id.as_str(),
                d.client_secret.expose(),
                d.org.as_deref()
            ),
            (
                k.endpoint.as_str(),
                k.client_id.as_str(),
                "s3cr3t/+=é",
                Some("acme")
            )
        );
        assert!(!format!("{d:?}").contains("s3cr3t"));
        let no_org = ApiKey {
            org: None,
            ..k.clone()
        };
        assert!(decode_api_key(&encode_api_key(&no_org))
            .unwrap()
            .org
            .is_none());

        for bad in [
            "",
            "sluice_",
            "nope_abc",
            "sluice_!!!",
            &format!("sluice_{}", URL_SAFE_NO_PAD.encode("[]")),
            &format!(
                "sluice_{}",
                URL_SAFE_NO_PAD
                    .encode(r#"{"endpoint":"ftp://x","client_id":"a","client_secret":"b"}"#)
            ),
            &format!(
                "sluice_{}",
                URL_SAFE_NO_PAD
                    .encode(r#"{"endpoint":"https://x","client_id":"","client_secret":"b"}"#)
            ),
        ] {
            let e = decode_api_key(bad).unwrap_err();
            assert!(matches!(e, ClientError::Config(_)), "{bad}: {e}");
        }
        let e = decode_api_key(&s.replace("sluice_", "sluice_x"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains(&s[7..]), "the key must not be echoed: {e}");
    }
}
