//! The server's own Google OAuth2 access token for a warehouse: a JWT-bearer grant signed
//! with the service-account key (RFC 7523, as Google's client libraries do), or the
//! application-default credentials. One token per warehouse, cached until shortly before
//! it expires and refreshed by one caller at a time.

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::Refreshing;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sluice_core::Secret;

use crate::error::{error_chain, Result, StorageError};
use crate::gcs::{check_token_uri, ServiceAccountKey, DEFAULT_TOKEN_URI};

/// What the server's token may do: everything the service account may do on Cloud
/// Storage. Downscoping (per table) happens in the token exchange, not here.
pub(crate) const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's own libraries ask for one hour; the token endpoint caps it there anyway.
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A cached token is replaced this long before it expires, so a token handed to
/// object_store or exchanged for a downscoped one never dies in flight.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const METADATA_HOST: &str = "metadata.google.internal";

/// An OAuth2 access token and when it expires. `Debug` hides the token.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Parses the key's PEM and proves it can sign RS256, so a broken key is refused when the
/// warehouse is created rather than at first use.
pub(crate) fn signing_key(key: &ServiceAccountKey) -> Result<EncodingKey> {
    let bad = || {
        StorageError::Invalid(
            "key.private_key must be an RSA private key in PEM form (-----BEGIN PRIVATE KEY-----)"
                .into(),
        )
    };
    let enc = EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes()).map_err(|_| bad())?;
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &serde_json::json!({"probe": 1}),
        &enc,
    )
    .map_err(|_| bad())?;
    Ok(enc)
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The signed JWT for the JWT-bearer grant at the key's `token_uri`.
pub(crate) fn assertion(key: &ServiceAccountKey, now: DateTime<Utc>) -> Result<String> {
    let enc = signing_key(key)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let claims = AssertionClaims {
        iss: &key.client_email,
        scope: CLOUD_PLATFORM_SCOPE,
        aud: key.token_uri(),
        iat: now.timestamp(),
        exp: now.timestamp() + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &enc)
        .map_err(|e| StorageError::Sts(format!("cannot sign the token assertion: {e}")))
}

/// Where the token comes from.
pub(crate) enum TokenSource {
    ServiceAccount(Box<ServiceAccountKey>),
    /// The server's application-default credentials, resolved at first use.
    System,
}

/// A resolved application-default credential.
enum Adc {
    ServiceAccount(Box<ServiceAccountKey>),
    /// `gcloud auth application-default login`: a refresh token.
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
    Metadata {
        host: String,
    },
}

#[derive(Deserialize)]
struct AdcFile {
    #[serde(rename = "type")]
    kind: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    refresh_token: Option<Secret>,
    token_uri: Option<String>,
}

/// Google's lookup order: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, then
/// the metadata server (`GCE_METADATA_HOST` overrides its address).
fn resolve_adc() -> Result<Adc> {
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".config/gcloud/application_default_credentials.json");
            p.is_file().then_some(p)
        });
    let Some(path) = path else {
        let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| METADATA_HOST.into());
        return Ok(Adc::Metadata { host });
    };
    let sys = |m: String| {
        StorageError::Sts(format!(
            "application-default credentials {}: {m}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(&path).map_err(|e| sys(e.to_string()))?;
    let file: AdcFile = serde_json::from_str(&text).map_err(|e| sys(e.to_string()))?;
    match file.kind.as_str() {
        "service_account" => {
            let key: ServiceAccountKey =
                serde_json::from_str(&text).map_err(|e| sys(e.to_string()))?;
            key.validate().map_err(|e| sys(e.to_string()))?;
            Ok(Adc::ServiceAccount(Box::new(key)))
        }
        "authorized_user" => {
            let (Some(client_id), Some(client_secret), Some(refresh_token)) =
                (file.client_id, file.client_secret, file.refresh_token)
            else {
                return Err(sys(
                    "client_id, client_secret and refresh_token are required".into(),
                ));
            };
            let token_uri = file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.into());
            check_token_uri("token_uri", &token_uri).map_err(|e| sys(e.to_string()))?;
            Ok(Adc::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            })
        }
        other => Err(sys(format!("unsupported credential type '{other}'"))),
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    expires_in: Option<i64>,
}

/// The OAuth2 error answer (`{"error","error_description"}`), or the start of the body.
pub(crate) fn describe_error(status: reqwest::StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: serde_json::Value,
        error_description: Option<String>,
    }
    match serde_json::from_str::<OAuthError>(body) {
        Ok(e) => {
            let code = match e.error {
                serde_json::Value::String(s) => s,
                // Google APIs answer `{"error":{"code","message","status"}}`.
                other => other
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("error")
                    .to_string(),
            };
            match e.error_description {
                Some(d) => format!("{status}: {code}: {d}"),
                None => format!("{status}: {code}"),
            }
        }
        Err(_) => format!("{status}: {}", body.chars().take(200).collect::<String>()),
    }
}

pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // Token endpoints never redirect legitimately; following one could send an
        // assertion or refresh token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StorageError::Sts(format!("cannot build the HTTP client: {e}")))
}

/// The warehouse's token source with its cache. Cheap to share behind an `Arc`.
pub(crate) struct TokenProvider {
    source: TokenSource,
    http: reqwest::Client,
    cached: Refreshing<AccessToken>,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.source {
            TokenSource::ServiceAccount(k) => k.client_email.as_str(),
            TokenSource::System => "system identity",
        };
        f.debug_struct("TokenProvider")
            .field("source", &kind)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    pub(crate) fn new(source: TokenSource) -> Result<Self> {
        Ok(TokenProvider {
            source,
            http: http_client()?,
            cached: Refreshing::default(),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The project of the service-account key, when known.
    pub(crate) fn project_id(&self) -> Option<&str> {
        match &self.source {
            TokenSource::ServiceAccount(k) => k.project_id.as_deref(),
            TokenSource::System => None,
        }
    }

    /// A token valid for at least [`REFRESH_MARGIN`]. The lock is held across the refresh,
    /// so concurrent callers wait for one request instead of each making their own.
    pub(crate) async fn token(&self) -> Result<AccessToken> {
        self.cached
            .get(
                |t| t.expires_at - Utc::now() > REFRESH_MARGIN,
                || self.fetch(),
            )
            .await
    }

    async fn fetch(&self) -> Result<AccessToken> {
        match &self.source {
            TokenSource::ServiceAccount(key) => self.jwt_bearer(key).await,
            TokenSource::System => match resolve_adc()? {
                Adc::ServiceAccount(key) => self.jwt_bearer(&key).await,
                Adc::AuthorizedUser {
                    client_id,
                    client_secret,
                    refresh_token,
                    token_uri,
                } => {
                    let form = [
                        ("grant_type", "refresh_token"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", client_secret.expose()),
                        ("refresh_token", refresh_token.expose()),
                    ];
                    self.answer(&token_uri, self.http.post(&token_uri).form(&form))
                        .await
                }
                Adc::Metadata { host } => {
                    let url = format!(
                        "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                    );
                    self.answer(
                        &url,
                        self.http.get(&url).header("Metadata-Flavor", "Google"),
                    )
                    .await
                }
            },
        }
    }

    async fn jwt_bearer(&self, key: &ServiceAccountKey) -> Result<AccessToken> {
        let jwt = assertion(key, Utc::now())?;
        let uri = key.token_uri();
        let form = [
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", jwt.as_str()),
        ];
        self.answer(uri, self.http.post(uri).form(&form)).await
    }

    async fn answer(&self, url: &str, req: reqwest::RequestBuilder) -> Result<AccessToken> {
        let fail = |m: String| StorageError::Sts(format!("access token from {url}: {m}"));
        let resp = req.send().await.map_err(|e| fail(error_chain(&e)))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(error_chain(&e)))?;
        if !status.is_success() {
            return Err(fail(describe_error(status, &body)));
        }
        let ans: TokenAnswer =
            serde_json::from_str(&body).map_err(|e| fail(format!("unexpected answer: {e}")))?;
        if ans.access_token.is_empty() {
            return Err(fail("the answer has an empty access_token".into()));
        }
        let expires_in = ans.expires_in.unwrap_or(3600).clamp(0, 86_400);
        Ok(AccessToken {
            token: ans.access_token,
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
        })
    }
}

/// object_store's GCS client authenticates with the same cached token.
#[async_trait::async_trait]
impl object_store::CredentialProvider for TokenProvider {
    type Credential = object_store::gcp::GcpCredential;

    async fn get_credential(&self) -> object_store::Result<std::sync::Arc<Self::Credential>> {
        let t = self
            .token()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "GCS",
                source: Box::new(e),
            })?;
        Ok(std::sync::Arc::new(object_store::gcp::GcpCredential {
            bearer: t.token.expose().to_string(),
        }))
    }
}
