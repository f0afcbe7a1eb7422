//! The one trait every cloud implements. [`crate::Storage`] holds an opened backend and
//! never branches on the cloud: object I/O goes through the backend's `object_store`
//! client, and delegation (vending, remote signing) through the backend's own methods.
//!
//! A new cloud (or a new kind of local warehouse, e.g. one served through a gateway that
//! vends temporary credentials) is: a profile and credential variant in
//! [`crate::StorageProfile`] / [`crate::StorageCredential`] with their validation, a type
//! implementing [`Backend`] with an `open(profile, credential, settings)` constructor, and
//! one arm in `Storage::open_with`.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{error_chain, Result, StorageError};
use crate::s3::S3Backend;

/// A location mapped into the backend's store.
pub(crate) struct Resolved {
    /// Canonical location URL (`s3://…`, `file:///…`, …).
    pub url: String,
    /// The object key in the backend's store.
    pub path: Path,
}

impl Resolved {
    fn prefix(&self) -> Option<&Path> {
        (!self.path.as_ref().is_empty()).then_some(&self.path)
    }
}

/// One cloud's side of an opened storage.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// The `object_store` client every read, write and delete goes through.
    fn store(&self) -> &Arc<dyn ObjectStore>;

    /// The object key of a canonical location (as `StorageProfile::normalize_location`
    /// returns it), without a leading '/'.
    fn key_of<'a>(&self, canonical: &'a str) -> &'a str;

    /// The location URL of an object the store listed.
    fn location_of(&self, key: &Path) -> String;

    /// Every object under `at/`, as location URLs (unsorted).
    async fn list_prefix(&self, at: &Resolved) -> Result<Vec<String>> {
        self.store()
            .list(at.prefix())
            .map_ok(|meta| self.location_of(&meta.location))
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| map_err("list", &format!("{}/", at.url), e))
    }

    /// Names of the objects directly under `at` (not recursive).
    async fn list_children(&self, at: &Resolved) -> Result<Vec<String>> {
        let listed = self
            .store()
            .list_with_delimiter(at.prefix())
            .await
            .map_err(|e| map_err("list", &format!("{}/", at.url), e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
    }

    /// Deletes every object under `at/`; returns how many were deleted.
    async fn delete_prefix(&self, at: &Resolved) -> Result<u64> {
        let store = self.store();
        let locations = store.list(at.prefix()).map_ok(|meta| meta.location).boxed();
        // S3's delete_stream batches 1000 keys per DeleteObjects call and keeps at most 20
        // calls in flight.
        let mut results = store.delete_stream(locations);
        let mut count = 0u64;
        while let Some(res) = results.next().await {
            match res {
                Ok(_) => count += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(StorageError::Io(format!(
                        "delete {}/ (after deleting {count} objects): {}",
                        at.url,
                        error_chain(&e)
                    )))
                }
            }
        }
        Ok(count)
    }

    /// Temporary credentials for the files below `table_location` at `level`, as client
    /// properties; `Invalid` when this storage cannot vend.
    async fn vend(
        &self,
        table_location: &str,
        level: AccessLevel,
        session_name: &str,
    ) -> Result<TableCredentials>;

    /// The S3 backend, for S3-only operations ([`crate::Storage::vend_credentials`]).
    fn as_s3(&self) -> Option<&S3Backend> {
        None
    }
}

pub(crate) fn map_err(op: &str, location: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound(location.to_string()),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            StorageError::AlreadyExists(location.to_string())
        }
        other => StorageError::Io(format!("{op} {location}: {}", error_chain(&other))),
    }
}
