//! Temporary credentials for Cloudflare R2, which has no STS: Cloudflare's API mints them
//! from an API token, scoped to a bucket, a permission level and key prefixes.
//! <https://developers.cloudflare.com/api/resources/r2/subresources/temporary_credentials/>

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sluice_core::Secret;

use crate::error::{Result, StorageError};
use crate::s3::vend::{AccessLevel, VendedCredentials};

pub const DEFAULT_CLOUDFLARE_API_BASE: &str = "https://api.cloudflare.com";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What vending needs from a `cloudflare-r2` credential. `Debug` hides the token.
pub(crate) struct CloudflareR2 {
    account_id: String,
    token: Secret,
    parent_access_key_id: String,
    /// Without trailing '/'.
    api_base: String,
    /// Built on first use: most warehouses never vend credentials.
    client: OnceLock<reqwest::Client>,
}

impl fmt::Debug for CloudflareR2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareR2")
            .field("account_id", &self.account_id)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    result: Option<TempCredentials>,
    #[serde(default)]
    errors: Vec<ApiMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TempCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Secret,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: String,
}

/// Cloudflare's error list as "code: message; …", or `None` when it is empty.
fn api_errors(errors: &[ApiMessage]) -> Option<String> {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let msg: String = e.message.chars().take(500).collect();
            match &e.code {
                Some(c) => format!("{c}: {msg}"),
                None => msg,
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl CloudflareR2 {
    /// `api_base` overrides [`DEFAULT_CLOUDFLARE_API_BASE`] (a server setting, for proxies and
    /// tests; never a profile field, so tenants cannot send the token elsewhere).
    pub(crate) fn new(
        account_id: &str,
        token: Secret,
        parent_access_key_id: &str,
        api_base: Option<&str>,
    ) -> Result<CloudflareR2> {
        let api_base = api_base
            .unwrap_or(DEFAULT_CLOUDFLARE_API_BASE)
            .trim_end_matches('/');
        let url = url::Url::parse(api_base).map_err(|e| {
            StorageError::Invalid(format!(
                "cloudflare API base '{api_base}' is not a valid URL: {e}"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(StorageError::Invalid(format!(
                "cloudflare API base '{api_base}' must be an http(s) URL without a query"
            )));
        }
        Ok(CloudflareR2 {
            account_id: account_id.to_string(),
            token,
            parent_access_key_id: parent_access_key_id.to_string(),
            api_base: api_base.to_string(),
            client: OnceLock::new(),
        })
    }

    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The bearer token must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StorageError::Sts(format!("cannot build the Cloudflare client: {e}")))?;
        Ok(self.client.get_or_init(|| built))
    }

    /// Asks Cloudflare for credentials limited to `bucket`, objects below `key_prefix/` and
    /// `level`, valid for `ttl_seconds`.
    ///
    /// `object-read-write` includes deleting objects: Cloudflare has no finer permission, so
    /// `push-s3-delete-disabled` (a hint to clients) cannot be enforced on R2 credentials.
    pub(crate) async fn temp_credentials(
        &self,
        bucket: &str,
        key_prefix: &str,
        level: AccessLevel,
        ttl_seconds: u64,
    ) -> Result<VendedCredentials> {
        let url = format!(
            "{}/client/v4/accounts/{}/r2/temp-access-credentials",
            self.api_base, self.account_id
        );
        let permission = match level {
            AccessLevel::Read => "object-read-only",
            AccessLevel::ReadWrite => "object-read-write",
        };
        let body = json!({
            "bucket": bucket,
            "parentAccessKeyId": self.parent_access_key_id,
            "permission": permission,
            "ttlSeconds": ttl_seconds,
            // The trailing '/' keeps table `t1` from reaching `t10`.
            "prefixes": [format!("{}/", key_prefix.trim_end_matches('/'))],
        });
        // Taken before the call, so the expiration we report is never later than the real one.
        let issued = chrono::Utc::now();
        let resp = self
            .client()?
            .post(&url)
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                // reqwest's message names the URL but never the headers (the token).
                StorageError::Sts(if e.is_timeout() {
                    format!(
                        "no answer from the Cloudflare API within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    )
                } else {
                    format!(
                        "cannot reach the Cloudflare API: {}",
                        crate::error::error_chain(&e)
                    )
                })
            })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| StorageError::Sts(format!("reading the Cloudflare API answer: {e}")))?;
        let parsed: Option<ApiResponse> = serde_json::from_str(&text).ok();
        match parsed {
            Some(ApiResponse {
                success: true,
                result: Some(c),
                ..
            }) if status.is_success() => {
                let ttl = i64::try_from(ttl_seconds).unwrap_or(i64::MAX);
                Ok(VendedCredentials {
                    access_key_id: c.access_key_id,
                    secret_access_key: c.secret_access_key,
                    session_token: c.session_token,
                    expiration: issued + chrono::Duration::seconds(ttl),
                })
            }
            Some(r) => Err(StorageError::Sts(format!(
                "Cloudflare refused temporary R2 credentials (HTTP {}): {}",
                status.as_u16(),
                api_errors(&r.errors).unwrap_or_else(|| "no error message".into())
            ))),
            None => Err(StorageError::Sts(format!(
                "the Cloudflare API answered HTTP {} without a JSON body",
                status.as_u16()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_is_checked() {
        let new = |b: Option<&str>| CloudflareR2::new("acct", Secret::new("t"), "k", b);
        assert_eq!(new(None).unwrap().api_base, DEFAULT_CLOUDFLARE_API_BASE);
        assert_eq!(
            new(Some("http://127.0.0.1:8080/")).unwrap().api_base,
            "http://127.0.0.1:8080"
        );
        assert!(new(Some("ftp://x")).is_err());
        assert!(new(Some("not a url")).is_err());
        assert!(new(Some("https://x/?a=b")).is_err());
        let d = format!("{:?}", new(None).unwrap());
        assert!(d.contains("acct") && !d.contains("\"t\""), "{d}");
    }

    #[test]
    fn error_lists() {
        let r: ApiResponse = serde_json::from_str(
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"},{"message":"x"}],"result":null}"#,
        )
        .unwrap();
        assert!(!r.success && r.result.is_none());
        assert_eq!(
            api_errors(&r.errors).as_deref(),
            Some("10000: Authentication error; x")
        );
        assert_eq!(api_errors(&[]), None);
    }
}
