//! The S3 gateway in process, with requests signed by `aws-sigv4` (the SDKs' signer): the
//! listener wiring, the key lookup through the service layer, and authorization by the same
//! policies as the catalog. Real S3 clients are in `tests/gateway` (pytest).

use reqwest::Client;
use serde_json::{json, Value};
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};

use crate::server::{signed_s3, KEY_ID, SECRET};

struct Gw {
    api: String,
    s3: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

async fn start() -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        s3_listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        allowed_file_roots: vec![dir.path().to_path_buf()],
        auth_failures_per_minute: 10_000,
        ..ServerConfig::default()
    };
    let server = Server::open(config, Some((KEY_ID.into(), Secret::new(SECRET))))
        .await
        .unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, s3_addr) = (api.local_addr().unwrap(), s3.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .serve_with_gateway(api, Some(s3), async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Gw {
        api: format!("http://{api_addr}"),
        s3: format!("http://{s3_addr}"),
        _dir: dir,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl Gw {
    /// A SigV4-signed request (signed payload) to the gateway.
    async fn s3(
        &self,
        (key, secret): (&str, &str),
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, String) {
        signed_s3(&self.s3, (key, secret, None), method, path, body).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = Client::new()
            .request(method, format!("{}{path}", self.api))
            .basic_auth(KEY_ID, Some(SECRET));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap();
    }
}

#[tokio::test]
async fn signed_requests_are_authorized_by_the_catalog_policies() {
    let gw = start().await;
    let admin = (KEY_ID, SECRET);

    let (status, body) = gw.s3(admin, "GET", "/", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Name>default</Name>"), "{body}");
    let (status, body) = gw
        .s3(admin, "PUT", "/default/staging/a.txt", b"hello")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw.s3(admin, "GET", "/default/staging/a.txt", b"").await;
    assert_eq!((status, body.as_str()), (200, "hello"));

    // A user with no policies sees no bucket and may read nothing.
    gw.admin(
        reqwest::Method::POST,
        "/management/v1/users",
        Some(json!({"name": "nobody"})),
    )
    .await;
    let key = gw
        .admin(
            reqwest::Method::POST,
            "/management/v1/users/nobody/access-keys",
            None,
        )
        .await;
    let nobody = (
        key["access-key-id"].as_str().unwrap().to_string(),
        key["secret-access-key"].as_str().unwrap().to_string(),
    );
    let creds = (nobody.0.as_str(), nobody.1.as_str());
    let (status, body) = gw.s3(creds, "GET", "/", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("<Name>default</Name>"), "{body}");
    let (status, body) = gw.s3(creds, "GET", "/default/staging/a.txt", b"").await;
    assert_eq!(
        status, 404,
        "a warehouse it may not see is no bucket: {body}"
    );
    assert!(body.contains("NoSuchBucket"), "{body}");

    // Explicit grant on the staging prefix: read yes, write no.
    gw.admin(
        reqwest::Method::POST,
        "/management/v1/policies",
        Some(json!({"name": "staging-read", "statements": [
            {"effect": "allow", "action": ["warehouse:Read"], "resource": "sluice:catalog:::warehouse/default"},
            {"effect": "allow", "action": ["s3:GetObject"], "resource": "sluice:catalog:::warehouse/default/object/staging/*"}
        ]})),
    )
    .await;
    gw.admin(
        reqwest::Method::PUT,
        "/management/v1/users/nobody/policies/staging-read",
        None,
    )
    .await;
    let (status, body) = gw.s3(creds, "GET", "/default/staging/a.txt", b"").await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let (status, body) = gw.s3(creds, "PUT", "/default/staging/b.txt", b"x").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (status, body) = gw.s3(creds, "GET", "/default/other/a.txt", b"").await;
    assert_eq!(status, 403, "{body}");

    // Wrong secret, unknown key, anonymous: 403 with S3's codes.
    let (status, body) = gw
        .s3(
            (creds.0, "0000000000000000000000000000000000000000"),
            "GET",
            "/",
            b"",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    let (status, body) = gw
        .s3(("AKIAAAAAAAAAAAAAAAAA", SECRET), "GET", "/", b"")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("InvalidAccessKeyId"), "{body}");
    let resp = Client::new()
        .get(format!("{}/default/staging/a.txt", gw.s3))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    gw.stop().await;
}
