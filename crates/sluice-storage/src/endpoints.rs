//! Where a warehouse's storage traffic (and with it the stored credential) goes, and the
//! operator's allowlist of such destinations (`allowed_storage_endpoints`).
//!
//! Anybody who may create or change a warehouse chooses its endpoints (S3 `endpoint`,
//! `sts-endpoint`, the ADLS `host` and `authority-host`, a service-account key's
//! `token_uri`). Without a list the server sends requests wherever they say, as before;
//! with one, only to the clouds' public endpoints, the endpoints the server itself is
//! configured with, and the listed hosts, so a warehouse creator cannot make Sluice talk to
//! internal addresses (SSRF).

use crate::credential::StorageCredential;
use crate::gcs::GcsCredential;
use crate::profile::StorageProfile;

/// The public endpoints of the supported clouds, always allowed when a list is set.
pub const PUBLIC_CLOUD_HOSTS: &[&str] = &[
    // AWS S3 and STS, including the China partition.
    "*.amazonaws.com",
    "*.amazonaws.com.cn",
    // Azure Blob/DFS (public, China, US Government) and Entra ID.
    "*.core.windows.net",
    "*.core.chinacloudapi.cn",
    "*.core.usgovcloudapi.net",
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
    // Google Cloud Storage, OAuth2 and STS.
    "*.googleapis.com",
    // Cloudflare R2.
    "*.r2.cloudflarestorage.com",
];

/// One allowlist entry: a host (`s3.example.com`, `10.0.0.5`, `[::1]`) or every host below
/// a domain (`*.example.com`), optionally with a port (`minio.internal:9000`). A URL is
/// accepted too (`https://minio.internal:9000`): its host and explicit port count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; IPv6 without brackets. For a wildcard, the suffix after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let e = entry.trim();
        let bad = |why: &str| format!("allowed_storage_endpoints entry '{entry}': {why}");
        if e.is_empty() {
            return Err(bad("is empty"));
        }
        let (wildcard, rest) = match e.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, e),
        };
        // Parse as a URL so IPv6, ports and case are handled the way request URLs are.
        let url = if rest.contains("://") {
            if wildcard {
                return Err(bad("a wildcard takes a host, not a URL"));
            }
            url::Url::parse(rest).map_err(|err| bad(&err.to_string()))?
        } else {
            url::Url::parse(&format!("http://{rest}")).map_err(|err| bad(&err.to_string()))?
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad(
                "only a host, an optional port, or a URL without credentials, query or fragment",
            ));
        }
        if !rest.contains("://") && rest.contains('/') {
            return Err(bad("a host must not contain '/' (give a URL or host:port)"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("has no host")),
        };
        if wildcard && !matches!(url.host(), Some(url::Host::Domain(_))) {
            return Err(bad("a wildcard needs a domain name after '*.'"));
        }
        Ok(HostPattern {
            host,
            wildcard,
            port: url.port(),
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.wildcard {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            host == self.host
        }
    }
}

/// The operator's allowlist. `None` in [`crate::ValidationContext`] means unrestricted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAllowlist {
    patterns: Vec<HostPattern>,
}

impl EndpointAllowlist {
    /// The configured `entries`, the public cloud endpoints, and the hosts of the endpoints
    /// the server itself is configured with (`server_urls`, e.g. `gcs_endpoint`).
    pub fn new(entries: &[String], server_urls: &[&str]) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for e in entries {
            patterns.push(HostPattern::parse(e)?);
        }
        for h in PUBLIC_CLOUD_HOSTS {
            patterns.push(HostPattern::parse(h).expect("built-in pattern"));
        }
        for u in server_urls {
            // The server's own settings are validated elsewhere; an unparsable one adds nothing.
            if let Ok(p) = HostPattern::parse(u) {
                patterns.push(p);
            }
        }
        Ok(EndpointAllowlist { patterns })
    }

    /// Whether requests to `url` may be sent.
    pub fn allows(&self, url: &url::Url) -> bool {
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return false,
        };
        // A trailing dot names the same host; strip it so `evil.` cannot dodge an exact entry
        // nor `x.amazonaws.com.` miss the public suffix.
        let host = host.trim_end_matches('.');
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        self.patterns.iter().any(|p| p.matches(host, port))
    }
}

