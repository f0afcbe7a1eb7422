//! Google Cloud Storage warehouses: the `gcs` profile and credential, object access through
//! `object_store` with the server's own OAuth2 access token, and per-table downscoped tokens
//! from Google's STS token exchange with a Credential Access Boundary.

pub(crate) mod access;
mod backend;
mod store;
pub(crate) mod token;
pub(crate) mod vend;

use serde::{Deserialize, Serialize, Serializer};
use sluice_core::Secret;

use crate::error::StorageError;
use crate::rules;

pub(crate) use backend::GcsBackend;
pub use vend::access_boundary;

/// Google's STS token-exchange endpoint, the default of
/// [`crate::StorageSettings::gcs_sts_endpoint`].
pub const DEFAULT_GCS_STS_ENDPOINT: &str = "https://sts.googleapis.com/v1/token";
/// The OAuth2 token endpoint a service-account key without `token_uri` uses.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Where object_store sends GCS JSON API requests unless an emulator is configured.
pub const DEFAULT_GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// A GCS bucket, optionally below a key prefix (`gs://<bucket>/<key-prefix>`), in
/// Lakekeeper's wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GcsProfile {
    pub bucket: String,
    /// Normalized on input: no leading/trailing '/'; `None` for the bucket root.
    #[serde(
        default,
        deserialize_with = "crate::profile::de_key_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_prefix: Option<String>,
}

impl GcsProfile {
    pub fn new(bucket: impl Into<String>, key_prefix: Option<&str>) -> Self {
        GcsProfile {
            bucket: bucket.into(),
            key_prefix: key_prefix.map(str::to_string),
        }
    }

    /// The key prefix without surrounding '/', or "" for the bucket root.
    pub fn prefix(&self) -> &str {
        self.key_prefix.as_deref().unwrap_or("").trim_matches('/')
    }

    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let inv = StorageError::Invalid;
        check_bucket_name(&self.bucket).map_err(inv)?;
        if let Some(p) = &self.key_prefix {
            rules::normalize_key_prefix(p).map_err(inv)?;
        }
        Ok(())
    }
}

/// GCS bucket naming rules, as far as they matter for locations and boundaries.
/// <https://cloud.google.com/storage/docs/buckets#naming>
pub fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("bucket: invalid GCS bucket name '{bucket}': {why}"));
    let dotted = bucket.contains('.');
    let max = if dotted { 222 } else { 63 };
    if bucket.len() < 3 || bucket.len() > max {
        return fail("must be 3-63 characters long (up to 222 with dots)");
    }
    if !bucket.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
    }) {
        return fail("may contain only lowercase letters, digits, '-', '_' and '.'");
    }
    let (first, last) = (bucket.as_bytes()[0], bucket.as_bytes()[bucket.len() - 1]);
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must begin and end with a letter or digit");
    }
    if dotted && bucket.split('.').any(|c| c.is_empty() || c.len() > 63) {
        return fail("each dot-separated component must be 1-63 characters");
    }
    if bucket.split('.').count() == 4
        && bucket
            .split('.')
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return fail("must not be formatted as an IP address");
    }
    if bucket.starts_with("goog") || bucket.contains("google") {
        return fail("must not begin with 'goog' or contain 'google'");
    }
    Ok(())
}

/// Credentials for a GCS warehouse, in Lakekeeper's wire format:
/// `{"type":"gcs","credential-type":"service-account-key","key":{…the JSON key…}}` or
/// `{"type":"gcs","credential-type":"gcp-system-identity"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "credential-type",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum GcsCredential {
    /// A service account's JSON key as downloaded from Google Cloud.
    ServiceAccountKey {
        #[serde(deserialize_with = "de_service_account_key")]
        key: Box<ServiceAccountKey>,
    },
    /// The server's application-default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's well-known file, or the metadata server). Nothing secret is stored; allowed
    /// only when the server sets `enable_gcp_system_credentials`, because it lets anybody who
    /// may create a warehouse act with the server's Google identity.
    GcpSystemIdentity {},
}

/// A Google service-account JSON key (`"type": "service_account"`). Field names are
/// Google's own (snake_case). `private_key` is a [`Secret`]: `Debug` hides it and only the
/// at-rest serialization writes it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub key_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    #[serde(serialize_with = "serialize_secret")]
    pub private_key: Secret,
    pub client_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider_x509_cert_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_x509_cert_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe_domain: Option<String>,
}

/// The key as a JSON object, or as the key file's text in a string (what a form upload
/// gives). Errors name the `key` field, which serde's tagged enums would otherwise lose.
fn de_service_account_key<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Box<ServiceAccountKey>, D::Error> {
    use serde::de::Error;
    let v = serde_json::Value::deserialize(d)?;
    let v = match v {
        serde_json::Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| D::Error::custom(format!("key: not a service-account JSON key: {e}")))?,
        other => other,
    };
    serde_json::from_value(v)
        .map_err(|e| D::Error::custom(format!("key: {e}")))
        .map(Box::new)
}

fn serialize_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

