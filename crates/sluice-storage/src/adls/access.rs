//! The server's identity towards one ADLS account: the account key, or Entra ID bearer
//! tokens (client credentials or the server's own workload/managed identity), and SAS
//! vending on top of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::azure::AzureCredential;
use serde::Deserialize;
use sluice_core::Secret;
use tokio::sync::OnceCell;

use super::credential::AzCredential;
use super::profile::AdlsProfile;
use super::sas::{SasKey, SasRequest, SasScope, UserDelegationKey, SAS_VERSION};
use crate::cache::Refreshing;
use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{Result, StorageError};

/// The OAuth2 scope of Azure Storage.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// A token is refreshed this long before it expires.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
/// SAS start times lie this far back, so clients with skewed clocks can use them at once.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Where bearer tokens come from.
enum TokenKind {
    ClientSecret {
        token_url: String,
        client_id: String,
        client_secret: Secret,
    },
    /// The server's identity: workload identity when its environment is set (AKS), otherwise
    /// the instance's managed identity (IMDS).
    System,
}

/// Bearer tokens for Azure Storage, cached until shortly before they expire. One refresh at
/// a time (the lock is held across the request), so a burst of callers makes one request.
pub(crate) struct TokenSource {
    kind: TokenKind,
    http: reqwest::Client,
    cached: Refreshing<(Secret, DateTime<Utc>)>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

fn as_i64(v: &Option<serde_json::Value>) -> Option<i64> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl TokenSource {
    pub(crate) async fn token(&self) -> Result<Secret> {
        let (token, _) = self
            .cached
            .get(|(_, exp)| *exp - TOKEN_MARGIN > Utc::now(), || self.fetch())
            .await?;
        Ok(token)
    }

    async fn fetch(&self) -> Result<(Secret, DateTime<Utc>)> {
        let req = match &self.kind {
            TokenKind::ClientSecret {
                token_url,
                client_id,
                client_secret,
            } => self.http.post(token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose()),
                ("scope", STORAGE_SCOPE),
            ]),
            TokenKind::System => match workload_identity() {
                Some(w) => {
                    let assertion = std::fs::read_to_string(&w.token_file).map_err(|e| {
                        StorageError::Sts(format!(
                            "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                            w.token_file
                        ))
                    })?;
                    self.http.post(&w.token_url).form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", w.client_id.as_str()),
                        (
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        ),
                        ("client_assertion", assertion.trim()),
                        ("scope", STORAGE_SCOPE),
                    ])
                }
                None => self
                    .http
                    .get(IMDS_TOKEN_URL)
                    .query(&[
                        ("api-version", "2019-08-01"),
                        ("resource", "https://storage.azure.com"),
                    ])
                    .header("Metadata", "true"),
            },
        };
        let resp = req.send().await.map_err(|e| {
            StorageError::Sts(format!("Azure token request failed: {}", e.without_url()))
        })?;
        let status = resp.status();
        if !status.is_success() {
            // Entra ID errors carry `error` and `error_description`, never the secret.
            let body = resp.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    Some(format!(
                        "{}: {}",
                        v.get("error")?.as_str()?,
                        v.get("error_description")
                            .and_then(|d| d.as_str())
                            .unwrap_or("")
                    ))
                })
                .unwrap_or_else(|| body.chars().take(300).collect());
            return Err(StorageError::Sts(format!(
                "Azure token request refused ({status}): {detail}"
            )));
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| StorageError::Sts(format!("Azure token response: {e}")))?;
        let now = Utc::now();
        let exp = as_i64(&t.expires_in)
            .map(|s| now + chrono::Duration::seconds(s))
            .or_else(|| as_i64(&t.expires_on).and_then(|s| DateTime::from_timestamp(s, 0)))
            .unwrap_or(now + chrono::Duration::minutes(10));
        Ok((Secret::new(t.access_token), exp))
    }
}

struct WorkloadIdentity {
    token_url: String,
    client_id: String,
    token_file: String,
}

/// The AKS workload-identity environment (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`,
/// `AZURE_TENANT_ID`, optional `AZURE_AUTHORITY_HOST`), if complete.
fn workload_identity() -> Option<WorkloadIdentity> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let token_file = env("AZURE_FEDERATED_TOKEN_FILE")?;
    let client_id = env("AZURE_CLIENT_ID")?;
    let tenant = env("AZURE_TENANT_ID")?;
    let authority = env("AZURE_AUTHORITY_HOST")
        .unwrap_or_else(|| super::profile::DEFAULT_AUTHORITY_HOST.into());
    Some(WorkloadIdentity {
        token_url: format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        ),
        client_id,
        token_file,
    })
}

