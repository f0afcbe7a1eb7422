//! How the server itself authenticates to a warehouse's S3 store, and how it mints
//! temporary credentials for clients. One [`S3Access`] per opened storage, shared by
//! `object_store` (reads, writes, the probe), remote signing and credential vending, so all
//! three always act with the same identity.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::region::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::DisplayErrorContext;
use object_store::aws::AwsCredential;
use tokio::sync::OnceCell;

use crate::cache::Refreshing;
use crate::credential::S3Credential;
use crate::error::{Result, StorageError};
use crate::profile::S3Profile;
use crate::s3::r2::CloudflareR2;
use crate::s3::vend::{assume_role, http_client, sts_client, RoleRequest};
use crate::settings::StorageSettings;

/// Cached temporary credentials are replaced this long before they expire, so a request
/// signed just before the refresh does not reach S3 with credentials that expired in
/// flight (and object_store's multi-minute uploads keep working).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Upper bound for asking the server's credential chain (IMDS, ECS, web identity, …), whose
/// providers have their own, shorter timeouts; this only guards against a hang.
const CHAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// RoleSessionName of the server's own AssumeRole (visible in CloudTrail).
const SERVER_SESSION_NAME: &str = "sluice-server";

/// A storage's S3 identity and its way of vending credentials.
pub(crate) struct S3Access {
    source: CredentialSource,
    /// Passed to STS AssumeRole when vending.
    external_id: Option<String>,
    vendor: Vendor,
    /// Built on first use: most warehouses never vend credentials.
    sts: OnceLock<aws_sdk_sts::Client>,
}

/// Where the credentials for the server's own S3 requests come from.
#[derive(Clone)]
pub(crate) enum CredentialSource {
    /// Stored keys (access-key and cloudflare-r2 credentials).
    Static(Credentials),
    /// The server's AWS credential chain, possibly narrowed by an AssumeRole.
    System(Arc<SystemIdentity>),
}

/// How temporary client credentials are minted.
pub(crate) enum Vendor {
    /// STS AssumeRole with a session policy (AWS and S3-compatible stores with STS).
    Sts,
    /// Cloudflare's temp-access-credentials API (R2 has no STS).
    CloudflareR2(CloudflareR2),
}

impl S3Access {
    pub(crate) fn new(
        profile: &S3Profile,
        cred: &S3Credential,
        settings: &StorageSettings,
    ) -> Result<S3Access> {
        let (source, external_id, vendor) = match cred {
            S3Credential::AccessKey {
                aws_access_key_id,
                aws_secret_access_key,
                external_id,
            } => (
                CredentialSource::Static(Credentials::new(
                    aws_access_key_id,
                    aws_secret_access_key.expose(),
                    None,
                    None,
                    "sluice-warehouse",
                )),
                external_id.clone(),
                Vendor::Sts,
            ),
            S3Credential::AwsSystemIdentity { external_id } => (
                CredentialSource::System(Arc::new(SystemIdentity::new(
                    profile,
                    external_id.clone(),
                ))),
                external_id.clone(),
                Vendor::Sts,
            ),
            S3Credential::CloudflareR2 {
                account_id,
                token,
                access_key_id,
                secret_access_key,
            } => (
                CredentialSource::Static(Credentials::new(
                    access_key_id,
                    secret_access_key.expose(),
                    None,
                    None,
                    "sluice-r2",
                )),
                None,
                Vendor::CloudflareR2(CloudflareR2::new(
                    account_id,
                    token.clone(),
                    access_key_id,
                    settings.cloudflare_api_base.as_deref(),
                )?),
            ),
        };
        Ok(S3Access {
            source,
            external_id,
            vendor,
            sts: OnceLock::new(),
        })
    }

    pub(crate) fn source(&self) -> &CredentialSource {
        &self.source
    }

    pub(crate) fn vendor(&self) -> &Vendor {
        &self.vendor
    }

