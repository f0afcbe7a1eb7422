//! The cloud-neutral face of storage access delegation. The service layer asks these
//! questions of any warehouse's storage and never branches on the cloud: which client
//! properties a table's files need, whether temporary credentials can be vended, the
//! vended credentials themselves as Iceberg client properties, and whether (and how)
//! requests can be signed remotely.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::{Result, StorageError};
use crate::profile::StorageProfile;
use crate::s3::{CheckedRequest, SignRequest, SignedRequest, TargetObject, VendedCredentials};
use crate::storage::Storage;

/// What a caller may do with a table's files: read-write with the catalog's write right on
/// the table, otherwise read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    Read,
    ReadWrite,
}

/// Temporary access to one table's files as Iceberg client properties (the names the Java
/// and PyIceberg FileIOs read), valid until `expiration`. The values hold secrets: they go
/// to the load-table / credentials response only. `Debug` shows the property names alone.
#[derive(Clone)]
pub struct TableCredentials {
    pub config: HashMap<String, String>,
    pub expiration: DateTime<Utc>,
}

impl fmt::Debug for TableCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.config.keys().collect();
        keys.sort();
        f.debug_struct("TableCredentials")
            .field("keys", &keys)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Where a client sends requests to be signed: `uri` is the server's public base URL,
/// `endpoint` the path below it for this table.
#[derive(Debug, Clone)]
pub struct SignerEndpoint<'a> {
    pub uri: &'a str,
    pub endpoint: &'a str,
}

impl StorageProfile {
    pub(crate) const FILE_VENDING_UNAVAILABLE: &'static str =
        "local file storage needs no credentials, so none are vended";

    /// Whether this storage can vend temporary credentials scoped to one table (S3: only
    /// with `sts-enabled`; local files need none).
    pub fn vends_credentials(&self) -> bool {
        match self {
            StorageProfile::File(_) => false,
            StorageProfile::S3(s) => s.sts_enabled,
            StorageProfile::Gcs(_) => true,
            StorageProfile::Adls(_) => true,
        }
    }

    /// Why [`StorageProfile::vends_credentials`] is false, in words for the client.
    pub fn vending_unavailable_reason(&self) -> String {
        match self {
            StorageProfile::File(_) => Self::FILE_VENDING_UNAVAILABLE.into(),
            StorageProfile::S3(_) => "the storage profile has sts-enabled=false".into(),
            StorageProfile::Gcs(_) => "gcs storage always vends downscoped tokens".into(),
            StorageProfile::Adls(_) => "adls storage always vends SAS tokens".into(),
        }
    }

    /// Whether clients can read and write this storage without any delegated access (local
    /// files).
    pub fn needs_no_credentials(&self) -> bool {
        matches!(self, StorageProfile::File(_))
    }

    /// Client properties that make a client sign its requests through this server, or
    /// `None` when the storage has no remote-signing protocol.
    pub fn remote_signing_config(
        &self,
        signer: SignerEndpoint<'_>,
    ) -> Option<HashMap<String, String>> {
        match self {
            StorageProfile::S3(_) => Some(HashMap::from([
                ("s3.remote-signing-enabled".to_string(), "true".to_string()),
                ("s3.signer".to_string(), "S3V4RestSigner".to_string()),
                (
                    "s3.signer.uri".to_string(),
                    signer.uri.trim_end_matches('/').to_string(),
                ),
                (
                    "s3.signer.endpoint".to_string(),
                    signer.endpoint.to_string(),
                ),
                // PyIceberg's PyArrow file IO ignores the signer; its fsspec file IO uses it.
                (
                    "py-io-impl".to_string(),
                    "pyiceberg.io.fsspec.FsspecFileIO".to_string(),
                ),
            ])),
            StorageProfile::File(_) | StorageProfile::Gcs(_) | StorageProfile::Adls(_) => None,
        }
    }

    /// The objects a remote-signing request touches, or `Invalid` when this storage has no
    /// remote signing or the request is not for it.
    pub fn resolve_sign_target(&self, req: &SignRequest) -> Result<TargetObject> {
        match self {
            StorageProfile::S3(s) => s.resolve_sign_target(req),
            other => Err(no_remote_signing(other)),
        }
    }

