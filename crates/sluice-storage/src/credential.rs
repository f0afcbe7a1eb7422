use serde::{Deserialize, Serialize, Serializer};
use sluice_core::Secret;

use crate::adls::AzCredential;
use crate::error::StorageError;
use crate::gcs::GcsCredential;

/// Credentials for a warehouse's storage, in Lakekeeper's wire format:
/// `{"type":"s3","credential-type":"access-key","aws-access-key-id":…,"aws-secret-access-key":…}`.
///
/// Serializing writes the secrets in clear text: the only intended consumer is the caller
/// that encrypts it at rest. Never return a serialized credential in an API response.
/// `Debug` hides the secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StorageCredential {
    S3(S3Credential),
    Gcs(GcsCredential),
    Az(AzCredential),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "credential-type",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum S3Credential {
    #[serde(rename_all = "kebab-case")]
    AccessKey {
        aws_access_key_id: String,
        #[serde(serialize_with = "serialize_secret")]
        aws_secret_access_key: Secret,
        /// Used with `assume-role-arn`; kept so a Lakekeeper payload round-trips.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
    },
    /// The server's own AWS identity (environment, profile, web identity, ECS or EC2
    /// instance credentials), optionally narrowed by assuming the profile's
    /// `assume-role-arn`. Nothing secret is stored; the external id is what keeps one
    /// tenant from pointing its warehouse at a role that trusts the server but belongs to
    /// somebody else (the confused-deputy problem), which is why servers require it by
    /// default ([`crate::ValidationContext`]).
    #[serde(rename_all = "kebab-case")]
    AwsSystemIdentity {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
    },
    /// A Cloudflare R2 API token: its S3 key pair for storage access, and the token itself
    /// for minting temporary credentials through Cloudflare's API (R2 has no STS).
    #[serde(rename_all = "kebab-case")]
    CloudflareR2 {
        account_id: String,
        #[serde(serialize_with = "serialize_secret")]
        token: Secret,
        access_key_id: String,
        #[serde(serialize_with = "serialize_secret")]
        secret_access_key: Secret,
    },
}

/// The single place where a storage secret leaves `Secret`: the at-rest serialization.
fn serialize_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

fn check_key_id(field: &str, id: &str) -> Result<(), StorageError> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StorageError::Invalid(format!(
            "{field} must be 1-128 printable characters without spaces"
        )));
    }
    Ok(())
}

fn check_secret(field: &str, secret: &Secret) -> Result<(), StorageError> {
    let secret = secret.expose();
    if secret.is_empty() || secret.len() > 1024 || secret.chars().any(char::is_control) {
        // The message deliberately says nothing about the secret's content.
        return Err(StorageError::Invalid(format!(
            "{field} must be non-empty, at most 1024 bytes, without control characters"
        )));
    }
    Ok(())
}

fn check_external_id(ext: &Option<String>) -> Result<(), StorageError> {
    if let Some(ext) = ext {
        // STS's own limits for ExternalId.
        if ext.is_empty() || ext.len() > 1224 || ext.chars().any(char::is_control) {
            return Err(StorageError::Invalid(
                "external-id must be 1-1224 characters without control characters".into(),
            ));
        }
    }
    Ok(())
}

