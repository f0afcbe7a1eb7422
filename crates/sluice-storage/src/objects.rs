//! Key-addressed object access for front doors that speak an object protocol (the S3
//! gateway): a key is a path below the warehouse's base location. Reads and writes are
//! streamed; a write becomes visible only when [`ObjectWriter::finish`] succeeds, so a
//! refused or broken upload leaves nothing behind.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::backend::{map_err, Resolved};
use crate::error::{error_chain, Result, StorageError};
use crate::storage::Storage;

/// Objects up to this size are written with one request; larger ones as a multipart upload
/// of parts this size (S3's smallest), so a writer holds about this much per part in flight
/// plus the one it is filling, whatever the object's size.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// What a listing or a HEAD tells about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// The key below the warehouse's base location.
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// The store's entity tag (without quotes), if it has one.
    pub e_tag: Option<String>,
}

/// A byte range of a read, as HTTP `Range` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first..=last`
    Inclusive { first: u64, last: u64 },
    /// `first..` to the end
    From(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

/// Conditions of a read (`If-Match` and friends); entity tags without quotes.
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<DateTime<Utc>>,
    pub if_unmodified_since: Option<DateTime<Utc>>,
}

/// An object being read: its metadata, the byte range served and the body stream.
pub struct ObjectRead {
    pub info: ObjectInfo,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl Storage {
    /// The location of `key` below the base location; the key must name an object inside
    /// the warehouse (no `.`/`..` segments, no empty segments).
    fn key_resolved(&self, key: &str) -> Result<Resolved> {
        if key.is_empty() || key.starts_with('/') {
            return Err(StorageError::Invalid(format!("invalid object key '{key}'")));
        }
        self.resolve_object(&format!("{}/{key}", self.base_location()))
    }

    fn key_of_meta(&self, meta: &ObjectMeta) -> Option<String> {
        let url = self.backend().location_of(&meta.location);
        url.strip_prefix(self.internal_base())
            .and_then(|k| k.strip_prefix('/'))
            .map(str::to_string)
    }

    fn info_of(&self, key: String, meta: &ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key,
            size: meta.size,
            last_modified: meta.last_modified,
            e_tag: meta.e_tag.as_ref().map(|t| t.trim_matches('"').to_string()),
        }
    }

