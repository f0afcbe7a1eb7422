//! Multipart uploads, kept in the warehouse itself so any replica can continue one: the
//! parts of upload `<id>` are objects `.sluice-uploads/<id>/part-<n>-<md5>` beside a
//! `key` object naming the target and a `meta` object with the metadata to store with it;
//! CompleteMultipartUpload streams the parts, in order, into the target (visible only once
//! whole, with S3's `md5-of-part-md5s-N` entity tag) and removes the staging objects. Clients can
//! neither list nor address `.sluice-uploads/` (the service layer refuses it).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use sluice_service::gateway::{GatewayWarehouse, ObjectAccess, UPLOADS_PREFIX};
use sluice_service::gateway_creds::GatewayCaller;
use sluice_storage::{ObjectAttributes, ObjectInfo, ReadConditions};

use crate::error::{storage_error, to_s3_error};
use crate::ops::{attributes_of, check_key, timestamp, write_body, Expected};
use crate::Gateway;
use sluice_core::hex;

/// S3's smallest part (all but the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;

fn staging(upload_id: &str) -> S3Result<String> {
    let ok = !upload_id.is_empty()
        && upload_id.len() <= 64
        && upload_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(no_such_upload());
    }
    Ok(format!("{UPLOADS_PREFIX}{upload_id}"))
}

/// When an upload began. Its id is a UUIDv7, which carries that time to the millisecond; the
/// staging object's write time is not enough to order a key's uploads (file systems keep it
/// in coarse ticks, S3 in whole seconds). Ids made before that (v4) fall back to it.
fn initiated(upload_id: &str, written: DateTime<Utc>) -> DateTime<Utc> {
    uuid::Uuid::try_parse(upload_id)
        .ok()
        .filter(|u| u.get_version_num() == 7)
        .and_then(|u| u.get_timestamp())
        .and_then(|t| {
            let (secs, nanos) = t.to_unix();
            DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
        })
        .unwrap_or(written)
}

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// A stored part: number, MD5 (hex) and size.
struct StoredPart {
    number: i32,
    md5: String,
    info: ObjectInfo,
}

fn parse_part(staging: &str, info: ObjectInfo) -> Option<StoredPart> {
    let name = info.key.strip_prefix(staging)?.strip_prefix("/part-")?;
    let (n, md5) = name.split_once('-')?;
    Some(StoredPart {
        number: n.parse().ok()?,
        md5: md5.to_string(),
        info,
    })
}

