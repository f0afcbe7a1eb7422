//! Remote signing of S3 requests (the Iceberg REST `S3SignRequest`/`S3SignResponse`).
//!
//! The client describes the request it is about to send; the server decides which objects it
//! touches ([`S3Profile::resolve_sign_target`]), the caller authorizes that, and
//! [`crate::Storage::sign`] signs it with the warehouse's key. The client never sees the key, and the
//! signature covers method, URI and headers, so the signed request cannot be redirected to
//! other objects.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign as sigv4_sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SigningSettings, UriPathNormalizationMode,
};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, StorageError};
use crate::profile::{RemoteSigningUrlStyle, S3Flavor, S3Profile};
use crate::rules;
use crate::s3::backend::S3Backend;

/// The Iceberg REST spec's `S3SignRequest`.
#[derive(Debug, Clone, Deserialize)]
pub struct SignRequest {
    pub method: String,
    /// The region the client believes it talks to. Ignored: the profile's region is used.
    pub region: String,
    pub uri: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Only sent for requests whose targets are in the body (DeleteObjects).
    #[serde(default)]
    pub body: Option<String>,
}

/// The Iceberg REST spec's `S3SignResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct SignedRequest {
    pub uri: String,
    pub headers: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Operation {
    Read,
    Write,
    Delete,
}

/// What a request does, for the caller's authorization check.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetObject {
    pub operation: S3Operation,
    /// Canonical `s3://bucket/key` locations the request touches: one for object
    /// operations, the list prefix for listings (`s3://bucket/<prefix>` verbatim, so it may
    /// end in '/' or be just `s3://bucket`), every key of a DeleteObjects body.
    pub locations: Vec<String>,
}

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// S3's limit for one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

/// Query parameters of the bucket-level GET/HEAD requests we sign: the listings and
/// GetBucketLocation. Anything else on the bucket (policy, acl, lifecycle, …) is refused.
const BUCKET_READ_PARAMS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "marker",
    "versions",
    "key-marker",
    "version-id-marker",
    "uploads",
    "upload-id-marker",
    "max-uploads",
    "location",
    "x-id",
];

/// Object subresources whose modification changes who may access the object or how long
/// it must be kept: never delegated, whatever table permissions the caller has.
const FORBIDDEN_OBJECT_WRITES: &[&str] = &["acl", "retention", "legal-hold"];

/// Canned ACLs that grant nobody outside the bucket owner anything.
const HARMLESS_CANNED_ACLS: &[&str] = &["private", "bucket-owner-full-control"];

/// A request analysed once, for both the target and the signature.
struct Analysed {
    target: TargetObject,
    /// The DeleteObjects body, whose hash is signed so the keys checked are the keys
    /// deleted.
    delete_body: Option<String>,
}

/// A request checked against the profile it is to be signed for; only such a request is
/// signed, so nothing outside the profile's bucket is.
pub struct CheckedRequest<'a> {
    profile: &'a S3Profile,
    req: &'a SignRequest,
    analysed: Analysed,
}

impl CheckedRequest<'_> {
    /// The objects the request touches, for the caller to authorize before signing.
    pub fn target(&self) -> &TargetObject {
        &self.analysed.target
    }
}

/// The pieces of a request URI, split by hand rather than with a URL library: the signature
/// is computed over the URI exactly as sent, so normalization (dot segments, backslashes)
/// by a parser here would let the checked target differ from the signed one.
struct RawUri<'a> {
    host: String,
    /// Explicit port, or the scheme's default.
    port: u16,
    /// Raw path, '' or starting with '/'.
    path: &'a str,
    query: &'a str,
}

fn invalid(msg: impl Into<String>) -> StorageError {
    StorageError::Invalid(msg.into())
}

fn split_uri(uri: &str) -> Result<RawUri<'_>> {
    let bad = |why: &str| invalid(format!("cannot sign '{uri}': {why}"));
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| bad("not an absolute http(s) URI"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if rest.contains('#') {
        return Err(bad("URIs with a fragment are not signed"));
    }
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    if authority.is_empty()
        || !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err(bad("invalid host"));
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or_else(|| bad("invalid host"))?;
        let (h, p) = authority.split_at(close + 1);
        (h, p.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
    };
    if host.is_empty() {
        return Err(bad("invalid host"));
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    Ok(RawUri {
        host: host.to_ascii_lowercase(),
        port,
        path,
        query,
    })
}

/// Every bucket name a request URI could address under any S3 profile: each prefix of the
/// host that ends at a label boundary (virtual-host style, whatever the endpoint) and each
/// percent-decoded path segment (path style, below any endpoint base path). A profile whose
/// bucket is not among them cannot accept the URI, so the unscoped signer only analyses the
/// request against warehouses whose bucket is. Empty for a URI no profile accepts.
pub fn bucket_candidates(uri: &str) -> Vec<String> {
    let Ok(raw) = split_uri(uri) else {
        return Vec::new();
    };
    let mut out: Vec<String> = raw
        .host
        .match_indices('.')
        .map(|(i, _)| raw.host[..i].to_string())
        .collect();
    out.extend(
        raw.path
            .split('/')
            .filter(|s| !s.is_empty())
            .filter_map(|s| decode(s, "bucket").ok()),
    );
    out
}

/// (host, port, base path) of a custom endpoint URL, parsed with `url` (which normalizes the
/// host as clients do). The last endpoint is remembered per thread: a signer analyses every
/// request against the same few endpoints, and parsing one was a tenth of the analysis.
fn endpoint_parts(ep: &str) -> Result<std::sync::Arc<(String, u16, String)>> {
    type Parts = std::sync::Arc<(String, u16, String)>;
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, Parts)>> = const { std::cell::RefCell::new(None) };
    }
    if let Some(parts) = LAST.with_borrow(|last| {
        last.as_ref()
            .filter(|(e, _)| e == ep)
            .map(|(_, p)| p.clone())
    }) {
        return Ok(parts);
    }
    let url = url::Url::parse(ep)
        .map_err(|e| invalid(format!("endpoint '{ep}' is not a valid URL: {e}")))?;
    let parts: Parts = std::sync::Arc::new((
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0),
        url.path().trim_matches('/').to_string(),
    ));
    LAST.set(Some((ep.to_string(), parts.clone())));
    Ok(parts)
}

/// Host names under which AWS serves S3 for `region`, without the bucket.
fn is_aws_s3_host(host: &str, region: &str) -> bool {
    let Some(label) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    if label == "s3" || (label == "s3-external-1" && region == "us-east-1") {
        return true;
    }
    let region = region.to_ascii_lowercase();
    [
        format!("s3.{region}"),
        format!("s3-{region}"),
        format!("s3.dualstack.{region}"),
        format!("s3-fips.{region}"),
        format!("s3-fips.dualstack.{region}"),
    ]
    .iter()
    .any(|l| l == label)
}

