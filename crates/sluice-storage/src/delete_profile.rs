use serde::{Deserialize, Serialize};

use crate::error::StorageError;

/// What dropping a table does to it (Lakekeeper's `delete-profile`):
/// `{"type":"hard"}` or `{"type":"soft","expiration-seconds":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DeleteProfile {
    #[default]
    Hard,
    #[serde(rename_all = "kebab-case")]
    Soft { expiration_seconds: u64 },
}

/// Upper bound for soft-delete retention: far beyond any sensible value, yet small enough
/// that adding it to a timestamp can never overflow.
pub const MAX_SOFT_DELETE_SECONDS: u64 = 100 * 365 * 24 * 3600;

impl DeleteProfile {
    pub fn validate(&self) -> Result<(), StorageError> {
        match self {
            DeleteProfile::Hard => Ok(()),
            DeleteProfile::Soft { expiration_seconds } => {
                if (1..=MAX_SOFT_DELETE_SECONDS).contains(expiration_seconds) {
                    Ok(())
                } else {
                    Err(StorageError::Invalid(format!(
                        "expiration-seconds must be between 1 and {MAX_SOFT_DELETE_SECONDS}"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            serde_json::to_string(&DeleteProfile::Hard).unwrap(),
            r#"{"type":"hard"}"#
        );
        let soft = DeleteProfile::Soft {
            expiration_seconds: 3600,
        };
        let json = serde_json::to_string(&soft).unwrap();
        assert_eq!(json, r#"{"type":"soft","expiration-seconds":3600}"#);
        assert_eq!(serde_json::from_str::<DeleteProfile>(&json).unwrap(), soft);
        assert_eq!(
            serde_json::from_str::<DeleteProfile>(r#"{"type":"hard"}"#).unwrap(),
            DeleteProfile::Hard
        );
        assert_eq!(DeleteProfile::default(), DeleteProfile::Hard);
        assert!(serde_json::from_str::<DeleteProfile>(r#"{"type":"soft"}"#).is_err());
        assert!(serde_json::from_str::<DeleteProfile>(r#"{"type":"lazy"}"#).is_err());
        assert!(serde_json::from_str::<DeleteProfile>(
            r#"{"type":"soft","expiration-seconds":1,"x":2}"#
        )
        .is_err());
        assert!(DeleteProfile::Soft {
            expiration_seconds: 0
        }
        .validate()
        .is_err());
        assert!(soft.validate().is_ok());
    }
}
