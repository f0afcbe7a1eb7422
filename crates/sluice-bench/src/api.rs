//! A bearer-token client of the Iceberg REST API, timing every request.

use crate::Target;
use axum::body::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    /// The warehouse's path prefix (`/v1/{prefix}/…`).
    pub prefix: String,
    pub token: String,
}

/// One answered request: status, body and how long it took (sent to last body byte).
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub took: Duration,
}

/// Path-segment encoding of a (multi-level) namespace: levels joined by 0x1F, escaped.
pub fn ns_path(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str("%1F");
        }
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

impl Api {
    /// Gets a token (OAuth2 client credentials) and the warehouse's prefix.
    pub async fn connect(t: &Target, pool: usize) -> Result<Api, String> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(pool.max(1))
            .build()
            .map_err(|e| e.to_string())?;
        let base = t.base.trim_end_matches('/').to_string();
        let r = client
            .post(format!("{base}/v1/oauth/tokens"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", t.key.as_str()),
                ("client_secret", t.secret.as_str()),
                ("scope", "PRINCIPAL_ROLE:ALL"),
            ])
            .send()
            .await
            .map_err(|e| format!("token request: {e}"))?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| format!("token response: {e}"))?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| format!("token request answered {status}: {v}"))?
            .to_string();
        let mut api = Api {
            client,
            base,
            prefix: String::new(),
            token,
        };
        let cfg = api
            .json(
                Method::GET,
                &format!("/v1/config?warehouse={}", t.warehouse),
                None,
            )
            .await?;
        api.prefix = cfg["overrides"]["prefix"]
            .as_str()
            .ok_or_else(|| format!("no prefix in /v1/config: {cfg}"))?
            .to_string();
        Ok(api)
    }

    /// `/v1/{prefix}` + `rest`.
    pub fn catalog(&self, rest: &str) -> String {
        format!("/v1/{}{rest}", self.prefix)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let start = Instant::now();
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status();
        let body = r
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok(Answer {
            status,
            body,
            took: start.elapsed(),
        })
    }

    /// A request that must succeed; its JSON body (Null when empty).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let a = self.send(method.clone(), path, body, &[]).await?;
        if !a.status.is_success() {
            return Err(format!(
                "{method} {path}: {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
        if a.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&a.body).map_err(|e| format!("{method} {path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::ns_path;

    #[test]
    fn namespace_levels_are_joined_by_the_unit_separator() {
        let p = ns_path(&["a".into(), "b c".into()]);
        assert_eq!(p, "a%1Fb%20c");
    }
}
