//! The Iceberg REST catalog operations. Table metadata lives in two places by design: the
//! metadata file in object storage (what engines read) and a copy in the database (so a
//! load never touches storage). A commit writes the new file first, then swaps the database
//! pointer with compare-and-swap; the loser of a race gets CommitFailed and its file is
//! removed.

use crate::delegation::AccessDelegation;
use crate::metadata_json::metadata_json;
use crate::rest::*;
use crate::table_cache::{CachedTable, TableKey};
use crate::visible::{namespace_listed, table_listed, view_listed, VisibleTable};
use crate::{field_ids, spec_compat};
use crate::{now, Result, ServiceError, Services};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use iceberg::spec::{
    FormatVersion, SortOrder, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec,
};
use iceberg::{TableCreation, TableRequirement, TableUpdate};
use serde_json::value::RawValue;
use sluice_auth::policy::{resource, Action};
use sluice_core::{NamespaceName, Principal, TableName};
use sluice_storage::{Storage, StorageError, StorageProfile};
use sluice_store::{CommitOp, NamespaceRecord, Page, StoreError, TableRecord, WarehouseRecord};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Page size used when a client asks for paging (sends `pageToken`) without a size.
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// Endpoints this server implements, advertised in `GET /v1/config`.
pub const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
];

/// The table one change of a commit is about, as its checks left it: one the caller may
/// create (the change asserts creation), or one visible to the caller that it may write.
enum CommitTarget {
    Create {
        namespace: NamespaceName,
        name: String,
    },
    Existing(Box<VisibleTable>),
}

impl CommitTarget {
    fn namespace(&self) -> &NamespaceName {
        match self {
            CommitTarget::Create { namespace, .. } => namespace,
            CommitTarget::Existing(t) => t.namespace(),
        }
    }

    fn name(&self) -> &str {
        match self {
            CommitTarget::Create { name, .. } => name,
            CommitTarget::Existing(t) => t.name(),
        }
    }
}

/// A commit prepared for the store: the new metadata file is already written.
struct Prepared {
    op: CommitOp,
    written: Option<String>,
    metadata_location: String,
    metadata_json: String,
}

pub(crate) fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(msg.into())
}

pub(crate) fn parse_namespace(raw: &str) -> Result<NamespaceName> {
    NamespaceName::from_rest_path(raw).map_err(|e| bad(format!("invalid namespace: {e}")))
}

pub(crate) fn namespace_from_parts(parts: Vec<String>) -> Result<NamespaceName> {
    NamespaceName::new(parts).map_err(|e| bad(format!("invalid namespace: {e}")))
}

fn parse_table_name(raw: &str) -> Result<TableName> {
    TableName::parse(raw).map_err(|e| bad(format!("invalid table name: {e}")))
}

pub(crate) fn no_such_namespace(ns: &NamespaceName) -> ServiceError {
    ServiceError::NoSuchNamespace(format!("Namespace does not exist: {ns}"))
}

/// A requested table location that another table (live or soft-deleted) holds or contains.
fn location_taken(location: &str) -> ServiceError {
    bad(format!(
        "table location {location} is already in use (it overlaps the location of another table)"
    ))
}

pub(crate) fn no_such_table(ns: &NamespaceName, name: &str) -> ServiceError {
    ServiceError::NoSuchTable(format!("Table does not exist: {ns}.{name}"))
}

fn encode_page_token(key: &str) -> String {
    B64URL.encode(key.as_bytes())
}

fn decode_page_token(token: Option<&str>) -> Result<Option<String>> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => B64URL
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| bad("invalid pageToken")),
    }
}

/// Paging per the spec: none unless the client sends `pageToken` or `pageSize`.
pub(crate) fn page(token: Option<&str>, size: Option<u32>) -> Result<Page> {
    if size == Some(0) {
        return Err(bad("pageSize must be at least 1"));
    }
    let limit = match (token, size) {
        (None, None) => None,
        (_, Some(s)) => Some(s.min(MAX_PAGE_SIZE)),
        (Some(_), None) => Some(DEFAULT_PAGE_SIZE),
    };
    Ok(Page {
        after: decode_page_token(token)?,
        limit,
    })
}

pub(crate) fn next_token(len: usize, page: &Page, last_key: Option<String>) -> Option<String> {
    match page.limit {
        Some(l) if len as u32 == l => last_key.map(|k| encode_page_token(&k)),
        _ => None,
    }
}

pub(crate) fn to_raw(json: String) -> Result<Box<RawValue>> {
    RawValue::from_string(json).map_err(ServiceError::internal)
}

/// `<location>/metadata/<version>-<uuid>.metadata.json`, the layout other catalogs use, so
/// tools that infer versions from file names keep working.
pub(crate) fn metadata_file(location: &str, version: u64) -> String {
    format!(
        "{}/metadata/{:05}-{}.metadata.json",
        location.trim_end_matches('/'),
        version,
        Uuid::new_v4()
    )
}

/// Writing a commit's new metadata file found one already there: another writer got there
/// first (names carry a random UUID, so only a store without conditional writes, racing
/// the HEAD + PUT fallback, can see this). The commit lost a race, like a lost CAS; it is
/// answered as CommitFailedException, never as a server error.
pub(crate) fn commit_write_error(e: StorageError) -> ServiceError {
    match e {
        StorageError::AlreadyExists(m) => ServiceError::CommitFailed(format!(
            "Commit failed: metadata file {m} was written concurrently; refresh and retry"
        )),
        other => other.into(),
    }
}

