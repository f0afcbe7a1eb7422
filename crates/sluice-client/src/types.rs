//! Request and response bodies of the Sluice management API and the parts of the Iceberg REST
//! catalog API the client uses. They mirror the server's JSON (kebab-case keys); unknown
//! response fields are ignored so a newer server does not break an older client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sluice_core::Secret;
use std::collections::HashMap;
use uuid::Uuid;

// ------------------------------------------------------------------ identity

/// `GET /management/v1/whoami`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WhoAmI {
    pub user_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Where the user comes from (`local`, `oidc`, `ldap`, ...).
    pub source: String,
    /// The access key that authenticated the call, if one did.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub policies: Vec<EffectivePolicy>,
}

/// A policy that applies to the caller, and the group it comes through (None = attached
/// directly).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EffectivePolicy {
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An access key as listed (the secret is only ever returned at creation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessKey {
    pub access_key_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A newly created access key. The secret is shown this once; it is a `Secret` so it cannot
/// end up in a log line by accident (`.expose()` to print it for the user).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub user: String,
}

/// Whether a statement grants or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[serde(alias = "Allow")]
    Allow,
    #[serde(alias = "Deny")]
    Deny,
}

/// One policy rule. On input `action` may be one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub effect: Effect,
    #[serde(deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    pub resource: String,
}

impl Statement {
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(
        action: I,
        resource: impl Into<String>,
    ) -> Self {
        Statement {
            effect: Effect::Allow,
            action: action.into_iter().map(Into::into).collect(),
            resource: resource.into(),
        }
    }
    pub fn deny<I: IntoIterator<Item = S>, S: Into<String>>(
        action: I,
        resource: impl Into<String>,
    ) -> Self {
        Statement {
            effect: Effect::Deny,
            action: action.into_iter().map(Into::into).collect(),
            resource: resource.into(),
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub statements: Vec<Statement>,
    /// Built-in policies cannot be changed or deleted.
    #[serde(default)]
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /management/v1/authz/check`: why a user may or may not do something.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckResult {
    pub user: String,
    pub action: String,
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The statement that decided; absent for an implicit deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<serde_json::Value>,
    pub reason: String,
}

impl CheckResult {
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    #[serde(default)]
    pub detail: Option<String>,
}

// ------------------------------------------------------------------ warehouses

/// A warehouse. The storage credential is never returned, only whether one is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Warehouse {
    pub warehouse_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub storage_profile: serde_json::Value,
    pub delete_profile: serde_json::Value,
    /// `active` or `inactive`.
    pub status: String,
    pub location: String,
    pub has_storage_credential: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /management/v1/warehouse`. Profile, credential and delete profile are raw JSON in
/// the server's shapes, e.g. `{"type":"file","root":"/data"}`,
/// `{"type":"s3","credential-type":"access-key","aws-access-key-id":..,"aws-secret-access-key":..}`,
/// `{"type":"soft","expiration-seconds":86400}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateWarehouseRequest {
    pub warehouse_name: String,
    pub storage_profile: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_credential: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_profile: Option<serde_json::Value>,
}

impl CreateWarehouseRequest {
    pub fn new(name: impl Into<String>, storage_profile: serde_json::Value) -> Self {
        CreateWarehouseRequest {
            warehouse_name: name.into(),
            storage_profile,
            storage_credential: None,
            delete_profile: None,
        }
    }
}

/// A soft-deleted table awaiting purge (warehouses with a soft delete profile).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeletedTable {
    pub table_id: Uuid,
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

// ------------------------------------------------------------------ catalog

/// `GET /v1/config`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CatalogConfig {
    #[serde(default)]
    pub defaults: HashMap<String, String>,
    #[serde(default)]
    pub overrides: HashMap<String, String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl CatalogConfig {
    /// The catalog prefix for the warehouse (`overrides.prefix`, else `defaults.prefix`).
    pub fn prefix(&self) -> Option<&str> {
        self.overrides
            .get("prefix")
            .or_else(|| self.defaults.get("prefix"))
            .map(String::as_str)
    }
}

/// A namespace and its properties.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    pub namespace: Vec<String>,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// `POST /v1/{prefix}/namespaces/{ns}/properties` response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdatePropertiesResult {
    #[serde(default)]
    pub updated: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub missing: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableIdentifier {
    pub namespace: Vec<String>,
    pub name: String,
}

impl TableIdentifier {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        namespace: I,
        name: impl Into<String>,
    ) -> Self {
        TableIdentifier {
            namespace: namespace.into_iter().map(Into::into).collect(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TableIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.name)
    }
}

/// `GET /v1/{prefix}/namespaces/{ns}/tables/{table}`. The metadata is kept as JSON: the
/// client displays it, it does not interpret it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoadTableResult {
    #[serde(default)]
    pub metadata_location: Option<String>,
    pub metadata: serde_json::Value,
    #[serde(default)]
    pub config: HashMap<String, String>,
    #[serde(default)]
    pub storage_credentials: Vec<serde_json::Value>,
}

// Response envelopes of list calls.
#[derive(Deserialize)]
pub(crate) struct UsersEnvelope {
    pub users: Vec<User>,
}
#[derive(Deserialize)]
pub(crate) struct GroupsEnvelope {
    pub groups: Vec<Group>,
}
#[derive(Deserialize)]
pub(crate) struct PoliciesEnvelope {
    pub policies: Vec<Policy>,
}
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct KeysEnvelope {
    pub access_keys: Vec<AccessKey>,
}
#[derive(Deserialize)]
pub(crate) struct WarehousesEnvelope {
    pub warehouses: Vec<Warehouse>,
}
#[derive(Deserialize)]
pub(crate) struct AuditEnvelope {
    pub entries: Vec<AuditEntry>,
}
#[derive(Deserialize)]
pub(crate) struct DeletedTablesEnvelope {
    pub tables: Vec<DeletedTable>,
}
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct NamespacesPage {
    pub namespaces: Vec<Vec<String>>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TablesPage {
    pub identifiers: Vec<TableIdentifier>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}
