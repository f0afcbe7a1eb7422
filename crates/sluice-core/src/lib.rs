//! Domain types shared by every Sluice layer. Nothing here does I/O, so every other crate
//! can depend on it without pulling in a runtime.

pub mod access_key;
pub mod ident;
pub mod secret;

pub use access_key::{AccessKeyId, SecretAccessKey};
pub use ident::{IdentError, NamespaceName, TableName, WarehouseName};
pub use secret::Secret;

/// Lowercase hex of `bytes`: the one encoding Sluice writes digests in (ETags, checksums,
/// CSRF tokens). A table lookup per nibble; `format!("{b:02x}")` per byte showed on the
/// load-table path.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Who is calling. Produced by authentication, consumed by authorization and services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: uuid::Uuid,
    pub user_name: String,
    /// The access key that authenticated this request (directly or via the JWT it minted).
    pub access_key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(super::hex(&[]), "");
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::hex(&all), expected);
    }
}
