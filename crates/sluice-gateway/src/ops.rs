//! The S3 operations. Each one: who is calling (the verified access key's user), which
//! bucket, may they do this with the key (asked of the service layer), then the storage
//! call, streamed.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use sluice_service::gateway::{GatewayWarehouse, ObjectAccess};
use sluice_service::gateway_creds::GatewayCaller;
use sluice_storage::{ByteRange, ObjectAttributes, ObjectInfo, ReadConditions, StorageError};

use crate::error::{storage_error, to_s3_error};
use crate::Gateway;

/// S3's limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    if key.is_empty() || key.contains('\0') {
        return Err(s3_error!(InvalidArgument, "invalid object key"));
    }
    if key.ends_with('/') {
        // A "folder" marker has no object of its own in a file warehouse, and would name
        // the directory itself.
        return Err(s3_error!(
            InvalidArgument,
            "keys ending in '/' (folder markers) are not supported"
        ));
    }
    Ok(())
}

pub(crate) fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from(SystemTime::from(t))
}

fn chrono_of(t: Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    let odt = time::OffsetDateTime::from(t);
    chrono::DateTime::from_timestamp(odt.unix_timestamp(), odt.nanosecond())
}

pub(crate) fn etag(info: &ObjectInfo) -> Option<ETag> {
    info.e_tag.clone().map(ETag::Strong)
}

fn condition_tag(c: Option<ETagCondition>) -> Option<String> {
    c.map(|c| match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(t) => t.into_value(),
    })
}

/// The metadata a PUT, CopyObject (REPLACE) or CreateMultipartUpload stores with the object.
/// `aws-chunked` is how the body travelled, not how the object is encoded (S3 drops it too).
pub(crate) fn attributes_of(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> ObjectAttributes {
    let content_encoding = content_encoding.and_then(|e| {
        let kept: Vec<&str> = e
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(","))
    });
    ObjectAttributes {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        user: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
    }
}

fn user_metadata(a: &ObjectAttributes) -> Option<Metadata> {
    (!a.user.is_empty()).then(|| a.user.clone().into_iter().collect())
}

/// A `Send` stream made `Sync` (as `StreamingBlob` requires) by never sharing it: the
/// mutex is only ever reached through `&mut`.
struct SyncBody(Mutex<BoxStream<'static, Result<Bytes, StorageError>>>);

impl Stream for SyncBody {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        inner.as_mut().poll_next(cx)
    }
}

/// A body stream error: a signature or checksum failure that `s3s` found in the
/// stream keeps its S3 code; anything else means the body did not arrive whole.
fn body_error(e: s3s::StdError) -> S3Error {
    match e.downcast::<S3Error>() {
        Ok(s3) => *s3,
        // s3s does not export its aws-chunked error type; its variant names are stable text.
        Err(e) if e.to_string().contains("SignatureMismatch") => S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided.",
        ),
        Err(e) => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("the request body could not be read: {e}"),
        ),
    }
}

/// The checksum a request announces in `x-amz-trailer` (e.g. `x-amz-checksum-crc32c`), as the
/// algorithm to compute when the request names none in `x-amz-sdk-checksum-algorithm`.
pub(crate) fn trailer_algorithm(headers: &http::HeaderMap) -> Option<ChecksumAlgorithm> {
    let t = headers.get("x-amz-trailer")?.to_str().ok()?;
    let alg = t.trim().to_ascii_lowercase();
    let name = alg.strip_prefix("x-amz-checksum-")?;
    Some(ChecksumAlgorithm::from(name.to_ascii_uppercase()))
}

/// What a PUT's body must hash to.
pub(crate) struct Expected {
    pub content_md5: Option<String>,
    pub checksum: s3s::checksum::ChecksumHasher,
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
}

