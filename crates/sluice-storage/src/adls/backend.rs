//! The ADLS backend: object I/O through `object_store`'s Azure Blob client, and SAS tokens
//! per table with the same identity.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use super::access::AdlsAccess;
use super::profile::AdlsProfile;
use crate::backend::Backend;
use crate::credential::StorageCredential;
use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{Result, StorageError};
use crate::settings::StorageSettings;

pub(crate) struct AdlsBackend {
    /// The account identity; also vends SAS tokens.
    access: AdlsAccess,
    store: Arc<dyn ObjectStore>,
}

impl AdlsBackend {
    /// Azure system identity is allowed or refused by validation before this; the settings
    /// hold nothing else for ADLS.
    pub(crate) fn open(
        profile: &AdlsProfile,
        cred: Option<&StorageCredential>,
        _settings: &StorageSettings,
    ) -> Result<Self> {
        let Some(StorageCredential::Az(cred)) = cred else {
            return Err(StorageError::Invalid(
                "adls storage requires an az credential".into(),
            ));
        };
        let access = AdlsAccess::new(profile, cred)?;
        Ok(AdlsBackend {
            store: Arc::new(super::build_store(&access)?),
            access,
        })
    }
}

#[async_trait::async_trait]
impl Backend for AdlsBackend {
    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn key_of<'a>(&self, canonical: &'a str) -> &'a str {
        self.access.profile.key_of(canonical)
    }

    fn location_of(&self, key: &Path) -> String {
        format!("{}/{key}", self.access.profile.authority_location())
    }

    async fn vend(
        &self,
        table_location: &str,
        level: AccessLevel,
        _session_name: &str,
    ) -> Result<TableCredentials> {
        let canonical = self.access.profile.normalize_location(table_location)?;
        self.access.vend(&canonical, level).await
    }
}
