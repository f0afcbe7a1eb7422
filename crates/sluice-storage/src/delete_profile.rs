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
    Soft {
        #[serde(deserialize_with = "whole_number")]
        expiration_seconds: u64,
    },
}

/// A JSON number that is a whole number: `86400` or `86400.0` (JSON Schema calls both an
/// integer, and the OpenAPI document promises an integer), never `86400.5`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("expected a non-negative number of seconds"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // Beyond 2^53 a float no longer names one whole number; the retention limit is
            // far below that anyway.
            if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom("expected a whole number of seconds"))
            }
        }
    }
    d.deserialize_any(V)
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
        assert_eq!(
            serde_json::from_str::<DeleteProfile>(r#"{"type":"soft","expiration-seconds":3600.0}"#)
                .unwrap(),
            soft
        );
        for bad in ["3600.5", "-1", "1e300", "\"3600\""] {
            let json = format!(r#"{{"type":"soft","expiration-seconds":{bad}}}"#);
            assert!(
                serde_json::from_str::<DeleteProfile>(&json).is_err(),
                "{json}"
            );
        }
        assert!(DeleteProfile::Soft {
            expiration_seconds: 0
        }
        .validate()
        .is_err());
        assert!(soft.validate().is_ok());
    }
}
