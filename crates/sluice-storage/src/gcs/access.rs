//! A GCS warehouse's identity and endpoints, and the object_store client built on them.

use std::sync::Arc;

use object_store::gcp::GoogleCloudStorageBuilder;

use crate::client::{client_options, retry_config};
use crate::error::{error_chain, Result, StorageError};
use crate::gcs::store::GcsStore;
use crate::gcs::token::{TokenProvider, TokenSource};
use crate::gcs::{GcsCredential, GcsProfile, DEFAULT_GCS_BASE_URL, DEFAULT_GCS_STS_ENDPOINT};
use crate::settings::StorageSettings;

pub(crate) struct GcsAccess {
    pub(crate) tokens: Arc<TokenProvider>,
    /// Google STS token-exchange URL (server setting, never the tenant's).
    pub(crate) sts_endpoint: String,
    /// The emulator's base URL when one is configured; also handed to clients.
    pub(crate) emulator: Option<String>,
}

impl GcsAccess {
    pub(crate) fn new(cred: &GcsCredential, settings: &StorageSettings) -> Result<Self> {
        let source = match cred {
            GcsCredential::ServiceAccountKey { key } => TokenSource::ServiceAccount(key.clone()),
            GcsCredential::GcpSystemIdentity {} => TokenSource::System,
        };
        Ok(GcsAccess {
            tokens: Arc::new(TokenProvider::new(source)?),
            sts_endpoint: settings
                .gcs_sts_endpoint
                .as_deref()
                .unwrap_or(DEFAULT_GCS_STS_ENDPOINT)
                .to_string(),
            emulator: settings
                .gcs_endpoint
                .as_deref()
                .map(|e| e.trim_end_matches('/').to_string()),
        })
    }

    /// The object store for the bucket, authenticating with this warehouse's cached token.
    pub(crate) fn build_store(&self, profile: &GcsProfile) -> Result<GcsStore> {
        let base = self.emulator.as_deref().unwrap_or(DEFAULT_GCS_BASE_URL);
        let client = client_options(base.starts_with("http://"));
        // object_store takes the API base URL only from a service-account key document.
        // This one carries no key: `disable_oauth` stops object_store from reading keys or
        // signing anything itself, and `with_credentials` supplies the real token.
        let base_doc = serde_json::json!({
            "private_key": "", "private_key_id": "", "client_email": "",
            "gcs_base_url": base, "disable_oauth": true,
        });
        let inner = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&profile.bucket)
            .with_service_account_key(base_doc.to_string())
            .with_credentials(self.tokens.clone())
            .with_retry(retry_config())
            .with_client_options(client)
            .build()
            .map_err(|e| {
                StorageError::Invalid(format!("cannot configure gcs client: {}", error_chain(&e)))
            })?;
        Ok(GcsStore::new(
            inner,
            self.tokens.http().clone(),
            self.tokens.clone(),
            base,
            &profile.bucket,
        ))
    }
}