impl StorageProfile {
    /// Every remote endpoint the server contacts for this warehouse, as (field, URL): object
    /// access, STS/token endpoints, including defaults. The credential adds its own
    /// (a service-account key's `token_uri`).
    pub fn endpoints(&self, cred: Option<&StorageCredential>) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self {
            StorageProfile::File(_) => {}
            StorageProfile::S3(s) => {
                match s.endpoint_trimmed() {
                    Some(ep) => out.push(("endpoint", ep.to_string())),
                    None => out.push(("region", format!("https://s3.{}.amazonaws.com", s.region))),
                }
                if let Some(sts) = s.sts_endpoint() {
                    out.push(("sts-endpoint", sts));
                }
            }
            StorageProfile::Gcs(_) => {}
            StorageProfile::Adls(a) => {
                out.push(("host", a.blob_endpoint()));
                out.push(("authority-host", a.authority_host().to_string()));
            }
        }
        if let Some(StorageCredential::Gcs(GcsCredential::ServiceAccountKey { key })) = cred {
            out.push(("key.token_uri", key.token_uri().to_string()));
        }
        out
    }

    /// The settings that decide where a stored credential is sent or what it is used for:
    /// changing any of them while keeping the stored credential would let whoever changes
    /// the profile redirect a secret they never saw. Compared by [`Self::redirected_fields`].
    fn credential_destination(&self) -> Vec<(&'static str, String)> {
        match self {
            StorageProfile::File(f) => vec![("root", f.root_trimmed().to_string())],
            StorageProfile::S3(s) => vec![
                ("bucket", s.bucket.clone()),
                ("region", s.region.clone()),
                (
                    "endpoint",
                    s.endpoint_trimmed().unwrap_or("").to_ascii_lowercase(),
                ),
                (
                    "sts-endpoint",
                    s.sts_endpoint().unwrap_or_default().to_ascii_lowercase(),
                ),
                ("flavor", format!("{:?}", s.flavor)),
                ("path-style-access", s.path_style_access.to_string()),
                (
                    "assume-role-arn",
                    s.assume_role_arn.clone().unwrap_or_default(),
                ),
                ("sts-role-arn", s.sts_role_arn.clone().unwrap_or_default()),
            ],
            StorageProfile::Gcs(g) => vec![("bucket", g.bucket.clone())],
            StorageProfile::Adls(a) => vec![
                ("account-name", a.account_name.clone()),
                ("filesystem", a.filesystem.clone()),
                ("host", a.host()),
                ("authority-host", a.authority_host().to_ascii_lowercase()),
            ],
        }
    }

    /// The fields whose change between `self` (stored) and `new` would send the stored
    /// credential somewhere else, or use it for something else. Empty when only harmless
    /// settings (key prefix, validity, vending switches) change.
    pub fn redirected_fields(&self, new: &StorageProfile) -> Vec<&'static str> {
        if self.storage_type() != new.storage_type() {
            return vec!["type"];
        }
        let (old, new) = (self.credential_destination(), new.credential_destination());
        old.iter()
            .zip(new.iter())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect()
    }

    /// Refuses endpoints the allowlist does not cover (nothing is checked without a list).
    pub(crate) fn check_endpoints(
        &self,
        cred: Option<&StorageCredential>,
        allowlist: Option<&EndpointAllowlist>,
    ) -> Result<(), crate::StorageError> {
        let Some(list) = allowlist else {
            return Ok(());
        };
        for (field, raw) in self.endpoints(cred) {
            let ok = url::Url::parse(&raw)
                .map(|u| list.allows(&u))
                .unwrap_or(false);
            if !ok {
                return Err(crate::StorageError::Invalid(format!(
                    "{field}: '{raw}' is not an allowed storage endpoint on this server \
                     (allowed_storage_endpoints)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adls::AdlsProfile;
    use crate::profile::S3Profile;

    fn list(entries: &[&str]) -> EndpointAllowlist {
        let e: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        EndpointAllowlist::new(&e, &["http://127.0.0.1:4443/storage/v1"]).unwrap()
    }

    fn allows(l: &EndpointAllowlist, u: &str) -> bool {
        l.allows(&url::Url::parse(u).unwrap())
    }

    #[test]
    fn patterns() {
        let l = list(&[
            "minio.internal:9000",
            "*.corp.example",
            "10.1.2.3",
            "https://[::1]:9443/x",
        ]);
        assert!(allows(&l, "http://minio.internal:9000"));
        assert!(!allows(&l, "http://minio.internal:9001"));
        assert!(!allows(&l, "http://minio.internal"));
        assert!(allows(&l, "https://s3.corp.example/b"));
        assert!(allows(&l, "https://a.b.corp.example"));
        assert!(!allows(&l, "https://corp.example"));
        assert!(!allows(&l, "https://evilcorp.example"));
        assert!(allows(&l, "http://10.1.2.3:1234"));
        assert!(allows(&l, "https://[::1]:9443"));
        assert!(!allows(&l, "https://[::1]:9444"));
        // Public clouds and the server's own endpoints.
        assert!(allows(&l, "https://s3.eu-central-1.amazonaws.com"));
        assert!(allows(&l, "https://sts.cn-north-1.amazonaws.com.cn"));
        assert!(allows(&l, "https://acct.blob.core.windows.net"));
        assert!(allows(&l, "https://login.microsoftonline.com"));
        assert!(allows(&l, "https://oauth2.googleapis.com/token"));
        assert!(allows(&l, "http://127.0.0.1:4443"));
        assert!(!allows(&l, "http://127.0.0.1:4444"));
        assert!(!allows(&l, "http://169.254.169.254/latest"));
        assert!(!allows(&l, "https://amazonaws.com.evil.example"));
        assert!(!allows(&l, "https://evil-amazonaws.com"));
        assert!(allows(&l, "https://s3.amazonaws.com."));
        for bad in ["", "*.", "*.10.0.0.1", "a/b", "http://u:p@h", "*.http://x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn profile_endpoints_checked() {
        let l = list(&["minio.internal:9000"]);
        let mut s = S3Profile::new("bkt", "us-east-1");
        let p = StorageProfile::S3(s.clone());
        assert!(
            p.check_endpoints(None, Some(&l)).is_ok(),
            "AWS defaults are public"
        );
        s.endpoint = Some("http://minio.internal:9000".into());
        s.flavor = crate::S3Flavor::S3Compat;
        assert!(StorageProfile::S3(s.clone())
            .check_endpoints(None, Some(&l))
            .is_ok());
        s.sts_endpoint = Some("http://169.254.169.254".into());
        let e = StorageProfile::S3(s.clone())
            .check_endpoints(None, Some(&l))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sts-endpoint") && e.contains("allowed_storage_endpoints"),
            "{e}"
        );
        assert!(
            StorageProfile::S3(s).check_endpoints(None, None).is_ok(),
            "no list: unrestricted"
        );

        let mut a = AdlsProfile::new("acct1", "fs1");
        assert!(StorageProfile::Adls(a.clone())
            .check_endpoints(None, Some(&l))
            .is_ok());
        a.authority_host = Some("http://10.0.0.1:8080".into());
        let e = StorageProfile::Adls(a.clone())
            .check_endpoints(None, Some(&l))
            .unwrap_err()
            .to_string();
        assert!(e.contains("authority-host"), "{e}");
        a.authority_host = None;
        a.host = Some("127.0.0.1:10000".into());
        let e = StorageProfile::Adls(a)
            .check_endpoints(None, Some(&l))
            .unwrap_err()
            .to_string();
        assert!(e.contains("host"), "{e}");
    }

    #[test]
    fn redirects() {
        let mut old = S3Profile::new("bkt", "us-east-1");
        old.endpoint = Some("http://127.0.0.1:9000".into());
        old.flavor = crate::S3Flavor::S3Compat;
        old.path_style_access = true;
        let o = StorageProfile::S3(old.clone());
        let changed = |f: &dyn Fn(&mut S3Profile)| {
            let mut n = old.clone();
            f(&mut n);
            o.redirected_fields(&StorageProfile::S3(n))
        };
        assert!(changed(&|n| n.key_prefix = Some("other".into())).is_empty());
        assert!(changed(&|n| n.sts_token_validity_seconds = 900).is_empty());
        assert!(changed(&|n| n.endpoint = Some("http://127.0.0.1:9000/".into())).is_empty());
        assert_eq!(
            changed(&|n| n.endpoint = Some("http://evil:9000".into())),
            vec!["endpoint", "sts-endpoint"]
        );
        assert_eq!(
            changed(&|n| n.sts_endpoint = Some("http://evil".into())),
            vec!["sts-endpoint"]
        );
        assert_eq!(changed(&|n| n.bucket = "other".into()), vec!["bucket"]);
        assert_eq!(changed(&|n| n.region = "eu-west-1".into()), vec!["region"]);
        assert_eq!(
            changed(&|n| n.assume_role_arn = Some("arn:aws:iam::123456789012:role/x".into())),
            vec!["assume-role-arn"]
        );
        assert_eq!(
            o.redirected_fields(&StorageProfile::Adls(AdlsProfile::new("acct1", "fs1"))),
            vec!["type"]
        );

        let a = AdlsProfile::new("acct1", "fs1");
        let ao = StorageProfile::Adls(a.clone());
        let mut n = a.clone();
        n.authority_host = Some("https://login.microsoftonline.com/".into());
        assert!(
            ao.redirected_fields(&StorageProfile::Adls(n.clone()))
                .is_empty(),
            "the default spelled out"
        );
        n.authority_host = Some("https://evil.example".into());
        assert_eq!(
            ao.redirected_fields(&StorageProfile::Adls(n)),
            vec!["authority-host"]
        );
        let mut n = a.clone();
        n.host = Some("dfs.core.chinacloudapi.cn".into());
        n.account_name = "acct2".into();
        assert_eq!(
            ao.redirected_fields(&StorageProfile::Adls(n)),
            vec!["account-name", "host"]
        );
        let mut n = a;
        n.key_prefix = Some("x".into());
        n.allow_container_wide_sas = true;
        assert!(ao.redirected_fields(&StorageProfile::Adls(n)).is_empty());
    }
}
