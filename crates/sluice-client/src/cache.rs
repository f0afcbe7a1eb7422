//! Token cache: one entry per (endpoint, cache identity), so a token obtained by one command
//! is reused by the next. Entries go to the OS keyring (kernel keyutils on Linux, Keychain on
//! macOS, Credential Manager on Windows) and fall back to a 0600 JSON file when the keyring is
//! unavailable or disabled (`no_keyring`, `SLUICE_NO_KEYRING=1`).
//!
//! A cache is an optimisation: every failure here is logged and otherwise ignored (the
//! caller logs in again), and a corrupt entry is discarded. Token values are never logged.

use crate::auth::Token;
use crate::config::ClientConfig;
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::Secret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Keyring service name under which every entry is stored.
const KEYRING_SERVICE: &str = "sluice";
const FILE_VERSION: u32 = 1;

/// What is stored: the token with its expiry and refresh token.
#[derive(Serialize, Deserialize)]
struct CachedToken {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    /// When the token was obtained: the next process needs it to size the refresh margin of
    /// short-lived tokens as the one that obtained it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    obtained_at: Option<DateTime<Utc>>,
}

impl CachedToken {
    fn from_token(t: &Token) -> Self {
        CachedToken {
            access_token: t.access_token.expose().to_string(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_string()),
            expires_at: t.expires_at,
            obtained_at: Some(Utc::now()),
        }
    }
    fn into_token(self) -> Option<Token> {
        if self.access_token.is_empty() {
            return None;
        }
        Some(Token {
            access_token: Secret::new(self.access_token),
            refresh_token: self
                .refresh_token
                .filter(|r| !r.is_empty())
                .map(Secret::new),
            expires_at: self.expires_at,
        })
    }
}

#[derive(Serialize, Deserialize, Default)]
struct CacheFile {
    #[serde(default)]
    version: u32,
    /// Kept as raw values so one bad entry does not cost the others.
    #[serde(default)]
    tokens: BTreeMap<String, serde_json::Value>,
}

/// Held while a token is renewed, across processes: an advisory lock on a file beside the
/// token cache. The OS drops it when the process ends, so a crash leaves nothing stale.
#[derive(Debug)]
pub struct RenewLock {
    _file: std::fs::File,
}

/// Where tokens are kept between runs. Cheap; share one per process via `Arc`.
pub struct TokenCache {
    file: PathBuf,
    use_keyring: bool,
    /// Cleared the first time the keyring fails to store or read back an entry, so a
    /// keyring that half works (common in containers: keys can be added but not found
    /// again) is not tried on every call.
    keyring_usable: AtomicBool,
    /// Serialises read-modify-write of the file within this process (across processes the
    /// atomic rename keeps the file whole; the last writer wins).
    lock: Mutex<()>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("file", &self.file)
            .field("use_keyring", &self.use_keyring)
            .finish()
    }
}

impl TokenCache {
    /// A cache at `file`, trying the OS keyring first when `use_keyring`.
    pub fn new(file: impl Into<PathBuf>, use_keyring: bool) -> TokenCache {
        TokenCache {
            file: file.into(),
            use_keyring,
            keyring_usable: AtomicBool::new(true),
            lock: Mutex::new(()),
        }
    }

    /// The cache for `config`: `token_cache_dir`/tokens.json (default: the config dir) and
    /// the keyring unless `no_keyring`.
    pub fn from_config(config: &ClientConfig) -> Result<TokenCache> {
        Ok(TokenCache::new(
            config.token_cache_path()?,
            !config.no_keyring,
        ))
    }

    pub fn file_path(&self) -> &Path {
        &self.file
    }

    /// The file whose lock serialises renewals between processes sharing this cache.
    pub fn lock_path(&self) -> PathBuf {
        self.file.with_extension("lock")
    }

