//! AWS IAM login: a caller proves an AWS identity by handing Sluice a presigned STS
//! `GetCallerIdentity` request, which Sluice replays to STS to learn the caller's ARN.
//!
//! The client presigns `GET https://<sts host>/?Action=GetCallerIdentity&Version=2011-06-15`
//! with SigV4 in the query string, signing the extra header `X-Sluice-Server-ID: <server id>`.
//! It sends the parts of that URL as an *identity token*: standard base64 of a JSON object
//! (the same shape the lakeFS clients send to `external_principal_login`):
//!
//! ```json
//! {"method": "GET", "host": "sts.amazonaws.com", "region": "us-east-1",
//!  "action": "GetCallerIdentity", "date": "20240501T120000Z", "expiration_duration": "900",
//!  "access_key_id": "AKIA…", "signature": "<64 hex>", "signed_headers": ["host", "x-sluice-server-id"],
//!  "version": "2011-06-15", "algorithm": "AWS4-HMAC-SHA256", "security_token": null}
//! ```
//!
//! `expiration_duration` is `X-Amz-Expires` as a string of seconds (a JSON number is accepted
//! too); `security_token` is `X-Amz-Security-Token` or `null` for long-term keys.
//!
//! [`AwsIamVerifier::verify`] checks the token locally (method, action, version, algorithm,
//! the server-id header among the signed headers, an allowed STS host, the presign date and
//! expiry against `max_token_age_seconds`), rebuilds the presigned URL
//! ([`AwsIamVerifier::presigned_url`]) and replays it with `X-Sluice-Server-ID: <its own id>`.
//! STS recomputes the signature over what it receives, so a token presigned for another
//! server id (or tampered with in any way) is refused by STS. The ARN STS reports is mapped
//! to the principal ARN users are bound to ([`principal_arn`]: an assumed-role session maps to
//! its role).
//!
//! The token format and the signing ([`build_identity_token`]) live in `sluice-aws-identity`
//! (shared with the SDK, which builds tokens); signing uses `aws-sigv4`, and this module
//! never computes SigV4 itself. It knows nothing about HTTP routing or the store; the server maps
//! [`AwsIamError::Invalid`] to 401 and [`AwsIamError::Unavailable`] to 503.

use std::time::{Duration, SystemTime};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
// The token's wire format and its field checks are shared with the SDK that builds it.
use sluice_aws_identity::{check_server_id, printable, valid_host, valid_region};
pub use sluice_aws_identity::{
    IdentityToken, MAX_PRESIGN_EXPIRY_SECONDS, SERVER_ID_HEADER, SIGV4_ALGORITHM, STS_ACTION,
    STS_VERSION, TOKEN_METHOD,
};

/// How far in the future a token's `date` may lie (clock skew between client and server).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Longest base64 identity token accepted (session tokens make them a few KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest STS response body read.
const MAX_STS_RESPONSE_BYTES: usize = 64 * 1024;

/// SigV4 query encoding: everything but RFC 3986 unreserved characters is percent-encoded
/// (the encoding `aws-sigv4` and botocore use for the canonical query string).
const AWS_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn default_hosts() -> Vec<String> {
    vec!["sts.amazonaws.com".into(), "sts.*.amazonaws.com".into()]
}
fn fifteen_min() -> u64 {
    900
}
fn one_hour() -> u64 {
    3600
}
fn ten() -> u64 {
    10
}

/// `[aws_iam]` in the server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsIamConfig {
    /// The value clients must sign into `X-Sluice-Server-ID` (visible ASCII, no spaces),
    /// e.g. the server's public URL. Binds tokens to this server.
    pub server_id: String,
    /// STS hosts a token may name. `*` stands for exactly one DNS label
    /// (`sts.*.amazonaws.com` matches `sts.eu-west-1.amazonaws.com`, not `sts.a.b.amazonaws.com`).
    #[serde(default = "default_hosts")]
    pub allowed_sts_hosts: Vec<String>,
    /// Replay here (`http(s)://host[:port]`, no path) instead of `https://<token host>`; the
    /// `Host` header stays the signed host. For tests and private STS endpoints.
    #[serde(default)]
    pub sts_endpoint_override: Option<String>,
    /// A token's `date` may be at most this old, and its presign expiry at most this long.
    #[serde(default = "fifteen_min")]
    pub max_token_age_seconds: u64,
    /// Group a first-time AWS principal is put in when auto-provisioning (server side).
    #[serde(default)]
    pub auto_provision_group: Option<String>,
    /// Longest Sluice session minted from an AWS login (server side).
    #[serde(default = "one_hour")]
    pub max_session_ttl_seconds: u64,
    /// Timeout of the STS replay.
    #[serde(default = "ten")]
    pub http_timeout_seconds: u64,
}

