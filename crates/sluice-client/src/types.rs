//! Request and response bodies: the Sluice management API's come from `sluice-api` (shared
//! with the server), the parts of the Iceberg REST catalog API the client reads are here.
//! Unknown response fields are ignored so a newer server does not break an older client.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

// The management API's bodies are sluice-api's: the one definition the server uses too.
pub use sluice_api::{
    AccessKey, AuditEntry, CheckResult, CreateWarehouseRequest, DeletedTable, Effect,
    EffectivePolicy, ExternalPrincipal, Group, NewAccessKey, Policy, Statement, StatementRef,
    UndroppedTable, User, Warehouse, WhoAmI,
};

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

// Pages of the catalog list calls.
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