pub(crate) fn next_version(current: &str) -> u64 {
    current
        .rsplit('/')
        .next()
        .and_then(|f| f.split('-').next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(1, |v| v + 1)
}

fn format_version_from(props: &mut HashMap<String, String>) -> Result<FormatVersion> {
    // `format-version` is a reserved property: it picks the version and is not stored.
    match props.remove("format-version").as_deref() {
        None => Ok(FormatVersion::V2),
        Some("1") => Ok(FormatVersion::V1),
        Some("2") => Ok(FormatVersion::V2),
        Some("3") => Ok(FormatVersion::V3),
        Some(other) => Err(bad(format!("unsupported format-version '{other}'"))),
    }
}

/// The new table's metadata with the field ids the client assigned (or the reference
/// implementation's order) instead of the crate's renumbering; see `field_ids`.
fn with_client_field_ids(
    metadata: &TableMetadata,
    requested_schema: &serde_json::Value,
) -> Result<TableMetadata> {
    let mut v = serde_json::to_value(metadata).map_err(ServiceError::internal)?;
    field_ids::apply_to_new_metadata(&mut v, requested_schema);
    serde_json::from_value(v).map_err(|e| bad(format!("invalid schema field ids: {e}")))
}

/// Keeps only snapshots that a branch or tag points at (`snapshots=refs`). The metadata is
/// read once, borrowing: each snapshot is looked at only for its id, and the output is the
/// stored text with the `snapshots` array's unreferenced members cut out, byte for byte
/// otherwise.
fn only_ref_snapshots(json: &str) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(default)]
        refs: HashMap<&'a str, Ref>,
        #[serde(borrow, default)]
        snapshots: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Ref {
        #[serde(rename = "snapshot-id")]
        snapshot_id: i64,
    }
    #[derive(serde::Deserialize)]
    struct Snapshot {
        #[serde(rename = "snapshot-id")]
        snapshot_id: i64,
    }
    let top: Top = serde_json::from_str(json).map_err(ServiceError::internal)?;
    let Some(array) = top.snapshots else {
        return Ok(json.to_string());
    };
    let keep: HashSet<i64> = top.refs.values().map(|r| r.snapshot_id).collect();
    let items: Vec<&RawValue> =
        serde_json::from_str(array.get()).map_err(ServiceError::internal)?;
    // `array` borrows from `json`, so its offset there is where the array starts.
    let at = array.get().as_ptr() as usize - json.as_ptr() as usize;
    let mut out = String::with_capacity(json.len().min(4096));
    out.push_str(&json[..at]);
    out.push('[');
    let mut first = true;
    for item in items {
        let s: Snapshot = serde_json::from_str(item.get()).map_err(ServiceError::internal)?;
        if keep.contains(&s.snapshot_id) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(item.get());
        }
    }
    out.push(']');
    out.push_str(&json[at + array.get().len()..]);
    Ok(out)
}

/// Drops a name's cached metadata when it goes out of scope: after the store call, on every
/// path out of the operation.
struct ForgetName<'a>(&'a Services, TableKey);

impl Drop for ForgetName<'_> {
    fn drop(&mut self) {
        self.0.table_cache().forget_name(&self.1);
    }
}

/// What a namespace listing lists: tables and views share everything but the action, the
/// store query and the read check.
#[derive(Clone, Copy)]
pub(crate) enum Listing {
    Tables,
    Views,
}

impl Services {
    fn storage_parts(&self, wh: &WarehouseRecord) -> Result<(StorageProfile, Storage)> {
        Ok((Self::decode_profile(wh)?, self.storage_for(wh)?))
    }

    pub(crate) fn ns_res(wh: &WarehouseRecord, ns: &NamespaceName) -> String {
        resource::namespace(&wh.name, ns.parts())
    }

    fn table_res(wh: &WarehouseRecord, ns: &NamespaceName, name: &str) -> String {
        resource::table(&wh.name, ns.parts(), name)
    }

    /// Creating needs `catalog:CreateTable` on the new table; a caller who cannot even see
    /// the namespace is told it does not exist.
    pub(crate) async fn require_create_table(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
        name: &str,
    ) -> Result<()> {
        if self
            .is_allowed(caller, Action::CreateTable, &Self::table_res(wh, ns, name))
            .await?
        {
            return Ok(());
        }
        self.require_namespace_visible(caller, wh, ns).await?;
        self.authorize(caller, Action::CreateTable, &Self::table_res(wh, ns, name))
            .await
    }

    /// The checks for one table change of a commit: create rights when the change asserts
    /// creation, otherwise visibility plus `catalog:WriteTable`.
    async fn require_commit(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        ns: NamespaceName,
        name: &str,
        requirements: &[TableRequirement],
    ) -> Result<CommitTarget> {
        if requirements.contains(&TableRequirement::NotExist) {
            self.require_create_table(caller, wh, &ns, name).await?;
            return Ok(CommitTarget::Create {
                namespace: ns,
                name: name.to_string(),
            });
        }
        let t = self.visible_table(caller, wh.clone(), ns, name).await?;
        self.authorize(caller, Action::WriteTable, t.resource())
            .await?;
        Ok(CommitTarget::Existing(Box::new(t)))
    }

    pub(crate) async fn namespace_record(
        &self,
        wh: &WarehouseRecord,
        ns: &NamespaceName,
    ) -> Result<NamespaceRecord> {
        self.store()
            .get_namespace(wh.id, ns)
            .await?
            .ok_or_else(|| no_such_namespace(ns))
    }

    // ------------------------------------------------------------------ config

    /// The body of `GET /v1/config` for `warehouse` (the default one when absent), as JSON.
    /// It depends on the warehouse's id alone, so each warehouse's is serialized once per
    /// process and shared.
    pub async fn catalog_config(
        &self,
        caller: &Principal,
        warehouse: Option<&str>,
    ) -> Result<Arc<[u8]>> {
        let name = warehouse
            .filter(|w| !w.is_empty())
            .unwrap_or(crate::warehouse::DEFAULT_WAREHOUSE);
        let wh = self.resolve_warehouse_cached(name).await?;
        self.require_warehouse_visible(caller, &wh, &format!("'{name}'"))
            .await?;
        let bodies = &self.inner.config_bodies;
        if let Some(body) = bodies.read().unwrap_or_else(|e| e.into_inner()).get(&wh.id) {
            return Ok(body.clone());
        }
        let mut overrides = HashMap::new();
        overrides.insert("prefix".to_string(), wh.id.to_string());
        // The spec's separator of namespace levels in path parameters (0x1F, URL-encoded);
        // advertised so clients that read it do not fall back to a separator of their own.
        overrides.insert("namespace-separator".to_string(), "%1F".to_string());
        let config = CatalogConfig {
            defaults: HashMap::new(),
            overrides,
            endpoints: ENDPOINTS
                .iter()
                .chain(crate::view::VIEW_ENDPOINTS)
                .map(|s| s.to_string())
                .collect(),
        };
        let body: Arc<[u8]> = serde_json::to_vec(&config)
            .map_err(|e| ServiceError::Internal(format!("serializing the catalog config: {e}")))?
            .into();
        let mut map = bodies.write().unwrap_or_else(|e| e.into_inner());
        // Warehouses come and go; a map that outgrew any real deployment starts over.
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(wh.id, body.clone());
        Ok(body)
    }

