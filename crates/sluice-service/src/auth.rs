//! Authentication: access keys (HTTP Basic), Sluice JWTs (Bearer), the OAuth2
//! client-credentials grant, and the first-start bootstrap of the admin user.

use crate::cache::KeyedCache;
use crate::{now, Result, ServiceError, Services};
use sluice_core::{AccessKeyId, Principal, Secret, SecretAccessKey};
use sluice_store::{AccessKeyRecord, UserRecord};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most keys and users whose verified identity is kept at once.
const PRINCIPAL_CACHE_CAPACITY: u64 = 100_000;

/// An access key as authentication needs it: whose it is and its secret (decrypted once,
/// compared in constant time on every use, never leaving this module).
struct KnownKey {
    user_id: Uuid,
    user_name: String,
    secret: Secret,
    /// Unix ms of the last `last_used_at` write, so this process stamps a busy key once per
    /// `TOUCH_INTERVAL_SECS` instead of once per request.
    stamped_ms: AtomicI64,
}

/// Verified principals, so that authenticating a request reads no database row: access keys
/// by id and token subjects by user id. Kept fresh exactly like the policy cache — cleared
/// by every identity change made in this process (`Services::identity_changed`) and by every
/// `identity` notification from other replicas, not used while that feed is down, and
/// bounded by the same TTL should a notification be lost. Misses (unknown keys or users)
/// are never cached, so a key or user created a moment ago works at once.
pub(crate) struct PrincipalCache {
    ttl: Duration,
    /// Bumped by every invalidation; an entry read under an older generation is stale.
    generation: AtomicU64,
    bypass: AtomicBool,
    keys: KeyedCache<String, (u64, Arc<KnownKey>)>,
    users: KeyedCache<Uuid, (u64, Arc<str>)>,
}

impl PrincipalCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        let ttl_or_min = Some(ttl.max(Duration::from_millis(1)));
        PrincipalCache {
            ttl,
            generation: AtomicU64::new(0),
            bypass: AtomicBool::new(false),
            keys: KeyedCache::new(PRINCIPAL_CACHE_CAPACITY, ttl_or_min),
            users: KeyedCache::new(PRINCIPAL_CACHE_CAPACITY, ttl_or_min),
        }
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
        self.users.clear();
    }

    pub(crate) fn set_bypass(&self, on: bool) {
        self.bypass.store(on, Ordering::SeqCst);
    }

    fn active(&self) -> Option<u64> {
        (!self.bypass.load(Ordering::SeqCst) && !self.ttl.is_zero())
            .then(|| self.generation.load(Ordering::SeqCst))
    }
}

/// A lookup that found nothing is not an error worth caching, nor one to report.
enum Miss {
    Absent,
    Failed(ServiceError),
}

impl From<ServiceError> for Miss {
    fn from(e: ServiceError) -> Self {
        Miss::Failed(e)
    }
}

impl From<sluice_store::StoreError> for Miss {
    fn from(e: sluice_store::StoreError) -> Self {
        Miss::Failed(e.into())
    }
}

/// OAuth2 error (RFC 6749 §5.2). Kept apart from `ServiceError` because the token endpoint
/// answers in a different error shape than the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// RFC 8693 field the Iceberg spec echoes; PyIceberg ignores it.
    pub issued_token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A newly created access key; the only value that ever carries the plaintext secret.
#[derive(Debug)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub user_id: Uuid,
}

/// What the bootstrap did, for the startup banner.
#[derive(Debug)]
pub enum Bootstrap {
    /// First start: an admin and a generated key were created (print the secret once).
    Generated(NewAccessKey),
    /// First start with the key taken from the environment (never print the secret).
    FromEnvironment { access_key_id: String },
    /// Not a first start.
    AlreadyDone,
}

pub const ADMIN_USER: &str = "admin";
const BOOTSTRAP_SETTING: &str = "bootstrap.admin-user-id";
/// Skip `last_used_at` writes more often than this; per-request writes would contend with
/// commits on SQLite for no operational value.
const TOUCH_INTERVAL_SECS: i64 = 60;

