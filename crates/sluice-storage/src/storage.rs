use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use tokio::time::Instant;

use crate::adls::AdlsBackend;
use crate::backend::{map_err, Backend, Resolved};
use crate::credential::StorageCredential;
use crate::error::{error_chain, ProbeStep, Result, StorageError};
use crate::file::FileBackend;
use crate::gcs::GcsBackend;
use crate::profile::{StorageProfile, ValidationContext};
use crate::s3::S3Backend;
use crate::settings::StorageSettings;

/// Upper bound for a whole `probe()`, so a dead endpoint fails within seconds rather than
/// after the client's retry budget.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// An opened warehouse storage. Cheap to clone; every method takes full location URLs as
/// stored in catalog metadata and refuses anything outside the warehouse's base location.
/// What differs between clouds lives in the [`Backend`] it holds.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    profile: StorageProfile,
    base: String,
    /// The base under which clients see this storage when the S3 gateway serves it
    /// (`s3://<warehouse>`); locations under it are mapped onto `base` before any I/O.
    public: Option<String>,
    backend: Box<dyn Backend>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store is left out on purpose: it holds the credential.
        f.debug_struct("Storage")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the storage described by `profile` with default [`StorageSettings`] (which
    /// refuse `aws-system-identity`). See [`Storage::open_with`].
    pub fn open(profile: &StorageProfile, cred: Option<&StorageCredential>) -> Result<Storage> {
        Storage::open_with(profile, cred, &StorageSettings::default())
    }

    /// Opens the storage described by `profile`. Does not validate the profile against a
    /// [`ValidationContext`] (the caller does that when accepting a profile; only the
    /// credential's fit and `settings` are checked here) and does not contact the store
    /// (see [`Storage::probe`]); the server's own AWS credentials are fetched on first use.
    /// For file storage the root directory is created if missing.
    pub fn open_with(
        profile: &StorageProfile,
        cred: Option<&StorageCredential>,
        settings: &StorageSettings,
    ) -> Result<Storage> {
        Storage::open_served(profile, cred, settings, None)
    }

    /// [`Storage::open_with`] for a warehouse whose clients address it as `public_base`
    /// (the gateway's `s3://<warehouse>`): every method also takes locations under
    /// `public_base`, and returns locations under it.
    pub fn open_served(
        profile: &StorageProfile,
        cred: Option<&StorageCredential>,
        settings: &StorageSettings,
        public_base: Option<String>,
    ) -> Result<Storage> {
        // The external-id requirement is a rule for accepting new warehouses, not for
        // opening existing ones; the on/off switch applies to both.
        let ctx = ValidationContext {
            settings: StorageSettings {
                require_external_id_for_system_credentials: false,
                ..settings.clone()
            },
            ..ValidationContext::default()
        };
        profile.validate_credential(cred, &ctx)?;
        let backend: Box<dyn Backend> = match profile {
            StorageProfile::File(f) => Box::new(FileBackend::open(f, cred, settings)?),
            StorageProfile::S3(s) => Box::new(S3Backend::open(s, cred, settings)?),
            StorageProfile::Gcs(g) => Box::new(GcsBackend::open(g, cred, settings)?),
            StorageProfile::Adls(a) => Box::new(AdlsBackend::open(a, cred, settings)?),
        };
        Ok(Storage {
            inner: Arc::new(Inner {
                base: profile.base_location(),
                public: public_base.map(|p| p.trim_end_matches('/').to_string()),
                profile: profile.clone(),
                backend,
            }),
        })
    }

    pub fn profile(&self) -> &StorageProfile {
        &self.inner.profile
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        self.inner.backend.store()
    }

    /// Where clients see the warehouse: the public base when the gateway serves it, else
    /// `profile().base_location()`.
    pub fn base_location(&self) -> &str {
        self.inner.public.as_deref().unwrap_or(&self.inner.base)
    }

    /// The storage's own base (`profile().base_location()`), what listings return.
    pub(crate) fn internal_base(&self) -> &str {
        &self.inner.base
    }

    /// A location under the public base, mapped onto the storage's own; others unchanged.
    fn to_internal<'a>(&self, location: &'a str) -> std::borrow::Cow<'a, str> {
        if let Some(p) = &self.inner.public {
            if let Some(rest) = location.strip_prefix(p.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{rest}", self.inner.base).into();
                }
            }
        }
        location.into()
    }

    /// A canonical location of the storage's own, as clients see it.
    fn to_public(&self, location: String) -> String {
        match &self.inner.public {
            Some(p) => match location.strip_prefix(self.inner.base.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{p}{rest}"),
                _ => location,
            },
            None => location,
        }
    }

    /// [`StorageProfile::normalize_location`] that also knows the public base: a location
    /// under either base comes back canonical and under the public one.
    pub fn normalize_location(&self, location: &str) -> Result<String> {
        let url = self
            .inner
            .profile
            .normalize_location(&self.to_internal(location))?;
        Ok(self.to_public(url))
    }

    /// [`StorageProfile::normalize_table_location`] that also knows the public base.
    pub fn normalize_table_location(&self, location: &str) -> Result<String> {
        let url = self
            .inner
            .profile
            .normalize_table_location(&self.to_internal(location))?;
        Ok(self.to_public(url))
    }

    pub(crate) fn resolve(&self, location: &str) -> Result<Resolved> {
        let url = self
            .inner
            .profile
            .normalize_location(&self.to_internal(location))?;
        let path = Path::parse(self.inner.backend.key_of(&url))
            .map_err(|e| StorageError::Invalid(format!("location '{location}': {e}")))?;
        Ok(Resolved { url, path })
    }

    /// Like `resolve`, but the location must name an object, not the warehouse root.
    pub(crate) fn resolve_object(&self, location: &str) -> Result<Resolved> {
        let r = self.resolve(location)?;
        if r.url == self.inner.base || r.path.as_ref().is_empty() {
            return Err(StorageError::Invalid(format!(
                "location '{location}' is the warehouse root, not an object"
            )));
        }
        Ok(r)
    }

    /// Writes (or overwrites) an object.
    pub async fn write(&self, location: &str, bytes: Bytes) -> Result<()> {
        let r = self.resolve_object(location)?;
        self.store()
            .put_opts(
                &r.path,
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Overwrite),
            )
            .await
            .map(drop)
            .map_err(|e| map_err("write", &r.url, e))
    }

    /// Writes an object only if none exists at `location` (`StorageError::AlreadyExists`
    /// otherwise).
    ///
    /// Uses a conditional put (`If-None-Match: *` on S3, an atomic link on local disk). Stores
    /// that reject conditional puts fall back to HEAD-then-PUT, which has a race: a
    /// concurrent writer between the two requests is overwritten. Stores that silently
    /// ignore the header cannot be detected and simply overwrite.
    pub async fn write_new(&self, location: &str, bytes: Bytes) -> Result<()> {
        let r = self.resolve_object(location)?;
        let store = self.store();
        let payload = PutPayload::from(bytes.clone());
        match store
            .put_opts(&r.path, payload, PutOptions::from(PutMode::Create))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if conditional_put_unsupported(&e) => {
                tracing::debug!(
                    location = %r.url,
                    error = %error_chain(&e),
                    "conditional put not supported by the store; falling back to HEAD + PUT"
                );
                match store.head(&r.path).await {
                    Ok(_) => return Err(StorageError::AlreadyExists(r.url)),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(map_err("head", &r.url, e)),
                }
                store
                    .put_opts(
                        &r.path,
                        PutPayload::from(bytes),
                        PutOptions::from(PutMode::Overwrite),
                    )
                    .await
                    .map(drop)
                    .map_err(|e| map_err("write", &r.url, e))
            }
            Err(e) => Err(map_err("write", &r.url, e)),
        }
    }

    /// Reads a whole object (`StorageError::NotFound` when missing).
    pub async fn read(&self, location: &str) -> Result<Bytes> {
        let r = self.resolve_object(location)?;
        let got = self
            .store()
            .get(&r.path)
            .await
            .map_err(|e| map_err("read", &r.url, e))?;
        got.bytes().await.map_err(|e| map_err("read", &r.url, e))
    }

    pub async fn exists(&self, location: &str) -> Result<bool> {
        let r = self.resolve_object(location)?;
        match self.store().head(&r.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(map_err("head", &r.url, e)),
        }
    }

    /// Deletes one object; a missing object is not an error.
    pub async fn delete(&self, location: &str) -> Result<()> {
        let r = self.resolve_object(location)?;
        match self.store().delete(&r.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("delete", &r.url, e)),
        }
    }

    /// Deletes every object under `location/` and returns how many were deleted. An object
    /// at exactly `location` is not "under" it and stays. On local disk the emptied
    /// directories, including `location` itself, are removed too; symlinks are removed, never
    /// followed, so a link cannot lead the deletion outside the warehouse.
    pub async fn delete_prefix(&self, location: &str) -> Result<u64> {
        let r = self.resolve(location)?;
        self.inner.backend.delete_prefix(&r).await
    }

    /// Every object under `location/`, as sorted location URLs.
    pub async fn list_prefix(&self, location: &str) -> Result<Vec<String>> {
        let r = self.resolve(location)?;
        let mut out: Vec<String> = self
            .inner
            .backend
            .list_prefix(&r)
            .await?
            .into_iter()
            .map(|l| self.to_public(l))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Names of the objects directly under the base location (not recursive), so the probe
    /// does not walk a whole warehouse.
    async fn list_base_children(&self) -> Result<Vec<String>> {
        let r = self.resolve(&self.inner.base)?;
        self.inner.backend.list_children(&r).await
    }

    /// Checks that the storage works end to end with the configured credential: write a
    /// small object under the base location, read it back, find it in a listing, delete it
    /// and check it is gone. The first failing step is reported with the store's own
    /// message. Bounded by [`PROBE_TIMEOUT`].
    pub async fn probe(&self) -> Result<()> {
        self.probe_with_timeout(PROBE_TIMEOUT).await
    }

    /// [`Storage::probe`] with a caller-chosen bound for the whole probe.
    pub async fn probe_with_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let name = format!(".sluice-probe-{}", uuid::Uuid::new_v4());
        let location = format!("{}/{name}", self.inner.base);
        let payload = Bytes::from(format!("sluice storage probe {name}\n"));

        step(
            deadline,
            timeout,
            ProbeStep::Write,
            &location,
            self.write(&location, payload.clone()),
        )
        .await?;

        let checks = async {
            let got = step(
                deadline,
                timeout,
                ProbeStep::Read,
                &location,
                self.read(&location),
            )
            .await?;
            if got != payload {
                return Err(probe_error(
                    ProbeStep::Read,
                    &location,
                    format!(
                        "read back {} bytes that differ from the {} bytes written",
                        got.len(),
                        payload.len()
                    ),
                ));
            }
            let names = step(
                deadline,
                timeout,
                ProbeStep::List,
                &location,
                self.list_base_children(),
            )
            .await?;
            if !names.contains(&name) {
                return Err(probe_error(
                    ProbeStep::List,
                    &location,
                    format!(
                        "the probe object was not found when listing {}/ ({} entries listed)",
                        self.inner.base,
                        names.len()
                    ),
                ));
            }
            Ok(())
        };
        if let Err(e) = checks.await {
            // Best effort: do not leave probe objects behind when a later step failed.
            let _ = tokio::time::timeout_at(deadline, self.delete(&location)).await;
            return Err(e);
        }

        step(
            deadline,
            timeout,
            ProbeStep::Delete,
            &location,
            self.delete(&location),
        )
        .await?;
        let still_there = step(
            deadline,
            timeout,
            ProbeStep::Delete,
            &location,
            self.exists(&location),
        )
        .await?;
        if still_there {
            return Err(probe_error(
                ProbeStep::Delete,
                &location,
                "the object still exists after a successful delete".into(),
            ));
        }
        Ok(())
    }
}

