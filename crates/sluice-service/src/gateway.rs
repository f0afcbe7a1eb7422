//! The S3 gateway's decisions: which user an access key belongs to, which warehouses
//! (buckets) a caller sees, and what a caller may do with an object key. A key inside a
//! table's location is governed by that table's rights (`catalog:ReadTable` to read,
//! `catalog:WriteTable` to write or delete); a key outside every table by the `s3:*`
//! actions on its object resource. The gateway crate only parses and streams.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_auth::policy::{resource, Action};
use sluice_core::{AccessKeyId, Principal, Secret};
use sluice_storage::{ObjectInfo, Storage};
use sluice_store::{TableRecord, WarehouseRecord};
use uuid::Uuid;

use crate::gateway_creds::GatewayCaller;
use crate::visible::{object_readable, warehouse_listed};
use crate::{Result, ServiceError, Services};

/// What a request does with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAccess {
    Read,
    Write,
    Delete,
}

/// A warehouse as the gateway shows it (a bucket).
#[derive(Debug, Clone)]
pub struct GatewayBucket {
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A bucket the caller may see, with its opened storage.
#[derive(Clone)]
pub struct GatewayWarehouse {
    /// Shared with the in-memory warehouse list: a gateway request does not copy the row.
    warehouse: Arc<WarehouseRecord>,
    storage: Storage,
}

impl GatewayWarehouse {
    pub fn name(&self) -> &str {
        &self.warehouse.name
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// Prefix under which the gateway keeps the parts of unfinished multipart uploads; keys
/// there are neither listed nor addressable by clients (nor are the object sidecars under
/// [`META_PREFIX`]).
pub use sluice_storage::{META_PREFIX, UPLOADS_PREFIX};

fn invalid_key() -> ServiceError {
    ServiceError::Unauthorized("invalid access key id".into())
}

impl Services {
    /// The user and secret of an S3 access key, for the gateway's signature check only (the
    /// secret is handed to the verifier and never leaves it). A malformed, unknown or
    /// deleted key, or one whose user is gone, is `Unauthorized`. Temporary keys are
    /// `gateway_temporary_secret` and `gateway_session`.
    pub async fn gateway_secret(&self, key_id: &str) -> Result<(Principal, Secret)> {
        if AccessKeyId::parse(key_id).is_err() {
            return Err(invalid_key());
        }
        self.key_owner_and_secret(key_id)
            .await?
            .ok_or_else(invalid_key)
    }

    /// The warehouses the caller may see, by name.
    pub async fn gateway_buckets(&self, caller: &GatewayCaller) -> Result<Vec<GatewayBucket>> {
        let policies = self.policy_set(caller).await?;
        let mut out: Vec<GatewayBucket> = self
            .store()
            .list_warehouses()
            .await?
            .into_iter()
            .filter(|w| {
                w.status == sluice_store::WarehouseStatus::Active
                    && warehouse_listed(&policies, w)
                    && caller.scope().is_none_or(|s| s.warehouse() == w.id)
            })
            .map(|w| GatewayBucket {
                name: w.name,
                created_at: w.created_at,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The bucket `name`, if it exists, is active and the caller may see it; else
    /// `NoSuchWarehouse` (the same answer either way).
    pub async fn gateway_bucket(
        &self,
        caller: &GatewayCaller,
        name: &str,
    ) -> Result<GatewayWarehouse> {
        let wh = self
            .warehouse_profiles()
            .await?
            .by_name(name)
            .cloned()
            .filter(|w| w.status == sluice_store::WarehouseStatus::Active)
            .filter(|w| caller.scope().is_none_or(|s| s.warehouse() == w.id))
            .ok_or_else(|| {
                ServiceError::NoSuchWarehouse(format!("bucket {name} does not exist"))
            })?;
        self.require_warehouse_visible(caller, &wh, name).await?;
        let storage = self.storage_for(&wh)?;
        Ok(GatewayWarehouse {
            warehouse: wh,
            storage,
        })
    }

    /// The live table of `wh` whose location contains `key`, if any.
    async fn table_of_key(
        &self,
        bucket: &GatewayWarehouse,
        key: &str,
    ) -> Result<Option<Arc<TableRecord>>> {
        let location = format!("{}/{key}", bucket.storage.base_location());
        self.table_holding(bucket.warehouse.id, &location).await
    }

    /// The live table of warehouse `wh` whose location contains `location`, if any. Engines
    /// touch a table's files with many requests (ranged GETs through the gateway, signed
    /// requests), so the answer for the location's directory is kept until any table changes
    /// (`TableCache::located`). The record comes without its metadata.
    pub(crate) async fn table_holding(
        &self,
        wh: Uuid,
        location: &str,
    ) -> Result<Option<Arc<TableRecord>>> {
        let dir = location.rsplit_once('/').map(|(d, _)| d);
        let cache = self.table_cache();
        if let Some(t) = dir.and_then(|d| cache.located(wh, d)) {
            return Ok(Some(t));
        }
        let ticket = cache.ticket();
        let Some(mut t) = self
            .store()
            .table_containing_location(location)
            .await?
            .filter(|t| t.warehouse_id == wh)
        else {
            return Ok(None);
        };
        t.metadata_json = String::new();
        let t = Arc::new(t);
        // A location strictly below the table's has its directory inside it too (the table's
        // own location does not).
        let below = location
            .strip_prefix(t.location.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'));
        if let (Some(dir), true) = (dir, below) {
            cache.insert_location(ticket, wh, dir, t.clone());
        }
        Ok(Some(t))
    }

    /// Allows `access` to `key` of `bucket`, or `Forbidden` (logged with the user, key and
    /// reason). The key itself is checked by the caller's storage call.
    pub async fn gateway_authorize(
        &self,
        caller: &GatewayCaller,
        bucket: &GatewayWarehouse,
        key: &str,
        access: ObjectAccess,
    ) -> Result<()> {
        if key.starts_with(UPLOADS_PREFIX) || key.starts_with(META_PREFIX) {
            return Err(self.gateway_denied(caller, bucket, key, "reserved key prefix"));
        }
        // Temporary credentials narrow the user's rights to one table and level; the user's
        // own rights still apply below.
        if let Some(scope) = caller.scope() {
            let location = format!("{}/{key}", bucket.storage.base_location());
            if !scope.allows(bucket.warehouse.id, &location, access) {
                let reason = if scope.covers(&location) {
                    "temporary credentials are read-only"
                } else {
                    "outside the table of the temporary credentials"
                };
                return Err(self.gateway_denied(caller, bucket, key, reason));
            }
        }
        let table = self.table_of_key(bucket, key).await?;
        let wh = &bucket.warehouse;
        // A staged table's files, written before its create commits: the right to create
        // the table is the right to them (as for the staged table's signer endpoint).
        if let (None, Some(staged)) = (&table, caller.scope().and_then(|s| s.staged_table())) {
            if self.is_allowed(caller, Action::CreateTable, staged).await? {
                return Ok(());
            }
            return Err(self.gateway_denied(
                caller,
                bucket,
                key,
                "catalog:CreateTable is not allowed on the staged table",
            ));
        }
        let (action, res) = match (&table, access) {
            (Some(t), ObjectAccess::Read) => {
                let policies = self.policy_set(caller).await?;
                if object_readable(&policies, wh, Some(&**t), key) {
                    return Ok(());
                }
                return Err(self.gateway_denied(
                    caller,
                    bucket,
                    key,
                    "catalog:ReadTable is not allowed on the table holding the key",
                ));
            }
            (Some(t), ObjectAccess::Write | ObjectAccess::Delete) => (
                Action::WriteTable,
                resource::table(&wh.name, t.namespace.parts(), &t.name),
            ),
            (None, ObjectAccess::Read) => {
                let policies = self.policy_set(caller).await?;
                if object_readable(&policies, wh, None, key) {
                    return Ok(());
                }
                return Err(self.gateway_denied(
                    caller,
                    bucket,
                    key,
                    "s3:GetObject is not allowed on the key (outside every table)",
                ));
            }
            (None, ObjectAccess::Write) => (Action::S3PutObject, resource::object(&wh.name, key)),
            (None, ObjectAccess::Delete) => {
                (Action::S3DeleteObject, resource::object(&wh.name, key))
            }
        };
        if self.is_allowed(caller, action, &res).await? {
            Ok(())
        } else {
            let reason = if table.is_some() {
                format!("{action} is not allowed on the table holding the key")
            } else {
                format!("{action} is not allowed on the key (outside every table)")
            };
            Err(self.gateway_denied(caller, bucket, key, &reason))
        }
    }

    fn gateway_denied(
        &self,
        caller: &GatewayCaller,
        bucket: &GatewayWarehouse,
        key: &str,
        reason: &str,
    ) -> ServiceError {
        // A temporary key is logged as itself; the key it was issued to stays in the audit log.
        let key_id = caller
            .scope()
            .map(|s| s.key_id())
            .or(caller.access_key_id.as_deref());
        tracing::info!(
            user = %caller.user_name,
            access_key_id = key_id.unwrap_or("-"),
            bucket = %bucket.warehouse.name,
            key,
            reason,
            "S3 gateway request denied"
        );
        ServiceError::Forbidden("Access Denied".into())
    }

    /// The objects of a listing the caller may read; the gateway's own staging area is
    /// never listed. Keys of a table are decided once per directory.
    pub async fn gateway_readable(
        &self,
        caller: &GatewayCaller,
        bucket: &GatewayWarehouse,
        objects: Vec<ObjectInfo>,
    ) -> Result<Vec<ObjectInfo>> {
        let policies = self.policy_set(caller).await?;
        let mut tables: HashMap<String, Option<Arc<TableRecord>>> = HashMap::new();
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            if o.key.starts_with(UPLOADS_PREFIX) {
                continue;
            }
            if let Some(scope) = caller.scope() {
                let location = format!("{}/{}", bucket.storage.base_location(), o.key);
                if !scope.allows(bucket.warehouse.id, &location, ObjectAccess::Read) {
                    continue;
                }
            }
            let dir = o
                .key
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("")
                .to_string();
            let table = match tables.get(&dir) {
                Some(t) => t.clone(),
                None => {
                    let t = self.table_of_key(bucket, &o.key).await?;
                    tables.insert(dir, t.clone());
                    t
                }
            };
            if object_readable(&policies, &bucket.warehouse, table.as_deref(), &o.key) {
                out.push(o);
            }
        }
        Ok(out)
    }
}
