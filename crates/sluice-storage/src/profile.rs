use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::adls::{AdlsProfile, AzCredential};
use crate::credential::{S3Credential, StorageCredential};
use crate::error::StorageError;
use crate::gcs::{GcsCredential, GcsProfile};
use crate::rules;
use crate::settings::StorageSettings;

/// Where a warehouse keeps its data, in Lakekeeper's wire format (`{"type":"s3",…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StorageProfile {
    File(FileProfile),
    S3(S3Profile),
    Gcs(GcsProfile),
    Adls(AdlsProfile),
}

/// A directory on the server's local filesystem. Only usable under the roots the server
/// operator allows (see [`ValidationContext`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileProfile {
    /// Absolute directory path, without trailing '/'.
    #[serde(deserialize_with = "de_file_root")]
    pub root: String,
    /// Served through the S3 gateway: table locations are `s3://<warehouse>/…` and clients
    /// get temporary gateway credentials instead of `file://` paths.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub gateway: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum S3Flavor {
    #[default]
    Aws,
    S3Compat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteSigningUrlStyle {
    PathStyle,
    VirtualHost,
    #[default]
    Auto,
}

/// An S3 (or S3-compatible) bucket, optionally below a key prefix.
///
/// Optional and boolean fields accept JSON `null` as "use the default", because Lakekeeper
/// clients send nulls for unset fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3Profile {
    pub bucket: String,
    /// Normalized on input: no leading/trailing '/'; `None` for the bucket root.
    #[serde(
        default,
        deserialize_with = "de_key_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_prefix: Option<String>,
    pub region: String,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub path_style_access: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub flavor: S3Flavor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sts_enabled: bool,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub assume_role_arn: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sts_role_arn: Option<String>,
    #[serde(default = "default_sts_validity", deserialize_with = "de_sts_validity")]
    pub sts_token_validity_seconds: u64,
    /// STS endpoint for credential vending; see [`S3Profile::sts_endpoint`] for the default.
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sts_endpoint: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allow_alternative_protocols: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub remote_signing_url_style: RemoteSigningUrlStyle,
    #[serde(default = "default_true", deserialize_with = "de_bool_default_true")]
    pub push_s3_delete_disabled: bool,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub aws_kms_key_arn: Option<String>,
    /// Fronted by the S3 gateway: see [`FileProfile::gateway`]. Clients get gateway
    /// credentials and `s3://<warehouse>/…` locations instead of the bucket's own.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub gateway: bool,
}

pub const DEFAULT_STS_TOKEN_VALIDITY_SECONDS: u64 = 3600;
/// AWS STS limits for AssumeRole session duration.
pub const STS_TOKEN_VALIDITY_RANGE: std::ops::RangeInclusive<u64> = 900..=43200;

fn default_sts_validity() -> u64 {
    DEFAULT_STS_TOKEN_VALIDITY_SECONDS
}
fn default_true() -> bool {
    true
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn de_bool_default_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

fn de_sts_validity<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(DEFAULT_STS_TOKEN_VALIDITY_SECONDS))
}

/// Web forms send "" for an unset optional field; treat it like a missing one.
fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

pub(crate) fn de_key_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| s.trim_matches('/').to_string())
        .filter(|s| !s.is_empty()))
}

fn de_file_root<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(trim_root(&String::deserialize(d)?).to_string())
}

/// Drops trailing '/', but keeps a lone "/" so validation can name the problem.
fn trim_root(root: &str) -> &str {
    let t = root.trim_end_matches('/');
    if t.is_empty() && !root.is_empty() {
        "/"
    } else {
        t
    }
}

/// Server-side limits that profile and credential validation enforce: the operator's
/// [`StorageSettings`] as they are, plus what the server derives from its own setup.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// Directories under which `file` profiles may live. Empty disables file storage.
    pub allowed_file_roots: Vec<PathBuf>,
    /// Which system identities are allowed and whether they need an external id.
    pub settings: StorageSettings,
    /// The operator's `allowed_storage_endpoints` with the server's own endpoints added;
    /// `None` sends requests wherever a profile says (see [`crate::endpoints`]).
    pub allowed_endpoints: Option<crate::endpoints::EndpointAllowlist>,
}

impl ValidationContext {
    /// The context for accepting warehouses on a server with these settings.
    pub fn new(settings: &StorageSettings, allowed_file_roots: Vec<PathBuf>) -> Self {
        ValidationContext {
            allowed_file_roots,
            allowed_endpoints: settings.endpoint_allowlist(),
            settings: settings.clone(),
        }
    }
}

