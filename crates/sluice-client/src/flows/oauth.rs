//! OAuth 2.0 token-endpoint grammar shared by the flows (RFC 6749 §2.3.1, §4.1.3, §4.4, §5, §6;
//! RFC 8628 §3.4), and the parsing of Sluice's own login responses.

use crate::auth::Token;
use crate::error::{ClientError, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use sluice_core::Secret;
use std::fmt;

/// How the client authenticates itself to a token endpoint.
#[derive(Clone)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1): id and secret are each
    /// `application/x-www-form-urlencoded` before they are joined with `:` and base64-encoded.
    Basic {
        client_id: String,
        client_secret: Secret,
    },
    /// A public client: `client_id` in the request body, no secret.
    Public { client_id: String },
}

impl ClientAuth {
    pub(crate) fn new(client_id: &str, client_secret: Option<&Secret>) -> Self {
        match client_secret.filter(|s| !s.is_empty()) {
            Some(s) => ClientAuth::Basic {
                client_id: client_id.to_string(),
                client_secret: s.clone(),
            },
            None => ClientAuth::Public {
                client_id: client_id.to_string(),
            },
        }
    }

    pub(crate) fn client_id(&self) -> &str {
        match self {
            ClientAuth::Basic { client_id, .. } | ClientAuth::Public { client_id } => client_id,
        }
    }

    /// Adds the client authentication to a token-endpoint (or device-authorization) request.
    pub(crate) fn apply(
        &self,
        req: reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
    ) -> reqwest::RequestBuilder {
        match self {
            ClientAuth::Basic {
                client_id,
                client_secret,
            } => req.header(
                reqwest::header::AUTHORIZATION,
                basic_header(client_id, client_secret.expose()),
            ),
            ClientAuth::Public { client_id } => {
                form.push(("client_id".into(), client_id.clone()));
                req
            }
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
pub(crate) fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        B64.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// A successful token response (RFC 6749 §5.1), plus Sluice's `token`/`token_expiration`.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: Option<String>,
    token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    token_expiration: Option<i64>,
    refresh_token: Option<String>,
}

impl TokenResponse {
    /// The token, with `expires_at` from `expires_in` (seconds from now) or else
    /// `token_expiration` (unix seconds). Refuses a token type other than Bearer (RFC 6749
    /// §7.1: a client must not use a token whose type it does not understand).
    pub(crate) fn into_token(self, what: &str) -> Result<Token> {
        if let Some(tt) = &self.token_type {
            if !tt.eq_ignore_ascii_case("bearer") {
                return Err(ClientError::Protocol(format!(
                    "{what} issued a token of type '{}', only Bearer tokens are supported",
                    printable(tt)
                )));
            }
        }
        let access = self
            .access_token
            .or(self.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ClientError::Protocol(format!("{what} answered without an access_token"))
            })?;
        let expires_at = match self.expires_in.as_ref().and_then(json_seconds) {
            Some(secs) => Some(expires_in_to_at(secs)),
            None => self
                .token_expiration
                .and_then(|t| Utc.timestamp_opt(t, 0).single()),
        };
        Ok(Token {
            access_token: Secret::new(access),
            refresh_token: self
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            expires_at,
        })
    }
}

/// `expires_in` as a JSON number or (some providers) a string of digits.
pub(crate) fn json_seconds(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn expires_in_to_at(secs: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(secs.clamp(0, 10 * 365 * 24 * 3600))
}

/// An error response of a token endpoint (RFC 6749 §5.2, RFC 8628 §3.5).
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub status: u16,
    pub error: String,
    pub description: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", printable(&self.error))?;
        if let Some(d) = &self.description {
            write!(f, " ({})", printable(d))?;
        }
        Ok(())
    }
}

/// What a token request can end in besides success.
pub(crate) enum TokenFailure {
    /// The endpoint answered with an OAuth error body.
    OAuth(OAuthError),
    /// Anything else (transport, a non-OAuth error page, a malformed body).
    Other(ClientError),
}

impl TokenFailure {
    pub(crate) fn into_error(self, what: &str) -> ClientError {
        match self {
            TokenFailure::OAuth(e) if e.status >= 500 => ClientError::Api {
                status: e.status,
                kind: e.error.clone(),
                message: format!("{what}: {e}"),
            },
            TokenFailure::OAuth(e) => ClientError::Auth(format!("{what} refused: {e}")),
            TokenFailure::Other(e) => e,
        }
    }
}

pub(crate) fn transport(url: &str, e: &reqwest::Error) -> ClientError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    ClientError::Transport {
        url: url.to_string(),
        message,
    }
}