impl StorageCredential {
    /// Checks the credential on its own. Whether it fits a profile and the server's
    /// settings is [`crate::StorageProfile::validate_credential`]'s job.
    pub fn validate(&self) -> Result<(), StorageError> {
        match self {
            StorageCredential::S3(S3Credential::AccessKey {
                aws_access_key_id,
                aws_secret_access_key,
                external_id,
            }) => {
                check_key_id("aws-access-key-id", aws_access_key_id)?;
                check_secret("aws-secret-access-key", aws_secret_access_key)?;
                check_external_id(external_id)
            }
            StorageCredential::S3(S3Credential::AwsSystemIdentity { external_id }) => {
                check_external_id(external_id)
            }
            StorageCredential::S3(S3Credential::CloudflareR2 {
                account_id,
                token,
                access_key_id,
                secret_access_key,
            }) => {
                // The account id goes into the API URL's path unescaped, so it is limited to
                // what Cloudflare issues (32 hex digits) in spirit: letters and digits.
                if account_id.is_empty()
                    || account_id.len() > 64
                    || !account_id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(StorageError::Invalid(
                        "account-id must be 1-64 ASCII letters and digits".into(),
                    ));
                }
                // Sent as a bearer token, so it must be a valid header value; the message
                // says nothing about its content.
                let t = token.expose();
                if t.is_empty() || t.len() > 1024 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(StorageError::Invalid(
                        "token must be 1-1024 printable ASCII characters without spaces".into(),
                    ));
                }
                check_key_id("access-key-id", access_key_id)?;
                check_secret("secret-access-key", secret_access_key)
            }
            StorageCredential::Gcs(g) => g.validate(),
            StorageCredential::Az(az) => az.validate(),
        }
    }

    /// Convenience constructor for S3 access keys.
    pub fn s3_access_key(access_key_id: impl Into<String>, secret: Secret) -> Self {
        StorageCredential::S3(S3Credential::AccessKey {
            aws_access_key_id: access_key_id.into(),
            aws_secret_access_key: secret,
            external_id: None,
        })
    }

    /// Convenience constructor for the server's own AWS identity.
    pub fn aws_system_identity(external_id: Option<String>) -> Self {
        StorageCredential::S3(S3Credential::AwsSystemIdentity { external_id })
    }

    /// The `type` as on the wire ("s3", "gcs", "az"), for messages.
    pub fn storage_type(&self) -> &'static str {
        match self {
            StorageCredential::S3(_) => "s3",
            StorageCredential::Gcs(_) => "gcs",
            StorageCredential::Az(_) => "az",
        }
    }

    /// The `credential-type` as on the wire, for messages.
    pub fn credential_type(&self) -> &'static str {
        match self {
            StorageCredential::S3(S3Credential::AccessKey { .. }) => "access-key",
            StorageCredential::S3(S3Credential::AwsSystemIdentity { .. }) => "aws-system-identity",
            StorageCredential::S3(S3Credential::CloudflareR2 { .. }) => "cloudflare-r2",
            StorageCredential::Gcs(g) => g.credential_type(),
            StorageCredential::Az(az) => az.credential_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_debug_hides_secret() {
        let json = r#"{"type":"s3","credential-type":"access-key","aws-access-key-id":"AKIA1","aws-secret-access-key":"hunter2-very-secret","external-id":"ext"}"#;
        let cred: StorageCredential = serde_json::from_str(json).unwrap();
        let dbg = format!("{cred:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("AKIA1"));
        cred.validate().unwrap();
        let back = serde_json::to_value(&cred).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );

        let min = r#"{"type":"s3","credential-type":"access-key","aws-access-key-id":"A","aws-secret-access-key":"S"}"#;
        let cred: StorageCredential = serde_json::from_str(min).unwrap();
        assert_eq!(serde_json::to_string(&cred).unwrap(), min);
    }

    #[test]
    fn unknown_types_and_fields_are_rejected() {
        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"hdfs","credential-type":"service-account-key"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown variant") && e.contains("hdfs"), "{e}");

        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"sts-web-identity"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown variant") && e.contains("sts-web-identity"),
            "{e}"
        );

        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"access-key","aws-access-key-id":"A","aws-secret-access-key":"S","bogus":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus"), "{e}");

        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"access-key","aws-access-key-id":"A"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("aws-secret-access-key"), "{e}");
    }

    #[test]
    fn validation() {
        assert!(StorageCredential::s3_access_key("", Secret::new("s"))
            .validate()
            .is_err());
        assert!(StorageCredential::s3_access_key("a b", Secret::new("s"))
            .validate()
            .is_err());
        let e = StorageCredential::s3_access_key("A", Secret::new(""))
            .validate()
            .unwrap_err();
        assert!(matches!(e, StorageError::Invalid(_)));
        assert!(StorageCredential::s3_access_key("A", Secret::new("s"))
            .validate()
            .is_ok());
    }

    #[test]
    fn system_identity_serde() {
        let json =
            r#"{"type":"s3","credential-type":"aws-system-identity","external-id":"tenant-7"}"#;
        let cred: StorageCredential = serde_json::from_str(json).unwrap();
        assert!(matches!(
            &cred,
            StorageCredential::S3(S3Credential::AwsSystemIdentity { external_id: Some(e) }) if e == "tenant-7"
        ));
        assert_eq!(cred.credential_type(), "aws-system-identity");
        cred.validate().unwrap();
        assert_eq!(serde_json::to_string(&cred).unwrap(), json);

        let min = r#"{"type":"s3","credential-type":"aws-system-identity"}"#;
        let cred: StorageCredential = serde_json::from_str(min).unwrap();
        assert_eq!(serde_json::to_string(&cred).unwrap(), min);
        // Lakekeeper clients send nulls for unset fields.
        let cred: StorageCredential = serde_json::from_str(
            r#"{"type":"s3","credential-type":"aws-system-identity","external-id":null}"#,
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&cred).unwrap(), min);

        // A stray key from another credential type is refused, not silently dropped.
        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"aws-system-identity","aws-access-key-id":"A"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("aws-access-key-id"), "{e}");

        assert!(StorageCredential::aws_system_identity(Some(String::new()))
            .validate()
            .is_err());
        assert!(StorageCredential::aws_system_identity(Some("a\nb".into()))
            .validate()
            .is_err());
        assert!(StorageCredential::aws_system_identity(None)
            .validate()
            .is_ok());
    }

    fn r2(account: &str, token: &str, key: &str, secret: &str) -> StorageCredential {
        StorageCredential::S3(S3Credential::CloudflareR2 {
            account_id: account.into(),
            token: Secret::new(token),
            access_key_id: key.into(),
            secret_access_key: Secret::new(secret),
        })
    }

    #[test]
    fn cloudflare_r2_serde_and_debug() {
        let json = r#"{"type":"s3","credential-type":"cloudflare-r2","account-id":"0123456789abcdef0123456789abcdef","token":"cf-token-very-secret","access-key-id":"r2key","secret-access-key":"r2-secret-very-secret"}"#;
        let cred: StorageCredential = serde_json::from_str(json).unwrap();
        assert_eq!(cred.credential_type(), "cloudflare-r2");
        cred.validate().unwrap();
        let dbg = format!("{cred:?}");
        assert!(
            !dbg.contains("cf-token-very-secret") && !dbg.contains("r2-secret-very-secret"),
            "{dbg}"
        );
        assert!(
            dbg.contains("r2key") && dbg.contains("0123456789abcdef"),
            "{dbg}"
        );
        // The at-rest serialization keeps both secrets.
        assert_eq!(
            serde_json::to_value(&cred).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );

        let e = serde_json::from_str::<StorageCredential>(
            &json.replace(r#""token""#, r#""api-token""#),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api-token"), "{e}");
        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"cloudflare-r2","account-id":"a","access-key-id":"k","secret-access-key":"s"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("token"), "{e}");
    }

    #[test]
    fn cloudflare_r2_validation() {
        assert!(r2("abc123", "t", "k", "s").validate().is_ok());
        for bad in [
            r2("", "t", "k", "s"),
            r2("ab/cd", "t", "k", "s"),
            r2("../x", "t", "k", "s"),
            r2(&"a".repeat(65), "t", "k", "s"),
            r2("a", "", "k", "s"),
            r2("a", "to ken", "k", "s"),
            r2("a", "tok\r\nen", "k", "s"),
            r2("a", "t", "", "s"),
            r2("a", "t", "k k", "s"),
            r2("a", "t", "k", ""),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(matches!(e, StorageError::Invalid(_)), "{e}");
        }
    }
}
