//! Key material and tokens: encryption of stored secrets (AEAD) and Sluice-issued JWTs.
//! Knows nothing about HTTP or storage; callers hand it bytes and claims.

pub mod crypto;
pub mod jwt;

pub use crypto::{KeyMaterial, SecretBox};
pub use jwt::{Claims, TokenIssuer};

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