/// POSTs a form to a token endpoint with the client authentication and parses the answer.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    url: &str,
    client: Option<&ClientAuth>,
    mut form: Vec<(String, String)>,
) -> std::result::Result<TokenResponse, TokenFailure> {
    let mut req = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(c) = client {
        req = c.apply(req, &mut form);
    }
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenFailure::Other(transport(url, &e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| TokenFailure::Other(transport(url, &e)))?;
    if status.is_success() {
        return serde_json::from_slice::<TokenResponse>(&body).map_err(|e| {
            TokenFailure::Other(ClientError::Protocol(format!(
                "token endpoint {url} answered an invalid body: {e}"
            )))
        });
    }
    Err(match oauth_error(status.as_u16(), &body) {
        Some(e) => TokenFailure::OAuth(e),
        None => TokenFailure::Other(ClientError::Api {
            status: status.as_u16(),
            kind: "http_error".into(),
            message: format!("token endpoint {url}: {}", snippet(&body)),
        }),
    })
}

/// An OAuth error body (`{"error": "...", "error_description": "..."}`), if that is what it is.
pub(crate) fn oauth_error(status: u16, body: &[u8]) -> Option<OAuthError> {
    #[derive(Deserialize)]
    struct Body {
        error: serde_json::Value,
        error_description: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).ok()?;
    let error = b.error.as_str()?.to_string();
    Some(OAuthError {
        status,
        error,
        description: b.error_description,
    })
}

/// `grant_type=refresh_token` (RFC 6749 §6). The old refresh token is kept when the answer
/// carries none; `Ok(None)` when the grant is no longer valid (a new login is needed).
pub(crate) async fn refresh_token_grant(
    http: &reqwest::Client,
    token_url: &str,
    client: &ClientAuth,
    current: &Token,
) -> Result<Option<Token>> {
    let Some(rt) = current.refresh_token.as_ref() else {
        return Ok(None);
    };
    let form = vec![
        ("grant_type".to_string(), "refresh_token".to_string()),
        ("refresh_token".to_string(), rt.expose().to_string()),
    ];
    match token_request(http, token_url, Some(client), form).await {
        Ok(r) => {
            let mut t = r.into_token("the token endpoint")?;
            if t.refresh_token.is_none() {
                t.refresh_token = Some(rt.clone());
            }
            Ok(Some(t))
        }
        Err(TokenFailure::OAuth(e)) if e.error == "invalid_grant" => {
            tracing::info!(error = %e, "refresh token no longer accepted; a new login is needed");
            Ok(None)
        }
        Err(f) => Err(f.into_error(&format!("token endpoint {token_url} (refresh)"))),
    }
}

/// At most 300 printable characters of a response body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = printable(s.trim());
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else if s.is_empty() {
        "(empty body)".into()
    } else {
        s
    }
}

/// Control characters replaced, so remote text cannot forge terminal output.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_form_encodes_before_base64() {
        // RFC 6749 §2.3.1: "a:b c" → "a%3Ab+c"
        let h = basic_header("a:b c", "s/é+");
        let raw =
            String::from_utf8(B64.decode(h.strip_prefix("Basic ").unwrap()).unwrap()).unwrap();
        assert_eq!(raw, "a%3Ab+c:s%2F%C3%A9%2B");
        assert_eq!(
            basic_header("lake-client", "lake-secret"),
            format!("Basic {}", B64.encode("lake-client:lake-secret"))
        );
    }

    #[test]
    fn token_response_expiry_and_type() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","token_type":"Bearer","expires_in":"60"}"#)
                .unwrap();
        let t = r.into_token("t").unwrap();
        let left = (t.expires_at.unwrap() - Utc::now()).num_seconds();
        assert!((58..=60).contains(&left), "{left}");
        let r: TokenResponse =
            serde_json::from_str(r#"{"token":"x","token_expiration":2000000000}"#).unwrap();
        assert_eq!(
            r.into_token("t").unwrap().expires_at.unwrap().timestamp(),
            2_000_000_000
        );
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","token_type":"mac"}"#).unwrap();
        assert!(matches!(r.into_token("t"), Err(ClientError::Protocol(_))));
        let r: TokenResponse = serde_json::from_str(r#"{"token_type":"bearer"}"#).unwrap();
        assert!(matches!(r.into_token("t"), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn oauth_error_bodies() {
        let e = oauth_error(
            400,
            br#"{"error":"slow_down","error_description":"x\u001b[2J"}"#,
        )
        .unwrap();
        assert_eq!(e.error, "slow_down");
        assert_eq!(e.to_string(), "slow_down (x\u{fffd}[2J)");
        assert!(oauth_error(500, b"<html>").is_none());
        // Sluice's Iceberg error model is not an OAuth error.
        assert!(oauth_error(401, br#"{"error":{"message":"m","type":"T","code":401}}"#).is_none());
    }
}
