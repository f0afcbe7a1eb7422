/// Every client failure, with enough context for a person to act on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Bad or missing configuration (names the setting and where it was read).
    #[error("configuration: {0}")]
    Config(String),
    /// The server answered with an error body (Iceberg model or OAuth2).
    #[error("{status} {kind}: {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// Login failed (wrong credentials, IdP refused, user denied, code expired).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Network / TLS / timeout.
    #[error("could not reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The session cannot be renewed without a person: the cached token has expired (or there
    /// is none) and the flow needs a browser, a device approval or a secret that is not
    /// stored. `profile` is the profile to log in again with.
    #[error("{}", login_required_message(.profile.as_deref(), *.expired))]
    LoginRequired {
        profile: Option<String>,
        expired: bool,
    },
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Longest piece of a non-JSON error body quoted in a message: enough to recognise a proxy's
/// error page, short enough not to flood a terminal.
const MAX_QUOTED_BODY: usize = 300;

impl ClientError {
    /// A network/TLS/timeout failure talking to `url`. The full source chain is kept in the
    /// message because reqwest's top-level text ("error sending request") alone says nothing
    /// about *why* (certificate, DNS, refused, timeout).
    pub fn transport(url: impl std::fmt::Display, err: &reqwest::Error) -> Self {
        let mut message = if err.is_timeout() {
            "timed out".to_string()
        } else {
            err.to_string()
        };
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        ClientError::Transport {
            url: url.to_string(),
            message,
        }
    }

    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 from the server (handy for "get or create" logic).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Maps a non-success response to `ClientError::Api`, reading the body for the server's
    /// own explanation: the Iceberg/management envelope `{"error":{"message","type","code"}}`
    /// or the OAuth2 form `{"error","error_description"}`. Anything else (a proxy's HTML page,
    /// an empty body) falls back to the status text and a short quote of the body.
    pub async fn from_response(resp: reqwest::Response) -> ClientError {
        let status = resp.status();
        let url = resp.url().clone();
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) => return ClientError::transport(&url, &e),
        };
        Self::from_body(status.as_u16(), &body)
    }

    /// The body-parsing half of `from_response`, for callers that already read the body.
    pub fn from_body(status: u16, body: &str) -> ClientError {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
            match v.get("error") {
                // Iceberg REST / management error model.
                Some(serde_json::Value::Object(e)) => {
                    let message = e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("")
                        .to_string();
                    let kind = e
                        .get("type")
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                        .unwrap_or(reason);
                    return ClientError::Api {
                        status,
                        kind,
                        message: non_empty(message, status),
                    };
                }
                // OAuth2 (RFC 6749 §5.2).
                Some(serde_json::Value::String(code)) => {
                    let message = v
                        .get("error_description")
                        .and_then(|d| d.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| code.clone());
                    return ClientError::Api {
                        status,
                        kind: code.clone(),
                        message: non_empty(message, status),
                    };
                }
                _ => {}
            }
        }
        let trimmed = body.trim();
        let message = if trimmed.is_empty() {
            format!("the server answered {status} with no explanation")
        } else {
            let mut quote: String = trimmed.chars().take(MAX_QUOTED_BODY).collect();
            if quote.len() < trimmed.len() {
                quote.push('…');
            }
            quote
        };
        ClientError::Api {
            status,
            kind: reason,
            message,
        }
    }
}

fn login_required_message(profile: Option<&str>, expired: bool) -> String {
    let what = if expired {
        "session expired"
    } else {
        "not logged in"
    };
    match profile {
        Some(p) => format!("{what}: run sluice login --profile {p}"),
        None => format!("{what}: run sluice login"),
    }
}

fn non_empty(message: String, status: u16) -> String {
    if message.trim().is_empty() {
        format!("the server answered {status} with no explanation")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_error_bodies() {
        let e = ClientError::from_body(
            404,
            r#"{"error":{"message":"Namespace does not exist: a","type":"NoSuchNamespaceException","code":404}}"#,
        );
        assert_eq!(
            e.to_string(),
            "404 NoSuchNamespaceException: Namespace does not exist: a"
        );
        assert!(e.is_not_found());

        let e = ClientError::from_body(
            401,
            r#"{"error":"invalid_client","error_description":"bad secret"}"#,
        );
        assert_eq!(e.to_string(), "401 invalid_client: bad secret");

        let e = ClientError::from_body(400, r#"{"error":"invalid_grant"}"#);
        assert_eq!(e.to_string(), "400 invalid_grant: invalid_grant");

        let e = ClientError::from_body(502, "<html>Bad gateway</html>");
        assert_eq!(e.to_string(), "502 Bad Gateway: <html>Bad gateway</html>");

        let e = ClientError::from_body(500, "");
        assert_eq!(
            e.to_string(),
            "500 Internal Server Error: the server answered 500 with no explanation"
        );
    }
}
