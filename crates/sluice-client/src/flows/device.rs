//! OAuth 2.0 Device Authorization Grant (RFC 8628), refreshed with the refresh token.

use super::oauth::{self, printable, TokenFailure};
use super::oidc::{Need, OidcOptions};
use super::ui::{self, Prompt, PromptSink};
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The polling interval when the provider sends none (RFC 8628 §3.2).
pub const DEFAULT_DEVICE_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The grant type of the device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Used when the provider omits the (required) `expires_in`.
const FALLBACK_EXPIRY: Duration = Duration::from_secs(600);
/// Consecutive transport failures tolerated while polling (with doubling back-off).
const MAX_POLL_FAILURES: u32 = 3;

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(alias = "verification_url_complete")]
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
}

/// Device login: the person approves on another device; this side polls the token endpoint.
pub struct DeviceAuth {
    options: OidcOptions,
    default_interval: Duration,
    login_timeout: Option<Duration>,
    sink: Arc<dyn PromptSink>,
}

impl DeviceAuth {
    pub fn new(options: OidcOptions) -> Self {
        DeviceAuth {
            options,
            default_interval: DEFAULT_DEVICE_INTERVAL,
            login_timeout: None,
            sink: ui::default_sink(),
        }
    }

    /// The polling interval used when the provider sends none (default 5 s, as RFC 8628
    /// requires; shorter only for tests).
    pub fn default_interval(mut self, interval: Duration) -> Self {
        self.default_interval = interval;
        self
    }

    /// Give up earlier than the device code's own `expires_in`.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = Some(timeout);
        self
    }

    /// Where the verification URI and user code are shown (default: stderr).
    pub fn prompt_sink(mut self, sink: Arc<dyn PromptSink>) -> Self {
        self.sink = sink;
        self
    }

    pub fn options(&self) -> &OidcOptions {
        &self.options
    }
}

#[async_trait::async_trait]
impl Authenticator for DeviceAuth {
    fn name(&self) -> &'static str {
        "device"
    }

    fn needs_person(&self) -> bool {
        true
    }

    fn cache_identity(&self) -> Option<String> {
        Some(format!(
            "device:{}",
            self.options
                .client_id
                .as_deref()
                .unwrap_or("server-default")
        ))
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let oidc = self.options.resolve(ctx, Need::Device).await?;

        // 1. Device authorization request (§3.1).
        let url = &oidc.device_authorization_endpoint;
        let mut form = vec![("scope".to_string(), oidc.scope())];
        if let Some(a) = &oidc.audience {
            form.push(("audience".into(), a.clone()));
        }
        let mut req = ctx
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json");
        req = oidc.client.apply(req, &mut form);
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| oauth::transport(url, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| oauth::transport(url, &e))?;
        if !status.is_success() {
            return Err(match oauth::oauth_error(status.as_u16(), &body) {
                Some(e) => {
                    ClientError::Auth(format!("device authorization endpoint {url} refused: {e}"))
                }
                None => ClientError::Api {
                    status: status.as_u16(),
                    kind: "http_error".into(),
                    message: format!(
                        "device authorization endpoint {url}: {}",
                        oauth::snippet(&body)
                    ),
                },
            });
        }
        let da: DeviceAuthorization = serde_json::from_slice(&body).map_err(|e| {
            ClientError::Protocol(format!(
                "device authorization endpoint {url} answered an invalid body: {e}"
            ))
        })?;

        // 2. Show the code (§3.3).
        let expires_in = da
            .expires_in
            .as_ref()
            .and_then(oauth::json_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(FALLBACK_EXPIRY);
        self.sink.show(&Prompt::DeviceCode {
            verification_uri: printable(&da.verification_uri),
            verification_uri_complete: da.verification_uri_complete.as_deref().map(printable),
            user_code: printable(&da.user_code),
            expires_in,
        });

        // 3. Poll (§3.4, §3.5).
        let mut interval = da
            .interval
            .as_ref()
            .and_then(oauth::json_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.default_interval);
        let start = Instant::now();
        let mut deadline = start + expires_in;
        if let Some(t) = self.login_timeout {
            deadline = deadline.min(start + t);
        }
        let what = format!("token endpoint {}", oidc.token_endpoint);
        let mut failures = 0u32;
        let mut wait = interval;
        loop {
            if Instant::now() + wait > deadline {
                return Err(ClientError::Auth(format!(
                    "the device login was not approved within {} s; start again",
                    (deadline - start).as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = interval;
            let form = vec![
                ("grant_type".to_string(), DEVICE_CODE_GRANT.to_string()),
                ("device_code".to_string(), da.device_code.clone()),
            ];
            match oauth::token_request(&ctx.http, &oidc.token_endpoint, Some(&oidc.client), form)
                .await
            {
                Ok(r) => return r.into_token(&what),
                Err(TokenFailure::OAuth(e)) => match e.error.as_str() {
                    "authorization_pending" => failures = 0,
                    "slow_down" => {
                        failures = 0;
                        interval += SLOW_DOWN_STEP;
                        wait = interval;
                        tracing::debug!(
                            interval_secs = interval.as_secs(),
                            "device flow: slow_down"
                        );
                    }
                    "access_denied" => {
                        return Err(ClientError::Auth(format!(
                            "the device login was denied: {e}"
                        )));
                    }
                    "expired_token" => {
                        return Err(ClientError::Auth(format!(
                            "the device code expired before the login was approved ({e}); start again"
                        )));
                    }
                    _ => return Err(TokenFailure::OAuth(e).into_error(&what)),
                },
                Err(TokenFailure::Other(e @ ClientError::Transport { .. })) => {
                    failures += 1;
                    if failures > MAX_POLL_FAILURES {
                        return Err(e);
                    }
                    // RFC 8628 §3.5: back off on connection problems.
                    wait = interval * 2u32.pow(failures);
                    tracing::info!(error = %e, "device flow: polling failed; backing off");
                }
                Err(TokenFailure::Other(e)) => return Err(e),
            }
        }
    }

    async fn refresh(&self, ctx: &AuthContext, current: &Token) -> Result<Option<Token>> {
        if current.refresh_token.is_none() {
            return Ok(None);
        }
        let oidc = self.options.resolve(ctx, Need::TokenOnly).await?;
        oauth::refresh_token_grant(&ctx.http, &oidc.token_endpoint, &oidc.client, current).await
    }
}
