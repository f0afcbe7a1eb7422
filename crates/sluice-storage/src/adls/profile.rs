//! The `adls` storage profile: an ADLS Gen2 filesystem (a blob container) below an optional
//! key prefix, in Lakekeeper's wire format.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::StorageError;
use crate::rules;

pub const DEFAULT_ADLS_HOST: &str = "dfs.core.windows.net";
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
pub const DEFAULT_SAS_TOKEN_VALIDITY_SECONDS: u64 = 3600;
/// A user-delegation key lives at most seven days, and a SAS cannot outlive its key.
pub const SAS_TOKEN_VALIDITY_RANGE: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;

/// An ADLS Gen2 filesystem. Locations are `abfss://<filesystem>@<account-name>.<host>/<key-prefix>/…`.
///
/// `host` is the DFS host suffix (`dfs.core.windows.net`, or a sovereign cloud's). Object
/// access uses the Blob endpoint of the same account (`dfs.` → `blob.`), because Iceberg only
/// needs object operations and the Blob API works on accounts with and without a hierarchical
/// namespace. A `host` that is an IP address or `localhost` (with an optional port) names an
/// emulator such as Azurite: it is reached path-style over plain HTTP at
/// `http://<host>/<account-name>`.
///
/// Vended SAS tokens are directory-scoped (`sr=d`) to the table on accounts with a
/// hierarchical namespace. Other accounts only support container-wide SAS tokens, which
/// would let a client read every table in the filesystem, so vending there is refused unless
/// `allow-container-wide-sas` is true (a Sluice extension to Lakekeeper's format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdlsProfile {
    pub account_name: String,
    pub filesystem: String,
    #[serde(
        default,
        deserialize_with = "de_key_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_prefix: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub host: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub authority_host: Option<String>,
    #[serde(default = "default_validity", deserialize_with = "de_validity")]
    pub sas_token_validity_seconds: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allow_alternative_protocols: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allow_container_wide_sas: bool,
}

fn default_validity() -> u64 {
    DEFAULT_SAS_TOKEN_VALIDITY_SECONDS
}
fn de_validity<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(DEFAULT_SAS_TOKEN_VALIDITY_SECONDS))
}
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}
fn de_key_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| s.trim_matches('/').to_string())
        .filter(|s| !s.is_empty()))
}