impl S3Profile {
    /// A profile with every optional field at its default.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        S3Profile {
            bucket: bucket.into(),
            key_prefix: None,
            region: region.into(),
            endpoint: None,
            path_style_access: false,
            flavor: S3Flavor::Aws,
            sts_enabled: false,
            assume_role_arn: None,
            sts_role_arn: None,
            sts_token_validity_seconds: DEFAULT_STS_TOKEN_VALIDITY_SECONDS,
            sts_endpoint: None,
            allow_alternative_protocols: false,
            remote_signing_url_style: RemoteSigningUrlStyle::Auto,
            push_s3_delete_disabled: true,
            aws_kms_key_arn: None,
            gateway: false,
        }
    }

    /// The key prefix without surrounding '/', or "" for the bucket root. Trims again so a
    /// profile built in code (not deserialized) behaves the same.
    pub fn prefix(&self) -> &str {
        self.key_prefix.as_deref().unwrap_or("").trim_matches('/')
    }

    /// Endpoint without trailing '/'.
    pub fn endpoint_trimmed(&self) -> Option<&str> {
        self.endpoint.as_deref().map(|e| e.trim_end_matches('/'))
    }

    /// The STS endpoint credential vending talks to: `sts-endpoint` if set, otherwise the
    /// S3 `endpoint` for `s3-compat` stores (MinIO and friends serve STS on the same port)
    /// and the regional AWS endpoint for `aws`. `None` for `s3-compat` without either.
    pub fn sts_endpoint(&self) -> Option<String> {
        if let Some(ep) = &self.sts_endpoint {
            return Some(ep.trim_end_matches('/').to_string());
        }
        match self.flavor {
            S3Flavor::S3Compat => self.endpoint_trimmed().map(str::to_string),
            S3Flavor::Aws => Some(aws_sts_endpoint(&self.region)),
        }
    }

    /// Whether clients may delete objects themselves (the inverse of
    /// `push-s3-delete-disabled`).
    pub fn delete_enabled(&self) -> bool {
        !self.push_s3_delete_disabled
    }

    /// `s3://bucket[/key-prefix]`, never with a trailing '/'.
    pub fn base_location(&self) -> String {
        match self.prefix() {
            "" => format!("s3://{}", self.bucket),
            p => format!("s3://{}/{p}", self.bucket),
        }
    }

    /// [`StorageProfile::normalize_location`] for this profile.
    pub fn normalize_location(&self, loc: &str) -> Result<String, StorageError> {
        let canonical = {
            let rest = if let Some(r) = strip_prefix_ci(loc, "s3://") {
                r
            } else if let Some(r) =
                strip_prefix_ci(loc, "s3a://").or_else(|| strip_prefix_ci(loc, "s3n://"))
            {
                if !self.allow_alternative_protocols {
                    return Err(StorageError::NotInWarehouse(format!(
                        "{loc} (s3a:// and s3n:// are accepted only with allow-alternative-protocols)"
                    )));
                }
                r
            } else {
                return Err(StorageError::NotInWarehouse(format!(
                    "{loc} (expected an s3:// location)"
                )));
            };
            let rest = rest.trim_end_matches('/');
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket != self.bucket {
                return Err(StorageError::NotInWarehouse(loc.to_string()));
            }
            if key.is_empty() {
                format!("s3://{bucket}")
            } else {
                rules::check_segments(key)
                    .map_err(|e| StorageError::Invalid(format!("location '{loc}' {e}")))?;
                format!("s3://{bucket}/{key}")
            }
        };
        if is_within(&canonical, &self.base_location()) {
            Ok(canonical)
        } else {
            Err(StorageError::NotInWarehouse(loc.to_string()))
        }
    }

    fn validate(&self) -> Result<(), StorageError> {
        let inv = StorageError::Invalid;
        rules::check_bucket_name(&self.bucket).map_err(inv)?;
        if let Some(p) = &self.key_prefix {
            rules::normalize_key_prefix(p).map_err(inv)?;
        }
        rules::check_region(&self.region).map_err(inv)?;
        if let Some(ep) = &self.endpoint {
            let url = rules::check_endpoint(ep).map_err(inv)?;
            let ip_host = matches!(
                url.host(),
                Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_))
            );
            if ip_host && !self.path_style_access {
                return Err(inv(format!(
                    "endpoint '{ep}' is an IP address, so virtual-host style requests cannot work; set path-style-access to true"
                )));
            }
        }
        if let Some(ep) = &self.sts_endpoint {
            rules::check_endpoint(ep).map_err(|e| inv(format!("sts-endpoint: {e}")))?;
        }
        if self.sts_enabled && self.sts_endpoint().is_none() {
            return Err(inv(
                "sts-enabled with flavor 's3-compat' requires endpoint or sts-endpoint".into(),
            ));
        }
        if let Some(arn) = &self.assume_role_arn {
            rules::check_role_arn("assume-role-arn", arn).map_err(inv)?;
        }
        if let Some(arn) = &self.sts_role_arn {
            rules::check_role_arn("sts-role-arn", arn).map_err(inv)?;
        }
        if let Some(arn) = &self.aws_kms_key_arn {
            rules::check_kms_key_arn(arn).map_err(inv)?;
        }
        if !STS_TOKEN_VALIDITY_RANGE.contains(&self.sts_token_validity_seconds) {
            return Err(inv(format!(
                "sts-token-validity-seconds must be between {} and {}",
                STS_TOKEN_VALIDITY_RANGE.start(),
                STS_TOKEN_VALIDITY_RANGE.end()
            )));
        }
        if self.sts_enabled
            && self.flavor == S3Flavor::Aws
            && self.sts_role_arn.is_none()
            && self.assume_role_arn.is_none()
        {
            return Err(inv(
                "sts-enabled with flavor 'aws' requires sts-role-arn or assume-role-arn".into(),
            ));
        }
        Ok(())
    }

    /// Whether two profiles address the same bucket namespace. AWS buckets are global, so
    /// any two `aws` profiles share it; `s3-compat` stores are identified by endpoint. A
    /// mixed pair is treated as the same store when the compat endpoint is unset or AWS's
    /// own, erring towards reporting an overlap.
    fn same_store(&self, other: &S3Profile) -> bool {
        fn is_aws_endpoint(ep: Option<&str>) -> bool {
            match ep {
                None => true,
                Some(ep) => url::Url::parse(ep)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
                    .is_some_and(|h| h == "amazonaws.com" || h.ends_with(".amazonaws.com")),
            }
        }
        fn norm(ep: Option<&str>) -> Option<String> {
            ep.map(|e| e.trim_end_matches('/').to_ascii_lowercase())
        }
        match (self.flavor, other.flavor) {
            (S3Flavor::Aws, S3Flavor::Aws) => true,
            (S3Flavor::S3Compat, S3Flavor::S3Compat) => {
                norm(self.endpoint.as_deref()) == norm(other.endpoint.as_deref())
            }
            (S3Flavor::Aws, S3Flavor::S3Compat) => is_aws_endpoint(other.endpoint_trimmed()),
            (S3Flavor::S3Compat, S3Flavor::Aws) => is_aws_endpoint(self.endpoint_trimmed()),
        }
    }
}

impl FileProfile {
    /// The root without trailing '/'.
    pub fn root_trimmed(&self) -> &str {
        trim_root(&self.root)
    }

    fn validate(&self, ctx: &ValidationContext) -> Result<(), StorageError> {
        let root = self.root_trimmed();
        let inv = |m: String| StorageError::Invalid(format!("file root '{}': {m}", self.root));
        if !root.starts_with('/') {
            return Err(inv("must be an absolute path".into()));
        }
        if root == "/" {
            return Err(inv("must not be the filesystem root".into()));
        }
        rules::check_segments(&root[1..]).map_err(inv)?;
        // Locations are handed to Iceberg clients as file:// URIs; restricting the character
        // set keeps them free of anything a URI parser would decode or split on.
        if let Some(c) = root
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/-_.~+=,@".contains(*c)))
        {
            return Err(inv(format!(
                "contains '{c}'; only ASCII letters, digits and '/-_.~+=,@' are allowed"
            )));
        }
        if ctx.allowed_file_roots.is_empty() {
            return Err(StorageError::Invalid(
                "file storage is disabled on this server (no allowed file roots are configured)"
                    .into(),
            ));
        }
        let resolved = resolve_existing_prefix(Path::new(root))?;
        for allowed in &ctx.allowed_file_roots {
            // An allowed root that does not exist yet cannot contain symlinks to resolve.
            let allowed = std::fs::canonicalize(allowed).unwrap_or_else(|_| allowed.clone());
            if resolved.starts_with(&allowed) {
                return Ok(());
            }
        }
        Err(inv(format!(
            "resolves to '{}', which is not under any allowed file root",
            resolved.display()
        )))
    }
}

/// Canonicalizes the longest existing ancestor of `path` (resolving symlinks, so a link
/// cannot smuggle the root out of the allowed directories) and re-appends the missing rest.
fn resolve_existing_prefix(path: &Path) -> Result<PathBuf, StorageError> {
    let mut existing = path;
    let mut missing = Vec::new();
    loop {
        match std::fs::symlink_metadata(existing) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(name), Some(parent)) = (existing.file_name(), existing.parent()) else {
                    return Err(StorageError::Invalid(format!(
                        "cannot resolve '{}'",
                        path.display()
                    )));
                };
                missing.push(name);
                existing = parent;
            }
            Err(e) => {
                return Err(StorageError::Invalid(format!(
                    "cannot inspect '{}': {e}",
                    existing.display()
                )))
            }
        }
    }
    // Fails for dangling symlinks, which is what we want: their target is unknown.
    let mut resolved = std::fs::canonicalize(existing).map_err(|e| {
        StorageError::Invalid(format!("cannot resolve '{}': {e}", existing.display()))
    })?;
    if !resolved.is_dir() {
        return Err(StorageError::Invalid(format!(
            "'{}' exists and is not a directory",
            existing.display()
        )));
    }
    for name in missing.iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}

