//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "common/mod.rs"]
mod common;

mod adls_storage;
mod adls_system_identity;
mod gcs_storage;
mod gcs_system_identity;
mod r2_vending;
mod s3_delegation;
mod s3_storage;
mod s3_system_identity;
