//! Temporary S3 gateway credentials for one table: what `vended-credentials` and the signer
//! hand out for a warehouse the gateway serves. Stateless, so every replica accepts them:
//!
//! - access key id: `ASIA` + 16 random base32 characters;
//! - secret: HMAC of the key id under a key derived from the master key
//!   (`SecretBox::mac`), so the gateway's signature check can derive it from the id alone;
//! - session token: the claims (key id, issuing user and the access key they used,
//!   warehouse, table and its location, read or read-write, expiry) sealed with the master
//!   key (AES-256-GCM), so they cannot be read, forged or widened.
//!
//! The gateway accepts a request signed with such a key only with its session token
//! (`X-Amz-Security-Token`), before expiry, while the issuing user and access key still
//! exist, for objects below the table's location, and only for what the user's current
//! rights still allow (the token narrows the user's rights like an AWS session policy; it
//! never widens them). Each issuance is one audit entry; secrets and tokens are never logged.

use std::collections::HashMap;
use std::ops::Deref;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sluice_auth::policy::resource;
use sluice_core::{Principal, Secret};
use sluice_storage::{AccessLevel, TableCredentials};
use sluice_store::{AuditRecord, WarehouseRecord};
use uuid::Uuid;

use crate::delegation::GatewayTable;
use crate::gateway::ObjectAccess;
use crate::{Result, ServiceError, Services};

/// The audit log's name for one issuance (an event, not a policy action).
pub const GATEWAY_CREDENTIALS_AUDIT_ACTION: &str = "s3:IssueTemporaryCredentials";
/// Lifetime of temporary gateway credentials unless configured.
pub const DEFAULT_GATEWAY_CREDENTIALS_TTL: std::time::Duration =
    std::time::Duration::from_secs(3600);

const KEY_PREFIX: &str = "ASIA";
const KEY_RANDOM_CHARS: usize = 16;
const TOKEN_KIND: &str = "gateway-session";
const SECRET_PURPOSE: &str = "gateway-temporary-secret";
/// Longer tokens are refused before any decryption.
const MAX_TOKEN_LEN: usize = 4096;

/// Whether `key_id` has the shape of a temporary gateway key.
pub fn is_temporary_key_id(key_id: &str) -> bool {
    key_id.len() == KEY_PREFIX.len() + KEY_RANDOM_CHARS
        && key_id.starts_with(KEY_PREFIX)
        && key_id[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn new_key_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // 80 of a v4 UUID's 122 random bits (OS randomness), five bits per character.
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = String::from(KEY_PREFIX);
    for _ in 0..KEY_RANDOM_CHARS {
        out.push(ALPHABET[(bits & 31) as usize] as char);
        bits >>= 5;
    }
    out
}

/// What a session token carries. `kind` keeps other sealed values (staged-table grants, the
/// SSO state) from passing as a token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionClaims {
    kind: String,
    key: String,
    user: Uuid,
    /// The access key the user authenticated with when the credentials were issued, if any:
    /// deleting it revokes them.
    parent_key: Option<String>,
    warehouse: Uuid,
    table: Uuid,
    /// The table's location as clients see it (`s3://<warehouse>/…`).
    location: String,
    write: bool,
    expires_ms: i64,
    /// For a staged (not yet committed) table: its policy resource. No table holds its keys
    /// until the create commits, so the gateway checks `catalog:CreateTable` on it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    staged_table: Option<String>,
}

/// What temporary credentials confine their requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScope {
    key_id: String,
    warehouse: Uuid,
    location: String,
    write: bool,
    staged_table: Option<String>,
}

impl SessionScope {
    /// The policy resource of the staged table these credentials were issued for, if the
    /// table was not committed when they were.
    pub(crate) fn staged_table(&self) -> Option<&str> {
        self.staged_table.as_deref()
    }

    /// Whether the object `location` (of warehouse `warehouse`) lies strictly below the
    /// table's location and `access` is within the level.
    pub(crate) fn allows(&self, warehouse: Uuid, location: &str, access: ObjectAccess) -> bool {
        warehouse == self.warehouse
            && self.covers(location)
            && (self.write || access == ObjectAccess::Read)
    }

    /// Strictly below the table's directory (`t1` does not cover `t10`).
    pub(crate) fn covers(&self, location: &str) -> bool {
        location.starts_with(&format!("{}/", self.location.trim_end_matches('/')))
    }

