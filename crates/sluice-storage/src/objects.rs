//! Key-addressed object access for front doors that speak an object protocol (the S3
//! gateway): a key is a path below the warehouse's base location. Reads and writes are
//! streamed; a write becomes visible only when [`ObjectWriter::finish`] succeeds, so a
//! refused or broken upload leaves nothing behind.
//!
//! S3 clients expect S3's entity tags (the MD5 of the bytes, `md5-of-part-md5s-N` after a
//! multipart upload) and the metadata they stored (Content-Type, `x-amz-meta-*`, ...) back.
//! An S3 warehouse does both itself: the attributes go to the store and come back from it.
//! Local disk keeps neither, and ADLS/GCS entity tags are opaque version tags, so for those
//! warehouses every object written here gets a sidecar under [`META_PREFIX`] holding the S3
//! entity tag and the metadata, written after the object and removed with it. A sidecar
//! counts only while it describes the object's current version (same store entity tag, or
//! the same size and modification second where the store has none): an object rewritten
//! behind the gateway's back (table data written by an engine) falls back to the store's tag.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, ObjectMeta, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};

use crate::backend::{map_err, Resolved};
use crate::error::{error_chain, Result, StorageError};
use crate::profile::StorageProfile;
use crate::storage::Storage;

/// Objects up to this size are written with one request; larger ones as a multipart upload
/// of parts this size (S3's smallest), so a writer holds about this much per part in flight
/// plus the one it is filling, whatever the object's size.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// The part size on local disk, which has no minimum: a writer holds a few of these, so
/// many concurrent uploads to the embedded default stay small in memory.
const LOCAL_PART_SIZE: usize = 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Sidecars reading at once when a listing page asks for S3 entity tags.
const SIDECAR_READS: usize = 16;

/// The hidden tree of sidecars (entity tag + metadata) below the base location. Keys under
/// it are not objects: listings skip it and no key addresses it.
pub const META_PREFIX: &str = ".sluice-meta/";
/// The gateway's staging area for multipart uploads; its objects get no sidecars.
pub const UPLOADS_PREFIX: &str = ".sluice-uploads/";

/// The metadata S3 keeps with an object: the stored response headers and the user's
/// `x-amz-meta-*` pairs (names without the prefix, lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl ObjectAttributes {
    /// The JSON form (for callers that keep attributes until an upload completes).
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn from_json(bytes: &[u8]) -> Result<ObjectAttributes> {
        serde_json::from_slice(bytes)
            .map_err(|e| StorageError::Invalid(format!("stored object attributes: {e}")))
    }

    fn to_store(&self) -> Attributes {
        let mut a = Attributes::new();
        let mut set = |k: Attribute, v: &Option<String>| {
            if let Some(v) = v {
                a.insert(k, AttributeValue::from(v.clone()));
            }
        };
        set(Attribute::ContentType, &self.content_type);
        set(Attribute::ContentEncoding, &self.content_encoding);
        set(Attribute::ContentDisposition, &self.content_disposition);
        set(Attribute::ContentLanguage, &self.content_language);
        set(Attribute::CacheControl, &self.cache_control);
        for (k, v) in &self.user {
            a.insert(
                Attribute::Metadata(k.clone().into()),
                AttributeValue::from(v.clone()),
            );
        }
        a
    }

    fn from_store(a: &Attributes) -> ObjectAttributes {
        let mut out = ObjectAttributes::default();
        for (k, v) in a {
            let v = v.as_ref().to_string();
            match k {
                Attribute::ContentType => out.content_type = Some(v),
                Attribute::ContentEncoding => out.content_encoding = Some(v),
                Attribute::ContentDisposition => out.content_disposition = Some(v),
                Attribute::ContentLanguage => out.content_language = Some(v),
                Attribute::CacheControl => out.cache_control = Some(v),
                Attribute::Metadata(name) => {
                    out.user.insert(name.to_ascii_lowercase(), v);
                }
                _ => {}
            }
        }
        out
    }
}

/// What a listing or a HEAD tells about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// The key below the warehouse's base location.
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    /// The entity tag (without quotes): S3's for objects written here, else the store's.
    pub e_tag: Option<String>,
    /// The stored metadata (empty in listings).
    pub attributes: ObjectAttributes,
}

/// An object's sidecar: its S3 entity tag and metadata, and which version of the object
/// they describe.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    e_tag: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store_e_tag: Option<String>,
    modified: DateTime<Utc>,
    #[serde(default)]
    attributes: ObjectAttributes,
}

