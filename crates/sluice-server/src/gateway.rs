//! The S3 gateway's listener: the `s3s` service of `sluice-gateway` behind the same
//! hardened listener as the API (head and idle timeouts, connection cap), without the
//! API's body-size limit and request timeout, which would cut off large uploads and
//! downloads. The gateway answers every error itself in S3's XML shape.
//!
//! Failed signatures are throttled per (source address, access key id): after
//! `auth_failures_per_minute` `SignatureDoesNotMatch` / `InvalidAccessKeyId` answers, that
//! source's requests with that key answer 503 `SlowDown` (S3's own back-off signal) until
//! the bucket refills. Other keys, and the same key from elsewhere, are unaffected, so a
//! guesser can neither slow down good keys nor lock a key out for its owner.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use sluice_gateway::{Gateway, GatewayConfig};
use sluice_service::Services;

use crate::config::ServerConfig;
use crate::throttle::{retry_after_secs, AuthThrottle};

/// The largest S3 error body read back to tell a signature failure from other 403s.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Throttled pairs remembered so a burst is logged once; beyond this the memory is cleared.
const MAX_BURSTS: usize = 10_000;

/// Logs the first refusal of a burst (per pair, at most once a minute).
struct Bursts(Mutex<HashMap<String, Instant>>);

impl Bursts {
    fn first(&self, pair: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_BURSTS {
            map.clear();
        }
        match map.get(pair) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                map.insert(pair.to_string(), now);
                true
            }
        }
    }
}

fn slow_down(wait: Duration) -> Response<Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message></Error>";
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    resp
}

/// Whether a 403 is a failed signature or an unknown key (not a policy's denial); the
/// response comes back whole either way.
async fn signature_failure(resp: Response<Body>) -> (Response<Body>, bool) {
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let failed = text.contains("<Code>SignatureDoesNotMatch</Code>")
                || text.contains("<Code>InvalidAccessKeyId</Code>");
            (Response::from_parts(parts, Body::from(bytes)), failed)
        }
        Err(_) => (Response::from_parts(parts, Body::empty()), false),
    }
}

/// The gateway as a router for [`crate::serve::serve`].
pub fn router(services: Services, config: &ServerConfig) -> axum::Router {
    let s3 = Gateway::service(
        Arc::new(services),
        GatewayConfig {
            region: config.s3_region.clone(),
            domain: config.s3_domain.clone().filter(|d| !d.trim().is_empty()),
        },
    );
    let throttle = Arc::new(AuthThrottle::new(config.auth_failures_per_minute));
    let bursts = Arc::new(Bursts(Mutex::new(HashMap::new())));
    axum::Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
        let mut s3 = s3.clone();
        let (throttle, bursts) = (throttle.clone(), bursts.clone());
        async move {
            let key_id = signing_key_id(&req);
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let source = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            let pair = key_id
                .as_deref()
                .map(|k| format!("{}/{k}", source.map(|s| s.to_string()).unwrap_or_default()));
            if let Some(wait) = pair.as_deref().and_then(|p| throttle.check(None, Some(p))) {
                if bursts.first(pair.as_deref().unwrap_or_default()) {
                    tracing::warn!(
                        access_key_id = key_id.as_deref().unwrap_or("-"),
                        source = %source.map(|s| s.to_string()).unwrap_or_default(),
                        "S3 gateway: repeated failed signatures, answering SlowDown"
                    );
                }
                return Ok(slow_down(wait));
            }
            match tower::Service::call(&mut s3, req).await {
                Ok(resp) => {
                    let mut resp = resp.map(Body::new);
                    // Signature failures are decided inside s3s; the log still names the key.
                    if resp.status() == StatusCode::FORBIDDEN {
                        tracing::info!(
                            access_key_id = key_id.as_deref().unwrap_or("-"),
                            %method,
                            path,
                            "S3 gateway request refused (403)"
                        );
                        if let Some(p) = &pair {
                            let (whole, failed) = signature_failure(resp).await;
                            resp = whole;
                            if failed {
                                throttle.record_failure(None, Some(p));
                            }
                        }
                    }
                    Ok::<_, Infallible>(resp)
                }
                Err(e) => {
                    tracing::error!(error = ?e, "S3 gateway: request failed");
                    let mut resp = Response::new(Body::empty());
                    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    Ok(resp)
                }
            }
        }
    }))
}

/// The access key id a request claims (SigV4/SigV2 header or presigned query), for the log
/// only: never trusted, never used to decide anything.
fn signing_key_id(req: &Request<Body>) -> Option<String> {
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let from_header = auth.and_then(|a| {
        if let Some(rest) = a.split("Credential=").nth(1) {
            rest.split('/').next().map(str::to_string)
        } else {
            a.strip_prefix("AWS ")
                .and_then(|r| r.split(':').next())
                .map(str::to_string)
        }
    });
    from_header
        .or_else(|| {
            let query = req.uri().query()?;
            url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| match k.as_ref() {
                "X-Amz-Credential" => v.split('/').next().map(str::to_string),
                "AWSAccessKeyId" => Some(v.into_owned()),
                _ => None,
            })
        })
        .map(|k| {
            k.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(64)
                .collect()
        })
}
