//! Read-only views of catalog state for pages that render it (the web console). They make
//! the same visibility decisions as the API's reads but skip what only an engine needs
//! (credential vending, re-checking stored JSON), so a page pays for nothing it does not show.

use sluice_core::Principal;

use crate::error::Result;
use crate::Services;

/// A table's current metadata as stored: the JSON text, not parsed or re-validated here.
#[derive(Debug, Clone)]
pub struct StoredTableMetadata {
    pub metadata_location: String,
    pub metadata_json: String,
}

impl Services {
    /// The stored metadata of a table the caller may read (`catalog:ReadTable`, like
    /// load-table; a table they may not read is the same 404 as a missing one). No storage
    /// credentials are vended and no storage is touched.
    pub async fn table_metadata_for_display(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
    ) -> Result<StoredTableMetadata> {
        let t = self.visible_table_at(caller, prefix, ns, table).await?;
        let rec = self.table_record(&t).await?;
        Ok(StoredTableMetadata {
            metadata_location: rec.metadata_location,
            metadata_json: rec.metadata_json,
        })
    }
}
