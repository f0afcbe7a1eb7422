//! Domain types shared by every Sluice layer. Nothing here does I/O, so every other crate
//! can depend on it without pulling in a runtime.

pub mod access_key;
pub mod ident;
pub mod secret;

pub use access_key::{AccessKeyId, SecretAccessKey};
pub use ident::{IdentError, NamespaceName, TableName, WarehouseName};
pub use secret::Secret;

/// Who is calling. Produced by authentication, consumed by authorization and services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: uuid::Uuid,
    pub user_name: String,
    /// The access key that authenticated this request (directly or via the JWT it minted).
    pub access_key_id: Option<String>,
}
