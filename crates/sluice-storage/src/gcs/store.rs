//! object_store's GCS client with uploads through the JSON API.
//!
//! object_store uploads with the XML API (`PUT /<bucket>/<object>`, conditions as
//! `x-goog-if-generation-match`). Google serves both, but fake-gcs-server — the emulator
//! the tests run against — accepts XML-API uploads only as signed URLs and ignores their
//! conditions, so create-if-absent (which atomic commits rely on) could not be tested.
//! Single-request multipart uploads through the JSON API (`ifGenerationMatch=0` for
//! "create") behave the same on Google and on the emulator (which honours conditions only
//! on this upload type). Multipart writes are JSON-API resumable uploads for the same reason
//! (the emulator has no XML multipart API); everything else is object_store's.

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
    /// `<base>/storage/v1/b/<bucket>/o`
    objects_url: String,
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
            objects_url: format!("{}/storage/v1/b/{enc}/o", base.trim_end_matches('/')),
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
#[serde(rename_all = "camelCase")]
struct RewriteAnswer {
    done: Option<bool>,
    rewrite_token: Option<String>,
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

    /// A JSON-API resumable upload (object_store's XML multipart API is one fake-gcs-server
    /// does not serve). Metadata is the caller's business (the gateway keeps a sidecar).
    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let token = self.tokens.token().await.map_err(generic)?;
        let resp = self
            .http
            .post(&self.upload_url)
            .query(&[("uploadType", "resumable")])
            .bearer_auth(token.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .body(serde_json::json!({ "name": location.as_ref() }).to_string())
            .send()
            .await
            .map_err(generic)?;
        let status = resp.status();
        let session = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(session) = session.filter(|_| status.is_success()) else {
            let text = resp.text().await.unwrap_or_default();
            return Err(generic(Message(format!(
                "starting an upload of {location} failed: {status}: {}",
                text.chars().take(300).collect::<String>()
            ))));
        };
        let (turn, _) = tokio::sync::watch::channel(0usize);
        Ok(Box::new(ResumableUpload {
            shared: Arc::new(Resumable {
                http: self.http.clone(),
                tokens: self.tokens.clone(),
                session,
                path: location.to_string(),
                turn,
                state: tokio::sync::Mutex::new(ResumableState::default()),
            }),
            parts: 0,
        }))
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

    /// A JSON-API rewrite (object_store copies with the XML API, which fake-gcs-server does
    /// not serve), repeated with its token until Google says done.
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        let enc = |p: &Path| {
            percent_encoding::utf8_percent_encode(p.as_ref(), percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let bucket =
            percent_encoding::utf8_percent_encode(&self.bucket, percent_encoding::NON_ALPHANUMERIC);
        let url = format!(
            "{}/{}/rewriteTo/b/{bucket}/o/{}",
            self.objects_url,
            enc(from),
            enc(to)
        );
        let mut rewrite_token: Option<String> = None;
        loop {
            let token = self.tokens.token().await.map_err(generic)?;
            let mut req = self.http.post(&url).bearer_auth(token.token.expose());
            if let Some(t) = &rewrite_token {
                req = req.query(&[("rewriteToken", t)]);
            }
            let resp = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}")
                .send()
                .await
                .map_err(generic)?;
            let status = resp.status();
            let text = resp.text().await.map_err(generic)?;
            if status.as_u16() == 404 {
                return Err(object_store::Error::NotFound {
                    path: from.to_string(),
                    source: Box::new(Message(format!("copy of {from}: not found"))),
                });
            }
            if !status.is_success() {
                return Err(generic(Message(format!(
                    "copy of {from} to {to} failed: {status}: {}",
                    text.chars().take(300).collect::<String>()
                ))));
            }
            let ans: RewriteAnswer = serde_json::from_str(&text).map_err(generic)?;
            if ans.done.unwrap_or(true) {
                return Ok(());
            }
            rewrite_token = ans.rewrite_token;
            if rewrite_token.is_none() {
                return Err(generic(Message(format!(
                    "copy of {from}: no rewrite token"
                ))));
            }
        }
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A resumable upload's session. Chunks must arrive in order and all but the last must be
/// multiples of 256 KiB (the writer's parts are): each part waits for its turn and sends the
/// part before it, so the last one is held back and sent with the total by `complete`.
struct Resumable {
    http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    session: String,
    path: String,
    /// The index of the part whose turn it is.
    turn: tokio::sync::watch::Sender<usize>,
    state: tokio::sync::Mutex<ResumableState>,
}

#[derive(Default)]
struct ResumableState {
    sent: u64,
    held: Option<Bytes>,
    failed: Option<String>,
}

impl Resumable {
    /// Sends `data` at the current offset; `total` finishes the upload.
    async fn send(
        &self,
        state: &mut ResumableState,
        data: Bytes,
        total: Option<u64>,
    ) -> object_store::Result<Option<UploadAnswer>> {
        let len = data.len() as u64;
        let range = match (len, total) {
            (0, Some(t)) => format!("bytes */{t}"),
            (0, None) => return Ok(None),
            (n, t) => format!(
                "bytes {}-{}/{}",
                state.sent,
                state.sent + n - 1,
                t.map_or("*".to_string(), |t| t.to_string())
            ),
        };
        let token = self.tokens.token().await.map_err(generic)?;
        let resp = self
            .http
            .put(&self.session)
            .bearer_auth(token.token.expose())
            .header(reqwest::header::CONTENT_RANGE, range)
            .body(data)
            .send()
            .await
            .map_err(generic)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(generic)?;
        match (status, total) {
            // 308: "resume incomplete", the chunk is stored.
            (308, None) => {
                state.sent += len;
                Ok(None)
            }
            (200 | 201, Some(_)) => Ok(Some(serde_json::from_str(&text).map_err(generic)?)),
            _ => Err(generic(Message(format!(
                "upload of {} failed: {status}: {}",
                self.path,
                text.chars().take(300).collect::<String>()
            )))),
        }
    }
}

struct ResumableUpload {
    shared: Arc<Resumable>,
    parts: usize,
}

impl fmt::Debug for ResumableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableUpload")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let index = self.parts;
        self.parts += 1;
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut turn = shared.turn.subscribe();
            turn.wait_for(|t| *t == index).await.map_err(generic)?;
            let res = {
                let mut state = shared.state.lock().await;
                match &state.failed {
                    Some(m) => Err(generic(Message(m.clone()))),
                    None => {
                        let previous = state.held.replace(data.into());
                        match previous {
                            Some(p) => shared.send(&mut state, p, None).await.map(drop),
                            None => Ok(()),
                        }
                        .inspect_err(|e| state.failed = Some(e.to_string()))
                    }
                }
            };
            shared.turn.send_modify(|t| *t += 1);
            res
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let mut turn = self.shared.turn.subscribe();
        let parts = self.parts;
        turn.wait_for(|t| *t == parts).await.map_err(generic)?;
        let mut state = self.shared.state.lock().await;
        if let Some(m) = &state.failed {
            return Err(generic(Message(m.clone())));
        }
        let last = state.held.take().unwrap_or_default();
        let total = state.sent + last.len() as u64;
        let ans = self
            .shared
            .send(&mut state, last, Some(total))
            .await?
            .ok_or_else(|| generic(Message("the upload did not finish".into())))?;
        Ok(PutResult {
            e_tag: ans.etag,
            version: ans.generation,
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        // Google answers 499 to a cancelled session; either way nothing becomes visible.
        let token = self.shared.tokens.token().await.map_err(generic)?;
        let _ = self
            .shared
            .http
            .delete(&self.shared.session)
            .bearer_auth(token.token.expose())
            .send()
            .await;
        Ok(())
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
