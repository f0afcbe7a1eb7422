//! Wire types of the Iceberg REST catalog API (the spec's OpenAPI schemas), kebab-case as
//! the spec names them. Spec types from the `iceberg` crate are reused where they exist.

use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Serialize)]
pub struct CatalogConfig {
    pub defaults: HashMap<String, String>,
    pub overrides: HashMap<String, String>,
    pub endpoints: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateNamespaceRequest {
    pub namespace: Vec<String>,
    #[serde(default)]
    pub properties: Option<HashMap<String, String>>,
}

#[derive(Debug, Serialize)]
pub struct NamespaceResponse {
    pub namespace: Vec<String>,
    pub properties: HashMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListNamespacesResponse {
    pub namespaces: Vec<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct UpdateNamespacePropertiesRequest {
    #[serde(default)]
    pub removals: Option<Vec<String>>,
    #[serde(default)]
    pub updates: Option<HashMap<String, String>>,
}

#[derive(Debug, Serialize)]
pub struct UpdateNamespacePropertiesResponse {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableIdentifier {
    pub namespace: Vec<String>,
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListTablesResponse {
    pub identifiers: Vec<TableIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateTableRequest {
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    pub schema: Schema,
    #[serde(default)]
    pub partition_spec: Option<UnboundPartitionSpec>,
    #[serde(default)]
    pub write_order: Option<SortOrder>,
    #[serde(default)]
    pub stage_create: Option<bool>,
    #[serde(default)]
    pub properties: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegisterTableRequest {
    pub name: String,
    pub metadata_location: String,
    #[serde(default)]
    pub overwrite: Option<bool>,
}

/// A table's metadata JSON exactly as the catalog stores it: written by the one serializer
/// (`metadata_json.rs`) or re-serialized by it on register, so it is valid JSON and is
/// spliced into responses without being parsed again. Shared with the table cache.
#[derive(Debug, Clone)]
pub struct MetadataText(Arc<str>);

impl MetadataText {
    pub(crate) fn trusted(json: impl Into<Arc<str>>) -> Self {
        MetadataText(json.into())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

/// `LoadTableResult`. The body is written by [`LoadTableResult::to_json`], which copies the
/// stored metadata text in without a parse/serialize round trip.
#[derive(Debug)]
pub struct LoadTableResult {
    pub metadata_location: Option<String>,
    pub metadata: MetadataText,
    pub config: HashMap<String, String>,
    pub storage_credentials: Vec<crate::delegation::StorageCredentialEntry>,
    /// How the access-delegation hint was answered; the HTTP edge reports it in a header.
    pub delegation: Option<crate::delegation::DelegationOutcome>,
}

impl LoadTableResult {
    /// The response body: `{"metadata-location", "metadata", "config", "storage-credentials"}`
    /// in the spec's kebab-case, credentials only when there are some.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.metadata.get().len() + 512);
        out.push(b'{');
        if let Some(loc) = &self.metadata_location {
            out.extend_from_slice(b"\"metadata-location\":");
            write_json(&mut out, loc);
            out.push(b',');
        }
        out.extend_from_slice(b"\"metadata\":");
        out.extend_from_slice(self.metadata.get().as_bytes());
        out.extend_from_slice(b",\"config\":");
        write_json(&mut out, &self.config);
        if !self.storage_credentials.is_empty() {
            out.extend_from_slice(b",\"storage-credentials\":");
            write_json(&mut out, &self.storage_credentials);
        }
        out.push(b'}');
        out
    }

    /// A strong entity tag for a load's response: equal only if the body (and the delegation
    /// header) would be byte-for-byte equal. A metadata location names one immutable
    /// metadata file, so it stands for the metadata; the snapshots mode cuts it; `config`
    /// and `storage-credentials` (signer endpoint, vended credentials, which are renewed
    /// before they expire) and the delegation outcome are hashed in as they are.
    pub fn etag(&self, snapshots: SnapshotsMode) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(self.metadata_location.as_deref().unwrap_or("").as_bytes());
        field(match snapshots {
            SnapshotsMode::All => b"all",
            SnapshotsMode::Refs => b"refs",
        });
        let mut config: Vec<_> = self.config.iter().collect();
        config.sort();
        for (k, v) in config {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(b"storage-credentials");
        for c in &self.storage_credentials {
            field(c.prefix.as_bytes());
            let mut config: Vec<_> = c.config.iter().collect();
            config.sort();
            for (k, v) in config {
                field(k.as_bytes());
                field(v.as_bytes());
            }
        }
        field(
            self.delegation
                .as_ref()
                .map(|d| d.header_value())
                .unwrap_or_default()
                .as_bytes(),
        );
        format!("\"{}\"", sluice_core::hex(&h.finalize()))
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Strings and maps of strings: serializing them into a Vec cannot fail.
    serde_json::to_writer(out, v).expect("plain strings serialize");
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitTableResponse {
    pub metadata_location: String,
    pub metadata: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct CommitTableRequest {
    #[serde(default)]
    pub identifier: Option<TableIdentifier>,
    #[serde(default)]
    pub requirements: Vec<TableRequirement>,
    #[serde(default)]
    pub updates: Vec<TableUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitTransactionRequest {
    pub table_changes: Vec<CommitTableRequest>,
}

#[derive(Debug, Deserialize)]
pub struct RenameTableRequest {
    pub source: TableIdentifier,
    pub destination: TableIdentifier,
}

/// Which snapshots a load returns (`snapshots` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SnapshotsMode {
    #[default]
    All,
    Refs,
}