    /// Takes the renewal lock if no other process holds it (`Ok(None)` if one does).
    /// Several `sluice` commands started together with one expired token must renew it
    /// once: a provider that rotates refresh tokens treats a used one coming back as theft
    /// and revokes the whole grant, logging the user out everywhere.
    pub fn try_lock_renewal(&self) -> std::io::Result<Option<RenewLock>> {
        let file = crate::fsutil::open_lock_file(&self.lock_path())?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RenewLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether entries go to the OS keyring (asked for, and not found unusable yet).
    pub fn uses_keyring(&self) -> bool {
        self.use_keyring && self.keyring_usable.load(Ordering::Relaxed)
    }

    fn keyring_failed(&self, what: &str, e: &keyring::Error) {
        if self.keyring_usable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "the OS keyring is not usable here ({what}: {e}); keeping credentials in {}",
                self.file.display()
            );
        }
    }

    /// The key of one entry. The endpoint is normalised so `https://h/` and `https://h`
    /// share an entry.
    pub fn key(endpoint: &str, identity: &str) -> String {
        format!("{}#{identity}", endpoint.trim().trim_end_matches('/'))
    }

    /// The cached token, if any. Expired tokens are returned too: the caller decides whether
    /// a refresh token makes one still useful.
    pub fn load(&self, endpoint: &str, identity: &str) -> Option<Token> {
        self.load_entry(endpoint, identity).map(|(t, _)| t)
    }

    /// The cached token and when it was obtained (None for entries written before that was
    /// recorded).
    pub fn load_entry(
        &self,
        endpoint: &str,
        identity: &str,
    ) -> Option<(Token, Option<DateTime<Utc>>)> {
        let key = Self::key(endpoint, identity);
        let raw = self.get_raw(&key)?;
        let parsed = serde_json::from_value::<CachedToken>(raw)
            .ok()
            .and_then(|c| {
                let obtained = c.obtained_at;
                c.into_token().map(|t| (t, obtained))
            });
        if parsed.is_none() {
            tracing::warn!(entry = %key, "discarding a corrupt token cache entry");
            self.delete_raw(&key);
        }
        parsed
    }

    /// Saves `token`. Never fails: a token that cannot be cached just means a later login.
    pub fn store(&self, endpoint: &str, identity: &str, token: &Token) {
        match serde_json::to_value(CachedToken::from_token(token)) {
            Ok(v) => self.put_raw(&Self::key(endpoint, identity), v),
            Err(e) => tracing::warn!("cannot serialize a token for the cache: {e}"),
        }
    }

    /// Removes the entry from the keyring and the file.
    pub fn delete(&self, endpoint: &str, identity: &str) {
        self.delete_raw(&Self::key(endpoint, identity));
    }

    /// One entry's JSON value: from the keyring, else from the file (where it lands when the
    /// keyring failed at the time it was written).
    fn get_raw(&self, key: &str) -> Option<serde_json::Value> {
        if self.uses_keyring() {
            match keyring_entry(key).and_then(|e| e.get_password()) {
                Ok(json) => match serde_json::from_str::<serde_json::Value>(&json) {
                    Ok(v) => return Some(v),
                    Err(_) => {
                        tracing::warn!(entry = %key, "discarding a corrupt entry in the keyring");
                        if let Err(e) = keyring_entry(key).and_then(|e| e.delete_credential()) {
                            tracing::debug!(entry = %key, "could not delete the corrupt keyring entry: {e}");
                        }
                    }
                },
                Err(keyring::Error::NoEntry) => {}
                Err(e) => self.keyring_failed("reading", &e),
            }
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.read_file()?.tokens.get(key).cloned()
    }

    fn put_raw(&self, key: &str, value: serde_json::Value) {
        let json = value.to_string();
        if self.uses_keyring() {
            // Read the entry back: some keyrings accept a write and then cannot find it, and
            // trusting them would silently lose every entry.
            let stored = keyring_entry(key).and_then(|e| {
                e.set_password(&json)?;
                match e.get_password()? {
                    back if back == json => Ok(()),
                    _ => Err(keyring::Error::Invalid(
                        "entry".into(),
                        "read back differently".into(),
                    )),
                }
            });
            match stored {
                Ok(()) => {
                    // Drop any older copy in the file so a stale value cannot resurface.
                    self.file_update(|entries| entries.remove(key).is_some());
                    return;
                }
                Err(e) => {
                    self.keyring_failed("storing", &e);
                    let _ = keyring_entry(key).and_then(|e| e.delete_credential());
                }
            }
        }
        self.file_update(|entries| {
            entries.insert(key.to_string(), value);
            true
        });
    }

    fn delete_raw(&self, key: &str) {
        if self.uses_keyring() {
            match keyring_entry(key).and_then(|e| e.delete_credential()) {
                Ok(()) | Err(keyring::Error::NoEntry) => {}
                Err(e) => tracing::debug!("cannot delete the keyring entry: {e}"),
            }
        }
        self.file_update(|entries| entries.remove(key).is_some());
    }

    /// Read-modify-write of the file; `f` returns whether it changed anything.
    fn file_update(&self, f: impl FnOnce(&mut BTreeMap<String, serde_json::Value>) -> bool) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut data = self.read_file().unwrap_or_default();
        if f(&mut data.tokens) {
            self.write_file(&data);
        }
    }

    /// The file's contents; None when it does not exist or cannot be used (a corrupt file is
    /// treated as empty and replaced on the next write).
    fn read_file(&self) -> Option<CacheFile> {
        match crate::fsutil::fix_permissions(&self.file) {
            Ok(true) => tracing::warn!(
                "{} was readable by other users; restricted it to the owner (0600)",
                self.file.display()
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "cannot check the permissions of {}: {e}",
                self.file.display()
            ),
        }
        let text = match std::fs::read_to_string(&self.file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read the token cache {}: {e}", self.file.display());
                return None;
            }
        };
        match serde_json::from_str::<CacheFile>(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                // Quote only the parser's position, never the content (it holds tokens).
                tracing::warn!(
                    "ignoring the corrupt token cache {} (line {}, column {}); it will be rewritten",
                    self.file.display(),
                    e.line(),
                    e.column()
                );
                None
            }
        }
    }

    fn write_file(&self, data: &CacheFile) {
        let data = CacheFile {
            version: FILE_VERSION,
            tokens: data.tokens.clone(),
        };
        let bytes = match serde_json::to_vec_pretty(&data) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot serialize the token cache: {e}");
                return;
            }
        };
        if let Err(e) = crate::fsutil::write_private(&self.file, &bytes) {
            tracing::warn!("cannot write the token cache {}: {e}", self.file.display());
        }
    }
}

