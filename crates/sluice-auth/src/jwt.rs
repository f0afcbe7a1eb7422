use crate::{AuthError, KeyMaterial};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
    /// Built once: a `Validation` is a handful of sets, rebuilt per token it showed up in
    /// every authenticated request's profile.
    validation: Validation,
    /// Tokens already verified (`verify_cached`), shared by every clone.
    verified: Arc<RwLock<HashMap<Box<str>, Arc<Claims>>>>,
}

/// Most verified tokens remembered; beyond that the memory starts over (only tokens with a
/// valid signature get in, so nobody can flood it with made-up ones).
const MAX_VERIFIED: usize = 10_000;
/// Seconds past `exp` a token is still accepted (clock skew between replicas).
const LEEWAY_SECS: i64 = 30;

pub const AUDIENCE: &str = "sluice";

impl TokenIssuer {
    pub fn new(key: &KeyMaterial, issuer: impl Into<String>, ttl_seconds: i64) -> Self {
        let issuer = issuer.into();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS as u64;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        TokenIssuer {
            enc: EncodingKey::from_secret(key.bytes()),
            dec: DecodingKey::from_secret(key.bytes()),
            issuer,
            audience: AUDIENCE.to_string(),
            ttl_seconds,
            validation,
            verified: Arc::default(),
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
        decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(e.to_string()),
            })
    }
}

impl TokenIssuer {
    /// `verify`, remembering what it verified: a token's signature, issuer and audience
    /// never change, so a token seen before costs a map lookup and an expiry check instead
    /// of base64, JSON and HMAC work on every request. What the token names (its key, its
    /// user) is still checked by the caller each time.
    pub fn verify_cached(&self, token: &str, now: i64) -> Result<Arc<Claims>, AuthError> {
        let known = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        if let Some(claims) = known {
            if claims.exp < now - LEEWAY_SECS {
                return Err(AuthError::Expired);
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.verify(token)?);
        let mut map = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_VERIFIED {
            map.clear();
        }
        map.insert(token.into(), claims.clone());
        Ok(claims)
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

    #[test]
    fn cached_verification_still_expires_and_refuses_what_verify_refuses() {
        let t = TokenIssuer::new(&KeyMaterial::random(), "sluice", 60);
        let tok = t
            .issue(Uuid::new_v4(), "x", Some("AKIAX"), None, now())
            .unwrap();
        let first = t.verify_cached(&tok, now()).unwrap();
        let again = t.clone().verify_cached(&tok, now()).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "a clone shares what was verified"
        );
        // Within the leeway after `exp` it is accepted, beyond it refused, cached or not.
        assert!(t.verify_cached(&tok, first.exp + LEEWAY_SECS).is_ok());
        assert!(matches!(
            t.verify_cached(&tok, first.exp + LEEWAY_SECS + 1),
            Err(AuthError::Expired)
        ));
        // A token differing in one signature character is verified on its own, and refused
        // (a middle character: the last one also carries padding bits).
        let at = tok.len() - 20;
        let was = &tok[at..at + 1];
        let forged = format!(
            "{}{}{}",
            &tok[..at],
            if was == "A" { "B" } else { "A" },
            &tok[at + 1..]
        );
        assert!(t.verify_cached(&forged, now()).is_err());
        let other = TokenIssuer::new(&KeyMaterial::random(), "sluice", 60);
        assert!(other.verify_cached(&tok, now()).is_err());
    }
}