fn probe_error(step: ProbeStep, location: &str, message: String) -> StorageError {
    StorageError::Probe {
        step,
        location: location.to_string(),
        message,
    }
}

/// Runs one probe step against the shared deadline and tags its failure with the step.
async fn step<T>(
    deadline: Instant,
    timeout: Duration,
    step: ProbeStep,
    location: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let message = match e {
                // The probe error names the location already; keep only what the store said.
                StorageError::Io(m) => match m.split_once(&format!(" {location}: ")) {
                    Some((_, rest)) => rest.to_string(),
                    None => m,
                },
                other => other.to_string(),
            };
            Err(probe_error(step, location, message))
        }
        Err(_) => Err(probe_error(
            step,
            location,
            format!(
                "no answer from the object store within {timeout:?} (is the endpoint reachable?)"
            ),
        )),
    }
}

/// Whether a `PutMode::Create` failure means "this store cannot do conditional puts" rather
/// than a real failure. S3-compatible stores answer 501 / `NotImplemented` for headers they
/// do not support.
fn conditional_put_unsupported(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::NotImplemented | object_store::Error::NotSupported { .. } => true,
        object_store::Error::Generic { .. } => {
            let msg = error_chain(e);
            msg.contains("NotImplemented") || msg.contains("501 Not Implemented")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::FileProfile;
    use std::path::Path as FsPath;

    fn open_file(root: &FsPath) -> Storage {
        let profile = StorageProfile::File(FileProfile {
            root: root.to_string_lossy().into(),
            gateway: false,
        });
        Storage::open(&profile, None).unwrap()
    }

    #[tokio::test]
    async fn file_storage_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wh");
        let st = open_file(&root);
        assert!(root.is_dir(), "open creates the root");
        let base = st.base_location().to_string();
        assert_eq!(base, format!("file://{}", root.display()));

        let loc = format!("{base}/ns/t/metadata/00001.metadata.json");
        assert!(!st.exists(&loc).await.unwrap());
        assert!(matches!(
            st.read(&loc).await,
            Err(StorageError::NotFound(_))
        ));
        st.write_new(&loc, Bytes::from_static(b"one"))
            .await
            .unwrap();
        assert!(matches!(
            st.write_new(&loc, Bytes::from_static(b"two")).await,
            Err(StorageError::AlreadyExists(_))
        ));
        assert_eq!(st.read(&loc).await.unwrap(), Bytes::from_static(b"one"));
        st.write(&loc, Bytes::from_static(b"three")).await.unwrap();
        // A plain absolute path and the Hadoop "file:/" form address the same object.
        let plain = format!("{}/ns/t/metadata/00001.metadata.json", root.display());
        assert_eq!(st.read(&plain).await.unwrap(), Bytes::from_static(b"three"));
        assert_eq!(
            st.read(&format!("file:{plain}")).await.unwrap(),
            Bytes::from_static(b"three")
        );
        assert!(st.exists(&loc).await.unwrap());

        st.write(
            &format!("{base}/ns/t/data/a%20b.parquet"),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
        assert!(
            root.join("ns/t/data/a%20b.parquet").is_file(),
            "names are taken verbatim"
        );
        st.write(&format!("{base}/ns/t10/data/x"), Bytes::from_static(b"x"))
            .await
            .unwrap();

        let listed = st.list_prefix(&format!("{base}/ns/t")).await.unwrap();
        assert_eq!(
            listed,
            vec![
                format!("{base}/ns/t/data/a%20b.parquet"),
                format!("{base}/ns/t/metadata/00001.metadata.json"),
            ]
        );
        assert_eq!(st.delete_prefix(&format!("{base}/ns/t")).await.unwrap(), 2);
        assert!(
            !root.join("ns/t").exists(),
            "emptied directories are removed"
        );
        assert!(root.join("ns/t10/data/x").is_file(), "t10 is not under t");
        assert_eq!(st.delete_prefix(&format!("{base}/ns/t")).await.unwrap(), 0);

        st.delete(&format!("{base}/ns/t10/data/x")).await.unwrap();
        st.delete(&format!("{base}/ns/t10/data/x")).await.unwrap();

        assert!(matches!(
            st.write(&format!("{base}2/x"), Bytes::new()).await,
            Err(StorageError::NotInWarehouse(_))
        ));
        assert!(matches!(
            st.read("/etc/passwd").await,
            Err(StorageError::NotInWarehouse(_))
        ));
        assert!(matches!(
            st.read(&format!("{base}/../x")).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            st.read(&base).await,
            Err(StorageError::Invalid(_))
        ));

        st.probe().await.unwrap();
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(
            left.iter().all(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".sluice-probe")),
            "probe cleans up"
        );
    }

    #[tokio::test]
    async fn delete_prefix_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wh");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), b"keep").unwrap();
        let st = open_file(&root);
        let base = st.base_location().to_string();
        st.write(&format!("{base}/ns/t/f"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        std::os::unix::fs::symlink(&outside, root.join("ns/t/link")).unwrap();
        assert_eq!(st.delete_prefix(&format!("{base}/ns/t")).await.unwrap(), 2);
        assert!(outside.join("precious").is_file());
        assert!(!root.join("ns/t").exists());
        assert!(
            root.join("ns").is_dir(),
            "only the prefix and below are removed"
        );
    }

    #[tokio::test]
    async fn delete_whole_warehouse() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wh");
        let st = open_file(&root);
        let base = st.base_location().to_string();
        st.write(&format!("{base}/a/b/c"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        st.write(&format!("{base}/d"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(st.delete_prefix(&base).await.unwrap(), 2);
        assert!(!root.exists());
        // Writing again recreates what is needed.
        st.write(&format!("{base}/a"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(root.join("a").is_file());
    }

    #[test]
    fn conditional_put_support_detection() {
        assert!(conditional_put_unsupported(
            &object_store::Error::NotImplemented
        ));
        let generic = |m: &str| object_store::Error::Generic {
            store: "S3",
            source: m.to_string().into(),
        };
        assert!(conditional_put_unsupported(&generic(
            "Server returned non-2xx status code: 501 Not Implemented: <Code>NotImplemented</Code>"
        )));
        assert!(!conditional_put_unsupported(&generic("403 Forbidden")));
        assert!(!conditional_put_unsupported(
            &object_store::Error::AlreadyExists {
                path: "x".into(),
                source: "exists".into()
            }
        ));
    }

    /// Handlers spawn these futures, so they must stay `Send`.
    #[allow(dead_code)]
    fn futures_are_send(st: &Storage) {
        fn send<T: Send>(_: T) {}
        send(st.probe());
        send(st.write("", Bytes::new()));
        send(st.write_new("", Bytes::new()));
        send(st.read(""));
        send(st.exists(""));
        send(st.delete(""));
        send(st.delete_prefix(""));
        send(st.list_prefix(""));
        send(st.vend_credentials("", crate::s3::AccessLevel::Read, ""));
        let req: crate::s3::SignRequest = serde_json::from_value(serde_json::json!({
            "method": "GET", "region": "r", "uri": "http://h/b/k"
        }))
        .unwrap();
        send(st.sign(&req));
        fn sync<T: Send + Sync + Clone + 'static>() {}
        sync::<Storage>();
    }

    #[test]
    fn debug_hides_store() {
        let tmp = tempfile::tempdir().unwrap();
        let st = open_file(&tmp.path().join("wh"));
        let d = format!("{st:?}");
        assert!(d.starts_with("Storage") && d.contains("wh"), "{d}");
    }
}