impl Expected {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        content_md5: Option<String>,
        algorithm: Option<ChecksumAlgorithm>,
        crc32: Option<String>,
        crc32c: Option<String>,
        sha1: Option<String>,
        sha256: Option<String>,
        crc64nvme: Option<String>,
    ) -> S3Result<Self> {
        let mut checksum = s3s::checksum::ChecksumHasher::default();
        let alg = algorithm.as_ref().map(|a| a.as_str().to_ascii_uppercase());
        let wants =
            |name: &str, given: &Option<String>| given.is_some() || alg.as_deref() == Some(name);
        if wants("CRC32", &crc32) {
            checksum.crc32 = Some(Default::default());
        }
        if wants("CRC32C", &crc32c) {
            checksum.crc32c = Some(Default::default());
        }
        if wants("SHA1", &sha1) {
            checksum.sha1 = Some(Default::default());
        }
        if wants("SHA256", &sha256) {
            checksum.sha256 = Some(Default::default());
        }
        if wants("CRC64NVME", &crc64nvme) {
            checksum.crc64nvme = Some(Default::default());
        }
        if let Some(a) = &alg {
            if !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&a.as_str()) {
                return Err(s3_error!(InvalidArgument, "unsupported checksum algorithm"));
            }
        }
        Ok(Expected {
            content_md5,
            checksum,
            crc32,
            crc32c,
            sha1,
            sha256,
            crc64nvme,
        })
    }

    /// Checks the body's MD5 and checksums against the headers and the trailer.
    fn verify(mut self, md5: &[u8], trailers: Option<s3s::TrailingHeaders>) -> S3Result<()> {
        if let Some(want) = &self.content_md5 {
            let ok = base64_decode(want).is_some_and(|w| w == md5);
            if !ok {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        if let Some(t) = trailers.and_then(|t| t.take()) {
            let get = |n: &str| t.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            self.crc32 = get("x-amz-checksum-crc32").or(self.crc32);
            self.crc32c = get("x-amz-checksum-crc32c").or(self.crc32c);
            self.sha1 = get("x-amz-checksum-sha1").or(self.sha1);
            self.sha256 = get("x-amz-checksum-sha256").or(self.sha256);
            self.crc64nvme = get("x-amz-checksum-crc64nvme").or(self.crc64nvme);
        }
        let got = std::mem::take(&mut self.checksum).finalize();
        let pairs = [
            ("crc32", &self.crc32, &got.checksum_crc32),
            ("crc32c", &self.crc32c, &got.checksum_crc32c),
            ("sha1", &self.sha1, &got.checksum_sha1),
            ("sha256", &self.sha256, &got.checksum_sha256),
            ("crc64nvme", &self.crc64nvme, &got.checksum_crc64nvme),
        ];
        for (name, want, got) in pairs {
            if let Some(want) = want {
                if Some(want) != got.as_ref() {
                    return Err(S3Error::with_message(
                        S3ErrorCode::BadDigest,
                        format!("The {name} you specified did not match the calculated checksum."),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Streams `body` into a new object at `key`; nothing is visible unless the whole body
/// arrived and matched every digest. Returns the object and the body's MD5.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_body(
    bucket: &GatewayWarehouse,
    key: &str,
    create_only: bool,
    attributes: ObjectAttributes,
    mut body: StreamingBlob,
    mut expected: Expected,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<(ObjectInfo, [u8; 16])> {
    let mut writer = bucket
        .storage()
        .object_writer(key, create_only)
        .map_err(storage_error)?;
    writer.set_attributes(attributes);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(body_error(e));
            }
        };
        expected.checksum.update(&chunk);
        if let Err(e) = writer.write(chunk).await {
            writer.abort().await;
            return Err(storage_error(e));
        }
    }
    let md5 = writer.md5();
    if let Err(e) = expected.verify(&md5, trailers) {
        writer.abort().await;
        return Err(e);
    }
    let info = writer.finish().await.map_err(storage_error)?;
    Ok((info, md5))
}

impl Gateway {
    async fn authorized_bucket(
        &self,
        caller: &GatewayCaller,
        bucket: &str,
        key: &str,
        access: ObjectAccess,
    ) -> S3Result<GatewayWarehouse> {
        check_key(key)?;
        let b = self.bucket(caller, bucket).await?;
        self.services
            .gateway_authorize(caller, &b, key, access)
            .await
            .map_err(to_s3_error)?;
        Ok(b)
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = self.caller(&req).await?;
        let buckets = self
            .services
            .gateway_buckets(&caller)
            .await
            .map_err(to_s3_error)?
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_at)),
                bucket_region: Some(self.config.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some(caller.user_name.clone()),
                id: Some(caller.user_id.to_string()),
            }),
            ..Default::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let caller = self.caller(&req).await?;
        self.bucket(&caller, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let caller = self.caller(&req).await?;
        self.bucket(&caller, &req.input.bucket).await?;
        // S3 reports us-east-1 as an empty constraint.
        let location_constraint = (self.config.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.config.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let caller = self.caller(&req).await?;
        self.list_v2(&caller, req.input).await.map(S3Response::new)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let caller = self.caller(&req).await?;
        self.list_v1(&caller, req.input).await.map(S3Response::new)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.caller(&req).await?;
        let input = req.input;
        let b = self
            .authorized_bucket(&caller, &input.bucket, &input.key, ObjectAccess::Read)
            .await?;
        if input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "GET by part number is not supported"
            ));
        }
        let range = input.range.map(|r| match r {
            Range::Int {
                first,
                last: Some(last),
            } => ByteRange::Inclusive { first, last },
            Range::Int { first, last: None } => ByteRange::From(first),
            Range::Suffix { length } => ByteRange::Suffix(length),
        });
        let cond = ReadConditions {
            if_match: condition_tag(input.if_match),
            if_none_match: condition_tag(input.if_none_match),
            if_modified_since: input.if_modified_since.and_then(chrono_of),
            if_unmodified_since: input.if_unmodified_since.and_then(chrono_of),
        };
        let read = b
            .storage()
            .get_object_to_send(&input.key, range, &cond)
            .await
            .map_err(storage_error)?;
        let len = read.range.end - read.range.start;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.info.size
            )
        });
        let a = &read.info.attributes;
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(len as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(read.info.last_modified)),
            e_tag: etag(&read.info),
            // The response-* query parameters override what is stored.
            content_type: input
                .response_content_type
                .or_else(|| a.content_type.clone())
                .or_else(|| Some("application/octet-stream".into())),
            content_encoding: input
                .response_content_encoding
                .or_else(|| a.content_encoding.clone()),
            content_disposition: input
                .response_content_disposition
                .or_else(|| a.content_disposition.clone()),
            content_language: input
                .response_content_language
                .or_else(|| a.content_language.clone()),
            cache_control: input
                .response_cache_control
                .or_else(|| a.cache_control.clone()),
            metadata: user_metadata(a),
            body: Some(StreamingBlob::wrap(SyncBody(Mutex::new(read.body)))),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.caller(&req).await?;
        let input = req.input;
        let b = self
            .authorized_bucket(&caller, &input.bucket, &input.key, ObjectAccess::Read)
            .await?;
        let info = b
            .storage()
            .head_object(&input.key)
            .await
            .map_err(storage_error)?;
        check_head_conditions(&info, &input)?;
        let a = &info.attributes;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(info.size as i64),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(info.last_modified)),
            e_tag: etag(&info),
            content_type: a
                .content_type
                .clone()
                .or_else(|| Some("application/octet-stream".into())),
            content_encoding: a.content_encoding.clone(),
            content_disposition: a.content_disposition.clone(),
            content_language: a.content_language.clone(),
            cache_control: a.cache_control.clone(),
            metadata: user_metadata(a),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = self.caller(&req).await?;
        let trailer_alg = trailer_algorithm(&req.headers);
        let trailers = req.trailing_headers;
        let input = req.input;
        let b = self
            .authorized_bucket(&caller, &input.bucket, &input.key, ObjectAccess::Write)
            .await?;
        let create_only = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
        if let Some(cond) = &input.if_match {
            let current = b.storage().head_object(&input.key).await;
            let ok = match (cond, &current) {
                (_, Err(StorageError::NotFound(_))) => false,
                (_, Err(_)) => return Err(current.map(drop).map_err(storage_error).unwrap_err()),
                (ETagCondition::Any, Ok(_)) => true,
                (ETagCondition::ETag(t), Ok(info)) => info.e_tag.as_deref() == Some(t.value()),
            };
            if !ok {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        }
        let expected = Expected::new(
            input.content_md5,
            input.checksum_algorithm.or(trailer_alg),
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_sha1,
            input.checksum_sha256,
            input.checksum_crc64nvme,
        )?;
        let attributes = attributes_of(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.metadata,
        );
        let body = input
            .body
            .unwrap_or_else(|| StreamingBlob::from(s3s::Body::empty()));
        let (info, _) = write_body(
            &b,
            &input.key,
            create_only,
            attributes,
            body,
            expected,
            trailers,
        )
        .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: etag(&info),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = self.caller(&req).await?;
        let input = req.input;
        let b = self
            .authorized_bucket(&caller, &input.bucket, &input.key, ObjectAccess::Delete)
            .await?;
        b.storage()
            .delete_object(&input.key)
            .await
            .map_err(storage_error)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let caller = self.caller(&req).await?;
        let input = req.input;
        let b = self.bucket(&caller, &input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in input.delete.objects {
            let key = o.key;
            let res = async {
                check_key(&key)?;
                self.services
                    .gateway_authorize(&caller, &b, &key, ObjectAccess::Delete)
                    .await
                    .map_err(to_s3_error)?;
                b.storage().delete_object(&key).await.map_err(storage_error)
            }
            .await;
            match res {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(key),
                            ..Default::default()
                        })
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    message: e.message().map(str::to_string),
                    key: Some(key),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let caller = self.caller(&req).await?;
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copy from an access point is not supported"
            ));
        };
        if version_id.is_some() {
            return Err(s3_error!(NotImplemented, "versions are not supported"));
        }
        let src = self
            .authorized_bucket(&caller, src_bucket, src_key, ObjectAccess::Read)
            .await?;
        let dst = self
            .authorized_bucket(&caller, &input.bucket, &input.key, ObjectAccess::Write)
            .await?;
        let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(_) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive.")),
        };
        let attributes = replace.then(|| {
            attributes_of(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.metadata,
            )
        });
        let info = if src.name() == dst.name() {
            // S3 allows a copy onto itself only to change the metadata.
            if src_key.as_ref() == input.key.as_str() && !replace {
                return Err(s3_error!(
                    InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
                ));
            }
            src.storage()
                .copy_object(src_key, &input.key, attributes)
                .await
                .map_err(storage_error)?
        } else {
            copy_across(&src, src_key, &dst, &input.key, attributes).await?
        };
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag(&info),
                last_modified: Some(timestamp(info.last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_create(&caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let caller = self.caller(&req).await?;
        let trailer_alg = trailer_algorithm(&req.headers);
        let mut input = req.input;
        input.checksum_algorithm = input.checksum_algorithm.or(trailer_alg);
        self.mpu_upload_part(&caller, input, req.trailing_headers)
            .await
            .map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_upload_part_copy(&caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_complete(&caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_abort(&caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_list_parts(&caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let caller = self.caller(&req).await?;
        self.mpu_list_uploads(&caller, req.input)
            .await
            .map(S3Response::new)
    }
}

fn check_head_conditions(info: &ObjectInfo, input: &HeadObjectInput) -> S3Result<()> {
    let tag = info.e_tag.as_deref();
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => Some(t.value()) == tag,
    };
    if let Some(c) = &input.if_match {
        if !matches(c) {
            return Err(S3Error::new(S3ErrorCode::PreconditionFailed));
        }
    }
    if let Some(c) = &input.if_none_match {
        if matches(c) {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
    }
    if let Some(t) = input.if_unmodified_since.clone().and_then(chrono_of) {
        if info.last_modified.timestamp() > t.timestamp() {
            return Err(S3Error::new(S3ErrorCode::PreconditionFailed));
        }
    }
    if let Some(t) = input.if_modified_since.clone().and_then(chrono_of) {
        if input.if_none_match.is_none() && info.last_modified.timestamp() <= t.timestamp() {
            return Err(S3Error::new(S3ErrorCode::NotModified));
        }
    }
    Ok(())
}

/// Copies between two warehouses (two stores) by streaming through the gateway.
pub(crate) async fn copy_across(
    src: &GatewayWarehouse,
    src_key: &str,
    dst: &GatewayWarehouse,
    dst_key: &str,
    attributes: Option<ObjectAttributes>,
) -> S3Result<ObjectInfo> {
    let read = src
        .storage()
        .get_object(src_key, None, &ReadConditions::default())
        .await
        .map_err(storage_error)?;
    let mut writer = dst
        .storage()
        .object_writer(dst_key, false)
        .map_err(storage_error)?;
    writer.set_attributes(attributes.unwrap_or_else(|| read.info.attributes.clone()));
    let writer = stream_into(read.body, writer).await?;
    writer.finish().await.map_err(storage_error)
}

/// Streams a storage read into `writer`. On any error (reading or writing) the writer is
/// aborted, so nothing of the copy stays; otherwise it comes back for more or `finish`.
pub(crate) async fn stream_into(
    mut body: BoxStream<'static, Result<Bytes, StorageError>>,
    mut writer: sluice_storage::ObjectWriter,
) -> S3Result<sluice_storage::ObjectWriter> {
    while let Some(chunk) = body.next().await {
        let res = match chunk {
            Ok(c) => writer.write(c).await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            writer.abort().await;
            return Err(storage_error(e));
        }
    }
    Ok(writer)
}
