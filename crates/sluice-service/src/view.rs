//! Iceberg views (the view endpoints of the REST spec). Views are kept like tables: the
//! current metadata file in object storage (`<location>/metadata/<version>-<uuid>.metadata.json`)
//! and a copy of it in the database, swapped by compare-and-swap on commit ("replace").
//! Metadata is built and validated with the `iceberg` crate's `ViewMetadataBuilder`.
//!
//! Views share the table name space of their namespace (a view and a table cannot have the
//! same name; the store enforces it in the transaction that claims a name) and the table
//! authorization model, with view actions on view resources
//! (`.../namespace/<ns>/view/<name>`): a view the caller may not read is reported exactly
//! like a missing one.
//!
//! Dropping a view follows the warehouse's delete profile like a table: `hard` removes it
//! from the catalog at once, `soft` moves it to the warehouse's deleted list (name free at
//! once, undroppable until it expires, then purged; see `soft_delete`). Its metadata files
//! stay unless the drop asked for a purge (`purgeRequested`, as for tables).

use crate::catalog::{
    bad, commit_write_error, metadata_file, namespace_from_parts, next_version, no_such_namespace,
    parse_namespace, to_raw, Listing,
};
use crate::rest::{ListTablesResponse, RenameTableRequest, TableIdentifier};
use crate::visible::VisibleView;
use crate::{now, Result, ServiceError, Services};
use iceberg::spec::{Schema, ViewFormatVersion, ViewMetadata, ViewMetadataBuilder, ViewVersion};
use iceberg::ViewUpdate;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_auth::policy::{resource, Action};
use sluice_core::{NamespaceName, Principal, TableName};
use sluice_storage::Storage;
use sluice_store::{StoreError, ViewRecord, WarehouseRecord};
use std::collections::HashMap;
use uuid::Uuid;

/// The view endpoints, advertised in `GET /v1/config` next to the table ones.
pub const VIEW_ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces/{namespace}/views",
    "POST /v1/{prefix}/namespaces/{namespace}/views",
    "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/register-view",
    "POST /v1/{prefix}/views/rename",
];

// ---------------------------------------------------------------------------- wire types

/// `CreateViewRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateViewRequest {
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    pub schema: Schema,
    pub view_version: ViewVersion,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// `RegisterViewRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegisterViewRequest {
    pub name: String,
    pub metadata_location: String,
}

/// `ViewRequirement`: the spec defines one, `assert-view-uuid`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ViewRequirement {
    AssertViewUuid { uuid: Uuid },
}

/// `CommitViewRequest`.
#[derive(Debug, Deserialize)]
pub struct CommitViewRequest {
    #[serde(default)]
    pub identifier: Option<TableIdentifier>,
    #[serde(default)]
    pub requirements: Vec<ViewRequirement>,
    pub updates: Vec<ViewUpdate>,
}

/// `LoadViewResult`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoadViewResult {
    pub metadata_location: String,
    pub metadata: Box<RawValue>,
    pub config: HashMap<String, String>,
}

// ---------------------------------------------------------------------------- helpers

fn parse_view_name(raw: &str) -> Result<TableName> {
    TableName::parse(raw).map_err(|e| bad(format!("invalid view name: {e}")))
}

pub(crate) fn no_such_view(ns: &NamespaceName, name: &str) -> ServiceError {
    ServiceError::NoSuchView(format!("View does not exist: {ns}.{name}"))
}

/// The store's AlreadyExists for a name says whether a table or a view holds it.
fn name_taken(ns: &NamespaceName, name: &str, store_label: &str) -> ServiceError {
    if store_label.starts_with("table ") {
        ServiceError::AlreadyExists(format!("Table with same name already exists: {ns}.{name}"))
    } else {
        ServiceError::AlreadyExists(format!("View already exists: {ns}.{name}"))
    }
}

/// The metadata as JSON with `versions` and `schemas` in id order: the crate keeps them in
/// hash maps, and files and responses should not change order from one write to the next.
fn view_json(metadata: &ViewMetadata) -> Result<String> {
    let mut v = serde_json::to_value(metadata).map_err(ServiceError::internal)?;
    for (list, key) in [("versions", "version-id"), ("schemas", "schema-id")] {
        if let Some(items) = v.get_mut(list).and_then(|l| l.as_array_mut()) {
            items.sort_by_key(|i| i.get(key).and_then(|k| k.as_i64()).unwrap_or(i64::MAX));
        }
    }
    serde_json::to_string(&v).map_err(ServiceError::internal)
}

