//! Shared access signatures for the Blob service: service SAS (signed with the account key)
//! and user-delegation SAS (signed with a user-delegation key), both in the string-to-sign
//! layout of service version [`SAS_VERSION`].
//! See <https://learn.microsoft.com/rest/api/storageservices/create-service-sas> and
//! `…/create-user-delegation-sas`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use crate::error::StorageError;

/// The `sv` every SAS carries. 2021-08-06 knows directory SAS (`sr=d`, since 2020-02-10) and
/// is the newest user-delegation layout Azurite accepts; Azure accepts it indefinitely.
pub const SAS_VERSION: &str = "2021-08-06";

/// What a SAS covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SasScope {
    /// The whole container (`sr=c`).
    Container,
    /// A directory and everything below it (`sr=d`, hierarchical-namespace accounts only);
    /// the path has no leading or trailing '/'.
    Directory(String),
}

/// A user-delegation key as returned by Get User Delegation Key.
#[derive(Debug, Clone)]
pub struct UserDelegationKey {
    pub signed_oid: String,
    pub signed_tid: String,
    pub signed_start: String,
    pub signed_expiry: String,
    pub signed_service: String,
    pub signed_version: String,
    /// Base64, as the service returns it. Secret.
    pub value: sluice_core::Secret,
}

