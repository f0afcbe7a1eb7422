//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "../../sluice-storage/tests/common/mod.rs"]
mod peers;
#[path = "common/server.rs"]
mod server;
use peers::{azurite, gcs_peers, moto};
#[path = "../../sluice-auth/tests/common/oidc_peer.rs"]
mod oidc_peer;
#[path = "../../sluice-store/tests/common/pg_cluster.rs"]
mod pg_cluster;
#[path = "../../sluice-auth/tests/common/slapd.rs"]
mod slapd;
#[path = "../../sluice-auth/tests/common/sts_stub.rs"]
mod sts_stub;

mod adls;
mod api;
mod authz;
mod config_env;
mod console;
mod gateway;
mod gcs_warehouse;
mod hardening;
mod http_hardening;
mod iceberg_rust_client;
mod identity_providers;
mod lakehouse;
mod replicas;
mod rest_conformance;
mod soft_delete;
mod sqlite_contention;
mod table_cache;
mod views;
