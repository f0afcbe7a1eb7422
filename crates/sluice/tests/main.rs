//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "common/mod.rs"]
mod common;
#[path = "../../sluice-client/tests/common/flows_support.rs"]
mod flows_support;
#[path = "../../sluice-auth/tests/common/oidc_peer.rs"]
mod oidc_peer;
#[path = "../../sluice-store/tests/common/pg_cluster.rs"]
mod pg_cluster;
#[path = "../../sluice-auth/tests/common/slapd.rs"]
mod slapd;
#[path = "../../sluice-auth/tests/common/sts_stub.rs"]
mod sts_stub;

mod cli;
mod login;
mod replicas;
mod transfer;