fn decode(raw: &str, what: &str) -> Result<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(format!("{what} is not valid UTF-8 after percent-decoding")))
}

/// Object keys must be plain relative paths, as warehouse locations are: a key that some
/// layer could normalize (`a/../b`) might address another table than the one checked. A
/// single trailing '/' (directory marker objects) is allowed.
fn check_key(key: &str) -> Result<()> {
    if key.len() > 1024 {
        return Err(invalid("object key longer than 1024 bytes"));
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    rules::check_segments(body).map_err(|e| invalid(format!("object key '{key}' {e}")))
}

fn location(bucket: &str, key: &str) -> String {
    if key.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{key}")
    }
}

fn header_values<'a>(req: &'a SignRequest, name: &str) -> Vec<&'a str> {
    req.headers
        .iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(|s| s.trim()))
        .collect()
}

#[derive(Deserialize)]
struct DeleteXml {
    #[serde(rename = "Object", default)]
    objects: Vec<DeleteObjectXml>,
}

#[derive(Deserialize)]
struct DeleteObjectXml {
    #[serde(rename = "Key")]
    key: String,
}

fn delete_keys(body: &str) -> Result<Vec<String>> {
    let parsed: DeleteXml = quick_xml::de::from_str(body).map_err(|e| {
        invalid(format!(
            "DeleteObjects body is not a valid Delete document: {e}"
        ))
    })?;
    if parsed.objects.is_empty() {
        return Err(invalid("DeleteObjects body names no keys"));
    }
    if parsed.objects.len() > MAX_DELETE_KEYS {
        return Err(invalid(format!(
            "DeleteObjects body names more than {MAX_DELETE_KEYS} keys"
        )));
    }
    let keys: Vec<String> = parsed.objects.into_iter().map(|o| o.key).collect();
    for k in &keys {
        if k.is_empty() {
            return Err(invalid("DeleteObjects body contains an empty key"));
        }
        check_key(k)?;
    }
    Ok(keys)
}

impl S3Profile {
    /// Which objects a client request touches and how. Fails (`NotInWarehouse`) for another
    /// host or bucket and (`Invalid`) for malformed URIs, unsupported methods and requests
    /// that are never delegated: bucket configuration, ACL/retention changes, server-side
    /// copies (their source would go unchecked), signed chunked uploads.
    ///
    /// Only checks the bucket, not the warehouse key prefix or any table: that is the
    /// caller's authorization step, on the returned locations.
    pub fn resolve_sign_target(&self, req: &SignRequest) -> Result<TargetObject> {
        self.analyse(req).map(|a| a.target)
    }

    /// [`S3Profile::resolve_sign_target`], keeping the analysis for the signature: a caller
    /// that authorizes the target and then signs analyses the request once
    /// ([`sign_gateway_request`]).
    pub fn check_sign_request<'a>(&'a self, req: &'a SignRequest) -> Result<CheckedRequest<'a>> {
        Ok(CheckedRequest {
            profile: self,
            req,
            analysed: self.analyse(req)?,
        })
    }

