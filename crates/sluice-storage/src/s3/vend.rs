//! Short-lived S3 credentials scoped to one table (STS AssumeRole with a session policy, or
//! Cloudflare's API for R2).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::config::{BehaviorVersion, IdentityCache, Region, SharedHttpClient};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde_json::{json, Value};
use sluice_core::Secret;

use crate::error::{Result, StorageError};
use crate::profile::S3Profile;
use crate::s3::access::Vendor;
use crate::s3::backend::S3Backend;

const STS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STS_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The role passed to s3-compat stores when the profile names none. MinIO's AssumeRole
/// ignores the role and scopes the session to the calling user (intersected with the session
/// policy), but the AWS SDK and other stores insist on a syntactically valid ARN.
pub const PLACEHOLDER_ROLE_ARN: &str = "arn:minio:iam:::role/sluice";

pub use crate::delegation::AccessLevel;

/// Temporary credentials from STS. `Debug` shows only the access key id.
#[derive(Clone)]
pub struct VendedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: chrono::DateTime<chrono::Utc>,
}

impl fmt::Debug for VendedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// IAM policy wildcards (`*`, `?`) and variable syntax (`$`) in an object key must not act
/// as such: a table at `s3://b/t*` must not grant `s3://b/t1`. IAM's escapes for them are
/// the policy variables `${*}`, `${?}` and `${$}`.
fn escape_policy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// The ARN partition of the role the profile assumes (`aws`, `aws-cn`, `aws-us-gov`), so
/// resources in China and GovCloud match; `aws` when there is none (MinIO accepts it).
fn partition(profile: &S3Profile) -> &str {
    profile
        .sts_role_arn
        .as_deref()
        .or(profile.assume_role_arn.as_deref())
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| p.starts_with("aws"))
        .unwrap_or("aws")
}

/// The key prefix of `table_location` when it is a location in the profile's bucket.
fn table_key<'a>(profile: &S3Profile, table_location: &'a str) -> Option<&'a str> {
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| table_location.strip_prefix(scheme))?;
    let key = rest
        .strip_prefix(profile.bucket.as_str())?
        .strip_prefix('/')?
        .trim_matches('/');
    (!key.is_empty()).then_some(key)
}