/// `s` with a case-insensitive `prefix` removed.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl AdlsProfile {
    /// A profile with every optional field at its default.
    pub fn new(account_name: impl Into<String>, filesystem: impl Into<String>) -> Self {
        AdlsProfile {
            account_name: account_name.into(),
            filesystem: filesystem.into(),
            key_prefix: None,
            host: None,
            authority_host: None,
            sas_token_validity_seconds: DEFAULT_SAS_TOKEN_VALIDITY_SECONDS,
            allow_alternative_protocols: false,
            allow_container_wide_sas: false,
        }
    }

    /// The key prefix without surrounding '/', or "" for the filesystem root.
    pub fn prefix(&self) -> &str {
        self.key_prefix.as_deref().unwrap_or("").trim_matches('/')
    }

    /// The DFS host suffix, lower-case.
    pub fn host(&self) -> String {
        self.host
            .as_deref()
            .unwrap_or(DEFAULT_ADLS_HOST)
            .to_ascii_lowercase()
    }

    /// The Entra ID authority that issues tokens for `client-credentials`, without trailing '/'.
    pub fn authority_host(&self) -> &str {
        self.authority_host
            .as_deref()
            .unwrap_or(DEFAULT_AUTHORITY_HOST)
            .trim_end_matches('/')
    }

    /// Whether `host` names a local emulator (path-style, plain HTTP) rather than a cloud.
    pub fn is_emulator(&self) -> bool {
        let host = self.host();
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            _ => host.clone(),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
    }

    /// The Blob host suffix for the same cloud: `dfs.` → `blob.`; other hosts unchanged.
    pub fn blob_host(&self) -> String {
        let host = self.host();
        match host.strip_prefix("dfs.") {
            Some(rest) => format!("blob.{rest}"),
            None => host,
        }
    }

    /// The account's Blob service URL without trailing '/':
    /// `https://<account>.blob.<suffix>`, or `http://<host>/<account>` for an emulator.
    pub fn blob_endpoint(&self) -> String {
        if self.is_emulator() {
            format!("http://{}/{}", self.host(), self.account_name)
        } else {
            format!("https://{}.{}", self.account_name, self.blob_host())
        }
    }

    /// `abfss://<filesystem>@<account>.<host>`, the part of every location before the key.
    pub fn authority_location(&self) -> String {
        format!(
            "abfss://{}@{}.{}",
            self.filesystem,
            self.account_name,
            self.host()
        )
    }

    pub fn base_location(&self) -> String {
        match self.prefix() {
            "" => self.authority_location(),
            p => format!("{}/{p}", self.authority_location()),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let inv = StorageError::Invalid;
        // Azure's rules: 3-24 lower-case letters and digits.
        let a = &self.account_name;
        if a.len() < 3
            || a.len() > 24
            || !a
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(inv(format!(
                "account-name '{a}' must be 3-24 lower-case letters and digits"
            )));
        }
        // Container naming rules: 3-63 of [a-z0-9-], starting and ending with a letter or
        // digit, no "--".
        let f = &self.filesystem;
        if f.len() < 3
            || f.len() > 63
            || !f
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || f.starts_with('-')
            || f.ends_with('-')
            || f.contains("--")
        {
            return Err(inv(format!(
                "filesystem '{f}' must be 3-63 lower-case letters, digits and single '-' \
                 (not at either end)"
            )));
        }
        if let Some(p) = &self.key_prefix {
            rules::normalize_key_prefix(p).map_err(|e| inv(format!("key-prefix: {e}")))?;
        }
        if let Some(h) = &self.host {
            check_host(h).map_err(|e| inv(format!("host '{h}': {e}")))?;
        }
        if let Some(a) = &self.authority_host {
            rules::check_endpoint(a).map_err(|e| inv(format!("authority-host: {e}")))?;
        }
        if !SAS_TOKEN_VALIDITY_RANGE.contains(&self.sas_token_validity_seconds) {
            return Err(inv(format!(
                "sas-token-validity-seconds must be between {} and {}",
                SAS_TOKEN_VALIDITY_RANGE.start(),
                SAS_TOKEN_VALIDITY_RANGE.end()
            )));
        }
        Ok(())
    }

    /// Two profiles overlap when they name the same filesystem of the same account on the
    /// same cloud and one key prefix contains the other.
    pub(crate) fn overlaps(&self, other: &AdlsProfile) -> bool {
        self.account_name == other.account_name
            && self.filesystem == other.filesystem
            && self.blob_host() == other.blob_host()
            && {
                let (pa, pb) = (self.prefix(), other.prefix());
                pa.is_empty()
                    || pb.is_empty()
                    || crate::profile::is_within(pa, pb)
                    || crate::profile::is_within(pb, pa)
            }
    }

    /// Non-secret client properties: the account and, where the client cannot derive it from
    /// the location, how to reach it (PyIceberg's PyArrow and fsspec file IOs).
    pub(crate) fn table_config(&self) -> HashMap<String, String> {
        let mut cfg = HashMap::from([("adls.account-name".to_string(), self.account_name.clone())]);
        if self.is_emulator() {
            let host = self.host();
            cfg.insert("adls.blob-storage-authority".into(), host.clone());
            cfg.insert("adls.dfs-storage-authority".into(), host);
            cfg.insert("adls.blob-storage-scheme".into(), "http".into());
            cfg.insert("adls.dfs-storage-scheme".into(), "http".into());
        } else if self.host() != DEFAULT_ADLS_HOST {
            cfg.insert(
                "adls.account-host".into(),
                format!("{}.{}", self.account_name, self.blob_host()),
            );
            cfg.insert("adls.blob-storage-authority".into(), self.blob_host());
            cfg.insert("adls.dfs-storage-authority".into(), self.host());
        }
        cfg
    }

    /// Canonicalizes `abfss://fs@account.host/key` (also `abfs://`, and `wasbs://` / `wasb://`
    /// on the Blob host with `allow-alternative-protocols`) and checks it lies within the
    /// warehouse. Returns the canonical `abfss://` form without trailing '/'.
    pub(crate) fn normalize_location(&self, loc: &str) -> Result<String, StorageError> {
        let (rest, host) = if let Some(r) =
            strip_prefix_ci(loc, "abfss://").or_else(|| strip_prefix_ci(loc, "abfs://"))
        {
            (r, self.host())
        } else if let Some(r) =
            strip_prefix_ci(loc, "wasbs://").or_else(|| strip_prefix_ci(loc, "wasb://"))
        {
            if !self.allow_alternative_protocols {
                return Err(StorageError::NotInWarehouse(format!(
                    "{loc} (wasbs:// is accepted only with allow-alternative-protocols)"
                )));
            }
            (r, self.blob_host())
        } else {
            return Err(StorageError::NotInWarehouse(format!(
                "{loc} (expected an abfss:// location)"
            )));
        };
        let rest = rest.trim_end_matches('/');
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        let expected = format!("{}@{}.{}", self.filesystem, self.account_name, host);
        if !authority.eq_ignore_ascii_case(&expected) {
            return Err(StorageError::NotInWarehouse(format!(
                "{loc} (expected {}://{expected}/…)",
                if host == self.host() {
                    "abfss"
                } else {
                    "wasbs"
                }
            )));
        }
        let canonical = if key.is_empty() {
            self.authority_location()
        } else {
            rules::check_segments(key)
                .map_err(|e| StorageError::Invalid(format!("location '{loc}' {e}")))?;
            format!("{}/{key}", self.authority_location())
        };
        if crate::profile::is_within(&canonical, &self.base_location()) {
            Ok(canonical)
        } else {
            Err(StorageError::NotInWarehouse(loc.to_string()))
        }
    }

    /// The blob path (key) of a canonical location, "" for the filesystem root.
    pub(crate) fn key_of<'a>(&self, canonical: &'a str) -> &'a str {
        let rest = canonical
            .get(self.authority_location().len()..)
            .unwrap_or("");
        rest.strip_prefix('/').unwrap_or(rest)
    }
}