impl Sidecar {
    fn describes(&self, size: u64, store_e_tag: Option<&str>, modified: DateTime<Utc>) -> bool {
        if self.size != size {
            return false;
        }
        match (self.store_e_tag.as_deref(), store_e_tag) {
            (Some(a), Some(b)) => a == b,
            // Listings and HEADs of some stores differ in sub-second precision.
            _ => self.modified.timestamp() == modified.timestamp(),
        }
    }
}

fn store_tag(meta: &ObjectMeta) -> Option<String> {
    meta.e_tag.as_ref().map(|t| t.trim_matches('"').to_string())
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

impl ReadConditions {
    /// RFC 9110 section 13.2.2 order: If-Match, else If-Unmodified-Since (412); then
    /// If-None-Match, else If-Modified-Since (304). HTTP dates have whole seconds.
    fn check(&self, info: &ObjectInfo, url: &str) -> Result<()> {
        let tag = info.e_tag.as_deref();
        let matches = |c: &str| c == "*" || Some(c) == tag;
        let failed = || StorageError::PreconditionFailed(url.to_string());
        match (&self.if_match, self.if_unmodified_since) {
            (Some(c), _) if !matches(c) => return Err(failed()),
            (None, Some(t)) if info.last_modified.timestamp() > t.timestamp() => {
                return Err(failed())
            }
            _ => {}
        }
        let not_modified = || StorageError::NotModified(url.to_string());
        match (&self.if_none_match, self.if_modified_since) {
            (Some(c), _) if matches(c) => Err(not_modified()),
            (None, Some(t)) if info.last_modified.timestamp() <= t.timestamp() => {
                Err(not_modified())
            }
            _ => Ok(()),
        }
    }
}

/// An object being read: its metadata, the byte range served and the body stream.
pub struct ObjectRead {
    pub info: ObjectInfo,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl Storage {
    /// Whether the store keeps S3 entity tags and metadata itself (an S3 warehouse) or
    /// needs sidecars.
    fn native_s3(&self) -> bool {
        matches!(self.profile(), StorageProfile::S3(_))
    }

    /// The location of `key` below the base location; the key must name an object inside
    /// the warehouse (no `.`/`..` segments, no empty segments, not in the sidecar tree).
    fn key_resolved(&self, key: &str) -> Result<Resolved> {
        if key.is_empty() || key.starts_with('/') || key.starts_with(META_PREFIX) {
            return Err(StorageError::Invalid(format!("invalid object key '{key}'")));
        }
        self.resolve_object(&format!("{}/{key}", self.base_location()))
    }

    fn sidecar_resolved(&self, key: &str) -> Result<Resolved> {
        self.resolve_object(&format!("{}/{META_PREFIX}{key}", self.base_location()))
    }

    fn tracked(&self, key: &str) -> bool {
        !self.native_s3() && !key.starts_with(UPLOADS_PREFIX)
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
            e_tag: store_tag(meta),
            attributes: ObjectAttributes::default(),
        }
    }

    /// The sidecar of `key` if there is one (a missing or unreadable one is none).
    async fn read_sidecar(&self, key: &str) -> Option<Sidecar> {
        let r = self.sidecar_resolved(key).ok()?;
        let got = match self.store().get(&r.path).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        };
        match got {
            Ok(b) => serde_json::from_slice(&b).ok(),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                tracing::debug!(location = %r.url, error = %error_chain(&e), "object sidecar unreadable");
                None
            }
        }
    }

    /// Records `e_tag` and `attributes` for the current version of `key` (`meta`). A failure
    /// is logged: the object stays, with the store's entity tag.
    async fn write_sidecar(
        &self,
        key: &str,
        meta: &ObjectMeta,
        e_tag: &str,
        attributes: &ObjectAttributes,
    ) -> bool {
        let sidecar = Sidecar {
            e_tag: e_tag.to_string(),
            size: meta.size,
            store_e_tag: store_tag(meta),
            modified: meta.last_modified,
            attributes: attributes.clone(),
        };
        let Ok(r) = self.sidecar_resolved(key) else {
            return false;
        };
        let body = serde_json::to_vec(&sidecar).unwrap_or_default();
        // A put is atomic on every store (local disk writes a temporary file and renames).
        match self.store().put(&r.path, PutPayload::from(body)).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(location = %r.url, error = %error_chain(&e), "could not store an object's entity tag and metadata");
                false
            }
        }
    }

    /// The object's info from its store metadata and, where the store needs one, its sidecar
    /// (read beside the store request by the caller); true when the sidecar describes it.
    fn described(
        &self,
        key: &str,
        meta: &ObjectMeta,
        sidecar: Option<Sidecar>,
    ) -> (ObjectInfo, bool) {
        let mut info = self.info_of(key.to_string(), meta);
        match sidecar {
            Some(s) if s.describes(meta.size, store_tag(meta).as_deref(), meta.last_modified) => {
                info.e_tag = Some(s.e_tag);
                info.attributes = s.attributes;
                (info, true)
            }
            _ => (info, false),
        }
    }

    /// Replaces the store's entity tags of listed objects with their S3 entity tags where
    /// sidecars have them (a listing page asks for its own entries only).
    pub async fn resolve_e_tags(&self, objects: &mut [ObjectInfo]) {
        if self.native_s3() {
            // Some S3-compatible stores (s3s-fs) leave ETags out of listings: ask for them.
            let missing: Vec<(usize, String)> = objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.e_tag.is_none())
                .map(|(i, o)| (i, o.key.clone()))
                .collect();
            let tags: Vec<(usize, Option<String>)> = futures::stream::iter(missing)
                .map(|(i, key)| {
                    let st = self.clone();
                    async move { (i, st.head_object(&key).await.ok().and_then(|h| h.e_tag)) }
                })
                .buffered(SIDECAR_READS)
                .collect()
                .await;
            for (i, t) in tags {
                objects[i].e_tag = t;
            }
            return;
        }
        // Owned inputs: the futures must not borrow the slice (the gateway's futures are Send).
        let wanted: Vec<(String, u64, Option<String>, DateTime<Utc>)> = objects
            .iter()
            .map(|o| (o.key.clone(), o.size, o.e_tag.clone(), o.last_modified))
            .collect();
        let tags: Vec<Option<String>> = futures::stream::iter(wanted)
            .map(|(key, size, tag, modified)| {
                let st = self.clone();
                async move {
                    let s = st.read_sidecar(&key).await?;
                    s.describes(size, tag.as_deref(), modified)
                        .then_some(s.e_tag)
                }
            })
            .buffered(SIDECAR_READS)
            .collect()
            .await;
        for (o, t) in objects.iter_mut().zip(tags) {
            if let Some(t) = t {
                o.e_tag = Some(t);
            }
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
        self.get_object_with(key, range, cond, Delivery::Read).await
    }

    /// [`Storage::get_object`] for a body that goes straight to an HTTP response: a local
    /// file's bytes come as [`crate::sendable`] regions, which the listener sends from the
    /// file without copying them. Nothing else should read such a body.
    pub async fn get_object_to_send(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
    ) -> Result<ObjectRead> {
        self.get_object_with(key, range, cond, Delivery::Send).await
    }

    async fn get_object_with(
        &self,
        key: &str,
        range: Option<ByteRange>,
        cond: &ReadConditions,
        delivery: Delivery,
    ) -> Result<ObjectRead> {
        let r = self.key_resolved(key)?;
        let range = range.map(|r| match r {
            ByteRange::Inclusive { first, last } => {
                GetRange::Bounded(first..last.saturating_add(1))
            }
            ByteRange::From(first) => GetRange::Offset(first),
            ByteRange::Suffix(n) => GetRange::Suffix(n),
        });
        if !self.tracked(key) {
            let opts = GetOptions {
                if_match: cond.if_match.clone(),
                if_none_match: cond.if_none_match.clone(),
                if_modified_since: cond.if_modified_since,
                if_unmodified_since: cond.if_unmodified_since,
                range,
                ..GetOptions::default()
            };
            let got = self
                .store()
                .get_opts(&r.path, opts)
                .await
                .map_err(|e| map_read_err(&r.url, e))?;
            let mut info = self.info_of(key.to_string(), &got.meta);
            info.attributes = ObjectAttributes::from_store(&got.attributes);
            // Again here: some S3-compatible stores (s3s-fs) ignore the conditions.
            cond.check(&info, &r.url)?;
            return Ok(Self::read_of(info, got, r.url, delivery));
        }
        // The conditions are about the S3 entity tag: open the object and read its sidecar
        // at once, then decide on the version opened.
        let opts = GetOptions {
            range,
            ..GetOptions::default()
        };
        let (got, sidecar) =
            tokio::join!(self.store().get_opts(&r.path, opts), self.read_sidecar(key));
        let got = got.map_err(|e| map_read_err(&r.url, e))?;
        let (info, _) = self.described(key, &got.meta, sidecar);
        cond.check(&info, &r.url)?;
        Ok(Self::read_of(info, got, r.url, delivery))
    }

    fn read_of(
        info: ObjectInfo,
        got: object_store::GetResult,
        url: String,
        delivery: Delivery,
    ) -> ObjectRead {
        let range = got.range.clone();
        let body = match got.payload {
            // object_store streams a local file in 8 KiB reads, one blocking task each: that
            // bounds a gateway GET of a local-file warehouse at a fraction of the disk's and
            // the socket's speed. Read larger chunks instead (memory per read stays bounded).
            object_store::GetResultPayload::File(file, _) => {
                file_chunks(file, range.clone(), url, delivery)
            }
            payload @ object_store::GetResultPayload::Stream(_) => {
                object_store::GetResult { payload, ..got }
                    .into_stream()
                    .map_err(move |e| map_err("read", &url, e))
                    .boxed()
            }
        };
        ObjectRead { info, range, body }
    }

    /// The metadata of `key` (`NotFound` when missing).
    pub async fn head_object(&self, key: &str) -> Result<ObjectInfo> {
        let r = self.key_resolved(key)?;
        if self.tracked(key) {
            let (meta, sidecar) = tokio::join!(self.store().head(&r.path), self.read_sidecar(key));
            let meta = meta.map_err(|e| map_err("head", &r.url, e))?;
            return Ok(self.described(key, &meta, sidecar).0);
        }
        // A HEAD request through get_opts: `head()` drops the stored attributes.
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let got = self
            .store()
            .get_opts(&r.path, opts)
            .await
            .map_err(|e| map_err("head", &r.url, e))?;
        let mut info = self.info_of(key.to_string(), &got.meta);
        info.attributes = ObjectAttributes::from_store(&got.attributes);
        Ok(info)
    }

    /// Every object whose key starts with `prefix` (a string prefix, not only whole
    /// segments), sorted by key, with the store's entity tags (see
    /// [`Storage::resolve_e_tags`]). The sidecar tree is never listed.
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
                (key.starts_with(prefix) && !key.starts_with(META_PREFIX))
                    .then(|| self.info_of(key, m))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes `key` (and its sidecar); a missing object is not an error.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        let r = self.key_resolved(key)?;
        match self.store().delete(&r.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(map_err("delete", &r.url, e)),
        }
        if self.tracked(key) {
            let s = self.sidecar_resolved(key)?;
            match self.store().delete(&s.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                // Harmless: a sidecar that outlives its object describes no version of a
                // later one.
                Err(e) => {
                    tracing::debug!(location = %s.url, error = %error_chain(&e), "could not remove an object sidecar")
                }
            }
        }
        Ok(())
    }

    /// Copies `from` to `to` inside this storage, keeping the entity tag and the metadata,
    /// or with `attributes` as the copy's metadata (S3's `MetadataDirective: REPLACE`).
    /// On the store's side where it can; streamed where the store cannot set metadata on
    /// a copy.
    pub async fn copy_object(
        &self,
        from: &str,
        to: &str,
        attributes: Option<ObjectAttributes>,
    ) -> Result<ObjectInfo> {
        let src = self.key_resolved(from)?;
        let dst = self.key_resolved(to)?;
        let source = if self.tracked(from) {
            let (meta, sidecar) =
                tokio::join!(self.store().head(&src.path), self.read_sidecar(from));
            let meta = meta.map_err(|e| map_err("head", &src.url, e))?;
            Some(self.described(from, &meta, sidecar))
        } else {
            None
        };
        let server_side = match (&source, &attributes) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some((_, has_sidecar)), _) => *has_sidecar || attributes.is_none(),
        };
        if !server_side {
            let read = self
                .get_object(from, None, &ReadConditions::default())
                .await?;
            let mut w = self.object_writer(to, false)?;
            w.set_attributes(attributes.unwrap_or(read.info.attributes));
            let mut body = read.body;
            while let Some(chunk) = body.next().await {
                let res = match chunk {
                    Ok(c) => w.write(c).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    w.abort().await;
                    return Err(e);
                }
            }
            return w.finish().await;
        }
        // A copy onto itself only changes the metadata (in the sidecar).
        if from != to {
            self.store()
                .copy(&src.path, &dst.path)
                .await
                .map_err(|e| map_err("copy", &src.url, e))?;
        }
        if let Some((info, true)) = source {
            if self.tracked(to) {
                let meta = self
                    .store()
                    .head(&dst.path)
                    .await
                    .map_err(|e| map_err("head", &dst.url, e))?;
                let e_tag = info.e_tag.unwrap_or_default();
                let attributes = attributes.unwrap_or(info.attributes);
                self.write_sidecar(to, &meta, &e_tag, &attributes).await;
            }
        }
        self.head_object(to).await
    }

    /// A streamed writer for `key`. With `create_only`, the write fails with
    /// `AlreadyExists` if the object exists when it is committed (atomically for objects
    /// written in one request; checked just before the commit for multipart ones).
    pub fn object_writer(&self, key: &str, create_only: bool) -> Result<ObjectWriter> {
        let r = self.key_resolved(key)?;
        let part_size = match self.profile() {
            StorageProfile::File(_) => LOCAL_PART_SIZE,
            _ => PART_SIZE,
        };
        Ok(ObjectWriter {
            storage: self.clone(),
            key: key.to_string(),
            path: r.path,
            url: r.url,
            create_only,
            part_size,
            buffer: BytesMut::new(),
            upload: None,
            written: 0,
            md5: Md5::new(),
            attributes: ObjectAttributes::default(),
            e_tag: None,
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
    /// Bytes buffered before the upload turns multipart, and the size of each part.
    part_size: usize,
    buffer: BytesMut,
    upload: Option<WriteMultipart>,
    written: u64,
    md5: Md5,
    attributes: ObjectAttributes,
    e_tag: Option<String>,
}

impl ObjectWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The MD5 of the bytes written so far.
    pub fn md5(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }

    /// The metadata stored with the object.
    pub fn set_attributes(&mut self, attributes: ObjectAttributes) {
        self.attributes = attributes;
    }

    /// The S3 entity tag to record instead of the MD5 of the bytes (a completed multipart
    /// upload's). Stores that keep S3 entity tags themselves keep theirs.
    pub fn set_e_tag(&mut self, e_tag: String) {
        self.e_tag = Some(e_tag);
    }

    /// Appends bytes; waits while too many parts are in flight.
    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.written += bytes.len() as u64;
        self.md5.update(&bytes);
        if let Some(up) = &mut self.upload {
            up.wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| map_err("write", &self.url, e))?;
            up.put(bytes);
            return Ok(());
        }
        self.buffer.extend_from_slice(&bytes);
        if self.buffer.len() >= self.part_size {
            let opts = PutMultipartOptions {
                attributes: self.store_attributes(),
                ..Default::default()
            };
            let upload = self
                .storage
                .store()
                .put_multipart_opts(&self.path, opts)
                .await
                .map_err(|e| map_err("write", &self.url, e))?;
            let mut up = WriteMultipart::new_with_chunk_size(upload, self.part_size);
            up.put(std::mem::take(&mut self.buffer).freeze());
            self.upload = Some(up);
        }
        Ok(())
    }

    /// The attributes the store itself takes (local disk takes none: its sidecar has them).
    fn store_attributes(&self) -> Attributes {
        match self.storage.profile() {
            StorageProfile::File(_) => Attributes::new(),
            _ => self.attributes.to_store(),
        }
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
                let opts = PutOptions {
                    mode,
                    attributes: self.store_attributes(),
                    ..Default::default()
                };
                store
                    .put_opts(&self.path, PutPayload::from(self.buffer.freeze()), opts)
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
        if !self.storage.tracked(&self.key) {
            return self.storage.head_object(&self.key).await;
        }
        let meta = store
            .head(&self.path)
            .await
            .map_err(|e| map_err("head", &self.url, e))?;
        let e_tag = self
            .e_tag
            .unwrap_or_else(|| sluice_core::hex(&self.md5.finalize()));
        let mut info = self.storage.info_of(self.key.clone(), &meta);
        if self
            .storage
            .write_sidecar(&self.key, &meta, &e_tag, &self.attributes)
            .await
        {
            info.e_tag = Some(e_tag);
            info.attributes = self.attributes;
        }
        Ok(info)
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

/// Who reads an object's body: Sluice itself, or the listener that sends it to a client.
#[derive(Clone, Copy)]
enum Delivery {
    Read,
    Send,
}

/// The largest [`crate::sendable`] region: one mapping serves a whole ranged GET of a data
/// file, and a large object still takes only a few.
const FILE_REGION: u64 = 64 * 1024 * 1024;

/// The largest read of a local file streamed to a client: large enough that the blocking
/// reads cost little next to the socket, small enough that many concurrent GETs stay cheap.
const FILE_CHUNK: u64 = 1024 * 1024;

/// `range` of a local file as a stream of chunks, each made on the blocking pool when the
/// client took the last: positioned reads of at most [`FILE_CHUNK`] bytes, or, for a body
/// the listener sends, [`crate::sendable`] regions of at most [`FILE_REGION`] bytes (mapped
/// and read ahead, not read).
fn file_chunks(
    file: std::fs::File,
    range: Range<u64>,
    url: String,
    delivery: Delivery,
) -> BoxStream<'static, Result<Bytes>> {
    type Make = fn(&std::sync::Arc<std::fs::File>, u64, usize) -> std::io::Result<Bytes>;
    let (max, make): (u64, Make) = match delivery {
        Delivery::Read => (FILE_CHUNK, |f, at, len| read_exact_at(f, at, len)),
        // A file that cannot be mapped (or a system without sendfile) is read instead.
        Delivery::Send => (FILE_REGION, |f, at, len| {
            crate::sendable::region(f, at, len).or_else(|_| read_exact_at(f, at, len))
        }),
    };
    let file = std::sync::Arc::new(file);
    futures::stream::try_unfold(range.start, move |at| {
        let file = file.clone();
        let url = url.clone();
        let end = range.end;
        async move {
            if at >= end {
                return Ok(None);
            }
            let len = (end - at).min(max) as usize;
            let chunk = tokio::task::spawn_blocking(move || make(&file, at, len))
                .await
                .map_err(|e| StorageError::Io(format!("read {url}: {e}")))?
                .map_err(|e| StorageError::Io(format!("read {url}: {e}")))?;
            Ok(Some((chunk, at + len as u64)))
        }
    })
    .boxed()
}

