//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "common/mod.rs"]
mod common;
#[path = "../../sluice-auth/tests/common/oidc_peer.rs"]
mod oidc_peer;
#[path = "../../sluice-auth/tests/common/slapd.rs"]
mod slapd;
#[path = "../../sluice-auth/tests/common/sts_stub.rs"]
mod sts_stub;
#[path = "common/flows_support.rs"]
mod support;

mod client;
mod config_env;
mod flows;
mod single_flight;
