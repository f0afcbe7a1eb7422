//! Warehouse lifecycle: validated creation (a real probe of the storage), rename, storage
//! and credential updates, activation, deletion.

use crate::visible::warehouse_listed;
use crate::{now, Result, ServiceError, Services};
use serde::Serialize;
use serde_json::json;
use sluice_auth::policy::{resource, Action};
use sluice_core::{Principal, WarehouseName};
use sluice_storage::{
    DeleteProfile, Storage, StorageCredential, StorageError, StorageProfile, ValidationContext,
};
use sluice_store::{AuditRecord, Page, WarehouseRecord, WarehouseStatus};
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

impl From<WarehouseInfo> for sluice_api::Warehouse {
    fn from(w: WarehouseInfo) -> Self {
        sluice_api::Warehouse {
            warehouse_id: w.warehouse_id,
            id: w.id,
            name: w.name,
            storage_profile: serde_json::to_value(&w.storage_profile).unwrap_or_default(),
            delete_profile: serde_json::to_value(w.delete_profile).unwrap_or_default(),
            status: w.status.to_string(),
            location: w.location,
            has_storage_credential: w.has_storage_credential,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

pub const DEFAULT_WAREHOUSE: &str = "default";

/// A warehouse write's result with what the audit log records about it.
struct Audited<T> {
    value: T,
    name: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    /// Whether the request carried a storage credential (for writes that can take one).
    credential_replaced: Option<bool>,
}

/// How a write names its warehouse before it is found.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Name(&'a str),
    Id(Uuid),
}

/// Who the audit log names.
struct Actor {
    id: Option<Uuid>,
    name: String,
}

impl Actor {
    fn of(p: &Principal) -> Self {
        Actor {
            id: Some(p.user_id).filter(|id| !id.is_nil()),
            name: p.user_name.clone(),
        }
    }
}
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
        ValidationContext::new(
            &self.config().storage,
            self.config().allowed_file_roots.clone(),
        )
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
                // The other warehouse is not named: the caller may not be allowed to see it.
                tracing::debug!(other = %other.name, "storage location refused: it overlaps another warehouse");
                return Err(ServiceError::BadRequest(format!(
                    "storage location {} overlaps the storage of another warehouse",
                    profile.base_location(),
                )));
            }
        }
        let storage = Storage::open_with(profile, cred, &self.config().storage)?;
        storage.probe().await.map_err(|e| match e {
            // The remote's answer stays in the server log; the client learns the step and status.
            StorageError::Probe { .. } | StorageError::Io(_) | StorageError::Sts(_) => {
                tracing::warn!(location = %profile.base_location(), error = %e, "warehouse storage validation failed");
                ServiceError::BadRequest(e.client_message())
            }
            other => other.into(),
        })?;
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
        let outcome = async {
            self.authorize(caller, Action::CreateWarehouse, &resource::warehouse(name))
                .await?;
            self.create_warehouse_unchecked(name, profile, credential, delete_profile)
                .await
        }
        .await;
        let actor = Actor::of(caller);
        self.audit_warehouse(
            &actor,
            Action::CreateWarehouse,
            "create",
            Subject::Name(name),
            outcome,
        )
        .await
    }

    async fn create_warehouse_unchecked(
        &self,
        name: &str,
        profile: StorageProfile,
        credential: Option<StorageCredential>,
        delete_profile: Option<DeleteProfile>,
    ) -> Result<Audited<WarehouseInfo>> {
        let name =
            WarehouseName::parse(name).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if self
            .store()
            .get_warehouse_by_name(name.as_str())
            .await?
            .is_some()
        {
            return Err(ServiceError::AlreadyExists(format!(
                "warehouse '{name}' already exists"
            )));
        }
        if let Some(d) = &delete_profile {
            d.validate()?;
        }
        self.validate_storage(&profile, credential.as_ref(), None)
            .await?;
        let n = now();
        let rec = WarehouseRecord {
            id: Uuid::new_v4(),
            name: name.to_string(),
            location: Self::warehouse_base(name.as_str(), &profile),
            storage_profile: serde_json::to_value(&profile).map_err(ServiceError::internal)?,
            storage_credential: credential
                .as_ref()
                .map(|c| self.encrypt_credential(c))
                .transpose()?,
            delete_profile: serde_json::to_value(delete_profile.unwrap_or_default())
                .map_err(ServiceError::internal)?,
            status: WarehouseStatus::Active,
            created_at: n,
            updated_at: n,
        };
        let created = self.store().create_warehouse(&rec).await;
        // The list unscoped sign requests search must include it.
        self.forget_storage(rec.id);
        created.map_err(|e| match e {
            sluice_store::StoreError::AlreadyExists(_) => {
                ServiceError::AlreadyExists(format!("warehouse '{name}' already exists"))
            }
            other => other.into(),
        })?;
        Ok(Audited {
            value: Self::warehouse_info(&rec)?,
            name: rec.name.clone(),
            before: None,
            after: Some(self.audit_view(&rec)),
            credential_replaced: Some(credential.is_some()),
        })
    }

    pub async fn list_warehouses(&self, caller: &Principal) -> Result<Vec<WarehouseInfo>> {
        self.authorize(caller, Action::ListWarehouses, LIST_WAREHOUSES_RESOURCE)
            .await?;
        let policies = self.policy_set(caller).await?;
        self.store()
            .list_warehouses()
            .await?
            .iter()
            .filter(|w| warehouse_listed(&policies, w))
            .map(Self::warehouse_info)
            .collect()
    }

    /// The warehouse, if the caller may see it; otherwise the same error as a missing one.
    async fn visible_warehouse(&self, caller: &Principal, id: Uuid) -> Result<WarehouseRecord> {
        let rec = self.warehouse_record(id).await?;
        self.require_warehouse_visible(caller, &rec, &id.to_string())
            .await?;
        Ok(rec)
    }

    /// Visible and `action` allowed.
    async fn warehouse_for(
        &self,
        caller: &Principal,
        id: Uuid,
        action: Action,
    ) -> Result<WarehouseRecord> {
        let rec = self.visible_warehouse(caller, id).await?;
        self.authorize(caller, action, &resource::warehouse(&rec.name))
            .await?;
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
        let saved = self.store().update_warehouse(&rec).await;
        self.forget_storage(rec.id);
        saved?;
        Self::warehouse_info(&rec)
    }

    /// Saves `rec` (the changed copy of `before`) and describes the change for the audit log.
    async fn save_audited(
        &self,
        before: &WarehouseRecord,
        rec: WarehouseRecord,
        credential_replaced: Option<bool>,
    ) -> Result<Audited<WarehouseInfo>> {
        let before_view = self.audit_view(before);
        let info = self.save(rec.clone()).await?;
        Ok(Audited {
            value: info,
            name: rec.name.clone(),
            before: Some(before_view),
            after: Some(self.audit_view(&rec)),
            credential_replaced,
        })
    }

    pub async fn rename_warehouse(
        &self,
        caller: &Principal,
        id: Uuid,
        new_name: &str,
    ) -> Result<WarehouseInfo> {
        let outcome = async {
            let name = WarehouseName::parse(new_name)
                .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
            let before = self
                .warehouse_for(caller, id, Action::UpdateWarehouse)
                .await?;
            // Renaming also needs the right to create a warehouse of the new name.
            self.authorize(
                caller,
                Action::CreateWarehouse,
                &resource::warehouse(name.as_str()),
            )
            .await?;
            // The gateway's table locations name the warehouse (`s3://<name>/…`), in the
            // catalog and in every metadata file clients wrote: a new name would orphan them.
            if Self::decode_profile(&before)?.gateway_served() && before.name != name.as_str() {
                return Err(ServiceError::Conflict(format!(
                    "warehouse '{}' is served through the S3 gateway: its table locations are \
                     s3://{}/… and cannot follow a rename",
                    before.name, before.name
                )));
            }
            let mut rec = before.clone();
            rec.name = name.to_string();
            self.save_audited(&before, rec, None)
                .await
                .map_err(|e| match e {
                    ServiceError::AlreadyExists(_) => {
                        ServiceError::AlreadyExists(format!("warehouse '{name}' already exists"))
                    }
                    other => other,
                })
        }
        .await;
        self.audit_warehouse(
            &Actor::of(caller),
            Action::UpdateWarehouse,
            "rename",
            Subject::Id(id),
            outcome,
        )
        .await
    }

    async fn is_empty(&self, id: Uuid) -> Result<bool> {
        let page = Page {
            after: None,
            limit: Some(1),
        };
        Ok(self
            .store()
            .list_namespaces(id, None, &page)
            .await?
            .is_empty())
    }

    /// Replaces the storage profile (and optionally the credential). Moving the location of
    /// a warehouse that holds tables would orphan them, so that is refused. So is any change
    /// of where the stored credential goes (endpoint, STS endpoint, bucket, region, account,
    /// host, authority host, role) unless the credential is sent again in the same request:
    /// whoever may update a warehouse must not be able to redirect a secret they never saw.
    pub async fn update_storage(
        &self,
        caller: &Principal,
        id: Uuid,
        profile: StorageProfile,
        credential: Option<StorageCredential>,
    ) -> Result<WarehouseInfo> {
        let outcome = async {
            let before = self
                .warehouse_for(caller, id, Action::UpdateWarehouse)
                .await?;
            let replaced = credential.is_some();
            let credential = match credential {
                Some(c) => Some(c),
                None => {
                    let moved = Self::decode_profile(&before)?.redirected_fields(&profile);
                    if before.storage_credential.is_some() && !moved.is_empty() {
                        return Err(ServiceError::BadRequest(format!(
                            "changing {} of warehouse '{}' would send its stored credential to a \
                             different destination; send the storage credential again \
                             (storage-credential) in the same request",
                            moved.join(", "),
                            before.name
                        )));
                    }
                    self.decrypt_credential(&before)?
                }
            };
            let base = Self::warehouse_base(&before.name, &profile);
            if base != before.location && !self.is_empty(id).await? {
                return Err(ServiceError::BadRequest(format!(
                    "cannot move warehouse '{}' from {} to {base} while it holds namespaces",
                    before.name, before.location,
                )));
            }
            self.validate_storage(&profile, credential.as_ref(), Some(id))
                .await?;
            let mut rec = before.clone();
            rec.location = base;
            rec.storage_profile = serde_json::to_value(&profile).map_err(ServiceError::internal)?;
            rec.storage_credential = credential
                .as_ref()
                .map(|c| self.encrypt_credential(c))
                .transpose()?;
            self.save_audited(&before, rec, Some(replaced)).await
        }
        .await;
        self.audit_warehouse(
            &Actor::of(caller),
            Action::UpdateWarehouse,
            "update-storage",
            Subject::Id(id),
            outcome,
        )
        .await
    }

    pub async fn update_credential(
        &self,
        caller: &Principal,
        id: Uuid,
        credential: Option<StorageCredential>,
    ) -> Result<WarehouseInfo> {
        let outcome = async {
            let before = self
                .warehouse_for(caller, id, Action::UpdateWarehouse)
                .await?;
            let profile = Self::decode_profile(&before)?;
            self.validate_storage(&profile, credential.as_ref(), Some(id))
                .await?;
            let mut rec = before.clone();
            rec.storage_credential = credential
                .as_ref()
                .map(|c| self.encrypt_credential(c))
                .transpose()?;
            self.save_audited(&before, rec, Some(true)).await
        }
        .await;
        self.audit_warehouse(
            &Actor::of(caller),
            Action::UpdateWarehouse,
            "update-credential",
            Subject::Id(id),
            outcome,
        )
        .await
    }

    pub async fn update_delete_profile(
        &self,
        caller: &Principal,
        id: Uuid,
        delete_profile: DeleteProfile,
    ) -> Result<WarehouseInfo> {
        let outcome = async {
            let before = self
                .warehouse_for(caller, id, Action::UpdateWarehouse)
                .await?;
            delete_profile.validate()?;
            let mut rec = before.clone();
            rec.delete_profile =
                serde_json::to_value(delete_profile).map_err(ServiceError::internal)?;
            self.save_audited(&before, rec, None).await
        }
        .await;
        self.audit_warehouse(
            &Actor::of(caller),
            Action::UpdateWarehouse,
            "update-delete-profile",
            Subject::Id(id),
            outcome,
        )
        .await
    }

    pub async fn set_warehouse_active(
        &self,
        caller: &Principal,
        id: Uuid,
        active: bool,
    ) -> Result<WarehouseInfo> {
        let outcome = async {
            let before = self
                .warehouse_for(caller, id, Action::UpdateWarehouse)
                .await?;
            let mut rec = before.clone();
            rec.status = if active {
                WarehouseStatus::Active
            } else {
                WarehouseStatus::Inactive
            };
            self.save_audited(&before, rec, None).await
        }
        .await;
        let operation = if active { "activate" } else { "deactivate" };
        self.audit_warehouse(
            &Actor::of(caller),
            Action::UpdateWarehouse,
            operation,
            Subject::Id(id),
            outcome,
        )
        .await
    }

    pub async fn delete_warehouse(&self, caller: &Principal, id: Uuid) -> Result<()> {
        let outcome = async {
            let rec = self
                .warehouse_for(caller, id, Action::DeleteWarehouse)
                .await?;
            let before = self.audit_view(&rec);
            self.store()
                .delete_warehouse(id)
                .await
                .map_err(|e| match e {
                    sluice_store::StoreError::NotEmpty(_) => ServiceError::Conflict(format!(
                        "warehouse '{}' still holds namespaces; drop them first",
                        rec.name
                    )),
                    other => other.into(),
                })?;
            self.forget_storage(id);
            Ok::<_, ServiceError>(Audited {
                value: (),
                name: rec.name,
                before: Some(before),
                after: None,
                credential_replaced: None,
            })
        }
        .await;
        self.audit_warehouse(
            &Actor::of(caller),
            Action::DeleteWarehouse,
            "delete",
            Subject::Id(id),
            outcome,
        )
        .await
    }

    /// The audit log's view of a warehouse: everything but the credential, of which only
    /// the kind is recorded.
    fn audit_view(&self, w: &WarehouseRecord) -> serde_json::Value {
        let credential = match self.decrypt_credential(w) {
            Ok(Some(c)) => {
                json!({"type": c.storage_type(), "credential-type": c.credential_type()})
            }
            Ok(None) => serde_json::Value::Null,
            Err(_) => json!("unreadable"),
        };
        json!({
            "warehouse-id": w.id,
            "name": w.name,
            "status": w.status.as_str(),
            "location": w.location,
            "storage-profile": w.storage_profile,
            "delete-profile": w.delete_profile,
            "storage-credential": credential,
        })
    }

    /// Records a warehouse write (or the attempt) in the audit log: who, which operation,
    /// the warehouse before and after, whether a credential was supplied; the error if it
    /// failed. The detail is JSON. Never contains a secret: credentials appear only as
    /// their kind.
    async fn audit_warehouse<T>(
        &self,
        actor: &Actor,
        action: Action,
        operation: &str,
        subject: Subject<'_>,
        outcome: Result<Audited<T>>,
    ) -> Result<T> {
        let (result, name, detail, value) = match outcome {
            Ok(a) => {
                let mut detail =
                    json!({"operation": operation, "before": a.before, "after": a.after});
                if let Some(r) = a.credential_replaced {
                    detail["credential-supplied"] = json!(r);
                }
                ("success", Some(a.name), detail, Ok(a.value))
            }
            Err(e) => {
                let result = if matches!(e, ServiceError::Forbidden(_)) {
                    "denied"
                } else {
                    "failure"
                };
                let name = match subject {
                    Subject::Name(n) => Some(n.to_string()),
                    Subject::Id(id) => self
                        .store()
                        .get_warehouse(id)
                        .await
                        .ok()
                        .flatten()
                        .map(|w| w.name),
                };
                let message = match &e {
                    // Internal details stay in the server log, as in responses.
                    ServiceError::Internal(_) => "internal error".to_string(),
                    other => other.to_string(),
                };
                (
                    result,
                    name,
                    json!({"operation": operation, "error": message}),
                    Err(e),
                )
            }
        };
        let mut detail = detail;
        if let Subject::Id(id) = subject {
            detail["warehouse-id"] = json!(id);
        }
        let target = match (&name, subject) {
            (Some(n), _) => resource::warehouse(n),
            (None, Subject::Name(n)) => resource::warehouse(n),
            (None, Subject::Id(id)) => resource::warehouse(&id.to_string()),
        };
        let rec = AuditRecord {
            id: 0,
            at: now(),
            actor_id: actor.id,
            actor_name: actor.name.clone(),
            action: action.to_string(),
            target,
            result: result.to_string(),
            detail: Some(detail.to_string()),
        };
        if let Err(e) = self.store().append_audit(&rec).await {
            tracing::error!(error = %e, action = action.as_str(), operation, "could not write the audit log");
        }
        value
    }

    /// Where the catalog puts a warehouse's tables: `s3://<name>` when the S3 gateway serves
    /// it (clients never see the storage's own location), else the storage's base location.
    pub(crate) fn warehouse_base(name: &str, profile: &StorageProfile) -> String {
        if profile.gateway_served() {
            format!("s3://{name}")
        } else {
            profile.base_location()
        }
    }

    /// The embedded default: a `file` warehouse named `default` under the data directory,
    /// created on first start; `gateway` serves it through the S3 gateway (a lakehouse:
    /// clients on other machines get `s3://default/…` locations and gateway credentials).
    pub async fn ensure_default_warehouse(
        &self,
        root: &std::path::Path,
        gateway: bool,
    ) -> Result<()> {
        if self
            .store()
            .get_warehouse_by_name(DEFAULT_WAREHOUSE)
            .await?
            .is_some()
            || self
                .store()
                .get_setting("bootstrap.default-warehouse")
                .await?
                .is_some()
        {
            return Ok(());
        }
        let profile = StorageProfile::File(sluice_storage::FileProfile {
            root: root.to_string_lossy().into_owned(),
            gateway,
        });
        let outcome = self
            .create_warehouse_unchecked(DEFAULT_WAREHOUSE, profile, None, None)
            .await;
        let actor = Actor {
            id: None,
            name: "sluice-bootstrap".into(),
        };
        self.audit_warehouse(
            &actor,
            Action::CreateWarehouse,
            "create",
            Subject::Name(DEFAULT_WAREHOUSE),
            outcome,
        )
        .await?;
        // Remembered so an operator who deletes or renames it does not get it back.
        self.store()
            .set_setting("bootstrap.default-warehouse", "created")
            .await?;
        Ok(())
    }

    /// Resolves a catalog prefix (warehouse id, or name) to an active warehouse.
    pub(crate) async fn resolve_warehouse(&self, prefix: &str) -> Result<WarehouseRecord> {
        let rec = match Uuid::parse_str(prefix) {
            Ok(id) => self.store().get_warehouse(id).await?,
            Err(_) => None,
        };
        let rec = match rec {
            Some(r) => Some(r),
            None => self.store().get_warehouse_by_name(prefix).await?,
        };
        Self::active_warehouse(prefix, rec)
    }

    /// [`Services::resolve_warehouse`] from the in-memory list of warehouses (the one the
    /// unscoped signer searches), for reads that must not pay a database round trip
    /// (load-table). The list goes with every warehouse change here and, through the feed,
    /// on other replicas.
    pub(crate) async fn resolve_warehouse_cached(
        &self,
        prefix: &str,
    ) -> Result<std::sync::Arc<WarehouseRecord>> {
        let list = self.warehouse_profiles().await?;
        let rec = Uuid::parse_str(prefix)
            .ok()
            .and_then(|id| list.by_id(id))
            .or_else(|| list.by_name(prefix))
            .cloned();
        Self::active_warehouse(prefix, rec)
    }

    fn active_warehouse<W: std::borrow::Borrow<WarehouseRecord>>(
        prefix: &str,
        rec: Option<W>,
    ) -> Result<W> {
        let rec = rec.ok_or_else(|| {
            ServiceError::NoSuchWarehouse(format!("warehouse '{prefix}' does not exist"))
        })?;
        let w = rec.borrow();
        if w.status != WarehouseStatus::Active {
            return Err(ServiceError::NoSuchWarehouse(format!(
                "warehouse '{}' is inactive",
                w.name
            )));
        }
        Ok(rec)
    }
}
