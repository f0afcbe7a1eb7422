//! Access-key formats, as AWS and lakeFS use them: an `AKIA` id plus a 40-character secret.

use crate::ident::IdentError;
use crate::secret::Secret;
use rand::distributions::{Distribution, Uniform};
use rand::Rng;
use std::fmt;

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ok = s.len() == 20
            && s.starts_with("AKIA")
            && s.bytes().skip(4).all(|b| ID_ALPHABET.contains(&b));
        if ok {
            Ok(AccessKeyId(s.to_string()))
        } else {
            Err(IdentError::new(
                "access key id must be 'AKIA' followed by 16 uppercase letters or digits",
            ))
        }
    }
    pub fn generate() -> Self {
        let mut rng = rand::thread_rng();
        let dist = Uniform::from(0..ID_ALPHABET.len());
        let tail: String = (0..16)
            .map(|_| ID_ALPHABET[dist.sample(&mut rng)] as char)
            .collect();
        AccessKeyId(format!("AKIA{tail}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKeyId({})", self.0)
    }
}
impl TryFrom<String> for AccessKeyId {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AccessKeyId::parse(&s)
    }
}
impl From<AccessKeyId> for String {
    fn from(k: AccessKeyId) -> String {
        k.0
    }
}

/// The secret half of an access key.
pub struct SecretAccessKey;

impl SecretAccessKey {
    pub fn validate(s: &str) -> Result<(), IdentError> {
        if s.len() == 40 && s.bytes().all(|b| SECRET_ALPHABET.contains(&b)) {
            Ok(())
        } else {
            Err(IdentError::new(
                "secret access key must be 40 characters of A-Z, a-z, 0-9, '+' or '/'",
            ))
        }
    }
    pub fn generate() -> Secret {
        let mut rng = rand::thread_rng();
        let s: String = (0..40)
            .map(|_| SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())] as char)
            .collect();
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn generated_keys_are_valid() {
        for _ in 0..100 {
            let id = AccessKeyId::generate();
            assert!(AccessKeyId::parse(id.as_str()).is_ok());
            assert!(SecretAccessKey::validate(SecretAccessKey::generate().expose()).is_ok());
        }
    }
    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "",
            "AKIA",
            "AKIAabcdefghijklmnop",
            "ASIAABCDEFGHIJKLMNOP",
            "AKIAABCDEFGHIJKLMNOPQ",
        ] {
            assert!(AccessKeyId::parse(bad).is_err(), "{bad}");
        }
        assert!(SecretAccessKey::validate("short").is_err());
        assert!(SecretAccessKey::validate(
            &"a".repeat(39).chars().chain(['!']).collect::<String>()
        )
        .is_err());
    }
}