/// A host name (optionally with a port): letters, digits, '-', '.', no scheme or path.
fn check_host(h: &str) -> Result<(), String> {
    if h.contains("://") {
        return Err("must be a host name without scheme, e.g. dfs.core.windows.net".into());
    }
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err("has an invalid port".into());
        }
    }
    if name.is_empty()
        || name.len() > 253
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
    {
        return Err("must be a host name of letters, digits, '-' and '.'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(prefix: Option<&str>) -> AdlsProfile {
        let mut p = AdlsProfile::new("acct1", "fs1");
        p.key_prefix = prefix.map(str::to_string);
        p
    }

    #[test]
    fn wire_format() {
        let json = r#"{"type":"adls","account-name":"acct1","filesystem":"fs1","key-prefix":"/wh/","host":null,"authority-host":"","sas-token-validity-seconds":null,"allow-alternative-protocols":null}"#;
        let prof: crate::StorageProfile = serde_json::from_str(json).unwrap();
        let crate::StorageProfile::Adls(a) = &prof else {
            panic!()
        };
        assert_eq!(a.prefix(), "wh");
        assert_eq!(a.sas_token_validity_seconds, 3600);
        assert_eq!(
            serde_json::to_string(&prof).unwrap(),
            r#"{"type":"adls","account-name":"acct1","filesystem":"fs1","key-prefix":"wh","sas-token-validity-seconds":3600,"allow-alternative-protocols":false,"allow-container-wide-sas":false}"#
        );
        let e = serde_json::from_str::<crate::StorageProfile>(
            r#"{"type":"adls","account-name":"a","filesystem":"f","bucket":"x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bucket"), "{e}");
    }

    #[test]
    fn endpoints() {
        let a = p(Some("wh"));
        assert!(!a.is_emulator());
        assert_eq!(a.blob_endpoint(), "https://acct1.blob.core.windows.net");
        assert_eq!(
            a.base_location(),
            "abfss://fs1@acct1.dfs.core.windows.net/wh"
        );
        let mut cn = a.clone();
        cn.host = Some("dfs.core.chinacloudapi.cn".into());
        assert_eq!(
            cn.blob_endpoint(),
            "https://acct1.blob.core.chinacloudapi.cn"
        );
        assert_eq!(
            cn.table_config()["adls.account-host"],
            "acct1.blob.core.chinacloudapi.cn"
        );
        let mut emu = a.clone();
        emu.host = Some("127.0.0.1:10000".into());
        assert!(emu.is_emulator());
        assert_eq!(emu.blob_endpoint(), "http://127.0.0.1:10000/acct1");
        assert_eq!(emu.table_config()["adls.blob-storage-scheme"], "http");
        emu.host = Some("localhost".into());
        assert!(emu.is_emulator());
        assert_eq!(a.table_config().len(), 1);
    }

    #[test]
    fn validation() {
        assert!(p(Some("wh")).validate().is_ok());
        let bad = |f: &dyn Fn(&mut AdlsProfile), field: &str| {
            let mut x = p(None);
            f(&mut x);
            match x.validate() {
                Err(StorageError::Invalid(m)) => assert!(m.contains(field), "{m} lacks {field}"),
                other => panic!("{other:?}"),
            }
        };
        bad(&|x| x.account_name = "Acct".into(), "account-name");
        bad(&|x| x.account_name = "ab".into(), "account-name");
        bad(&|x| x.filesystem = "a--b".into(), "filesystem");
        bad(&|x| x.filesystem = "-ab".into(), "filesystem");
        bad(&|x| x.host = Some("https://x.y".into()), "host");
        bad(&|x| x.host = Some("x/y".into()), "host");
        bad(&|x| x.host = Some("x:99999".into()), "host");
        bad(
            &|x| x.authority_host = Some("not a url".into()),
            "authority-host",
        );
        bad(
            &|x| x.sas_token_validity_seconds = 10,
            "sas-token-validity-seconds",
        );
        bad(
            &|x| x.sas_token_validity_seconds = 8 * 24 * 3600,
            "sas-token-validity-seconds",
        );
        bad(&|x| x.key_prefix = Some("a/../b".into()), "key-prefix");
    }

    #[test]
    fn locations() {
        let a = p(Some("wh"));
        let ok = |l: &str| a.normalize_location(l).unwrap();
        let base = "abfss://fs1@acct1.dfs.core.windows.net/wh";
        assert_eq!(ok(base), base);
        assert_eq!(ok(&format!("{base}/ns/t/")), format!("{base}/ns/t"));
        assert_eq!(
            ok("ABFSS://fs1@ACCT1.dfs.core.windows.net/wh/t"),
            format!("{base}/t")
        );
        assert_eq!(
            ok("abfs://fs1@acct1.dfs.core.windows.net/wh/t"),
            format!("{base}/t")
        );
        let nw = |l: &str| {
            matches!(
                a.normalize_location(l),
                Err(StorageError::NotInWarehouse(_))
            )
        };
        assert!(nw("abfss://fs1@acct1.dfs.core.windows.net/wh2/t"));
        assert!(nw("abfss://fs1@acct1.dfs.core.windows.net"));
        assert!(nw("abfss://fs2@acct1.dfs.core.windows.net/wh/t"));
        assert!(nw("abfss://fs1@acct2.dfs.core.windows.net/wh/t"));
        assert!(nw("abfss://fs1@acct1.dfs.core.chinacloudapi.cn/wh/t"));
        assert!(nw("wasbs://fs1@acct1.blob.core.windows.net/wh/t"));
        assert!(nw("s3://fs1/wh/t"));
        assert!(matches!(
            a.normalize_location(&format!("{base}/../x")),
            Err(StorageError::Invalid(_))
        ));
        let mut alt = a.clone();
        alt.allow_alternative_protocols = true;
        assert_eq!(
            alt.normalize_location("wasbs://fs1@acct1.blob.core.windows.net/wh/t")
                .unwrap(),
            format!("{base}/t")
        );
        assert!(alt
            .normalize_location("wasbs://fs1@acct1.dfs.core.windows.net/wh/t")
            .is_err());
        assert_eq!(a.key_of(&format!("{base}/ns/t")), "wh/ns/t");
        assert_eq!(p(None).key_of("abfss://fs1@acct1.dfs.core.windows.net"), "");
    }

    #[test]
    fn overlap() {
        assert!(p(Some("a")).overlaps(&p(Some("a/b"))));
        assert!(p(None).overlaps(&p(Some("a"))));
        assert!(!p(Some("a")).overlaps(&p(Some("ab"))));
        let mut other_fs = p(None);
        other_fs.filesystem = "fs2".into();
        assert!(!p(None).overlaps(&other_fs));
        let mut other_cloud = p(None);
        other_cloud.host = Some("dfs.core.chinacloudapi.cn".into());
        assert!(!p(None).overlaps(&other_cloud));
        // The blob and dfs spelling of one host are the same account.
        let mut blob = p(None);
        blob.host = Some("blob.core.windows.net".into());
        assert!(p(None).overlaps(&blob));
    }
}