/// Exactly `len` bytes at `offset` (an object shorter than its listed size is an error, not a
/// short body). Read into fresh capacity: zeroing the buffer first would cost as much as
/// the read itself.
fn read_exact_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    // One reader at a time moves the shared cursor: the stream asks for the next chunk only
    // after the last one arrived.
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Bytes::from(buf))
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
        st.copy_object("e", "f/copy", None).await.unwrap();
        st.delete_object("e").await.unwrap();
        st.delete_object("e").await.unwrap();
        assert_eq!(keys(st.list_objects("f/").await.unwrap()), ["f/copy"]);
    }

    #[tokio::test]
    async fn file_objects_get_s3_entity_tags_and_metadata_from_sidecars() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wh");
        let st = open_file(&root);
        let attrs = ObjectAttributes {
            content_type: Some("text/plain".into()),
            user: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let mut w = st.object_writer("d/x", false).unwrap();
        w.set_attributes(attrs.clone());
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        let info = w.finish().await.unwrap();
        let md5_hello = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(info.e_tag.as_deref(), Some(md5_hello));
        let head = st.head_object("d/x").await.unwrap();
        assert_eq!(head.e_tag.as_deref(), Some(md5_hello));
        assert_eq!(head.attributes, attrs);
        let mut listed = st.list_objects("").await.unwrap();
        assert_eq!(listed.len(), 1, "the sidecar tree is not listed");
        st.resolve_e_tags(&mut listed).await;
        assert_eq!(listed[0].e_tag.as_deref(), Some(md5_hello));
        assert!(matches!(
            st.head_object(".sluice-meta/d/x").await,
            Err(StorageError::Invalid(_))
        ));

        // A multipart completion records the tag it is given.
        let mut w = st.object_writer("d/m", false).unwrap();
        w.set_e_tag("abc-2".into());
        w.write(Bytes::from_static(b"parts")).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(
            st.head_object("d/m").await.unwrap().e_tag.as_deref(),
            Some("abc-2")
        );

        // Rewritten behind the storage's back: the store's tag again, no metadata.
        std::fs::write(root.join("d/x"), b"other bytes").unwrap();
        let head = st.head_object("d/x").await.unwrap();
        assert_ne!(head.e_tag.as_deref(), Some(md5_hello));
        assert_eq!(head.attributes, ObjectAttributes::default());

        st.delete_object("d/x").await.unwrap();
        assert!(!root.join(".sluice-meta/d/x").exists());
    }
}