    pub(crate) fn warehouse(&self) -> Uuid {
        self.warehouse
    }

    /// The temporary access key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// The caller of a gateway request: the user, and the scope of the temporary credentials
/// that signed it, if it was signed with some.
#[derive(Debug, Clone)]
pub struct GatewayCaller {
    principal: Principal,
    scope: Option<SessionScope>,
}

impl GatewayCaller {
    pub fn scope(&self) -> Option<&SessionScope> {
        self.scope.as_ref()
    }
}

impl From<Principal> for GatewayCaller {
    fn from(principal: Principal) -> Self {
        GatewayCaller {
            principal,
            scope: None,
        }
    }
}

impl Deref for GatewayCaller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

/// Why the gateway refuses temporary credentials; each is one S3 error code.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefusal {
    /// `InvalidToken`: missing, malformed, tampered, or for another key.
    #[error("{0}")]
    Invalid(String),
    /// `ExpiredToken`.
    #[error("the provided token has expired")]
    Expired,
    /// `InvalidAccessKeyId`: the issuing user or access key no longer exists.
    #[error("{0}")]
    Revoked(String),
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl Services {
    /// The secret of a temporary gateway key, derived from its id (the signature check
    /// needs it before the session token is looked at). `None` for other key ids.
    pub fn gateway_temporary_secret(&self, key_id: &str) -> Option<Secret> {
        if !is_temporary_key_id(key_id) {
            return None;
        }
        let mac = self.secrets().mac(SECRET_PURPOSE, key_id.as_bytes());
        Some(Secret::new(STANDARD.encode(&mac[..30])))
    }

    /// Mints temporary gateway credentials for one table, as Iceberg client properties,
    /// and records the issuance in the audit log.
    pub(crate) async fn mint_gateway_credentials(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        table: GatewayTable<'_>,
        level: AccessLevel,
        base_url: &str,
    ) -> Result<TableCredentials> {
        let endpoint = self.gateway_endpoint(base_url)?;
        let settings = &self.config().gateway;
        let ttl =
            chrono::Duration::from_std(settings.credentials_ttl).map_err(ServiceError::internal)?;
        let expiration = crate::now() + ttl;
        let key = new_key_id();
        let write = level == AccessLevel::ReadWrite;
        let claims = SessionClaims {
            kind: TOKEN_KIND.into(),
            key: key.clone(),
            user: caller.user_id,
            parent_key: caller.access_key_id.clone(),
            warehouse: wh.id,
            table: table.id,
            location: table.location.to_string(),
            write,
            expires_ms: expiration.timestamp_millis(),
            staged_table: table
                .staged
                .then(|| resource::table(&wh.name, table.namespace.parts(), table.name)),
        };
        let json = serde_json::to_vec(&claims).map_err(ServiceError::internal)?;
        let token = URL_SAFE_NO_PAD.encode(self.seal(&json));
        let secret = self
            .gateway_temporary_secret(&key)
            .ok_or_else(|| ServiceError::Internal("minted a malformed key id".into()))?;
        let expires_ms = expiration.timestamp_millis().to_string();
        let config = HashMap::from([
            ("s3.access-key-id".to_string(), key.clone()),
            (
                "s3.secret-access-key".to_string(),
                secret.expose().to_string(),
            ),
            ("s3.session-token".to_string(), token),
            ("s3.session-token-expires-at-ms".to_string(), expires_ms),
            ("s3.endpoint".to_string(), endpoint),
            ("s3.path-style-access".to_string(), "true".to_string()),
            ("s3.region".to_string(), settings.region.clone()),
            ("client.region".to_string(), settings.region.clone()),
        ]);
        let level_name = if write { "read-write" } else { "read" };
        let rec = AuditRecord {
            id: 0,
            at: crate::now(),
            actor_id: Some(caller.user_id),
            actor_name: caller.user_name.clone(),
            action: GATEWAY_CREDENTIALS_AUDIT_ACTION.into(),
            target: resource::table(&wh.name, table.namespace.parts(), table.name),
            result: "success".into(),
            detail: Some(format!(
                "access-key-id {key}; table-id {}; level {level_name}; expires {}; via {}",
                table.id,
                expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                caller.access_key_id.as_deref().unwrap_or("a token"),
            )),
        };
        // Credentials that cannot be recorded are not handed out.
        self.store().append_audit(&rec).await?;
        tracing::info!(
            user = %caller.user_name,
            access_key_id = %key,
            table_id = %table.id,
            level = level_name,
            "issued temporary S3 gateway credentials"
        );
        Ok(TableCredentials { config, expiration })
    }

    /// The gateway's URL for clients: `s3_public_endpoint`, else the address the gateway
    /// listens on (with the host the client reached the API at when that address is a
    /// wildcard).
    pub(crate) fn gateway_endpoint(&self, base_url: &str) -> Result<String> {
        if let Some(e) = &self.config().gateway.public_endpoint {
            return Ok(e.trim_end_matches('/').to_string());
        }
        let addr = self
            .inner
            .gateway_address
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| {
                ServiceError::BadRequest(
                    "the S3 gateway is off on this server (s3_listen is empty)".into(),
                )
            })?;
        if !addr.ip().is_unspecified() {
            return Ok(format!("http://{addr}"));
        }
        let host = url::Url::parse(base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".into());
        Ok(format!("http://{host}:{}", addr.port()))
    }

    /// The address the S3 gateway listens on, for the endpoint in vended credentials.
    pub fn set_gateway_address(&self, addr: std::net::SocketAddr) {
        *self
            .inner
            .gateway_address
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(addr);
    }

    /// The caller of a request the gateway verified with a temporary key's secret: the
    /// session token must open under the master key, name this key, be unexpired, and its
    /// issuer must still exist (the access key they used, else the user).
    pub async fn gateway_session(
        &self,
        key_id: &str,
        token: Option<&str>,
    ) -> std::result::Result<GatewayCaller, SessionRefusal> {
        let invalid = || {
            SessionRefusal::Invalid("the provided token is malformed or otherwise invalid".into())
        };
        let token = token.ok_or_else(|| {
            SessionRefusal::Invalid(
                "temporary credentials need their session token (X-Amz-Security-Token)".into(),
            )
        })?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        let sealed = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let claims: SessionClaims = self
            .unseal(&sealed)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .filter(|c: &SessionClaims| c.kind == TOKEN_KIND && c.key == key_id)
            .ok_or_else(invalid)?;
        if claims.expires_ms <= Utc::now().timestamp_millis() {
            return Err(SessionRefusal::Expired);
        }
        let principal = match &claims.parent_key {
            Some(parent) => match self.key_owner_and_secret(parent).await? {
                Some((p, _)) if p.user_id == claims.user => p,
                _ => {
                    return Err(SessionRefusal::Revoked(
                        "the access key these credentials were issued to no longer exists".into(),
                    ))
                }
            },
            None => {
                let name = self.known_user(claims.user).await?.ok_or_else(|| {
                    SessionRefusal::Revoked(
                        "the user these credentials were issued to no longer exists".into(),
                    )
                })?;
                Principal {
                    user_id: claims.user,
                    user_name: name.to_string(),
                    access_key_id: None,
                }
            }
        };
        Ok(GatewayCaller {
            principal,
            scope: Some(SessionScope {
                key_id: claims.key,
                warehouse: claims.warehouse,
                location: claims.location,
                write: claims.write,
                staged_table: claims.staged_table,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_look_like_aws_temporary_keys() {
        for _ in 0..100 {
            let k = new_key_id();
            assert!(is_temporary_key_id(&k), "{k}");
        }
        assert_ne!(new_key_id(), new_key_id());
        assert!(!is_temporary_key_id("AKIAAAAAAAAAAAAAAAAA"));
        assert!(!is_temporary_key_id("ASIAaaaaaaaaaaaaaaaa"));
        assert!(!is_temporary_key_id("ASIAAAAAAAAAAAAAAAA1"));
    }

    #[test]
    fn scope_is_strictly_below_the_table() {
        let s = SessionScope {
            key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
            warehouse: Uuid::nil(),
            location: "s3://wh/ns/t1".into(),
            write: false,
            staged_table: None,
        };
        assert!(s.allows(
            Uuid::nil(),
            "s3://wh/ns/t1/data/a.parquet",
            ObjectAccess::Read
        ));
        assert!(!s.allows(Uuid::nil(), "s3://wh/ns/t10/a", ObjectAccess::Read));
        assert!(!s.allows(Uuid::nil(), "s3://wh/ns/t1", ObjectAccess::Read));
        assert!(!s.allows(Uuid::nil(), "s3://wh/ns/t1/a", ObjectAccess::Write));
        assert!(!s.allows(Uuid::max(), "s3://wh/ns/t1/a", ObjectAccess::Read));
    }
}