/// The session policy for credentials on one table: objects below the table's key prefix,
/// listing that prefix, and the bucket's location. The effective rights are the
/// intersection with the role's own policy.
///
/// `table_location` must be a location inside the profile's bucket below its root
/// (`s3://bucket/key…`); for anything else the policy denies everything, so a caller's
/// mistake can never widen access. Kept compact because AssumeRole limits the packed
/// policy size (roughly 2 KiB of JSON), which table locations of several hundred bytes can
/// reach since the key appears three times.
pub fn session_policy(profile: &S3Profile, table_location: &str, level: AccessLevel) -> Value {
    let Some(key) = table_key(profile, table_location) else {
        return json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]
        });
    };
    let part = partition(profile);
    let bucket_arn = format!("arn:{part}:s3:::{}", profile.bucket);
    let key = escape_policy(key);
    let mut object_actions = vec!["s3:GetObject", "s3:GetObjectVersion"];
    if level == AccessLevel::ReadWrite {
        object_actions.extend([
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ]);
        if profile.delete_enabled() {
            object_actions.push("s3:DeleteObject");
        }
    }
    let mut statements = vec![
        json!({
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": format!("{bucket_arn}/{key}/*"),
        }),
        json!({
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [key.clone(), format!("{key}/*")]}},
        }),
        json!({
            "Effect": "Allow",
            "Action": "s3:GetBucketLocation",
            "Resource": bucket_arn,
        }),
    ];
    // With SSE-KMS the object calls also need the key; a session policy without it would
    // cut that permission from the role.
    if let Some(kms) = &profile.aws_kms_key_arn {
        let kms_actions = match level {
            AccessLevel::Read => json!("kms:Decrypt"),
            AccessLevel::ReadWrite => json!(["kms:Decrypt", "kms:GenerateDataKey"]),
        };
        statements.push(json!({"Effect": "Allow", "Action": kms_actions, "Resource": kms}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// STS's RoleSessionName: 2-64 characters of `[\w+=,.@-]`. Other characters become '-'.
fn role_session_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if s.len() < 2 {
        s = format!("sluice{s}");
    }
    s
}

/// The HTTPS client for one storage's STS calls. Per storage rather than process-wide:
/// pooled connections belong to the tokio runtime that opened them, and the service keeps
/// one `Storage` per warehouse anyway. ring rather than aws-lc keeps the build free of a C
/// toolchain requirement; root certificates are loaded once per process by the connector.
pub(crate) fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An STS client for `endpoint` (see [`S3Profile::sts_endpoint`]) that signs with
/// `credentials`. The SDK's identity cache is off: static keys need none, and the server's
/// own identity is cached (and refreshed ahead of expiry) by its provider.
pub(crate) fn sts_client(
    region: &str,
    endpoint: Option<String>,
    credentials: impl ProvideCredentials + 'static,
) -> Result<aws_sdk_sts::Client> {
    let endpoint = endpoint.ok_or_else(|| {
        StorageError::Invalid(
            "no STS endpoint: set sts-endpoint (or endpoint for s3-compat storage)".into(),
        )
    })?;
    let timeouts = aws_sdk_sts::config::timeout::TimeoutConfig::builder()
        .connect_timeout(STS_CONNECT_TIMEOUT)
        .operation_timeout(STS_OPERATION_TIMEOUT)
        .build();
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .identity_cache(IdentityCache::no_cache())
        .http_client(http_client())
        .timeout_config(timeouts)
        .build();
    Ok(aws_sdk_sts::Client::from_conf(config))
}

/// One AssumeRole call.
pub(crate) struct RoleRequest<'a> {
    pub role_arn: &'a str,
    /// Made STS-safe here.
    pub session_name: &'a str,
    /// STS's default (one hour) when `None`.
    pub duration_seconds: Option<i32>,
    pub policy: Option<String>,
    pub external_id: Option<&'a str>,
}

/// Calls AssumeRole; failures become `StorageError::Sts` with STS's code and message.
pub(crate) async fn assume_role(
    client: &aws_sdk_sts::Client,
    req: RoleRequest<'_>,
) -> Result<VendedCredentials> {
    let out = client
        .assume_role()
        .role_arn(req.role_arn)
        .role_session_name(role_session_name(req.session_name))
        .set_duration_seconds(req.duration_seconds)
        .set_policy(req.policy)
        .set_external_id(req.external_id.map(str::to_string))
        .send()
        .await
        .map_err(|err| {
            let raw = err.raw_response();
            let status = raw.map(|r| r.status().as_u16());
            let body = raw
                .and_then(|r| r.body().bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned());
            sts_error(err, status, body)
        })?;
    let creds = out
        .credentials()
        .ok_or_else(|| StorageError::Sts("AssumeRole returned no credentials".into()))?;
    let exp = creds.expiration();
    let expiration = chrono::DateTime::from_timestamp(exp.secs(), exp.subsec_nanos())
        .ok_or_else(|| StorageError::Sts("AssumeRole returned an invalid expiration".into()))?;
    Ok(VendedCredentials {
        access_key_id: creds.access_key_id().to_string(),
        secret_access_key: Secret::new(creds.secret_access_key()),
        session_token: Secret::new(creds.session_token()),
        expiration,
    })
}

/// STS's error code and message, or the transport failure. Never contains the request
/// (which carries the signature), only what STS or the connector said. Error bodies the SDK
/// cannot parse (some STS emulations wrap `<Error>` in `<Errors>`) are searched for
/// `<Code>`/`<Message>` directly.
fn sts_error<E, R>(err: SdkError<E, R>, status: Option<u16>, body: Option<String>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let msg = match &err {
        SdkError::ServiceError(_) => {
            let body = body.unwrap_or_default();
            let code = err
                .code()
                .map(str::to_string)
                .or_else(|| xml_element(&body, "Code"));
            let message = err
                .message()
                .map(str::to_string)
                .or_else(|| xml_element(&body, "Message"));
            match (code, message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c,
                (None, _) => format!(
                    "HTTP {} without an error code",
                    status.map_or("?".to_string(), |s| s.to_string())
                ),
            }
        }
        SdkError::TimeoutError(_) => format!(
            "no answer from STS within {}s",
            STS_OPERATION_TIMEOUT.as_secs()
        ),
        _ => DisplayErrorContext(&err).to_string(),
    };
    StorageError::Sts(msg)
}

/// The unescaped text of the first `<tag>` element, for error bodies only.
fn xml_element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    let text = quick_xml::escape::unescape(&xml[start..end]).ok()?;
    Some(text.trim().chars().take(1000).collect())
}

impl S3Backend {
    /// Temporary credentials limited to `table_location` and `level`.
    ///
    /// Needs `sts-enabled` (else `Invalid`) and a location below the warehouse (never the
    /// bucket root). Valid for `sts-token-validity-seconds`.
    ///
    /// - AWS and S3-compatible stores: assumes the profile's role with a session policy
    ///   limited to the table ([`session_policy`]). The role is `sts-role-arn`, else
    ///   `assume-role-arn`, else (s3-compat only) [`PLACEHOLDER_ROLE_ARN`]; the credential's
    ///   `external-id` is passed when set. STS is called with the storage's own identity:
    ///   the stored keys, or for `aws-system-identity` the server's credentials (after
    ///   assuming `assume-role-arn`, so vending from that same role is role chaining,
    ///   which AWS caps at one hour).
    /// - `cloudflare-r2`: Cloudflare's temp-access-credentials API, limited to the bucket
    ///   and the table's key prefix.
    ///
    /// `session_name` is made STS-safe (shows up in CloudTrail; use the user name).
    /// STS and Cloudflare failures become `StorageError::Sts` with their code and message.
    pub(crate) async fn vend_credentials(
        &self,
        table_location: &str,
        level: AccessLevel,
        session_name: &str,
    ) -> Result<VendedCredentials> {
        let (profile, access) = (&self.profile, &*self.access);
        if !profile.sts_enabled {
            return Err(StorageError::Invalid(
                "sts-enabled is false for this warehouse's storage profile, so it cannot vend \
                 credentials; enable STS on the profile or use remote signing"
                    .into(),
            ));
        }
        let location = profile.normalize_location(table_location)?;
        let Some(key) = table_key(profile, &location) else {
            return Err(StorageError::Invalid(format!(
                "cannot vend credentials for the bucket root ({location})"
            )));
        };
        if let Vendor::CloudflareR2(r2) = access.vendor() {
            return r2
                .temp_credentials(
                    &profile.bucket,
                    key,
                    level,
                    profile.sts_token_validity_seconds,
                )
                .await;
        }
        let policy = session_policy(profile, &location, level).to_string();
        let role = profile
            .sts_role_arn
            .as_deref()
            .or(profile.assume_role_arn.as_deref())
            .unwrap_or(PLACEHOLDER_ROLE_ARN);
        let duration = i32::try_from(profile.sts_token_validity_seconds).map_err(|_| {
            StorageError::Invalid("sts-token-validity-seconds is out of range".into())
        })?;
        assume_role(
            access.sts_client(profile)?,
            RoleRequest {
                role_arn: role,
                session_name,
                duration_seconds: Some(duration),
                policy: Some(policy),
                external_id: access.external_id(),
            },
        )
        .await
    }
}

/// Iceberg client properties for vended credentials (PyIceberg and Java `S3FileIO` names).
/// Contains the secret: for the load-table/credentials response only, never for logs.
pub fn vended_config(profile: &S3Profile, creds: &VendedCredentials) -> HashMap<String, String> {
    let mut cfg = HashMap::from([
        ("s3.access-key-id".to_string(), creds.access_key_id.clone()),
        (
            "s3.secret-access-key".to_string(),
            creds.secret_access_key.expose().to_string(),
        ),
        (
            "s3.session-token".to_string(),
            creds.session_token.expose().to_string(),
        ),
        (
            "s3.session-token-expires-at-ms".to_string(),
            creds.expiration.timestamp_millis().to_string(),
        ),
        ("s3.region".to_string(), profile.region.clone()),
        ("client.region".to_string(), profile.region.clone()),
        (
            "s3.path-style-access".to_string(),
            profile.path_style_access.to_string(),
        ),
    ]);
    if let Some(ep) = profile.endpoint_trimmed() {
        cfg.insert("s3.endpoint".to_string(), ep.to_string());
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::S3Flavor;

    fn profile() -> S3Profile {
        let mut p = S3Profile::new("bkt", "eu-west-1");
        p.sts_enabled = true;
        p.sts_role_arn = Some("arn:aws:iam::123456789012:role/lake".into());
        p
    }

    fn statement<'a>(policy: &'a Value, action: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["Action"] == action
                    || s["Action"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == action))
            })
            .unwrap_or_else(|| panic!("no statement with {action} in {policy}"))
    }

    fn actions(policy: &Value) -> Vec<String> {
        statement(policy, "s3:GetObject")["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn read_policy() {
        let p = session_policy(&profile(), "s3://bkt/wh/ns/t", AccessLevel::Read);
        assert_eq!(p["Version"], "2012-10-17");
        assert_eq!(actions(&p), ["s3:GetObject", "s3:GetObjectVersion"]);
        let obj = statement(&p, "s3:GetObject");
        assert_eq!(obj["Effect"], "Allow");
        assert_eq!(obj["Resource"], "arn:aws:s3:::bkt/wh/ns/t/*");
        let list = statement(&p, "s3:ListBucket");
        assert_eq!(list["Resource"], "arn:aws:s3:::bkt");
        assert_eq!(
            list["Condition"],
            json!({"StringLike": {"s3:prefix": ["wh/ns/t", "wh/ns/t/*"]}})
        );
        assert_eq!(
            statement(&p, "s3:GetBucketLocation")["Resource"],
            "arn:aws:s3:::bkt"
        );
        assert_eq!(p["Statement"].as_array().unwrap().len(), 3);
        let text = p.to_string();
        assert!(!text.contains("PutObject") && !text.contains("DeleteObject"));
        assert!(text.len() < 600, "compact: {} bytes", text.len());
    }

    #[test]
    fn read_write_policy_respects_delete_flag() {
        let mut prof = profile();
        let p = session_policy(&prof, "s3://bkt/wh/ns/t/", AccessLevel::ReadWrite);
        assert_eq!(
            actions(&p),
            [
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts"
            ]
        );
        assert_eq!(
            statement(&p, "s3:PutObject")["Resource"],
            "arn:aws:s3:::bkt/wh/ns/t/*"
        );
        prof.push_s3_delete_disabled = false;
        let p = session_policy(&prof, "s3://bkt/wh/ns/t", AccessLevel::ReadWrite);
        assert!(actions(&p).contains(&"s3:DeleteObject".to_string()));
        let p = session_policy(&prof, "s3://bkt/wh/ns/t", AccessLevel::Read);
        assert!(!actions(&p).contains(&"s3:DeleteObject".to_string()));
    }

    #[test]
    fn partitions_kms_and_escaping() {
        let mut prof = profile();
        prof.sts_role_arn = Some("arn:aws-cn:iam::123456789012:role/lake".into());
        prof.aws_kms_key_arn = Some("arn:aws-cn:kms:cn-north-1:123456789012:key/k".into());
        let p = session_policy(&prof, "s3://bkt/a*b?c$d", AccessLevel::ReadWrite);
        assert_eq!(
            statement(&p, "s3:GetObject")["Resource"],
            "arn:aws-cn:s3:::bkt/a${*}b${?}c${$}d/*"
        );
        assert_eq!(
            statement(&p, "kms:GenerateDataKey")["Resource"],
            "arn:aws-cn:kms:cn-north-1:123456789012:key/k"
        );
        let p = session_policy(&prof, "s3://bkt/t", AccessLevel::Read);
        assert_eq!(statement(&p, "kms:Decrypt")["Action"], "kms:Decrypt");

        prof.sts_role_arn = None;
        prof.assume_role_arn = Some("arn:aws-us-gov:iam::123456789012:role/x".into());
        let p = session_policy(&prof, "s3://bkt/t", AccessLevel::Read);
        assert_eq!(
            statement(&p, "s3:ListBucket")["Resource"],
            "arn:aws-us-gov:s3:::bkt"
        );
        prof.assume_role_arn = None;
        prof.flavor = S3Flavor::S3Compat;
        let p = session_policy(&prof, "s3://bkt/t", AccessLevel::Read);
        assert_eq!(
            statement(&p, "s3:ListBucket")["Resource"],
            "arn:aws:s3:::bkt"
        );
    }

    #[test]
    fn foreign_locations_get_a_deny_all_policy() {
        let deny = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]});
        for loc in [
            "s3://other/wh/t",
            "s3://bkt",
            "s3://bkt/",
            "s3://bkt2/t",
            "gs://bkt/t",
            "bkt/t",
        ] {
            assert_eq!(
                session_policy(&profile(), loc, AccessLevel::Read),
                deny,
                "{loc}"
            );
        }
    }

    #[test]
    fn error_bodies() {
        let body = "<ErrorResponse><Errors><Error><Code>AccessDenied</Code>\
                    <Message>User: a &amp; b</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(xml_element(body, "Message").as_deref(), Some("User: a & b"));
        assert_eq!(xml_element(body, "Nope"), None);
        assert_eq!(xml_element("<Code>unterminated", "Code"), None);
    }

    #[test]
    fn session_names() {
        assert_eq!(
            role_session_name("sluice-alice@example.org"),
            "sluice-alice@example.org"
        );
        assert_eq!(role_session_name("a b/c:d"), "a-b-c-d");
        assert_eq!(role_session_name(""), "sluice");
        assert_eq!(role_session_name("x"), "sluicex");
        assert_eq!(role_session_name(&"ä".repeat(100)).len(), 64);
    }

    #[test]
    fn config_and_debug() {
        let creds = VendedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret"),
            session_token: Secret::new("token-secret"),
            expiration: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let dbg = format!("{creds:?}");
        assert!(
            dbg.contains("ASIAEXAMPLE")
                && !dbg.contains("very-secret")
                && !dbg.contains("token-secret"),
            "{dbg}"
        );
        let mut prof = profile();
        let cfg = vended_config(&prof, &creds);
        assert_eq!(cfg["s3.access-key-id"], "ASIAEXAMPLE");
        assert_eq!(cfg["s3.secret-access-key"], "very-secret");
        assert_eq!(cfg["s3.session-token"], "token-secret");
        assert_eq!(cfg["s3.session-token-expires-at-ms"], "1700000000000");
        assert_eq!(cfg["s3.region"], "eu-west-1");
        assert_eq!(cfg["client.region"], "eu-west-1");
        assert_eq!(cfg["s3.path-style-access"], "false");
        assert!(!cfg.contains_key("s3.endpoint"));
        prof.endpoint = Some("http://127.0.0.1:9000/".into());
        prof.path_style_access = true;
        let cfg = vended_config(&prof, &creds);
        assert_eq!(cfg["s3.endpoint"], "http://127.0.0.1:9000");
        assert_eq!(cfg["s3.path-style-access"], "true");
        assert_eq!(cfg.len(), 8);
    }
}