    /// Matches the URI's host against this profile's endpoint (or AWS's S3 hosts) and
    /// returns (bucket as named by the URI, raw path below the bucket).
    fn split_bucket<'a>(&self, uri: &RawUri<'a>, raw: &str) -> Result<(String, &'a str)> {
        let not_ours = || {
            StorageError::NotInWarehouse(format!(
                "{raw} (host '{}' is not this warehouse's storage endpoint)",
                uri.host
            ))
        };
        // (host, port, base path) of the custom endpoint, if any.
        let endpoint = self.endpoint_trimmed().map(endpoint_parts).transpose()?;
        let endpoint = endpoint.as_deref();
        let aws_hosts = self.flavor == S3Flavor::Aws || endpoint.is_none();
        let default_port = uri.port == 80 || uri.port == 443;
        // Some(base path) when `host` is a service host for this profile.
        let service = |host: &str| -> Option<String> {
            if let Some((h, p, base)) = endpoint {
                if h == host && *p == uri.port {
                    return Some(base.clone());
                }
            }
            (aws_hosts && default_port && is_aws_s3_host(host, &self.region)).then(String::new)
        };
        let bucket_prefixed = uri
            .host
            .strip_prefix(&self.bucket)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(&service);
        let virtual_host = match self.remote_signing_url_style {
            RemoteSigningUrlStyle::VirtualHost => true,
            RemoteSigningUrlStyle::PathStyle => false,
            RemoteSigningUrlStyle::Auto => bucket_prefixed.is_some(),
        };
        let strip_base = |path: &'a str, base: &str| -> Result<&'a str> {
            if base.is_empty() {
                return Ok(path);
            }
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(base))
                .filter(|p| p.is_empty() || p.starts_with('/'))
                .ok_or_else(|| {
                    StorageError::NotInWarehouse(format!(
                        "{raw} (path is not below the endpoint's base path '/{base}')"
                    ))
                })
        };
        // Says what is wrong with a host that did not match, as precisely as possible.
        let host_error = || {
            let style = |s: &str| {
                StorageError::NotInWarehouse(format!(
                    "{raw} ({s} URIs are not accepted: remote-signing-url-style is {})",
                    if virtual_host {
                        "virtual-host"
                    } else {
                        "path-style"
                    }
                ))
            };
            if virtual_host && service(&uri.host).is_some() {
                return style("path-style");
            }
            if !virtual_host && bucket_prefixed.is_some() {
                return style("virtual-host style");
            }
            match uri
                .host
                .split_once('.')
                .filter(|(_, rest)| service(rest).is_some())
            {
                Some((b, _)) => StorageError::NotInWarehouse(format!(
                    "{raw} (bucket '{b}' is not the warehouse bucket '{}')",
                    self.bucket
                )),
                None => not_ours(),
            }
        };
        if virtual_host {
            let base = bucket_prefixed.clone().ok_or_else(host_error)?;
            let path = strip_base(uri.path, &base)?;
            Ok((self.bucket.clone(), path))
        } else {
            let base = service(&uri.host).ok_or_else(host_error)?;
            let path = strip_base(uri.path, &base)?;
            let rest = path.strip_prefix('/').unwrap_or(path);
            let (bucket, key) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let bucket = decode(bucket, "bucket")?;
            if bucket.is_empty() {
                return Err(invalid(format!(
                    "cannot sign '{raw}': a path-style URI must name the bucket"
                )));
            }
            Ok((bucket, key))
        }
    }

    fn analyse(&self, req: &SignRequest) -> Result<Analysed> {
        let raw = req.uri.as_str();
        let uri = split_uri(raw)?;
        let (bucket, key_path) = self.split_bucket(&uri, raw)?;
        if bucket != self.bucket {
            return Err(StorageError::NotInWarehouse(format!(
                "{raw} (bucket '{bucket}' is not the warehouse bucket '{}')",
                self.bucket
            )));
        }
        let key = decode(key_path.strip_prefix('/').unwrap_or(key_path), "object key")?;
        let query: Vec<(String, String)> = url::form_urlencoded::parse(uri.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Every check below reads one value per parameter; S3 itself may honour another
        // occurrence than the one checked (`prefix=<own table>/&prefix=<other>/`), so a
        // repeated parameter is refused rather than guessed at. S3 never needs one.
        let mut seen = std::collections::HashSet::new();
        if let Some((k, _)) = query.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(invalid(format!(
                "cannot sign '{raw}': the query parameter '{k}' is repeated"
            )));
        }
        let has = |name: &str| query.iter().any(|(k, _)| k == name);
        let method = req.method.trim().to_ascii_uppercase();
        let target = |operation, key: &str| TargetObject {
            operation,
            locations: vec![location(&self.bucket, key)],
        };
        let unsupported = |what: &str| {
            invalid(format!(
                "{method} {raw}: {what} cannot be signed through the catalog"
            ))
        };

        if key.is_empty() {
            return match method.as_str() {
                "GET" | "HEAD" => {
                    if let Some((k, _)) = query
                        .iter()
                        .find(|(k, _)| !BUCKET_READ_PARAMS.contains(&k.as_str()))
                    {
                        return Err(unsupported(&format!("the bucket subresource '{k}'")));
                    }
                    let prefix = query
                        .iter()
                        .find(|(k, _)| k == "prefix")
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("");
                    if !prefix.is_empty() {
                        check_key(prefix)?;
                    }
                    Ok(Analysed {
                        target: target(S3Operation::Read, prefix),
                        delete_body: None,
                    })
                }
                "POST" if has("delete") => {
                    let body = req.body.as_deref().ok_or_else(|| {
                        invalid(
                            "DeleteObjects (POST ?delete) needs the request body in the sign request",
                        )
                    })?;
                    let keys = delete_keys(body)?;
                    Ok(Analysed {
                        target: TargetObject {
                            operation: S3Operation::Delete,
                            locations: keys.iter().map(|k| location(&self.bucket, k)).collect(),
                        },
                        delete_body: Some(body.to_string()),
                    })
                }
                "PUT" | "POST" | "DELETE" => Err(unsupported("a bucket-level request")),
                _ => Err(unsupported(&format!("the method '{method}'"))),
            };
        }

        check_key(&key)?;
        let modifying = matches!(method.as_str(), "PUT" | "POST" | "DELETE");
        if modifying {
            if let Some(sub) = FORBIDDEN_OBJECT_WRITES.iter().find(|s| has(s)) {
                return Err(unsupported(&format!("changing the object's '{sub}'")));
            }
            if !header_values(req, "x-amz-copy-source").is_empty() {
                return Err(unsupported("a server-side copy"));
            }
            if req
                .headers
                .keys()
                .any(|k| k.trim().to_ascii_lowercase().starts_with("x-amz-grant-"))
            {
                return Err(unsupported("an x-amz-grant-* header"));
            }
            if let Some(acl) = header_values(req, "x-amz-acl")
                .into_iter()
                .find(|v| !HARMLESS_CANNED_ACLS.contains(v))
            {
                return Err(unsupported(&format!("the canned ACL '{acl}'")));
            }
        }
        let operation = match method.as_str() {
            "GET" | "HEAD" => S3Operation::Read,
            // SelectObjectContent only returns the object's data.
            "POST" if has("select") => S3Operation::Read,
            // PutObject, UploadPart, Create/CompleteMultipartUpload, tagging, restore.
            "PUT" | "POST" => S3Operation::Write,
            // Aborting an upload or dropping tags removes no stored object.
            "DELETE" if has("uploadId") || has("tagging") => S3Operation::Write,
            "DELETE" => S3Operation::Delete,
            _ => return Err(unsupported(&format!("the method '{method}'"))),
        };
        Ok(Analysed {
            target: target(operation, &key),
            delete_body: None,
        })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    sluice_core::hex(&Sha256::digest(data))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Headers the signer sets itself; a client's values would be stale or forged.
const REPLACED_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "host",
];

impl S3Backend {
    /// Signs a client's S3 request with the warehouse's identity (SigV4, service `s3`, the
    /// profile's region, header signing).
    ///
    /// Refuses anything [`S3Profile::resolve_sign_target`] refuses, so a request outside the
    /// bucket is never signed even if the caller forgot to check; whether the caller may
    /// touch the target is the caller's decision. The payload is `UNSIGNED-PAYLOAD` (as
    /// PyIceberg needs: it sends no body) unless the client set `x-amz-content-sha256` to a
    /// body hash or `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, which is kept; DeleteObjects is
    /// signed with the hash of the body it was checked against. The URI is returned
    /// unchanged; headers are the client's (lowercased, multiple values joined with ',')
    /// without `authorization`, `x-amz-date`, `x-amz-security-token` and `host`, plus
    /// `authorization`, `x-amz-date`, `x-amz-content-sha256` and, with a session credential,
    /// `x-amz-security-token`.
    ///
    /// A request checked against another profile (even an equal one: another warehouse's
    /// backend) is checked again against this one, so these credentials sign only inside
    /// their own bucket.
    ///
    /// Async because the storage's identity may have to be fetched or refreshed first
    /// (`aws-system-identity`); with stored keys it never waits.
    pub(crate) async fn sign_request(&self, checked: &CheckedRequest<'_>) -> Result<SignedRequest> {
        let own;
        let checked = if std::ptr::eq(checked.profile, &self.profile) {
            checked
        } else {
            own = self.profile.check_sign_request(checked.req)?;
            &own
        };
        let identity = self.access.credentials().await?;
        sign_with(identity, checked)
    }
}

/// Credentials a request to Sluice's own S3 gateway is signed with: a temporary gateway key,
/// its secret and its session token.
pub struct GatewaySigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: &'a str,
}

/// Signs a request to Sluice's S3 gateway (checked against the gateway described as a
/// path-style S3 profile: bucket = warehouse, endpoint = the gateway) with temporary gateway
/// credentials, by the same rules as a warehouse's own signing; the session token is a
/// signed header.
pub fn sign_gateway_request(
    key: GatewaySigningKey<'_>,
    checked: &CheckedRequest<'_>,
) -> Result<SignedRequest> {
    let identity = aws_credential_types::Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        Some(key.session_token.to_string()),
        None,
        "sluice-gateway",
    );
    sign_with(identity, checked)
}

