use serde::{Deserialize, Serialize, Serializer};
use sluice_core::Secret;

use crate::error::StorageError;

/// Credentials for a warehouse's storage, in Lakekeeper's wire format:
/// `{"type":"s3","credential-type":"access-key","aws-access-key-id":…,"aws-secret-access-key":…}`.
///
/// Serializing writes the secret in clear text: the only intended consumer is the caller
/// that encrypts it at rest. Never return a serialized credential in an API response.
/// `Debug` hides the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StorageCredential {
    S3(S3Credential),
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
}

/// The single place where a storage secret leaves `Secret`: the at-rest serialization.
fn serialize_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

impl StorageCredential {
    pub fn validate(&self) -> Result<(), StorageError> {
        match self {
            StorageCredential::S3(S3Credential::AccessKey {
                aws_access_key_id,
                aws_secret_access_key,
                external_id,
            }) => {
                let id = aws_access_key_id.as_str();
                if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(StorageError::Invalid(
                        "aws-access-key-id must be 1-128 printable characters without spaces"
                            .into(),
                    ));
                }
                let secret = aws_secret_access_key.expose();
                if secret.is_empty() || secret.len() > 1024 || secret.chars().any(char::is_control)
                {
                    // The message deliberately says nothing about the secret's content.
                    return Err(StorageError::Invalid(
                        "aws-secret-access-key must be non-empty, at most 1024 bytes, without control characters".into(),
                    ));
                }
                if let Some(ext) = external_id {
                    if ext.is_empty() || ext.len() > 1224 || ext.chars().any(char::is_control) {
                        return Err(StorageError::Invalid(
                            "external-id must be 1-1224 characters without control characters"
                                .into(),
                        ));
                    }
                }
                Ok(())
            }
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
            r#"{"type":"gcs","credential-type":"service-account-key"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown variant") && e.contains("gcs"), "{e}");

        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"s3","credential-type":"aws-system-identity"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown variant") && e.contains("aws-system-identity"),
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
}