    /// Reads `key` (a range of it), streamed. `NotModified` / `PreconditionFailed` when the
    /// conditions say so, `InvalidRange` for a range outside the object.
    pub async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
    ) -> Result<ObjectRead> {
        let r = self.key_resolved(key)?;
        let opts = GetOptions {
            if_match: cond.if_match.clone(),
            if_none_match: cond.if_none_match.clone(),
            if_modified_since: cond.if_modified_since,
            if_unmodified_since: cond.if_unmodified_since,
            range: range.map(|r| match r {
                ByteRange::Inclusive { first, last } => {
                    GetRange::Bounded(first..last.saturating_add(1))
                }
                ByteRange::From(first) => GetRange::Offset(first),
                ByteRange::Suffix(n) => GetRange::Suffix(n),
            }),
            ..GetOptions::default()
        };
        let got = self
            .store()
            .get_opts(&r.path, opts)
            .await
            .map_err(|e| map_read_err(&r.url, e))?;
        let info = self.info_of(key.to_string(), &got.meta);
        let range = got.range.clone();
        let url = r.url.clone();
        let body = got
            .into_stream()
            .map_err(move |e| map_err("read", &url, e))
            .boxed();
        Ok(ObjectRead { info, range, body })
    }

    /// The metadata of `key` (`NotFound` when missing).
    pub async fn head_object(&self, key: &str) -> Result<ObjectInfo> {
        let r = self.key_resolved(key)?;
        let meta = self
            .store()
            .head(&r.path)
            .await
            .map_err(|e| map_err("head", &r.url, e))?;
        Ok(self.info_of(key.to_string(), &meta))
    }

    /// Every object whose key starts with `prefix` (a string prefix, not only whole
    /// segments), sorted by key.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // The store lists whole directories: list the one the prefix ends in, then filter.
        let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let at = if dir.is_empty() {
            self.base_location().to_string()
        } else {
            format!("{}/{dir}", self.base_location())
        };
        let r = match self.resolve(&at) {
            Ok(r) => r,
            // A prefix no object key can have (e.g. with a `..` segment) lists nothing.
            Err(StorageError::Invalid(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let listed: Vec<ObjectMeta> = match self
            .store()
            .list((!r.path.as_ref().is_empty()).then_some(&r.path))
            .try_collect()
            .await
        {
            Ok(v) => v,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(map_err("list", &format!("{}/", r.url), e)),
        };
        let mut out: Vec<ObjectInfo> = listed
            .iter()
            .filter_map(|m| {
                let key = self.key_of_meta(m)?;
                key.starts_with(prefix).then(|| self.info_of(key, m))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        let r = self.key_resolved(key)?;
        match self.store().delete(&r.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("delete", &r.url, e)),
        }
    }

    /// Copies `from` to `to` inside this storage, on the store's side.
    pub async fn copy_object(&self, from: &str, to: &str) -> Result<ObjectInfo> {
        let src = self.key_resolved(from)?;
        let dst = self.key_resolved(to)?;
        self.store()
            .copy(&src.path, &dst.path)
            .await
            .map_err(|e| map_err("copy", &src.url, e))?;
        self.head_object(to).await
    }

    /// A streamed writer for `key`. With `create_only`, the write fails with
    /// `AlreadyExists` if the object exists when it is committed (atomically for objects
    /// written in one request; checked just before the commit for multipart ones).
    pub fn object_writer(&self, key: &str, create_only: bool) -> Result<ObjectWriter> {
        let r = self.key_resolved(key)?;
        Ok(ObjectWriter {
            storage: self.clone(),
            key: key.to_string(),
            path: r.path,
            url: r.url,
            create_only,
            buffer: BytesMut::new(),
            upload: None,
            written: 0,
        })
    }
}

/// A streamed upload of one object; nothing is visible until [`ObjectWriter::finish`].
/// Dropping it unfinished abandons the upload (call [`ObjectWriter::abort`] to clean up
/// the parts a multipart upload already stored).
pub struct ObjectWriter {
    storage: Storage,
    key: String,
    path: Path,
    url: String,
    create_only: bool,
    buffer: BytesMut,
    upload: Option<WriteMultipart>,
    written: u64,
}

impl ObjectWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends bytes; waits while too many parts are in flight.
    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.written += bytes.len() as u64;
        if let Some(up) = &mut self.upload {
            up.wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| map_err("write", &self.url, e))?;
            up.put(bytes);
            return Ok(());
        }
        self.buffer.extend_from_slice(&bytes);
        if self.buffer.len() >= PART_SIZE {
            let upload = self
                .storage
                .store()
                .put_multipart(&self.path)
                .await
                .map_err(|e| map_err("write", &self.url, e))?;
            let mut up = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            up.put(std::mem::take(&mut self.buffer).freeze());
            self.upload = Some(up);
        }
        Ok(())
    }

    /// Makes the object visible and returns its metadata.
    pub async fn finish(self) -> Result<ObjectInfo> {
        let store = self.storage.store().clone();
        match self.upload {
            None => {
                let mode = if self.create_only {
                    PutMode::Create
                } else {
                    PutMode::Overwrite
                };
                store
                    .put_opts(
                        &self.path,
                        PutPayload::from(self.buffer.freeze()),
                        PutOptions::from(mode),
                    )
                    .await
                    .map_err(|e| map_err("write", &self.url, e))?;
            }
            Some(up) => {
                if self.create_only {
                    match store.head(&self.path).await {
                        Ok(_) => {
                            let _ = up.abort().await;
                            return Err(StorageError::AlreadyExists(self.url));
                        }
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => {
                            let _ = up.abort().await;
                            return Err(map_err("head", &self.url, e));
                        }
                    }
                }
                up.finish()
                    .await
                    .map_err(|e| map_err("write", &self.url, e))?;
            }
        }
        self.storage.head_object(&self.key).await
    }

    /// Abandons the upload, removing what a multipart upload stored so far.
    pub async fn abort(self) {
        if let Some(up) = self.upload {
            if let Err(e) = up.abort().await {
                tracing::debug!(location = %self.url, error = %error_chain(&e), "abort of an upload failed");
            }
        }
    }
}

fn map_read_err(url: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotModified { .. } => StorageError::NotModified(url.to_string()),
        object_store::Error::Precondition { .. } => {
            StorageError::PreconditionFailed(url.to_string())
        }
        object_store::Error::Generic { .. } if is_range_error(&e) => {
            StorageError::InvalidRange(url.to_string())
        }
        other => map_err("read", url, other),
    }
}