/// Lets `object_store` use the same tokens.
#[derive(Clone)]
pub(crate) struct ObjectStoreTokens(pub Arc<TokenSource>);

impl std::fmt::Debug for ObjectStoreTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectStoreTokens")
    }
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for ObjectStoreTokens {
    type Credential = AzureCredential;
    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        let t = self
            .0
            .token()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: Box::new(e),
            })?;
        Ok(Arc::new(AzureCredential::BearerToken(
            t.expose().to_string(),
        )))
    }
}

pub(crate) enum AdlsAuth {
    Key(Secret),
    Token(Arc<TokenSource>),
}

/// The identity plus what vending learns about the account once.
pub(crate) struct AdlsAccess {
    pub(crate) profile: AdlsProfile,
    pub(crate) auth: AdlsAuth,
    http: reqwest::Client,
    hns: OnceCell<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UdkXml {
    signed_oid: String,
    signed_tid: String,
    signed_start: String,
    signed_expiry: String,
    signed_service: String,
    signed_version: String,
    value: String,
}

impl AdlsAccess {
    pub(crate) fn new(profile: &AdlsProfile, cred: &AzCredential) -> Result<AdlsAccess> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| StorageError::Io(format!("http client: {e}")))?;
        let token = |kind| {
            AdlsAuth::Token(Arc::new(TokenSource {
                kind,
                http: http.clone(),
                cached: Refreshing::default(),
            }))
        };
        let auth = match cred {
            AzCredential::SharedAccessKey { key } => AdlsAuth::Key(key.clone()),
            AzCredential::ClientCredentials {
                client_id,
                client_secret,
                tenant_id,
            } => token(TokenKind::ClientSecret {
                token_url: format!("{}/{tenant_id}/oauth2/v2.0/token", profile.authority_host()),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }),
            AzCredential::AzureSystemIdentity {} => token(TokenKind::System),
        };
        Ok(AdlsAccess {
            profile: profile.clone(),
            auth,
            http,
            hns: OnceCell::new(),
        })
    }

    fn protocol(&self) -> Option<&'static str> {
        (!self.profile.is_emulator()).then_some("https")
    }

    fn container_url(&self) -> String {
        format!(
            "{}/{}",
            self.profile.blob_endpoint(),
            self.profile.filesystem
        )
    }

    /// Whether the account has a hierarchical namespace (Get Account Information's
    /// `x-ms-is-hns-enabled`), asked once per opened storage. A missing header (emulators)
    /// means no.
    pub(crate) async fn hns_enabled(&self) -> Result<bool> {
        self.hns
            .get_or_try_init(|| async {
                let url = format!("{}?restype=account&comp=properties", self.container_url());
                let req = match &self.auth {
                    AdlsAuth::Key(key) => {
                        // A short read SAS on the container authorizes the call (since
                        // 2019-12-12) without Shared Key request signing.
                        let now = Utc::now();
                        let sas = SasRequest {
                            account: &self.profile.account_name,
                            container: &self.profile.filesystem,
                            scope: SasScope::Container,
                            permissions: "r",
                            start: Some(now - CLOCK_SKEW),
                            expiry: now + chrono::Duration::minutes(5),
                            protocol: self.protocol(),
                        }
                        .sign(&SasKey::Account(key.expose()))?;
                        self.http.get(format!("{url}&{sas}"))
                    }
                    AdlsAuth::Token(t) => self
                        .http
                        .get(&url)
                        .bearer_auth(t.token().await?.expose())
                        .header("x-ms-version", SAS_VERSION),
                };
                let resp = req
                    .send()
                    .await
                    // Without the URL: with an account key it carries a (short, read-only) SAS.
                    .map_err(|e| {
                        StorageError::Io(format!("Get Account Information: {}", e.without_url()))
                    })?;
                if !resp.status().is_success() {
                    return Err(StorageError::Io(format!(
                        "Get Account Information answered {}",
                        resp.status()
                    )));
                }
                Ok(resp
                    .headers()
                    .get("x-ms-is-hns-enabled")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")))
            })
            .await
            .copied()
    }

    /// Get User Delegation Key for `[start, expiry]` with a bearer token.
    pub(crate) async fn user_delegation_key(
        &self,
        tokens: &TokenSource,
        start: DateTime<Utc>,
        expiry: DateTime<Utc>,
    ) -> Result<UserDelegationKey> {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            fmt(start),
            fmt(expiry)
        );
        let resp = self
            .http
            .post(format!(
                "{}/?restype=service&comp=userdelegationkey",
                self.profile.blob_endpoint()
            ))
            .bearer_auth(tokens.token().await?.expose())
            .header("x-ms-version", SAS_VERSION)
            .header("content-type", "application/xml")
            .body(body)
            .send()
            .await
            .map_err(|e| StorageError::Sts(format!("Get User Delegation Key: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let code = text
                .split_once("<Code>")
                .and_then(|(_, r)| r.split_once("</Code>"))
                .map(|(c, _)| c.to_string())
                .unwrap_or_default();
            return Err(StorageError::Sts(format!(
                "Get User Delegation Key refused ({status}) {code}"
            )));
        }
        let k: UdkXml = quick_xml::de::from_str(&text)
            .map_err(|e| StorageError::Sts(format!("Get User Delegation Key response: {e}")))?;
        Ok(UserDelegationKey {
            signed_oid: k.signed_oid,
            signed_tid: k.signed_tid,
            signed_start: k.signed_start,
            signed_expiry: k.signed_expiry,
            signed_service: k.signed_service,
            signed_version: k.signed_version,
            value: Secret::new(k.value),
        })
    }

    /// The narrowest SAS scope for `key` (a table's blob path): its directory on HNS
    /// accounts; otherwise the container, only if the profile allows it.
    pub(crate) async fn scope_for(&self, key: &str) -> Result<SasScope> {
        if self.hns_enabled().await? && !key.is_empty() {
            return Ok(SasScope::Directory(key.to_string()));
        }
        if self.profile.allow_container_wide_sas {
            return Ok(SasScope::Container);
        }
        Err(StorageError::Invalid(format!(
            "storage account '{}' has no hierarchical namespace, so a SAS cannot be limited to \
             one table; set allow-container-wide-sas on the storage profile to vend SAS tokens \
             for the whole filesystem '{}'",
            self.profile.account_name, self.profile.filesystem
        )))
    }

    /// A SAS for everything below `canonical` (an `abfss://` location of this profile).
    pub(crate) async fn vend(
        &self,
        canonical: &str,
        level: AccessLevel,
    ) -> Result<TableCredentials> {
        let key = self.profile.key_of(canonical).to_string();
        let scope = self.scope_for(&key).await?;
        let permissions = match level {
            AccessLevel::Read => "rl",
            // add, create, write, delete, list: what Iceberg writers and purges need.
            AccessLevel::ReadWrite => "racwdl",
        };
        let now = Utc::now();
        let start = now - CLOCK_SKEW;
        let expiry =
            now + chrono::Duration::seconds(self.profile.sas_token_validity_seconds as i64);
        let req = SasRequest {
            account: &self.profile.account_name,
            container: &self.profile.filesystem,
            scope,
            permissions,
            start: Some(start),
            expiry,
            protocol: self.protocol(),
        };
        let sas = match &self.auth {
            AdlsAuth::Key(k) => req.sign(&SasKey::Account(k.expose()))?,
            AdlsAuth::Token(t) => {
                let udk = self.user_delegation_key(t, start, expiry).await?;
                req.sign(&SasKey::UserDelegation(&udk))?
            }
        };
        Ok(TableCredentials {
            config: vended_config(&self.profile, &sas, expiry),
            expiration: expiry,
        })
    }
}

/// Client properties for a vended SAS: the Java ADLSFileIO names
/// (`adls.sas-token.<account>.<host>`, `adls.sas-token-expires-at-ms.<account>.<host>`),
/// PyIceberg's (`adls.sas-token`, `adls.account-name`, and for emulators an
/// `adls.connection-string`, the only way adlfs reaches a plain-HTTP endpoint), plus the
/// profile's non-secret properties.
pub fn vended_config(
    profile: &AdlsProfile,
    sas: &str,
    expiry: DateTime<Utc>,
) -> HashMap<String, String> {
    let mut cfg = profile.table_config();
    let host = format!("{}.{}", profile.account_name, profile.host());
    cfg.insert(format!("adls.sas-token.{host}"), sas.to_string());
    cfg.insert(
        format!("adls.sas-token-expires-at-ms.{host}"),
        expiry.timestamp_millis().to_string(),
    );
    cfg.insert("adls.sas-token".into(), sas.to_string());
    if profile.is_emulator() {
        cfg.insert(
            "adls.connection-string".into(),
            format!(
                "BlobEndpoint={};SharedAccessSignature={sas}",
                profile.blob_endpoint()
            ),
        );
    }
    cfg
}