fn sign_with(
    identity: aws_credential_types::Credentials,
    checked: &CheckedRequest<'_>,
) -> Result<SignedRequest> {
    {
        let CheckedRequest {
            profile,
            req,
            analysed,
        } = checked;
        let method = req.method.trim().to_ascii_uppercase();

        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, values) in &req.headers {
            let lname = name.trim().to_ascii_lowercase();
            if lname.is_empty()
                || !lname
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(invalid(format!("invalid header name '{name}'")));
            }
            if REPLACED_HEADERS.contains(&lname.as_str()) {
                continue;
            }
            if values
                .iter()
                .any(|v| v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0))
            {
                return Err(invalid(format!("invalid value for header '{name}'")));
            }
            // One value per name: clients join repeated values differently (',' or ', '),
            // and the signature only holds for the exact bytes sent.
            let joined = values
                .iter()
                .map(|v| v.trim())
                .collect::<Vec<_>>()
                .join(",");
            headers
                .entry(lname)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(&joined);
                })
                .or_insert(joined);
        }

        let hashes = header_values(req, "x-amz-content-sha256");
        if hashes.len() > 1 {
            return Err(invalid("x-amz-content-sha256 is given more than once"));
        }
        let client_hash = hashes.first().copied();
        let body = match (&analysed.delete_body, client_hash) {
            (Some(xml), hash) => {
                let actual = sha256_hex(xml.as_bytes());
                if hash.is_some_and(|h| is_sha256_hex(h) && h != actual) {
                    return Err(invalid(
                        "x-amz-content-sha256 does not match the DeleteObjects body",
                    ));
                }
                SignableBody::Precomputed(actual)
            }
            (None, None) | (None, Some(UNSIGNED_PAYLOAD)) => SignableBody::UnsignedPayload,
            (None, Some(STREAMING_UNSIGNED_TRAILER)) => {
                SignableBody::StreamingUnsignedPayloadTrailer
            }
            (None, Some(h)) if is_sha256_hex(h) => SignableBody::Precomputed(h.to_string()),
            (None, Some(other)) => {
                return Err(invalid(format!(
                    "x-amz-content-sha256 '{other}' cannot be signed remotely (signed chunked \
                     uploads need the secret key on the client); use UNSIGNED-PAYLOAD"
                )))
            }
        };

        Ok(SignedRequest {
            uri: req.uri.clone(),
            headers: sigv4_headers(identity, &profile.region, &method, &req.uri, headers, body)?,
        })
    }
}

