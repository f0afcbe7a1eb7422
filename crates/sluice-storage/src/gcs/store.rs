//! object_store's GCS client with uploads through the JSON API.
//!
//! object_store uploads with the XML API (`PUT /<bucket>/<object>`, conditions as
//! `x-goog-if-generation-match`). Google serves both, but fake-gcs-server — the emulator
//! the tests run against — accepts XML-API uploads only as signed URLs and ignores their
//! conditions, so create-if-absent (which atomic commits rely on) could not be tested.
//! Single-request multipart uploads through the JSON API (`ifGenerationMatch=0` for
//! "create") behave the same on Google and on the emulator (which honours conditions only
//! on this upload type); everything else is object_store's.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::gcp::GoogleCloudStorage;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde::Deserialize;

use crate::gcs::token::TokenProvider;

const STORE: &str = "GCS";

pub(crate) struct GcsStore {
    inner: GoogleCloudStorage,
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    /// `<base>/upload/storage/v1/b/<bucket>/o`
    upload_url: String,
    bucket: String,
}

impl GcsStore {
    pub(crate) fn new(
        inner: GoogleCloudStorage,
        http: reqwest::Client,
        tokens: Arc<TokenProvider>,
        base: &str,
        bucket: &str,
    ) -> Self {
        let enc = percent_encoding::utf8_percent_encode(bucket, percent_encoding::NON_ALPHANUMERIC);
        GcsStore {
            inner,
            http,
            tokens,
            upload_url: format!("{}/upload/storage/v1/b/{enc}/o", base.trim_end_matches('/')),
            bucket: bucket.to_string(),
        }
    }
}

impl fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStore")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcsStore({})", self.bucket)
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// A `multipart/related` body: the object's metadata (its name) as JSON, then its bytes.
/// The boundary is random and checked against the data, so it cannot occur inside a part.
fn multipart_body(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = loop {
        let b = format!("sluice-{}", uuid::Uuid::new_v4().simple());
        if !data.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
    };
    let meta = serde_json::json!({ "name": name }).to_string();
    let mut body = Vec::with_capacity(data.len() + meta.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), body)
}

#[derive(Deserialize)]
struct UploadAnswer {
    generation: Option<String>,
    etag: Option<String>,
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let mut query: Vec<(&str, String)> = vec![("uploadType", "multipart".into())];
        match opts.mode {
            PutMode::Overwrite => {}
            // Generation 0 means "no live object": the upload fails with 412 if one exists.
            PutMode::Create => query.push(("ifGenerationMatch", "0".into())),
            PutMode::Update(_) => return Err(object_store::Error::NotImplemented),
        }
        let token = self.tokens.token().await.map_err(generic)?;
        let data: Bytes = payload.into();
        let (content_type, body) = multipart_body(location.as_ref(), &data);
        let resp = self
            .http
            .post(&self.upload_url)
            .query(&query)
            .bearer_auth(token.token.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(generic)?;
        let status = resp.status();
        let text = resp.text().await.map_err(generic)?;
        let path = location.to_string();
        match status.as_u16() {
            200..=299 => {
                let ans: UploadAnswer = serde_json::from_str(&text).map_err(generic)?;
                Ok(PutResult {
                    e_tag: ans.etag,
                    version: ans.generation,
                })
            }
            412 => Err(object_store::Error::AlreadyExists {
                path,
                source: Box::new(Message("precondition failed: the object exists".into())),
            }),
            404 => Err(object_store::Error::NotFound {
                path,
                source: Box::new(Message(format!("bucket '{}' not found", self.bucket))),
            }),
            _ => Err(generic(Message(format!(
                "upload of {path} failed: {status}: {}",
                text.chars().take(300).collect::<String>()
            )))),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_layout() {
        let (ct, body) = multipart_body("wh/a \"b\".json", b"payload");
        let boundary = ct.strip_prefix("multipart/related; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n\
                 {{\"name\":\"wh/a \\\"b\\\".json\"}}\r\n--{boundary}\r\n\
                 Content-Type: application/octet-stream\r\n\r\npayload\r\n--{boundary}--\r\n"
            )
        );
    }
}