/// Secrets a login used (access-key secret, client secret, API key, static token), kept so
/// later commands can renew the session without asking again. Same storage as tokens: the
/// OS keyring, else `secrets.json` (0600) beside the token cache. Keyed by endpoint and
/// profile, so two profiles (or two servers) never share a secret.
#[derive(Debug)]
pub struct SecretStore {
    store: TokenCache,
}

/// Where a stored secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredIn {
    Keyring,
    File(PathBuf),
}

impl std::fmt::Display for StoredIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredIn::Keyring => f.write_str("OS keyring"),
            StoredIn::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// Marks a file copy kept until the keyring proves it keeps entries across processes.
const UNVERIFIED: &str = "unverified-keyring-copy";
/// Set in the secrets file once the keyring lost an entry: from then on the file is used.
const KEYRING_UNRELIABLE: &str = "keyring-keeps-nothing";

/// The settings `SecretStore` keeps (profile keys). An LDAP password is deliberately not
/// among them: a directory password is re-entered, not stored, when its session ends.
pub const STORED_SECRETS: [&str; 4] = ["secret-access-key", "client-secret", "api-key", "token"];

impl SecretStore {
    /// The store in `dir` (the token cache's directory), keyring first when `use_keyring`.
    pub fn new(dir: &Path, use_keyring: bool) -> SecretStore {
        SecretStore {
            store: TokenCache::new(dir.join("secrets.json"), use_keyring),
        }
    }

    /// The store for `config` (beside its token cache).
    pub fn from_config(config: &ClientConfig) -> Result<SecretStore> {
        let tokens = config.token_cache_path()?;
        let dir = tokens.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(SecretStore::new(&dir, !config.no_keyring))
    }

    pub fn file_path(&self) -> &Path {
        self.store.file_path()
    }

    fn key(endpoint: &str, profile: &str, setting: &str) -> String {
        format!(
            "secret:{}",
            TokenCache::key(endpoint, &format!("profile:{profile}:{setting}"))
        )
    }

    /// The stored secret and where it is.
    pub fn load(&self, endpoint: &str, profile: &str, setting: &str) -> Option<(Secret, StoredIn)> {
        let key = Self::key(endpoint, profile, setting);
        let file_entry = {
            let _guard = self.store.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.store
                .read_file()
                .and_then(|d| d.tokens.get(&key).cloned())
        };
        if self.store.uses_keyring() && !self.keyring_unreliable() {
            match keyring_entry(&key).and_then(|e| e.get_password()) {
                Ok(json) => {
                    if let Some(s) = serde_json::from_str::<String>(&json)
                        .ok()
                        .filter(|s| !s.is_empty())
                    {
                        if file_entry.is_some() {
                            // A second process found it: the keyring keeps entries, so the
                            // file copy written beside it can go.
                            self.store
                                .file_update(|entries| entries.remove(&key).is_some());
                        }
                        return Some((Secret::new(s), StoredIn::Keyring));
                    }
                }
                Err(keyring::Error::NoEntry) => {
                    if file_entry
                        .as_ref()
                        .is_some_and(|v| v.get(UNVERIFIED).is_some())
                    {
                        tracing::warn!(
                            "the OS keyring did not keep a secret beyond the process that stored it; using {} from now on",
                            self.file_path().display()
                        );
                        self.mark_keyring_unreliable();
                    }
                }
                Err(e) => tracing::debug!("reading a secret from the keyring: {e}"),
            }
        }
        let value = file_entry?;
        let s = value
            .get(UNVERIFIED)
            .unwrap_or(&value)
            .as_str()
            .filter(|s| !s.is_empty())?
            .to_string();
        Some((
            Secret::new(s),
            StoredIn::File(self.file_path().to_path_buf()),
        ))
    }

