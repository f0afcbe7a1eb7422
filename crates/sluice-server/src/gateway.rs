//! The S3 gateway's listener: the `s3s` service of `sluice-gateway` behind the same
//! hardened listener as the API (head and idle timeouts, connection cap), without the
//! API's body-size limit and request timeout, which would cut off large uploads and
//! downloads. The gateway answers every error itself in S3's XML shape.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use sluice_gateway::{Gateway, GatewayConfig};
use sluice_service::Services;

use crate::config::ServerConfig;

/// The gateway as a router for [`crate::serve::serve`].
pub fn router(services: Services, config: &ServerConfig) -> axum::Router {
    let s3 = Gateway::service(
        Arc::new(services),
        GatewayConfig {
            region: config.s3_region.clone(),
            domain: config.s3_domain.clone().filter(|d| !d.trim().is_empty()),
        },
    );
    axum::Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
        let mut s3 = s3.clone();
        async move {
            let key_id = signing_key_id(&req);
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            match tower::Service::call(&mut s3, req).await {
                Ok(resp) => {
                    // Signature failures are decided inside s3s; the log still names the key.
                    if resp.status() == StatusCode::FORBIDDEN {
                        tracing::info!(
                            access_key_id = key_id.as_deref().unwrap_or("-"),
                            %method,
                            path,
                            "S3 gateway request refused (403)"
                        );
                    }
                    Ok::<_, Infallible>(resp.map(Body::new))
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
