//! The floor: an empty axum handler that returns a body of the same size as the Sluice
//! response it is compared with (any method, any path; a request body is read and dropped).

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::Router;
use std::io::Write;
use std::net::SocketAddr;

/// A JSON string of exactly `n` bytes (`"xxx…"`), or `n` spaces below two bytes.
pub fn body_of(n: usize) -> Vec<u8> {
    if n < 2 {
        return vec![b' '; n];
    }
    let mut b = vec![b'x'; n];
    b[0] = b'"';
    b[n - 1] = b'"';
    b
}

pub async fn serve(listen: SocketAddr, body_bytes: usize) -> Result<(), String> {
    let body = Bytes::from(body_of(body_bytes));
    let app = Router::new().fallback(move |_request_body: Bytes| {
        let body = body.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body) }
    });
    serve_app(listen, app).await
}

/// Serves `app` on `listen`, printing the bound address as the first line of stdout (what
/// `scripts/bench.sh` waits for).
pub async fn serve_app(listen: SocketAddr, app: Router) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    writeln!(out, "{addr}")
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::body_of;

    #[test]
    fn body_has_the_exact_size_and_is_json() {
        for n in [0, 1, 2, 3, 1234] {
            assert_eq!(body_of(n).len(), n);
        }
        let v: serde_json::Value = serde_json::from_slice(&body_of(10)).unwrap();
        assert_eq!(v.as_str().unwrap().len(), 8);
    }
}