/// object_store reports an unsatisfiable range as a generic error (local disk: "Range
/// started at N and ended at M", S3: status 416).
fn is_range_error(e: &object_store::Error) -> bool {
    let m = error_chain(e);
    m.contains("416") || m.contains("Range") || m.contains("range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{FileProfile, StorageProfile};

    fn open_file(root: &std::path::Path) -> Storage {
        let profile = StorageProfile::File(FileProfile {
            root: root.to_string_lossy().into(),
            gateway: false,
        });
        Storage::open(&profile, None).unwrap()
    }

    async fn read_all(r: ObjectRead) -> Vec<u8> {
        r.body
            .try_fold(Vec::new(), |mut acc, b| async move {
                acc.extend_from_slice(&b);
                Ok(acc)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn writes_are_visible_only_when_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let st = open_file(&tmp.path().join("wh"));
        // Larger than one part: a multipart upload on every store.
        let big: Vec<u8> = (0..PART_SIZE * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut w = st.object_writer("a/big.bin", false).unwrap();
        for chunk in big.chunks(1 << 20) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        assert!(matches!(
            st.head_object("a/big.bin").await,
            Err(StorageError::NotFound(_))
        ));
        let info = w.finish().await.unwrap();
        assert_eq!(info.size, big.len() as u64);
        let got = st
            .get_object("a/big.bin", None, &ReadConditions::default())
            .await
            .unwrap();
        assert_eq!(read_all(got).await, big);

        let mut w = st.object_writer("a/aborted.bin", false).unwrap();
        w.write(Bytes::from(vec![1u8; PART_SIZE + 1]))
            .await
            .unwrap();
        w.abort().await;
        assert!(st.head_object("a/aborted.bin").await.is_err());

        st.object_writer("a/small", true)
            .unwrap()
            .finish()
            .await
            .unwrap();
        assert!(matches!(
            st.object_writer("a/small", true).unwrap().finish().await,
            Err(StorageError::AlreadyExists(_))
        ));
    }

    #[tokio::test]
    async fn ranges_conditions_and_string_prefixes() {
        let tmp = tempfile::tempdir().unwrap();
        let st = open_file(&tmp.path().join("wh"));
        for k in ["d/ab", "d/ac", "d/b", "e"] {
            let mut w = st.object_writer(k, false).unwrap();
            w.write(Bytes::from_static(b"0123456789")).await.unwrap();
            w.finish().await.unwrap();
        }
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(st.list_objects("d/a").await.unwrap()),
            ["d/ab", "d/ac"]
        );
        assert_eq!(keys(st.list_objects("").await.unwrap()).len(), 4);
        assert!(st.list_objects("nope/").await.unwrap().is_empty());
        assert!(st.list_objects("../").await.unwrap().is_empty());

        let r = st
            .get_object(
                "e",
                Some(ByteRange::Inclusive { first: 2, last: 4 }),
                &ReadConditions::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.range, 2..5);
        assert_eq!(read_all(r).await, b"234");
        let r = st
            .get_object("e", Some(ByteRange::Suffix(3)), &ReadConditions::default())
            .await
            .unwrap();
        assert_eq!(read_all(r).await, b"789");
        let tag = st.head_object("e").await.unwrap().e_tag.unwrap();
        let cond = ReadConditions {
            if_none_match: Some(tag.clone()),
            ..Default::default()
        };
        assert!(matches!(
            st.get_object("e", None, &cond).await,
            Err(StorageError::NotModified(_))
        ));
        let cond = ReadConditions {
            if_match: Some(format!("{tag}x")),
            ..Default::default()
        };
        assert!(matches!(
            st.get_object("e", None, &cond).await,
            Err(StorageError::PreconditionFailed(_))
        ));
        assert!(matches!(
            st.get_object("e", Some(ByteRange::From(100)), &ReadConditions::default())
                .await,
            Err(StorageError::InvalidRange(_))
        ));
        assert!(matches!(
            st.object_writer("x/../e", false),
            Err(StorageError::Invalid(_))
        ));
        st.copy_object("e", "f/copy").await.unwrap();
        st.delete_object("e").await.unwrap();
        st.delete_object("e").await.unwrap();
        assert_eq!(keys(st.list_objects("f/").await.unwrap()), ["f/copy"]);
    }
}
