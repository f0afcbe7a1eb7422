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
            match tower::Service::call(&mut s3, req).await {
                Ok(resp) => Ok::<_, Infallible>(resp.map(Body::new)),
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