impl Services {
    /// Creates the admin user and its first access key once per installation. An explicit
    /// key from the environment must be well-formed, and is (re)attached to the admin on
    /// later starts if it was deleted, like MinIO's root credentials.
    pub async fn bootstrap(&self, env_key: Option<(String, Secret)>) -> Result<Bootstrap> {
        if let Some((id, secret)) = &env_key {
            AccessKeyId::parse(id).map_err(|e| {
                ServiceError::BadRequest(format!("SLUICE_BOOTSTRAP_ACCESS_KEY_ID: {e}"))
            })?;
            SecretAccessKey::validate(secret.expose()).map_err(|e| {
                ServiceError::BadRequest(format!("SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY: {e}"))
            })?;
        }
        let store = self.store();
        let admin_id = match store.get_setting(BOOTSTRAP_SETTING).await? {
            Some(id) => {
                let id = Uuid::parse_str(&id).map_err(ServiceError::internal)?;
                if let Some((key_id, secret)) = env_key {
                    match store.get_access_key(&key_id).await? {
                        None => {
                            self.insert_key(id, &key_id, &secret).await?;
                        }
                        Some(existing) => {
                            let stored = self.decrypt_key_secret(&existing)?;
                            if !stored.ct_eq(secret.expose()) {
                                tracing::warn!(access_key_id = %key_id, "bootstrap access key exists with a different secret; keeping the stored one");
                            }
                        }
                    }
                }
                let _ = id;
                return Ok(Bootstrap::AlreadyDone);
            }
            None => match store.get_user_by_name(ADMIN_USER).await? {
                Some(u) => u.id,
                None => {
                    let user = UserRecord {
                        id: Uuid::new_v4(),
                        name: ADMIN_USER.into(),
                        email: None,
                        friendly_name: Some("Bootstrap administrator".into()),
                        source: "builtin".into(),
                        created_at: now(),
                    };
                    store.create_user(&user).await?;
                    user.id
                }
            },
        };
        let result = match env_key {
            Some((key_id, secret)) => {
                if store.get_access_key(&key_id).await?.is_none() {
                    self.insert_key(admin_id, &key_id, &secret).await?;
                }
                Bootstrap::FromEnvironment {
                    access_key_id: key_id,
                }
            }
            None => Bootstrap::Generated(self.create_access_key(admin_id).await?),
        };
        store
            .set_setting(BOOTSTRAP_SETTING, &admin_id.to_string())
            .await?;
        Ok(result)
    }

    pub async fn create_access_key(&self, user_id: Uuid) -> Result<NewAccessKey> {
        let id = AccessKeyId::generate();
        let secret = SecretAccessKey::generate();
        self.insert_key(user_id, id.as_str(), &secret).await?;
        Ok(NewAccessKey {
            access_key_id: id.to_string(),
            secret_access_key: secret,
            user_id,
        })
    }

    async fn insert_key(&self, user_id: Uuid, key_id: &str, secret: &Secret) -> Result<()> {
        let rec = AccessKeyRecord {
            access_key_id: key_id.to_string(),
            user_id,
            secret_ciphertext: self.secrets().encrypt(secret.expose().as_bytes()),
            created_at: now(),
            last_used_at: None,
        };
        self.store().create_access_key(&rec).await?;
        Ok(())
    }

    /// The owner and secret of an access key for a front door that checks the signature
    /// itself (the S3 gateway hands it to s3s). From the principal cache, like every other
    /// authentication; the use is stamped like a Basic login.
    pub(crate) async fn key_owner_and_secret(
        &self,
        key_id: &str,
    ) -> Result<Option<(Principal, Secret)>> {
        let Some(key) = self.known_key(key_id).await? else {
            return Ok(None);
        };
        self.stamp_key_use(&key, key_id);
        Ok(Some((
            Principal {
                user_id: key.user_id,
                user_name: key.user_name.clone(),
                access_key_id: Some(key_id.to_string()),
            },
            key.secret.clone(),
        )))
    }

