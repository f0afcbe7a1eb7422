//! Soft-deleted tables: listing, undrop, and the purge of expired ones. The purge claims
//! rows with a lease, so several replicas can run it and each table is purged once; a
//! replica that dies mid-purge just lets its lease run out.

use crate::{now, Result, ServiceError, Services};
use serde::Serialize;
use sluice_auth::policy::{actions, resource};
use sluice_core::{Principal, TableName};
use sluice_store::{AuditRecord, DeletedTableRecord, Page, StoreError};
use uuid::Uuid;

/// The default of how long a purge worker holds a claimed table before another may take it
/// over (`ServiceConfig::purge_lease`).
pub const PURGE_LEASE: std::time::Duration = std::time::Duration::from_secs(600);
const PURGE_BATCH: u32 = 50;
/// The audit-log action of a deleted table removed for good (by the background purge).
pub const PURGE_AUDIT_ACTION: &str = "catalog:PurgeDeletedTable";
/// The actor name the purge writes to the audit log.
pub const PURGE_ACTOR: &str = "sluice-purge";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeletedTableInfo {
    pub table_id: Uuid,
    pub namespace: Vec<String>,
    pub name: String,
    pub location: String,
    pub deleted_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub deleted_by: Option<String>,
    pub purge_requested: bool,
}

impl From<DeletedTableRecord> for DeletedTableInfo {
    fn from(d: DeletedTableRecord) -> Self {
        DeletedTableInfo {
            table_id: d.table.id,
            namespace: d.table.namespace.into_parts(),
            name: d.table.name,
            location: d.table.location,
            deleted_at: d.deleted_at,
            expires_at: d.expires_at,
            deleted_by: d.deleted_by,
            purge_requested: d.purge_requested,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UndroppedTable {
    pub namespace: Vec<String>,
    pub name: String,
}

impl Services {
    pub async fn list_deleted_tables(
        &self,
        caller: &Principal,
        warehouse_id: Uuid,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<DeletedTableInfo>> {
        let wh = self.resolve_warehouse(&warehouse_id.to_string()).await?;
        if !self.is_allowed(caller, actions::READ_WAREHOUSE, &resource::warehouse(&wh.name)).await? {
            return Err(ServiceError::NoSuchWarehouse(format!("warehouse {warehouse_id} does not exist")));
        }
        let page = Page { after: after.map(str::to_string), limit: Some(limit.unwrap_or(100).clamp(1, 1000)) };
        let policies = self.policy_set(caller).await?;
        Ok(self
            .store()
            .list_deleted_tables(wh.id, &page)
            .await?
            .into_iter()
            .filter(|d| policies.is_allowed(actions::READ_TABLE, &resource::table(&wh.name, d.table.namespace.parts(), &d.table.name)))
            .map(Into::into)
            .collect())
    }

    /// Restores a soft-deleted table, under its old name or `new_name`.
    pub async fn undrop_table(
        &self,
        caller: &Principal,
        warehouse_id: Uuid,
        table_id: Uuid,
        new_name: Option<&str>,
    ) -> Result<UndroppedTable> {
        let wh = self.resolve_warehouse(&warehouse_id.to_string()).await?;
        let not_found = || ServiceError::NoSuchTable(format!("no deleted table {table_id} in warehouse '{}'", wh.name));
        let d = self.store().get_deleted_table(table_id).await?.filter(|d| d.table.warehouse_id == wh.id).ok_or_else(not_found)?;
        let name = match new_name {
            Some(n) => TableName::parse(n).map_err(|e| ServiceError::BadRequest(format!("invalid table name: {e}")))?.to_string(),
            None => d.table.name.clone(),
        };
        let old_res = resource::table(&wh.name, d.table.namespace.parts(), &d.table.name);
        if !self.is_allowed(caller, actions::READ_TABLE, &old_res).await? {
            return Err(not_found());
        }
        self.authorize(caller, actions::CREATE_TABLE, &resource::table(&wh.name, d.table.namespace.parts(), &name)).await?;
        let rec = self.store().undrop_table(table_id, new_name).await.map_err(|e| match e {
            StoreError::AlreadyExists(m) => ServiceError::AlreadyExists(format!(
                "{} already exists: {}.{name}; undrop it under another name",
                if m.starts_with("view ") { "View" } else { "Table" },
                d.table.namespace
            )),
            StoreError::NotFound(m) => ServiceError::NotFound(format!("cannot undrop: {m} not found")),
            other => other.into(),
        })?;
        Ok(UndroppedTable { namespace: rec.namespace.into_parts(), name: rec.name })
    }

    /// One pass of the purge of expired soft-deleted tables; returns how many were removed.
    pub async fn purge_expired_tables(&self) -> Result<usize> {
        let n = now();
        let lease = chrono::Duration::from_std(self.config().purge_lease).unwrap_or(chrono::Duration::minutes(10));
        let claimed = self.store().claim_expired_deleted_tables(n, n + lease, PURGE_BATCH).await?;
        let mut done = 0;
        for d in claimed {
            let wh = self.store().get_warehouse(d.table.warehouse_id).await?;
            // The warehouse cannot be deleted while it holds deleted tables; a missing one
            // means there are no files left to purge, only the row.
            if let (true, Some(wh)) = (d.purge_requested, &wh) {
                let storage = match self.storage_for(wh) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(table = %d.table.id, error = %e, "cannot open storage to purge a deleted table; will retry after the lease");
                        continue;
                    }
                };
                if let Err(e) = storage.delete_prefix(&d.table.location).await {
                    tracing::error!(table = %d.table.id, location = %d.table.location, error = %e, "purging files of a deleted table failed; will retry after the lease");
                    continue;
                }
            }
            // The removal and its audit entry commit together: one entry per table removed,
            // and the lease makes that happen once across replicas.
            let target = match &wh {
                Some(w) => resource::table(&w.name, d.table.namespace.parts(), &d.table.name),
                None => format!("{}.{}", d.table.namespace, d.table.name),
            };
            let rec = AuditRecord {
                id: 0,
                at: now(),
                actor_id: None,
                actor_name: PURGE_ACTOR.to_string(),
                action: PURGE_AUDIT_ACTION.to_string(),
                target,
                result: "success".to_string(),
                detail: Some(format!("table-id {}; files purged: {}", d.table.id, d.purge_requested)),
            };
            match self.store().purge_deleted_table(d.table.id, &rec).await {
                Ok(()) => {}
                // Our lease ran out mid-purge and another worker finished the table.
                Err(StoreError::NotFound(_)) => {
                    tracing::warn!(table = %d.table.id, "deleted table already removed by another worker (lease expired mid-purge)");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(table = %format!("{}.{}", d.table.namespace, d.table.name), purged_files = d.purge_requested, "expired soft-deleted table removed");
            done += 1;
        }
        Ok(done)
    }
}
