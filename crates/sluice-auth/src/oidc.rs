//! OpenID Connect relying party: a pure protocol client for one external identity provider.
//!
//! * [`OidcProvider::verify_bearer`] validates a JWT (access token or ID token) issued by the
//!   provider: signature with a key from the provider's JWKS (looked up by `kid`), an asymmetric
//!   `alg` only, `iss`, `aud`, `exp`/`nbf` (with leeway) and `sub`. Signature and claim checks
//!   are done by `jsonwebtoken`; this module only picks the key and the rules.
//! * [`OidcProvider::authorization_url`] / [`OidcProvider::exchange_code`] implement the
//!   authorization-code flow with PKCE (S256) and nonce for browser logins.
//! * Discovery (`/.well-known/openid-configuration`) and the JWKS are fetched lazily and cached.
//!   Failures are never cached; a cached value past its refresh time is still served when the
//!   refresh fails (stale-if-error). An unknown `kid`, or a signature that does not verify with
//!   the cached key of that `kid` (the provider rotated its key but kept the id), triggers one
//!   JWKS refetch — single-flight, and at most once per [`JWKS_REFETCH_COOLDOWN`].
//!
//! It knows nothing about HTTP servers or Sluice users: callers map [`OidcIdentity`] to a user
//! and [`OidcError`] to a status (`InvalidToken` → 401, `Unavailable` → 503, `Config` → 500).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How long a discovery document is used before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long a JWKS is used before it is fetched again (unknown `kid`s refetch earlier).
pub const JWKS_TTL: Duration = Duration::from_secs(3600);
/// Minimum time between two JWKS refetches triggered by tokens (unknown `kid` / bad signature).
pub const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// After a failed refresh of a cached (stale) value, how long the stale value is served
/// before the next attempt.
const STALE_RETRY: Duration = Duration::from_secs(30);

const CALLBACK_PATH: &str = "/auth/oidc/callback";

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn sixty() -> u64 {
    60
}
fn ten() -> u64 {
    10
}

/// OIDC settings (names follow lakeFS' `auth.oidc` / `auth.providers.oidc` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer URL; discovery is `{url}/.well-known/openid-configuration`.
    pub url: String,
    pub client_id: String,
    /// Confidential client secret (sent with client_secret_basic). Without it the token
    /// endpoint is called as a public client (client_id in the body; PKCE protects the code).
    #[serde(default)]
    pub client_secret: Option<sluice_core::Secret>,
    /// Sluice's external base URL; the browser callback is `{callback_base_url}/auth/oidc/callback`.
    #[serde(default)]
    pub callback_base_url: Option<String>,
    /// Groups for new users when the groups claim is absent or empty.
    #[serde(default)]
    pub default_initial_groups: Vec<String>,
    /// Claim holding the user's groups (array of strings or one string).
    #[serde(default)]
    pub initial_groups_claim_name: Option<String>,
    /// Claim holding the display name (default `name`).
    #[serde(default)]
    pub friendly_name_claim_name: Option<String>,
    /// Scopes requested by the browser login (`openid` is always added).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Accepted `aud` values of bearer tokens besides `client_id` (e.g. an API audience).
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// Public client id advertised to CLIs (PKCE / device flow); not used by this module.
    #[serde(default)]
    pub public_client_id: Option<String>,
    /// Claim used as the user name; falls back to `email`, then `sub`.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Clock skew tolerated for `exp` / `nbf`.
    #[serde(default = "sixty")]
    pub leeway_seconds: u64,
    /// Timeout of every request to the provider.
    #[serde(default = "ten")]
    pub http_timeout_seconds: u64,
}

/// Who a verified token or login belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
    /// `username_claim`, else `email`, else `sub`.
    pub username: String,
    pub email: Option<String>,
    /// `friendly_name_claim_name`, else `name`.
    pub friendly_name: Option<String>,
    /// From `initial_groups_claim_name` when configured (empty otherwise).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The token / code presented is not acceptable (the caller's fault → 401).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The identity provider could not be reached or answered nonsense (→ 503).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// Sluice's OIDC settings are wrong (or do not match the provider).
    #[error("OIDC configuration error: {0}")]
    Config(String),
}