    // ------------------------------------------------------------------ namespaces

    pub async fn list_namespaces(
        &self,
        caller: &Principal,
        prefix: &str,
        parent: Option<&str>,
        page_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<ListNamespacesResponse> {
        let wh = self.resolve_warehouse(prefix).await?;
        let parent = match parent.filter(|p| !p.is_empty()) {
            Some(p) => {
                let p = parse_namespace(p)?;
                self.require_namespace_visible(caller, &wh, &p).await?;
                self.authorize(caller, Action::ListNamespaces, &Self::ns_res(&wh, &p))
                    .await?;
                self.namespace_record(&wh, &p).await?;
                Some(p)
            }
            None => {
                self.authorize(
                    caller,
                    Action::ListNamespaces,
                    &resource::warehouse(&wh.name),
                )
                .await?;
                None
            }
        };
        let page = page(page_token, page_size)?;
        let rows = self
            .store()
            .list_namespaces(wh.id, parent.as_ref(), &page)
            .await?;
        let next = next_token(rows.len(), &page, rows.last().map(|r| r.name.storage_key()));
        // One policy set for the whole listing: filtering is in memory, per item.
        let policies = self.policy_set(caller).await?;
        Ok(ListNamespacesResponse {
            namespaces: rows
                .into_iter()
                .filter(|r| namespace_listed(&policies, &wh, &r.name))
                .map(|r| r.name.into_parts())
                .collect(),
            next_page_token: next,
        })
    }

    pub async fn create_namespace(
        &self,
        caller: &Principal,
        prefix: &str,
        req: CreateNamespaceRequest,
    ) -> Result<NamespaceResponse> {
        let wh = self.resolve_warehouse(prefix).await?;
        let name = namespace_from_parts(req.namespace)?;
        self.authorize(caller, Action::CreateNamespace, &Self::ns_res(&wh, &name))
            .await?;
        let n = now();
        let rec = NamespaceRecord {
            id: Uuid::now_v7(),
            warehouse_id: wh.id,
            name: name.clone(),
            properties: req.properties.unwrap_or_default(),
            created_at: n,
            updated_at: n,
        };
        self.store()
            .create_namespace(&rec)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists(_) => {
                    ServiceError::AlreadyExists(format!("Namespace already exists: {name}"))
                }
                StoreError::NotFound(_) => ServiceError::NoSuchNamespace(format!(
                    "Parent namespace does not exist: {}",
                    name.parent().map(|p| p.to_string()).unwrap_or_default()
                )),
                other => other.into(),
            })?;
        Ok(NamespaceResponse {
            namespace: rec.name.into_parts(),
            properties: rec.properties,
        })
    }

    pub async fn load_namespace(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
    ) -> Result<NamespaceResponse> {
        let ns = self.visible_namespace_at(caller, prefix, ns).await?;
        let rec = self.namespace_record(ns.warehouse(), ns.name()).await?;
        Ok(NamespaceResponse {
            namespace: rec.name.into_parts(),
            properties: rec.properties,
        })
    }

    pub async fn drop_namespace(&self, caller: &Principal, prefix: &str, ns: &str) -> Result<()> {
        let visible = self.visible_namespace_at(caller, prefix, ns).await?;
        self.authorize(caller, Action::DropNamespace, visible.resource())
            .await?;
        let (wh, ns) = (visible.warehouse(), visible.name());
        self.store()
            .drop_namespace(wh.id, ns)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => no_such_namespace(ns),
                StoreError::NotEmpty(_) => ServiceError::NamespaceNotEmpty(format!(
                    "Namespace {ns} is not empty: it contains tables, views or namespaces"
                )),
                other => other.into(),
            })
    }

    pub async fn update_namespace_properties(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        req: UpdateNamespacePropertiesRequest,
    ) -> Result<UpdateNamespacePropertiesResponse> {
        let visible = self.visible_namespace_at(caller, prefix, ns).await?;
        self.authorize(caller, Action::UpdateNamespace, visible.resource())
            .await?;
        let (wh, ns) = (visible.warehouse(), visible.name());
        let removals = req.removals.unwrap_or_default();
        let updates = req.updates.unwrap_or_default();
        let both: Vec<&String> = removals
            .iter()
            .filter(|k| updates.contains_key(*k))
            .collect();
        if !both.is_empty() {
            return Err(ServiceError::Unprocessable(format!(
                "properties are both removed and updated: {both:?}"
            )));
        }
        let before = self.namespace_record(wh, ns).await?;
        self.store()
            .update_namespace_properties(wh.id, ns, &removals, &updates)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => no_such_namespace(ns),
                other => other.into(),
            })?;
        let (removed, missing): (Vec<String>, Vec<String>) = removals
            .into_iter()
            .partition(|k| before.properties.contains_key(k));
        let mut updated: Vec<String> = updates.into_keys().collect();
        updated.sort();
        Ok(UpdateNamespacePropertiesResponse {
            updated,
            removed,
            missing: Some(missing),
        })
    }

    // ------------------------------------------------------------------ tables

    pub async fn list_tables(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        page_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<ListTablesResponse> {
        self.list_in_namespace(caller, prefix, ns, page_token, page_size, Listing::Tables)
            .await
    }

    /// One page of a namespace's tables or views: the listing needs its list action on the
    /// namespace, and shows each entry the caller may read.
    pub(crate) async fn list_in_namespace(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        page_token: Option<&str>,
        page_size: Option<u32>,
        listing: Listing,
    ) -> Result<ListTablesResponse> {
        let visible = self.visible_namespace_at(caller, prefix, ns).await?;
        let (action, listed): (_, fn(&_, &_, &_, &str) -> bool) = match listing {
            Listing::Tables => (Action::ListTables, table_listed),
            Listing::Views => (Action::ListViews, view_listed),
        };
        self.authorize(caller, action, visible.resource()).await?;
        let (wh, ns) = (visible.warehouse(), visible.name());
        let page = page(page_token, page_size)?;
        let rows = match listing {
            Listing::Tables => self.store().list_tables(wh.id, ns, &page).await,
            Listing::Views => self.store().list_views(wh.id, ns, &page).await,
        }
        .map_err(|e| match e {
            StoreError::NotFound(_) => no_such_namespace(ns),
            other => other.into(),
        })?;
        let next = next_token(rows.len(), &page, rows.last().map(|r| r.name.clone()));
        let policies = self.policy_set(caller).await?;
        Ok(ListTablesResponse {
            identifiers: rows
                .into_iter()
                .filter(|r| listed(&policies, wh, &r.namespace, &r.name))
                .map(|r| TableIdentifier {
                    namespace: r.namespace.into_parts(),
                    name: r.name,
                })
                .collect(),
            next_page_token: next,
        })
    }

    /// A caller-supplied table location must be inside the warehouse and collide with no
    /// other table; a default one is `<warehouse>/<namespace-id>/<table-id>`.
    async fn table_location(
        &self,
        wh: &WarehouseRecord,
        requested: Option<&str>,
        ns_id: Uuid,
        table_id: Uuid,
        except: Option<Uuid>,
    ) -> Result<String> {
        let location = match requested {
            Some(l) => self.storage_for(wh)?.normalize_table_location(l)?,
            None => format!(
                "{}/{}/{}",
                wh.location.trim_end_matches('/'),
                ns_id,
                table_id
            ),
        };
        if location.trim_end_matches('/') == wh.location.trim_end_matches('/') {
            return Err(bad("a table location must not be the warehouse root"));
        }
        // The other table is not named: the caller may not be allowed to know it exists.
        if self
            .store()
            .location_overlaps(wh.id, &location, except)
            .await?
            .is_some()
        {
            tracing::debug!(%location, "table location refused: it overlaps another table's");
            return Err(location_taken(&location));
        }
        Ok(location)
    }

    pub async fn create_table(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        req: CreateTableRequest,
        delegation: &AccessDelegation,
    ) -> Result<LoadTableResult> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        let name = parse_table_name(&req.name)?;
        self.require_create_table(caller, &wh, &ns, name.as_str())
            .await?;
        let ns_rec = self.namespace_record(&wh, &ns).await?;
        if self
            .store()
            .get_table(wh.id, &ns, name.as_str())
            .await?
            .is_some()
        {
            return Err(ServiceError::AlreadyExists(format!(
                "Table already exists: {ns}.{name}"
            )));
        }
        self.require_no_view(&wh, &ns, name.as_str()).await?;
        let (profile, storage) = self.storage_parts(&wh)?;
        let table_id = Uuid::now_v7();
        let location = self
            .table_location(&wh, req.location.as_deref(), ns_rec.id, table_id, None)
            .await?;
        let requested_schema = serde_json::to_value(&req.schema).map_err(ServiceError::internal)?;
        let mut props = req.properties.unwrap_or_default();
        let format_version = format_version_from(&mut props)?;
        let creation = TableCreation::builder()
            .name(name.to_string())
            .location(location.clone())
            .schema(req.schema)
            .partition_spec_opt(req.partition_spec)
            .sort_order_opt(req.write_order)
            .properties(props)
            .format_version(format_version)
            .build();
        let metadata = TableMetadataBuilder::from_table_creation(creation)?
            .assign_uuid(table_id)
            .build()?
            .metadata;
        let metadata = with_client_field_ids(&metadata, &requested_schema)?;
        let json = metadata_json(&metadata)?;
        let metadata_location = metadata_file(&location, 0);
        let n = now();
        let rec = TableRecord {
            id: table_id,
            warehouse_id: wh.id,
            namespace_id: ns_rec.id,
            namespace: ns.clone(),
            name: name.to_string(),
            location,
            metadata_location: metadata_location.clone(),
            metadata_json: json.clone(),
            created_at: n,
            updated_at: n,
        };
        // Before anything is written, so a delegation failure leaves no table behind. A
        // staged table gets access too: clients write data files before the create commit.
        let staged = req.stage_create.unwrap_or(false);
        let delegated = self
            .delegate_access(caller, &wh, &profile, &rec, staged, delegation)
            .await?;
        if staged {
            // Nothing is persisted: the client commits the staged metadata later with an
            // assert-create requirement.
            return Ok(LoadTableResult {
                metadata_location: None,
                metadata: MetadataText::trusted(json),
                config: delegated.config,
                storage_credentials: delegated.storage_credentials,
                delegation: delegated.outcome,
            });
        }
        storage
            .write_new(&metadata_location, json.clone().into_bytes().into())
            .await?;
        if let Err(e) = self.store().commit(&[CommitOp::Create(rec.clone())]).await {
            self.remove_quietly(&storage, &metadata_location).await;
            return Err(match e {
                StoreError::AlreadyExists(_) => {
                    ServiceError::AlreadyExists(format!("Table already exists: {ns}.{name}"))
                }
                StoreError::NotFound(_) => no_such_namespace(&ns),
                other => other.into(),
            });
        }
        Ok(LoadTableResult {
            metadata_location: Some(metadata_location),
            metadata: MetadataText::trusted(json),
            config: delegated.config,
            storage_credentials: delegated.storage_credentials,
            delegation: delegated.outcome,
        })
    }

    pub(crate) async fn remove_quietly(&self, storage: &Storage, location: &str) {
        if let Err(e) = storage.delete(location).await {
            tracing::warn!(%location, error = %e, "could not remove an unused metadata file");
        }
    }

    pub async fn register_table(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        req: RegisterTableRequest,
        delegation: &AccessDelegation,
    ) -> Result<LoadTableResult> {
        let wh = self.resolve_warehouse(prefix).await?;
        let ns = parse_namespace(ns)?;
        let name = parse_table_name(&req.name)?;
        self.require_create_table(caller, &wh, &ns, name.as_str())
            .await?;
        let ns_rec = self.namespace_record(&wh, &ns).await?;
        let (profile, storage) = self.storage_parts(&wh)?;
        let existing = self.store().get_table(wh.id, &ns, name.as_str()).await?;
        let overwrite = req.overwrite.unwrap_or(false);
        if existing.is_some() && !overwrite {
            return Err(ServiceError::AlreadyExists(format!(
                "Table already exists: {ns}.{name}"
            )));
        }
        self.require_no_view(&wh, &ns, name.as_str()).await?;
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
        let metadata: TableMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "{metadata_location} is not valid table metadata: {e}"
            ))
        })?;
        let except = existing.as_ref().map(|t| t.id);
        let location = self
            .table_location(
                &wh,
                Some(metadata.location()),
                ns_rec.id,
                metadata.uuid(),
                except,
            )
            .await?;
        let json = metadata_json(&metadata)?;
        let op = match &existing {
            Some(t) => CommitOp::Update {
                table_id: t.id,
                expected_metadata_location: t.metadata_location.clone(),
                new_metadata_location: metadata_location.clone(),
                new_metadata_json: json.clone(),
                new_location: location,
            },
            None => {
                if let Some(t) = self.store().get_table_by_id(metadata.uuid()).await? {
                    return Err(ServiceError::AlreadyExists(format!(
                        "table uuid {} is already registered as {}.{}",
                        metadata.uuid(),
                        t.namespace,
                        t.name
                    )));
                }
                let n = now();
                CommitOp::Create(TableRecord {
                    id: metadata.uuid(),
                    warehouse_id: wh.id,
                    namespace_id: ns_rec.id,
                    namespace: ns.clone(),
                    name: name.to_string(),
                    location,
                    metadata_location: metadata_location.clone(),
                    metadata_json: json.clone(),
                    created_at: n,
                    updated_at: n,
                })
            }
        };
        let committed = self.store().commit(std::slice::from_ref(&op)).await;
        self.tables_changed([op.table_id()]);
        committed.map_err(|e| match e {
            StoreError::AlreadyExists(_) => {
                ServiceError::AlreadyExists(format!("Table already exists: {ns}.{name}"))
            }
            other => other.into(),
        })?;
        // Just registered under the caller's create right (reading it needs no more).
        let rec = self
            .store()
            .get_table(wh.id, &ns, name.as_str())
            .await?
            .ok_or_else(|| no_such_table(&ns, name.as_str()))?;
        let delegated = self
            .delegate_access(caller, &wh, &profile, &rec, false, delegation)
            .await?;
        Ok(LoadTableResult {
            metadata_location: Some(metadata_location),
            metadata: MetadataText::trusted(json),
            config: delegated.config,
            storage_credentials: delegated.storage_credentials,
            delegation: delegated.outcome,
        })
    }

    pub async fn load_table(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
        snapshots: SnapshotsMode,
        delegation: &AccessDelegation,
    ) -> Result<LoadTableResult> {
        let t = self
            .visible_table_at_cached(caller, prefix, ns, table)
            .await?;
        let cached = self.cached_table(&t, snapshots).await?;
        let profile = self.profile_of(t.warehouse())?;
        let delegated = self
            .delegate_access(
                caller,
                t.warehouse(),
                &profile,
                &cached.record,
                false,
                delegation,
            )
            .await?;
        Ok(LoadTableResult {
            metadata_location: Some(cached.record.metadata_location.clone()),
            metadata: MetadataText::trusted(cached.metadata.clone()),
            config: delegated.config,
            storage_credentials: delegated.storage_credentials,
            delegation: delegated.outcome,
        })
    }

    /// The visible table's current row and metadata (cut to `snapshots`), from the table
    /// cache when it holds them, else read and cached. The caller's right to read it was
    /// checked by `visible_table` already: only bodies are cached, never decisions.
    async fn cached_table(
        &self,
        t: &VisibleTable,
        snapshots: SnapshotsMode,
    ) -> Result<std::sync::Arc<CachedTable>> {
        let cache = self.table_cache();
        let key = TableKey::new(
            t.warehouse().id,
            &t.namespace().to_string(),
            t.name(),
            snapshots,
        );
        if let Some(hit) = cache.get(&key) {
            return Ok(hit);
        }
        let ticket = cache.ticket();
        let full = match snapshots {
            SnapshotsMode::Refs => cache.get(&TableKey::new(
                t.warehouse().id,
                &t.namespace().to_string(),
                t.name(),
                SnapshotsMode::All,
            )),
            SnapshotsMode::All => None,
        };
        let (record, text): (TableRecord, std::sync::Arc<str>) = match full {
            Some(full) => (full.record.clone(), full.metadata.clone()),
            None => {
                let mut rec = self.table_record(t).await?;
                let text = std::mem::take(&mut rec.metadata_json).into();
                (rec, text)
            }
        };
        let metadata = match snapshots {
            SnapshotsMode::All => text,
            SnapshotsMode::Refs => only_ref_snapshots(&text)?.into(),
        };
        let entry = std::sync::Arc::new(CachedTable { record, metadata });
        cache.insert(ticket, key, entry.clone());
        Ok(entry)
    }

    pub async fn table_exists(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
    ) -> Result<()> {
        // From memory like a load: engines ask before they load.
        let t = self
            .visible_table_at_cached(caller, prefix, ns, table)
            .await?;
        self.cached_table(&t, SnapshotsMode::All).await.map(|_| ())
    }

    pub async fn report_metrics(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
    ) -> Result<()> {
        // Accepted and dropped: the spec only requires that reports are accepted.
        self.table_exists(caller, prefix, ns, table).await
    }

    /// Checks requirements against the current metadata, applies the updates, and writes
    /// the resulting metadata file. The database is not touched here.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_commit(
        &self,
        wh: &WarehouseRecord,
        storage: &Storage,
        target: &CommitTarget,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Prepared> {
        let (ns, name) = (target.namespace(), target.name());
        let current = self.store().get_table(wh.id, ns, name).await?;
        let Some(current) = current else {
            return self
                .prepare_create_commit(wh, storage, ns, name, requirements, updates)
                .await;
        };
        let mut stored: serde_json::Value = serde_json::from_str(&current.metadata_json)
            .map_err(|e| ServiceError::Internal(format!("stored table metadata: {e}")))?;
        // Specs the reference implementation accepts but the crate's builder would refuse
        // are disguised for the builder and restored when the result is serialized.
        let mut schemas: Vec<serde_json::Value> = stored
            .get("schemas")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        schemas.extend(stored.get("schema").cloned());
        for u in &updates {
            if let TableUpdate::AddSchema { schema } = u {
                schemas.push(serde_json::to_value(schema).map_err(ServiceError::internal)?);
            }
        }
        let names = spec_compat::source_names(&schemas);
        let refs = stored.get("refs").cloned();
        spec_compat::disguise_metadata(&mut stored, &names);
        let metadata: TableMetadata = serde_json::from_value(stored)
            .map_err(|e| ServiceError::Internal(format!("stored table metadata: {e}")))?;
        for r in &requirements {
            crate::requirements::check(r, &metadata, refs.as_ref())
                .map_err(ServiceError::CommitFailed)?;
        }
        if updates.is_empty() {
            return Ok(Prepared {
                metadata_location: current.metadata_location.clone(),
                metadata_json: current.metadata_json.clone(),
                written: None,
                op: CommitOp::Update {
                    table_id: current.id,
                    expected_metadata_location: current.metadata_location.clone(),
                    new_metadata_location: current.metadata_location.clone(),
                    new_metadata_json: current.metadata_json.clone(),
                    new_location: current.location.clone(),
                },
            });
        }
        let mut builder = metadata.into_builder(Some(current.metadata_location.clone()));
        for u in updates {
            let u = match u {
                TableUpdate::AddSpec { spec } => TableUpdate::AddSpec {
                    spec: spec_compat::disguise_spec(spec, &names)?,
                },
                other => other,
            };
            builder = u
                .apply(builder)
                .map_err(|e| bad(format!("invalid update: {e}")))?;
        }
        let new_metadata = builder
            .build()
            .map_err(|e| bad(format!("invalid update: {e}")))?
            .metadata;
        let mut location = current.location.clone();
        if new_metadata.location().trim_end_matches('/') != current.location.trim_end_matches('/') {
            location = self
                .table_location(
                    wh,
                    Some(new_metadata.location()),
                    current.namespace_id,
                    current.id,
                    Some(current.id),
                )
                .await?;
        }
        let json = metadata_json(&new_metadata)?;
        let metadata_location = metadata_file(&location, next_version(&current.metadata_location));
        storage
            .write_new(&metadata_location, json.clone().into_bytes().into())
            .await
            .map_err(commit_write_error)?;
        Ok(Prepared {
            op: CommitOp::Update {
                table_id: current.id,
                expected_metadata_location: current.metadata_location,
                new_metadata_location: metadata_location.clone(),
                new_metadata_json: json.clone(),
                new_location: location,
            },
            written: Some(metadata_location.clone()),
            metadata_location,
            metadata_json: json,
        })
    }

    /// A commit against a table that does not exist creates it when the client asserts
    /// creation (the second half of a staged create, or a create inside a transaction).
    #[allow(clippy::too_many_arguments)]
    async fn prepare_create_commit(
        &self,
        wh: &WarehouseRecord,
        storage: &Storage,
        ns: &NamespaceName,
        name: &str,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Prepared> {
        if !requirements.contains(&TableRequirement::NotExist) {
            return Err(no_such_table(ns, name));
        }
        if let Some(r) = requirements
            .iter()
            .find(|r| **r != TableRequirement::NotExist)
        {
            return Err(ServiceError::CommitFailed(format!(
                "requirement {r:?} cannot hold for a table that does not exist yet"
            )));
        }
        let name = parse_table_name(name)?;
        let ns_rec = self.namespace_record(wh, ns).await?;
        // The base metadata comes from the first schema/spec/order/location/properties the
        // client sends; then every update is applied in order on top of it, so ids the
        // client assigned (e.g. in a staged create) stay as they were.
        let mut schema = None;
        let mut spec: Option<UnboundPartitionSpec> = None;
        let mut order: Option<SortOrder> = None;
        let mut location = None;
        let mut format_version = FormatVersion::V2;
        let mut uuid = None;
        for u in &updates {
            match u {
                TableUpdate::AddSchema { schema: s } if schema.is_none() => {
                    schema = Some(s.clone())
                }
                TableUpdate::AddSpec { spec: s } if spec.is_none() => spec = Some(s.clone()),
                TableUpdate::AddSortOrder { sort_order } if order.is_none() => {
                    order = Some(sort_order.clone())
                }
                TableUpdate::SetLocation { location: l } => location = Some(l.clone()),
                TableUpdate::UpgradeFormatVersion { format_version: v } => format_version = *v,
                TableUpdate::AssignUuid { uuid: u } => uuid = Some(*u),
                _ => {}
            }
        }
        let schema = schema.ok_or_else(|| bad("creating a table requires an add-schema update"))?;
        let table_id = uuid.unwrap_or_else(Uuid::now_v7);
        if self.store().get_table_by_id(table_id).await?.is_some() {
            return Err(ServiceError::AlreadyExists(format!(
                "a table with uuid {table_id} already exists"
            )));
        }
        let location = self
            .table_location(wh, location.as_deref(), ns_rec.id, table_id, None)
            .await?;
        let requested_schema = serde_json::to_value(&schema).map_err(ServiceError::internal)?;
        let base = TableMetadataBuilder::new(
            schema,
            spec.unwrap_or_else(|| UnboundPartitionSpec::builder().build()),
            order.unwrap_or_else(SortOrder::unsorted_order),
            location.clone(),
            format_version,
            HashMap::new(),
        )?
        .assign_uuid(table_id)
        .build()?
        .metadata;
        // With the client's ids, its own add-schema below finds the same schema instead of
        // adding a second one.
        let mut builder = TableMetadataBuilder::new_from_metadata(
            with_client_field_ids(&base, &requested_schema)?,
            None,
        );
        for u in updates {
            let u = match u {
                // Normalized form (e.g. s3a:// → s3://) wins over what the client sent.
                TableUpdate::SetLocation { .. } => TableUpdate::SetLocation {
                    location: location.clone(),
                },
                other => other,
            };
            builder = u
                .apply(builder)
                .map_err(|e| bad(format!("invalid update: {e}")))?;
        }
        let metadata = builder
            .build()
            .map_err(|e| bad(format!("invalid update: {e}")))?
            .metadata;
        let json = metadata_json(&metadata)?;
        let metadata_location = metadata_file(&location, 0);
        storage
            .write_new(&metadata_location, json.clone().into_bytes().into())
            .await
            .map_err(commit_write_error)?;
        let n = now();
        Ok(Prepared {
            op: CommitOp::Create(TableRecord {
                id: table_id,
                warehouse_id: wh.id,
                namespace_id: ns_rec.id,
                namespace: ns.clone(),
                name: name.to_string(),
                location,
                metadata_location: metadata_location.clone(),
                metadata_json: json.clone(),
                created_at: n,
                updated_at: n,
            }),
            written: Some(metadata_location.clone()),
            metadata_location,
            metadata_json: json,
        })
    }

    fn commit_error(e: StoreError) -> ServiceError {
        match e {
            StoreError::Conflict(m) => ServiceError::CommitFailed(format!(
                "Commit failed: the table was changed concurrently ({m}); refresh and retry"
            )),
            StoreError::AlreadyExists(m) => {
                ServiceError::CommitFailed(format!("Commit failed: {m} was created concurrently"))
            }
            StoreError::NotFound(m) => {
                ServiceError::CommitFailed(format!("Commit failed: {m} was dropped concurrently"))
            }
            other => other.into(),
        }
    }

    pub async fn commit_table(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
        req: CommitTableRequest,
    ) -> Result<CommitTableResponse> {
        // From memory, as for load-table: the commit itself is checked against the table row.
        let wh = self.resolve_warehouse_cached(prefix).await?;
        let ns = parse_namespace(ns)?;
        if let Some(id) = &req.identifier {
            if id.namespace != ns.parts() || id.name != table {
                return Err(bad("the identifier in the body does not match the path"));
            }
        }
        let target = self
            .require_commit(caller, &wh, ns, table, &req.requirements)
            .await?;
        let storage = self.storage_for(&wh)?;
        let prepared = self
            .prepare_commit(&wh, &storage, &target, req.requirements, req.updates)
            .await?;
        if prepared.written.is_none() {
            return Ok(CommitTableResponse {
                metadata_location: prepared.metadata_location,
                metadata: to_raw(prepared.metadata_json)?,
            });
        }
        let committed = self
            .store()
            .commit(std::slice::from_ref(&prepared.op))
            .await;
        // Whatever the store answered: an error after the COMMIT was sent may hide a success.
        self.tables_changed([prepared.op.table_id()]);
        if let Err(e) = committed {
            if let Some(w) = &prepared.written {
                self.remove_quietly(&storage, w).await;
            }
            return Err(Self::commit_error(e));
        }
        Ok(CommitTableResponse {
            metadata_location: prepared.metadata_location,
            metadata: to_raw(prepared.metadata_json)?,
        })
    }

    pub async fn commit_transaction(
        &self,
        caller: &Principal,
        prefix: &str,
        req: CommitTransactionRequest,
    ) -> Result<()> {
        let wh = self.resolve_warehouse_cached(prefix).await?;
        if req.table_changes.is_empty() {
            return Err(bad("table-changes must not be empty"));
        }
        let storage = self.storage_for(&wh)?;
        let mut seen = HashSet::new();
        let mut targets = Vec::with_capacity(req.table_changes.len());
        for change in req.table_changes {
            let id = change
                .identifier
                .ok_or_else(|| bad("every table change in a transaction needs an identifier"))?;
            let ns = namespace_from_parts(id.namespace.clone())?;
            if !seen.insert((ns.clone(), id.name.clone())) {
                return Err(bad(format!(
                    "table {ns}.{} appears twice in the transaction",
                    id.name
                )));
            }
            let target = self
                .require_commit(caller, &wh, ns, &id.name, &change.requirements)
                .await?;
            targets.push((target, change.requirements, change.updates));
        }
        let mut prepared: Vec<Prepared> = Vec::with_capacity(targets.len());
        let mut failure = None;
        for (target, reqs, updates) in targets {
            match self
                .prepare_commit(&wh, &storage, &target, reqs, updates)
                .await
            {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let result = match failure {
            Some(e) => Err(e),
            None => {
                let ops: Vec<CommitOp> = prepared
                    .iter()
                    .filter(|p| p.written.is_some())
                    .map(|p| p.op.clone())
                    .collect();
                if ops.is_empty() {
                    Ok(())
                } else {
                    let committed = self.store().commit(&ops).await;
                    self.tables_changed(ops.iter().map(CommitOp::table_id));
                    committed.map_err(Self::commit_error)
                }
            }
        };
        if result.is_err() {
            for w in prepared.iter().filter_map(|p| p.written.as_deref()) {
                self.remove_quietly(&storage, w).await;
            }
        }
        result
    }

    pub async fn drop_table(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
        purge: bool,
    ) -> Result<()> {
        let t = self.visible_table_at(caller, prefix, ns, table).await?;
        self.authorize(caller, Action::DropTable, t.resource())
            .await?;
        let (wh, ns, table) = (t.warehouse(), t.namespace(), t.name());
        // Dropped or not (an error may hide a drop), nothing cached survives under this name.
        let _forget = ForgetName(
            self,
            TableKey::new(wh.id, &ns.to_string(), table, SnapshotsMode::All),
        );
        let delete_profile: sluice_storage::DeleteProfile =
            serde_json::from_value(wh.delete_profile.clone()).map_err(|e| {
                ServiceError::Internal(format!("stored delete profile of {}: {e}", wh.name))
            })?;
        if let sluice_storage::DeleteProfile::Soft { expiration_seconds } = delete_profile {
            // Hidden at once, files kept; undroppable until it expires, then the purge task
            // removes it (and its files, if the client asked for a purge).
            let n = now();
            let expires = n + chrono::Duration::seconds(
                i64::try_from(expiration_seconds)
                    .unwrap_or(i64::MAX / 1000)
                    .min(100 * 365 * 86_400),
            );
            self.store()
                .soft_drop_table(wh.id, ns, table, n, expires, Some(&caller.user_name), purge)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => no_such_table(ns, table),
                    other => other.into(),
                })?;
            return Ok(());
        }
        let rec = self
            .store()
            .drop_table(wh.id, ns, table)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => no_such_table(ns, table),
                other => other.into(),
            })?;
        // Gone now, not only once the files are purged.
        self.tables_changed([rec.id]);
        if purge {
            let storage = self.storage_for(wh)?;
            // The table is already gone from the catalog; a purge failure leaves files
            // behind but must not resurrect it, so it is logged rather than returned.
            match storage.delete_prefix(&rec.location).await {
                Ok(n) => {
                    tracing::info!(table = %format!("{ns}.{table}"), files = n, "purged table files")
                }
                Err(e) => {
                    tracing::error!(table = %format!("{ns}.{table}"), location = %rec.location, error = %e, "purging table files failed")
                }
            }
        }
        Ok(())
    }

    pub async fn rename_table(
        &self,
        caller: &Principal,
        prefix: &str,
        req: RenameTableRequest,
    ) -> Result<()> {
        let wh = self.resolve_warehouse(prefix).await?;
        let from_ns = namespace_from_parts(req.source.namespace)?;
        let to_ns = namespace_from_parts(req.destination.namespace)?;
        let to_name = parse_table_name(&req.destination.name)?;
        let from = self
            .visible_table(caller, wh.clone(), from_ns, &req.source.name)
            .await?;
        self.authorize(caller, Action::RenameTable, from.resource())
            .await?;
        self.require_create_table(caller, &wh, &to_ns, to_name.as_str())
            .await?;
        self.table_record(&from).await?;
        self.namespace_record(&wh, &to_ns).await?;
        let _forget = ForgetName(
            self,
            TableKey::new(
                wh.id,
                &from.namespace().to_string(),
                from.name(),
                SnapshotsMode::All,
            ),
        );
        if self
            .store()
            .get_table(wh.id, &to_ns, to_name.as_str())
            .await?
            .is_some()
        {
            return Err(ServiceError::AlreadyExists(format!(
                "Table already exists: {to_ns}.{to_name}"
            )));
        }
        self.require_no_view(&wh, &to_ns, to_name.as_str()).await?;
        self.store()
            .rename_table(
                wh.id,
                from.namespace(),
                from.name(),
                &to_ns,
                to_name.as_str(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => from.not_found(),
                StoreError::AlreadyExists(_) => {
                    ServiceError::AlreadyExists(format!("Table already exists: {to_ns}.{to_name}"))
                }
                other => other.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_file_written_concurrently_fails_the_commit_not_the_server() {
        let e = commit_write_error(StorageError::AlreadyExists(
            "file:///w/t/metadata/00001-x.metadata.json".into(),
        ));
        assert!(matches!(e, ServiceError::CommitFailed(_)), "{e:?}");
    }

    #[test]
    fn versions_from_file_names() {
        assert_eq!(next_version("s3://b/t/metadata/00000-abc.metadata.json"), 1);
        assert_eq!(
            next_version("s3://b/t/metadata/00041-abc.metadata.json"),
            42
        );
        assert_eq!(next_version("s3://b/t/metadata/v3.metadata.json"), 1);
    }

    #[test]
    fn page_tokens_roundtrip_and_reject_garbage() {
        let p = page(Some(&encode_page_token("a\u{1f}b")), Some(2)).unwrap();
        assert_eq!(p.after.as_deref(), Some("a\u{1f}b"));
        assert!(page(Some("!!!"), None).is_err());
        assert!(page(None, Some(0)).is_err());
        assert_eq!(page(None, None).unwrap().limit, None);
        assert_eq!(page(Some(""), None).unwrap().limit, Some(DEFAULT_PAGE_SIZE));
    }

    #[test]
    fn refs_filter_keeps_referenced_snapshots() {
        let json = r#"{"refs":{"main":{"snapshot-id":2,"type":"branch"}},"snapshots":[{"snapshot-id":1},{"snapshot-id":2}]}"#;
        let out: serde_json::Value =
            serde_json::from_str(&only_ref_snapshots(json).unwrap()).unwrap();
        assert_eq!(out["snapshots"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn refs_filter_splices_the_stored_text() {
        // Only the array's unreferenced members go; everything else stays byte for byte,
        // wherever `refs` and `snapshots` sit and whatever the snapshots hold.
        let json = r#"{"a":1,"snapshots":[{"snapshot-id":1,"summary":{"x":"]"}},{"snapshot-id":2,"parent-snapshot-id":1},{"snapshot-id":3}],"refs":{"t":{"snapshot-id":1,"type":"tag"},"main":{"snapshot-id":3,"type":"branch"}},"z":"snapshots"}"#;
        assert_eq!(
            only_ref_snapshots(json).unwrap(),
            r#"{"a":1,"snapshots":[{"snapshot-id":1,"summary":{"x":"]"}},{"snapshot-id":3}],"refs":{"t":{"snapshot-id":1,"type":"tag"},"main":{"snapshot-id":3,"type":"branch"}},"z":"snapshots"}"#
        );
        let none = r#"{"snapshots":[{"snapshot-id":1}]}"#;
        assert_eq!(only_ref_snapshots(none).unwrap(), r#"{"snapshots":[]}"#);
        let empty = r#"{"format-version":2}"#;
        assert_eq!(only_ref_snapshots(empty).unwrap(), empty);
    }
}