impl AwsIamConfig {
    /// A configuration with every default and the given server id.
    pub fn new(server_id: impl Into<String>) -> Self {
        Self {
            server_id: server_id.into(),
            allowed_sts_hosts: default_hosts(),
            sts_endpoint_override: None,
            max_token_age_seconds: fifteen_min(),
            auto_provision_group: None,
            max_session_ttl_seconds: one_hour(),
            http_timeout_seconds: ten(),
        }
    }

    /// Checks the configuration; the message names the offending key (`aws_iam.<key>`).
    pub fn validate(&self) -> Result<(), String> {
        check_server_id(&self.server_id).map_err(|e| format!("aws_iam.server_id {e}"))?;
        if self.allowed_sts_hosts.is_empty() {
            return Err("aws_iam.allowed_sts_hosts must name at least one STS host".into());
        }
        for pattern in &self.allowed_sts_hosts {
            if !valid_host_pattern(pattern) {
                return Err(format!(
                    "aws_iam.allowed_sts_hosts entry '{pattern}' is not a host name or a \
                     pattern with '*' as a whole label (e.g. sts.*.amazonaws.com)"
                ));
            }
        }
        if let Some(endpoint) = &self.sts_endpoint_override {
            check_endpoint(endpoint)
                .map_err(|e| format!("aws_iam.sts_endpoint_override '{endpoint}' {e}"))?;
        }
        if self.max_token_age_seconds == 0
            || self.max_token_age_seconds > MAX_PRESIGN_EXPIRY_SECONDS
        {
            return Err(format!(
                "aws_iam.max_token_age_seconds must be between 1 and {MAX_PRESIGN_EXPIRY_SECONDS}"
            ));
        }
        if self.max_session_ttl_seconds == 0 {
            return Err("aws_iam.max_session_ttl_seconds must be positive".into());
        }
        if self.http_timeout_seconds == 0 {
            return Err("aws_iam.http_timeout_seconds must be positive".into());
        }
        if matches!(&self.auto_provision_group, Some(g) if g.trim().is_empty()) {
            return Err("aws_iam.auto_provision_group must not be empty when set".into());
        }
        Ok(())
    }
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsPrincipal {
    /// The ARN exactly as STS reported it (an assumed-role ARN keeps its session name).
    pub arn: String,
    /// The ARN users are bound to: the role ARN for an assumed-role session, else `arn`.
    pub principal_arn: String,
    /// The 12-digit account id.
    pub account: String,
    /// STS's `UserId` (`AIDA…`, or `AROA…:<session>` for a role session).
    pub user_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsIamError {
    /// The token is malformed, not acceptable to this server, or STS refused it (401).
    #[error("invalid AWS identity token: {0}")]
    Invalid(String),
    /// STS could not be asked or answered unusably (503).
    #[error("AWS STS unavailable: {0}")]
    Unavailable(String),
}

fn invalid(msg: impl Into<String>) -> AwsIamError {
    AwsIamError::Invalid(msg.into())
}
fn unavailable(msg: impl Into<String>) -> AwsIamError {
    AwsIamError::Unavailable(msg.into())
}

/// Verifies identity tokens against STS. Build one per configuration (call
/// [`AwsIamConfig::validate`] first). Prefer a `reqwest::Client` that does not follow
/// redirects (`redirect::Policy::none()`): STS never redirects, and an answer that comes from
/// anywhere but the endpoint asked is refused as [`AwsIamError::Unavailable`] anyway.
#[derive(Debug, Clone)]
pub struct AwsIamVerifier {
    config: AwsIamConfig,
    http: reqwest::Client,
}

impl AwsIamVerifier {
    pub fn new(config: AwsIamConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    pub fn config(&self) -> &AwsIamConfig {
        &self.config
    }

    /// Base64 (standard or URL-safe, padding optional) → JSON → [`IdentityToken`]. Only the
    /// shape is checked here.
    pub fn decode_token(b64: &str) -> Result<IdentityToken, AwsIamError> {
        let s = b64.trim();
        if s.is_empty() {
            return Err(invalid("identity token is empty"));
        }
        if s.len() > MAX_TOKEN_LEN {
            return Err(invalid(format!(
                "identity token is longer than {MAX_TOKEN_LEN} characters"
            )));
        }
        let lenient =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let bytes = GeneralPurpose::new(&alphabet::STANDARD, lenient)
            .decode(s)
            .or_else(|_| GeneralPurpose::new(&alphabet::URL_SAFE, lenient).decode(s))
            .map_err(|_| invalid("identity token is not base64"))?;
        serde_json::from_slice::<IdentityToken>(&bytes).map_err(|e| {
            // serde's messages may quote token values; keep only the missing-field hint.
            let msg = e.to_string();
            match msg.strip_prefix("missing field ") {
                Some(rest) => invalid(format!(
                    "identity token JSON lacks field {}",
                    rest.split(" at line").next().unwrap_or(rest)
                )),
                None => invalid("identity token is not the expected JSON object"),
            }
        })
    }

    /// Rebuilds the presigned URL `https://<host>/?Action=…&Version=…&X-Amz-Algorithm=…&
    /// X-Amz-Credential=…&X-Amz-Date=…&X-Amz-Expires=…&X-Amz-SignedHeaders=…
    /// [&X-Amz-Security-Token=…]&X-Amz-Signature=…`, values SigV4-encoded. Without the
    /// signature this is exactly the canonical query string (sorted, encoded), and the
    /// parameter order is the one botocore's presigner produces. Checks the shape of every
    /// field used (host, region, date, expiry, key id, signature, header names).
    pub fn presigned_url(token: &IdentityToken) -> Result<String, AwsIamError> {
        Ok(format!(
            "https://{}/?{}",
            token.host,
            presigned_query(token)?
        ))
    }

    /// Every check that needs no network (see the module docs). `verify` runs it first.
    pub fn check_token(
        &self,
        token: &IdentityToken,
        now: DateTime<Utc>,
    ) -> Result<(), AwsIamError> {
        if token.method != TOKEN_METHOD {
            return Err(invalid(format!(
                "identity token must be presigned for GET, not '{}'",
                printable(&token.method)
            )));
        }
        if token.action != STS_ACTION {
            return Err(invalid(format!(
                "identity token must presign {STS_ACTION}, not '{}'",
                printable(&token.action)
            )));
        }
        if token.version != STS_VERSION {
            return Err(invalid(format!(
                "identity token must use STS version {STS_VERSION}, not '{}'",
                printable(&token.version)
            )));
        }
        if token.algorithm != SIGV4_ALGORITHM {
            return Err(invalid(format!(
                "identity token must be signed with {SIGV4_ALGORITHM}, not '{}'",
                printable(&token.algorithm)
            )));
        }
        if !token
            .signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(SERVER_ID_HEADER))
        {
            return Err(invalid(format!(
                "identity token does not sign the {SERVER_ID_HEADER} header, so it is not bound \
                 to this server; sign it with the server id '{}'",
                self.config.server_id
            )));
        }
        if let Some(other) = token
            .signed_headers
            .iter()
            .find(|h| !h.eq_ignore_ascii_case("host") && !h.eq_ignore_ascii_case(SERVER_ID_HEADER))
        {
            return Err(invalid(format!(
                "identity token signs header '{}', which the server cannot replay (sign only \
                 host and {SERVER_ID_HEADER})",
                printable(other)
            )));
        }
        let host = token.host.to_ascii_lowercase();
        if !self
            .config
            .allowed_sts_hosts
            .iter()
            .any(|p| host_matches(&p.to_ascii_lowercase(), &host))
        {
            return Err(invalid(format!(
                "STS host '{}' is not allowed",
                printable(&token.host)
            )));
        }

        let max_age = self.config.max_token_age_seconds;
        let signed_at = parse_amz_date(&token.date)?;
        let expires = parse_expires(&token.expiration_duration)?;
        if expires > max_age {
            return Err(invalid(format!(
                "identity token is presigned for {expires}s, more than the allowed {max_age}s"
            )));
        }
        let age = now.signed_duration_since(signed_at).num_seconds();
        if age < -MAX_CLOCK_SKEW_SECONDS {
            return Err(invalid(format!(
                "identity token is dated {}s in the future",
                -age
            )));
        }
        if age > max_age as i64 {
            return Err(invalid(format!(
                "identity token is too old (signed {age}s ago, at most {max_age}s allowed)"
            )));
        }
        if age > expires as i64 {
            return Err(invalid(format!(
                "identity token has expired (presigned for {expires}s, signed {age}s ago)"
            )));
        }
        Ok(())
    }

    /// Checks the token ([`check_token`](Self::check_token)), replays it to STS with
    /// `X-Sluice-Server-ID: <server_id>` and returns who STS says signed it.
    pub async fn verify(
        &self,
        token_b64: &str,
        now: DateTime<Utc>,
    ) -> Result<AwsPrincipal, AwsIamError> {
        let token = Self::decode_token(token_b64)?;
        self.check_token(&token, now)?;
        let query = presigned_query(&token)?;
        let (url, endpoint) = match &self.config.sts_endpoint_override {
            Some(base) => {
                let base = base.trim_end_matches('/');
                (format!("{base}/?{query}"), base.to_string())
            }
            None => (
                format!("https://{}/?{query}", token.host),
                format!("https://{}", token.host),
            ),
        };
        let target = reqwest::Url::parse(&url)
            .map_err(|_| unavailable(format!("'{endpoint}' is not a usable STS endpoint")))?;
        let server_id = reqwest::header::HeaderValue::from_str(&self.config.server_id)
            .map_err(|_| unavailable("aws_iam.server_id is not a valid header value"))?;
        let response = self
            .http
            .get(target.clone())
            .header(reqwest::header::HOST, &token.host)
            .header(SERVER_ID_HEADER, server_id)
            .timeout(Duration::from_secs(self.config.http_timeout_seconds))
            .send()
            .await
            // Never echo the URL: it carries the signature and the session token.
            .map_err(|e| {
                unavailable(format!(
                    "cannot reach STS at {endpoint}: {}",
                    error_chain(e)
                ))
            })?;
        // Only an answer from the endpoint asked counts (a client that follows redirects
        // would otherwise hand us someone else's answer).
        if response.url().origin() != target.origin() || response.url().path() != "/" {
            return Err(unavailable(format!(
                "STS at {endpoint} redirected the request"
            )));
        }
        let status = response.status();
        let body = read_limited(response, &endpoint).await?;
        let body = String::from_utf8_lossy(&body);

        if status.is_success() {
            return principal_from_response(&body, &endpoint);
        }
        let code = sts_error_code(&body);
        let code_or_status = code
            .clone()
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let throttled = matches!(
            code.as_deref(),
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        );
        match status.as_u16() {
            400 | 401 | 403 if !throttled => Err(invalid(format!(
                "STS rejected the identity token: {code_or_status}"
            ))),
            _ => Err(unavailable(format!(
                "STS at {endpoint} answered HTTP {}: {code_or_status}",
                status.as_u16()
            ))),
        }
    }
}

/// Maps an ARN from `GetCallerIdentity` to the principal ARN users are bound to:
/// `arn:<p>:sts::<acct>:assumed-role/<role>/<session>` → `arn:<p>:iam::<acct>:role/<role>`;
/// IAM users, the root user and other STS principals (federated users) are returned
/// unchanged. `None` for anything that is not an IAM/STS ARN with a 12-digit account.
pub fn principal_arn(sts_arn: &str) -> Option<String> {
    let parts: Vec<&str> = sts_arn.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *arn != "arn"
        || !partition.starts_with("aws")
        || !region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || resource.is_empty()
    {
        return None;
    }
    match *service {
        "iam" => Some(sts_arn.to_string()),
        "sts" => match resource.strip_prefix("assumed-role/") {
            Some(rest) => {
                let (role, session) = rest.split_once('/')?;
                if role.is_empty() || session.is_empty() {
                    return None;
                }
                Some(format!("arn:{partition}:iam::{account}:role/{role}"))
            }
            None => Some(sts_arn.to_string()),
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------

/// [`sluice_aws_identity::build_identity_token`] with this module's error type (what the
/// verifier's tests and the server's tests presign with).
pub fn build_identity_token(
    creds: &aws_credential_types::Credentials,
    region: &str,
    host: &str,
    server_id: &str,
    expires_in: Duration,
    now: SystemTime,
) -> Result<String, AwsIamError> {
    sluice_aws_identity::build_identity_token(creds, region, host, server_id, expires_in, now)
        .map_err(|e| AwsIamError::Invalid(e.0))
}

fn presigned_query(token: &IdentityToken) -> Result<String, AwsIamError> {
    if !valid_host(&token.host) {
        return Err(invalid(format!(
            "'{}' is not an STS host name",
            printable(&token.host)
        )));
    }
    if !valid_region(&token.region) {
        return Err(invalid(format!(
            "'{}' is not an AWS region",
            printable(&token.region)
        )));
    }
    parse_amz_date(&token.date)?;
    parse_expires(&token.expiration_duration)?;
    let key = &token.access_key_id;
    if !(16..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("access_key_id is not an AWS access key id"));
    }
    let sig = &token.signature;
    if sig.len() != 64
        || !sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid("signature is not 64 lower-case hex digits"));
    }
    if token.signed_headers.is_empty()
        || token.signed_headers.iter().any(|h| {
            h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    {
        return Err(invalid("signed_headers is not a list of header names"));
    }
    if matches!(&token.security_token, Some(t) if t.is_empty()) {
        return Err(invalid("security_token is empty"));
    }

    let credential = format!(
        "{}/{}/{}/sts/aws4_request",
        token.access_key_id,
        &token.date[..8],
        token.region
    );
    let signed_headers = token.signed_headers.join(";");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("Action", &token.action),
        ("Version", &token.version),
        ("X-Amz-Algorithm", &token.algorithm),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &token.date),
        ("X-Amz-Expires", &token.expiration_duration),
        ("X-Amz-SignedHeaders", &signed_headers),
    ];
    if let Some(t) = &token.security_token {
        pairs.push(("X-Amz-Security-Token", t));
    }
    pairs.push(("X-Amz-Signature", &token.signature));
    Ok(pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, AWS_QUERY)))
        .collect::<Vec<_>>()
        .join("&"))
}

