//! The GCS backend: object I/O through `object_store` with the warehouse's cached access
//! token, and downscoped tokens per table.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::backend::Backend;
use crate::credential::StorageCredential;
use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{Result, StorageError};
use crate::gcs::access::GcsAccess;
use crate::gcs::GcsProfile;
use crate::settings::StorageSettings;

pub(crate) struct GcsBackend {
    profile: GcsProfile,
    /// The warehouse's token source (shared with object_store) and endpoints, for vending.
    access: GcsAccess,
    store: Arc<dyn ObjectStore>,
}

impl GcsBackend {
    pub(crate) fn open(
        profile: &GcsProfile,
        cred: Option<&StorageCredential>,
        settings: &StorageSettings,
    ) -> Result<Self> {
        let Some(StorageCredential::Gcs(cred)) = cred else {
            return Err(StorageError::Invalid(
                "gcs storage requires a gcs credential".into(),
            ));
        };
        let access = GcsAccess::new(cred, settings)?;
        Ok(GcsBackend {
            store: Arc::new(access.build_store(profile)?),
            profile: profile.clone(),
            access,
        })
    }
}

#[async_trait::async_trait]
impl Backend for GcsBackend {
    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    // normalize_location returns exactly "gs://<bucket>" or "gs://<bucket>/<key>".
    fn key_of<'a>(&self, canonical: &'a str) -> &'a str {
        let rest = canonical
            .get("gs://".len() + self.profile.bucket.len()..)
            .unwrap_or("");
        rest.strip_prefix('/').unwrap_or(rest)
    }

    fn location_of(&self, key: &Path) -> String {
        format!("gs://{}/{key}", self.profile.bucket)
    }

    async fn vend(
        &self,
        table_location: &str,
        level: AccessLevel,
        _session_name: &str,
    ) -> Result<TableCredentials> {
        crate::gcs::vend::vend(&self.profile, &self.access, table_location, level).await
    }
}
