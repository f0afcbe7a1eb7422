//! The floor of a remote-signing request: the least work any signer must do for one, and
//! nothing else — read the Iceberg sign request (JSON), sign it with `aws-sigv4` under fixed
//! session credentials, write the answer (JSON). No authentication, no authorization, no
//! table or warehouse lookup, no check of what is signed. Sluice's sign endpoint does all of
//! those on top, so this server tells how much of the gap to the empty handler is SigV4 and
//! JSON themselves.

use aws_sigv4::http_request::SignableBody;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use axum::Router;
use sluice_storage::s3::{sigv4_headers, SignRequest, SignedRequest};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A session token as long as the ones Sluice's temporary gateway keys carry.
const TOKEN_BYTES: usize = 560;

/// Signed by Sluice's own SigV4 step (`sigv4_headers`), so the floor signs exactly as the
/// sign endpoint does, without the checks that precede it there.
fn signed(req: SignRequest, token: &str) -> Result<SignedRequest, String> {
    let identity = aws_credential_types::Credentials::new(
        "ASIAFLOOR00000000000",
        "floorSecret0123456789abcdefghijklmnopqrs",
        Some(token.to_string()),
        None,
        "sign-floor",
    );
    let headers: BTreeMap<String, String> = req
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.join(",")))
        .collect();
    let headers = sigv4_headers(
        identity,
        &req.region,
        &req.method,
        &req.uri,
        headers,
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| e.to_string())?;
    Ok(SignedRequest {
        uri: req.uri,
        headers,
    })
}

pub async fn serve(listen: SocketAddr) -> Result<(), String> {
    let token: &'static str = "t".repeat(TOKEN_BYTES).leak();
    let app = Router::new().fallback(move |body: Bytes| async move {
        let req: SignRequest =
            serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        signed(req, token)
            .map(Json)
            .map_err(|e| (StatusCode::BAD_REQUEST, e))
    });
    crate::baseline::serve_app(listen, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_gateway_would_be_signed_for() {
        let req: SignRequest = serde_json::from_value(serde_json::json!({
            "method": "GET", "region": "us-east-1", "uri": "http://127.0.0.1:1/wh/t/m.json",
            "headers": {"User-Agent": ["x"]}
        }))
        .unwrap();
        let token = "t".repeat(TOKEN_BYTES);
        let s = signed(req, &token).unwrap();
        assert!(s.headers["authorization"][0]
            .starts_with("AWS4-HMAC-SHA256 Credential=ASIAFLOOR00000000000/"));
        assert_eq!(s.headers["x-amz-security-token"][0], token);
        assert_eq!(s.headers["user-agent"][0], "x");
    }
}