impl Gateway {
    /// The upload's bucket, with the caller allowed to write its key, which must be the
    /// one the upload was created for.
    async fn upload_of(
        &self,
        caller: &GatewayCaller,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<(GatewayWarehouse, String)> {
        check_key(key)?;
        let staging = staging(upload_id)?;
        let b = self.bucket(caller, bucket).await?;
        self.services
            .gateway_authorize(caller, &b, key, ObjectAccess::Write)
            .await
            .map_err(to_s3_error)?;
        let manifest = format!("{}/{staging}/key", b.storage().base_location());
        match b.storage().read(&manifest).await {
            Ok(stored) if stored.as_ref() == key.as_bytes() => Ok((b, staging)),
            Ok(_) | Err(sluice_storage::StorageError::NotFound(_)) => Err(no_such_upload()),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn parts(&self, b: &GatewayWarehouse, staging: &str) -> S3Result<Vec<StoredPart>> {
        let listed = b
            .storage()
            .list_objects(&format!("{staging}/part-"))
            .await
            .map_err(storage_error)?;
        let mut parts: Vec<StoredPart> = listed
            .into_iter()
            .filter_map(|i| parse_part(staging, i))
            .collect();
        parts.sort_by_key(|p| (p.number, std::cmp::Reverse(p.info.last_modified)));
        // A part uploaded again replaces the earlier one (the newest wins).
        parts.dedup_by_key(|p| p.number);
        Ok(parts)
    }

    pub(crate) async fn mpu_create(
        &self,
        caller: &GatewayCaller,
        input: CreateMultipartUploadInput,
    ) -> S3Result<CreateMultipartUploadOutput> {
        check_key(&input.key)?;
        let b = self.bucket(caller, &input.bucket).await?;
        self.services
            .gateway_authorize(caller, &b, &input.key, ObjectAccess::Write)
            .await
            .map_err(to_s3_error)?;
        // Time-ordered (see `initiated`): a key's uploads list in the order they began.
        let upload_id = uuid::Uuid::now_v7().simple().to_string();
        let staging = format!(
            "{}/{UPLOADS_PREFIX}{upload_id}",
            b.storage().base_location()
        );
        let attributes = attributes_of(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.metadata,
        );
        // The metadata first: an upload exists (is listed, accepts parts) once `key` does.
        b.storage()
            .write(&format!("{staging}/meta"), attributes.to_json())
            .await
            .map_err(storage_error)?;
        b.storage()
            .write(
                &format!("{staging}/key"),
                Bytes::from(input.key.clone().into_bytes()),
            )
            .await
            .map_err(storage_error)?;
        Ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        })
    }

    pub(crate) async fn mpu_upload_part(
        &self,
        caller: &GatewayCaller,
        input: UploadPartInput,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> S3Result<UploadPartOutput> {
        if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (b, staging) = self
            .upload_of(caller, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let expected = Expected::new(
            input.content_md5,
            input.checksum_algorithm,
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_sha1,
            input.checksum_sha256,
            input.checksum_crc64nvme,
        )?;
        let body = input
            .body
            .unwrap_or_else(|| StreamingBlob::from(s3s::Body::empty()));
        // Written under a temporary name first, so a part is either whole or absent.
        let tmp = format!("{staging}/tmp-{}", uuid::Uuid::new_v4().simple());
        let (_, md5) = write_body(
            &b,
            &tmp,
            false,
            ObjectAttributes::default(),
            body,
            expected,
            trailers,
        )
        .await?;
        let md5 = hex(&md5);
        self.publish_part(&b, &staging, &tmp, input.part_number, &md5)
            .await?;
        Ok(UploadPartOutput {
            e_tag: Some(ETag::Strong(md5)),
            ..Default::default()
        })
    }

    /// Moves a fully written part from its temporary key to its name (which carries its
    /// number and MD5), replacing earlier uploads of the same part number.
    async fn publish_part(
        &self,
        b: &GatewayWarehouse,
        staging: &str,
        tmp: &str,
        number: i32,
        md5: &str,
    ) -> S3Result<()> {
        let name = format!("{staging}/part-{number:05}-{md5}");
        let moved = b.storage().copy_object(tmp, &name, None).await;
        let _ = b.storage().delete_object(tmp).await;
        moved.map_err(storage_error)?;
        for p in self.parts_numbered(b, staging, number).await? {
            if p.info.key != name {
                let _ = b.storage().delete_object(&p.info.key).await;
            }
        }
        Ok(())
    }

    async fn parts_numbered(
        &self,
        b: &GatewayWarehouse,
        staging: &str,
        n: i32,
    ) -> S3Result<Vec<StoredPart>> {
        let listed = b
            .storage()
            .list_objects(&format!("{staging}/part-{n:05}-"))
            .await
            .map_err(storage_error)?;
        Ok(listed
            .into_iter()
            .filter_map(|i| parse_part(staging, i))
            .collect())
    }

    pub(crate) async fn mpu_upload_part_copy(
        &self,
        caller: &GatewayCaller,
        input: UploadPartCopyInput,
    ) -> S3Result<UploadPartCopyOutput> {
        if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id: None,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket/key copy sources are supported"
            ));
        };
        check_key(src_key)?;
        let src = self.bucket(caller, src_bucket).await?;
        self.services
            .gateway_authorize(caller, &src, src_key, ObjectAccess::Read)
            .await
            .map_err(to_s3_error)?;
        let (b, staging) = self
            .upload_of(caller, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let range = match input.copy_source_range.as_deref() {
            None => None,
            Some(r) => match r.strip_prefix("bytes=").and_then(|r| r.split_once('-')) {
                Some((a, z)) => match (a.parse::<u64>(), z.parse::<u64>()) {
                    (Ok(first), Ok(last)) if first <= last => {
                        Some(sluice_storage::ByteRange::Inclusive { first, last })
                    }
                    _ => {
                        return Err(s3_error!(
                            InvalidArgument,
                            "invalid x-amz-copy-source-range"
                        ))
                    }
                },
                None => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "invalid x-amz-copy-source-range"
                    ))
                }
            },
        };
        let read = src
            .storage()
            .get_object(src_key, range, &ReadConditions::default())
            .await
            .map_err(storage_error)?;
        let tmp = format!("{staging}/tmp-{}", uuid::Uuid::new_v4().simple());
        let writer = b
            .storage()
            .object_writer(&tmp, false)
            .map_err(storage_error)?;
        let writer = crate::ops::stream_into(read.body, writer).await?;
        let md5 = hex(&writer.md5());
        let info = writer.finish().await.map_err(storage_error)?;
        self.publish_part(&b, &staging, &tmp, input.part_number, &md5)
            .await?;
        Ok(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(md5)),
                last_modified: Some(timestamp(info.last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub(crate) async fn mpu_complete(
        &self,
        caller: &GatewayCaller,
        input: CompleteMultipartUploadInput,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let (b, staging) = self
            .upload_of(caller, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let requested = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let stored = self.parts(&b, &staging).await?;
        let mut chosen = Vec::with_capacity(requested.len());
        let mut previous = 0;
        for (i, part) in requested.iter().enumerate() {
            let n = part.part_number.unwrap_or(0);
            if n <= previous {
                return Err(s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number."));
            }
            previous = n;
            let want = part.e_tag.as_ref().map(|t| t.value().to_string());
            let Some(p) = stored
                .iter()
                .find(|p| p.number == n && want.as_deref().is_none_or(|w| w == p.md5))
            else {
                return Err(s3_error!(InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."));
            };
            if i + 1 < requested.len() && p.info.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
            chosen.push(p);
        }
        let attributes = match b
            .storage()
            .read(&format!("{}/{staging}/meta", b.storage().base_location()))
            .await
        {
            Ok(json) => ObjectAttributes::from_json(&json).map_err(storage_error)?,
            // Uploads created before metadata was kept have none.
            Err(sluice_storage::StorageError::NotFound(_)) => ObjectAttributes::default(),
            Err(e) => return Err(storage_error(e)),
        };
        let mut writer = b
            .storage()
            .object_writer(&input.key, false)
            .map_err(storage_error)?;
        writer.set_attributes(attributes);
        let mut md5s = Vec::with_capacity(16 * chosen.len());
        for p in &chosen {
            let read = b
                .storage()
                .get_object(&p.info.key, None, &ReadConditions::default())
                .await
                .map_err(storage_error)?;
            writer = crate::ops::stream_into(read.body, writer).await?;
            md5s.extend(
                (0..p.md5.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&p.md5[2 * i..2 * i + 2], 16).ok()),
            );
        }
        let s3_etag = format!("{}-{}", hex(&Md5::digest(&md5s)), chosen.len());
        writer.set_e_tag(s3_etag);
        let info = writer.finish().await.map_err(storage_error)?;
        self.drop_staging(&b, &staging).await;
        tracing::debug!(key = %input.key, etag = ?info.e_tag, "multipart upload completed");
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: crate::ops::etag(&info),
            ..Default::default()
        })
    }

    async fn drop_staging(&self, b: &GatewayWarehouse, staging: &str) {
        let at = format!("{}/{staging}", b.storage().base_location());
        if let Err(e) = b.storage().delete_prefix(&at).await {
            tracing::warn!(error = %e, "could not remove the staging objects of an upload");
        }
    }

    pub(crate) async fn mpu_abort(
        &self,
        caller: &GatewayCaller,
        input: AbortMultipartUploadInput,
    ) -> S3Result<AbortMultipartUploadOutput> {
        let (b, staging) = self
            .upload_of(caller, &input.bucket, &input.key, &input.upload_id)
            .await?;
        self.drop_staging(&b, &staging).await;
        Ok(AbortMultipartUploadOutput::default())
    }

    pub(crate) async fn mpu_list_parts(
        &self,
        caller: &GatewayCaller,
        input: ListPartsInput,
    ) -> S3Result<ListPartsOutput> {
        let (b, staging) = self
            .upload_of(caller, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let after = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let all: Vec<StoredPart> = self
            .parts(&b, &staging)
            .await?
            .into_iter()
            .filter(|p| p.number > after)
            .collect();
        let truncated = all.len() > max;
        let parts: Vec<Part> = all
            .into_iter()
            .take(max)
            .map(|p| Part {
                part_number: Some(p.number),
                e_tag: Some(ETag::Strong(p.md5)),
                size: Some(p.info.size as i64),
                last_modified: Some(timestamp(p.info.last_modified)),
                ..Default::default()
            })
            .collect();
        Ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: Some(after),
            next_part_number_marker: parts.last().and_then(|p| p.part_number),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..Default::default()
        })
    }

    pub(crate) async fn mpu_list_uploads(
        &self,
        caller: &GatewayCaller,
        input: ListMultipartUploadsInput,
    ) -> S3Result<ListMultipartUploadsOutput> {
        let b = self.bucket(caller, &input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let listed = b
            .storage()
            .list_objects(UPLOADS_PREFIX)
            .await
            .map_err(storage_error)?;
        let mut uploads = Vec::new();
        for o in listed {
            let Some(id) = o
                .key
                .strip_prefix(UPLOADS_PREFIX)
                .and_then(|r| r.strip_suffix("/key"))
            else {
                continue;
            };
            let Ok(key) = b
                .storage()
                .read(&format!("{}/{}", b.storage().base_location(), o.key))
                .await
            else {
                continue;
            };
            let key = String::from_utf8_lossy(&key).into_owned();
            if !key.starts_with(&prefix) {
                continue;
            }
            // Only uploads the caller could finish are shown.
            if self
                .services
                .gateway_authorize(caller, &b, &key, ObjectAccess::Write)
                .await
                .is_err()
            {
                continue;
            }
            uploads.push((key, initiated(id, o.last_modified), id.to_string()));
        }
        // S3's order: by key, then by initiation time (a tie within one millisecond is
        // broken by the id, which `now_v7` orders by creation).
        uploads.sort();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let start = match (&input.key_marker, &input.upload_id_marker) {
            (None, _) => 0,
            // After that upload of the key-marker; an unknown upload id skips the whole key.
            (Some(k), Some(id)) => match uploads.iter().position(|u| &u.0 == k && &u.2 == id) {
                Some(i) => i + 1,
                None => uploads.partition_point(|u| &u.0 <= k),
            },
            (Some(k), None) => uploads.partition_point(|u| &u.0 <= k),
        };
        let mut page: Vec<(String, DateTime<Utc>, String)> =
            uploads.into_iter().skip(start).collect();
        let truncated = page.len() > max;
        page.truncate(max);
        let (next_key, next_id) = match page.last() {
            Some(u) if truncated => (Some(u.0.clone()), Some(u.2.clone())),
            _ => (None, None),
        };
        let page: Vec<MultipartUpload> = page
            .into_iter()
            .map(|(key, initiated, id)| MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(timestamp(initiated)),
                ..Default::default()
            })
            .collect();
        Ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            is_truncated: Some(truncated),
            max_uploads: Some(max as i32),
            uploads: Some(page),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_order_uploads_by_when_they_began() {
        let written = DateTime::<Utc>::from_timestamp(1_000_000_000, 0).unwrap();
        let before = Utc::now();
        // Many within one millisecond: the order of creation must survive a sort.
        let ids: Vec<String> = (0..1000)
            .map(|_| uuid::Uuid::now_v7().simple().to_string())
            .collect();
        let after = Utc::now();
        let mut listed: Vec<(DateTime<Utc>, String)> = ids
            .iter()
            .rev()
            .map(|id| (initiated(id, written), id.clone()))
            .collect();
        listed.sort();
        assert!(listed.iter().map(|(_, id)| id).eq(ids.iter()));
        let ms = chrono::Duration::milliseconds(1);
        assert!(listed
            .iter()
            .all(|(t, _)| *t >= before - ms && *t <= after + ms));
        // An id from before (v4) or one that is no UUID: the stored write time.
        let v4 = uuid::Uuid::new_v4().simple().to_string();
        assert_eq!(initiated(&v4, written), written);
        assert_eq!(initiated("not-a-uuid", written), written);
    }
}