/// SigV4 for S3 as Sluice signs every remote-signing request: the path as sent (no double
/// encoding, no dot-segment normalization), `x-amz-content-sha256` signed, and with a
/// session credential a signed `x-amz-security-token` (the signer's default session-token
/// mode), which the client then sends along. Returns `headers` (lower-case names, one value
/// each) with the signature's headers added. Public for the sign-floor benchmark, which must
/// sign exactly as Sluice does and nothing more.
pub fn sigv4_headers(
    identity: aws_credential_types::Credentials,
    region: &str,
    method: &str,
    uri: &str,
    headers: BTreeMap<String, String>,
    body: SignableBody<'_>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let identity = identity.into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| StorageError::Io(format!("cannot build signing parameters: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| invalid(format!("cannot sign '{uri}': {e}")))?;
    let (instructions, _signature) = sigv4_sign(signable, &params)
        .map_err(|e| invalid(format!("cannot sign '{uri}': {e}")))?
        .into_parts();
    let mut out: BTreeMap<String, Vec<String>> =
        headers.into_iter().map(|(k, v)| (k, vec![v])).collect();
    for (name, value) in instructions.headers() {
        out.insert(name.to_ascii_lowercase(), vec![value.to_string()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use std::collections::BTreeSet;

    /// The header names in an Authorization header's `SignedHeaders=` list.
    fn signed_header_names(authorization: &str) -> BTreeSet<String> {
        authorization
            .split(", ")
            .find_map(|p| p.strip_prefix("SignedHeaders="))
            .map(|l| l.split(';').map(str::to_string).collect())
            .unwrap_or_default()
    }
    use crate::credential::StorageCredential;
    use crate::profile::StorageProfile;
    use sluice_core::Secret;

    fn req(method: &str, uri: &str) -> SignRequest {
        SignRequest {
            method: method.into(),
            region: "us-east-1".into(),
            uri: uri.into(),
            headers: BTreeMap::new(),
            body: None,
        }
    }

    fn aws(bucket: &str, style: RemoteSigningUrlStyle) -> S3Profile {
        let mut p = S3Profile::new(bucket, "eu-central-1");
        p.remote_signing_url_style = style;
        p
    }

    fn compat(endpoint: &str, style: RemoteSigningUrlStyle) -> S3Profile {
        let mut p = S3Profile::new("bkt", "garage");
        p.flavor = S3Flavor::S3Compat;
        p.endpoint = Some(endpoint.into());
        p.path_style_access = true;
        p.remote_signing_url_style = style;
        p
    }

    #[derive(Debug)]
    enum Want {
        Ok(S3Operation, &'static [&'static str]),
        NotInWarehouse(&'static str),
        Invalid(&'static str),
    }

    fn check(p: &S3Profile, r: &SignRequest, want: &Want) {
        let got = p.resolve_sign_target(r);
        let ctx = format!("{} {} -> {got:?}, want {want:?}", r.method, r.uri);
        match (want, &got) {
            (Want::Ok(op, locs), Ok(t)) => {
                assert_eq!(t.operation, *op, "{ctx}");
                assert_eq!(t.locations, locs.to_vec(), "{ctx}");
            }
            (Want::NotInWarehouse(m), Err(StorageError::NotInWarehouse(e)))
            | (Want::Invalid(m), Err(StorageError::Invalid(e))) => {
                assert!(e.contains(m), "{ctx}");
            }
            _ => panic!("{ctx}"),
        }
    }

    use RemoteSigningUrlStyle::{Auto, PathStyle, VirtualHost};
    use S3Operation::{Delete, Read, Write};

    #[test]
    fn uri_to_target() {
        let a = aws("bkt", Auto);
        let path = aws("bkt", PathStyle);
        let virt = aws("bkt", VirtualHost);
        let dotted = aws("my.bkt", Auto);
        let minio = compat("http://127.0.0.1:9000", PathStyle);
        let minio_auto = compat("https://minio.example.com", Auto);
        let based = compat("https://gw.example.com/s3/", PathStyle);
        let mut aws_custom = aws("bkt", Auto);
        aws_custom.endpoint = Some("https://vpce-1.s3.eu-central-1.vpce.amazonaws.com".into());

        let obj = &["s3://bkt/wh/t/data/f.parquet"];
        let cases: Vec<(&S3Profile, &str, &str, Want)> = vec![
            // Path style on AWS hosts.
            (&a, "GET", "https://s3.eu-central-1.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            (&a, "HEAD", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            (&a, "PUT", "https://s3-eu-central-1.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Write, obj)),
            (&a, "DELETE", "https://s3.dualstack.eu-central-1.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Delete, obj)),
            (&path, "GET", "https://s3.eu-central-1.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            // Virtual host.
            (&a, "GET", "https://bkt.s3.eu-central-1.amazonaws.com/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            (&a, "GET", "https://bkt.s3.amazonaws.com/wh/t/data/f.parquet?x-id=GetObject", Want::Ok(Read, obj)),
            (&virt, "GET", "https://bkt.s3.eu-central-1.amazonaws.com/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            (&dotted, "GET", "https://my.bkt.s3.amazonaws.com/k", Want::Ok(Read, &["s3://my.bkt/k"])),
            (&dotted, "GET", "https://s3.amazonaws.com/my.bkt/k", Want::Ok(Read, &["s3://my.bkt/k"])),
            // A style the profile does not accept.
            (&path, "GET", "https://bkt.s3.eu-central-1.amazonaws.com/wh/t/f", Want::NotInWarehouse("virtual-host style URIs are not accepted")),
            (&virt, "GET", "https://s3.eu-central-1.amazonaws.com/bkt/wh/t/f", Want::NotInWarehouse("path-style URIs are not accepted")),
            (&virt, "GET", "https://other.s3.eu-central-1.amazonaws.com/wh/t/f", Want::NotInWarehouse("bucket 'other'")),
            // Auto with path style where the key's first segment looks like a bucket.
            (&a, "GET", "https://s3.amazonaws.com/bkt/bkt/x", Want::Ok(Read, &["s3://bkt/bkt/x"])),
            // Wrong region, wrong host, wrong port on AWS.
            (&a, "GET", "https://s3.us-west-2.amazonaws.com/bkt/k", Want::NotInWarehouse("host")),
            (&a, "GET", "https://evil.example.com/bkt/k", Want::NotInWarehouse("host 'evil.example.com'")),
            (&a, "GET", "https://s3.amazonaws.com:8443/bkt/k", Want::NotInWarehouse("host")),
            (&a, "GET", "https://bkt.evil.com/k", Want::NotInWarehouse("host")),
            // Wrong bucket.
            (&a, "GET", "https://s3.amazonaws.com/other/k", Want::NotInWarehouse("bucket 'other'")),
            (&a, "GET", "https://other.s3.amazonaws.com/k", Want::NotInWarehouse("bucket 'other'")),
            (&a, "GET", "https://bkt2.s3.amazonaws.com/k", Want::NotInWarehouse("bucket 'bkt2'")),
            (&a, "GET", "https://s3.amazonaws.com/bkt2/k", Want::NotInWarehouse("bucket 'bkt2'")),
            // Custom endpoint with port: host and port must both match.
            (&minio, "PUT", "http://127.0.0.1:9000/bkt/wh/t/data/f.parquet", Want::Ok(Write, obj)),
            (&minio, "PUT", "http://127.0.0.1:9001/bkt/wh/t/data/f.parquet", Want::NotInWarehouse("host")),
            (&minio, "PUT", "http://localhost:9000/bkt/k", Want::NotInWarehouse("host")),
            (&minio, "GET", "https://s3.amazonaws.com/bkt/k", Want::NotInWarehouse("host")),
            (&minio_auto, "GET", "https://bkt.minio.example.com/k", Want::Ok(Read, &["s3://bkt/k"])),
            (&minio_auto, "GET", "https://minio.example.com:443/bkt/k", Want::Ok(Read, &["s3://bkt/k"])),
            (&minio_auto, "GET", "https://MINIO.example.com/bkt/k", Want::Ok(Read, &["s3://bkt/k"])),
            (&based, "GET", "https://gw.example.com/s3/bkt/k", Want::Ok(Read, &["s3://bkt/k"])),
            (&based, "GET", "https://gw.example.com/bkt/k", Want::NotInWarehouse("base path")),
            // AWS flavor with a custom endpoint takes it and AWS's own hosts.
            (&aws_custom, "GET", "https://bkt.vpce-1.s3.eu-central-1.vpce.amazonaws.com/k", Want::Ok(Read, &["s3://bkt/k"])),
            (&aws_custom, "GET", "https://s3.eu-central-1.amazonaws.com/bkt/k", Want::Ok(Read, &["s3://bkt/k"])),
            // Percent-encoded keys are decoded; the query is not part of the key.
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/data/a%20b%2Bc%3D.parquet?versionId=3", Want::Ok(Read, &["s3://bkt/wh/t/data/a b+c=.parquet"])),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/%C3%A4.avro", Want::Ok(Read, &["s3://bkt/wh/t/ä.avro"])),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/%FF", Want::Invalid("UTF-8")),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/../u/x", Want::Invalid("'.' or '..'")),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/%2E%2E/u/x", Want::Invalid("'.' or '..'")),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh//x", Want::Invalid("empty path segments")),
            (&a, "PUT", "https://s3.amazonaws.com/bkt/wh/t/dir/", Want::Ok(Write, &["s3://bkt/wh/t/dir/"])),
            // Listings: the prefix is the location.
            (&a, "GET", "https://s3.amazonaws.com/bkt?list-type=2&prefix=wh%2Ft%2Fmetadata%2F&delimiter=%2F", Want::Ok(Read, &["s3://bkt/wh/t/metadata/"])),
            (&a, "GET", "https://bkt.s3.amazonaws.com/?list-type=2&prefix=wh/t", Want::Ok(Read, &["s3://bkt/wh/t"])),
            (&a, "GET", "https://bkt.s3.amazonaws.com/?list-type=2", Want::Ok(Read, &["s3://bkt"])),
            (&minio, "GET", "http://127.0.0.1:9000/bkt/?prefix=wh/t/&max-keys=10", Want::Ok(Read, &["s3://bkt/wh/t/"])),
            (&a, "HEAD", "https://s3.amazonaws.com/bkt", Want::Ok(Read, &["s3://bkt"])),
            (&a, "GET", "https://s3.amazonaws.com/bkt?location", Want::Ok(Read, &["s3://bkt"])),
            // Multipart.
            (&a, "POST", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet?uploads", Want::Ok(Write, obj)),
            (&a, "PUT", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet?partNumber=1&uploadId=abc", Want::Ok(Write, obj)),
            (&a, "POST", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet?uploadId=abc", Want::Ok(Write, obj)),
            (&a, "DELETE", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet?uploadId=abc", Want::Ok(Write, obj)),
            (&a, "GET", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet?uploadId=abc", Want::Ok(Read, obj)),
            (&a, "get", "https://s3.amazonaws.com/bkt/wh/t/data/f.parquet", Want::Ok(Read, obj)),
            // Never delegated.
            (&a, "PATCH", "https://s3.amazonaws.com/bkt/k", Want::Invalid("method 'PATCH'")),
            (&a, "OPTIONS", "https://s3.amazonaws.com/bkt/k", Want::Invalid("method 'OPTIONS'")),
            (&a, "PUT", "https://s3.amazonaws.com/bkt", Want::Invalid("bucket-level")),
            (&a, "DELETE", "https://s3.amazonaws.com/bkt/", Want::Invalid("bucket-level")),
            (&a, "PUT", "https://s3.amazonaws.com/bkt?policy", Want::Invalid("bucket-level")),
            (&a, "GET", "https://s3.amazonaws.com/bkt?policy", Want::Invalid("'policy'")),
            (&a, "GET", "https://s3.amazonaws.com/bkt?acl", Want::Invalid("'acl'")),
            (&a, "POST", "https://s3.amazonaws.com/bkt", Want::Invalid("bucket-level")),
            (&a, "PUT", "https://s3.amazonaws.com/bkt/k?acl", Want::Invalid("'acl'")),
            (&a, "PUT", "https://s3.amazonaws.com/bkt/k?retention", Want::Invalid("'retention'")),
            (&a, "GET", "https://s3.amazonaws.com/bkt/k?acl", Want::Ok(Read, &["s3://bkt/k"])),
            (&a, "POST", "https://s3.amazonaws.com/bkt?delete", Want::Invalid("body")),
            // Malformed URIs.
            (&a, "GET", "s3://bkt/k", Want::Invalid("http")),
            (&a, "GET", "ftp://s3.amazonaws.com/bkt/k", Want::Invalid("http or https")),
            (&a, "GET", "https://user@s3.amazonaws.com/bkt/k", Want::Invalid("invalid host")),
            (&a, "GET", "https://evil.com\\@s3.amazonaws.com/bkt/k", Want::Invalid("invalid host")),
            (&a, "GET", "https://s3.amazonaws.com/bkt/k#frag", Want::Invalid("fragment")),
            (&a, "GET", "https://s3.amazonaws.com:99999/bkt/k", Want::Invalid("port")),
            (&a, "GET", "https://s3.amazonaws.com/", Want::Invalid("must name the bucket")),
        ];
        for (p, method, uri, want) in &cases {
            check(p, &req(method, uri), want);
        }
    }

    #[test]
    fn delete_objects_body() {
        let p = compat("http://127.0.0.1:9000", Auto);
        let mut r = req("POST", "http://127.0.0.1:9000/bkt?delete");
        r.body = Some(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
<Object><Key>wh/t/data/a.parquet</Key></Object>
<Object><Key>wh/t/data/b&amp;c.parquet</Key><VersionId>1</VersionId></Object></Delete>"#
                .into(),
        );
        check(
            &p,
            &r,
            &Want::Ok(
                Delete,
                &[
                    "s3://bkt/wh/t/data/a.parquet",
                    "s3://bkt/wh/t/data/b&c.parquet",
                ],
            ),
        );
        r.body = Some("<Delete><Quiet>true</Quiet></Delete>".into());
        check(&p, &r, &Want::Invalid("no keys"));
        r.body = Some("not xml".into());
        check(&p, &r, &Want::Invalid("Delete document"));
        r.body = Some("<Delete><Object><Key>wh/../x</Key></Object></Delete>".into());
        check(&p, &r, &Want::Invalid("'.' or '..'"));
        let many: String = (0..1001)
            .map(|i| format!("<Object><Key>k{i}</Key></Object>"))
            .collect();
        r.body = Some(format!("<Delete>{many}</Delete>"));
        check(&p, &r, &Want::Invalid("more than 1000"));
    }

    #[test]
    fn dangerous_headers_are_refused() {
        let p = aws("bkt", Auto);
        let with = |method: &str, h: &str, v: &str| {
            let mut r = req(method, "https://s3.amazonaws.com/bkt/wh/t/f");
            r.headers.insert(h.into(), vec![v.into()]);
            p.resolve_sign_target(&r)
        };
        assert!(
            matches!(with("PUT", "X-Amz-Copy-Source", "/bkt/other/f"), Err(StorageError::Invalid(m)) if m.contains("copy"))
        );
        assert!(matches!(
            with("PUT", "x-amz-grant-read", "uri=x"),
            Err(StorageError::Invalid(_))
        ));
        assert!(
            matches!(with("PUT", "x-amz-acl", "public-read"), Err(StorageError::Invalid(m)) if m.contains("public-read"))
        );
        assert!(with("PUT", "x-amz-acl", "bucket-owner-full-control").is_ok());
        assert!(
            with("GET", "x-amz-acl", "public-read").is_ok(),
            "reads change nothing"
        );
    }

    fn storage(p: S3Profile) -> Storage {
        Storage::open(
            &StorageProfile::S3(p),
            Some(&StorageCredential::s3_access_key(
                "AKIDEXAMPLE",
                Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            )),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn signing_output() {
        let st = storage(compat("http://127.0.0.1:9000", PathStyle));
        let mut r = req("put", "http://127.0.0.1:9000/bkt/wh/t/a%20b.parquet");
        r.region = "somewhere-else".into();
        r.headers.insert(
            "Content-Type".into(),
            vec!["application/octet-stream".into()],
        );
        r.headers
            .insert("x-amz-checksum-crc32".into(), vec!["AAAAAA==".into()]);
        r.headers
            .insert("x-amz-sdk-checksum-algorithm".into(), vec!["CRC32".into()]);
        r.headers.insert(
            "Authorization".into(),
            vec!["AWS4-HMAC-SHA256 forged".into()],
        );
        r.headers
            .insert("X-Amz-Date".into(), vec!["19700101T000000Z".into()]);
        r.headers
            .insert("x-amz-security-token".into(), vec!["forged".into()]);
        r.headers.insert("Host".into(), vec!["elsewhere".into()]);
        r.headers
            .insert("x-custom".into(), vec!["a".into(), "b".into()]);
        let s = st.sign(&r).await.unwrap();
        assert_eq!(s.uri, r.uri);
        let h = &s.headers;
        assert!(!h.contains_key("host") && !h.contains_key("x-amz-security-token"));
        assert_eq!(h["x-amz-content-sha256"], vec!["UNSIGNED-PAYLOAD"]);
        assert_eq!(h["content-type"], vec!["application/octet-stream"]);
        assert_eq!(h["x-custom"], vec!["a,b"]);
        assert_ne!(h["x-amz-date"], vec!["19700101T000000Z"]);
        let auth = &h["authorization"][0];
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(
            auth.contains("/garage/s3/aws4_request"),
            "the profile's region: {auth}"
        );
        assert_eq!(
            signed_header_names(auth),
            [
                "content-type",
                "host",
                "x-amz-checksum-crc32",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-sdk-checksum-algorithm",
                "x-custom"
            ]
            .into_iter()
            .map(String::from)
            .collect()
        );
        assert!(!format!("{s:?}").contains("wJalrXUtnFEMI"));

        // A client-provided body hash or trailer mode is kept; signed chunks are refused.
        let mut r2 = req("PUT", "http://127.0.0.1:9000/bkt/k");
        let hash = sha256_hex(b"x");
        r2.headers
            .insert("X-Amz-Content-Sha256".into(), vec![hash.clone()]);
        assert_eq!(
            st.sign(&r2).await.unwrap().headers["x-amz-content-sha256"],
            vec![hash]
        );
        r2.headers.insert(
            "X-Amz-Content-Sha256".into(),
            vec![STREAMING_UNSIGNED_TRAILER.into()],
        );
        assert_eq!(
            st.sign(&r2).await.unwrap().headers["x-amz-content-sha256"],
            vec![STREAMING_UNSIGNED_TRAILER]
        );
        r2.headers.insert(
            "X-Amz-Content-Sha256".into(),
            vec!["STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()],
        );
        assert!(matches!(st.sign(&r2).await, Err(StorageError::Invalid(_))));

        // Outside the bucket: never signed.
        assert!(matches!(
            st.sign(&req("GET", "http://127.0.0.1:9000/other/k")).await,
            Err(StorageError::NotInWarehouse(_))
        ));
        // Header injection.
        let mut r3 = req("GET", "http://127.0.0.1:9000/bkt/k");
        r3.headers.insert("x-a".into(), vec!["v\r\nx-b: w".into()]);
        assert!(matches!(st.sign(&r3).await, Err(StorageError::Invalid(_))));
        let mut r4 = req("GET", "http://127.0.0.1:9000/bkt/k");
        r4.headers.insert("bad header".into(), vec!["v".into()]);
        assert!(matches!(st.sign(&r4).await, Err(StorageError::Invalid(_))));
    }

    #[tokio::test]
    async fn delete_objects_signs_the_body_hash() {
        let st = storage(compat("http://127.0.0.1:9000", PathStyle));
        let body = "<Delete><Object><Key>wh/t/a</Key></Object></Delete>";
        let mut r = req("POST", "http://127.0.0.1:9000/bkt?delete");
        r.body = Some(body.into());
        let s = st.sign(&r).await.unwrap();
        assert_eq!(
            s.headers["x-amz-content-sha256"],
            vec![sha256_hex(body.as_bytes())]
        );
        r.headers
            .insert("x-amz-content-sha256".into(), vec![sha256_hex(b"other")]);
        assert!(
            matches!(st.sign(&r).await, Err(StorageError::Invalid(m)) if m.contains("does not match"))
        );
    }

    /// A request checked by one storage and handed to another is checked again by the one
    /// whose credentials sign: they never sign outside their own bucket.
    #[tokio::test]
    async fn a_request_checked_elsewhere_is_checked_again() {
        let mine = storage(compat("http://127.0.0.1:9000", PathStyle));
        let mut other_profile = compat("http://127.0.0.1:9000", PathStyle);
        other_profile.bucket = "other".into();
        let other = storage(other_profile);
        let r = req("GET", "http://127.0.0.1:9000/other/wh/t/data.parquet");
        let checked = other.check_sign_request(&r).unwrap();
        assert_eq!(checked.target().locations, ["s3://other/wh/t/data.parquet"]);
        assert!(matches!(
            mine.sign_checked(&checked).await,
            Err(StorageError::NotInWarehouse(_))
        ));
        // An equal profile is still another storage's: checked again, and signed.
        let twin = storage(compat("http://127.0.0.1:9000", PathStyle));
        let r = req("GET", "http://127.0.0.1:9000/bkt/wh/t/data.parquet");
        let s = mine
            .sign_checked(&twin.check_sign_request(&r).unwrap())
            .await
            .unwrap();
        assert!(
            s.headers["authorization"][0].starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        );
    }

    #[test]
    fn remembered_endpoints_are_only_reused_for_the_same_endpoint() {
        for _ in 0..2 {
            for (ep, want) in [
                ("http://127.0.0.1:9000", ("127.0.0.1", 9000, "")),
                ("https://GW.example.com/s3/", ("gw.example.com", 443, "s3")),
                ("http://127.0.0.1:9001", ("127.0.0.1", 9001, "")),
            ] {
                let p = endpoint_parts(ep).unwrap();
                assert_eq!((p.0.as_str(), p.1, p.2.as_str()), want, "{ep}");
            }
        }
        assert!(endpoint_parts("not a url").is_err());
    }

    #[test]
    fn bucket_candidates_cover_both_url_styles() {
        let c = bucket_candidates("https://my.bkt.s3.eu-west-1.amazonaws.com/wh/t/f?x=1");
        assert!(c.contains(&"my.bkt".to_string()) && c.contains(&"wh".to_string()));
        let c = bucket_candidates("http://gw.example.com/s3/b%6Bt/wh/a%20b");
        assert!(c.contains(&"bkt".to_string()) && c.contains(&"a b".to_string()));
        assert!(bucket_candidates("not a uri").is_empty());
        for (uri, bucket) in [
            (
                "https://bkt.s3.eu-central-1.amazonaws.com/wh/t/f",
                aws("bkt", Auto),
            ),
            (
                "https://s3.eu-central-1.amazonaws.com/bkt/wh/t/f",
                aws("bkt", PathStyle),
            ),
            (
                "https://gw.example.com/s3/bkt/wh/t/f",
                compat("https://gw.example.com/s3/", Auto),
            ),
        ] {
            assert!(
                bucket.resolve_sign_target(&req("GET", uri)).is_ok(),
                "{uri}"
            );
            assert!(bucket_candidates(uri).contains(&bucket.bucket), "{uri}");
        }
    }

    #[tokio::test]
    async fn file_storage_cannot_sign() {
        let tmp = tempfile::tempdir().unwrap();
        let st = Storage::open(
            &StorageProfile::File(crate::profile::FileProfile {
                root: tmp.path().to_string_lossy().into(),
                gateway: false,
            }),
            None,
        )
        .unwrap();
        assert!(
            matches!(st.sign(&req("GET", "http://x/b/k")).await, Err(StorageError::Invalid(m)) if m.contains("only available for s3"))
        );
    }

    #[test]
    fn sign_request_wire_format() {
        let r: SignRequest = serde_json::from_value(serde_json::json!({
            "method": "GET", "region": "us-east-1", "uri": "http://h/b/k",
            "headers": {"Range": ["bytes=0-10"]}
        }))
        .unwrap();
        assert!(r.body.is_none());
        let r: SignRequest = serde_json::from_value(serde_json::json!({
            "method": "GET", "region": "us-east-1", "uri": "http://h/b/k"
        }))
        .unwrap();
        assert!(r.headers.is_empty());
        let out = serde_json::to_value(SignedRequest {
            uri: "u".into(),
            headers: BTreeMap::from([("a".into(), vec!["b".into()])]),
        })
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"uri": "u", "headers": {"a": ["b"]}})
        );
    }

    /// `prefix=<own table>/&prefix=<other>/`: only the first value used to be checked, while
    /// S3 may honour another. Any repeated parameter is refused, however it is spelled.
    #[test]
    fn repeated_query_parameters_are_refused() {
        let p = aws("bkt", PathStyle);
        let base = "https://s3.eu-central-1.amazonaws.com/bkt";
        for uri in [
            format!("{base}?list-type=2&prefix=wh/t1/&prefix=other/"),
            format!("{base}?prefix=wh/t1/&list-type=2&pre%66ix=other/"),
            format!("{base}?prefix=wh/t1/&prefix=wh/t1/"),
            format!("{base}/wh/t/f?uploadId=1&uploadId=2"),
            format!("{base}/wh/t/f?x-id=PutObject&x-id=GetObject"),
            format!("{base}/wh/t/f?acl&acl"),
        ] {
            for method in ["GET", "PUT", "DELETE"] {
                check(&p, &req(method, &uri), &Want::Invalid("is repeated"));
            }
        }
        // One occurrence of each is fine.
        check(
            &p,
            &req(
                "GET",
                &format!("{base}?list-type=2&prefix=wh/t1/&delimiter=/"),
            ),
            &Want::Ok(Read, &["s3://bkt/wh/t1/"]),
        );
    }

    #[tokio::test]
    async fn repeated_content_hash_is_refused() {
        let st = storage(compat("http://127.0.0.1:9000", PathStyle));
        let mut r = req("PUT", "http://127.0.0.1:9000/bkt/wh/t/f");
        r.headers.insert(
            "x-amz-content-sha256".into(),
            vec![
                UNSIGNED_PAYLOAD.into(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            ],
        );
        assert!(
            matches!(st.sign(&r).await, Err(StorageError::Invalid(m)) if m.contains("more than once"))
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces an attacker would combine into a URI: traversal in every spelling,
        /// separators, other buckets, repeated and unknown parameters.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("..".to_string()),
                Just(".".to_string()),
                Just("%2E%2E".to_string()),
                Just("%2e.".to_string()),
                Just("%2F".to_string()),
                Just("\\".to_string()),
                Just("bkt".to_string()),
                Just("other".to_string()),
                Just("wh".to_string()),
                Just("t".to_string()),
                Just("".to_string()),
                Just("?".to_string()),
                Just("&".to_string()),
                Just("=".to_string()),
                Just("#".to_string()),
                Just("prefix=".to_string()),
                Just("delete".to_string()),
                Just("%00".to_string()),
                Just("%ff".to_string()),
                "[a-z0-9%./?&=:@\\[\\]-]{0,12}",
                any::<String>(),
            ]
        }

        fn uri() -> impl Strategy<Value = String> {
            let head = prop_oneof![
                Just("https://s3.eu-central-1.amazonaws.com/".to_string()),
                Just("https://bkt.s3.eu-central-1.amazonaws.com/".to_string()),
                Just("http://127.0.0.1:9000/".to_string()),
                Just("https://s3.amazonaws.com:443/bkt/".to_string()),
                "[a-zA-Z:/.\\[\\]0-9]{0,30}",
            ];
            (
                head,
                proptest::collection::vec(
                    (
                        piece(),
                        prop_oneof![Just("/"), Just("?"), Just("&"), Just("")],
                    ),
                    0..10,
                ),
            )
                .prop_map(|(h, parts)| {
                    let mut u = h;
                    for (p, sep) in parts {
                        u.push_str(&p);
                        u.push_str(sep);
                    }
                    u
                })
        }

        fn method() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("GET".to_string()),
                Just("head".to_string()),
                Just("PUT".to_string()),
                Just("POST".to_string()),
                Just("DELETE".to_string()),
                any::<String>(),
            ]
        }

        fn profiles() -> Vec<S3Profile> {
            vec![
                aws("bkt", Auto),
                aws("bkt", PathStyle),
                aws("bkt", VirtualHost),
                compat("http://127.0.0.1:9000", PathStyle),
                compat("https://gw.example.com/s3/", Auto),
            ]
        }

        /// One signer for every case: opening a storage costs far more than signing.
        fn signer() -> &'static (tokio::runtime::Runtime, Storage) {
            static SIGNER: std::sync::OnceLock<(tokio::runtime::Runtime, Storage)> =
                std::sync::OnceLock::new();
            SIGNER.get_or_init(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let st = rt.block_on(async { storage(compat("http://127.0.0.1:9000", PathStyle)) });
                (rt, st)
            })
        }

        proptest! {
            // The default: 256 cases, or PROPTEST_CASES for a longer run (an explicit count
            // would override the variable).
            #![proptest_config(ProptestConfig::default())]

            /// Whatever the request, the signer's parser answers without panicking, and
            /// every location it accepts is a plain key of the warehouse bucket: no dot
            /// segments and no repeated parameter slipped through.
            #[test]
            fn sign_target_parsing_is_total_and_contained(
                method in method(),
                uri in uri(),
                body in proptest::option::of(any::<String>()),
                header in proptest::option::of((any::<String>(), any::<String>())),
            ) {
                let mut r = req(&method, &uri);
                r.body = body;
                if let Some((k, v)) = header {
                    r.headers.insert(k, vec![v]);
                }
                for p in profiles() {
                    if let Ok(t) = p.resolve_sign_target(&r) {
                        prop_assert!(!t.locations.is_empty());
                        for loc in &t.locations {
                            let key = loc.strip_prefix("s3://bkt").expect("bucket");
                            prop_assert!(key.is_empty() || key.starts_with('/'), "{loc}");
                            let key = key.trim_start_matches('/');
                            let key = key.strip_suffix('/').unwrap_or(key);
                            if !key.is_empty() {
                                prop_assert!(key.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{loc}");
                            }
                        }
                        let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
                        let names: Vec<String> = url::form_urlencoded::parse(query.as_bytes()).map(|(k, _)| k.into_owned()).collect();
                        let unique: std::collections::HashSet<&String> = names.iter().collect();
                        prop_assert_eq!(unique.len(), names.len(), "repeated parameter accepted: {}", uri);
                    }
                }
            }

            /// Whatever a profile accepts, its bucket is one the URI could address: the
            /// unscoped signer's bucket index never hides the warehouse that matches.
            #[test]
            fn an_accepted_uri_names_the_profile_bucket_among_its_candidates(
                method in method(),
                uri in uri(),
            ) {
                let r = req(&method, &uri);
                let candidates = bucket_candidates(&uri);
                for p in profiles() {
                    if p.resolve_sign_target(&r).is_ok() {
                        prop_assert!(candidates.contains(&p.bucket), "{uri}: {candidates:?}");
                    }
                }
            }

            /// The whole signing path (header checks, SigV4) never panics either.
            #[test]
            fn signing_is_total(
                method in method(),
                uri in uri(),
                headers in proptest::collection::btree_map(any::<String>(), proptest::collection::vec(any::<String>(), 0..3), 0..4),
            ) {
                let (rt, st) = signer();
                let mut r = req(&method, &uri);
                r.headers = headers;
                let _ = rt.block_on(st.sign(&r));
            }
        }
    }
}
