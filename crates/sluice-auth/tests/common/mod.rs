pub mod slapd;
pub mod sts_stub;