impl ServiceAccountKey {
    /// The OAuth2 endpoint for the JWT-bearer grant.
    pub fn token_uri(&self) -> &str {
        self.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI)
    }

    /// Checks the key is a usable service-account key: the right type, an email, an RSA
    /// private key that can sign RS256, and a token endpoint over https (http only to the
    /// loopback, for local stand-ins). Messages name the field and never quote the key.
    pub fn validate(&self) -> Result<(), StorageError> {
        let inv = |m: String| Err(StorageError::Invalid(m));
        if self.key_type != "service_account" {
            return inv(format!(
                "key.type must be 'service_account', not '{}'",
                self.key_type.chars().take(64).collect::<String>()
            ));
        }
        let e = &self.client_email;
        if e.is_empty()
            || e.len() > 320
            || !e.contains('@')
            || !e.bytes().all(|b| b.is_ascii_graphic())
        {
            return inv("key.client_email must be a service account's email address".into());
        }
        if let Some(id) = &self.private_key_id {
            if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return inv("key.private_key_id must be at most 128 printable characters".into());
            }
        }
        if let Some(p) = &self.project_id {
            if p.is_empty() || p.len() > 128 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                return inv("key.project_id must be 1-128 printable characters".into());
            }
        }
        token::signing_key(self)?;
        check_token_uri("key.token_uri", self.token_uri())?;
        Ok(())
    }
}

/// An OAuth2 endpoint the server will POST a signed assertion to: https, or plain http to a
/// loopback address only (local stand-ins), never with user info.
pub(crate) fn check_token_uri(field: &str, uri: &str) -> Result<(), StorageError> {
    let inv = |m: &str| Err(StorageError::Invalid(format!("{field} '{uri}' {m}")));
    let Ok(url) = url::Url::parse(uri) else {
        return inv("is not a valid URL");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return inv("must not contain user info");
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return inv("has no host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => inv("must be an https URL (plain http only to a loopback address)"),
    }
}

impl GcsCredential {
    pub fn validate(&self) -> Result<(), StorageError> {
        match self {
            GcsCredential::ServiceAccountKey { key } => key.validate(),
            GcsCredential::GcpSystemIdentity {} => Ok(()),
        }
    }

    pub fn credential_type(&self) -> &'static str {
        match self {
            GcsCredential::ServiceAccountKey { .. } => "service-account-key",
            GcsCredential::GcpSystemIdentity {} => "gcp-system-identity",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket_1", "a.b.c", "0bucket9"] {
            check_bucket_name(ok).unwrap();
        }
        for bad in [
            "ab",
            "Upper",
            "-abc",
            "abc-",
            "a..b",
            "goog-x",
            "my-google-bucket",
            "1.2.3.4",
            "a b",
            "a/b",
            &"a".repeat(64),
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.starts_with("bucket:"), "{e}");
        }
        assert!(check_bucket_name(&format!("{}.{}", "a".repeat(63), "b".repeat(63))).is_ok());
    }

    fn gcs(bucket: &str, prefix: Option<&str>) -> crate::StorageProfile {
        crate::StorageProfile::Gcs(GcsProfile::new(bucket, prefix))
    }

    #[test]
    fn profile_serde_locations_and_overlap() {
        let p: crate::StorageProfile = serde_json::from_value(
            serde_json::json!({"type": "gcs", "bucket": "bkt", "key-prefix": "/wh/a/"}),
        )
        .unwrap();
        assert_eq!(p, gcs("bkt", Some("wh/a")));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"type": "gcs", "bucket": "bkt", "key-prefix": "wh/a"})
        );
        let e = serde_json::from_value::<crate::StorageProfile>(
            serde_json::json!({"type": "gcs", "bucket": "b", "region": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("region"), "{e}");
        assert_eq!(p.base_location(), "gs://bkt/wh/a");
        assert_eq!(gcs("bkt", None).base_location(), "gs://bkt");

        let ok = |l: &str| p.normalize_location(l).unwrap();
        assert_eq!(ok("gs://bkt/wh/a/ns/t/"), "gs://bkt/wh/a/ns/t");
        assert_eq!(ok("GS://bkt/wh/a"), "gs://bkt/wh/a");
        for outside in [
            "gs://bkt/wh/ab",
            "gs://other/wh/a/t",
            "s3://bkt/wh/a/t",
            "gcs://bkt/wh/a/t",
            "/bkt/wh/a",
        ] {
            assert!(
                matches!(
                    p.normalize_location(outside),
                    Err(StorageError::NotInWarehouse(_))
                ),
                "{outside}"
            );
        }
        assert!(matches!(
            p.normalize_location("gs://bkt/wh/a/../b"),
            Err(StorageError::Invalid(_))
        ));

        assert!(gcs("b", Some("x")).overlaps(&gcs("b", Some("x/y"))));
        assert!(gcs("b", None).overlaps(&gcs("b", Some("x"))));
        assert!(!gcs("b", Some("x")).overlaps(&gcs("b", Some("xy"))));
        assert!(!gcs("b", None).overlaps(&gcs("c", None)));
        let s3 = crate::StorageProfile::S3(crate::S3Profile::new("b", "r"));
        assert!(!gcs("b", None).overlaps(&s3) && !s3.overlaps(&gcs("b", None)));
        assert!(gcs("b", None).vends_credentials() && !gcs("b", None).needs_no_credentials());
        assert!(gcs("b", None).table_config().is_empty());
    }

    #[test]
    fn token_uris() {
        check_token_uri("f", "https://oauth2.googleapis.com/token").unwrap();
        check_token_uri("f", "http://127.0.0.1:9/token").unwrap();
        check_token_uri("f", "http://localhost:9/token").unwrap();
        check_token_uri("f", "http://[::1]:9/token").unwrap();
        for bad in [
            "http://example.com/token",
            "ftp://127.0.0.1/x",
            "https://u:p@x/t",
            "nope",
        ] {
            let e = check_token_uri("key.token_uri", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("key.token_uri"), "{e}");
        }
    }
}
