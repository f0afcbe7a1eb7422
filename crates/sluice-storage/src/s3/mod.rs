//! S3 access delegation: remote signing of client requests and STS credentials scoped to
//! one table, so query engines never hold the warehouse's long-lived keys. Knows nothing
//! about tables or callers: the service layer authorizes the targets these functions name.

pub(crate) mod access;
mod backend;
pub(crate) mod r2;
mod sign;
pub(crate) mod vend;

pub(crate) use backend::S3Backend;
pub use r2::DEFAULT_CLOUDFLARE_API_BASE;
pub use sign::{
    bucket_candidates, sign_gateway_request, sigv4_headers, CheckedRequest, GatewaySigningKey,
    S3Operation, SignRequest, SignedRequest, TargetObject,
};
pub use vend::{
    session_policy, vended_config, AccessLevel, VendedCredentials, PLACEHOLDER_ROLE_ARN,
};