    /// Stores `secret`. With a keyring, also a file copy marked unverified until another
    /// process has read the secret back from the keyring: some keyrings (kernel keyutils
    /// outside a login session, common in containers) keep an entry only for the process
    /// that wrote it, which no check inside that process can tell.
    pub fn store(&self, endpoint: &str, profile: &str, setting: &str, secret: &Secret) {
        let key = Self::key(endpoint, profile, setting);
        let value = serde_json::Value::String(secret.expose().to_string());
        if self.store.uses_keyring() && !self.keyring_unreliable() {
            let json = value.to_string();
            let stored = keyring_entry(&key).and_then(|e| {
                e.set_password(&json)?;
                match e.get_password()? {
                    back if back == json => Ok(()),
                    _ => Err(keyring::Error::Invalid(
                        "entry".into(),
                        "read back differently".into(),
                    )),
                }
            });
            match stored {
                Ok(()) => {
                    self.store.file_update(|entries| {
                        entries.insert(key.clone(), serde_json::json!({ UNVERIFIED: value }));
                        true
                    });
                    return;
                }
                Err(e) => {
                    self.store.keyring_failed("storing", &e);
                    let _ = keyring_entry(&key).and_then(|e| e.delete_credential());
                }
            }
        }
        self.store.file_update(|entries| {
            entries.insert(key.clone(), value);
            true
        });
    }

    fn keyring_unreliable(&self) -> bool {
        let _guard = self.store.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.store
            .read_file()
            .is_some_and(|d| d.tokens.contains_key(KEYRING_UNRELIABLE))
    }

    fn mark_keyring_unreliable(&self) {
        self.store.file_update(|entries| {
            entries.insert(
                KEYRING_UNRELIABLE.to_string(),
                serde_json::Value::Bool(true),
            );
            true
        });
    }

    /// Removes every stored secret of `profile` at `endpoint`; whether there was any.
    pub fn delete_all(&self, endpoint: &str, profile: &str) -> bool {
        let mut found = false;
        for s in STORED_SECRETS {
            let key = Self::key(endpoint, profile, s);
            found |= self.store.get_raw(&key).is_some();
            self.store.delete_raw(&key);
        }
        found
    }
}

fn keyring_entry(key: &str) -> keyring::Result<keyring::Entry> {
    keyring::Entry::new(KEYRING_SERVICE, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str, refresh: Option<&str>) -> Token {
        Token {
            access_token: Secret::new(s),
            refresh_token: refresh.map(Secret::new),
            expires_at: Some(chrono::DateTime::from_timestamp(2_000_000_000, 0).unwrap()),
        }
    }

    #[test]
    fn file_round_trip_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/tokens.json");
        let c = TokenCache::new(&path, false);
        assert!(c.load("https://h/", "me").is_none());
        c.store("https://h/", "me", &token("a1", Some("r1")));
        c.store("https://h", "other", &token("a2", None));
        let t = c.load("https://h", "me").unwrap();
        assert_eq!(t.access_token.expose(), "a1");
        assert_eq!(t.refresh_token.unwrap().expose(), "r1");
        assert_eq!(t.expires_at.unwrap().timestamp(), 2_000_000_000);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(path.parent().unwrap())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
        c.delete("https://h", "me");
        assert!(c.load("https://h", "me").is_none());
        assert_eq!(
            c.load("https://h", "other").unwrap().access_token.expose(),
            "a2"
        );
    }

    #[cfg(unix)]
    #[test]
    fn loose_permissions_are_fixed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let c = TokenCache::new(&path, false);
        c.store("e", "i", &token("a", None));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(c.load("e", "i").is_some());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn corrupt_file_and_entries_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "{ not json").unwrap();
        let c = TokenCache::new(&path, false);
        assert!(c.load("e", "i").is_none());
        c.store("e", "i", &token("a", None));
        assert_eq!(c.load("e", "i").unwrap().access_token.expose(), "a");

        // One bad entry next to a good one: the bad one goes, the good one stays.
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["tokens"]["e#bad"] = serde_json::json!({"access_token": 42});
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(c.load("e", "bad").is_none());
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(v["tokens"].get("e#bad").is_none(), "{v}");
        assert!(c.load("e", "i").is_some());
    }

    /// The keyring may or may not work where tests run (keyutils can be blocked in
    /// containers); either way nothing fails and the token comes back from somewhere.
    #[test]
    fn keyring_or_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let c = TokenCache::new(dir.path().join("tokens.json"), true);
        // A fixed identity: where the keyring half works a failed write can leave a stray
        // copy behind, and a fixed name means reruns replace it instead of adding more.
        let ident = "sluice-client-unit-test".to_string();
        c.store("https://keyring.test", &ident, &token("k", Some("r")));
        let t = c
            .load("https://keyring.test", &ident)
            .expect("stored in the keyring or the file");
        assert_eq!(t.access_token.expose(), "k");
        c.delete("https://keyring.test", &ident);
        assert!(c.load("https://keyring.test", &ident).is_none());
    }
}
