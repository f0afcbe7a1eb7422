use chrono::{DateTime, Utc};
use sluice_core::NamespaceName;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub friendly_name: Option<String>,
    /// "builtin", "ldap", "oidc", "aws-iam", "web-identity".
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub user_id: Uuid,
    /// AEAD ciphertext (nonce included) of the secret; the store never sees plaintext.
    pub secret_ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("access_key_id", &self.access_key_id)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarehouseStatus {
    Active,
    Inactive,
}

impl WarehouseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WarehouseStatus::Active => "active",
            WarehouseStatus::Inactive => "inactive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(WarehouseStatus::Active),
            "inactive" => Some(WarehouseStatus::Inactive),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct WarehouseRecord {
    pub id: Uuid,
    pub name: String,
    /// Storage profile as JSON (opaque to the store).
    pub storage_profile: serde_json::Value,
    /// AEAD ciphertext of the storage credential JSON, if any.
    pub storage_credential: Option<Vec<u8>>,
    pub delete_profile: serde_json::Value,
    pub status: WarehouseStatus,
    /// Base location URL of the warehouse (e.g. `s3://bucket/prefix`), for overlap checks.
    pub location: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for WarehouseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("storage_profile", &self.storage_profile)
            .field("status", &self.status)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRecord {
    pub id: Uuid,
    pub warehouse_id: Uuid,
    pub name: NamespaceName,
    pub properties: HashMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableRecord {
    pub id: Uuid,
    pub warehouse_id: Uuid,
    pub namespace_id: Uuid,
    pub namespace: NamespaceName,
    pub name: String,
    pub location: String,
    pub metadata_location: String,
    /// The current metadata JSON, so loading a table never re-reads object storage.
    pub metadata_json: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    pub id: Uuid,
    pub namespace: NamespaceName,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// The statements as JSON (opaque here; validated and parsed by the auth layer).
    pub statements_json: String,
    /// Built-in policies (the default groups' policies) cannot be changed or deleted.
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A policy that applies to a user, and how: attached directly (`via_group` None) or
/// through membership of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectivePolicy {
    pub policy: PolicyRecord,
    pub via_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Assigned by the store on append (ignored on input).
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    /// The action attempted, e.g. `auth:CreateUser`.
    pub action: String,
    /// The resource it targeted, e.g. `sluice:auth:::user/alice`.
    pub target: String,
    /// `success` or `failure`.
    pub result: String,
    /// Free-form detail (e.g. the error message of a failure). Never contains secrets.
    pub detail: Option<String>,
}

/// What a soft-deleted entry was before it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Table,
    View,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Table => "table",
            EntityKind::View => "view",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "table" => Some(EntityKind::Table),
            "view" => Some(EntityKind::View),
            _ => None,
        }
    }
}

/// A soft-deleted table or view: hidden from the catalog, files kept until `expires_at`.
/// Both kinds share one list (and its paging, undrop and leased purge): a view's row has
/// exactly a table's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedTableRecord {
    /// The table (or view, see `kind`) as it was when dropped (same id).
    pub table: TableRecord,
    pub kind: EntityKind,
    pub deleted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub deleted_by: Option<String>,
    /// The drop asked for a purge: the files go when the entry expires. Otherwise only the
    /// catalog entry goes and the files stay (as with a hard drop without purge).
    pub purge_requested: bool,
}

impl DeletedTableRecord {
    /// The paging key of this row for `CatalogStore::list_deleted_tables`: pass the key of
    /// the last row seen as `Page::after` to continue after it. It encodes the row's
    /// position (`<deleted_at unix millis>/<id>`), not just its id, so paging stays correct
    /// even when that row is undropped or purged between pages.
    pub fn page_key(&self) -> String {
        format!("{}/{}", self.deleted_at.timestamp_millis(), self.table.id)
    }
}

/// Link from an identity in an external system (OIDC subject, LDAP DN, AWS principal ARN,
/// web-identity subject) to a Sluice user.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentityRecord {
    /// `oidc`, `ldap`, `aws-iam`, `web-identity`.
    pub source: String,
    /// The stable identifier in that system: `<issuer>#<sub>`, the LDAP DN, the ARN, ...
    pub subject: String,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// An Iceberg view: like a table, the pointer to its current metadata file plus a copy of
/// that metadata (opaque JSON here). Views share the name space of tables per namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRecord {
    pub id: Uuid,
    pub warehouse_id: Uuid,
    pub namespace_id: Uuid,
    pub namespace: NamespaceName,
    pub name: String,
    pub location: String,
    pub metadata_location: String,
    pub metadata_json: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A view's row and a table's row have the same facts; a soft-deleted view is kept in the
/// table-shaped part of a [`DeletedTableRecord`].
impl From<ViewRecord> for TableRecord {
    fn from(v: ViewRecord) -> Self {
        TableRecord {
            id: v.id,
            warehouse_id: v.warehouse_id,
            namespace_id: v.namespace_id,
            namespace: v.namespace,
            name: v.name,
            location: v.location,
            metadata_location: v.metadata_location,
            metadata_json: v.metadata_json,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl From<TableRecord> for ViewRecord {
    fn from(t: TableRecord) -> Self {
        ViewRecord {
            id: t.id,
            warehouse_id: t.warehouse_id,
            namespace_id: t.namespace_id,
            namespace: t.namespace,
            name: t.name,
            location: t.location,
            metadata_location: t.metadata_location,
            metadata_json: t.metadata_json,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}
