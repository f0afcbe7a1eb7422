//! "Not visible ⇒ 404", decided in one place.
//!
//! A caller who may not read a warehouse, namespace, table or view gets the same answer as
//! for one that does not exist. Every operation on an existing table or view starts from a
//! [`VisibleTable`] / [`VisibleView`]; their fields are private to this module, so
//! [`Services::visible_table`] / [`Services::visible_view`] are the only ways to get one,
//! and the only code that asks the read action for them. Listings filter with the
//! `*_listed` functions below, against the same resources and actions. Nothing outside this
//! module names `Action::Read{Warehouse,Namespace,Table,View}` (ARCHITECTURE.md, invariants).
//!
//! Visibility is decided on the name: a visible table may still be missing (the store
//! answers that with the same 404), and rights beyond reading are checked after it on the
//! value's `resource()`, so visible-but-forbidden stays 403.

use crate::catalog::{no_such_namespace, no_such_table, parse_namespace};
use crate::view::no_such_view;
use crate::{Result, ServiceError, Services};
use sluice_auth::policy::{resource, Action, PolicySet};
use sluice_core::{NamespaceName, Principal};
use sluice_store::{DeletedTableRecord, EntityKind, TableRecord, WarehouseRecord};

/// A namespace of an active warehouse that the caller may read (`catalog:ReadNamespace`).
/// Whether it exists is the store's answer, reported the same way.
#[derive(Debug, Clone)]
pub(crate) struct VisibleNamespace {
    warehouse: WarehouseRecord,
    name: NamespaceName,
    resource: String,
}

impl VisibleNamespace {
    pub(crate) fn warehouse(&self) -> &WarehouseRecord {
        &self.warehouse
    }

    pub(crate) fn name(&self) -> &NamespaceName {
        &self.name
    }

    /// Its policy resource.
    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }
}

/// A table (by name) of an active warehouse that the caller may read (`catalog:ReadTable`).
#[derive(Debug, Clone)]
pub(crate) struct VisibleTable {
    warehouse: std::sync::Arc<WarehouseRecord>,
    namespace: NamespaceName,
    name: String,
    resource: String,
}

impl VisibleTable {
    pub(crate) fn warehouse(&self) -> &WarehouseRecord {
        &self.warehouse
    }

    pub(crate) fn namespace(&self) -> &NamespaceName {
        &self.namespace
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its policy resource.
    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// The 404 of this table: the same whether it is missing or was never visible.
    pub(crate) fn not_found(&self) -> ServiceError {
        no_such_table(&self.namespace, &self.name)
    }
}

/// A view (by name) of an active warehouse that the caller may read (`catalog:ReadView`).
#[derive(Debug, Clone)]
pub(crate) struct VisibleView {
    warehouse: WarehouseRecord,
    namespace: NamespaceName,
    name: String,
    resource: String,
}

impl VisibleView {
    pub(crate) fn warehouse(&self) -> &WarehouseRecord {
        &self.warehouse
    }

