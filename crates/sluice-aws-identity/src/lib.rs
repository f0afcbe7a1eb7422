//! The AWS IAM identity token: what a client sends Sluice to prove an AWS identity, and how
//! it is built. The token is the parts of a presigned STS `GetCallerIdentity` URL (SigV4 in
//! the query string, signed with the extra header `X-Sluice-Server-ID`), as standard base64
//! of a JSON object in the lakeFS clients' shape. `sluice-auth::aws_iam` verifies tokens by
//! replaying them to STS; the SDK (`sluice-client`) builds them with
//! [`build_identity_token`]. Signing is `aws-sigv4`'s; nothing here does I/O.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign as sigv4_sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

/// The header the client signs and the server sends on replay (lower case, as signed).
pub const SERVER_ID_HEADER: &str = "x-sluice-server-id";
/// The only STS action accepted.
pub const STS_ACTION: &str = "GetCallerIdentity";
/// The STS API version the token must name.
pub const STS_VERSION: &str = "2011-06-15";
/// The only signing algorithm accepted.
pub const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The HTTP method the token must be presigned for.
pub const TOKEN_METHOD: &str = "GET";
/// SigV4's own limit for `X-Amz-Expires` (7 days).
pub const MAX_PRESIGN_EXPIRY_SECONDS: u64 = 604_800;
/// The decoded identity token (field names and types as the lakeFS clients send them).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct IdentityToken {
    /// HTTP method the URL was presigned for; must be `GET`.
    pub method: String,
    /// STS host the URL was presigned for (the signed `Host`), e.g. `sts.amazonaws.com`.
    pub host: String,
    /// Signing region (credential scope), e.g. `us-east-1`.
    pub region: String,
    /// `Action`; must be `GetCallerIdentity`.
    pub action: String,
    /// `X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    pub date: String,
    /// `X-Amz-Expires` in seconds, as a string (a JSON number is accepted on input).
    #[serde(deserialize_with = "string_or_number")]
    pub expiration_duration: String,
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// `X-Amz-Signature`, 64 lower-case hex digits.
    pub signature: String,
    /// `X-Amz-SignedHeaders` split on `;`, in the signer's order.
    pub signed_headers: Vec<String>,
    /// `Version`; must be `2011-06-15`.
    pub version: String,
    /// `X-Amz-Algorithm`; must be `AWS4-HMAC-SHA256`.
    pub algorithm: String,
    /// `X-Amz-Security-Token` for temporary credentials, else `null`.
    #[serde(default)]
    pub security_token: Option<String>,
}

impl fmt::Debug for IdentityToken {
    /// Redacts the signature and the session token (together they are a login for a while).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityToken")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("region", &self.region)
            .field("action", &self.action)
            .field("date", &self.date)
            .field("expiration_duration", &self.expiration_duration)
            .field("access_key_id", &self.access_key_id)
            .field("signature", &"<redacted>")
            .field("signed_headers", &self.signed_headers)
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl IdentityToken {
    /// Standard base64 of the JSON object (what the client sends).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("identity token serializes");
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrNumber {
        S(String),
        N(u64),
    }
    Ok(match StringOrNumber::deserialize(d)? {
        StringOrNumber::S(s) => s,
        StringOrNumber::N(n) => n.to_string(),
    })
}

/// Why a token could not be built (bad inputs, or the signer refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn invalid(msg: impl Into<String>) -> BuildError {
    BuildError(msg.into())
}

/// Presigns `GET https://<host>/?Action=GetCallerIdentity&Version=2011-06-15` with
/// `aws-sigv4` (query-string SigV4, service `sts`, empty payload), signing `host` and
/// `x-sluice-server-id: <server_id>`, and returns the base64 identity token. `host` is the
/// STS host the server will replay to (`sts.amazonaws.com` or `sts.<region>.amazonaws.com`),
/// `region` the signing region (`us-east-1` for the global endpoint).
pub fn build_identity_token(
    creds: &aws_credential_types::Credentials,
    region: &str,
    host: &str,
    server_id: &str,
    expires_in: Duration,
    now: SystemTime,
) -> Result<String, BuildError> {
    if !valid_host(host) {
        return Err(invalid(format!(
            "'{}' is not an STS host name",
            printable(host)
        )));
    }
    if !valid_region(region) {
        return Err(invalid(format!(
            "'{}' is not an AWS region",
            printable(region)
        )));
    }
    check_server_id(server_id).map_err(|e| invalid(format!("server id {e}")))?;
    let secs = expires_in.as_secs();
    if secs == 0 || secs > MAX_PRESIGN_EXPIRY_SECONDS {
        return Err(invalid(format!(
            "presign expiry must be between 1 and {MAX_PRESIGN_EXPIRY_SECONDS} seconds"
        )));
    }

    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(secs));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| invalid(format!("cannot build signing parameters: {e}")))?
        .into();
    let url = format!("https://{host}/?Action={STS_ACTION}&Version={STS_VERSION}");
    let signable = SignableRequest::new(
        TOKEN_METHOD,
        url,
        std::iter::once((SERVER_ID_HEADER, server_id)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| invalid(format!("cannot presign GetCallerIdentity: {e}")))?;
    let (instructions, signature) = sigv4_sign(signable, &params)
        .map_err(|e| invalid(format!("cannot presign GetCallerIdentity: {e}")))?
        .into_parts();
    let param = |name: &str| -> Result<String, BuildError> {
        instructions
            .params()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| invalid(format!("the signer produced no {name}")))
    };
    let token = IdentityToken {
        method: TOKEN_METHOD.into(),
        host: host.into(),
        region: region.into(),
        action: STS_ACTION.into(),
        date: param("X-Amz-Date")?,
        expiration_duration: param("X-Amz-Expires")?,
        access_key_id: creds.access_key_id().into(),
        signature,
        signed_headers: param("X-Amz-SignedHeaders")?
            .split(';')
            .map(str::to_string)
            .collect(),
        version: STS_VERSION.into(),
        algorithm: param("X-Amz-Algorithm")?,
        security_token: creds.session_token().map(str::to_string),
    };
    Ok(token.encode())
}

/// A lower-case DNS name, optionally with `:port`.
pub fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    valid_dns_name(name)
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An AWS region name (`us-east-1`): lower-case letters, digits and `-`.
pub fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A server id: 1..256 visible ASCII characters (it is a signed header value).
pub fn check_server_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 256 {
        return Err("must be 1..256 characters".into());
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII without spaces (it is sent as a signed header)".into());
    }
    Ok(())
}

/// At most 64 characters of `s`, control characters replaced (for error messages).
pub fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