    fn decrypt_key_secret(&self, rec: &AccessKeyRecord) -> Result<Secret> {
        let plain = self
            .secrets()
            .decrypt(&rec.secret_ciphertext)
            .map_err(|e| {
                ServiceError::Internal(format!("access key {}: {e}", rec.access_key_id))
            })?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| ServiceError::Internal("stored secret is not UTF-8".into()))
    }

    /// An access key and its owner, from the principal cache or the database.
    async fn known_key(&self, key_id: &str) -> Result<Option<Arc<KnownKey>>> {
        let load = || async {
            let rec = self
                .store()
                .get_access_key(key_id)
                .await?
                .ok_or(Miss::Absent)?;
            let user = self
                .store()
                .get_user(rec.user_id)
                .await?
                .ok_or(Miss::Absent)?;
            Ok::<_, Miss>(Arc::new(KnownKey {
                user_id: user.id,
                user_name: user.name,
                secret: self.decrypt_key_secret(&rec)?,
                stamped_ms: AtomicI64::new(rec.last_used_at.map_or(0, |t| t.timestamp_millis())),
            }))
        };
        let cache = self.principal_cache();
        let found = match cache.active() {
            None => load().await,
            Some(current) => cache
                .keys
                .get_or_refresh(
                    key_id.to_string(),
                    |(g, _)| *g == current,
                    || async { Ok((current, load().await?)) },
                )
                .await
                .map(|(_, k)| k),
        };
        match found {
            Ok(k) => Ok(Some(k)),
            Err(Miss::Absent) => Ok(None),
            Err(Miss::Failed(e)) => Err(e),
        }
    }

    /// A user's name by id, from the principal cache or the database.
    pub(crate) async fn known_user(&self, user_id: Uuid) -> Result<Option<Arc<str>>> {
        let load = || async {
            let user = self.store().get_user(user_id).await?.ok_or(Miss::Absent)?;
            Ok::<_, Miss>(Arc::<str>::from(user.name))
        };
        let cache = self.principal_cache();
        let found = match cache.active() {
            None => load().await,
            Some(current) => cache
                .users
                .get_or_refresh(
                    user_id,
                    |(g, _)| *g == current,
                    || async { Ok((current, load().await?)) },
                )
                .await
                .map(|(_, n)| n),
        };
        match found {
            Ok(n) => Ok(Some(n)),
            Err(Miss::Absent) => Ok(None),
            Err(Miss::Failed(e)) => Err(e),
        }
    }

    /// Records the key's use at most once per `TOUCH_INTERVAL_SECS` per process, in the
    /// background: the request does not wait for (or fail by) the write.
    fn stamp_key_use(&self, key: &KnownKey, key_id: &str) {
        let n = now();
        let last = key.stamped_ms.load(Ordering::Relaxed);
        if n.timestamp_millis() - last < TOUCH_INTERVAL_SECS * 1000 {
            return;
        }
        // One caller wins the stamp; concurrent requests with the same key skip it.
        if key
            .stamped_ms
            .compare_exchange(
                last,
                n.timestamp_millis(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let services = self.clone();
        let key_id = key_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = services.store().touch_access_key(&key_id, n).await {
                tracing::debug!(error = %e, "could not record key use");
            }
        });
    }

    /// Verifies an access key pair. Unknown id and wrong secret give the same answer so the
    /// response does not reveal which ids exist.
    pub(crate) async fn authenticate_key(&self, key_id: &str, secret: &str) -> Result<Principal> {
        let invalid = || ServiceError::Unauthorized("invalid access key id or secret".into());
        if AccessKeyId::parse(key_id).is_err() {
            return Err(invalid());
        }
        let Some(key) = self.known_key(key_id).await? else {
            return Err(invalid());
        };
        if !key.secret.ct_eq(secret) {
            return Err(invalid());
        }
        self.stamp_key_use(&key, key_id);
        Ok(Principal {
            user_id: key.user_id,
            user_name: key.user_name.clone(),
            access_key_id: Some(key_id.to_string()),
        })
    }

    /// Verifies a Sluice-issued bearer token. A token minted from an access key dies with
    /// the key: deleting the key revokes its outstanding tokens.
    pub(crate) async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let claims = self
            .tokens()
            .verify_cached(token, now().timestamp())
            .map_err(|e| match e {
                sluice_auth::AuthError::Expired => {
                    ServiceError::Unauthorized("token expired".into())
                }
                _ => ServiceError::Unauthorized("invalid bearer token".into()),
            })?;
        let user_id = Uuid::parse_str(&claims.sub)
            .map_err(|_| ServiceError::Unauthorized("invalid bearer token".into()))?;
        let key = match &claims.akid {
            Some(akid) => match self.known_key(akid).await? {
                Some(k) => Some(k),
                None => return Err(ServiceError::Unauthorized("token was revoked".into())),
            },
            None => None,
        };
        // The key's owner is the subject for every token Sluice mints from a key; anything
        // else is looked up on its own.
        let user_name: Arc<str> = match key.filter(|k| k.user_id == user_id) {
            Some(k) => Arc::from(k.user_name.as_str()),
            None => self.known_user(user_id).await?.ok_or_else(|| {
                ServiceError::Unauthorized("token subject no longer exists".into())
            })?,
        };
        Ok(Principal {
            user_id,
            user_name: user_name.to_string(),
            access_key_id: claims.akid.clone(),
        })
    }

    /// OAuth2 token endpoint (RFC 6749 §4.4): client credentials are an access key pair.
    /// Any well-formed scope (RFC 6749 §3.3, at most `MAX_SCOPE_LEN` bytes) is accepted and
    /// echoed; scopes do not widen what policies allow.
    pub async fn token_grant(
        &self,
        grant_type: Option<&str>,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        scope: Option<&str>,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        match grant_type {
            None => return Err(OAuthError::new("invalid_request", "missing grant_type")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!("grant_type '{other}' is not supported; use client_credentials"),
                ))
            }
        }
        // Checked before the credentials: the scope ends up in the token and in logs.
        let scope = scope.map(|s| s.trim_matches(' ')).filter(|s| !s.is_empty());
        if let Some(scope) = scope {
            validate_scope(scope)?;
        }
        let (Some(id), Some(secret)) = (client_id, client_secret) else {
            return Err(OAuthError::new(
                "invalid_client",
                "client authentication failed: client_id and client_secret are required",
            ));
        };
        let principal = match self.authenticate_key(id, secret).await {
            Ok(p) => p,
            Err(ServiceError::Unauthorized(_)) => {
                return Err(OAuthError::new(
                    "invalid_client",
                    "client authentication failed",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "token endpoint failure");
                return Err(OAuthError::new(
                    "server_error",
                    "the server could not issue a token",
                ));
            }
        };
        let token = self
            .tokens()
            .issue(
                principal.user_id,
                &principal.user_name,
                principal.access_key_id.as_deref(),
                scope,
                now().timestamp(),
            )
            .map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                OAuthError::new("server_error", "the server could not issue a token")
            })?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer",
            expires_in: self.tokens().ttl_seconds(),
            issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
            scope: scope.map(str::to_string),
        })
    }
}