    pub(crate) fn namespace(&self) -> &NamespaceName {
        &self.namespace
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its policy resource.
    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// The 404 of this view: the same whether it is missing or was never visible.
    pub(crate) fn not_found(&self) -> ServiceError {
        no_such_view(&self.namespace, &self.name)
    }
}

/// The authorization resource of a deleted entry, by its kind.
pub(crate) fn entry_resource(warehouse: &str, d: &DeletedTableRecord, name: &str) -> String {
    match d.kind {
        EntityKind::Table => resource::table(warehouse, d.table.namespace.parts(), name),
        EntityKind::View => resource::view(warehouse, d.table.namespace.parts(), name),
    }
}

fn entry_read_action(kind: EntityKind) -> Action {
    match kind {
        EntityKind::Table => Action::ReadTable,
        EntityKind::View => Action::ReadView,
    }
}

// ---------------------------------------------------------------------------- listings

/// Whether a listing of warehouses shows `w` to the holder of `policies`.
pub(crate) fn warehouse_listed(policies: &PolicySet, w: &WarehouseRecord) -> bool {
    policies.is_allowed(Action::ReadWarehouse, &resource::warehouse(&w.name))
}

/// Whether a listing of namespaces shows `ns` of `wh`.
pub(crate) fn namespace_listed(
    policies: &PolicySet,
    wh: &WarehouseRecord,
    ns: &NamespaceName,
) -> bool {
    policies.is_allowed(
        Action::ReadNamespace,
        &resource::namespace(&wh.name, ns.parts()),
    )
}

/// Whether a listing of tables shows table `name` of `ns`.
pub(crate) fn table_listed(
    policies: &PolicySet,
    wh: &WarehouseRecord,
    ns: &NamespaceName,
    name: &str,
) -> bool {
    policies.is_allowed(
        Action::ReadTable,
        &resource::table(&wh.name, ns.parts(), name),
    )
}

/// Whether a listing of views shows view `name` of `ns`.
pub(crate) fn view_listed(
    policies: &PolicySet,
    wh: &WarehouseRecord,
    ns: &NamespaceName,
    name: &str,
) -> bool {
    policies.is_allowed(
        Action::ReadView,
        &resource::view(&wh.name, ns.parts(), name),
    )
}

/// Whether the deleted list shows entry `d` (by the read action of its kind, on its old name).
pub(crate) fn deleted_entry_listed(
    policies: &PolicySet,
    wh: &WarehouseRecord,
    d: &DeletedTableRecord,
) -> bool {
    policies.is_allowed(
        entry_read_action(d.kind),
        &entry_resource(&wh.name, d, &d.table.name),
    )
}

/// Whether an object of `wh` may be read through the S3 gateway: inside a table (`table`),
/// with the table's read right; outside every table, with `s3:GetObject` on its key.
pub(crate) fn object_readable(
    policies: &PolicySet,
    wh: &WarehouseRecord,
    table: Option<&TableRecord>,
    key: &str,
) -> bool {
    match table {
        Some(t) => policies.is_allowed(
            Action::ReadTable,
            &resource::table(&wh.name, t.namespace.parts(), &t.name),
        ),
        None => policies.is_allowed(Action::S3GetObject, &resource::object(&wh.name, key)),
    }
}

impl Services {
    // ------------------------------------------------------------------ warehouses

    /// The warehouse, if the caller may read it (`warehouse:Read`); otherwise
    /// `warehouse <shown_as> does not exist`, as for a missing one.
    pub(crate) async fn require_warehouse_visible(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        shown_as: &str,
    ) -> Result<()> {
        if self
            .is_allowed(
                caller,
                Action::ReadWarehouse,
                &resource::warehouse(&wh.name),
            )
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NoSuchWarehouse(format!(
                "warehouse {shown_as} does not exist"
            )))
        }
    }

    // ------------------------------------------------------------------ namespaces

    /// A namespace the caller may not read is reported exactly like a missing one.
    pub(crate) async fn require_namespace_visible(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
    ) -> Result<()> {
        if self
            .is_allowed(
                caller,
                Action::ReadNamespace,
                &resource::namespace(&wh.name, ns.parts()),
            )
            .await?
        {
            Ok(())
        } else {
            Err(no_such_namespace(ns))
        }
    }

    /// The one way to a [`VisibleNamespace`].
    pub(crate) async fn visible_namespace(
        &self,
        caller: &Principal,
        warehouse: WarehouseRecord,
        name: NamespaceName,
    ) -> Result<VisibleNamespace> {
        self.require_namespace_visible(caller, &warehouse, &name)
            .await?;
        let resource = resource::namespace(&warehouse.name, name.parts());
        Ok(VisibleNamespace {
            warehouse,
            name,
            resource,
        })
    }