fn parse_view_metadata(json: &str) -> Result<ViewMetadata> {
    serde_json::from_str(json)
        .map_err(|e| ServiceError::Internal(format!("stored view metadata: {e}")))
}

fn invalid_update(e: iceberg::Error) -> ServiceError {
    bad(format!("invalid view update: {}", e.message()))
}

fn load_result(rec: ViewRecord) -> Result<LoadViewResult> {
    Ok(LoadViewResult {
        metadata_location: rec.metadata_location,
        metadata: to_raw(rec.metadata_json)?,
        config: HashMap::new(),
    })
}

impl Services {
    fn view_res(wh: &WarehouseRecord, ns: &NamespaceName, name: &str) -> String {
        resource::view(&wh.name, ns.parts(), name)
    }

    /// Creating needs `catalog:CreateView` on the new view; a caller who cannot even see the
    /// namespace is told it does not exist.
    async fn require_create_view(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
        name: &str,
    ) -> Result<()> {
        if self
            .is_allowed(caller, Action::CreateView, &Self::view_res(wh, ns, name))
            .await?
        {
            return Ok(());
        }
        self.require_namespace_visible(caller, wh, ns).await?;
        self.authorize(caller, Action::CreateView, &Self::view_res(wh, ns, name))
            .await
    }

    /// The visible view's row; missing is the same 404 as not visible.
    async fn view_record(&self, v: &VisibleView) -> Result<ViewRecord> {
        self.store()
            .get_view(v.warehouse().id, v.namespace(), v.name())
            .await?
            .ok_or_else(|| v.not_found())
    }

    /// Fails with AlreadyExists when a table or view holds the name (the store checks again
    /// atomically; this only spares writing a metadata file that would be thrown away).
    async fn require_name_free(
        &self,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
        name: &str,
    ) -> Result<()> {
        if self.store().get_table(wh.id, ns, name).await?.is_some() {
            return Err(name_taken(ns, name, "table "));
        }
        if self.store().get_view(wh.id, ns, name).await?.is_some() {
            return Err(name_taken(ns, name, "view "));
        }
        Ok(())
    }

    /// Tables and views share one name space: a table may not take a view's name. (The
    /// store enforces it atomically; this gives the clearer message before any file is
    /// written.)
    pub(crate) async fn require_no_view(
        &self,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
        name: &str,
    ) -> Result<()> {
        if self.store().get_view(wh.id, ns, name).await?.is_some() {
            return Err(ServiceError::AlreadyExists(format!(
                "View with same name already exists: {ns}.{name}"
            )));
        }
        Ok(())
    }

    /// A view location inside the warehouse, not its root and not overlapping a table (a
    /// view's metadata files must not land among a table's files); the default is
    /// `<warehouse>/<namespace-id>/<view-id>`, like a table's.
    async fn view_location(
        &self,
        wh: &WarehouseRecord,
        requested: Option<&str>,
        ns_id: Uuid,
        view_id: Uuid,
    ) -> Result<String> {
        // A view's location is a root like a table's: the same length and character rules.
        let location = match requested {
            Some(l) => self
                .storage_for(wh)?
                .normalize_table_location(l)?
                .trim_end_matches('/')
                .to_string(),
            None => format!(
                "{}/{}/{}",
                wh.location.trim_end_matches('/'),
                ns_id,
                view_id
            ),
        };
        if location.trim_end_matches('/') == wh.location.trim_end_matches('/') {
            return Err(bad("a view location must not be the warehouse root"));
        }
        // The table is not named: the caller may not be allowed to know it exists.
        if let Some(other) = self
            .store()
            .location_overlaps(wh.id, &location, None)
            .await?
        {
            tracing::debug!(%location, %other, "view location refused: it overlaps a table's");
            return Err(bad(format!(
                "view location {location} is already in use (it overlaps the location of a table)"
            )));
        }
        Ok(location)
    }

    // ------------------------------------------------------------------ operations