fn parse_amz_date(date: &str) -> Result<DateTime<Utc>, AwsIamError> {
    let b = date.as_bytes();
    let shaped = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shaped {
        return Err(invalid("date is not an X-Amz-Date (YYYYMMDDTHHMMSSZ)"));
    }
    NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map(|d| d.and_utc())
        .map_err(|_| invalid("date is not an X-Amz-Date (YYYYMMDDTHHMMSSZ)"))
}

fn parse_expires(s: &str) -> Result<u64, AwsIamError> {
    let n = (!s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse::<u64>().ok())
        .flatten()
        .filter(|n| (1..=MAX_PRESIGN_EXPIRY_SECONDS).contains(n));
    n.ok_or_else(|| {
        invalid(format!(
            "expiration_duration must be 1..{MAX_PRESIGN_EXPIRY_SECONDS} seconds"
        ))
    })
}

fn valid_host_pattern(pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    if !p.contains('*') {
        return valid_host(&p);
    }
    // Wildcards only as whole labels, and not in a port.
    !p.contains(':')
        && p.split('.').count() >= 2
        && p.split('.').all(|label| {
            label == "*"
                || (!label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        })
}

/// `pattern` and `host` lower case. `*` matches exactly one non-empty DNS label.
fn host_matches(pattern: &str, host: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == host;
    }
    let (p, h): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), host.split('.').collect());
    p.len() == h.len()
        && p.iter().zip(&h).all(|(p, h)| {
            if *p == "*" {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            } else {
                p == h
            }
        })
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none() {
        return Err("has no host".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a path, query or fragment (STS is signed at '/')".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

/// A reqwest error and its causes, without the request URL (it carries the signature and
/// the session token).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn read_limited(
    mut response: reqwest::Response,
    endpoint: &str,
) -> Result<Vec<u8>, AwsIamError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        unavailable(format!(
            "reading the STS response from {endpoint} failed: {}",
            error_chain(e)
        ))
    })? {
        if body.len() + chunk.len() > MAX_STS_RESPONSE_BYTES {
            return Err(unavailable(format!(
                "the STS response from {endpoint} is larger than {MAX_STS_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct CallerIdentityResponse {
    #[serde(rename = "GetCallerIdentityResult")]
    result: CallerIdentityResult,
}

#[derive(Deserialize)]
struct CallerIdentityResult {
    #[serde(rename = "Arn")]
    arn: String,
    #[serde(rename = "UserId")]
    user_id: String,
    #[serde(rename = "Account")]
    account: String,
}

#[derive(Deserialize)]
struct StsErrorResponse {
    #[serde(rename = "Error")]
    error: StsError,
}

#[derive(Deserialize)]
struct StsError {
    #[serde(rename = "Code")]
    code: Option<String>,
}

fn principal_from_response(body: &str, endpoint: &str) -> Result<AwsPrincipal, AwsIamError> {
    let parsed: CallerIdentityResponse = quick_xml::de::from_str(body).map_err(|_| {
        unavailable(format!(
            "{endpoint} answered 200 without a GetCallerIdentity result"
        ))
    })?;
    let r = parsed.result;
    let (arn, account, user_id) = (r.arn.trim(), r.account.trim(), r.user_id.trim());
    let principal = principal_arn(arn).ok_or_else(|| {
        invalid(format!(
            "STS reported an ARN Sluice does not accept: '{}'",
            printable(arn)
        ))
    })?;
    if arn.split(':').nth(4) != Some(account) {
        return Err(unavailable(format!(
            "{endpoint} reported account '{}' for ARN '{}'",
            printable(account),
            printable(arn)
        )));
    }
    Ok(AwsPrincipal {
        arn: arn.to_string(),
        principal_arn: principal,
        account: account.to_string(),
        user_id: user_id.to_string(),
    })
}

/// The `<Error><Code>` of an STS error body, reduced to `[A-Za-z0-9._-]{1,64}`.
fn sts_error_code(body: &str) -> Option<String> {
    let parsed: StsErrorResponse = quick_xml::de::from_str(body).ok()?;
    let code: String = parsed
        .error
        .code?
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    (!code.is_empty()).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_arn_maps_assumed_roles_only() {
        assert_eq!(
            principal_arn("arn:aws:sts::123456789012:assumed-role/DataRole/sess").as_deref(),
            Some("arn:aws:iam::123456789012:role/DataRole")
        );
        assert_eq!(
            principal_arn("arn:aws-cn:sts::123456789012:assumed-role/R/i-0abc").as_deref(),
            Some("arn:aws-cn:iam::123456789012:role/R")
        );
        for same in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:user/team/alice",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
        ] {
            assert_eq!(principal_arn(same).as_deref(), Some(same));
        }
        for bad in [
            "",
            "alice",
            "arn:aws:sts::123456789012:assumed-role/R",
            "arn:aws:sts::123456789012:assumed-role//s",
            "arn:aws:sts::12345:assumed-role/R/s",
            "arn:aws:s3:::bucket",
            "arn:aws:iam:us-east-1:123456789012:user/alice",
            "arn:other:iam::123456789012:user/alice",
        ] {
            assert_eq!(principal_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        let m = |p: &str, h: &str| host_matches(p, h);
        assert!(m("sts.amazonaws.com", "sts.amazonaws.com"));
        assert!(m("sts.*.amazonaws.com", "sts.eu-west-1.amazonaws.com"));
        assert!(!m("sts.*.amazonaws.com", "sts.amazonaws.com"));
        assert!(!m("sts.*.amazonaws.com", "sts.a.b.amazonaws.com"));
        assert!(!m(
            "sts.*.amazonaws.com",
            "sts.eu-west-1.amazonaws.com.evil.example"
        ));
        assert!(!m(
            "sts.*.amazonaws.com",
            "sts.eu-west-1.amazonaws.com:8443"
        ));
        assert!(!m("sts.amazonaws.com", "evil.example.com"));
        assert!(valid_host_pattern("sts.*.amazonaws.com"));
        assert!(valid_host_pattern("sts.us-gov-west-1.amazonaws.com"));
        assert!(valid_host_pattern("localhost:8443"));
        assert!(!valid_host_pattern("sts*.amazonaws.com"));
        assert!(!valid_host_pattern("https://sts.amazonaws.com"));
        assert!(!valid_host_pattern(""));
        assert!(valid_host("sts.amazonaws.com"));
        assert!(!valid_host("sts.amazonaws.com/evil"));
        assert!(!valid_host("user@sts.amazonaws.com"));
        assert!(!valid_host("sts..amazonaws.com"));
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: AwsIamConfig = serde_json::from_str(r#"{"server_id":"sluice-1"}"#).unwrap();
        assert_eq!(c.allowed_sts_hosts, default_hosts());
        assert_eq!(c.max_token_age_seconds, 900);
        assert_eq!(c.max_session_ttl_seconds, 3600);
        assert_eq!(c.http_timeout_seconds, 10);
        assert!(c.sts_endpoint_override.is_none() && c.auto_provision_group.is_none());
        c.validate().unwrap();
        assert!(serde_json::from_str::<AwsIamConfig>(r#"{"server_id":"a","bogus":1}"#).is_err());

        let bad = |f: &dyn Fn(&mut AwsIamConfig), key: &str| {
            let mut c = AwsIamConfig::new("sluice-1");
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(key), "{e}");
        };
        bad(&|c| c.server_id = "has space".into(), "aws_iam.server_id");
        bad(&|c| c.server_id.clear(), "aws_iam.server_id");
        bad(
            &|c| c.allowed_sts_hosts.clear(),
            "aws_iam.allowed_sts_hosts",
        );
        bad(
            &|c| c.allowed_sts_hosts = vec!["sts*.x.com".into()],
            "aws_iam.allowed_sts_hosts",
        );
        bad(
            &|c| c.sts_endpoint_override = Some("ftp://x".into()),
            "aws_iam.sts_endpoint_override",
        );
        bad(
            &|c| c.sts_endpoint_override = Some("http://127.0.0.1:1/sts".into()),
            "aws_iam.sts_endpoint_override",
        );
        bad(
            &|c| c.max_token_age_seconds = 0,
            "aws_iam.max_token_age_seconds",
        );
        bad(
            &|c| c.http_timeout_seconds = 0,
            "aws_iam.http_timeout_seconds",
        );
        bad(
            &|c| c.auto_provision_group = Some(" ".into()),
            "aws_iam.auto_provision_group",
        );
        let mut ok = AwsIamConfig::new("https://sluice.example.com");
        ok.sts_endpoint_override = Some("http://127.0.0.1:4566/".into());
        ok.validate().unwrap();
    }

    #[test]
    fn sts_xml_parsing() {
        let ok = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/DataRole/sess</Arn>
    <UserId>AROAEXAMPLE:sess</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        let p = principal_from_response(ok, "x").unwrap();
        assert_eq!(p.principal_arn, "arn:aws:iam::123456789012:role/DataRole");
        assert_eq!(p.user_id, "AROAEXAMPLE:sess");
        assert!(matches!(
            principal_from_response("<x/>", "x"),
            Err(AwsIamError::Unavailable(_))
        ));
        let err = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>
  <RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(
            sts_error_code(err).as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(sts_error_code("not xml"), None);
    }
}