/// The parts of the provider's discovery document Sluice uses.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
    pub scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct DiscoveryDoc {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    scopes_supported: Option<Vec<String>>,
}

/// One usable verification key from the JWKS.
struct VerifyKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    /// Algorithms this key type can verify.
    algs: &'static [Algorithm],
    key: DecodingKey,
}

struct KeySet {
    jwks_uri: String,
    keys: Vec<VerifyKey>,
    /// Bumped on every successful fetch, so waiters can tell whether someone else refetched.
    generation: u64,
}

struct Cached<T> {
    value: Arc<T>,
    refresh_at: Instant,
}

/// A lazily fetched value: lock-free-ish reads, single-flight refresh.
struct Slot<T> {
    current: RwLock<Option<Cached<T>>>,
    /// Held while fetching.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    /// Last token-triggered refetch (JWKS cooldown).
    last_forced: Option<Instant>,
    /// The last failed fetch, handed to callers that were already waiting for it (so an
    /// outage costs concurrent callers one timeout, not one each in turn). Later callers
    /// try again: failures are not cached.
    last_failure: Option<(Instant, OidcError)>,
}

impl RefreshState {
    fn failed_since(&self, arrived: Instant) -> Option<OidcError> {
        match &self.last_failure {
            Some((at, e)) if *at >= arrived => Some(e.clone()),
            _ => None,
        }
    }
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }
    /// (value, still fresh)
    fn get(&self) -> Option<(Arc<T>, bool)> {
        let g = self.current.read().unwrap_or_else(|e| e.into_inner());
        g.as_ref()
            .map(|c| (c.value.clone(), Instant::now() < c.refresh_at))
    }
    fn set(&self, value: Arc<T>, ttl: Duration) {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        *g = Some(Cached {
            value,
            refresh_at: Instant::now() + ttl,
        });
    }
    fn postpone(&self, by: Duration) {
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = g.as_mut() {
            c.refresh_at = Instant::now() + by;
        }
    }
}

/// Client for one OIDC provider. `Send + Sync`; share it via `Arc`.
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    timeout: Duration,
    /// `config.url` without a trailing slash.
    issuer_base: String,
    discovery: Slot<ProviderMetadata>,
    jwks: Slot<KeySet>,
    jwks_cooldown: Duration,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why one verification attempt failed.
enum Attempt {
    /// No key with this kid / signature did not verify: worth one JWKS refetch.
    Retry(OidcError),
    Fatal(OidcError),
}

fn invalid(msg: impl Into<String>) -> OidcError {
    OidcError::InvalidToken(msg.into())
}

fn jwt_error(e: &jsonwebtoken::errors::Error) -> OidcError {
    let msg = match e.kind() {
        ErrorKind::InvalidSignature => "signature does not verify".to_string(),
        ErrorKind::ExpiredSignature => "token expired".to_string(),
        ErrorKind::ImmatureSignature => "token not yet valid (nbf)".to_string(),
        ErrorKind::InvalidIssuer => "issuer mismatch".to_string(),
        ErrorKind::InvalidAudience => "audience not accepted".to_string(),
        ErrorKind::InvalidAlgorithm => "algorithm not accepted for this key".to_string(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing required claim `{c}`"),
        _ => format!("malformed token ({e})"),
    };
    OidcError::InvalidToken(msg)
}

/// Algorithms accepted at all: asymmetric only (never `none`, which jsonwebtoken cannot even
/// parse, nor HS*, which would let a public key act as an HMAC secret).
fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if let Some(u) = &jwk.common.public_key_use {
        if *u != PublicKeyUse::Signature {
            return None;
        }
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return None;
        }
    }
    let algs: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGS,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys have no business in a provider's public JWKS.
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(ka) => match ka.to_string().parse::<Algorithm>() {
            Ok(a) if algs.contains(&a) => Some(a),
            _ => return None, // encryption alg or inconsistent with the key type
        },
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        alg,
        algs,
        key,
    })
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `code_challenge` for `code_challenge_method=S256` (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh PKCE pair: (verifier, S256 challenge). The verifier is 43 characters of base64url
/// from 32 random bytes.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = s256(&verifier);
    (verifier, challenge)
}