    pub async fn list_views(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        page_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<ListTablesResponse> {
        self.list_in_namespace(caller, prefix, ns, page_token, page_size, Listing::Views)
            .await
    }

    pub async fn create_view(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        req: CreateViewRequest,
    ) -> Result<LoadViewResult> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        let name = parse_view_name(&req.name)?;
        self.require_create_view(caller, &wh, &ns, name.as_str())
            .await?;
        let ns_rec = self.namespace_record(&wh, &ns).await?;
        self.require_name_free(&wh, &ns, name.as_str()).await?;
        let storage = self.storage_for(&wh)?;
        let view_id = Uuid::now_v7();
        let location = self
            .view_location(&wh, req.location.as_deref(), ns_rec.id, view_id)
            .await?;
        let metadata = ViewMetadataBuilder::new(
            location.clone(),
            req.schema,
            req.view_version,
            ViewFormatVersion::V1,
            req.properties,
        )
        .and_then(|b| b.assign_uuid(view_id).build())
        .map_err(invalid_update)?
        .metadata;
        let json = view_json(&metadata)?;
        let metadata_location = metadata_file(&location, 0);
        storage
            .write_new(&metadata_location, json.clone().into_bytes().into())
            .await?;
        let n = now();
        let rec = ViewRecord {
            id: view_id,
            warehouse_id: wh.id,
            namespace_id: ns_rec.id,
            namespace: ns.clone(),
            name: name.to_string(),
            location,
            metadata_location: metadata_location.clone(),
            metadata_json: json,
            created_at: n,
            updated_at: n,
        };
        if let Err(e) = self.store().create_view(&rec).await {
            self.remove_quietly(&storage, &metadata_location).await;
            return Err(match e {
                StoreError::AlreadyExists(m) => name_taken(&ns, name.as_str(), &m),
                StoreError::NotFound(_) => no_such_namespace(&ns),
                other => other.into(),
            });
        }
        load_result(rec)
    }