    /// A request's `{prefix}` and `{namespace}` path parameters, resolved and checked.
    pub(crate) async fn visible_namespace_at(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
    ) -> Result<VisibleNamespace> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        self.visible_namespace(caller, wh, ns).await
    }

    // ------------------------------------------------------------------ tables

    /// The one way to a [`VisibleTable`]: a table the caller may not read is reported
    /// exactly like a missing one.
    pub(crate) async fn visible_table(
        &self,
        caller: &Principal,
        warehouse: impl Into<std::sync::Arc<WarehouseRecord>>,
        namespace: NamespaceName,
        name: &str,
    ) -> Result<VisibleTable> {
        let warehouse = warehouse.into();
        let resource = resource::table(&warehouse.name, namespace.parts(), name);
        if !self
            .is_allowed(caller, Action::ReadTable, &resource)
            .await?
        {
            return Err(no_such_table(&namespace, name));
        }
        Ok(VisibleTable {
            warehouse,
            namespace,
            name: name.to_string(),
            resource,
        })
    }

    /// A request's `{prefix}`, `{namespace}` and `{table}` path parameters, resolved and
    /// checked.
    pub(crate) async fn visible_table_at(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
    ) -> Result<VisibleTable> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        self.visible_table(caller, wh, ns, table).await
    }

    /// [`Services::visible_table_at`] with the warehouse resolved from memory (load-table).
    pub(crate) async fn visible_table_at_cached(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
    ) -> Result<VisibleTable> {
        let wh = self.resolve_warehouse_cached(prefix).await?;
        let ns = parse_namespace(ns)?;
        self.visible_table(caller, wh, ns, table).await
    }

    /// The visible table's row; missing is the same 404 as not visible.
    pub(crate) async fn table_record(&self, t: &VisibleTable) -> Result<TableRecord> {
        self.store()
            .get_table(t.warehouse.id, &t.namespace, &t.name)
            .await?
            .ok_or_else(|| t.not_found())
    }

    // ------------------------------------------------------------------ views

    /// The one way to a [`VisibleView`]: a view the caller may not read is reported exactly
    /// like a missing one.
    pub(crate) async fn visible_view(
        &self,
        caller: &Principal,
        warehouse: WarehouseRecord,
        namespace: NamespaceName,
        name: &str,
    ) -> Result<VisibleView> {
        let resource = resource::view(&warehouse.name, namespace.parts(), name);
        if !self.is_allowed(caller, Action::ReadView, &resource).await? {
            return Err(no_such_view(&namespace, name));
        }
        Ok(VisibleView {
            warehouse,
            namespace,
            name: name.to_string(),
            resource,
        })
    }

    /// A request's `{prefix}`, `{namespace}` and `{view}` path parameters, resolved and
    /// checked.
    pub(crate) async fn visible_view_at(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        view: &str,
    ) -> Result<VisibleView> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        self.visible_view(caller, wh, ns, view).await
    }

    // ------------------------------------------------------------------ deleted entries

    /// A deleted table or view the caller may not read (under its old name) is reported
    /// with `not_found`, like one that is not in the deleted list.
    pub(crate) async fn require_deleted_entry_visible(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        d: &DeletedTableRecord,
        not_found: impl FnOnce() -> ServiceError,
    ) -> Result<()> {
        if self
            .is_allowed(
                caller,
                entry_read_action(d.kind),
                &entry_resource(&wh.name, d, &d.table.name),
            )
            .await?
        {
            Ok(())
        } else {
            Err(not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every module of this crate but this one, as compiled. A module added to `lib.rs`
    /// must be added here too (the first assertion says so).
    const MODULES: &[(&str, &str)] = &[
        ("auth", include_str!("auth.rs")),
        ("authn", include_str!("authn.rs")),
        ("authz", include_str!("authz.rs")),
        ("cache", include_str!("cache.rs")),
        ("catalog", include_str!("catalog.rs")),
        ("delegation", include_str!("delegation.rs")),
        ("display", include_str!("display.rs")),
        ("error", include_str!("error.rs")),
        ("field_ids", include_str!("field_ids.rs")),
        ("gateway", include_str!("gateway.rs")),
        ("gateway_creds", include_str!("gateway_creds.rs")),
        ("identity", include_str!("identity.rs")),
        ("lib", include_str!("lib.rs")),
        ("login", include_str!("login.rs")),
        ("metadata_json", include_str!("metadata_json.rs")),
        ("requirements", include_str!("requirements.rs")),
        ("rest", include_str!("rest.rs")),
        ("soft_delete", include_str!("soft_delete.rs")),
        ("spec_compat", include_str!("spec_compat.rs")),
        ("table_cache", include_str!("table_cache.rs")),
        ("view", include_str!("view.rs")),
        ("warehouse", include_str!("warehouse.rs")),
    ];

    /// The invariant in ARCHITECTURE.md: read visibility is decided only in this module.
    #[test]
    fn no_other_module_decides_read_visibility() {
        let lib = MODULES.iter().find(|(n, _)| *n == "lib").unwrap().1;
        for line in lib.lines() {
            let decl = line
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(m) = decl.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) {
                assert!(
                    m == "visible" || MODULES.iter().any(|(n, _)| *n == m),
                    "module {m} is not checked here; add it to MODULES"
                );
            }
        }
        for (module, src) in MODULES {
            for read in ["ReadWarehouse", "ReadNamespace", "ReadTable", "ReadView"] {
                assert!(
                    !src.contains(&format!("Action::{read}")),
                    "{module}.rs names Action::{read}: decide visibility in visible.rs"
                );
            }
        }
    }
}
