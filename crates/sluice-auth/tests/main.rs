//! One test binary per crate: every file beside this one is a module of it, so the
//! workspace links one executable here instead of one per file (disk and link time).

#[path = "common/oidc_peer.rs"]
mod oidc_peer;
#[path = "common/slapd.rs"]
mod slapd;
#[path = "common/sts_stub.rs"]
mod sts_stub;

mod aws_iam;
mod ldap;
mod oidc;
mod proptests;
