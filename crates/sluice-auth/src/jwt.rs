use crate::{AuthError, KeyMaterial};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Claims of a Sluice-issued access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// User id.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// User name at issue time (informational; authorization re-reads the user).
    pub name: String,
    /// Access key the token was minted from, so deleting the key can revoke its tokens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub akid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
}

/// Issues and verifies HS256 tokens. The key is shared configuration so every replica
/// accepts every other replica's tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    enc: EncodingKey,
    dec: DecodingKey,
    issuer: String,
    audience: String,
    ttl_seconds: i64,
}

pub const AUDIENCE: &str = "sluice";

impl TokenIssuer {
    pub fn new(key: &KeyMaterial, issuer: impl Into<String>, ttl_seconds: i64) -> Self {
        TokenIssuer {
            enc: EncodingKey::from_secret(key.bytes()),
            dec: DecodingKey::from_secret(key.bytes()),
            issuer: issuer.into(),
            audience: AUDIENCE.to_string(),
            ttl_seconds,
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        user_name: &str,
        access_key_id: Option<&str>,
        scope: Option<&str>,
        now: i64,
    ) -> Result<String, AuthError> {
        self.issue_with_ttl(
            user_id,
            user_name,
            access_key_id,
            scope,
            now,
            self.ttl_seconds,
        )
    }

    /// As `issue`, with a caller-chosen lifetime (callers cap it).
    pub fn issue_with_ttl(
        &self,
        user_id: Uuid,
        user_name: &str,
        access_key_id: Option<&str>,
        scope: Option<&str>,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + ttl_seconds,
            jti: Uuid::new_v4().to_string(),
            name: user_name.to_string(),
            akid: access_key_id.map(str::to_string),
            scope: scope.map(str::to_string),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| AuthError::Key(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.leeway = 30;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        decode::<Claims>(token, &self.dec, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issue_verify() {
        let t = TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600);
        let id = Uuid::new_v4();
        let tok = t
            .issue(id, "admin", Some("AKIAX"), Some("catalog"), now())
            .unwrap();
        let c = t.verify(&tok).unwrap();
        assert_eq!(c.sub, id.to_string());
        assert_eq!(c.akid.as_deref(), Some("AKIAX"));
    }

    #[test]
    fn rejects_other_key_expired_and_garbage() {
        let t = TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600);
        let other = TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600);
        let tok = other.issue(Uuid::new_v4(), "x", None, None, now()).unwrap();
        assert!(t.verify(&tok).is_err());
        let old = t
            .issue(Uuid::new_v4(), "x", None, None, now() - 10_000)
            .unwrap();
        assert!(matches!(t.verify(&old), Err(AuthError::Expired)));
        assert!(t.verify("a.b.c").is_err());
    }
}