/// The regional STS endpoint. Regional rather than global because the global endpoint
/// issues tokens that opt-in regions reject, and it adds a cross-region hop.
fn aws_sts_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn")
    } else {
        format!("https://sts.{region}.amazonaws.com")
    }
}

/// `s` with a case-insensitive `prefix` removed.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Segment-aware containment: `s3://b/t1/x` is within `s3://b/t1`, `s3://b/t10` is not.
pub(crate) fn is_within(location: &str, base: &str) -> bool {
    match location.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest.starts_with('/') || base.ends_with('/'),
        None => false,
    }
}

impl StorageProfile {
    /// Whether clients reach this storage through the S3 gateway (`gateway: true`): then
    /// its table locations are `s3://<warehouse>/…` and its delegation is gateway
    /// credentials.
    pub fn gateway_served(&self) -> bool {
        match self {
            StorageProfile::File(f) => f.gateway,
            StorageProfile::S3(s) => s.gateway,
            StorageProfile::Gcs(_) | StorageProfile::Adls(_) => false,
        }
    }

    /// "file" or "s3", as on the wire.
    pub fn storage_type(&self) -> &'static str {
        match self {
            StorageProfile::File(_) => "file",
            StorageProfile::S3(_) => "s3",
            StorageProfile::Gcs(_) => "gcs",
            StorageProfile::Adls(_) => "adls",
        }
    }

    /// Static checks plus, for file profiles, the allowed-roots check against the real
    /// filesystem. Does not contact any object store (see `Storage::probe`).
    pub fn validate(&self, ctx: &ValidationContext) -> Result<(), StorageError> {
        match self {
            StorageProfile::File(f) => f.validate(ctx),
            StorageProfile::S3(s) => s.validate(),
            StorageProfile::Gcs(g) => g.validate(),
            StorageProfile::Adls(a) => a.validate(),
        }
    }

    /// Checks that `cred` fits this profile and the server's settings in `ctx`: S3 needs an
    /// S3 credential, file storage takes none. `aws-system-identity` only when the server
    /// enables it (and, if required, with `external-id` and the profile's
    /// `assume-role-arn`); `cloudflare-r2` only on an `s3-compat` profile with an endpoint
    /// and without AWS-only settings.
    pub fn validate_credential(
        &self,
        cred: Option<&StorageCredential>,
        ctx: &ValidationContext,
    ) -> Result<(), StorageError> {
        self.check_endpoints(cred, ctx.allowed_endpoints.as_ref())?;
        let inv = |m: &str| Err(StorageError::Invalid(m.into()));
        match (self, cred) {
            (StorageProfile::File(_), None) => Ok(()),
            (StorageProfile::File(_), Some(_)) => {
                inv("file storage does not take a storage credential")
            }
            (StorageProfile::S3(s), None) => {
                let kinds = if ctx.settings.enable_aws_system_credentials {
                    "an access-key, aws-system-identity or cloudflare-r2"
                } else {
                    "an access-key or cloudflare-r2"
                };
                let flavor = match s.flavor {
                    S3Flavor::S3Compat => "s3-compat",
                    S3Flavor::Aws => "s3",
                };
                Err(StorageError::Invalid(format!(
                    "{flavor} storage requires {kinds} storage credential"
                )))
            }
            (StorageProfile::Adls(_), None) => inv(
                "adls storage requires an az storage credential (shared-access-key, \
                 client-credentials or azure-system-identity)",
            ),
            (StorageProfile::Adls(_), Some(c @ StorageCredential::Az(az))) => {
                c.validate()?;
                if matches!(az, AzCredential::AzureSystemIdentity {})
                    && !ctx.settings.enable_azure_system_credentials
                {
                    return inv(
                        "azure-system-identity credentials are disabled on this server; \
                         set enable_azure_system_credentials",
                    );
                }
                Ok(())
            }
            (StorageProfile::Adls(_), Some(c)) => Err(StorageError::Invalid(format!(
                "adls storage requires an az storage credential, not '{}'",
                c.credential_type()
            ))),
            (StorageProfile::S3(_), Some(c @ StorageCredential::Az(_))) => {
                Err(StorageError::Invalid(format!(
                    "s3 storage requires an s3 storage credential, not '{}'",
                    c.credential_type()
                )))
            }
            (StorageProfile::S3(s), Some(c @ StorageCredential::S3(s3c))) => {
                c.validate()?;
                match s3c {
                    S3Credential::AccessKey { .. } => Ok(()),
                    S3Credential::AwsSystemIdentity { external_id } => {
                        if !ctx.settings.enable_aws_system_credentials {
                            return inv(
                                "aws-system-identity credentials are disabled on this server; \
                                 set enable_aws_system_credentials",
                            );
                        }
                        if ctx.settings.require_external_id_for_system_credentials
                            && (external_id.is_none() || s.assume_role_arn.is_none())
                        {
                            return inv(
                                "aws-system-identity credentials require an external-id on the \
                                 credential and an assume-role-arn on the storage profile (this \
                                 server sets require_external_id_for_system_credentials)",
                            );
                        }
                        Ok(())
                    }
                    S3Credential::CloudflareR2 { .. } => {
                        // R2 is reached through its S3 endpoint and vends through Cloudflare's
                        // API, never AWS STS or IAM: AWS-only settings would be silently
                        // ignored, so they are refused instead.
                        if s.flavor != S3Flavor::S3Compat || s.endpoint.is_none() {
                            return inv(
                                "cloudflare-r2 credentials need flavor 's3-compat' and endpoint \
                                 https://<account-id>.r2.cloudflarestorage.com (region 'auto')",
                            );
                        }
                        if s.assume_role_arn.is_some()
                            || s.sts_role_arn.is_some()
                            || s.sts_endpoint.is_some()
                            || s.aws_kms_key_arn.is_some()
                        {
                            return inv(
                                "assume-role-arn, sts-role-arn, sts-endpoint and aws-kms-key-arn \
                                 are AWS settings and cannot be used with cloudflare-r2 credentials",
                            );
                        }
                        Ok(())
                    }
                }
            }
            (StorageProfile::Gcs(_), None) => {
                let kinds = if ctx.settings.enable_gcp_system_credentials {
                    "a service-account-key or gcp-system-identity"
                } else {
                    "a service-account-key"
                };
                Err(StorageError::Invalid(format!(
                    "gcs storage requires {kinds} storage credential"
                )))
            }
            (StorageProfile::Gcs(_), Some(c @ StorageCredential::Gcs(g))) => {
                c.validate()?;
                if matches!(g, GcsCredential::GcpSystemIdentity {})
                    && !ctx.settings.enable_gcp_system_credentials
                {
                    return inv(
                        "gcp-system-identity credentials are disabled on this server; \
                         set enable_gcp_system_credentials",
                    );
                }
                Ok(())
            }
            (p, Some(c)) => Err(StorageError::Invalid(format!(
                "{} storage cannot use a '{}' storage credential of type '{}'",
                p.storage_type(),
                c.credential_type(),
                c.storage_type()
            ))),
        }
    }

    /// `file:///abs/root` or `s3://bucket[/key-prefix]`, never with a trailing '/'.
    pub fn base_location(&self) -> String {
        match self {
            StorageProfile::File(f) => format!("file://{}", f.root_trimmed()),
            StorageProfile::S3(s) => s.base_location(),
            StorageProfile::Gcs(g) => match g.prefix() {
                "" => format!("gs://{}", g.bucket),
                p => format!("gs://{}/{p}", g.bucket),
            },
            StorageProfile::Adls(a) => a.base_location(),
        }
    }

    /// Whether the two profiles could address a common object, i.e. one warehouse could
    /// read or delete another's data.
    pub fn overlaps(&self, other: &StorageProfile) -> bool {
        match (self, other) {
            (StorageProfile::File(a), StorageProfile::File(b)) => {
                let (a, b) = (Path::new(a.root_trimmed()), Path::new(b.root_trimmed()));
                a.starts_with(b) || b.starts_with(a)
            }
            (StorageProfile::S3(a), StorageProfile::S3(b)) => {
                a.bucket == b.bucket && a.same_store(b) && {
                    let (pa, pb) = (a.prefix(), b.prefix());
                    pa.is_empty() || pb.is_empty() || is_within(pa, pb) || is_within(pb, pa)
                }
            }
            // GCS bucket names are global, so the same bucket is the same store.
            (StorageProfile::Gcs(a), StorageProfile::Gcs(b)) => {
                a.bucket == b.bucket && {
                    let (pa, pb) = (a.prefix(), b.prefix());
                    pa.is_empty() || pb.is_empty() || is_within(pa, pb) || is_within(pb, pa)
                }
            }
            (StorageProfile::Adls(a), StorageProfile::Adls(b)) => a.overlaps(b),
            _ => false,
        }
    }

    /// Non-secret client properties for the Iceberg load-table `config`.
    pub fn table_config(&self) -> HashMap<String, String> {
        let mut cfg = HashMap::new();
        if let StorageProfile::Adls(a) = self {
            return a.table_config();
        }
        if let StorageProfile::S3(s) = self {
            cfg.insert("s3.region".into(), s.region.clone());
            cfg.insert("client.region".into(), s.region.clone());
            if let Some(ep) = s.endpoint_trimmed() {
                cfg.insert("s3.endpoint".into(), ep.to_string());
            }
            cfg.insert(
                "s3.path-style-access".into(),
                s.path_style_access.to_string(),
            );
            if !s.delete_enabled() {
                cfg.insert("s3.delete-enabled".into(), "false".into());
            }
        }
        cfg
    }

    /// [`StorageProfile::normalize_location`] plus the stricter rules for a location that
    /// becomes a table's or a view's root (create with a location, register,
    /// `set-location`): at most [`rules::MAX_TABLE_LOCATION_BYTES`], components of at most
    /// [`rules::MAX_LOCATION_COMPONENT_BYTES`], and below the warehouse root only the
    /// characters `file` warehouse roots allow. Object keys below a table (data files,
    /// Hive-style partition directories with percent-escapes) keep the looser
    /// `normalize_location` rules.
    pub fn normalize_table_location(&self, loc: &str) -> Result<String, StorageError> {
        let canonical = self.normalize_location(loc)?;
        let base = self.base_location();
        let rel = canonical
            .strip_prefix(base.as_str())
            .unwrap_or("")
            .trim_start_matches('/');
        if !rel.is_empty() {
            rules::check_table_location(&canonical, rel).map_err(|e| {
                let shown: String = loc.chars().take(120).collect();
                let more = if loc.chars().count() > 120 { "…" } else { "" };
                StorageError::Invalid(format!("location '{shown}{more}' {e}"))
            })?;
        }
        Ok(canonical)
    }

    /// Canonicalizes a location and checks it lies within `base_location()`.
    ///
    /// S3: `s3://` (plus `s3a://`/`s3n://` when `allow-alternative-protocols`) → `s3://…`.
    /// File: `file:///x`, `file:/x` (Hadoop style), `file://localhost/x` and `/x` → `file:///x`.
    /// Trailing '/' are dropped; empty, '.' and '..' segments are rejected (`Invalid`).
    pub fn normalize_location(&self, loc: &str) -> Result<String, StorageError> {
        let canonical = match self {
            StorageProfile::Adls(a) => return a.normalize_location(loc),
            StorageProfile::S3(s) => return s.normalize_location(loc),
            StorageProfile::File(_) => {
                let path = if let Some(r) = strip_prefix_ci(loc, "file://") {
                    if r.starts_with('/') {
                        r
                    } else if let Some(r) = strip_prefix_ci(r, "localhost/") {
                        &loc[loc.len() - r.len() - 1..]
                    } else {
                        return Err(StorageError::NotInWarehouse(format!(
                            "{loc} (file locations must not name a remote host)"
                        )));
                    }
                } else if let Some(r) = strip_prefix_ci(loc, "file:") {
                    r
                } else {
                    loc
                };
                if !path.starts_with('/') {
                    return Err(StorageError::NotInWarehouse(format!(
                        "{loc} (expected a file:// location or an absolute path)"
                    )));
                }
                let path = path.trim_end_matches('/');
                if !path.is_empty() {
                    rules::check_segments(&path[1..])
                        .map_err(|e| StorageError::Invalid(format!("location '{loc}' {e}")))?;
                }
                format!("file://{path}")
            }
            StorageProfile::Gcs(g) => {
                let Some(rest) = strip_prefix_ci(loc, "gs://") else {
                    return Err(StorageError::NotInWarehouse(format!(
                        "{loc} (expected a gs:// location)"
                    )));
                };
                let rest = rest.trim_end_matches('/');
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket != g.bucket {
                    return Err(StorageError::NotInWarehouse(loc.to_string()));
                }
                if key.is_empty() {
                    format!("gs://{bucket}")
                } else {
                    rules::check_segments(key)
                        .map_err(|e| StorageError::Invalid(format!("location '{loc}' {e}")))?;
                    format!("gs://{bucket}/{key}")
                }
            }
        };
        if is_within(&canonical, &self.base_location()) {
            Ok(canonical)
        } else {
            Err(StorageError::NotInWarehouse(loc.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3(bucket: &str, prefix: Option<&str>) -> StorageProfile {
        let mut p = S3Profile::new(bucket, "us-east-1");
        p.key_prefix = prefix.map(str::to_string);
        StorageProfile::S3(p)
    }

    fn file(root: &str) -> StorageProfile {
        StorageProfile::File(FileProfile {
            root: root.into(),
            gateway: false,
        })
    }

    fn s3p(p: &StorageProfile) -> &S3Profile {
        match p {
            StorageProfile::S3(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn s3_serde_defaults_and_round_trip() {
        let p: StorageProfile = serde_json::from_value(json!({
            "type": "s3", "bucket": "my-bucket", "region": "eu-central-1",
            "key-prefix": "/wh/one/"
        }))
        .unwrap();
        let s = s3p(&p);
        assert_eq!(s.key_prefix.as_deref(), Some("wh/one"));
        assert_eq!(s.flavor, S3Flavor::Aws);
        assert!(!s.path_style_access && !s.sts_enabled && !s.allow_alternative_protocols);
        assert!(s.push_s3_delete_disabled);
        assert_eq!(s.sts_token_validity_seconds, 3600);
        assert_eq!(s.remote_signing_url_style, RemoteSigningUrlStyle::Auto);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "s3");
        assert_eq!(v["key-prefix"], "wh/one");
        assert_eq!(v["push-s3-delete-disabled"], true);
        assert_eq!(v["flavor"], "aws");
        assert_eq!(v["remote-signing-url-style"], "auto");
        assert_eq!(serde_json::from_value::<StorageProfile>(v).unwrap(), p);
    }

    #[test]
    fn s3_serde_full_and_nulls() {
        let full = json!({
            "type": "s3", "bucket": "b-1", "key-prefix": "p", "region": "garage",
            "endpoint": "http://127.0.0.1:9000", "path-style-access": true,
            "flavor": "s3-compat", "sts-enabled": true,
            "assume-role-arn": "arn:aws:iam::123456789012:role/a",
            "sts-role-arn": "arn:aws:iam::123456789012:role/b",
            "sts-token-validity-seconds": 900, "sts-endpoint": "http://127.0.0.1:9001",
            "allow-alternative-protocols": true,
            "remote-signing-url-style": "virtual-host", "push-s3-delete-disabled": false,
            "aws-kms-key-arn": "arn:aws:kms:us-east-1:123456789012:key/k"
        });
        let p: StorageProfile = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap(), full);
        p.validate(&ValidationContext::default()).unwrap();

        let nulls: StorageProfile = serde_json::from_value(json!({
            "type": "s3", "bucket": "bkt", "region": "r", "key-prefix": null,
            "endpoint": null, "path-style-access": null, "flavor": null,
            "sts-enabled": null, "sts-token-validity-seconds": null,
            "push-s3-delete-disabled": null, "assume-role-arn": "",
            "remote-signing-url-style": null
        }))
        .unwrap();
        assert_eq!(nulls, s3("bkt", None).with_region("r"));
    }

    impl StorageProfile {
        fn with_region(mut self, r: &str) -> Self {
            if let StorageProfile::S3(s) = &mut self {
                s.region = r.into();
            }
            self
        }
    }

    #[test]
    fn serde_errors() {
        let e = serde_json::from_value::<StorageProfile>(
            json!({"type": "s3", "bucket": "b", "region": "r", "bogus": 1}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = serde_json::from_value::<StorageProfile>(json!({"type": "hdfs", "x": 1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant") && e.contains("hdfs"), "{e}");
        let e = serde_json::from_value::<StorageProfile>(json!({"type": "adls", "x": 1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field") && e.contains("`x`"), "{e}");
        let e = serde_json::from_value::<StorageProfile>(json!({"type": "s3", "region": "r"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bucket"), "{e}");
        assert!(serde_json::from_value::<StorageProfile>(
            json!({"type": "s3", "bucket": "b", "region": "r", "flavor": "minio"})
        )
        .is_err());
        let e =
            serde_json::from_value::<StorageProfile>(json!({"type": "file", "root": "/x", "y": 1}))
                .unwrap_err()
                .to_string();
        assert!(e.contains('y'), "{e}");
        let f: StorageProfile =
            serde_json::from_value(json!({"type": "file", "root": "/x/y/"})).unwrap();
        assert_eq!(f, file("/x/y"));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type": "file", "root": "/x/y"})
        );
    }

    #[test]
    fn s3_validation() {
        let ctx = ValidationContext::default();
        assert!(s3("good-bucket", Some("a/b")).validate(&ctx).is_ok());
        assert!(s3("Bad_Bucket", None).validate(&ctx).is_err());
        assert!(s3("good-bucket", Some("a//b")).validate(&ctx).is_err());
        assert!(s3("good-bucket", Some("a/../b")).validate(&ctx).is_err());

        let base = S3Profile::new("bkt", "us-east-1");
        let check = |f: &dyn Fn(&mut S3Profile)| {
            let mut p = base.clone();
            f(&mut p);
            StorageProfile::S3(p).validate(&ctx)
        };
        assert!(check(&|p| p.region = String::new()).is_err());
        assert!(check(&|p| p.endpoint = Some("ftp://x".into())).is_err());
        assert!(check(&|p| p.endpoint = Some("http://127.0.0.1:9000".into())).is_err());
        assert!(check(&|p| {
            p.endpoint = Some("http://127.0.0.1:9000".into());
            p.path_style_access = true;
        })
        .is_ok());
        assert!(check(&|p| p.endpoint = Some("https://minio.example.com".into())).is_ok());
        assert!(check(&|p| p.sts_token_validity_seconds = 899).is_err());
        assert!(check(&|p| p.sts_token_validity_seconds = 43201).is_err());
        assert!(check(&|p| p.sts_token_validity_seconds = 43200).is_ok());
        assert!(check(&|p| p.assume_role_arn = Some("arn:aws:iam::1:role/x".into())).is_err());
        assert!(check(&|p| p.sts_role_arn = Some("nope".into())).is_err());
        assert!(check(&|p| p.aws_kms_key_arn = Some("nope".into())).is_err());
        let e = check(&|p| p.sts_enabled = true).unwrap_err();
        assert!(
            matches!(&e, StorageError::Invalid(m) if m.contains("sts-role-arn")),
            "{e}"
        );
        assert!(check(&|p| {
            p.sts_enabled = true;
            p.sts_role_arn = Some("arn:aws:iam::123456789012:role/x".into());
        })
        .is_ok());
        assert!(check(&|p| {
            p.sts_enabled = true;
            p.assume_role_arn = Some("arn:aws:iam::123456789012:role/x".into());
        })
        .is_ok());
        let e = check(&|p| {
            p.sts_enabled = true;
            p.flavor = S3Flavor::S3Compat;
        })
        .unwrap_err();
        assert!(
            matches!(&e, StorageError::Invalid(m) if m.contains("sts-endpoint")),
            "{e}"
        );
        assert!(check(&|p| {
            p.sts_enabled = true;
            p.flavor = S3Flavor::S3Compat;
            p.endpoint = Some("https://minio.example.com".into());
        })
        .is_ok());
        assert!(check(&|p| {
            p.sts_enabled = true;
            p.flavor = S3Flavor::S3Compat;
            p.sts_endpoint = Some("https://sts.example.com".into());
        })
        .is_ok());
        assert!(check(&|p| p.sts_endpoint = Some("ftp://x".into())).is_err());
        assert!(check(&|p| p.sts_endpoint = Some("https://u:p@x".into())).is_err());
    }

    #[test]
    fn sts_endpoint_defaults() {
        let mut p = S3Profile::new("b", "eu-west-1");
        assert_eq!(
            p.sts_endpoint().as_deref(),
            Some("https://sts.eu-west-1.amazonaws.com")
        );
        p.region = "cn-north-1".into();
        assert_eq!(
            p.sts_endpoint().as_deref(),
            Some("https://sts.cn-north-1.amazonaws.com.cn")
        );
        p.endpoint = Some("http://minio:9000/".into());
        assert!(
            p.sts_endpoint().unwrap().contains("amazonaws"),
            "aws ignores endpoint"
        );
        p.flavor = S3Flavor::S3Compat;
        assert_eq!(p.sts_endpoint().as_deref(), Some("http://minio:9000"));
        p.sts_endpoint = Some("http://sts:9001/".into());
        assert_eq!(p.sts_endpoint().as_deref(), Some("http://sts:9001"));
        p.endpoint = None;
        p.sts_endpoint = None;
        assert_eq!(p.sts_endpoint(), None);

        assert!(!p.delete_enabled(), "delete is disabled by default");
        p.push_s3_delete_disabled = false;
        assert!(p.delete_enabled());
    }

    #[test]
    fn credential_compatibility() {
        use sluice_core::Secret;
        let ctx = ValidationContext::default();
        let cred = StorageCredential::s3_access_key("AK", Secret::new("sk"));
        let aws = s3("bkt", None);
        assert!(aws.validate_credential(Some(&cred), &ctx).is_ok());
        assert!(aws.validate_credential(None, &ctx).is_err());
        let mut compat = S3Profile::new("bkt", "r");
        compat.flavor = S3Flavor::S3Compat;
        assert!(StorageProfile::S3(compat)
            .validate_credential(None, &ctx)
            .is_err());
        assert!(file("/x").validate_credential(None, &ctx).is_ok());
        assert!(file("/x").validate_credential(Some(&cred), &ctx).is_err());
        let empty = StorageCredential::s3_access_key("AK", Secret::new(""));
        assert!(aws.validate_credential(Some(&empty), &ctx).is_err());
        let sys = StorageCredential::aws_system_identity(None);
        assert!(file("/x").validate_credential(Some(&sys), &ctx).is_err());
    }

    fn invalid_msg(r: Result<(), StorageError>) -> String {
        match r {
            Err(StorageError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn system_identity_rules() {
        let role = "arn:aws:iam::123456789012:role/lake";
        let with_role = {
            let mut p = S3Profile::new("bkt", "us-east-1");
            p.assume_role_arn = Some(role.into());
            StorageProfile::S3(p)
        };
        let no_role = s3("bkt", None);
        let ext = StorageCredential::aws_system_identity(Some("tenant-1".into()));
        let no_ext = StorageCredential::aws_system_identity(None);

        // Disabled (the default): refused whatever else is set.
        let off = ValidationContext::default();
        assert!(!off.settings.enable_aws_system_credentials);
        assert!(off.settings.require_external_id_for_system_credentials);
        let m = invalid_msg(with_role.validate_credential(Some(&ext), &off));
        assert!(
            m.contains("aws-system-identity credentials are disabled on this server")
                && m.contains("enable_aws_system_credentials"),
            "{m}"
        );

        // Enabled, external id required: both external-id and assume-role-arn.
        let on = ValidationContext {
            settings: StorageSettings {
                enable_aws_system_credentials: true,
                ..StorageSettings::default()
            },
            ..ValidationContext::default()
        };
        assert!(with_role.validate_credential(Some(&ext), &on).is_ok());
        let m = invalid_msg(with_role.validate_credential(Some(&no_ext), &on));
        assert!(
            m.contains("external-id") && m.contains("assume-role-arn"),
            "{m}"
        );
        let m = invalid_msg(no_role.validate_credential(Some(&ext), &on));
        assert!(m.contains("assume-role-arn"), "{m}");
        // The message for a missing credential now names system identity.
        let m = invalid_msg(no_role.validate_credential(None, &on));
        assert!(m.contains("aws-system-identity"), "{m}");
        let m = invalid_msg(no_role.validate_credential(None, &off));
        assert!(!m.contains("aws-system-identity"), "{m}");

        // Enabled, not required: the plain server identity is fine.
        let lax = ValidationContext {
            settings: StorageSettings {
                enable_aws_system_credentials: true,
                require_external_id_for_system_credentials: false,
                ..StorageSettings::default()
            },
            ..ValidationContext::default()
        };
        assert!(no_role.validate_credential(Some(&no_ext), &lax).is_ok());
        assert!(with_role.validate_credential(Some(&no_ext), &lax).is_ok());
        // The credential's own checks still apply.
        let bad = StorageCredential::aws_system_identity(Some(String::new()));
        assert!(with_role.validate_credential(Some(&bad), &lax).is_err());
    }

    #[test]
    fn cloudflare_r2_rules() {
        use crate::credential::S3Credential;
        use sluice_core::Secret;
        let cred = StorageCredential::S3(S3Credential::CloudflareR2 {
            account_id: "0123456789abcdef0123456789abcdef".into(),
            token: Secret::new("tok"),
            access_key_id: "k".into(),
            secret_access_key: Secret::new("s"),
        });
        let ctx = ValidationContext::default();
        let r2 = || {
            let mut p = S3Profile::new("bkt", "auto");
            p.flavor = S3Flavor::S3Compat;
            p.endpoint =
                Some("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com".into());
            p.sts_enabled = true;
            p
        };
        let check = |f: &dyn Fn(&mut S3Profile)| {
            let mut p = r2();
            f(&mut p);
            let p = StorageProfile::S3(p);
            p.validate(&ctx)
                .and_then(|_| p.validate_credential(Some(&cred), &ctx))
        };
        // Region "auto" is what R2 wants.
        assert!(check(&|_| {}).is_ok());
        assert!(check(&|p| p.sts_enabled = false).is_ok());
        // (With sts-enabled, profile validation already asks an aws profile for a role.)
        let m = invalid_msg(check(&|p| {
            p.flavor = S3Flavor::Aws;
            p.sts_enabled = false;
        }));
        assert!(m.contains("s3-compat"), "{m}");
        let m = invalid_msg(check(&|p| {
            p.endpoint = None;
            p.sts_enabled = false;
        }));
        assert!(m.contains("endpoint"), "{m}");
        for f in [
            &(|p: &mut S3Profile| {
                p.assume_role_arn = Some("arn:aws:iam::123456789012:role/x".into())
            }) as &dyn Fn(&mut S3Profile),
            &|p| p.sts_role_arn = Some("arn:aws:iam::123456789012:role/x".into()),
            &|p| p.sts_endpoint = Some("https://sts.example.com".into()),
            &|p| p.aws_kms_key_arn = Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
        ] {
            let m = invalid_msg(check(f));
            assert!(m.contains("cloudflare-r2"), "{m}");
        }
        // The server's system-identity switch does not concern R2.
        assert!(!ctx.settings.enable_aws_system_credentials);
    }

    #[test]
    fn file_root_validation() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("allowed");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let ctx = ValidationContext {
            allowed_file_roots: vec![allowed.clone()],
            ..ValidationContext::default()
        };
        let a = allowed.to_str().unwrap();

        assert!(file(a).validate(&ctx).is_ok(), "equal to the allowed root");
        assert!(
            file(&format!("{a}/wh1")).validate(&ctx).is_ok(),
            "missing dir below"
        );
        assert!(
            file(&format!("{a}/x/y/z")).validate(&ctx).is_ok(),
            "missing dirs below"
        );
        assert!(file("relative/path").validate(&ctx).is_err());
        assert!(file("/").validate(&ctx).is_err());
        assert!(
            file(&format!("{a}/../outside")).validate(&ctx).is_err(),
            "escape via .."
        );
        assert!(file(&format!("{a}/./x")).validate(&ctx).is_err());
        assert!(file(&format!("{a}//x")).validate(&ctx).is_err());
        assert!(file(&format!("{a}/a b")).validate(&ctx).is_err());
        assert!(file(&format!("{a}/a%20b")).validate(&ctx).is_err());
        assert!(file(outside.to_str().unwrap()).validate(&ctx).is_err());
        // A sibling whose name merely starts with the allowed root's name.
        let sibling = format!("{a}-evil");
        std::fs::create_dir_all(&sibling).unwrap();
        assert!(file(&sibling).validate(&ctx).is_err());
        assert!(
            file(&format!("{a}/wh"))
                .validate(&ValidationContext::default())
                .is_err(),
            "no allowed roots"
        );

        // Escape via a symlink inside the allowed root, existing and not-yet-existing tails.
        std::os::unix::fs::symlink(&outside, allowed.join("link")).unwrap();
        let e = file(&format!("{a}/link")).validate(&ctx).unwrap_err();
        assert!(
            matches!(&e, StorageError::Invalid(m) if m.contains("not under")),
            "{e}"
        );
        assert!(file(&format!("{a}/link/new/dir")).validate(&ctx).is_err());
        // A symlink that stays inside is fine.
        std::fs::create_dir_all(allowed.join("real")).unwrap();
        std::os::unix::fs::symlink(allowed.join("real"), allowed.join("inner")).unwrap();
        assert!(file(&format!("{a}/inner/wh")).validate(&ctx).is_ok());
        // Dangling symlink: its target is unknown, refuse.
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), allowed.join("dangling")).unwrap();
        assert!(file(&format!("{a}/dangling/wh")).validate(&ctx).is_err());
        // A regular file in the way.
        std::fs::write(allowed.join("afile"), b"x").unwrap();
        assert!(file(&format!("{a}/afile/wh")).validate(&ctx).is_err());

        // The allowed root itself reached through a symlink is accepted after resolution.
        let via_link = tmp.path().join("alias");
        std::os::unix::fs::symlink(&allowed, &via_link).unwrap();
        assert!(file(&format!("{}/wh", via_link.display()))
            .validate(&ctx)
            .is_ok());
    }

    #[test]
    fn base_locations() {
        assert_eq!(s3("bkt", None).base_location(), "s3://bkt");
        assert_eq!(s3("bkt", Some("a/b")).base_location(), "s3://bkt/a/b");
        assert_eq!(s3("bkt", Some("/a/b/")).base_location(), "s3://bkt/a/b");
        assert_eq!(file("/data/wh").base_location(), "file:///data/wh");
        assert_eq!(file("/data/wh/").base_location(), "file:///data/wh");
    }

    #[test]
    fn overlap() {
        assert!(s3("b", Some("t1")).overlaps(&s3("b", Some("t1"))));
        assert!(s3("b", Some("t1")).overlaps(&s3("b", Some("t1/x"))));
        assert!(s3("b", Some("t1/x")).overlaps(&s3("b", Some("t1"))));
        assert!(!s3("b", Some("t1")).overlaps(&s3("b", Some("t10"))));
        assert!(!s3("b", Some("t10")).overlaps(&s3("b", Some("t1"))));
        assert!(s3("b", None).overlaps(&s3("b", Some("t1"))));
        assert!(!s3("b", None).overlaps(&s3("c", None)));
        assert!(!s3("b", None).overlaps(&file("/b")));

        let compat = |ep: Option<&str>| {
            let mut p = S3Profile::new("b", "r");
            p.flavor = S3Flavor::S3Compat;
            p.endpoint = ep.map(str::to_string);
            StorageProfile::S3(p)
        };
        assert!(compat(Some("http://h:9000")).overlaps(&compat(Some("http://h:9000/"))));
        assert!(!compat(Some("http://h:9000")).overlaps(&compat(Some("http://g:9000"))));
        assert!(!compat(Some("http://h:9000")).overlaps(&s3("b", None)));
        assert!(compat(Some("https://s3.us-east-1.amazonaws.com")).overlaps(&s3("b", None)));

        assert!(file("/data/a").overlaps(&file("/data/a/b")));
        assert!(file("/data/a/b").overlaps(&file("/data/a")));
        assert!(file("/data/a").overlaps(&file("/data/a/")));
        assert!(!file("/data/a").overlaps(&file("/data/ab")));
    }

    #[test]
    fn table_config() {
        assert!(file("/x").table_config().is_empty());
        let mut p = S3Profile::new("b", "eu-west-1");
        p.push_s3_delete_disabled = false;
        let cfg = StorageProfile::S3(p.clone()).table_config();
        assert_eq!(cfg.get("s3.region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(
            cfg.get("client.region").map(String::as_str),
            Some("eu-west-1")
        );
        assert_eq!(
            cfg.get("s3.path-style-access").map(String::as_str),
            Some("false")
        );
        assert!(!cfg.contains_key("s3.endpoint"));
        p.endpoint = Some("http://127.0.0.1:9000/".into());
        p.path_style_access = true;
        let cfg = StorageProfile::S3(p).table_config();
        assert_eq!(
            cfg.get("s3.endpoint").map(String::as_str),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            cfg.get("s3.path-style-access").map(String::as_str),
            Some("true")
        );
        assert_eq!(cfg.len(), 4);
    }

    #[test]
    fn s3_locations() {
        let p = s3("bkt", Some("wh"));
        let ok = |l: &str| p.normalize_location(l).unwrap();
        assert_eq!(ok("s3://bkt/wh"), "s3://bkt/wh");
        assert_eq!(ok("s3://bkt/wh/"), "s3://bkt/wh");
        assert_eq!(ok("s3://bkt/wh/ns/t/"), "s3://bkt/wh/ns/t");
        assert_eq!(ok("S3://bkt/wh/ns/t"), "s3://bkt/wh/ns/t");
        let nw = |l: &str| {
            matches!(
                p.normalize_location(l),
                Err(StorageError::NotInWarehouse(_))
            )
        };
        assert!(nw("s3://bkt/wh2/t"), "segment-aware prefix");
        assert!(nw("s3://bkt/w"));
        assert!(nw("s3://bkt"));
        assert!(nw("s3://other/wh/t"));
        assert!(nw("s3a://bkt/wh/t"), "s3a not allowed by default");
        assert!(nw("gs://bkt/wh/t"));
        assert!(nw("file:///bkt/wh/t"));
        assert!(nw("bkt/wh/t"));
        let inv = |l: &str| matches!(p.normalize_location(l), Err(StorageError::Invalid(_)));
        assert!(inv("s3://bkt/wh/../secret"));
        assert!(inv("s3://bkt/wh/./x"));
        assert!(inv("s3://bkt/wh//x"));

        let mut alt = S3Profile::new("bkt", "r");
        alt.key_prefix = Some("wh".into());
        alt.allow_alternative_protocols = true;
        let alt = StorageProfile::S3(alt);
        assert_eq!(
            alt.normalize_location("s3a://bkt/wh/t").unwrap(),
            "s3://bkt/wh/t"
        );
        assert_eq!(
            alt.normalize_location("s3n://bkt/wh/t/").unwrap(),
            "s3://bkt/wh/t"
        );

        let root = s3("bkt", None);
        assert_eq!(root.normalize_location("s3://bkt").unwrap(), "s3://bkt");
        assert_eq!(root.normalize_location("s3://bkt/").unwrap(), "s3://bkt");
        assert_eq!(root.normalize_location("s3://bkt/x").unwrap(), "s3://bkt/x");
        assert!(root.normalize_location("s3://bkt2/x").is_err());
    }

    #[test]
    fn file_locations() {
        let p = file("/data/wh");
        let ok = |l: &str| p.normalize_location(l).unwrap();
        assert_eq!(ok("file:///data/wh/ns/t"), "file:///data/wh/ns/t");
        assert_eq!(ok("file:/data/wh/ns/t/"), "file:///data/wh/ns/t");
        assert_eq!(ok("file://localhost/data/wh/t"), "file:///data/wh/t");
        assert_eq!(ok("/data/wh/ns"), "file:///data/wh/ns");
        assert_eq!(ok("/data/wh"), "file:///data/wh");
        let nw = |l: &str| {
            matches!(
                p.normalize_location(l),
                Err(StorageError::NotInWarehouse(_))
            )
        };
        assert!(nw("/data/wh2/x"));
        assert!(nw("file:///data"));
        assert!(nw("file://host/data/wh/x"));
        assert!(nw("s3://data/wh"));
        assert!(nw("data/wh/x"));
        assert!(matches!(
            p.normalize_location("/data/wh/../etc"),
            Err(StorageError::Invalid(_))
        ));
    }

    #[test]
    fn within() {
        assert!(is_within("s3://b/t1", "s3://b/t1"));
        assert!(is_within("s3://b/t1/x", "s3://b/t1"));
        assert!(!is_within("s3://b/t10", "s3://b/t1"));
        assert!(!is_within("s3://b", "s3://b/t1"));
    }

    /// The probe's attacks on table locations: `%2E%2E`, `?`, `#` components and a
    /// 5,000-byte component all refused as invalid input, not stored or passed to the
    /// filesystem.
    #[test]
    fn table_location_rules() {
        let s3w = s3("bkt", Some("wh"));
        let filew = file("/data/wh");
        let inv = |p: &StorageProfile, l: &str| {
            matches!(p.normalize_table_location(l), Err(StorageError::Invalid(_)))
        };
        for rel in [
            "%2E%2E/x",
            "ns/%2E%2E",
            "ns/t%2e%2e",
            "a?b",
            "ns/t#frag",
            "a b",
            "a\\b",
            "ns/t%20x",
            "caf\u{e9}",
        ] {
            assert!(inv(&s3w, &format!("s3://bkt/wh/{rel}")), "{rel}");
            assert!(inv(&filew, &format!("file:///data/wh/{rel}")), "{rel}");
        }
        let long = "a".repeat(5000);
        assert!(inv(&filew, &format!("file:///data/wh/{long}")));
        assert!(inv(&s3w, &format!("s3://bkt/wh/{long}")));
        let component = "a".repeat(rules::MAX_LOCATION_COMPONENT_BYTES);
        assert!(filew
            .normalize_table_location(&format!("/data/wh/{component}"))
            .is_ok());
        assert!(inv(&filew, &format!("/data/wh/{component}b")));
        // Many short components: the total is bounded too.
        let deep = vec!["abcdefgh"; 120].join("/");
        assert!(inv(&s3w, &format!("s3://bkt/wh/{deep}")));
        let msg = filew
            .normalize_table_location(&format!("/data/wh/{long}"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.len() < 600,
            "the message does not echo 5,000 bytes: {msg}"
        );
        // Ordinary names pass; the warehouse prefix itself is not held to the stricter set.
        assert_eq!(
            s3w.normalize_table_location("s3://bkt/wh/ns/t-1_x.y~z+=,@")
                .unwrap(),
            "s3://bkt/wh/ns/t-1_x.y~z+=,@"
        );
        let spaced = s3("bkt", Some("a b"));
        assert_eq!(
            spaced.normalize_table_location("s3://bkt/a b/t").unwrap(),
            "s3://bkt/a b/t"
        );
        // Data-file keys below a table keep the looser rules (Hive partition escapes).
        assert!(s3w
            .normalize_location("s3://bkt/wh/t/data/p=a%20b/f.parquet")
            .is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("..".to_string()),
                Just(".".to_string()),
                Just("".to_string()),
                Just("%2E%2E".to_string()),
                Just("%2e.".to_string()),
                Just("?".to_string()),
                Just("#".to_string()),
                Just("\\..".to_string()),
                Just("wh".to_string()),
                Just("wh2".to_string()),
                Just("bkt".to_string()),
                Just("data".to_string()),
                "[a-zA-Z0-9._%?#~+=,@ -]{0,8}",
                any::<String>(),
            ]
        }

        fn location() -> impl Strategy<Value = String> {
            let head = prop_oneof![
                Just("s3://bkt/".to_string()),
                Just("S3A://bkt/".to_string()),
                Just("s3://bkt".to_string()),
                Just("gs://bkt/".to_string()),
                Just("file:///data/".to_string()),
                Just("file:/data/".to_string()),
                Just("file://localhost/data/".to_string()),
                Just("/data/".to_string()),
                Just("abfss://fs1@acct1.dfs.core.windows.net/".to_string()),
                Just("wasbs://fs1@acct1.blob.core.windows.net/".to_string()),
                any::<String>(),
            ];
            (
                head,
                proptest::collection::vec(segment(), 0..8),
                any::<bool>(),
            )
                .prop_map(|(h, segs, slash)| {
                    let mut l = h + &segs.join("/");
                    if slash {
                        l.push('/');
                    }
                    l
                })
        }

        fn profiles() -> Vec<StorageProfile> {
            let mut alt = S3Profile::new("bkt", "r");
            alt.key_prefix = Some("wh".into());
            alt.allow_alternative_protocols = true;
            let mut adls = AdlsProfile::new("acct1", "fs1");
            adls.key_prefix = Some("wh".into());
            adls.allow_alternative_protocols = true;
            vec![
                s3("bkt", Some("wh")),
                s3("bkt", None),
                StorageProfile::S3(alt),
                file("/data/wh"),
                StorageProfile::Gcs(GcsProfile::new("bkt", Some("wh"))),
                StorageProfile::Adls(adls),
            ]
        }

        proptest! {
            // 1024 cases unless PROPTEST_CASES asks for a longer run (`with_cases` alone
            // would override the variable).
            #![proptest_config(ProptestConfig::with_cases(
                std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024)
            ))]

            /// Normalization never panics; what it accepts lies inside the warehouse root,
            /// has no '.', '..' or empty components, and a table location additionally only
            /// uses the root character set below the root.
            #[test]
            fn normalized_locations_stay_inside(loc in location()) {
                for p in profiles() {
                    let base = p.base_location();
                    if let Ok(n) = p.normalize_location(&loc) {
                        prop_assert!(is_within(&n, &base), "{loc} -> {n} escapes {base}");
                        let rest = n.split_once("://").map(|(_, r)| r).unwrap_or(&n);
                        let rest = rest.trim_start_matches('/');
                        prop_assert!(rest.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{loc} -> {n}");
                        prop_assert!(!n.ends_with('/'), "{n}");
                        // Normalizing is idempotent.
                        prop_assert_eq!(p.normalize_location(&n).ok(), Some(n.clone()));
                    }
                    if let Ok(t) = p.normalize_table_location(&loc) {
                        prop_assert!(is_within(&t, &base));
                        prop_assert!(t.len() <= rules::MAX_TABLE_LOCATION_BYTES);
                        let rel = t[base.len()..].trim_start_matches('/');
                        prop_assert!(rel.chars().all(|c| c == '/' || rules::is_location_char(c)), "{t}");
                        prop_assert!(!rel.split('/').any(|c| c == ".." || c == "."), "{t}");
                        prop_assert!(rel.split('/').all(|c| c.len() <= rules::MAX_LOCATION_COMPONENT_BYTES));
                    }
                }
            }
        }
    }
}
