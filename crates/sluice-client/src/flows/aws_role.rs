//! AWS IAM principal login: a presigned STS `GetCallerIdentity` (built by
//! `sluice_aws_identity::build_identity_token`, bound to the server's id) is exchanged at
//! `/auth/external/principal/login` for a Sluice token.

use super::sluice_login::{endpoint_url, sluice_login};
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use serde_json::json;
use std::time::{Duration, SystemTime};

/// The signing region when neither the configuration nor the AWS environment names one.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";
/// How long the presigned request is valid: it is used at once.
const PRESIGN_EXPIRY: Duration = Duration::from_secs(60);
/// The AWS credential chain may call instance metadata or SSO; bound it.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// AWS role login. Credentials come from the AWS default chain (environment, profile files,
/// web identity, SSO, container and instance metadata) unless a provider is given; the
/// server id from the server metadata (`aws_iam.server_id`); the region from the
/// configuration, else the AWS environment / profile, else `us-east-1`. The STS host is
/// `sts.amazonaws.com` for us-east-1 and `sts.<region>.amazonaws.com` otherwise. Refreshing
/// logs in again.
pub struct AwsRoleAuth {
    region: Option<String>,
    sts_host: Option<String>,
    session_ttl: Option<Duration>,
    provider: Option<SharedCredentialsProvider>,
    chain: tokio::sync::OnceCell<SharedCredentialsProvider>,
}

impl Default for AwsRoleAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsRoleAuth {
    pub fn new() -> Self {
        AwsRoleAuth {
            region: None,
            sts_host: None,
            session_ttl: None,
            provider: None,
            chain: tokio::sync::OnceCell::new(),
        }
    }

    /// The signing region (`aws-region`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The STS host named in the token (must be one the server allows).
    pub fn sts_host(mut self, host: impl Into<String>) -> Self {
        self.sts_host = Some(host.into());
        self
    }

    /// Ask for a Sluice session of this length (the server caps it).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = Some(ttl);
        self
    }

    /// Use these credentials instead of the default chain (e.g. `aws_credential_types::Credentials`).
    pub fn credentials_provider(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.provider = Some(SharedCredentialsProvider::new(provider));
        self
    }

    async fn resolve_region(&self) -> String {
        if let Some(r) = self.region.as_ref().filter(|r| !r.is_empty()) {
            return r.clone();
        }
        // Instance metadata is deliberately not asked: off EC2 it costs seconds of timeouts.
        let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
            .or_else(ProfileFileRegionProvider::new());
        chain
            .region()
            .await
            .map(|r| r.to_string())
            .unwrap_or_else(|| DEFAULT_AWS_REGION.to_string())
    }

    async fn provider(&self, region: &str) -> SharedCredentialsProvider {
        if let Some(p) = &self.provider {
            return p.clone();
        }
        self.chain
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let conf = ProviderConfig::without_region()
                    .with_http_client(http)
                    .with_behavior_version(Some(BehaviorVersion::latest()));
                let chain = DefaultCredentialsChain::builder()
                    .configure(conf)
                    .region(Region::new(region.to_string()))
                    .build()
                    .await;
                SharedCredentialsProvider::new(chain)
            })
            .await
            .clone()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[async_trait::async_trait]
impl Authenticator for AwsRoleAuth {
    fn name(&self) -> &'static str {
        "aws-role"
    }

    /// Not cached: the principal is whatever the AWS chain yields at the time.
    fn cache_identity(&self) -> Option<String> {
        None
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let md = ctx.server_metadata().await?;
        let server_id = md
            .pointer("/aws_iam/server_id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "the Sluice server at {} does not offer AWS IAM login (no `aws_iam` in its auth metadata)",
                    ctx.endpoint
                ))
            })?
            .to_string();
        let region = self.resolve_region().await;
        let host = self.sts_host.clone().unwrap_or_else(|| {
            if region == DEFAULT_AWS_REGION {
                "sts.amazonaws.com".to_string()
            } else {
                format!("sts.{region}.amazonaws.com")
            }
        });
        let provider = self.provider(&region).await;
        let creds = match tokio::time::timeout(CHAIN_TIMEOUT, provider.provide_credentials()).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(ClientError::Config(format!(
                "cannot load AWS credentials (environment, profile, web identity, SSO, container \
                     or instance metadata): {}",
                error_chain(&e)
            )))
            }
            Err(_) => {
                return Err(ClientError::Config(format!(
                    "the AWS credential chain did not answer within {} s",
                    CHAIN_TIMEOUT.as_secs()
                )))
            }
        };
        let token = sluice_aws_identity::build_identity_token(
            &creds,
            &region,
            &host,
            &server_id,
            PRESIGN_EXPIRY,
            SystemTime::now(),
        )
        .map_err(|e| {
            ClientError::Config(format!(
                "cannot build the AWS identity token: invalid AWS identity token: {e}"
            ))
        })?;
        let mut body = json!({"identity_token": token});
        if let Some(ttl) = self.session_ttl {
            body["ttl_seconds"] = json!(ttl.as_secs());
        }
        let url = endpoint_url(&ctx.endpoint, "/auth/external/principal/login");
        sluice_login(&ctx.http, &url, &body, "AWS IAM login").await
    }

    async fn refresh(&self, ctx: &AuthContext, _current: &Token) -> Result<Option<Token>> {
        self.authenticate(ctx).await.map(Some)
    }
}