/// The signing key of a SAS.
pub enum SasKey<'a> {
    /// The storage account key (base64), for a service SAS.
    Account(&'a str),
    UserDelegation(&'a UserDelegationKey),
}

/// One SAS to build.
pub struct SasRequest<'a> {
    pub account: &'a str,
    pub container: &'a str,
    pub scope: SasScope,
    /// In the canonical order, e.g. `rl` or `racwdl`.
    pub permissions: &'a str,
    pub start: Option<DateTime<Utc>>,
    pub expiry: DateTime<Utc>,
    /// `Some("https")` to refuse plain HTTP; `None` for emulators.
    pub protocol: Option<&'a str>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Query values are encoded like the Azure SDKs do (everything but unreserved characters).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl SasRequest<'_> {
    fn canonical_resource(&self) -> String {
        match &self.scope {
            SasScope::Container => format!("/blob/{}/{}", self.account, self.container),
            SasScope::Directory(d) => format!("/blob/{}/{}/{d}", self.account, self.container),
        }
    }

    fn resource(&self) -> &'static str {
        match self.scope {
            SasScope::Container => "c",
            SasScope::Directory(_) => "d",
        }
    }

    /// The exact string the signature covers, for the layout of [`SAS_VERSION`].
    pub fn string_to_sign(&self, key: &SasKey<'_>) -> String {
        let start = self.start.map(iso).unwrap_or_default();
        let mut f: Vec<String> = vec![
            self.permissions.into(),
            start,
            iso(self.expiry),
            self.canonical_resource(),
        ];
        match key {
            SasKey::Account(_) => f.push(String::new()), // signedIdentifier
            SasKey::UserDelegation(k) => {
                f.extend([
                    k.signed_oid.clone(),
                    k.signed_tid.clone(),
                    k.signed_start.clone(),
                    k.signed_expiry.clone(),
                    k.signed_service.clone(),
                    k.signed_version.clone(),
                    String::new(), // signedAuthorizedUserObjectId
                    String::new(), // signedUnauthorizedUserObjectId
                    String::new(), // signedCorrelationId
                ]);
            }
        }
        f.extend([
            String::new(), // signedIP
            self.protocol.unwrap_or("").into(),
            SAS_VERSION.into(),
            self.resource().into(),
            String::new(), // signedSnapshotTime
            String::new(), // signedEncryptionScope
            String::new(), // rscc
            String::new(), // rscd
            String::new(), // rsce
            String::new(), // rscl
            String::new(), // rsct
        ]);
        f.join("\n")
    }

    /// The SAS query string (without leading '?').
    pub fn sign(&self, key: &SasKey<'_>) -> Result<String, StorageError> {
        let secret = match key {
            SasKey::Account(k) => *k,
            SasKey::UserDelegation(k) => k.value.expose(),
        };
        let key_bytes = B64
            .decode(secret)
            .map_err(|_| StorageError::Invalid("the signing key is not valid base64".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes)
            .map_err(|e| StorageError::Invalid(format!("signing key: {e}")))?;
        mac.update(self.string_to_sign(key).as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());

        let mut q: Vec<(&str, String)> = vec![("sv", SAS_VERSION.into())];
        if let Some(p) = self.protocol {
            q.push(("spr", p.into()));
        }
        if let Some(st) = self.start {
            q.push(("st", iso(st)));
        }
        q.push(("se", iso(self.expiry)));
        q.push(("sr", self.resource().into()));
        if let SasScope::Directory(d) = &self.scope {
            q.push(("sdd", d.split('/').count().to_string()));
        }
        q.push(("sp", self.permissions.into()));
        if let SasKey::UserDelegation(k) = key {
            q.extend([
                ("skoid", k.signed_oid.clone()),
                ("sktid", k.signed_tid.clone()),
                ("skt", k.signed_start.clone()),
                ("ske", k.signed_expiry.clone()),
                ("sks", k.signed_service.clone()),
                ("skv", k.signed_version.clone()),
            ]);
        }
        q.push(("sig", sig));
        Ok(q.iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect::<Vec<_>>()
            .join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // Azurite's well-known account key (public, documented by Microsoft).
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn req(
        scope: SasScope,
        perms: &'static str,
        protocol: Option<&'static str>,
    ) -> SasRequest<'static> {
        SasRequest {
            account: "devstoreaccount1",
            container: "warehouse",
            scope,
            permissions: perms,
            start: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
            expiry: Utc.with_ymd_and_hms(2026, 1, 2, 4, 4, 5).unwrap(),
            protocol,
        }
    }

    fn sig(q: &str) -> String {
        let raw = q.rsplit_once("sig=").unwrap().1;
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    /// Expected signature produced by the Python azure-storage-blob 12.31.1 SDK, once, with:
    /// ```python
    /// import azure.storage.blob._shared_access_signature as m, datetime as dt
    /// m.X_MS_VERSION = "2021-08-06"
    /// from azure.storage.blob import generate_container_sas, ContainerSasPermissions
    /// u = dt.timezone.utc
    /// generate_container_sas("devstoreaccount1", "warehouse", account_key=KEY,
    ///     permission=ContainerSasPermissions(read=True, list=True),
    ///     start=dt.datetime(2026,1,2,3,4,5,tzinfo=u), expiry=dt.datetime(2026,1,2,4,4,5,tzinfo=u))
    /// ```
    const PY_CONTAINER_RL_SIG: &str = "3KrX3DJa2fCazG8O5mJ+FY5r1TjyzZ0djJqiqL0ILxg=";
    /// Same, with `permission=ContainerSasPermissions(read=True, add=True, create=True,
    /// write=True, delete=True, list=True)` and `protocol="https"`.
    const PY_CONTAINER_RACWDL_HTTPS_SIG: &str = "3N3iFE16749RI+20yZLjSZ7q9VcCRAEGoopZY4JOtnQ=";
    /// Directory SAS: the SDK for blobs cannot make one, so the vector comes from Python's own
    /// `hmac`/`hashlib` over the documented 2021-08-06 service-SAS layout with
    /// canonicalized resource `/blob/devstoreaccount1/warehouse/wh/ns/t`, `sr=d`, `sp=rl`.
    const PY_DIRECTORY_RL_SIG: &str = "8E03Vo21WSROB9/pI5PeiM20fZgnW6/NVp2Fde4hVgw=";
    /// User-delegation SAS over the 2021-08-06 layout (the one Azurite verifies), computed
    /// with Python's `hmac` for the key below, container scope, `sp=rl`.
    const PY_UDK_CONTAINER_RL_SIG: &str = "K5SI4xxfn0kNJUB/aVHohNDe+msWCskJoIg+/DUQRnU=";

    fn udk() -> UserDelegationKey {
        UserDelegationKey {
            signed_oid: "00000000-0000-0000-0000-000000000001".into(),
            signed_tid: "ab1f708d-50f6-404c-a006-d71b2ac7a606".into(),
            signed_start: "2026-01-02T03:00:00Z".into(),
            signed_expiry: "2026-01-03T03:00:00Z".into(),
            signed_service: "b".into(),
            signed_version: "2021-08-06".into(),
            value: sluice_core::Secret::new(
                "dWRrLXNlY3JldC1rZXktdmFsdWUtZm9yLXRlc3RzLTAxMjM0NTY3ODk=",
            ),
        }
    }

    #[test]
    fn service_sas_matches_the_azure_sdk() {
        let q = req(SasScope::Container, "rl", None)
            .sign(&SasKey::Account(KEY))
            .unwrap();
        assert_eq!(sig(&q), PY_CONTAINER_RL_SIG, "{q}");
        assert!(q.starts_with("sv=2021-08-06&st=2026-01-02T03%3A04%3A05Z&se=2026-01-02T04%3A04%3A05Z&sr=c&sp=rl&sig="), "{q}");
        let q = req(SasScope::Container, "racwdl", Some("https"))
            .sign(&SasKey::Account(KEY))
            .unwrap();
        assert_eq!(sig(&q), PY_CONTAINER_RACWDL_HTTPS_SIG, "{q}");
        assert!(q.contains("spr=https"), "{q}");
    }

    #[test]
    fn directory_sas() {
        let r = req(SasScope::Directory("wh/ns/t".into()), "rl", None);
        let q = r.sign(&SasKey::Account(KEY)).unwrap();
        assert!(q.contains("&sr=d&sdd=3&sp=rl&"), "{q}");
        assert_eq!(sig(&q), PY_DIRECTORY_RL_SIG, "{q}");
        assert_eq!(
            r.string_to_sign(&SasKey::Account(KEY)),
            "rl\n2026-01-02T03:04:05Z\n2026-01-02T04:04:05Z\n/blob/devstoreaccount1/warehouse/wh/ns/t\n\n\n\n2021-08-06\nd\n\n\n\n\n\n\n"
        );
    }

    #[test]
    fn user_delegation_sas() {
        let k = udk();
        let r = req(SasScope::Container, "rl", None);
        let q = r.sign(&SasKey::UserDelegation(&k)).unwrap();
        assert_eq!(sig(&q), PY_UDK_CONTAINER_RL_SIG, "{q}");
        assert_eq!(
            r.string_to_sign(&SasKey::UserDelegation(&k))
                .split('\n')
                .count(),
            24
        );
        assert!(q.contains("skoid=00000000-0000-0000-0000-000000000001&sktid=ab1f708d-50f6-404c-a006-d71b2ac7a606&skt=2026-01-02T03%3A00%3A00Z&ske=2026-01-03T03%3A00%3A00Z&sks=b&skv=2021-08-06&sig="), "{q}");
        assert!(!q.contains("dWRr"), "the key never appears in the SAS");
    }

    #[test]
    fn bad_key() {
        let r = req(SasScope::Container, "rl", None);
        assert!(matches!(
            r.sign(&SasKey::Account("not base64!")),
            Err(StorageError::Invalid(_))
        ));
    }
}
