use crate::AuthError;
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// 32 random bytes, loaded from config (base64) or a key file.
#[derive(Clone)]
pub struct KeyMaterial(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(***)")
    }
}

impl KeyMaterial {
    pub fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(k.as_mut());
        KeyMaterial(k)
    }

    pub fn from_base64(s: &str) -> Result<Self, AuthError> {
        let bytes = Zeroizing::new(
            B64.decode(s.trim())
                .map_err(|_| AuthError::Key("key is not valid base64".into()))?,
        );
        if bytes.len() != 32 {
            return Err(AuthError::Key(format!(
                "key must decode to 32 bytes, got {}",
                bytes.len()
            )));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&bytes);
        Ok(KeyMaterial(k))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_ref())
    }

    /// Reads the key file, or creates it with 0600 permissions when absent. Creation uses
    /// `create_new` so two processes racing on first start cannot both write a key.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_base64(&s)
                .map_err(|e| AuthError::Key(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(key.to_base64().as_bytes())
                            .and_then(|_| f.sync_all())
                            .map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?;
                        Ok(key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(AuthError::Key(format!("{}: {e}", path.display()))),
                }
            }
            Err(e) => Err(AuthError::Key(format!("{}: {e}", path.display()))),
        }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// AES-256-GCM with a fresh random nonce per value. Layout: `version(1) | nonce(12) | ct`.
/// The version byte leaves room for key rotation without guessing formats.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// A key of its own for [`SecretBox::mac`], derived from the master key so that no MAC
    /// output is ever computed under the encryption key itself.
    mac_key: Zeroizing<[u8; 32]>,
}

const VERSION: u8 = 1;

impl SecretBox {
    pub fn new(key: &KeyMaterial) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes())),
            mac_key: Zeroizing::new(hmac_sha256(key.bytes(), &[b"sluice-mac-key-v1"])),
        }
    }

    /// HMAC-SHA256 of `data` under a key derived from the master key, separated by
    /// `purpose`: a value every replica derives alike and nobody without the key can.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(
            &self.mac_key[..],
            &[purpose.as_bytes(), &[0u8], data],
        ))
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a 12-byte nonce cannot fail for in-memory sizes.
        let ct = self.cipher.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        if data.len() < 1 + 12 + 16 || data[0] != VERSION {
            return Err(AuthError::Decrypt);
        }
        let nonce = Nonce::from_slice(&data[1..13]);
        self.cipher
            .decrypt(nonce, &data[13..])
            .map(Zeroizing::new)
            .map_err(|_| AuthError::Decrypt)
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length.
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_keyed_and_separated_by_purpose() {
        let k = KeyMaterial::random();
        let (a, b) = (SecretBox::new(&k), SecretBox::new(&k));
        assert_eq!(*a.mac("p", b"x"), *b.mac("p", b"x"));
        assert_ne!(*a.mac("p", b"x"), *a.mac("q", b"x"));
        assert_ne!(
            *a.mac("p", b"x"),
            *SecretBox::new(&KeyMaterial::random()).mac("p", b"x")
        );
    }

    #[test]
    fn roundtrip_and_tamper() {
        let b = SecretBox::new(&KeyMaterial::random());
        let ct = b.encrypt(b"secret");
        assert_eq!(&b.decrypt(&ct).unwrap()[..], b"secret");
        let mut bad = ct.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(b.decrypt(&bad).is_err());
        let other = SecretBox::new(&KeyMaterial::random());
        assert!(other.decrypt(&ct).is_err());
        // nonce is fresh per value
        assert_ne!(b.encrypt(b"secret"), ct);
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let k1 = KeyMaterial::load_or_create(&p).unwrap();
        let k2 = KeyMaterial::load_or_create(&p).unwrap();
        assert_eq!(k1.bytes(), k2.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(KeyMaterial::from_base64("nope").is_err());
    }
}
