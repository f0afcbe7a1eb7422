//! The console's static files, embedded in the binary and served with an ETag (their
//! SHA-256) so browsers revalidate cheaply instead of downloading them again.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

pub const CSS_NAME: &str = "console.css";
pub const JS_NAME: &str = "console.js";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let files: [(&str, &str, &[u8]); 3] = [
        (
            CSS_NAME,
            "text/css; charset=utf-8",
            include_bytes!("assets/console.css"),
        ),
        (
            JS_NAME,
            "text/javascript; charset=utf-8",
            include_bytes!("assets/console.js"),
        ),
        (
            "favicon.svg",
            "image/svg+xml",
            include_bytes!("assets/favicon.svg"),
        ),
    ];
    files
        .into_iter()
        .map(|(name, content_type, body)| {
            let digest = Sha256::digest(body);
            let hex = sluice_core::hex(&digest[..16]);
            Asset {
                name,
                content_type,
                body,
                etag: format!("\"{hex}\""),
            }
        })
        .collect()
});

pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return crate::ConsoleError::NotFound.into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag).expect("hex etag");
    let cache = HeaderValue::from_static("public, max-age=300, must-revalidate");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}
