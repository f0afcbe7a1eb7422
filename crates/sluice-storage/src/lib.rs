//! Sluice's storage layer: warehouse storage profiles, credentials and delete profiles in
//! Lakekeeper's wire format, their validation, and object access through `object_store`.
//! Knows nothing about catalog tables or HTTP.

pub mod adls;
mod backend;
mod cache;
mod client;
mod credential;
mod delegation;
mod delete_profile;
pub mod endpoints;
mod error;
mod file;
pub mod gcs;
mod objects;
mod profile;
pub mod rules;
pub mod s3;
pub mod sendable;
mod settings;
mod storage;

pub use credential::{S3Credential, StorageCredential};
pub use delegation::{AccessLevel, SignerEndpoint, TableCredentials};
pub use delete_profile::{DeleteProfile, MAX_SOFT_DELETE_SECONDS};
pub use endpoints::EndpointAllowlist;
pub use error::{ProbeStep, Result, StorageError};
pub use gcs::{GcsCredential, GcsProfile, ServiceAccountKey};
pub use objects::{
    ByteRange, ObjectAttributes, ObjectInfo, ObjectRead, ObjectWriter, ReadConditions, META_PREFIX,
    UPLOADS_PREFIX,
};
pub use profile::{
    FileProfile, RemoteSigningUrlStyle, S3Flavor, S3Profile, StorageProfile, ValidationContext,
    DEFAULT_STS_TOKEN_VALIDITY_SECONDS, STS_TOKEN_VALIDITY_RANGE,
};
pub use settings::StorageSettings;
pub use storage::{Storage, PROBE_TIMEOUT};