    pub async fn register_view(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        req: RegisterViewRequest,
    ) -> Result<LoadViewResult> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        let name = parse_view_name(&req.name)?;
        self.require_create_view(caller, &wh, &ns, name.as_str())
            .await?;
        let ns_rec = self.namespace_record(&wh, &ns).await?;
        self.require_name_free(&wh, &ns, name.as_str()).await?;
        let storage = self.storage_for(&wh)?;
        let metadata_location = storage.normalize_location(&req.metadata_location)?;
        let bytes = storage
            .read(&metadata_location)
            .await
            .map_err(|e| match e {
                sluice_storage::StorageError::NotFound(_) => {
                    bad(format!("metadata file {metadata_location} does not exist"))
                }
                other => other.into(),
            })?;
        let metadata: ViewMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "{metadata_location} is not valid view metadata: {e}"
            ))
        })?;
        let location = self
            .view_location(&wh, Some(metadata.location()), ns_rec.id, metadata.uuid())
            .await?;
        if let Some(v) = self.store().get_view_by_id(metadata.uuid()).await? {
            return Err(ServiceError::AlreadyExists(format!(
                "view uuid {} is already registered as {}.{}",
                metadata.uuid(),
                v.namespace,
                v.name
            )));
        }
        let n = now();
        let rec = ViewRecord {
            id: metadata.uuid(),
            warehouse_id: wh.id,
            namespace_id: ns_rec.id,
            namespace: ns.clone(),
            name: name.to_string(),
            location,
            metadata_location,
            metadata_json: view_json(&metadata)?,
            created_at: n,
            updated_at: n,
        };
        self.store().create_view(&rec).await.map_err(|e| match e {
            StoreError::AlreadyExists(m) => name_taken(&ns, name.as_str(), &m),
            StoreError::NotFound(_) => no_such_namespace(&ns),
            other => other.into(),
        })?;
        load_result(rec)
    }

    pub async fn load_view(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        view: &str,
    ) -> Result<LoadViewResult> {
        let v = self.visible_view_at(caller, prefix, ns, view).await?;
        load_result(self.view_record(&v).await?)
    }

    pub async fn view_exists(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        view: &str,
    ) -> Result<()> {
        let v = self.visible_view_at(caller, prefix, ns, view).await?;
        self.view_record(&v).await.map(|_| ())
    }

    /// The spec's "replace view": requirements checked against the current metadata, the
    /// updates applied with the crate's builder, a new metadata file written, then the
    /// pointer swapped; a lost race is CommitFailed and its file is removed.
    pub async fn replace_view(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        view: &str,
        req: CommitViewRequest,
    ) -> Result<LoadViewResult> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        if let Some(id) = &req.identifier {
            if id.namespace != ns.parts() || id.name != view {
                return Err(bad("the identifier in the body does not match the path"));
            }
        }
        let v = self.visible_view(caller, wh, ns, view).await?;
        self.authorize(caller, Action::ReplaceView, v.resource())
            .await?;
        let (wh, ns) = (v.warehouse(), v.namespace());
        let current = self.view_record(&v).await?;
        let metadata = parse_view_metadata(&current.metadata_json)?;
        for r in &req.requirements {
            match r {
                ViewRequirement::AssertViewUuid { uuid } if *uuid != metadata.uuid() => {
                    return Err(ServiceError::CommitFailed(format!(
                        "Requirement failed: view UUID does not match: expected {uuid} != {}",
                        metadata.uuid()
                    )));
                }
                ViewRequirement::AssertViewUuid { .. } => {}
            }
        }
        if req.updates.is_empty() {
            return load_result(current);
        }
        let storage: Storage = self.storage_for(wh)?;
        let mut location = current.location.clone();
        let mut builder = metadata.into_builder();
        for u in req.updates {
            builder = match u {
                ViewUpdate::AssignUuid { uuid } if uuid != current.id => {
                    return Err(bad(format!("cannot reassign the uuid of view {ns}.{view}")));
                }
                ViewUpdate::AssignUuid { .. } => builder,
                ViewUpdate::UpgradeFormatVersion { format_version } => builder
                    .upgrade_format_version(format_version)
                    .map_err(invalid_update)?,
                ViewUpdate::AddSchema { schema, .. } => builder.add_schema(schema),
                ViewUpdate::SetLocation { location: l } => {
                    let l = self
                        .storage_for(wh)?
                        .normalize_location(&l)?
                        .trim_end_matches('/')
                        .to_string();
                    if l != location {
                        location = self
                            .view_location(wh, Some(&l), current.namespace_id, current.id)
                            .await?;
                    }
                    builder.set_location(location.clone())
                }
                ViewUpdate::SetProperties { updates } => {
                    builder.set_properties(updates).map_err(invalid_update)?
                }
                ViewUpdate::RemoveProperties { removals } => builder.remove_properties(&removals),
                ViewUpdate::AddViewVersion { view_version } => {
                    builder.add_version(view_version).map_err(invalid_update)?
                }
                ViewUpdate::SetCurrentViewVersion { view_version_id } => builder
                    .set_current_version_id(view_version_id)
                    .map_err(invalid_update)?,
            };
        }
        let new_metadata = builder.build().map_err(invalid_update)?.metadata;
        let json = view_json(&new_metadata)?;
        let metadata_location = metadata_file(&location, next_version(&current.metadata_location));
        storage
            .write_new(&metadata_location, json.clone().into_bytes().into())
            .await
            .map_err(commit_write_error)?;
        if let Err(e) = self
            .store()
            .update_view(
                current.id,
                &current.metadata_location,
                &metadata_location,
                &json,
                &location,
            )
            .await
        {
            self.remove_quietly(&storage, &metadata_location).await;
            return Err(match e {
                StoreError::Conflict(m) => ServiceError::CommitFailed(format!(
                    "Commit failed: the view was changed concurrently ({m}); refresh and retry"
                )),
                StoreError::NotFound(_) => no_such_view(ns, view),
                other => other.into(),
            });
        }
        Ok(LoadViewResult {
            metadata_location,
            metadata: to_raw(json)?,
            config: HashMap::new(),
        })
    }

    pub async fn drop_view(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        view: &str,
        purge: bool,
    ) -> Result<()> {
        let v = self.visible_view_at(caller, prefix, ns, view).await?;
        self.authorize(caller, Action::DropView, v.resource())
            .await?;
        let (wh, ns) = (v.warehouse(), v.namespace());
        let not_found = |e: StoreError| -> ServiceError {
            match e {
                StoreError::NotFound(_) => no_such_view(ns, view),
                other => other.into(),
            }
        };
        let delete_profile: sluice_storage::DeleteProfile =
            serde_json::from_value(wh.delete_profile.clone()).map_err(|e| {
                ServiceError::Internal(format!("stored delete profile of {}: {e}", wh.name))
            })?;
        if let sluice_storage::DeleteProfile::Soft { expiration_seconds } = delete_profile {
            let n = now();
            let expires = n + chrono::Duration::seconds(
                i64::try_from(expiration_seconds)
                    .unwrap_or(i64::MAX / 1000)
                    .min(100 * 365 * 86_400),
            );
            self.store()
                .soft_drop_view(wh.id, ns, view, n, expires, Some(&caller.user_name), purge)
                .await
                .map_err(not_found)?;
            return Ok(());
        }
        let rec = self
            .store()
            .drop_view(wh.id, ns, view)
            .await
            .map_err(not_found)?;
        if purge {
            // Gone from the catalog already: a failed purge leaves files behind, logged.
            match self
                .store()
                .location_overlaps(wh.id, &rec.location, None)
                .await
            {
                Ok(None) => match self.storage_for(wh)?.delete_prefix(&rec.location).await {
                    Ok(n) => {
                        tracing::info!(view = %format!("{ns}.{view}"), files = n, "purged view files")
                    }
                    Err(e) => {
                        tracing::error!(view = %format!("{ns}.{view}"), location = %rec.location, error = %e, "purging view files failed")
                    }
                },
                Ok(Some(other)) => {
                    tracing::warn!(view = %format!("{ns}.{view}"), overlaps = %other, "not purging view files: the location overlaps a table")
                }
                Err(e) => {
                    tracing::error!(view = %format!("{ns}.{view}"), error = %e, "purging view files failed")
                }
            }
        }
        Ok(())
    }

    pub async fn rename_view(
        &self,
        caller: &Principal,
        prefix: &str,
        req: RenameTableRequest,
    ) -> Result<()> {
        let wh = self.resolve_warehouse(prefix).await?;
        let from_ns = namespace_from_parts(req.source.namespace)?;
        let to_ns = namespace_from_parts(req.destination.namespace)?;
        let to_name = parse_view_name(&req.destination.name)?;
        let from = self
            .visible_view(caller, wh.clone(), from_ns, &req.source.name)
            .await?;
        self.authorize(caller, Action::RenameView, from.resource())
            .await?;
        self.require_create_view(caller, &wh, &to_ns, to_name.as_str())
            .await?;
        self.view_record(&from).await?;
        self.namespace_record(&wh, &to_ns).await?;
        self.require_name_free(&wh, &to_ns, to_name.as_str())
            .await?;
        self.store()
            .rename_view(
                wh.id,
                from.namespace(),
                from.name(),
                &to_ns,
                to_name.as_str(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(m) if m.starts_with("namespace ") => no_such_namespace(&to_ns),
                StoreError::NotFound(_) => from.not_found(),
                StoreError::AlreadyExists(m) => name_taken(&to_ns, to_name.as_str(), &m),
                other => other.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_parse_as_the_spec_names_them() {
        let r: CommitViewRequest = serde_json::from_str(
            r#"{"requirements":[{"type":"assert-view-uuid","uuid":"2cc52516-5e73-41f2-b139-545d41a4e151"}],
                "updates":[{"action":"set-properties","updates":{"a":"b"}},{"action":"set-current-view-version","view-version-id":-1}]}"#,
        )
        .unwrap();
        assert_eq!(r.requirements.len(), 1);
        assert_eq!(r.updates.len(), 2);
        assert!(serde_json::from_str::<CommitViewRequest>(r#"{"requirements":[{"type":"assert-table-uuid","uuid":"2cc52516-5e73-41f2-b139-545d41a4e151"}],"updates":[]}"#).is_err());
    }

    #[test]
    fn metadata_lists_come_out_in_id_order() {
        let json = r#"{"format-version":1,"view-uuid":"2cc52516-5e73-41f2-b139-545d41a4e151","location":"file:///w/v",
            "current-version-id":2,"properties":{},
            "versions":[
              {"version-id":2,"schema-id":1,"timestamp-ms":2,"summary":{},"default-namespace":["a"],"representations":[{"type":"sql","sql":"select 2","dialect":"spark"}]},
              {"version-id":1,"schema-id":0,"timestamp-ms":1,"summary":{},"default-namespace":["a"],"representations":[{"type":"sql","sql":"select 1","dialect":"spark"}]}],
            "version-log":[{"version-id":1,"timestamp-ms":1},{"version-id":2,"timestamp-ms":2}],
            "schemas":[
              {"type":"struct","schema-id":1,"fields":[{"id":1,"name":"y","required":false,"type":"int"}]},
              {"type":"struct","schema-id":0,"fields":[{"id":1,"name":"x","required":false,"type":"int"}]}]}"#;
        let m: ViewMetadata = serde_json::from_str(json).unwrap();
        for _ in 0..5 {
            let out: serde_json::Value = serde_json::from_str(&view_json(&m).unwrap()).unwrap();
            let ids: Vec<i64> = out["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version-id"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, [1, 2]);
            let ids: Vec<i64> = out["schemas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["schema-id"].as_i64().unwrap())
                .collect();
            assert_eq!(ids, [0, 1]);
        }
    }
}
