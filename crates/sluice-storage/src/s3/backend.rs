//! The S3 backend: object I/O through `object_store`'s S3 client, remote signing and STS
//! (or Cloudflare R2) vending with the same identity.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::backend::Backend;
use crate::client::{client_options, retry_config};
use crate::credential::StorageCredential;
use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{error_chain, Result, StorageError};
use crate::profile::S3Profile;
use crate::s3::access::{CredentialSource, ObjectStoreCredentials, S3Access};
use crate::settings::StorageSettings;

pub(crate) struct S3Backend {
    pub(crate) profile: S3Profile,
    /// The identity `object_store` also uses; kept for remote signing and vending, which
    /// work outside `object_store`.
    pub(crate) access: Arc<S3Access>,
    store: Arc<dyn ObjectStore>,
}

impl S3Backend {
    /// The server's own AWS credentials (`aws-system-identity`) are fetched on first use.
    pub(crate) fn open(
        profile: &S3Profile,
        cred: Option<&StorageCredential>,
        settings: &StorageSettings,
    ) -> Result<Self> {
        let Some(StorageCredential::S3(cred)) = cred else {
            // Storage::open_with's validate_credential already guarantees this.
            return Err(StorageError::Invalid(
                "s3 storage requires an s3 credential".into(),
            ));
        };
        let access = Arc::new(S3Access::new(profile, cred, settings)?);
        Ok(S3Backend {
            store: Arc::new(build_s3(profile, access.source())?),
            profile: profile.clone(),
            access,
        })
    }
}

#[async_trait::async_trait]
impl Backend for S3Backend {
    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    // normalize_location returns exactly "s3://<bucket>" or "s3://<bucket>/<key>".
    fn key_of<'a>(&self, canonical: &'a str) -> &'a str {
        let rest = canonical
            .get("s3://".len() + self.profile.bucket.len()..)
            .unwrap_or("");
        rest.strip_prefix('/').unwrap_or(rest)
    }

    fn location_of(&self, key: &Path) -> String {
        format!("s3://{}/{key}", self.profile.bucket)
    }

    async fn vend(
        &self,
        table_location: &str,
        level: AccessLevel,
        session_name: &str,
    ) -> Result<TableCredentials> {
        let creds = self
            .vend_credentials(table_location, level, session_name)
            .await?;
        Ok(TableCredentials {
            config: crate::s3::vended_config(&self.profile, &creds),
            expiration: creds.expiration,
        })
    }

    fn as_s3(&self) -> Option<&S3Backend> {
        Some(self)
    }
}

fn build_s3(s: &S3Profile, source: &CredentialSource) -> Result<object_store::aws::AmazonS3> {
    let mut allow_http = false;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s.bucket)
        .with_region(&s.region)
        .with_virtual_hosted_style_request(!s.path_style_access)
        .with_retry(retry_config());
    builder = match source {
        CredentialSource::Static(c) => {
            builder = builder
                .with_access_key_id(c.access_key_id())
                .with_secret_access_key(c.secret_access_key());
            match c.session_token() {
                Some(t) => builder.with_token(t),
                None => builder,
            }
        }
        CredentialSource::System(id) => {
            builder.with_credentials(Arc::new(ObjectStoreCredentials(id.clone())))
        }
    };
    if let Some(ep) = s.endpoint_trimmed() {
        let url = url::Url::parse(ep).map_err(|e| {
            StorageError::Invalid(format!("endpoint '{ep}' is not a valid URL: {e}"))
        })?;
        allow_http = url.scheme() == "http";
        let endpoint = if s.path_style_access {
            ep.to_string()
        } else {
            // object_store uses a given endpoint verbatim in virtual-host mode, so the
            // bucket has to be put into the host here.
            virtual_host_endpoint(url, &s.bucket)?
        };
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(kms) = &s.aws_kms_key_arn {
        builder = builder.with_sse_kms_encryption(kms);
    }
    builder
        .with_client_options(client_options(allow_http))
        .build()
        .map_err(|e| {
            StorageError::Invalid(format!("cannot configure s3 client: {}", error_chain(&e)))
        })
}

fn virtual_host_endpoint(mut url: url::Url, bucket: &str) -> Result<String> {
    let host = url
        .host_str()
        .ok_or_else(|| StorageError::Invalid("endpoint has no host".into()))?
        .to_string();
    url.set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|e| StorageError::Invalid(format!("cannot build virtual-host endpoint: {e}")))?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_host_endpoints() {
        let u = url::Url::parse("https://minio.example.com:9000").unwrap();
        assert_eq!(
            virtual_host_endpoint(u, "bkt").unwrap(),
            "https://bkt.minio.example.com:9000"
        );
        let u = url::Url::parse("https://s3.example.com/base/").unwrap();
        assert_eq!(
            virtual_host_endpoint(u, "b").unwrap(),
            "https://b.s3.example.com/base"
        );
    }
}