    pub(crate) fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// The credentials to sign a request with right now.
    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        self.source.credentials().await
    }

    /// The STS client that vends credentials, signing with this storage's identity.
    pub(crate) fn sts_client(&self, profile: &S3Profile) -> Result<&aws_sdk_sts::Client> {
        if let Some(c) = self.sts.get() {
            return Ok(c);
        }
        let endpoint = profile.sts_endpoint();
        let built = match &self.source {
            CredentialSource::Static(c) => sts_client(&profile.region, endpoint, c.clone())?,
            CredentialSource::System(id) => {
                sts_client(&profile.region, endpoint, SystemProvider(id.clone()))?
            }
        };
        Ok(self.sts.get_or_init(|| built))
    }
}

impl CredentialSource {
    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        match self {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::System(id) => id.credentials().await,
        }
    }
}

/// One cached set of temporary credentials, reused while [`is_fresh`]: concurrent requests
/// wait for a single refresh instead of each calling STS; a failed refresh caches nothing.
#[derive(Default)]
struct CredentialCache(Refreshing<Credentials>);

impl CredentialCache {
    async fn get_or_refresh<F, Fut>(&self, refresh: F) -> Result<Credentials>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials>>,
    {
        self.0.get(is_fresh, refresh).await
    }
}

/// Credentials without an expiry (environment variables, profile files) never go stale.
fn is_fresh(c: &Credentials) -> bool {
    c.expiry()
        .is_none_or(|exp| exp > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
}

/// The server's own AWS identity for one warehouse: the default credential chain, then, if
/// the profile names `assume-role-arn`, that role assumed with the credential's external id.
pub(crate) struct SystemIdentity {
    /// The profile's region: the fallback region for the chain and the STS region.
    region: String,
    sts_endpoint: Option<String>,
    role: Option<(String, Option<String>)>,
    /// Built lazily because building it is async (and may read files).
    chain: OnceCell<SharedCredentialsProvider>,
    base: CredentialCache,
    assumed: CredentialCache,
}

impl fmt::Debug for SystemIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemIdentity")
            .field("role", &self.role.as_ref().map(|(arn, _)| arn))
            .finish_non_exhaustive()
    }
}

impl SystemIdentity {
    fn new(profile: &S3Profile, external_id: Option<String>) -> SystemIdentity {
        SystemIdentity {
            region: profile.region.clone(),
            sts_endpoint: profile.sts_endpoint(),
            role: profile
                .assume_role_arn
                .clone()
                .map(|arn| (arn, external_id)),
            chain: OnceCell::new(),
            base: CredentialCache::default(),
            assumed: CredentialCache::default(),
        }
    }

    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        let Some((role_arn, external_id)) = &self.role else {
            return self.chain_credentials().await;
        };
        self.assumed
            .get_or_refresh(|| async {
                let base = self.chain_credentials().await?;
                // A fresh client per refresh (about hourly) signs with the current chain
                // credentials, which may themselves rotate.
                let client = sts_client(&self.region, self.sts_endpoint.clone(), base)?;
                // No duration: STS's default of one hour is also the maximum when the chain
                // credentials are themselves role credentials (role chaining).
                let out = assume_role(
                    &client,
                    RoleRequest {
                        role_arn,
                        session_name: SERVER_SESSION_NAME,
                        duration_seconds: None,
                        policy: None,
                        external_id: external_id.as_deref(),
                    },
                )
                .await
                .map_err(|e| match e {
                    StorageError::Sts(m) => StorageError::Sts(format!(
                        "assuming the storage profile's assume-role-arn {role_arn} with the \
                         server's identity failed: {m}"
                    )),
                    other => other,
                })?;
                Ok(Credentials::new(
                    out.access_key_id,
                    out.secret_access_key.expose(),
                    Some(out.session_token.expose().to_string()),
                    Some(out.expiration.into()),
                    "sluice-assume-role",
                ))
            })
            .await
    }

    async fn chain_credentials(&self) -> Result<Credentials> {
        self.base
            .get_or_refresh(|| async {
                let chain = self
                    .chain
                    .get_or_init(|| async {
                        let conf = ProviderConfig::without_region()
                            .with_http_client(http_client())
                            .with_behavior_version(Some(BehaviorVersion::latest()));
                        // The region only matters for providers that call regional AWS
                        // endpoints (web identity, SSO). Instance metadata is deliberately not
                        // asked for it: off EC2 that costs seconds of timeouts per warehouse.
                        let region = RegionProviderChain::first_try(
                            EnvironmentVariableRegionProvider::new(),
                        )
                        .or_else(ProfileFileRegionProvider::new())
                        .or_else(Region::new(self.region.clone()));
                        let chain = DefaultCredentialsChain::builder()
                            .configure(conf)
                            .region(region)
                            .build()
                            .await;
                        SharedCredentialsProvider::new(chain)
                    })
                    .await;
                match tokio::time::timeout(CHAIN_TIMEOUT, chain.provide_credentials()).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(StorageError::Sts(format!(
                        "cannot load the server's own AWS credentials (environment, profile, \
                         web identity, container or instance metadata): {}",
                        DisplayErrorContext(&e)
                    ))),
                    Err(_) => Err(StorageError::Sts(format!(
                        "the server's AWS credential chain did not answer within {}s",
                        CHAIN_TIMEOUT.as_secs()
                    ))),
                }
            })
            .await
    }
}

