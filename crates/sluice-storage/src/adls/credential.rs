use serde::{Deserialize, Serialize, Serializer};
use sluice_core::Secret;

use crate::error::StorageError;

/// Azure credentials in Lakekeeper's wire format:
/// `{"type":"az","credential-type":"shared-access-key","key":…}`,
/// `{"type":"az","credential-type":"client-credentials","client-id":…,"client-secret":…,"tenant-id":…}`,
/// `{"type":"az","credential-type":"azure-system-identity"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "credential-type",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
pub enum AzCredential {
    /// An Entra ID application (service principal): its OAuth2 client-credentials tokens
    /// reach the storage and obtain user-delegation keys for vended SAS tokens.
    #[serde(rename_all = "kebab-case")]
    ClientCredentials {
        client_id: String,
        #[serde(serialize_with = "serialize_secret")]
        client_secret: Secret,
        tenant_id: String,
    },
    /// The storage account key: Shared Key requests and service SAS tokens.
    #[serde(rename_all = "kebab-case")]
    SharedAccessKey {
        #[serde(serialize_with = "serialize_secret")]
        key: Secret,
    },
    /// The server's own Azure identity (workload identity, then managed identity). Only when
    /// the server enables `enable_azure_system_credentials`.
    AzureSystemIdentity {},
}

fn serialize_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Tenant and client ids go into URL paths and form bodies: GUIDs or tenant domain names.
fn check_id(field: &str, id: &str) -> Result<(), StorageError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(StorageError::Invalid(format!(
            "{field} must be 1-128 letters, digits, '-', '.' or '_'"
        )));
    }
    Ok(())
}

impl AzCredential {
    pub fn validate(&self) -> Result<(), StorageError> {
        match self {
            AzCredential::ClientCredentials {
                client_id,
                client_secret,
                tenant_id,
            } => {
                check_id("client-id", client_id)?;
                check_id("tenant-id", tenant_id)?;
                let s = client_secret.expose();
                if s.is_empty() || s.len() > 1024 || s.chars().any(char::is_control) {
                    return Err(StorageError::Invalid(
                        "client-secret must be non-empty, at most 1024 bytes, without control characters"
                            .into(),
                    ));
                }
                Ok(())
            }
            AzCredential::SharedAccessKey { key } => {
                // Account keys are base64 of 64 random bytes; the HMAC needs the decoded bytes,
                // so a key that does not decode can never sign anything.
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD.decode(key.expose());
                if !matches!(decoded, Ok(ref k) if !k.is_empty()) {
                    return Err(StorageError::Invalid(
                        "key must be the storage account key (base64)".into(),
                    ));
                }
                Ok(())
            }
            AzCredential::AzureSystemIdentity {} => Ok(()),
        }
    }

    pub fn credential_type(&self) -> &'static str {
        match self {
            AzCredential::ClientCredentials { .. } => "client-credentials",
            AzCredential::SharedAccessKey { .. } => "shared-access-key",
            AzCredential::AzureSystemIdentity {} => "azure-system-identity",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageCredential;

    #[test]
    fn serde_validation_and_debug() {
        let json = r#"{"type":"az","credential-type":"client-credentials","client-id":"app-1","client-secret":"very-secret-value","tenant-id":"ab1f708d-50f6-404c-a006-d71b2ac7a606"}"#;
        let c: StorageCredential = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.credential_type(), "client-credentials");
        assert!(!format!("{c:?}").contains("very-secret-value"));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );

        let key = r#"{"type":"az","credential-type":"shared-access-key","key":"a2V5LWJ5dGVz"}"#;
        let c: StorageCredential = serde_json::from_str(key).unwrap();
        c.validate().unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), key);
        let bad: StorageCredential = serde_json::from_str(
            r#"{"type":"az","credential-type":"shared-access-key","key":"not base64!"}"#,
        )
        .unwrap();
        assert!(matches!(bad.validate(), Err(StorageError::Invalid(m)) if m.contains("key")));

        let sys = r#"{"type":"az","credential-type":"azure-system-identity"}"#;
        let c: StorageCredential = serde_json::from_str(sys).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), sys);

        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"az","credential-type":"sas-token","token":"x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sas-token"), "{e}");
        let e = serde_json::from_str::<StorageCredential>(
            r#"{"type":"az","credential-type":"shared-access-key","key":"a2V5","extra":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("extra"), "{e}");

        let bad_tenant: StorageCredential = serde_json::from_str(
            r#"{"type":"az","credential-type":"client-credentials","client-id":"a","client-secret":"s","tenant-id":"../x"}"#,
        )
        .unwrap();
        assert!(
            matches!(bad_tenant.validate(), Err(StorageError::Invalid(m)) if m.contains("tenant-id"))
        );
    }
}
