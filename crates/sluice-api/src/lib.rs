//! The Sluice management API on the wire: every request and response body of
//! `/management/v1` (warehouses, deleted tables, identity, external principals), the error
//! envelope, and the policy statement language as JSON. The server deserializes requests and
//! serializes responses with these types, the SDK and the CLI do the reverse, and the served
//! OpenAPI document is derived from them (`utoipa::ToSchema`).
//!
//! Serde types only: no I/O, no HTTP framework, no database. Unknown response fields are
//! ignored on input so a newer server does not break an older client; requests refuse
//! unknown fields.
//!
//! Iceberg REST catalog bodies are not here: the server takes them from the `iceberg` crate
//! (`sluice-service::rest`) and the SDK keeps the few it reads in `sluice_client::types`.

pub mod error;
pub mod identity;
pub mod management;
pub mod policy;

pub use error::{ErrorBody, ErrorModel};
pub use identity::*;
pub use management::*;
pub use policy::{Effect, Statement, StatementRef};