/// A random URL-safe value for `state` / `nonce` (32 random bytes, base64url).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `application/x-www-form-urlencoded` encoding, as client_secret_basic requires for the
/// user name and password (RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
}

impl OidcProvider {
    /// Validates the settings; does no network I/O (discovery happens on first use).
    pub fn new(config: OidcConfig, http: reqwest::Client) -> Result<Self, OidcError> {
        let issuer = url::Url::parse(&config.url)
            .map_err(|e| OidcError::Config(format!("oidc url {:?}: {e}", config.url)))?;
        if !matches!(issuer.scheme(), "https" | "http") || issuer.host_str().is_none() {
            return Err(OidcError::Config(format!(
                "oidc url {:?} must be an http(s) URL",
                config.url
            )));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(OidcError::Config(format!(
                "oidc url {:?} must not have a query or fragment",
                config.url
            )));
        }
        if config.client_id.trim().is_empty() {
            return Err(OidcError::Config("oidc client_id is empty".into()));
        }
        if let Some(base) = &config.callback_base_url {
            let u = url::Url::parse(base)
                .map_err(|e| OidcError::Config(format!("oidc callback_base_url {base:?}: {e}")))?;
            if !matches!(u.scheme(), "https" | "http") {
                return Err(OidcError::Config(format!(
                    "oidc callback_base_url {base:?} must be an http(s) URL"
                )));
            }
        }
        if config.username_claim.is_empty() {
            return Err(OidcError::Config("oidc username_claim is empty".into()));
        }
        if config.http_timeout_seconds == 0 {
            return Err(OidcError::Config(
                "oidc http_timeout_seconds must be > 0".into(),
            ));
        }
        let issuer_base = config.url.trim_end_matches('/').to_string();
        Ok(OidcProvider {
            timeout: Duration::from_secs(config.http_timeout_seconds),
            issuer_base,
            config,
            http,
            discovery: Slot::new(),
            jwks: Slot::new(),
            jwks_cooldown: JWKS_REFETCH_COOLDOWN,
        })
    }

    /// Overrides [`JWKS_REFETCH_COOLDOWN`] (tests, or providers that rotate keys often).
    pub fn with_jwks_refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_cooldown = cooldown;
        self
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// `{callback_base_url}/auth/oidc/callback`, when a callback base URL is configured.
    pub fn callback_url(&self) -> Option<String> {
        self.config
            .callback_base_url
            .as_ref()
            .map(|b| format!("{}{CALLBACK_PATH}", b.trim_end_matches('/')))
    }

    /// The groups a new user should get: the groups claim when it yielded any, else
    /// `default_initial_groups` (lakeFS semantics).
    pub fn initial_groups(&self, identity: &OidcIdentity) -> Vec<String> {
        if identity.groups.is_empty() {
            self.config.default_initial_groups.clone()
        } else {
            identity.groups.clone()
        }
    }

    fn issuer_matches_config(&self, iss: &str) -> bool {
        iss.trim_end_matches('/') == self.issuer_base
    }

    /// Cheap routing test without network or signature check: does the token's (unverified)
    /// `iss` name this provider?
    pub fn is_candidate(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let mut v = Validation::new(Algorithm::RS256);
        v.insecure_disable_signature_validation();
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        match jsonwebtoken::decode::<Iss>(token, &DecodingKey::from_secret(&[]), &v) {
            Ok(d) => d
                .claims
                .iss
                .is_some_and(|iss| self.issuer_matches_config(&iss)),
            Err(_) => false,
        }
    }

