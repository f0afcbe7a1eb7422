//! The S3 gateway: an `s3s` service in front of every warehouse. Bucket = warehouse name,
//! key = path below the warehouse's base location. `s3s` parses the wire format and checks
//! SigV4/SigV2 signatures with the secret [`SluiceAuth`] looks up through the service
//! layer; every operation then asks `Services` what the request's user may do with the key
//! and streams through the warehouse's `Storage`. Nothing here decides who may do what.

mod error;
mod list;
mod multipart;
mod ops;

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::validation::NameValidation;
use s3s::{S3Request, S3Result};
use sluice_service::gateway::GatewayWarehouse;
use sluice_service::gateway_creds::{is_temporary_key_id, GatewayCaller, SessionRefusal};
use sluice_service::Services;

pub use error::to_s3_error;

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region clients sign for and `GetBucketLocation` reports.
    pub region: String,
    /// With a domain, `<bucket>.<domain>` requests are virtual-host style; path style
    /// always works.
    pub domain: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            region: "us-east-1".into(),
            domain: None,
        }
    }
}

/// The `s3s` implementation over the service layer.
#[derive(Clone)]
pub struct Gateway {
    services: Arc<Services>,
    config: Arc<GatewayConfig>,
}

impl Gateway {
    /// The hyper/tower service answering S3 requests.
    pub fn service(services: Arc<Services>, config: GatewayConfig) -> S3Service {
        let gateway = Gateway {
            services: services.clone(),
            config: Arc::new(config.clone()),
        };
        let mut b = S3ServiceBuilder::new(gateway);
        b.set_auth(SluiceAuth { services });
        b.set_access(PresignLimit);
        b.set_host(Host {
            domain: config.domain.map(|d| d.to_ascii_lowercase()),
        });
        b.set_validation(AnyWarehouseName);
        b.build()
    }

    /// The user whose key signed the request. `s3s` has verified the signature with this
    /// key's secret before any operation runs; anonymous requests are refused. A temporary
    /// key also needs its session token (signed with the request), which confines it.
    async fn caller<T>(&self, req: &S3Request<T>) -> S3Result<GatewayCaller> {
        let Some(creds) = &req.credentials else {
            return Err(s3s::s3_error!(
                AccessDenied,
                "anonymous requests are not allowed"
            ));
        };
        if is_temporary_key_id(&creds.access_key) {
            let token = session_token(req);
            return self
                .services
                .gateway_session(&creds.access_key, token.as_deref())
                .await
                .map_err(|e| {
                    tracing::info!(access_key_id = %creds.access_key, reason = %e, "S3 gateway: temporary credentials refused");
                    match e {
                        SessionRefusal::Invalid(m) => s3s::s3_error!(InvalidToken, "{m}"),
                        SessionRefusal::Expired => {
                            s3s::s3_error!(ExpiredToken, "The provided token has expired.")
                        }
                        SessionRefusal::Revoked(m) => s3s::s3_error!(InvalidAccessKeyId, "{m}"),
                        SessionRefusal::Failed(e) => to_s3_error(e),
                    }
                });
        }
        let (principal, _secret) = self
            .services
            .gateway_secret(&creds.access_key)
            .await
            .map_err(to_s3_error)?;
        Ok(principal.into())
    }

    async fn bucket(&self, caller: &GatewayCaller, name: &str) -> S3Result<GatewayWarehouse> {
        self.services
            .gateway_bucket(caller, name)
            .await
            .map_err(to_s3_error)
    }
}

/// Access keys from the store, through the service layer.
struct SluiceAuth {
    services: Arc<Services>,
}

#[async_trait::async_trait]
impl S3Auth for SluiceAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some(secret) = self.services.gateway_temporary_secret(access_key) {
            return Ok(SecretKey::from(secret.expose()));
        }
        match self.services.gateway_secret(access_key).await {
            Ok((_, secret)) => Ok(SecretKey::from(secret.expose())),
            Err(e) => {
                tracing::info!(access_key_id = access_key, reason = %e, "S3 gateway: unknown access key");
                Err(to_s3_error(e))
            }
        }
    }
}

/// The session token of a request signed with temporary credentials: the
/// `X-Amz-Security-Token` header, or the query parameter of a presigned URL. Both are
/// covered by the signature s3s checked.
fn session_token<T>(req: &S3Request<T>) -> Option<String> {
    if let Some(v) = req.headers.get("x-amz-security-token") {
        return v.to_str().ok().map(str::to_string);
    }
    let query = req.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v.into_owned())
}

/// Path style always; `<bucket>.<domain>` when a domain is configured.
struct Host {
    domain: Option<String>,
}

impl S3Host for Host {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if let Some(domain) = &self.domain {
            let lower = name.to_ascii_lowercase();
            if let Some(bucket) = lower
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Ok(VirtualHost::new(host).with_bucket(bucket.to_string()));
            }
        }
        Ok(VirtualHost::new(host))
    }
}

/// Warehouse names are checked when warehouses are created; a bucket name that is none is
/// answered `NoSuchBucket`, not by S3's naming rules.
struct AnyWarehouseName;

impl NameValidation for AnyWarehouseName {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty() && name.len() <= 255
    }
}

/// SigV4 presigned URLs may live at most seven days (S3's limit); `s3s` checks only that one
/// has not expired. Runs before any operation; who may do what is decided per operation.
struct PresignLimit;

/// S3's longest presigned-URL lifetime, in seconds.
const MAX_PRESIGNED_EXPIRES: u64 = 7 * 24 * 3600;

#[async_trait::async_trait]
impl S3Access for PresignLimit {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let expires = cx.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("X-Amz-Expires="))
                .map(|v| v.parse::<u64>().unwrap_or(u64::MAX))
        });
        match expires {
            Some(e) if e > MAX_PRESIGNED_EXPIRES => Err(s3s::s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"
            )),
            _ => Ok(()),
        }
    }
}