/// Longest scope the token endpoint accepts; real clients send a few short tokens
/// (`catalog`, `PRINCIPAL_ROLE:ALL`), and the scope is copied into every token.
pub const MAX_SCOPE_LEN: usize = 1024;

/// RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`,
/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn validate_scope(scope: &str) -> std::result::Result<(), OAuthError> {
    if scope.len() > MAX_SCOPE_LEN {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope is longer than {MAX_SCOPE_LEN} characters"),
        ));
    }
    let token_char = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
    for token in scope.split(' ') {
        if token.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                "scope tokens must be separated by single spaces",
            ));
        }
        if !token.bytes().all(token_char) {
            return Err(OAuthError::new(
                "invalid_scope",
                "scope may contain only printable ASCII other than '\"' and '\\', separated by single spaces",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod scope_tests {
    use super::validate_scope;

    #[test]
    fn scopes_per_rfc6749() {
        for ok in [
            "catalog",
            "PRINCIPAL_ROLE:ALL",
            "a b c",
            "sql:* x/y!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
        ] {
            assert!(validate_scope(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a\r\nb",
            "a\nb",
            "a  b",
            "a\tb",
            "\"q\"",
            "back\\slash",
            "caf\u{e9}",
            "a\0",
        ] {
            assert_eq!(
                validate_scope(bad).unwrap_err().error,
                "invalid_scope",
                "{bad:?}"
            );
        }
        assert!(validate_scope(&"x".repeat(1024)).is_ok());
        assert!(validate_scope(&"x".repeat(1025)).is_err());
    }
}
