//! The error envelope every management and catalog route answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Error envelope shared with the Iceberg REST API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorModel {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: u16,
}