/// Lets the AWS SDK's STS client sign with a [`SystemIdentity`] (for vending).
#[derive(Debug)]
struct SystemProvider(Arc<SystemIdentity>);

impl ProvideCredentials for SystemProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

/// Lets `object_store` sign with a [`SystemIdentity`]. It asks before every request; the
/// cache makes that cheap.
#[derive(Debug)]
pub(crate) struct ObjectStoreCredentials(pub(crate) Arc<SystemIdentity>);

#[async_trait::async_trait]
impl object_store::CredentialProvider for ObjectStoreCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let c = self
            .0
            .credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new("AK", "SK", None, expiry, "test")
    }

    #[test]
    fn freshness() {
        assert!(is_fresh(&creds(None)));
        let now = SystemTime::now();
        assert!(is_fresh(&creds(Some(now + Duration::from_secs(3600)))));
        assert!(!is_fresh(&creds(Some(now + Duration::from_secs(60)))));
        assert!(!is_fresh(&creds(Some(now - Duration::from_secs(1)))));
    }

    #[tokio::test]
    async fn cache_refreshes_only_when_stale() {
        let cache = CredentialCache::default();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let hour = SystemTime::now() + Duration::from_secs(3600);
        for _ in 0..3 {
            let c = cache
                .get_or_refresh(|| async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(creds(Some(hour)))
                })
                .await
                .unwrap();
            assert_eq!(c.access_key_id(), "AK");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        // A failure is not cached, and stale credentials are replaced.
        let cache = CredentialCache::default();
        assert!(cache
            .get_or_refresh(|| async { Err(StorageError::Sts("down".into())) })
            .await
            .is_err());
        let soon = SystemTime::now() + Duration::from_secs(10);
        cache
            .get_or_refresh(|| async { Ok(creds(Some(soon))) })
            .await
            .unwrap();
        let c = cache
            .get_or_refresh(|| async { Ok(Credentials::new("NEW", "SK", None, Some(hour), "t")) })
            .await
            .unwrap();
        assert_eq!(c.access_key_id(), "NEW");
    }

    #[test]
    fn debug_shows_no_secrets() {
        let mut p = S3Profile::new("bkt", "us-east-1");
        p.assume_role_arn = Some("arn:aws:iam::123456789012:role/r".into());
        let id = SystemIdentity::new(&p, Some("ext-secretish".into()));
        let d = format!("{id:?}");
        assert!(d.contains("role/r") && !d.contains("ext-secretish"), "{d}");
    }
}