    // --------------------------------------------------------------------------------------
    // Discovery and JWKS
    // --------------------------------------------------------------------------------------

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
    ) -> Result<T, OidcError> {
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("{what} {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(OidcError::Unavailable(format!(
                "{what} {url}: HTTP {status}"
            )));
        }
        resp.json::<T>()
            .await
            .map_err(|e| OidcError::Unavailable(format!("{what} {url}: invalid document: {e}")))
    }

    async fn fetch_metadata(&self) -> Result<ProviderMetadata, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer_base);
        let doc: DiscoveryDoc = self.get_json("discovery", &url).await?;
        // OpenID Connect Discovery §4.3: the document's issuer must be the configured one.
        // (A trailing slash difference in the configured URL is tolerated.)
        if !self.issuer_matches_config(&doc.issuer) {
            return Err(OidcError::Config(format!(
                "discovery at {url} names issuer {:?}, configured url is {:?}",
                doc.issuer, self.config.url
            )));
        }
        Ok(ProviderMetadata {
            issuer: doc.issuer,
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            device_authorization_endpoint: doc.device_authorization_endpoint,
            jwks_uri: doc.jwks_uri,
            end_session_endpoint: doc.end_session_endpoint,
            scopes_supported: doc.scopes_supported.unwrap_or_default(),
        })
    }

    async fn metadata_arc(&self) -> Result<Arc<ProviderMetadata>, OidcError> {
        if let Some((m, true)) = self.discovery.get() {
            return Ok(m);
        }
        let arrived = Instant::now();
        let mut state = self.discovery.refresh.lock().await;
        let cached = self.discovery.get();
        if let Some((m, true)) = &cached {
            return Ok(m.clone()); // refreshed while we waited
        }
        if let Some(e) = state.failed_since(arrived) {
            return Err(e); // the fetch we waited for failed
        }
        match self.fetch_metadata().await {
            Ok(m) => {
                let m = Arc::new(m);
                self.discovery.set(m.clone(), DISCOVERY_TTL);
                Ok(m)
            }
            Err(e) => match cached {
                Some((stale, _)) => {
                    tracing::warn!(error = %e, "OIDC discovery refresh failed; using the cached document");
                    self.discovery.postpone(STALE_RETRY);
                    Ok(stale)
                }
                None => {
                    state.last_failure = Some((Instant::now(), e.clone()));
                    Err(e)
                }
            },
        }
    }

    /// The provider's discovery document (cached for [`DISCOVERY_TTL`]; failures are not
    /// cached).
    pub async fn metadata(&self) -> Result<ProviderMetadata, OidcError> {
        Ok((*self.metadata_arc().await?).clone())
    }

    async fn fetch_keys(&self, jwks_uri: &str, generation: u64) -> Result<KeySet, OidcError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet = self.get_json("JWKS", jwks_uri).await?;
        // Parse key by key: one key of a kind we do not understand must not hide the others.
        let keys: Vec<VerifyKey> = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| verify_key(&jwk))
            .collect();
        if keys.is_empty() {
            return Err(OidcError::Unavailable(format!(
                "JWKS {jwks_uri} has no usable signature verification keys"
            )));
        }
        Ok(KeySet {
            jwks_uri: jwks_uri.to_string(),
            keys,
            generation,
        })
    }

    /// The key set; `refetch_after` = the generation the caller found wanting (unknown kid or
    /// bad signature): fetch again unless someone already did or the cooldown forbids it.
    async fn keys(
        &self,
        meta: &ProviderMetadata,
        refetch_after: Option<u64>,
    ) -> Result<Arc<KeySet>, OidcError> {
        let usable = |ks: &KeySet| ks.jwks_uri == meta.jwks_uri;
        if refetch_after.is_none() {
            if let Some((ks, true)) = self.jwks.get() {
                if usable(&ks) {
                    return Ok(ks);
                }
            }
        }
        let arrived = Instant::now();
        let mut state = self.jwks.refresh.lock().await;
        let cached = self.jwks.get().filter(|(ks, _)| usable(ks));
        let next_generation = self.jwks.get().map_or(1, |(ks, _)| ks.generation + 1);
        match (&cached, refetch_after) {
            (Some((ks, true)), None) => return Ok(ks.clone()),
            (Some((ks, _)), Some(seen)) => {
                if ks.generation != seen {
                    return Ok(ks.clone()); // someone refetched while we waited
                }
                if state
                    .last_forced
                    .is_some_and(|t| t.elapsed() < self.jwks_cooldown)
                {
                    return Ok(ks.clone()); // rate-limited: caller gets its original error
                }
                state.last_forced = Some(Instant::now());
            }
            (None, _) => {
                if let Some(e) = state.failed_since(arrived) {
                    return Err(e); // the fetch we waited for failed
                }
            }
            _ => {}
        }
        match self.fetch_keys(&meta.jwks_uri, next_generation).await {
            Ok(ks) => {
                let ks = Arc::new(ks);
                self.jwks.set(ks.clone(), JWKS_TTL);
                Ok(ks)
            }
            Err(e) => match cached {
                // A refresh that fails keeps the keys we have: tokens they verify still pass,
                // and a token they cannot verify keeps its own error (an unreachable provider
                // must not turn a forged token into a 503).
                Some((stale, _)) => {
                    tracing::warn!(error = %e, "OIDC JWKS refresh failed; using the cached keys");
                    if refetch_after.is_none() {
                        self.jwks.postpone(STALE_RETRY);
                    }
                    Ok(stale)
                }
                None => {
                    state.last_failure = Some((Instant::now(), e.clone()));
                    Err(e)
                }
            },
        }
    }

    // --------------------------------------------------------------------------------------
    // Token verification
    // --------------------------------------------------------------------------------------

    fn try_keys(
        &self,
        token: &str,
        header: &Header,
        keys: &KeySet,
        validation: &Validation,
    ) -> Result<Map<String, Value>, Attempt> {
        let alg = header.alg;
        let mut candidates = keys
            .keys
            .iter()
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .peekable();
        if candidates.peek().is_none() {
            return Err(Attempt::Retry(invalid(match &header.kid {
                Some(kid) => format!("no key with kid {kid:?} in the provider's JWKS"),
                None => "token has no kid and the provider's JWKS has no matching key".into(),
            })));
        }
        let mut last = None;
        for k in candidates {
            if !k.algs.contains(&alg) || k.alg.is_some_and(|a| a != alg) {
                last = Some(Attempt::Fatal(invalid(format!(
                    "alg {alg:?} does not match the provider's key"
                ))));
                continue;
            }
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, validation) {
                Ok(d) => return Ok(d.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                    last = Some(Attempt::Retry(jwt_error(&e)));
                }
                Err(e) => return Err(Attempt::Fatal(jwt_error(&e))),
            }
        }
        Err(last.unwrap_or_else(|| Attempt::Fatal(invalid("no usable key"))))
    }

    /// Verifies signature and standard claims; returns all claims.
    async fn verify_jwt(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<(Arc<ProviderMetadata>, Map<String, Value>), OidcError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed token header ({e})")))?;
        if !asymmetric(header.alg) {
            return Err(invalid(format!("alg {:?} is not accepted", header.alg)));
        }
        // Foreign tokens are refused before any network I/O (and cannot trigger refetches).
        if !self.is_candidate(token) {
            return Err(invalid("issuer mismatch"));
        }
        let meta = self.metadata_arc().await?;

        let mut v = Validation::new(header.alg);
        v.leeway = self.config.leeway_seconds;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[meta.issuer.as_str()]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        let keys = self.keys(&meta, None).await?;
        let claims = match self.try_keys(token, &header, &keys, &v) {
            Ok(c) => c,
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                let fresh = self.keys(&meta, Some(keys.generation)).await?;
                if fresh.generation == keys.generation {
                    return Err(e);
                }
                match self.try_keys(token, &header, &fresh, &v) {
                    Ok(c) => c,
                    Err(Attempt::Fatal(e) | Attempt::Retry(e)) => return Err(e),
                }
            }
        };
        // jsonwebtoken accepts an array `iss` containing the issuer; OIDC requires a string.
        if claims.get("iss").and_then(Value::as_str) != Some(meta.issuer.as_str()) {
            return Err(invalid("issuer mismatch"));
        }
        if string_claim(&claims, "sub").is_none() {
            return Err(invalid("claim `sub` must be a non-empty string"));
        }
        Ok((meta, claims))
    }

    fn identity(&self, meta: &ProviderMetadata, claims: &Map<String, Value>) -> OidcIdentity {
        let subject = string_claim(claims, "sub").unwrap_or_default();
        let email = string_claim(claims, "email");
        let username = string_claim(claims, &self.config.username_claim)
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.clone());
        let friendly_name = string_claim(
            claims,
            self.config
                .friendly_name_claim_name
                .as_deref()
                .unwrap_or("name"),
        );
        let groups = match self.config.initial_groups_claim_name.as_deref() {
            Some(name) => match claims.get(name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        OidcIdentity {
            issuer: meta.issuer.clone(),
            subject,
            username,
            email,
            friendly_name,
            groups,
        }
    }

    /// Verifies a bearer JWT (access token or ID token) issued by this provider: asymmetric
    /// `alg`, signature by the JWKS key named by `kid`, `iss`, `aud` ∋ client_id or one of
    /// `allowed_audiences`, `exp` (required) / `nbf` with leeway, `sub` (required).
    pub async fn verify_bearer(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let mut audiences: Vec<&str> = vec![self.config.client_id.as_str()];
        audiences.extend(self.config.allowed_audiences.iter().map(String::as_str));
        let (meta, claims) = self.verify_jwt(token, &audiences).await?;
        Ok(self.identity(&meta, &claims))
    }

    // --------------------------------------------------------------------------------------
    // Authorization code flow
    // --------------------------------------------------------------------------------------

    /// Where to send the browser: the provider's authorization endpoint with response_type
    /// `code`, client_id, redirect_uri, scope (`openid` + configured scopes), state, nonce and
    /// the PKCE S256 challenge.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        pkce_challenge_s256: &str,
    ) -> Result<String, OidcError> {
        let meta = self.metadata_arc().await?;
        let mut url = url::Url::parse(&meta.authorization_endpoint).map_err(|e| {
            OidcError::Unavailable(format!(
                "authorization_endpoint {:?}: {e}",
                meta.authorization_endpoint
            ))
        })?;
        let mut scopes: Vec<&str> = vec!["openid"];
        for s in &self.config.scopes {
            if !s.is_empty() && !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", pkce_challenge_s256)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Redeems an authorization code at the token endpoint (client_secret_basic when a secret
    /// is configured, else as a public client) and validates the returned ID token: signature,
    /// `iss`, `aud` ∋ client_id (and `azp` = client_id when present), `exp`/`nbf`, and `nonce`
    /// when one is expected. The identity comes from the ID token's claims.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
        expected_nonce: Option<&str>,
    ) -> Result<OidcIdentity, OidcError> {
        let meta = self.metadata_arc().await?;
        let client_id = self.config.client_id.as_str();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = pkce_verifier {
            form.push(("code_verifier", v));
        }
        let secret = self.config.client_secret.as_ref().filter(|s| !s.is_empty());
        let mut req = self
            .http
            .post(&meta.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        match secret {
            Some(s) => req = req.basic_auth(form_encode(client_id), Some(form_encode(s.expose()))),
            None => form.push(("client_id", client_id)),
        }
        let resp = req.form(&form).send().await.map_err(|e| {
            OidcError::Unavailable(format!("token endpoint {}: {e}", meta.token_endpoint))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            OidcError::Unavailable(format!("token endpoint {}: {e}", meta.token_endpoint))
        })?;
        if !status.is_success() {
            let detail = match serde_json::from_slice::<TokenErrorBody>(&body) {
                Ok(b) => match b.error_description {
                    Some(d) => format!("{}: {d}", b.error),
                    None => b.error,
                },
                Err(_) => format!("HTTP {status}"),
            };
            if status.is_server_error() {
                return Err(OidcError::Unavailable(format!("token endpoint: {detail}")));
            }
            if detail.starts_with("invalid_client") || detail.starts_with("unauthorized_client") {
                return Err(OidcError::Config(format!(
                    "token endpoint rejected the client: {detail}"
                )));
            }
            return Err(invalid(format!("code rejected by the provider: {detail}")));
        }
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            OidcError::Unavailable(format!("token endpoint: invalid response: {e}"))
        })?;
        let id_token = tr.id_token.ok_or_else(|| {
            OidcError::Config("token response has no id_token (is `openid` granted?)".into())
        })?;

        let (meta, claims) = self.verify_jwt(&id_token, &[client_id]).await?;
        if let Some(azp) = claims.get("azp") {
            if azp.as_str() != Some(client_id) {
                return Err(invalid("ID token azp is not our client_id"));
            }
        }
        if let Some(expected) = expected_nonce {
            if claims.get("nonce").and_then(Value::as_str) != Some(expected) {
                return Err(invalid("ID token nonce mismatch"));
            }
        }
        Ok(self.identity(&meta, &claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> OidcConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_pair_is_fresh_and_consistent() {
        let (v1, c1) = pkce_pair();
        let (v2, _) = pkce_pair();
        assert_ne!(v1, v2);
        assert!((43..=128).contains(&v1.len()));
        assert!(v1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(c1, s256(&v1));
        assert_eq!(c1.len(), 43);
    }

    #[test]
    fn config_defaults() {
        let c = config(r#"{"url":"https://idp.example/","client_id":"c"}"#);
        assert_eq!(c.scopes, vec!["openid", "profile", "email"]);
        assert_eq!(c.username_claim, "preferred_username");
        assert_eq!(c.leeway_seconds, 60);
        assert_eq!(c.http_timeout_seconds, 10);
        assert!(c.client_secret.is_none() && c.allowed_audiences.is_empty());
        let err = serde_json::from_str::<OidcConfig>(r#"{"url":"u","client_id":"c","bogus":1}"#);
        assert!(err.is_err(), "unknown fields are refused");
    }

    #[test]
    fn new_validates_without_network() {
        let http = reqwest::Client::new();
        let ok = OidcProvider::new(
            config(r#"{"url":"https://idp.example/","client_id":"c","callback_base_url":"https://sluice.example/"}"#),
            http.clone(),
        )
        .unwrap();
        assert_eq!(
            ok.callback_url().as_deref(),
            Some("https://sluice.example/auth/oidc/callback")
        );
        for bad in [
            r#"{"url":"not a url","client_id":"c"}"#,
            r#"{"url":"ftp://idp.example","client_id":"c"}"#,
            r#"{"url":"https://idp.example","client_id":" "}"#,
            r#"{"url":"https://idp.example","client_id":"c","http_timeout_seconds":0}"#,
            r#"{"url":"https://idp.example","client_id":"c","callback_base_url":"nope"}"#,
        ] {
            assert!(
                matches!(
                    OidcProvider::new(config(bad), http.clone()),
                    Err(OidcError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn provider_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<OidcProvider>();
    }

    #[test]
    fn is_candidate_reads_unverified_iss() {
        let p = OidcProvider::new(
            config(r#"{"url":"https://idp.example/","client_id":"c"}"#),
            reqwest::Client::new(),
        )
        .unwrap();
        let tok = |iss: &str| {
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
            let c = URL_SAFE_NO_PAD.encode(serde_json::json!({ "iss": iss }).to_string());
            format!("{h}.{c}.c2ln")
        };
        assert!(p.is_candidate(&tok("https://idp.example")));
        assert!(p.is_candidate(&tok("https://idp.example/")));
        assert!(!p.is_candidate(&tok("https://evil.example")));
        assert!(!p.is_candidate("garbage"));
        assert!(!p.is_candidate("a.b.c"));
    }
}
