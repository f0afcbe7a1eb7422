//! Key material and tokens: encryption of stored secrets (AEAD) and Sluice-issued JWTs;
//! the pure policy evaluator ([`policy`]); and the clients of external identity providers
//! (OIDC, LDAP, AWS IAM), which talk to those providers but never serve HTTP, never touch
//! the store, and know nothing of Sluice users.

pub mod aws_iam;
pub mod crypto;
pub mod jwt;
pub mod ldap;
pub mod oidc;
pub mod policy;

pub use crypto::{KeyMaterial, SecretBox};
pub use jwt::{Claims, TokenIssuer};
pub use policy::{
    builtin_self_service, default_group_policies, glob_match, is_known_action, parse_statements,
    resource, validate_statements, Action, Decision, Effect, Policy, PolicyError, PolicySet,
    Statement, StatementRef, UnknownActionError, MAX_STATEMENTS, SELF_SERVICE_POLICY,
};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("key material error: {0}")]
    Key(String),
    #[error("decryption failed (wrong master key or corrupted data)")]
    Decrypt,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token expired")]
    Expired,
}
