//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "common/pg_cluster.rs"]
mod pg_cluster;

mod store;
mod transfer;
