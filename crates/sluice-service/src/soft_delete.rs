//! Soft-deleted tables and views: listing, undrop, and the purge of expired ones. Both kinds
//! share one deleted list (each entry says which it was), so the same paging, undrop and
//! purge serve them. The purge claims rows with a lease, so several replicas can run it and
//! each entry is purged once; a replica that dies mid-purge just lets its lease run out.

use crate::visible::{deleted_entry_listed, entry_resource};
use crate::{now, Result, ServiceError, Services};
use sluice_auth::policy::Action;
use sluice_core::{Principal, TableName};
use sluice_store::{AuditRecord, DeletedTableRecord, EntityKind, Page, StoreError};
use uuid::Uuid;

/// The default of how long a purge worker holds a claimed table before another may take it
/// over (`ServiceConfig::purge_lease`).
pub const PURGE_LEASE: std::time::Duration = std::time::Duration::from_secs(600);
const PURGE_BATCH: u32 = 50;
/// The audit-log action of a deleted table removed for good (by the background purge).
pub const PURGE_AUDIT_ACTION: &str = "catalog:PurgeDeletedTable";
/// The audit-log action of a deleted view removed for good.
pub const PURGE_VIEW_AUDIT_ACTION: &str = "catalog:PurgeDeletedView";
/// The actor name the purge writes to the audit log.
pub const PURGE_ACTOR: &str = "sluice-purge";

// The wire types are defined once, in sluice-api.
pub use sluice_api::{DeletedTable as DeletedTableInfo, UndroppedTable};

fn deleted_table_info(d: DeletedTableRecord) -> DeletedTableInfo {
    DeletedTableInfo {
        table_id: d.table.id,
        kind: d.kind.as_str().into(),
        namespace: d.table.namespace.into_parts(),
        name: d.table.name,
        location: d.table.location,
        deleted_at: d.deleted_at,
        expires_at: d.expires_at,
        deleted_by: d.deleted_by,
        purge_requested: d.purge_requested,
    }
}

/// The action that restoring a deleted entry needs on its (new) name, by its kind.
fn entry_create_action(kind: EntityKind) -> Action {
    match kind {
        EntityKind::Table => Action::CreateTable,
        EntityKind::View => Action::CreateView,
    }
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
        self.require_warehouse_visible(caller, &wh, &warehouse_id.to_string())
            .await?;
        let page = Page {
            after: after.map(str::to_string),
            limit: Some(limit.unwrap_or(100).clamp(1, 1000)),
        };
        let policies = self.policy_set(caller).await?;
        Ok(self
            .store()
            .list_deleted_tables(wh.id, &page)
            .await?
            .into_iter()
            .filter(|d| deleted_entry_listed(&policies, &wh, d))
            .map(deleted_table_info)
            .collect())
    }

    /// Restores a soft-deleted table or view, under its old name or `new_name`.
    pub async fn undrop_table(
        &self,
        caller: &Principal,
        warehouse_id: Uuid,
        table_id: Uuid,
        new_name: Option<&str>,
    ) -> Result<UndroppedTable> {
        let wh = self.resolve_warehouse(&warehouse_id.to_string()).await?;
        let not_found = || {
            ServiceError::NoSuchTable(format!(
                "no deleted table or view {table_id} in warehouse '{}'",
                wh.name
            ))
        };
        let d = self
            .store()
            .get_deleted_table(table_id)
            .await?
            .filter(|d| d.table.warehouse_id == wh.id)
            .ok_or_else(not_found)?;
        let kind = d.kind.as_str();
        let name = match new_name {
            Some(n) => TableName::parse(n)
                .map_err(|e| ServiceError::BadRequest(format!("invalid {kind} name: {e}")))?
                .to_string(),
            None => d.table.name.clone(),
        };
        self.require_deleted_entry_visible(caller, &wh, &d, not_found)
            .await?;
        self.authorize(
            caller,
            entry_create_action(d.kind),
            &entry_resource(&wh.name, &d, &name),
        )
        .await?;
        let undropped = self.store().undrop_table(table_id, new_name).await;
        self.tables_changed([table_id]);
        let rec = undropped.map_err(|e| match e {
            StoreError::AlreadyExists(m) => ServiceError::AlreadyExists(format!(
                "{} already exists: {}.{name}; undrop it under another name",
                if m.starts_with("view ") {
                    "View"
                } else {
                    "Table"
                },
                d.table.namespace
            )),
            StoreError::NotFound(m) => {
                ServiceError::NotFound(format!("cannot undrop: {m} not found"))
            }
            other => other.into(),
        })?;
        Ok(UndroppedTable {
            namespace: rec.namespace.into_parts(),
            name: rec.name,
            kind: kind.into(),
        })
    }

    /// One pass of the purge of expired soft-deleted tables and views; returns how many were
    /// removed.
    pub async fn purge_expired_tables(&self) -> Result<usize> {
        let n = now();
        let lease = chrono::Duration::from_std(self.config().purge_lease)
            .unwrap_or(chrono::Duration::minutes(10));
        let claimed = self
            .store()
            .claim_expired_deleted_tables(n, n + lease, PURGE_BATCH)
            .await?;
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
                // A view's location is not reserved against tables created later, so its files
                // are only removed while no other table (live or deleted) lies in or around it.
                if d.kind == EntityKind::View {
                    if let Some(other) = self
                        .store()
                        .location_overlaps(wh.id, &d.table.location, Some(d.table.id))
                        .await?
                    {
                        tracing::warn!(view = %d.table.id, location = %d.table.location, overlaps = %other, "not purging the files of a deleted view: its location overlaps a table");
                    } else if let Err(e) = storage.delete_prefix(&d.table.location).await {
                        tracing::error!(view = %d.table.id, location = %d.table.location, error = %e, "purging files of a deleted view failed; will retry after the lease");
                        continue;
                    }
                } else if let Err(e) = storage.delete_prefix(&d.table.location).await {
                    tracing::error!(table = %d.table.id, location = %d.table.location, error = %e, "purging files of a deleted table failed; will retry after the lease");
                    continue;
                }
            }
            // The removal and its audit entry commit together: one entry per table removed,
            // and the lease makes that happen once across replicas.
            let target = match &wh {
                Some(w) => entry_resource(&w.name, &d, &d.table.name),
                None => format!("{}.{}", d.table.namespace, d.table.name),
            };
            let (action, kind) = match d.kind {
                EntityKind::Table => (PURGE_AUDIT_ACTION, "table"),
                EntityKind::View => (PURGE_VIEW_AUDIT_ACTION, "view"),
            };
            let rec = AuditRecord {
                id: 0,
                at: now(),
                actor_id: None,
                actor_name: PURGE_ACTOR.to_string(),
                action: action.to_string(),
                target,
                result: "success".to_string(),
                detail: Some(format!(
                    "{kind}-id {}; files purged: {}",
                    d.table.id, d.purge_requested
                )),
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
            tracing::info!(kind, name = %format!("{}.{}", d.table.namespace, d.table.name), purged_files = d.purge_requested, "expired soft-deleted entry removed");
            done += 1;
        }
        Ok(done)
    }
}
