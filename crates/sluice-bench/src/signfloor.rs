//! The floor of a remote-signing request: the least work any signer must do for one, and
//! nothing else — read the Iceberg sign request (JSON), sign it with `aws-sigv4` under fixed
//! session credentials, write the answer (JSON). No authentication, no authorization, no
//! table or warehouse lookup, no check of what is signed. Sluice's sign endpoint does all of
//! those on top, so this server tells how much of the gap to the empty handler is SigV4 and
//! JSON themselves.

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

#[derive(Deserialize)]
struct SignRequest {
    method: String,
    uri: String,
    region: String,
    #[serde(default)]
    headers: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize)]
struct Signed {
    uri: String,
    headers: BTreeMap<String, Vec<String>>,
}

/// A session token as long as the ones Sluice's temporary gateway keys carry.
const TOKEN_BYTES: usize = 560;

fn signed(req: SignRequest, token: &str) -> Result<Signed, String> {
    let identity = aws_credential_types::Credentials::new(
        "ASIAFLOOR00000000000",
        "floorSecret0123456789abcdefghijklmnopqrs",
        Some(token.to_string()),
        None,
        "sign-floor",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&req.region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers: BTreeMap<String, String> = req
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.join(",")))
        .collect();
    let signable = SignableRequest::new(
        &req.method,
        req.uri.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut out: BTreeMap<String, Vec<String>> =
        headers.into_iter().map(|(k, v)| (k, vec![v])).collect();
    for (name, value) in instructions.headers() {
        out.insert(name.to_ascii_lowercase(), vec![value.to_string()]);
    }
    Ok(Signed {
        uri: req.uri,
        headers: out,
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
