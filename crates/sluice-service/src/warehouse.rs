//! Warehouse lifecycle: validated creation (a real probe of the storage), rename, storage
//! and credential updates, activation, deletion.

use crate::{now, Result, ServiceError, Services};
use serde::Serialize;
use sluice_auth::policy::{actions, resource};
use sluice_core::{Principal, WarehouseName};
use sluice_storage::{DeleteProfile, Storage, StorageCredential, StorageProfile, ValidationContext};
use sluice_store::{Page, WarehouseRecord, WarehouseStatus};
use uuid::Uuid;

/// The public view of a warehouse: everything but the credential.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WarehouseInfo {
    pub warehouse_id: Uuid,
    /// Same as `warehouse-id`; Lakekeeper clients read `id`.
    pub id: Uuid,
    pub name: String,
    pub storage_profile: StorageProfile,
    pub delete_profile: DeleteProfile,
    pub status: &'static str,
    pub location: String,
    pub has_storage_credential: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub const DEFAULT_WAREHOUSE: &str = "default";
/// Listing warehouses needs `warehouse:List` over all of them.
pub const LIST_WAREHOUSES_RESOURCE: &str = "sluice:catalog:::warehouse/*";

impl Services {
    pub(crate) fn warehouse_info(w: &WarehouseRecord) -> Result<WarehouseInfo> {
        Ok(WarehouseInfo {
            warehouse_id: w.id,
            id: w.id,
            name: w.name.clone(),
            storage_profile: Self::decode_profile(w)?,
            delete_profile: serde_json::from_value(w.delete_profile.clone())
                .map_err(|e| ServiceError::Internal(format!("stored delete profile: {e}")))?,
            status: w.status.as_str(),
            location: w.location.clone(),
            has_storage_credential: w.storage_credential.is_some(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        })
    }

    fn validation_context(&self) -> ValidationContext {
        ValidationContext {
            allowed_file_roots: self.config().allowed_file_roots.clone(),
            enable_aws_system_credentials: self.config().enable_aws_system_credentials,
            require_external_id_for_system_credentials: self.config().require_external_id_for_system_credentials,
            enable_gcp_system_credentials: self.config().enable_gcp_system_credentials,
            enable_azure_system_credentials: self.config().enable_azure_system_credentials,
        }
    }

    /// Static checks, overlap with other warehouses, then a real write/read/list/delete
    /// probe. Nothing is saved unless all of it passes.
    async fn validate_storage(
        &self,
        profile: &StorageProfile,
        cred: Option<&StorageCredential>,
        except: Option<Uuid>,
    ) -> Result<()> {
        profile.validate(&self.validation_context())?;
        profile.validate_credential(cred, &self.validation_context())?;
        for other in self.store().list_warehouses().await? {
            if Some(other.id) == except {
                continue;
            }
            let other_profile = Self::decode_profile(&other)?;
            if profile.overlaps(&other_profile) {
                return Err(ServiceError::BadRequest(format!(
                    "storage location {} overlaps warehouse '{}' at {}",
                    profile.base_location(),
                    other.name,
                    other.location
                )));
            }
        }
        let storage = Storage::open_with(profile, cred, &self.config().storage_settings())?;
        storage.probe().await?;
        Ok(())
    }

    pub async fn create_warehouse(
        &self,
        caller: &Principal,
        name: &str,
        profile: StorageProfile,
        credential: Option<StorageCredential>,
        delete_profile: Option<DeleteProfile>,
    ) -> Result<WarehouseInfo> {
        self.authorize(caller, actions::CREATE_WAREHOUSE, &resource::warehouse(name)).await?;
        self.create_warehouse_unchecked(name, profile, credential, delete_profile).await
    }

    async fn create_warehouse_unchecked(
        &self,
        name: &str,
        profile: StorageProfile,
        credential: Option<StorageCredential>,
        delete_profile: Option<DeleteProfile>,
    ) -> Result<WarehouseInfo> {
        let name = WarehouseName::parse(name).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if self.store().get_warehouse_by_name(name.as_str()).await?.is_some() {
            return Err(ServiceError::AlreadyExists(format!("warehouse '{name}' already exists")));
        }
        if let Some(d) = &delete_profile {
            d.validate()?;
        }
        self.validate_storage(&profile, credential.as_ref(), None).await?;
        let n = now();
        let rec = WarehouseRecord {
            id: Uuid::new_v4(),
            name: name.to_string(),
            location: profile.base_location(),
            storage_profile: serde_json::to_value(&profile).map_err(ServiceError::internal)?,
            storage_credential: credential.as_ref().map(|c| self.encrypt_credential(c)).transpose()?,
            delete_profile: serde_json::to_value(delete_profile.unwrap_or_default())
                .map_err(ServiceError::internal)?,
            status: WarehouseStatus::Active,
            created_at: n,
            updated_at: n,
        };
        self.store().create_warehouse(&rec).await.map_err(|e| match e {
            sluice_store::StoreError::AlreadyExists(_) => {
                ServiceError::AlreadyExists(format!("warehouse '{name}' already exists"))
            }
            other => other.into(),
        })?;
        Self::warehouse_info(&rec)
    }

    pub async fn list_warehouses(&self, caller: &Principal) -> Result<Vec<WarehouseInfo>> {
        self.authorize(caller, actions::LIST_WAREHOUSES, LIST_WAREHOUSES_RESOURCE).await?;
        let policies = self.policy_set(caller).await?;
        self.store()
            .list_warehouses()
            .await?
            .iter()
            .filter(|w| policies.is_allowed(actions::READ_WAREHOUSE, &resource::warehouse(&w.name)))
            .map(Self::warehouse_info)
            .collect()
    }

    /// The warehouse, if the caller may see it; otherwise the same error as a missing one.
    async fn visible_warehouse(&self, caller: &Principal, id: Uuid) -> Result<WarehouseRecord> {
        let rec = self.warehouse_record(id).await?;
        if !self.is_allowed(caller, actions::READ_WAREHOUSE, &resource::warehouse(&rec.name)).await? {
            return Err(ServiceError::NoSuchWarehouse(format!("warehouse {id} does not exist")));
        }
        Ok(rec)
    }

    /// Visible and `action` allowed.
    async fn warehouse_for(&self, caller: &Principal, id: Uuid, action: &str) -> Result<WarehouseRecord> {
        let rec = self.visible_warehouse(caller, id).await?;
        self.authorize(caller, action, &resource::warehouse(&rec.name)).await?;
        Ok(rec)
    }

    async fn warehouse_record(&self, id: Uuid) -> Result<WarehouseRecord> {
        self.store()
            .get_warehouse(id)
            .await?
            .ok_or_else(|| ServiceError::NoSuchWarehouse(format!("warehouse {id} does not exist")))
    }

    pub async fn get_warehouse(&self, caller: &Principal, id: Uuid) -> Result<WarehouseInfo> {
        Self::warehouse_info(&self.visible_warehouse(caller, id).await?)
    }

    async fn save(&self, mut rec: WarehouseRecord) -> Result<WarehouseInfo> {
        rec.updated_at = now();
        self.store().update_warehouse(&rec).await?;
        self.forget_storage(rec.id);
        Self::warehouse_info(&rec)
    }

    pub async fn rename_warehouse(&self, caller: &Principal, id: Uuid, new_name: &str) -> Result<WarehouseInfo> {
        let name = WarehouseName::parse(new_name).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let mut rec = self.warehouse_for(caller, id, actions::UPDATE_WAREHOUSE).await?;
        // Renaming also needs the right to create a warehouse of the new name.
        self.authorize(caller, actions::CREATE_WAREHOUSE, &resource::warehouse(name.as_str())).await?;
        rec.name = name.to_string();
        self.save(rec).await.map_err(|e| match e {
            ServiceError::AlreadyExists(_) => {
                ServiceError::AlreadyExists(format!("warehouse '{name}' already exists"))
            }
            other => other,
        })
    }

    async fn is_empty(&self, id: Uuid) -> Result<bool> {
        let page = Page { after: None, limit: Some(1) };
        Ok(self.store().list_namespaces(id, None, &page).await?.is_empty())
    }

    /// Replaces the storage profile (and optionally the credential). Moving the location of
    /// a warehouse that holds tables would orphan them, so that is refused.
    pub async fn update_storage(
        &self,
        caller: &Principal,
        id: Uuid,
        profile: StorageProfile,
        credential: Option<StorageCredential>,
    ) -> Result<WarehouseInfo> {
        let mut rec = self.warehouse_for(caller, id, actions::UPDATE_WAREHOUSE).await?;
        let credential = match credential {
            Some(c) => Some(c),
            None => self.decrypt_credential(&rec)?,
        };
        if profile.base_location() != rec.location && !self.is_empty(id).await? {
            return Err(ServiceError::BadRequest(format!(
                "cannot move warehouse '{}' from {} to {} while it holds namespaces",
                rec.name,
                rec.location,
                profile.base_location()
            )));
        }
        self.validate_storage(&profile, credential.as_ref(), Some(id)).await?;
        rec.location = profile.base_location();
        rec.storage_profile = serde_json::to_value(&profile).map_err(ServiceError::internal)?;
        rec.storage_credential = credential.as_ref().map(|c| self.encrypt_credential(c)).transpose()?;
        self.save(rec).await
    }

    pub async fn update_credential(
        &self,
        caller: &Principal,
        id: Uuid,
        credential: Option<StorageCredential>,
    ) -> Result<WarehouseInfo> {
        let mut rec = self.warehouse_for(caller, id, actions::UPDATE_WAREHOUSE).await?;
        let profile = Self::decode_profile(&rec)?;
        self.validate_storage(&profile, credential.as_ref(), Some(id)).await?;
        rec.storage_credential = credential.as_ref().map(|c| self.encrypt_credential(c)).transpose()?;
        self.save(rec).await
    }

    pub async fn update_delete_profile(
        &self,
        caller: &Principal,
        id: Uuid,
        delete_profile: DeleteProfile,
    ) -> Result<WarehouseInfo> {
        let mut rec = self.warehouse_for(caller, id, actions::UPDATE_WAREHOUSE).await?;
        delete_profile.validate()?;
        rec.delete_profile = serde_json::to_value(delete_profile).map_err(ServiceError::internal)?;
        self.save(rec).await
    }

    pub async fn set_warehouse_active(&self, caller: &Principal, id: Uuid, active: bool) -> Result<WarehouseInfo> {
        let mut rec = self.warehouse_for(caller, id, actions::UPDATE_WAREHOUSE).await?;
        rec.status = if active { WarehouseStatus::Active } else { WarehouseStatus::Inactive };
        self.save(rec).await
    }

    pub async fn delete_warehouse(&self, caller: &Principal, id: Uuid) -> Result<()> {
        let rec = self.warehouse_for(caller, id, actions::DELETE_WAREHOUSE).await?;
        self.store().delete_warehouse(id).await.map_err(|e| match e {
            sluice_store::StoreError::NotEmpty(_) => ServiceError::Conflict(format!(
                "warehouse '{}' still holds namespaces; drop them first",
                rec.name
            )),
            other => other.into(),
        })?;
        self.forget_storage(id);
        Ok(())
    }

    /// The embedded default: a `file` warehouse named `default` under the data directory,
    /// created on first start.
    pub async fn ensure_default_warehouse(&self, root: &std::path::Path) -> Result<()> {
        if self.store().get_warehouse_by_name(DEFAULT_WAREHOUSE).await?.is_some()
            || self.store().get_setting("bootstrap.default-warehouse").await?.is_some()
        {
            return Ok(());
        }
        let profile = StorageProfile::File(sluice_storage::FileProfile {
            root: root.to_string_lossy().into_owned(),
        });
        self.create_warehouse_unchecked(DEFAULT_WAREHOUSE, profile, None, None).await?;
        // Remembered so an operator who deletes or renames it does not get it back.
        self.store().set_setting("bootstrap.default-warehouse", "created").await?;
        Ok(())
    }

    /// Resolves a catalog prefix (warehouse id, or name) to an active warehouse.
    pub async fn resolve_warehouse(&self, prefix: &str) -> Result<WarehouseRecord> {
        let rec = match Uuid::parse_str(prefix) {
            Ok(id) => self.store().get_warehouse(id).await?,
            Err(_) => None,
        };
        let rec = match rec {
            Some(r) => Some(r),
            None => self.store().get_warehouse_by_name(prefix).await?,
        };
        let rec = rec.ok_or_else(|| {
            ServiceError::NoSuchWarehouse(format!("warehouse '{prefix}' does not exist"))
        })?;
        if rec.status != WarehouseStatus::Active {
            return Err(ServiceError::NoSuchWarehouse(format!(
                "warehouse '{}' is inactive",
                rec.name
            )));
        }
        Ok(rec)
    }
}
