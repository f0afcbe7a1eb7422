//! Warehouses (in Lakekeeper's request shape) and soft-deleted tables.
//!
//! Storage profiles, credentials and delete profiles are type parameters: the server reads
//! them straight into `sluice-storage`'s validated types (so a malformed profile is refused
//! with the path of the bad field), while the SDK and the CLI, which only pass them through,
//! use the defaults (`serde_json::Value`) and need no storage crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

// `POST /management/v1/warehouse`, e.g. storage profile `{"type":"file","root":"/data"}`,
// credential `{"type":"s3","credential-type":"access-key","aws-access-key-id":..,"aws-secret-access-key":..}`,
// delete profile `{"type":"soft","expiration-seconds":86400}`. (Comments on schema types are
// part of the served document, hence `//` here.)
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[serde(bound(deserialize = "P: Deserialize<'de>, C: Deserialize<'de>, D: Deserialize<'de>"))]
#[schema(bound = "")]
pub struct CreateWarehouseRequest<P = Value, C = Value, D = Value> {
    /// 1-255 bytes, no `/`, no control characters, no leading or trailing whitespace.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^/\\s\\x00-\\x1f\\x7f-\\x9f]([^/\\x00-\\x1f\\x7f-\\x9f]*[^/\\s\\x00-\\x1f\\x7f-\\x9f])?$"
    )]
    pub warehouse_name: String,
    #[schema(value_type = StorageProfileSchema)]
    pub storage_profile: P,
    #[schema(value_type = Option<StorageCredentialSchema>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_credential: Option<C>,
    #[schema(value_type = Option<DeleteProfileSchema>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_profile: Option<D>,
    /// Accepted for Lakekeeper compatibility; Sluice has no projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

impl CreateWarehouseRequest {
    /// A request with only a name and a storage profile (as JSON).
    pub fn new(name: impl Into<String>, storage_profile: Value) -> Self {
        CreateWarehouseRequest {
            warehouse_name: name.into(),
            storage_profile,
            storage_credential: None,
            delete_profile: None,
            project_id: None,
        }
    }
}

/// A warehouse. The storage credential is never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = WarehouseView)]
pub struct Warehouse {
    pub warehouse_id: Uuid,
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Object)]
    pub storage_profile: Value,
    #[schema(value_type = Object)]
    pub delete_profile: Value,
    /// `active` or `inactive`.
    pub status: String,
    pub location: String,
    pub has_storage_credential: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListWarehousesResponse {
    pub warehouses: Vec<Warehouse>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RenameWarehouseRequest {
    /// 1-255 bytes, no `/`, no control characters, no leading or trailing whitespace.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^/\\s\\x00-\\x1f\\x7f-\\x9f]([^/\\x00-\\x1f\\x7f-\\x9f]*[^/\\s\\x00-\\x1f\\x7f-\\x9f])?$"
    )]
    pub new_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[serde(bound(deserialize = "P: Deserialize<'de>, C: Deserialize<'de>"))]
#[schema(bound = "")]
pub struct UpdateStorageRequest<P = Value, C = Value> {
    #[schema(value_type = StorageProfileSchema)]
    pub storage_profile: P,
    /// Omit to keep the current credential.
    #[schema(value_type = Option<StorageCredentialSchema>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_credential: Option<C>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
#[schema(bound = "")]
pub struct UpdateCredentialRequest<C = Value> {
    /// The new credential; `null` removes it (only valid for profiles that need none).
    #[schema(value_type = Option<StorageCredentialSchema>)]
    #[serde(default)]
    pub new_storage_credential: Option<C>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(bound = "")]
pub struct UpdateDeleteProfileRequest<D = Value> {
    #[schema(value_type = DeleteProfileSchema)]
    pub delete_profile: D,
}

// Schema-only shapes of the storage settings (the server reads them into sluice-storage's
// types, which know nothing of OpenAPI). A profile or credential names its `type`; the
// fields of each type are checked by the server, which answers 400 with the bad field's path.

/// A storage profile: `{"type":"file","root":...}`, `{"type":"s3","bucket":...,"region":...,...}`,
/// `{"type":"adls",...}` or `{"type":"gcs",...}`.
#[derive(ToSchema, Deserialize)]
#[schema(as = StorageProfile)]
#[allow(dead_code)]
pub struct StorageProfileSchema {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: StorageTypeSchema,
    /// `file` and `s3` only: serve the warehouse through the S3 gateway — table locations
    /// `s3://<warehouse>/…`, temporary gateway credentials for vended-credentials and remote
    /// signing. Default `false` (the embedded `default` warehouse is created with `true`).
    #[serde(default)]
    gateway: Option<bool>,
}

/// A storage credential, e.g.
/// `{"type":"s3","credential-type":"access-key","aws-access-key-id":...,"aws-secret-access-key":...}`.
#[derive(ToSchema, Deserialize)]
#[schema(as = StorageCredential)]
#[allow(dead_code)]
pub struct StorageCredentialSchema {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: CredentialTypeSchema,
}

#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum StorageTypeSchema {
    File,
    S3,
    Adls,
    Gcs,
}

#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum CredentialTypeSchema {
    S3,
    Gcs,
    Az,
}

/// What dropping a table does: `{"type":"hard"}` (the default) or
/// `{"type":"soft","expiration-seconds":N}` (kept N seconds, undroppable until then).
#[derive(ToSchema, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = DeleteProfile)]
#[allow(dead_code)]
pub enum DeleteProfileSchema {
    Hard,
    #[serde(rename_all = "kebab-case")]
    Soft {
        /// 1 s to 100 years.
        #[schema(minimum = 1, maximum = 3_153_600_000u64)]
        expiration_seconds: u64,
    },
}

/// A soft-deleted table or view awaiting purge (warehouses with a soft delete profile).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeletedTable {
    /// The entry's id: the table's or view's id (the undrop endpoint takes it).
    pub table_id: Uuid,
    /// `table` or `view`.
    #[serde(default)]
    pub kind: String,
    pub namespace: Vec<String>,
    pub name: String,
    pub location: String,
    pub deleted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted_by: Option<String>,
    #[serde(default)]
    pub purge_requested: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedTablesResponse {
    #[schema(value_type = Vec<Object>)]
    pub tables: Vec<DeletedTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UndropRequest {
    /// Restore under this name instead of the original one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
}

/// Where an undropped table or view is now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndroppedTable {
    pub namespace: Vec<String>,
    pub name: String,
    /// `table` or `view`.
    pub kind: String,
}