    /// Whether clients may delete objects themselves (S3's `push-s3-delete-disabled`).
    pub fn client_deletes_allowed(&self) -> bool {
        match self {
            StorageProfile::S3(s) => s.delete_enabled(),
            StorageProfile::File(_) | StorageProfile::Gcs(_) | StorageProfile::Adls(_) => true,
        }
    }
}

impl Storage {
    /// Temporary credentials for the files below `table_location` at `level`, as client
    /// properties. `session_name` names the caller where the cloud records it (CloudTrail).
    /// `Invalid` when the storage cannot vend (see [`StorageProfile::vends_credentials`]).
    pub async fn vend(
        &self,
        table_location: &str,
        level: AccessLevel,
        session_name: &str,
    ) -> Result<TableCredentials> {
        self.backend()
            .vend(table_location, level, session_name)
            .await
    }

    /// Signs a client's request with the warehouse's identity; `Invalid` for storage
    /// without remote signing. For S3 see the rules of `S3Backend::sign_request`: a request
    /// outside the bucket is never signed, whether the caller may touch the target is the
    /// caller's decision. ([`Storage::check_sign_request`] then [`Storage::sign_checked`]
    /// for a caller that authorizes the target in between.)
    pub async fn sign(&self, req: &SignRequest) -> Result<SignedRequest> {
        self.sign_checked(&self.check_sign_request(req)?).await
    }

    /// The objects a remote-signing request touches, checked against this storage's own
    /// profile (the request is refused as [`StorageProfile::resolve_sign_target`] refuses),
    /// kept for [`Storage::sign_checked`] so the request is analysed once.
    pub fn check_sign_request<'a>(&'a self, req: &'a SignRequest) -> Result<CheckedRequest<'a>> {
        match self.backend().as_s3() {
            Some(s3) => s3.profile.check_sign_request(req),
            None => Err(no_remote_signing(self.profile())),
        }
    }

    /// Signs a request [`Storage::check_sign_request`] checked; one checked by another
    /// storage is checked again against this one first.
    pub async fn sign_checked(&self, checked: &CheckedRequest<'_>) -> Result<SignedRequest> {
        match self.backend().as_s3() {
            Some(s3) => s3.sign_request(checked).await,
            None => Err(no_remote_signing(self.profile())),
        }
    }

    /// S3's temporary credentials themselves (see [`Storage::vend`] for client
    /// properties); `Invalid` for other storage or without `sts-enabled`.
    pub async fn vend_credentials(
        &self,
        table_location: &str,
        level: AccessLevel,
        session_name: &str,
    ) -> Result<VendedCredentials> {
        match self.backend().as_s3() {
            Some(s3) => {
                s3.vend_credentials(table_location, level, session_name)
                    .await
            }
            None => Err(StorageError::Invalid(format!(
                "credential vending is only available for s3 storage, not '{}'",
                self.profile().storage_type()
            ))),
        }
    }
}

/// What a storage without a remote-signing protocol answers a sign request with.
fn no_remote_signing(profile: &StorageProfile) -> StorageError {
    StorageError::Invalid(format!(
        "remote signing is only available for s3 storage, not '{}'",
        profile.storage_type()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{FileProfile, S3Profile};

    #[test]
    fn debug_hides_values() {
        let c = TableCredentials {
            config: HashMap::from([("s3.secret-access-key".into(), "hunter2".into())]),
            expiration: Utc::now(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("s3.secret-access-key") && !s.contains("hunter2"));
    }

    #[test]
    fn capabilities_per_profile() {
        let file = StorageProfile::File(FileProfile {
            root: "/tmp/x".into(),
            gateway: false,
        });
        assert!(!file.vends_credentials());
        assert!(file.needs_no_credentials());
        let ep = SignerEndpoint {
            uri: "http://h/",
            endpoint: "v1/p/tables/t/sign",
        };
        assert!(file.remote_signing_config(ep.clone()).is_none());
        let mut s3 = S3Profile::new("b", "eu-west-1");
        assert!(!StorageProfile::S3(s3.clone()).vends_credentials());
        s3.sts_enabled = true;
        let s3 = StorageProfile::S3(s3);
        assert!(s3.vends_credentials());
        let cfg = s3.remote_signing_config(ep).unwrap();
        assert_eq!(cfg["s3.signer.uri"], "http://h");
        assert_eq!(cfg["s3.signer.endpoint"], "v1/p/tables/t/sign");
    }
}
